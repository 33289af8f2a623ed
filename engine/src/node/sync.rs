//! The block sync task: CometBFT v0.38's block sync reactor on channel
//! 0x40, wired to the pure pieces of [`crate::blocksync`].
//!
//! It always serves peers (our stored range, and blocks with their extended
//! commits) and keeps every connected peer's latest status. It has two
//! modes:
//!
//! - **consensus** (the driver runs): statuses are asked every second, and
//!   when peers stay more than [`BEHIND_MARGIN`] heights ahead of our last
//!   block for [`BEHIND_FOR`], [`SyncHandle::fallen_behind`] resolves: the
//!   node stops the driver and catches up again. CometBFT never goes back
//!   to block sync (cometbft#3372).
//! - **syncing** (during [`SyncHandle::catch_up`]): a [`BlockPool`] decides
//!   what to ask whom; each verified pair's first block is committed
//!   through [`Shared::commit_block`] in order, until CometBFT's rule says
//!   we are caught up.
//!
//! Every peer fault (undecodable bytes, a block nobody asked for, a pair
//! that fails verification, silence past the pool's timeout) disconnects
//! the peer with the reason. Memory per peer is bounded: one status each,
//! and the pool's window of requested blocks.
//!
//! Blocks are applied inside the task, one per turn of its loop, so
//! requests and answers keep flowing between blocks.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::commit::CommitProof;
use super::{NodeError, Shared};
use crate::blocksync::{
    inspect, verify_pair_after, BlockPool, BlockResponse, MessageKind, PeerFault, PoolConfig,
    ProvenCommit, Status, SyncMessage,
};
use crate::execution::next_height;
use crate::p2p::peer::{Inbound, PeerEvent};
use crate::p2p::{NodeId, BLOCKSYNC_CHANNEL};
use crate::store::{State, Store, StoreError};
use crate::types::{Address, Height};

/// How often every peer is asked for its status. CometBFT asks every 10 s;
/// we ask more often so a node falling behind notices it within seconds.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// How often the pool's requests, timeouts and the caught-up rule are
/// checked besides after every event.
const TICK: Duration = Duration::from_millis(100);
/// Peers must be more than this many heights ahead of our last block for
/// the node to count as fallen behind. The pool's caught-up rule accepts a
/// lag of up to two (block H needs H+1's last commit, and the last one
/// comes from consensus), so a smaller margin would bounce between modes.
pub(super) const BEHIND_MARGIN: Height = 2;
/// How long the lag must last before the node leaves consensus.
pub(super) const BEHIND_FOR: Duration = Duration::from_secs(5);

/// Talks to the block sync task.
pub(super) struct SyncHandle {
    commands: mpsc::Sender<oneshot::Sender<Result<(), NodeError>>>,
    behind: watch::Receiver<bool>,
}

impl SyncHandle {
    /// Syncs blocks from peers and returns once caught up: at least one
    /// peer has told us its status and our last block is at most one below
    /// the highest (CometBFT `IsCaughtUp`), or our own voting power can
    /// block the chain. Returns at once when block sync cannot help: we are
    /// the only validator (as CometBFT's node), or no persistent peer is
    /// configured (nothing to sync from). Fails when committing a synced
    /// block fails (the application or the store). Call it only while no
    /// driver runs: it commits blocks.
    pub(super) async fn catch_up(&self) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(tx)
            .await
            .map_err(|_| NodeError::SyncStopped)?;
        rx.await.map_err(|_| NodeError::SyncStopped)?
    }

    /// Resolves when, since the last [`SyncHandle::catch_up`], peers have
    /// reported heights more than [`BEHIND_MARGIN`] above our last block
    /// for [`BEHIND_FOR`]. Never resolves for a node that catch-up would
    /// not sync (see there). Cancel-safe.
    pub(super) async fn fallen_behind(&self) {
        let mut behind = self.behind.clone();
        if behind.wait_for(|b| *b).await.is_err() {
            // The task is gone: nothing will ever report a lag.
            std::future::pending::<()>().await;
        }
    }
}

/// Starts the block sync task on the block sync channel's queue. It serves
/// peers at once and syncs when asked through the handle.
pub(super) fn spawn(shared: Arc<Shared>, inbound: mpsc::Receiver<Inbound>) -> SyncHandle {
    let (commands, commands_rx) = mpsc::channel(1);
    let (behind_tx, behind) = watch::channel(false);
    let has_persistent_peers = shared
        .home
        .config
        .p2p
        .persistent_peers
        .split(',')
        .any(|p| !p.trim().is_empty());
    let task = Reactor {
        own: shared.validator.0,
        shared,
        has_persistent_peers,
        statuses: BTreeMap::new(),
        mode: Mode::Consensus,
        detector: BehindDetector::new(BEHIND_MARGIN, BEHIND_FOR),
        behind: behind_tx,
    };
    tokio::spawn(task.run(commands_rx, inbound));
    SyncHandle { commands, behind }
}

/// What the node does between a catch-up and a fresh driver, when blocks
/// were synced since our last block was `synced_from`: a recheck of the
/// mempool against the new state (which reports the remaining transactions
/// available). The WAL's marker for the new last block is the driver's to
/// write, as for any block it did not decide itself.
pub(super) async fn after_catch_up(shared: &Shared, synced_from: Height) -> Result<(), NodeError> {
    if shared.with_state(|s| s.last_block_height) > synced_from {
        shared.recheck_mempool().await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- pure rules

/// Why a catch-up has nothing to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NoSync {
    /// We are the only validator: nobody else can make blocks (CometBFT's
    /// node skips block sync then).
    OnlyValidator,
    /// No persistent peer is configured and no peer has told us its
    /// status: nothing to sync from (a peer that connects later counts).
    NoPeers,
}

/// Whether block sync can help this node at all, and if not why.
fn sync_skipped(state: &State, own: &Address, may_have_peers: bool) -> Option<NoSync> {
    let vals = &state.validators;
    if vals.len() == 1 && vals.get_by_index(0).is_some_and(|v| v.address == *own) {
        Some(NoSync::OnlyValidator)
    } else if !may_have_peers {
        Some(NoSync::NoPeers)
    } else {
        None
    }
}

/// CometBFT `localNodeBlocksTheChain`: our voting power is at least a
/// third of the total, so the chain cannot move on without us.
fn local_node_blocks_the_chain(state: &State, own: &Address) -> bool {
    state
        .validators
        .get_by_address(own)
        .is_some_and(|(_, v)| v.voting_power >= state.validators.total_voting_power() / 3)
}

/// CometBFT's guard before switching to consensus: with vote extensions
/// enabled at our last block, the next proposer needs its extended commit;
/// `has_extended_commit` tells whether the store holds it.
fn missing_extended_commit(state: &State, has_extended_commit: impl FnOnce() -> bool) -> bool {
    state.last_block_height > 0
        && state
            .consensus_params
            .vote_extensions_enabled(state.last_block_height)
        && !has_extended_commit()
}

/// Notices a lag that lasts: peers more than `margin` heights ahead of our
/// last block at every observation for `sustain`, while either our height
/// makes no progress (consensus is stuck: only block sync can help), or at
/// least two peers report us more than [`FAR_BEHIND`] heights behind (block
/// sync is far faster than gossip's catch-up then). One peer claiming a
/// height it does not have cannot take a validator whose consensus
/// progresses out of consensus.
#[derive(Clone, Debug)]
pub(super) struct BehindDetector {
    margin: Height,
    sustain: Duration,
    /// The first observation of the current lag.
    since: Option<Instant>,
    /// Our height at the last change seen during the lag, and when.
    progress: Option<(Height, Instant)>,
}

/// Heights behind at which two peers' word is enough to go back to block
/// sync even while our consensus progresses.
pub(super) const FAR_BEHIND: Height = 100;

impl BehindDetector {
    /// A detector with nothing observed yet.
    pub(super) fn new(margin: Height, sustain: Duration) -> Self {
        BehindDetector {
            margin,
            sustain,
            since: None,
            progress: None,
        }
    }

    /// One observation: our last block, the highest height a peer reports
    /// (none without peers), and how many peers report more than
    /// [`FAR_BEHIND`] above ours. True once the lag has lasted `sustain`
    /// and either our height stood still as long, or `far_peers >= 2`; any
    /// observation without a lag starts over.
    pub(super) fn observe(
        &mut self,
        ours: Height,
        best_peer: Option<Height>,
        far_peers: usize,
        now: Instant,
    ) -> bool {
        match best_peer {
            Some(peer) if peer > ours.saturating_add(self.margin) => {
                let since = *self.since.get_or_insert(now);
                let stalled_since = match self.progress {
                    Some((h, at)) if h == ours => at,
                    _ => {
                        self.progress = Some((ours, now));
                        now
                    }
                };
                let lasted = |t: Instant| now.saturating_duration_since(t) >= self.sustain;
                lasted(since) && (lasted(stalled_since) || far_peers >= 2)
            }
            _ => {
                self.reset();
                false
            }
        }
    }

    /// Forgets the current lag.
    pub(super) fn reset(&mut self) {
        self.since = None;
        self.progress = None;
    }
}

/// How many peers (holding our next block, as the pool counts them) report
/// a height more than [`FAR_BEHIND`] above `ours`.
fn far_peers<'a>(statuses: impl Iterator<Item = &'a Status>, ours: Height) -> usize {
    statuses
        .filter(|s| s.base() <= ours.saturating_add(1))
        .filter(|s| s.height() > ours.saturating_add(FAR_BEHIND))
        .count()
}

/// The highest height reported by a peer whose base is at most our next
/// height (the pool's `max_peer_height` for a pool starting there).
fn best_peer_height<'a>(
    statuses: impl Iterator<Item = &'a Status>,
    ours: Height,
) -> Option<Height> {
    statuses
        .filter(|s| s.base() <= ours.saturating_add(1))
        .map(Status::height)
        .max()
}

/// Whether a `BlockResponse` from a peer may be expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Not syncing: any block is at most a late answer to a request of an
    /// earlier sync, dropped undecoded (CometBFT once its pool stopped).
    NotSyncing,
    /// Syncing, and the peer owes us a block.
    Pending,
    /// Syncing, and we asked the peer for nothing.
    NotPending,
}

/// Admits a block sync message from a peer: the size and signature-count
/// limits and a block's solicitation before decoding (CometBFT
/// `FilterMsgBytes`), then decoding and validation. `Ok(None)`: drop it
/// silently; `Err`: the peer's fault, disconnect it with that reason.
fn admit(bytes: &[u8], expect: Expect) -> Result<Option<SyncMessage>, String> {
    let kind = inspect(bytes).map_err(|e| e.to_string())?;
    if kind == MessageKind::BlockResponse {
        match expect {
            Expect::NotSyncing => return Ok(None),
            Expect::NotPending => return Err("unsolicited block response".into()),
            Expect::Pending => {}
        }
    }
    SyncMessage::decode(bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The store's range as a status.
fn store_status(store: &Store) -> Result<Status, StoreError> {
    let height = store.height()?;
    let base = store.base()?.min(height);
    // base <= height by the line above, which is all Status::new requires.
    Ok(Status::new(base, height).expect("base is at most height"))
}

/// Our answer to a peer's request, from the store (CometBFT
/// `respondToPeer` and the status answer). `None`: nothing to send — not a
/// request, or a stored block lacking the extended commit its height
/// requires (CometBFT sends nothing then; the requester asks elsewhere).
fn answer(
    store: &Store,
    extensions_enabled: impl Fn(Height) -> bool,
    request: &SyncMessage,
) -> Result<Option<SyncMessage>, StoreError> {
    match request {
        SyncMessage::StatusRequest => Ok(Some(SyncMessage::StatusResponse(store_status(store)?))),
        SyncMessage::BlockRequest(height) => {
            let Some(block) = store.load_block(*height)? else {
                return Ok(Some(SyncMessage::NoBlockResponse(*height)));
            };
            let ext_commit = if extensions_enabled(*height) {
                match store.load_block_extended_commit(*height)? {
                    Some(ec) => Some(ec),
                    None => {
                        tracing::error!(
                            height,
                            "stored block without the extended commit its height requires"
                        );
                        return Ok(None);
                    }
                }
            } else {
                None
            };
            Ok(Some(SyncMessage::BlockResponse(Box::new(BlockResponse {
                block,
                ext_commit,
            }))))
        }
        SyncMessage::StatusResponse(_)
        | SyncMessage::BlockResponse(_)
        | SyncMessage::NoBlockResponse(_) => Ok(None),
    }
}

// ---------------------------------------------------------------- the task

enum Mode {
    /// The driver runs (or the node waits for the application): serve
    /// peers and watch for a lag.
    Consensus,
    /// Catching up.
    Syncing(Box<Syncing>),
}

struct Syncing {
    pool: BlockPool,
    /// Told the outcome.
    waiter: oneshot::Sender<Result<(), NodeError>>,
    /// The last applied block's proof, which the next block carries as its
    /// last commit.
    proven: Option<ProvenCommit>,
    /// Blocks committed in this catch-up.
    synced: u64,
    started: Instant,
}

struct Reactor {
    shared: Arc<Shared>,
    own: Address,
    has_persistent_peers: bool,
    /// Each connected peer's latest status.
    statuses: BTreeMap<NodeId, Status>,
    mode: Mode,
    detector: BehindDetector,
    behind: watch::Sender<bool>,
}

impl Reactor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<oneshot::Sender<Result<(), NodeError>>>,
        mut inbound: mpsc::Receiver<Inbound>,
    ) {
        let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut inbound_open = true;
        loop {
            let block_ready = matches!(&self.mode, Mode::Syncing(s) if s.pool.peek_two().is_some());
            tokio::select! {
                waiter = commands.recv() => match waiter {
                    Some(waiter) => self.start_catch_up(waiter),
                    // The node is gone.
                    None => return,
                },
                m = inbound.recv(), if inbound_open => match m {
                    Some(m) => self.on_inbound(m),
                    // The switch stopped; keep answering catch-up calls.
                    None => inbound_open = false,
                },
                _ = status_tick.tick() => {
                    let msg = Bytes::from(SyncMessage::StatusRequest.into_bytes());
                    self.shared.switch.broadcast(BLOCKSYNC_CHANNEL, msg);
                }
                _ = tick.tick() => self.progress(Instant::now()),
                _ = std::future::ready(()), if block_ready => self.apply_next().await,
            }
        }
    }

    fn send(&self, peer: NodeId, msg: SyncMessage) -> bool {
        self.shared
            .switch
            .try_send(peer, BLOCKSYNC_CHANNEL, Bytes::from(msg.into_bytes()))
    }

    fn stop_peer(&self, peer: NodeId, reason: String) {
        tracing::warn!(%peer, %reason, "disconnecting a block sync peer");
        // An error means the peer is already gone.
        let _ = self
            .shared
            .switch
            .stop_peer(peer, format!("block sync: {reason}"));
    }

    /// Whether there is anyone to sync from: configured persistent peers
    /// (that we wait for), or any peer, inbound ones included, that told us
    /// its status.
    fn may_have_peers(&self) -> bool {
        self.has_persistent_peers || !self.statuses.is_empty()
    }

    fn start_catch_up(&mut self, waiter: oneshot::Sender<Result<(), NodeError>>) {
        self.behind.send_replace(false);
        self.detector.reset();
        let state = self.shared.state();
        if let Some(why) = sync_skipped(&state, &self.own, self.may_have_peers()) {
            tracing::info!(
                ?why,
                height = state.last_block_height,
                "no block sync needed"
            );
            let _ = waiter.send(Ok(()));
            return;
        }
        let now = Instant::now();
        let mut pool = BlockPool::new(next_height(&state), PoolConfig::default());
        for (peer, s) in &self.statuses {
            // A fresh pool refuses none: statuses are valid by
            // construction and nobody is banned yet.
            let _ = pool.on_status(*peer, s.base(), s.height(), now);
        }
        tracing::info!(
            height = state.last_block_height,
            max_peer_height = pool.max_peer_height(),
            peers = pool.num_peers(),
            "block sync: catching up"
        );
        self.shared.catching_up.store(true, Ordering::Relaxed);
        self.mode = Mode::Syncing(Box::new(Syncing {
            pool,
            waiter,
            proven: None,
            synced: 0,
            started: now,
        }));
        let msg = Bytes::from(SyncMessage::StatusRequest.into_bytes());
        self.shared.switch.broadcast(BLOCKSYNC_CHANNEL, msg);
        self.progress(now);
    }

    /// Ends the catch-up with `result`, back to consensus mode.
    fn finish(&mut self, result: Result<(), NodeError>) {
        let Mode::Syncing(s) = std::mem::replace(&mut self.mode, Mode::Consensus) else {
            return;
        };
        self.shared.catching_up.store(false, Ordering::Relaxed);
        self.detector.reset();
        match &result {
            Ok(()) => tracing::info!(
                height = self.shared.with_state(|st| st.last_block_height),
                synced = s.synced,
                max_peer_height = s.pool.max_peer_height(),
                secs = s.started.elapsed().as_secs_f64(),
                "block sync: caught up, switching to consensus"
            ),
            Err(e) => tracing::error!(error = %e, synced = s.synced, "block sync stopped"),
        }
        let _ = s.waiter.send(result);
    }

    /// After any event: in sync mode, drop silent peers, send the requests
    /// the pool wants and check whether we are caught up; in consensus
    /// mode, check for a lag.
    fn progress(&mut self, now: Instant) {
        let Mode::Syncing(s) = &mut self.mode else {
            self.watch_lag(now);
            return;
        };
        let timed_out = s.pool.timeouts(now);
        let requests = s.pool.next_requests(now);
        let pool_caught_up = s.pool.is_caught_up();
        for peer in timed_out {
            self.stop_peer(peer, "no block delivered in time".into());
        }
        for (peer, height) in requests {
            if !self.send(peer, SyncMessage::BlockRequest(height)) {
                // The pool retries the height after its retry period.
                tracing::debug!(%peer, height, "block request dropped: queue full or peer gone");
            }
        }
        let store = &self.shared.store;
        let done = self.shared.with_state(|st| {
            (pool_caught_up || local_node_blocks_the_chain(st, &self.own))
                && !missing_extended_commit(st, || {
                    matches!(
                        store.load_block_extended_commit(st.last_block_height),
                        Ok(Some(_))
                    )
                })
        });
        if done {
            self.finish(Ok(()));
        }
    }

    /// Consensus mode: reports a lasting lag through `behind`.
    fn watch_lag(&mut self, now: Instant) {
        if *self.behind.borrow() {
            return;
        }
        let may_have_peers = self.may_have_peers();
        let (ours, useful) = self.shared.with_state(|s| {
            (
                s.last_block_height,
                sync_skipped(s, &self.own, may_have_peers).is_none()
                    && !local_node_blocks_the_chain(s, &self.own),
            )
        });
        if !useful {
            self.detector.reset();
            return;
        }
        // As the pool counts them: only peers that still hold our next
        // block can help, so only they can make us fall behind (else a
        // catch-up would end at once, and the lag fire again).
        let best = best_peer_height(self.statuses.values(), ours);
        let far = far_peers(self.statuses.values(), ours);
        if self.detector.observe(ours, best, far, now) {
            tracing::info!(
                height = ours,
                peer_height = best,
                "fallen behind the peers: back to block sync"
            );
            self.behind.send_replace(true);
        }
    }

    fn on_inbound(&mut self, inbound: Inbound) {
        let now = Instant::now();
        match inbound {
            Inbound::Peer(PeerEvent::Added(info)) => {
                self.send(info.id, SyncMessage::StatusRequest);
                match store_status(&self.shared.store) {
                    Ok(s) => {
                        self.send(info.id, SyncMessage::StatusResponse(s));
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the store's range"),
                }
            }
            Inbound::Peer(PeerEvent::Removed(id, _)) => {
                self.statuses.remove(&id);
                if let Mode::Syncing(s) = &mut self.mode {
                    s.pool.remove_peer(&id);
                }
                self.progress(now);
            }
            Inbound::Message { peer, msg, .. } => {
                let expect = match &self.mode {
                    Mode::Consensus => Expect::NotSyncing,
                    Mode::Syncing(s) if s.pool.has_pending_request_from(&peer) => Expect::Pending,
                    Mode::Syncing(_) => Expect::NotPending,
                };
                match admit(&msg, expect) {
                    Err(reason) => self.stop_peer(peer, reason),
                    Ok(None) => {}
                    Ok(Some(m)) => self.on_message(peer, m, now),
                }
            }
        }
    }

    fn on_message(&mut self, peer: NodeId, msg: SyncMessage, now: Instant) {
        match msg {
            SyncMessage::StatusRequest | SyncMessage::BlockRequest(_) => {
                let enabled = |h| self.shared.vote_extensions_enabled(h);
                match answer(&self.shared.store, enabled, &msg) {
                    Ok(Some(reply)) => {
                        if !self.send(peer, reply) {
                            tracing::debug!(%peer, "block sync answer dropped: queue full");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot answer a block sync request"),
                }
                return;
            }
            SyncMessage::StatusResponse(status) => {
                self.statuses.insert(peer, status);
                if let Mode::Syncing(s) = &mut self.mode {
                    match s.pool.on_status(peer, status.base(), status.height(), now) {
                        // CometBFT ignores a banned peer's statuses.
                        Ok(()) | Err(PeerFault::Banned) => {}
                        Err(fault) => self.stop_peer(peer, fault.to_string()),
                    }
                }
            }
            SyncMessage::BlockResponse(r) => {
                if let Mode::Syncing(s) = &mut self.mode {
                    let BlockResponse { block, ext_commit } = *r;
                    if let Err(fault) = s.pool.on_block(peer, block, ext_commit, now) {
                        self.stop_peer(peer, fault.to_string());
                    }
                }
            }
            SyncMessage::NoBlockResponse(height) => {
                // A block inside the range the peer said it stores: it lied
                // about its range (one way to keep a node syncing forever).
                let claimed = self
                    .statuses
                    .get(&peer)
                    .filter(|st| (st.base()..=st.height()).contains(&height))
                    .map(|st| (st.base(), st.height()));
                if let Mode::Syncing(s) = &mut self.mode {
                    s.pool.on_no_block(peer, height, now);
                    if let Some((base, top)) = claimed {
                        self.stop_peer(
                            peer,
                            format!("block sync: no block {height}, though it reported storing {base}..={top}"),
                        );
                    }
                }
            }
        }
        self.progress(now);
    }

    /// Verifies the pool's next pair and commits its first block, or
    /// blames both senders.
    async fn apply_next(&mut self) {
        let Mode::Syncing(s) = &mut self.mode else {
            return;
        };
        let state = self.shared.state();
        let Some(two) = s.pool.peek_two() else {
            return;
        };
        let height = two.first.header.height;
        let verdict = verify_pair_after(
            &state,
            two.first,
            two.second,
            two.ext_commit,
            s.proven.as_ref(),
        );
        // The seen commit of `first` is `second`'s last commit, present
        // once the pair verified.
        let seen = two.second.last_commit.clone();
        let verified = match verdict {
            Ok(v) => v,
            Err(e) => {
                let now = Instant::now();
                let faulty = s.pool.invalid(height, now);
                for peer in faulty {
                    self.stop_peer(
                        peer,
                        format!("blocks {height} and {} fail verification: {e}", height + 1),
                    );
                }
                self.progress(now);
                return;
            }
        };
        let Some((block, ext_commit)) = s.pool.pop_verified() else {
            return;
        };
        let proof = match (&ext_commit, &seen) {
            (Some(ec), _) => CommitProof::Extended(ec),
            (None, Some(c)) => CommitProof::Plain(c),
            (None, None) => return,
        };
        match self
            .shared
            .commit_block(&block, &verified.block_id, proof)
            .await
        {
            Ok(_) => {
                s.proven = Some(verified.proof);
                s.synced += 1;
                if s.synced % 100 == 0 {
                    let secs = s.started.elapsed().as_secs_f64();
                    tracing::info!(
                        height,
                        max_peer_height = s.pool.max_peer_height(),
                        blocks_per_sec = s.synced as f64 / secs.max(1e-3),
                        "block sync progress"
                    );
                } else {
                    tracing::debug!(height, "block sync: committed block");
                }
                self.progress(Instant::now());
            }
            Err(e) => self.finish(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests;
