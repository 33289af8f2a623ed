//! The consensus reactor's logic: what peers told us, what we tell them,
//! and which of their messages become consensus inputs. Pure; the async
//! task around it moves bytes between the switch and the driver.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::bits::BitArray;
use super::message::ConsensusMessage;
use super::parts::PartAssembler;
use super::peer::PeerRoundState;
use super::plan::{plan_data, plan_maj23, plan_votes, Ours};
use super::view::{OurView, Stored};
use crate::types::{Block, BlockId, Height, PartSet, Proposal, Vote, VoteType};

/// CometBFT's consensus channels (named by the p2p layer).
pub mod channel {
    pub use crate::p2p::{
        DATA_CHANNEL as DATA, STATE_CHANNEL as STATE, VOTE_CHANNEL as VOTE,
        VOTE_SET_BITS_CHANNEL as VOTE_SET_BITS,
    };
}

/// The channel each message travels on.
pub fn channel_of(m: &ConsensusMessage) -> u8 {
    match m {
        ConsensusMessage::NewRoundStep { .. }
        | ConsensusMessage::NewValidBlock { .. }
        | ConsensusMessage::HasVote { .. }
        | ConsensusMessage::VoteSetMaj23 { .. } => channel::STATE,
        ConsensusMessage::Proposal(_)
        | ConsensusMessage::ProposalPol { .. }
        | ConsensusMessage::BlockPart { .. } => channel::DATA,
        ConsensusMessage::Vote(_) => channel::VOTE,
        ConsensusMessage::VoteSetBits { .. } => channel::VOTE_SET_BITS,
    }
}

/// Something a peer sent that the consensus core should see.
#[derive(Clone, Debug, PartialEq)]
pub enum ToCore {
    /// A proposal.
    Proposal(Proposal),
    /// A vote.
    Vote(Vote),
    /// A complete block the core wanted.
    Block(BlockId, Arc<Block>),
}

/// What the driver tells gossip about our side.
#[derive(Clone, Debug)]
pub enum OurEvent {
    /// A new height began: the validators' powers by index, and the
    /// previous height's commit (round and precommits; `None` reads it
    /// from the store).
    HeightStarted {
        /// The height.
        height: Height,
        /// Voting power by validator index.
        powers: Vec<i64>,
        /// The commit of `height - 1`.
        last_commit: Option<(i32, Vec<Vote>)>,
    },
    /// We moved to (round, wire step).
    Position {
        /// Round.
        round: i32,
        /// Wire step.
        step: u8,
    },
    /// The core accepted a proposal (ours or a peer's).
    Proposal(Proposal),
    /// We hold all of a block of this height (our proposal's, or one we
    /// assembled or decided): offer its parts.
    Block(Arc<Block>),
    /// The core accepted a vote.
    Vote(Vote),
    /// The blocks the core wants and lacks (from `wanted_blocks`).
    Wanted(Vec<BlockId>),
    /// The height is decided with `block`: tell peers we have its parts.
    Decided {
        /// The round of the decision.
        round: i32,
        /// The block id.
        block_id: BlockId,
    },
}

/// A peer broke the protocol badly enough to be dropped.
#[derive(Debug, thiserror::Error)]
#[error("peer misbehaved: {0}")]
pub struct Misbehaviour(pub String);

/// The reactor's state: our view, every peer's round state, and the blocks
/// being assembled.
pub struct Reactor<P, S> {
    view: OurView<S>,
    peers: BTreeMap<P, PeerRoundState>,
    assembler: PartAssembler,
    rng: ChaCha8Rng,
    last_commit_round: i32,
    /// The block each peer's latest proposal named, while collected only
    /// provisionally: one per peer, so one peer's junk proposals can evict
    /// only its own.
    provisional: BTreeMap<P, BlockId>,
}

impl<P: Ord + Clone, S: Stored> Reactor<P, S> {
    /// A reactor over `store`; `seed` makes its random picks reproducible.
    pub fn new(store: S, seed: u64) -> Self {
        Reactor {
            view: OurView::new(store),
            peers: BTreeMap::new(),
            assembler: PartAssembler::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            last_commit_round: -1,
            provisional: BTreeMap::new(),
        }
    }

    /// See [`OurView::set_relay_delay`].
    pub fn set_relay_delay(&mut self, delay_ms: u64, own: Option<crate::types::Address>) {
        self.view.set_relay_delay(delay_ms, own);
    }

    /// Advances the clock the relay delay is measured on (milliseconds).
    pub fn set_clock(&mut self, now_ms: u64) {
        self.view.set_clock(now_ms);
    }

    /// Our view (for tests and metrics).
    pub fn view(&self) -> &OurView<S> {
        &self.view
    }

    /// A peer's round state, as we believe it.
    pub fn peer(&self, id: &P) -> Option<&PeerRoundState> {
        self.peers.get(id)
    }

    /// The peers we track.
    pub fn peers(&self) -> impl Iterator<Item = &P> {
        self.peers.keys()
    }

    /// A peer connected: returns our position to send it.
    pub fn add_peer(&mut self, id: P) -> ConsensusMessage {
        self.peers.insert(id, PeerRoundState::default());
        self.our_step()
    }

    /// A peer disconnected.
    pub fn remove_peer(&mut self, id: &P) {
        self.peers.remove(id);
        if let Some(old) = self.provisional.remove(id) {
            self.forget_provisional(old);
        }
    }

    /// Stops collecting `id` provisionally unless another peer's latest
    /// proposal still names it.
    fn forget_provisional(&mut self, id: BlockId) {
        if !self.provisional.values().any(|v| *v == id) {
            self.assembler.drop_provisional(&id);
        }
    }

    fn our_step(&self) -> ConsensusMessage {
        let (height, round, step) = self.view.position();
        ConsensusMessage::NewRoundStep {
            height,
            round: round.max(0),
            step: step.max(super::peer::step::NEW_HEIGHT),
            seconds_since_start: 0,
            last_commit_round: self.last_commit_round,
        }
    }

    /// Applies an event of ours; returns the messages to broadcast, each
    /// with the peers it goes to.
    pub fn on_our_event(&mut self, event: OurEvent) -> Vec<(P, ConsensusMessage)> {
        let everyone = |r: &Self, m: ConsensusMessage| -> Vec<(P, ConsensusMessage)> {
            r.peers.keys().map(|p| (p.clone(), m.clone())).collect()
        };
        match event {
            OurEvent::HeightStarted {
                height,
                powers,
                last_commit,
            } => {
                // Without one given, the previous height's commit is read
                // from the store (saved before the height started).
                let last_commit = last_commit.or_else(|| {
                    let previous = height.checked_sub(1).filter(|h| *h > 0)?;
                    self.view.store().commit(previous).map(|c| (*c).clone())
                });
                self.last_commit_round = last_commit.as_ref().map_or(-1, |(r, _)| *r);
                self.view.start_height(height, powers, last_commit);
                self.assembler.reset(height);
                self.provisional.clear();
                everyone(self, self.our_step())
            }
            OurEvent::Position { round, step } => {
                self.view.set_position(round, step);
                everyone(self, self.our_step())
            }
            OurEvent::Proposal(p) => {
                let header = p.block_id.part_set_header;
                let offered = self.view.parts().map(|(h, _)| h);
                self.view.add_proposal(p);
                if offered != Some(header) {
                    self.view.set_parts(PartSet::from_header(header));
                }
                vec![]
            }
            OurEvent::Block(block) => {
                self.view.set_parts(block.part_set());
                vec![]
            }
            OurEvent::Vote(v) => {
                let (height, round, kind) = (v.height, v.round as i32, v.vote_type);
                let index = v.validator_index;
                let has = ConsensusMessage::HasVote {
                    height,
                    round,
                    kind,
                    index,
                };
                self.view.add_vote(v);
                // Only peers at that height can use it, and not those known
                // to have it (the one that sent it to us, for one).
                self.peers
                    .iter()
                    .filter(|(_, s)| s.height == height)
                    .filter(|(_, s)| {
                        !s.vote_bits(height, round, kind)
                            .is_some_and(|b| b.get(index as usize))
                    })
                    .map(|(p, _)| (p.clone(), has.clone()))
                    .collect()
            }
            OurEvent::Wanted(ids) => {
                self.assembler.retain(&ids);
                for id in ids {
                    self.assembler.want(id);
                }
                vec![]
            }
            OurEvent::Decided { round, block_id } => {
                let (height, _, _) = self.view.position();
                let Some((header, parts)) = self.view.parts() else {
                    return vec![];
                };
                if header != block_id.part_set_header {
                    return vec![];
                }
                everyone(
                    self,
                    ConsensusMessage::NewValidBlock {
                        height,
                        round,
                        parts_header: header,
                        parts,
                        is_commit: true,
                    },
                )
            }
        }
    }

    /// Applies a message from `peer`: updates what we know of it, and
    /// returns what the core should see and any direct reply.
    pub fn on_message(
        &mut self,
        peer: &P,
        msg: ConsensusMessage,
    ) -> Result<(Vec<ToCore>, Vec<ConsensusMessage>), Misbehaviour> {
        let Some(state) = self.peers.get_mut(peer) else {
            return Ok((vec![], vec![]));
        };
        let mut to_core = vec![];
        let mut reply = vec![];
        match msg {
            ConsensusMessage::NewRoundStep {
                height,
                round,
                step,
                last_commit_round,
                ..
            } => state.apply_new_round_step(height, round, step, last_commit_round),
            ConsensusMessage::NewValidBlock {
                height,
                round,
                parts_header,
                parts,
                is_commit,
            } => state.apply_new_valid_block(height, round, parts_header, parts, is_commit),
            ConsensusMessage::Proposal(p) => {
                let pol = p.pol_round.map_or(-1, |r| r as i32);
                state.set_has_proposal(p.height, p.round as i32, p.block_id.part_set_header, pol);
                // Its parts follow it; collect them while the core checks
                // it, if it is for our round or the next (honest peers send
                // a proposal for the round we are in).
                let (height, round, _) = self.view.position();
                let near = (round..=round.saturating_add(1)).contains(&(p.round as i32));
                if p.height == height && near {
                    if let Some(old) = self.provisional.insert(peer.clone(), p.block_id) {
                        self.forget_provisional(old);
                    }
                    self.assembler.want_provisionally(p.block_id);
                }
                to_core.push(ToCore::Proposal(p));
            }
            ConsensusMessage::ProposalPol {
                height,
                pol_round,
                pol,
            } => state.apply_proposal_pol(height, pol_round, pol),
            ConsensusMessage::BlockPart {
                height,
                round,
                part,
            } => {
                state.set_has_part(height, round, part.index as usize);
                let (ours, _, _) = self.view.position();
                if height == ours {
                    // Relay what we collect for the block we offer.
                    if let Some(set) = self.view.parts_mut() {
                        let _ = set.add_part(part.clone());
                    }
                    if let Ok(Some((id, block))) = self.assembler.add(height, part) {
                        to_core.push(ToCore::Block(id, block));
                    }
                }
            }
            ConsensusMessage::Vote(v) => {
                let n = self.view.validator_count(v.height);
                state.ensure_vote_bits(v.height, n);
                state.set_has_vote(
                    v.height,
                    v.round as i32,
                    v.vote_type,
                    v.validator_index as usize,
                );
                to_core.push(ToCore::Vote(v));
            }
            ConsensusMessage::HasVote {
                height,
                round,
                kind,
                index,
            } => {
                if state.height == height {
                    state.set_has_vote(height, round, kind, index as usize);
                }
            }
            ConsensusMessage::VoteSetMaj23 {
                height,
                round,
                kind,
                block_id,
            } => {
                let (ours, _, _) = self.view.position();
                if height == ours {
                    reply.push(ConsensusMessage::VoteSetBits {
                        height,
                        round,
                        kind,
                        block_id,
                        votes: self.votes_for(height, round, kind, block_id),
                    });
                }
            }
            ConsensusMessage::VoteSetBits {
                height,
                round,
                kind,
                block_id,
                votes,
            } => {
                let (ours, _, _) = self.view.position();
                let mine = (height == ours).then(|| self.votes_for(height, round, kind, block_id));
                if let Some(state) = self.peers.get_mut(peer) {
                    state.apply_vote_set_bits(height, round, kind, &votes, mine.as_ref());
                }
            }
        }
        Ok((to_core, reply))
    }

    /// Which validators' votes for `value` we hold at (height, round, kind).
    fn votes_for(
        &self,
        height: Height,
        round: i32,
        kind: VoteType,
        value: Option<BlockId>,
    ) -> BitArray {
        let n = self.view.validator_count(height);
        let mut out = BitArray::new(n);
        if let Some((have, _)) = self.view.vote_bits(height, round, kind) {
            for i in have.ones() {
                if self
                    .view
                    .vote(height, round, kind, i as u32)
                    .is_some_and(|v| v.block_id == value)
                {
                    out.set(i, true);
                }
            }
        }
        out
    }

    /// Plans data and votes for `peer`, offering each message to `send`
    /// (which returns false when the peer's queue is full) until nothing is
    /// left or a send fails. A refused message is not marked as the peer's.
    pub fn plan(&mut self, peer: &P, mut send: impl FnMut(&ConsensusMessage) -> bool) {
        let Some(state) = self.peers.get(peer) else {
            return;
        };
        let mut state = state.clone();
        loop {
            let mut trial = state.clone();
            let mut msgs = plan_data(&self.view, &mut trial, &mut self.rng);
            if msgs.is_empty() {
                msgs.extend(plan_votes(&self.view, &mut trial, &mut self.rng));
            }
            if msgs.is_empty() || !msgs.iter().all(&mut send) {
                break;
            }
            state = trial;
        }
        self.peers.insert(peer.clone(), state);
    }

    /// Our +2/3 claims for `peer` (send every couple of seconds).
    pub fn maj23_for(&self, peer: &P) -> Vec<ConsensusMessage> {
        self.peers
            .get(peer)
            .map(|s| plan_maj23(&self.view, s))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::execution;
    use crate::genesis::GenesisDoc;
    use crate::gossip::peer::step;
    use crate::types::{Address, Part, PartSetHeader, PrivateKey, Signature, Time};

    struct NoStore;

    impl Stored for NoStore {
        fn base(&self) -> Height {
            1
        }
        fn parts_header(&self, _: Height) -> Option<PartSetHeader> {
            None
        }
        fn part(&self, _: Height, _: u32) -> Option<Part> {
            None
        }
        fn commit(&self, _: Height) -> Option<Arc<(i32, Vec<Vote>)>> {
            None
        }
        fn validator_count(&self, _: Height) -> usize {
            4
        }
    }

    fn block() -> Arc<Block> {
        let key = PrivateKey::from_seed([3; 32]);
        let genesis = GenesisDoc::single_validator("gossip", key.public_key(), Time::GO_ZERO);
        let state = execution::genesis_state(&genesis).expect("state");
        let txs = (0..30).map(|i| vec![i as u8; 10_000]).collect();
        let time = execution::block_time(&state, None);
        Arc::new(execution::make_block(
            &state,
            1,
            txs,
            None,
            vec![],
            key.public_key().address(),
            time,
        ))
    }

    fn vote(kind: VoteType, i: u32, id: BlockId) -> Vote {
        Vote {
            vote_type: kind,
            height: 1,
            round: 0,
            block_id: Some(id),
            timestamp: Time::GO_ZERO,
            validator_address: Address([i as u8; 20]),
            validator_index: i,
            signature: Signature([0; 64]),
            extension: vec![],
            extension_signature: vec![],
        }
    }

    type R = Reactor<u8, NoStore>;

    /// Runs gossip between two reactors until neither has anything to
    /// send; what reaches B's core is fed back as its driver would.
    fn pump(a: &mut R, b: &mut R) -> (Vec<ToCore>, usize) {
        let mut wire: VecDeque<(u8, u8, ConsensusMessage)> = VecDeque::new();
        let mut got = vec![];
        // Each turn delivers one message, so the turn counts them.
        for sent in 0..10_000 {
            for (me, r, other) in [(0u8, &mut *a, 1u8), (1u8, &mut *b, 0u8)] {
                r.plan(&other, |m| {
                    wire.push_back((me, other, m.clone()));
                    true
                });
            }
            let Some((from, to, msg)) = wire.pop_front() else {
                return (got, sent);
            };
            let r = if to == 0 { &mut *a } else { &mut *b };
            let (core, replies) = r.on_message(&from, msg).expect("well-behaved");
            for m in replies {
                wire.push_back((to, from, m));
            }
            if to == 1 {
                for c in core {
                    let events = match &c {
                        ToCore::Proposal(p) => vec![
                            OurEvent::Proposal(p.clone()),
                            OurEvent::Wanted(vec![p.block_id]),
                        ],
                        ToCore::Vote(v) => vec![OurEvent::Vote(v.clone())],
                        ToCore::Block(_, blk) => vec![OurEvent::Block(blk.clone())],
                    };
                    for e in events {
                        for (p, m) in b.on_our_event(e) {
                            wire.push_back((1, p, m));
                        }
                    }
                    got.push(c);
                }
            }
        }
        panic!("gossip did not settle");
    }

    #[test]
    fn a_peer_gets_the_proposal_the_block_and_every_vote_exactly_once() {
        let blk = block();
        let id = blk.block_id();
        assert!(id.part_set_header.total >= 5, "a multi-part block");
        let proposal = Proposal {
            height: 1,
            round: 0,
            pol_round: None,
            block_id: id,
            timestamp: Time::GO_ZERO,
            signature: Signature([0; 64]),
        };
        let mut a: R = Reactor::new(NoStore, 1);
        let mut b: R = Reactor::new(NoStore, 2);
        for r in [&mut a, &mut b] {
            r.on_our_event(OurEvent::HeightStarted {
                height: 1,
                powers: vec![1; 4],
                last_commit: None,
            });
            r.on_our_event(OurEvent::Position {
                round: 0,
                step: step::PREVOTE,
            });
        }
        let hello_a = a.add_peer(1);
        let hello_b = b.add_peer(0);
        b.on_message(&0, hello_a).expect("ok");
        a.on_message(&1, hello_b).expect("ok");
        a.on_our_event(OurEvent::Proposal(proposal.clone()));
        a.on_our_event(OurEvent::Block(blk.clone()));
        for i in 0..4 {
            a.on_our_event(OurEvent::Vote(vote(VoteType::Prevote, i, id)));
        }
        let (got, sent) = pump(&mut a, &mut b);
        let proposals = got
            .iter()
            .filter(|c| matches!(c, ToCore::Proposal(_)))
            .count();
        let votes = got.iter().filter(|c| matches!(c, ToCore::Vote(_))).count();
        let blocks: Vec<_> = got
            .iter()
            .filter_map(|c| match c {
                ToCore::Block(bid, b) => Some((*bid, b.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(proposals, 1);
        assert_eq!(votes, 4);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].0, id);
        assert_eq!(*blocks[0].1, *blk);
        // 1 proposal + every part + 4 votes, and nothing twice: HasVote and
        // NewRoundStep aside, no message was wasted.
        let parts = id.part_set_header.total as usize;
        assert!(sent <= 1 + parts + 4, "{sent} messages for {parts} parts");
    }

    #[test]
    fn has_vote_goes_to_peers_that_lack_the_vote_only() {
        let id = block().block_id();
        let mut r: R = Reactor::new(NoStore, 3);
        r.on_our_event(OurEvent::HeightStarted {
            height: 1,
            powers: vec![1; 4],
            last_commit: None,
        });
        for p in [1u8, 2] {
            r.add_peer(p);
            let hello = ConsensusMessage::NewRoundStep {
                height: 1,
                round: 0,
                step: step::PREVOTE,
                seconds_since_start: 0,
                last_commit_round: -1,
            };
            r.on_message(&p, hello).expect("ok");
        }
        let v = vote(VoteType::Prevote, 3, id);
        r.on_message(&1, ConsensusMessage::Vote(v.clone()))
            .expect("ok");
        let out = r.on_our_event(OurEvent::Vote(v));
        let to: Vec<u8> = out.iter().map(|(p, _)| *p).collect();
        assert_eq!(to, vec![2], "not back to the peer that sent it: {out:?}");
        assert!(matches!(
            out[0].1,
            ConsensusMessage::HasVote { index: 3, .. }
        ));
    }

    #[test]
    fn one_peers_junk_proposals_cannot_evict_anothers_block() {
        let blk = block();
        let id = blk.block_id();
        let mut r: R = Reactor::new(NoStore, 4);
        r.on_our_event(OurEvent::HeightStarted {
            height: 1,
            powers: vec![1; 4],
            last_commit: None,
        });
        r.on_our_event(OurEvent::Position {
            round: 0,
            step: step::PROPOSE,
        });
        for p in [1u8, 2] {
            r.add_peer(p);
        }
        let proposal = |block_id| Proposal {
            height: 1,
            round: 0,
            pol_round: None,
            block_id,
            timestamp: Time::GO_ZERO,
            signature: Signature([0; 64]),
        };
        r.on_message(&1, ConsensusMessage::Proposal(proposal(id)))
            .expect("ok");
        for i in 0..20u8 {
            let junk = BlockId {
                hash: crate::types::Hash([i; 32]),
                part_set_header: PartSetHeader {
                    total: 1,
                    hash: crate::types::Hash([i; 32]),
                },
            };
            r.on_message(&2, ConsensusMessage::Proposal(proposal(junk)))
                .expect("ok");
        }
        let parts = blk.part_set();
        let mut got = None;
        for i in 0..id.part_set_header.total {
            let part = parts.get_part(i).expect("part").clone();
            let (core, _) = r
                .on_message(
                    &1,
                    ConsensusMessage::BlockPart {
                        height: 1,
                        round: 0,
                        part,
                    },
                )
                .expect("ok");
            got = got.or(core.into_iter().find_map(|c| match c {
                ToCore::Block(bid, _) => Some(bid),
                _ => None,
            }));
        }
        assert_eq!(got, Some(id), "the real block was assembled");
    }
}
