//! Gossip mode: each simulated node runs the engine's real consensus
//! reactor ([`Reactor`]) and every message between nodes is one of its
//! [`ConsensusMessage`]s, planned per peer from what the peer is believed
//! to hold, instead of the direct broadcast of the default mode.
//!
//! The node's side mirrors the real driver (`engine/src/node/driver.rs`):
//! it tells the reactor what the core accepted ([`OurEvent`]s: a started
//! height with the previous commit, positions, proposals, blocks, votes the
//! core holds, wanted blocks, decisions), feeds what the reactor returns
//! ([`ToCore`]) to the core as inputs, and plans for every peer after each
//! change and on a periodic tick; +2/3 claims go out every couple of
//! seconds. The connections the reactor's peers stand for are modelled in
//! `world` (FIFO links that break and reconnect).
//!
//! Byzantine validators receive through a reactor too (their cores need
//! the messages), but send nothing it plans: only their position (so
//! honest peers serve them) besides their strategy's direct messages; a
//! silent one sends nothing at all.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use engine::consensus::{Consensus, Input};
use engine::gossip::message::ConsensusMessage;
use engine::gossip::reactor::{OurEvent, Reactor, ToCore};
use engine::gossip::teller::Teller;
use engine::gossip::view::Stored;
use engine::types::{Address, BlockId, Height, Part, PartSet, PartSetHeader, Round, Vote};

use super::message::{proposal_summary, vote_summary};

/// How often each node plans for its peers without news (the real
/// reactor's tick).
pub(crate) const TICK_MS: u64 = 20;

/// How often +2/3 claims (VoteSetMaj23) go out (CometBFT's
/// `peerQueryMaj23SleepDuration`).
pub(crate) const MAJ23_MS: u64 = 2_000;

/// How long a vote received from a peer is held back before it is relayed,
/// as in the real node.
const RELAY_DELAY_MS: u64 = 10;

/// A committed height as the block store keeps it.
struct Committed {
    parts: Arc<PartSet>,
    commit: Arc<(i32, Vec<Vote>)>,
    validators: usize,
}

/// The node's committed blocks, shared between the node (which adds them
/// as it decides) and its reactor (which serves lagging peers from them).
/// Persistent: it survives a crash, like the real block store.
#[derive(Clone, Default)]
pub(crate) struct SimStore(Rc<RefCell<BTreeMap<Height, Committed>>>);

impl SimStore {
    /// Records a decided height.
    pub fn add(&self, height: Height, parts: PartSet, commit: (i32, Vec<Vote>), n: usize) {
        self.0.borrow_mut().entry(height).or_insert(Committed {
            parts: Arc::new(parts),
            commit: Arc::new(commit),
            validators: n,
        });
    }
}

impl Stored for SimStore {
    fn base(&self) -> Height {
        self.0.borrow().keys().next().copied().unwrap_or(0)
    }

    fn parts_header(&self, height: Height) -> Option<PartSetHeader> {
        Some(self.0.borrow().get(&height)?.parts.header)
    }

    fn part(&self, height: Height, index: u32) -> Option<Part> {
        self.0.borrow().get(&height)?.parts.get_part(index).cloned()
    }

    fn commit(&self, height: Height) -> Option<Arc<(i32, Vec<Vote>)>> {
        Some(self.0.borrow().get(&height)?.commit.clone())
    }

    fn validator_count(&self, height: Height) -> usize {
        self.0.borrow().get(&height).map_or(0, |c| c.validators)
    }
}

/// What a node's reactor may put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Voice {
    /// Everything it plans (honest nodes).
    All,
    /// Its position only (Byzantine nodes: honest peers then serve them,
    /// while what they send of their own follows their strategy).
    PositionOnly,
    /// Nothing (silent Byzantine nodes).
    Mute,
}

impl Voice {
    fn allows(self, m: &ConsensusMessage) -> bool {
        match self {
            Voice::All => true,
            Voice::PositionOnly => matches!(m, ConsensusMessage::NewRoundStep { .. }),
            Voice::Mute => false,
        }
    }
}

/// One node's gossip: its reactor, and what tells it about the core.
pub(crate) struct Gossip {
    reactor: Reactor<usize, SimStore>,
    /// Outgoing messages pass this filter.
    pub voice: Voice,
    /// Turns what the core accepted into the reactor's events: the very
    /// mapping the node's driver uses.
    teller: Teller,
}

/// Messages for peers: (peer, message).
pub(crate) type Outgoing = Vec<(usize, ConsensusMessage)>;

impl Gossip {
    /// A fresh reactor (at start and after a restart) over `store`.
    pub fn new(store: SimStore, seed: u64, own: Address, voice: Voice) -> Self {
        let mut reactor = Reactor::new(store, seed);
        reactor.set_relay_delay(RELAY_DELAY_MS, Some(own));
        Gossip {
            reactor,
            voice,
            teller: Teller::default(),
        }
    }

    fn allowed(&self, out: Outgoing) -> Outgoing {
        out.into_iter()
            .filter(|(_, m)| self.voice.allows(m))
            .collect()
    }

    /// A connection to `peer` came up: our position goes to it.
    pub fn connect(&mut self, peer: usize) -> Outgoing {
        let hello = self.reactor.add_peer(peer);
        self.allowed(vec![(peer, hello)])
    }

    /// The connection to `peer` broke.
    pub fn disconnect(&mut self, peer: usize) {
        self.reactor.remove_peer(&peer);
    }

    /// Advances the reactor's clock (simulated ms).
    pub fn set_clock(&mut self, now: u64) {
        self.reactor.set_clock(now);
    }

    fn tell(&mut self, event: OurEvent, out: &mut Outgoing) {
        let msgs = self.reactor.on_our_event(event);
        out.extend(self.allowed(msgs));
    }

    /// Everything the core holds at its height (after a WAL replay), as
    /// the node's driver tells it (the shared [`Teller`]).
    pub fn tell_all(&mut self, core: &Consensus, out: &mut Outgoing) {
        for event in self.teller.all(core) {
            self.tell(event, out);
        }
    }

    /// What an input the core accepted changed, as the node's driver tells
    /// it (the shared [`Teller`]).
    pub fn tell_accepted(&mut self, core: &Consensus, input: &Input, out: &mut Outgoing) {
        for event in self.teller.accepted(core, input) {
            self.tell(event, out);
        }
    }

    /// Our own proposal's block: its parts are offered before the proposal
    /// (as the driver does at `Output::Propose`).
    pub fn our_block(&mut self, block: Arc<engine::types::Block>, out: &mut Outgoing) {
        self.tell(OurEvent::Block(block), out);
    }

    /// The height is decided: its block's parts are ours, and peers hear
    /// that we have them.
    pub fn decided(
        &mut self,
        round: Round,
        block: Arc<engine::types::Block>,
        block_id: BlockId,
        out: &mut Outgoing,
    ) {
        self.tell(OurEvent::Block(block), out);
        let round = i32::try_from(round).unwrap_or(i32::MAX);
        self.tell(OurEvent::Decided { round, block_id }, out);
    }

    /// A message from `peer`: the inputs for the core and direct replies.
    /// A misbehaving peer's message is ignored (the real node would drop
    /// the connection; Byzantine peers here send directly, not through
    /// their reactor, so honest peers never misbehave).
    pub fn receive(&mut self, peer: usize, m: ConsensusMessage) -> (Vec<Input>, Outgoing) {
        match self.reactor.on_message(&peer, m) {
            Ok((to_core, replies)) => {
                let inputs = to_core
                    .into_iter()
                    .map(|c| match c {
                        ToCore::Proposal(p) => Input::Proposal(p),
                        ToCore::Vote(v) => Input::Vote(v),
                        ToCore::Block(block_id, block) => Input::Block { block_id, block },
                    })
                    .collect();
                let replies = replies.into_iter().map(|m| (peer, m)).collect();
                (inputs, self.allowed(replies))
            }
            Err(_) => (Vec::new(), Vec::new()),
        }
    }

    /// Plans for every peer what it lacks (nothing for a Byzantine node:
    /// it sends its own messages by its strategy). The simulated links
    /// have no send queue limit, so every planned message is accepted.
    pub fn plan(&mut self) -> Outgoing {
        let mut out = Vec::new();
        if self.voice != Voice::All {
            return out;
        }
        let peers: Vec<usize> = self.reactor.peers().copied().collect();
        for peer in peers {
            self.reactor.plan(&peer, |m| {
                out.push((peer, m.clone()));
                true
            });
        }
        out
    }

    /// Our +2/3 claims for every peer.
    pub fn maj23(&mut self) -> Outgoing {
        if self.voice != Voice::All {
            return Vec::new();
        }
        let peers: Vec<usize> = self.reactor.peers().copied().collect();
        peers
            .into_iter()
            .flat_map(|p| self.reactor.maj23_for(&p).into_iter().map(move |m| (p, m)))
            .collect()
    }
}

/// One-line summary of a consensus message for traces.
pub fn summary(m: &ConsensusMessage, name: &dyn Fn(&Address) -> String) -> String {
    match m {
        ConsensusMessage::NewRoundStep {
            height,
            round,
            step,
            ..
        } => format!("NewRoundStep h{height} r{round} s{step}"),
        ConsensusMessage::NewValidBlock {
            height,
            round,
            is_commit,
            ..
        } => format!("NewValidBlock h{height} r{round} commit={is_commit}"),
        ConsensusMessage::Proposal(p) => proposal_summary(p),
        ConsensusMessage::ProposalPol {
            height, pol_round, ..
        } => format!("ProposalPol h{height} pol r{pol_round}"),
        ConsensusMessage::BlockPart {
            height,
            round,
            part,
        } => format!("BlockPart h{height} r{round} #{}", part.index),
        ConsensusMessage::Vote(v) => vote_summary(v, name),
        ConsensusMessage::HasVote {
            height,
            round,
            kind,
            index,
        } => format!("HasVote h{height} r{round} {kind:?} #{index}"),
        ConsensusMessage::VoteSetMaj23 {
            height,
            round,
            kind,
            ..
        } => format!("VoteSetMaj23 h{height} r{round} {kind:?}"),
        ConsensusMessage::VoteSetBits {
            height,
            round,
            kind,
            ..
        } => format!("VoteSetBits h{height} r{round} {kind:?}"),
    }
}

#[cfg(test)]
mod tests {
    use engine::gossip::parts::PartAssembler;
    use engine::types::ValidatorSet;
    use rand::SeedableRng;

    use super::super::world::World;

    #[test]
    fn a_simulated_block_is_rebuilt_from_its_parts() {
        let key = engine::types::PrivateKey::from_seed([1; 32]);
        let vals = ValidatorSet::new(vec![engine::types::Validator::new(key.public_key(), 1)])
            .expect("set");
        let addr = key.public_key().address();
        let mut world = World::new(
            "c".into(),
            vec![addr],
            vals,
            vec![false],
            vec![false],
            vec![false],
            Default::default(),
        );
        world.full_headers = true;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let block = world.build_block(&mut rng, 1, addr, None, 5, false);
        let id = world.block_id(&block);
        let mut a = PartAssembler::default();
        a.reset(1);
        a.want(id);
        let parts = block.part_set();
        let got = a.add(1, parts.get_part(0).expect("part").clone());
        assert!(matches!(got, Ok(Some((b, _))) if b == id), "{got:?}");
    }
}
