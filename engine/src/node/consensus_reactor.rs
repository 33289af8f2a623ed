//! The consensus reactor task: moves consensus messages between the p2p
//! switch and the driver around the pure [`gossip::reactor::Reactor`].
//!
//! - Peers' messages are decoded, applied to what we know of the peer, and
//!   those the core should see go to the driver through a bounded queue (a
//!   busy driver slows the peers down instead of growing memory).
//! - The driver's [`OurEvent`]s (what the core accepted, where it stands)
//!   update our view; the reactor then plans, per peer, the proposal, parts
//!   and votes that peer lacks, and offers them to its send queues without
//!   waiting. A full queue stops planning for that peer until the next
//!   tick, so one slow peer never holds up the others.
//! - A peer that sends an undecodable or invalid message is disconnected.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Shared;
use crate::consensus::Input;
use crate::gossip::message::ConsensusMessage;
use crate::gossip::reactor::{channel_of, OurEvent, Reactor, ToCore};
use crate::gossip::stored::StoreView;
use crate::p2p::peer::{Inbound, PeerEvent};
use crate::p2p::switch::SwitchHandle;
use crate::p2p::NodeId;

/// How often planning runs without news, for peers whose queues were full.
const TICK: Duration = Duration::from_millis(20);

/// How often our +2/3 claims go out (CometBFT's `peerQueryMaj23SleepDuration`).
const MAJ23_EVERY: Duration = Duration::from_secs(2);

/// How long a vote received from a peer is held back before we relay it
/// (its signer sends it to everyone itself; see `OurView::set_relay_delay`).
const RELAY_DELAY_MS: u64 = 10;

/// Peer messages handled between two plannings at most.
const BATCH: usize = 64;

/// How many peer messages the driver may have waiting.
pub(super) const TO_DRIVER_CAPACITY: usize = 1024;

/// Messages and bytes through the reactor during one height, logged when
/// the next starts (the measure of gossip's cost per height).
#[derive(Default)]
struct Traffic {
    height: crate::types::Height,
    sent: u64,
    sent_bytes: u64,
    received: u64,
    received_bytes: u64,
    /// Sent messages by kind: votes, HasVote, round steps (NewRoundStep,
    /// NewValidBlock), data (proposals, POLs, parts), maj23 (VoteSetMaj23,
    /// VoteSetBits).
    sent_kinds: [u64; 5],
}

impl Traffic {
    fn sent(&mut self, m: &ConsensusMessage, len: usize) {
        self.sent += 1;
        self.sent_bytes += len as u64;
        let kind = match m {
            ConsensusMessage::Vote(_) => 0,
            ConsensusMessage::HasVote { .. } => 1,
            ConsensusMessage::NewRoundStep { .. } | ConsensusMessage::NewValidBlock { .. } => 2,
            ConsensusMessage::Proposal(_)
            | ConsensusMessage::ProposalPol { .. }
            | ConsensusMessage::BlockPart { .. } => 3,
            ConsensusMessage::VoteSetMaj23 { .. } | ConsensusMessage::VoteSetBits { .. } => 4,
        };
        self.sent_kinds[kind] += 1;
    }

    fn next_height(&mut self, height: crate::types::Height, peers: usize) {
        if self.height > 0 {
            tracing::info!(
                height = self.height,
                peers,
                sent = self.sent,
                sent_bytes = self.sent_bytes,
                received = self.received,
                received_bytes = self.received_bytes,
                sent_votes = self.sent_kinds[0],
                sent_has_vote = self.sent_kinds[1],
                sent_steps = self.sent_kinds[2],
                sent_data = self.sent_kinds[3],
                sent_maj23 = self.sent_kinds[4],
                "consensus gossip for the height"
            );
        }
        *self = Traffic {
            height,
            ..Traffic::default()
        };
    }
}

/// Runs until the switch's queue closes.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut inbound: mpsc::Receiver<Inbound>,
    mut events: mpsc::UnboundedReceiver<OurEvent>,
    to_driver: mpsc::Sender<(NodeId, Input)>,
) {
    let switch = shared.switch.clone();
    let seed = u64::from_le_bytes(switch.id().0[..8].try_into().unwrap_or([0; 8]));
    let mut reactor: Reactor<NodeId, StoreView> =
        Reactor::new(StoreView::new(shared.store.clone()), seed);
    reactor.set_relay_delay(RELAY_DELAY_MS, Some(shared.validator.0));
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut maj23 = tokio::time::interval(MAJ23_EVERY);
    maj23.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events_open = true;
    let mut traffic = Traffic::default();
    loop {
        tokio::select! {
            // Our own news first: our proposal and votes must not wait
            // behind a backlog of peers' messages.
            biased;
            event = events.recv(), if events_open => {
                let Some(event) = event else {
                    events_open = false;
                    continue;
                };
                reactor.set_clock(start.elapsed().as_millis() as u64);
                on_event(&mut reactor, &switch, event, &mut traffic);
                while let Ok(event) = events.try_recv() {
                    on_event(&mut reactor, &switch, event, &mut traffic);
                }
            }
            got = inbound.recv() => {
                let Some(got) = got else { return };
                on_inbound(&mut reactor, &switch, got, &to_driver, &mut traffic).await;
                // Take a batch of what is already queued before planning
                // once (bounded, so that our events get their turn).
                for _ in 0..BATCH {
                    let Ok(got) = inbound.try_recv() else { break };
                    on_inbound(&mut reactor, &switch, got, &to_driver, &mut traffic).await;
                }
            }
            _ = tick.tick() => {}
            _ = maj23.tick() => {
                let peers: Vec<NodeId> = reactor.peers().copied().collect();
                for peer in peers {
                    for m in reactor.maj23_for(&peer) {
                        send(&switch, peer, &m, &mut traffic);
                    }
                }
            }
        }
        reactor.set_clock(start.elapsed().as_millis() as u64);
        plan_all(&mut reactor, &switch, &mut traffic);
    }
}

fn send(switch: &SwitchHandle, peer: NodeId, m: &ConsensusMessage, traffic: &mut Traffic) -> bool {
    send_encoded(switch, peer, m, Bytes::from(m.encode()), traffic)
}

/// Sends `m`, already encoded as `bytes` (shared by every peer it goes to).
fn send_encoded(
    switch: &SwitchHandle,
    peer: NodeId,
    m: &ConsensusMessage,
    bytes: Bytes,
    traffic: &mut Traffic,
) -> bool {
    let len = bytes.len();
    let sent = switch.try_send(peer, channel_of(m), bytes);
    if sent {
        traffic.sent(m, len);
    }
    sent
}

fn plan_all(
    reactor: &mut Reactor<NodeId, StoreView>,
    switch: &SwitchHandle,
    traffic: &mut Traffic,
) {
    let peers: Vec<NodeId> = reactor.peers().copied().collect();
    for peer in peers {
        reactor.plan(&peer, |m| send(switch, peer, m, traffic));
    }
}

fn on_event(
    reactor: &mut Reactor<NodeId, StoreView>,
    switch: &SwitchHandle,
    event: OurEvent,
    traffic: &mut Traffic,
) {
    if let OurEvent::HeightStarted { height, .. } = &event {
        traffic.next_height(*height, reactor.peers().count());
    }
    // An event's message usually goes to every peer alike: encode it once.
    let mut encoded: Option<(ConsensusMessage, Bytes)> = None;
    for (peer, m) in reactor.on_our_event(event) {
        let bytes = match &encoded {
            Some((last, bytes)) if *last == m => bytes.clone(),
            _ => {
                let bytes = Bytes::from(m.encode());
                encoded = Some((m.clone(), bytes.clone()));
                bytes
            }
        };
        send_encoded(switch, peer, &m, bytes, traffic);
    }
}

async fn on_inbound(
    reactor: &mut Reactor<NodeId, StoreView>,
    switch: &SwitchHandle,
    inbound: Inbound,
    to_driver: &mpsc::Sender<(NodeId, Input)>,
    traffic: &mut Traffic,
) {
    match inbound {
        Inbound::Peer(PeerEvent::Added(info)) => {
            let hello = reactor.add_peer(info.id);
            send(switch, info.id, &hello, traffic);
        }
        Inbound::Peer(PeerEvent::Removed(id, _)) => reactor.remove_peer(&id),
        Inbound::Message { peer, channel, msg } => {
            traffic.received += 1;
            traffic.received_bytes += msg.len() as u64;
            let decoded = match ConsensusMessage::decode(&msg) {
                Ok(m) if channel_of(&m) == channel => m,
                Ok(m) => {
                    let reason = format!(
                        "consensus message for channel {:#x} sent on {channel:#x}",
                        channel_of(&m)
                    );
                    let _ = switch.stop_peer(peer, reason);
                    return;
                }
                Err(e) => {
                    let _ = switch.stop_peer(peer, format!("invalid consensus message: {e}"));
                    return;
                }
            };
            match reactor.on_message(&peer, decoded) {
                Ok((to_core, replies)) => {
                    for m in replies {
                        send(switch, peer, &m, traffic);
                    }
                    for c in to_core {
                        let input = match c {
                            ToCore::Proposal(p) => Input::Proposal(p),
                            ToCore::Vote(v) => Input::Vote(v),
                            ToCore::Block(block_id, block) => Input::Block { block_id, block },
                        };
                        // The driver is gone only while the node stops.
                        if to_driver.send((peer, input)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = switch.stop_peer(peer, e.to_string());
                }
            }
        }
    }
}
