//! [`OurView`]: what this node holds, as gossip plans from it.
//!
//! A mirror of the consensus core's position, proposals, block parts and
//! votes at the current height, fed by the driver as the core accepts
//! them, plus the previous height's commit and read access to the store for
//! lagging peers. Kept apart from the core so that the gossip task never
//! locks or copies the core, and so the simulator can build one too.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::bits::BitArray;
use super::plan::Ours;
use crate::types::{BlockId, Height, Part, PartSet, PartSetHeader, Proposal, Vote, VoteType};

/// Committed heights, for peers that lag behind.
pub trait Stored {
    /// The lowest stored height.
    fn base(&self) -> Height;
    /// A stored block's part set header.
    fn parts_header(&self, height: Height) -> Option<PartSetHeader>;
    /// Part `index` of a stored block.
    fn part(&self, height: Height, index: u32) -> Option<Part>;
    /// The commit of a stored height as its round and precommits (shared:
    /// planners read it once per vote sent).
    fn commit(&self, height: Height) -> Option<Arc<(i32, Vec<Vote>)>>;
    /// Validators at a stored height.
    fn validator_count(&self, height: Height) -> usize;
}

fn kind_index(k: VoteType) -> u8 {
    match k {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    }
}

/// The node's side of gossip.
#[derive(Debug)]
pub struct OurView<S> {
    height: Height,
    round: i32,
    step: u8,
    powers: Vec<i64>,
    proposals: BTreeMap<i32, Proposal>,
    parts: Option<PartSet>,
    votes: BTreeMap<(i32, u8), BTreeMap<u32, Vote>>,
    last_commit: Option<(i32, BTreeMap<u32, Vote>)>,
    store: S,
    /// Milliseconds on the caller's clock (see [`OurView::set_clock`]).
    clock: u64,
    /// When each vote of this height signed by others arrived.
    arrivals: BTreeMap<(i32, u8, u32), u64>,
    /// Our validator address: our own votes are never held back.
    own: Option<crate::types::Address>,
    /// How long others' votes are held back before we relay them.
    relay_delay: u64,
}

impl<S: Stored> OurView<S> {
    /// A view before any height started.
    pub fn new(store: S) -> Self {
        OurView {
            height: 0,
            round: -1,
            step: 0,
            powers: vec![],
            proposals: BTreeMap::new(),
            parts: None,
            votes: BTreeMap::new(),
            last_commit: None,
            store,
            clock: 0,
            arrivals: BTreeMap::new(),
            own: None,
            relay_delay: 0,
        }
    }

    /// Holds back votes signed by others for `delay_ms` after they arrive
    /// before relaying them: their signer sends them to every peer itself,
    /// so relaying at once mostly duplicates its message, while a peer that
    /// still lacks one later gets it from us. `own` is our validator
    /// address, whose votes go out at once. 0 (the default) holds nothing.
    pub fn set_relay_delay(&mut self, delay_ms: u64, own: Option<crate::types::Address>) {
        self.relay_delay = delay_ms;
        self.own = own;
    }

    /// Advances the view's clock (milliseconds, any origin, never
    /// decreasing) for the relay delay.
    pub fn set_clock(&mut self, now_ms: u64) {
        self.clock = self.clock.max(now_ms);
    }

    /// The store behind the view.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// A new height with its validators' powers (by index) and the
    /// previous height's commit (round and precommits).
    pub fn start_height(
        &mut self,
        height: Height,
        powers: Vec<i64>,
        last_commit: Option<(i32, Vec<Vote>)>,
    ) {
        self.height = height;
        self.round = 0;
        self.step = super::peer::step::NEW_HEIGHT;
        self.powers = powers;
        self.proposals.clear();
        self.parts = None;
        self.votes.clear();
        self.arrivals.clear();
        self.last_commit = last_commit.map(|(r, votes)| {
            (
                r,
                votes.into_iter().map(|v| (v.validator_index, v)).collect(),
            )
        });
    }

    /// The core moved to (round, step) (wire step numbers).
    pub fn set_position(&mut self, round: i32, step: u8) {
        self.round = round;
        self.step = step;
    }

    /// The core accepted a proposal of this height.
    pub fn add_proposal(&mut self, proposal: Proposal) {
        if proposal.height == self.height {
            self.proposals.insert(proposal.round as i32, proposal);
        }
    }

    /// The block whose parts we offer: the proposal's as it arrives, or a
    /// valid or decided block once complete.
    pub fn set_parts(&mut self, parts: PartSet) {
        self.parts = Some(parts);
    }

    /// The part set we offer, to add arriving parts to.
    pub fn parts_mut(&mut self) -> Option<&mut PartSet> {
        self.parts.as_mut()
    }

    /// The core accepted a vote of this height.
    pub fn add_vote(&mut self, vote: Vote) {
        if vote.height == self.height {
            if self.relay_delay > 0 && Some(vote.validator_address) != self.own {
                self.arrivals
                    .entry((
                        vote.round as i32,
                        kind_index(vote.vote_type),
                        vote.validator_index,
                    ))
                    .or_insert(self.clock);
            }
            self.votes
                .entry((vote.round as i32, kind_index(vote.vote_type)))
                .or_default()
                .insert(vote.validator_index, vote);
        }
    }

    /// The votes held in memory: this height's, or the last commit.
    fn set_of(&self, height: Height, round: i32, kind: VoteType) -> Option<&BTreeMap<u32, Vote>> {
        if height == self.height {
            return self.votes.get(&(round, kind_index(kind)));
        }
        if height + 1 == self.height && kind == VoteType::Precommit {
            if let Some((r, v)) = &self.last_commit {
                return (*r == round).then_some(v);
            }
        }
        None
    }

    /// +2/3 of the power for one value in a live set.
    fn quorum_value(&self, votes: &BTreeMap<u32, Vote>) -> Option<Option<BlockId>> {
        let total: i64 = self.powers.iter().sum();
        let mut by_value: BTreeMap<Option<BlockId>, i64> = BTreeMap::new();
        for v in votes.values() {
            let p = self
                .powers
                .get(v.validator_index as usize)
                .copied()
                .unwrap_or(0);
            *by_value.entry(v.block_id).or_default() += p;
        }
        by_value
            .into_iter()
            .find(|(_, w)| *w * 3 > total * 2)
            .map(|(v, _)| v)
    }
}

impl<S: Stored> Ours for OurView<S> {
    fn position(&self) -> (Height, i32, u8) {
        (self.height, self.round, self.step)
    }

    fn validator_count(&self, height: Height) -> usize {
        if height == self.height {
            return self.powers.len();
        }
        self.store.validator_count(height)
    }

    fn proposal(&self) -> Option<&Proposal> {
        self.proposals.get(&self.round)
    }

    fn parts(&self) -> Option<(PartSetHeader, BitArray)> {
        let p = self.parts.as_ref()?;
        let mut bits = BitArray::new(p.header.total as usize);
        for i in 0..p.header.total {
            if p.has_part(i) {
                bits.set(i as usize, true);
            }
        }
        Some((p.header, bits))
    }

    fn part(&self, index: u32) -> Option<Part> {
        self.parts.as_ref()?.get_part(index).cloned()
    }

    fn store_base(&self) -> Height {
        self.store.base()
    }

    fn stored_parts_header(&self, height: Height) -> Option<PartSetHeader> {
        self.store.parts_header(height)
    }

    fn stored_part(&self, height: Height, index: u32) -> Option<Part> {
        self.store.part(height, index)
    }

    fn vote_bits(&self, height: Height, round: i32, kind: VoteType) -> Option<(BitArray, bool)> {
        let n = self.validator_count(height);
        let ones: Vec<u32> = match self.set_of(height, round, kind) {
            Some(v) => v.keys().copied().collect(),
            None if height + 1 < self.height => {
                let commit = self.store.commit(height)?;
                if commit.0 != round || kind != VoteType::Precommit {
                    return None;
                }
                commit.1.iter().map(|v| v.validator_index).collect()
            }
            None => return None,
        };
        let mut bits = BitArray::new(n);
        for i in ones {
            bits.set(i as usize, true);
        }
        let is_commit = kind == VoteType::Precommit
            && (height < self.height
                || self
                    .set_of(height, round, kind)
                    .is_some_and(|v| matches!(self.quorum_value(v), Some(Some(_)))));
        Some((bits, is_commit))
    }

    fn relayable(&self, height: Height, round: i32, kind: VoteType) -> Option<BitArray> {
        let (mut bits, _) = self.vote_bits(height, round, kind)?;
        if height == self.height && self.relay_delay > 0 {
            let k = kind_index(kind);
            for ((r, kk, i), at) in self.arrivals.range((round, k, 0)..=(round, k, u32::MAX)) {
                if (*r, *kk) == (round, k) && self.clock < at.saturating_add(self.relay_delay) {
                    bits.set(*i as usize, false);
                }
            }
        }
        Some(bits)
    }

    fn vote(&self, height: Height, round: i32, kind: VoteType, index: u32) -> Option<Vote> {
        match self.set_of(height, round, kind) {
            Some(v) => v.get(&index).cloned(),
            None if height + 1 < self.height && kind == VoteType::Precommit => {
                let commit = self.store.commit(height)?;
                (commit.0 == round)
                    .then(|| {
                        commit
                            .1
                            .iter()
                            .find(|v| v.validator_index == index)
                            .cloned()
                    })
                    .flatten()
            }
            None => None,
        }
    }

    fn commit_round(&self, height: Height) -> Option<i32> {
        if height + 1 == self.height {
            if let Some((r, _)) = &self.last_commit {
                return Some(*r);
            }
        }
        if height < self.height {
            return self.store.commit(height).map(|c| c.0);
        }
        None
    }

    fn maj23(&self, height: Height, round: i32, kind: VoteType) -> Option<Option<BlockId>> {
        if height == self.height {
            return self.quorum_value(self.set_of(height, round, kind)?);
        }
        if height < self.height && kind == VoteType::Precommit {
            // A commit's block id: that of any precommit for a block in it.
            let from = |r: i32, mut votes: std::slice::Iter<'_, Vote>| {
                (r == round).then(|| votes.find_map(|v| v.block_id).map(Some))?
            };
            return match (height + 1 == self.height, &self.last_commit) {
                (true, Some((r, v))) => {
                    (*r == round).then(|| v.values().find_map(|v| v.block_id).map(Some))?
                }
                _ => {
                    let commit = self.store.commit(height)?;
                    from(commit.0, commit.1.iter())
                }
            };
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Address, Hash, Signature, Time};

    /// A store holding one commit at height 3.
    struct OneCommit;

    fn id() -> BlockId {
        BlockId {
            hash: Hash([4; 32]),
            part_set_header: PartSetHeader {
                total: 1,
                hash: Hash([5; 32]),
            },
        }
    }

    fn vote(h: Height, r: u32, kind: VoteType, i: u32, value: Option<BlockId>) -> Vote {
        Vote {
            vote_type: kind,
            height: h,
            round: r,
            block_id: value,
            timestamp: Time::GO_ZERO,
            validator_address: Address([i as u8; 20]),
            validator_index: i,
            signature: Signature([0; 64]),
            extension: vec![],
            extension_signature: vec![],
        }
    }

    impl Stored for OneCommit {
        fn base(&self) -> Height {
            1
        }
        fn parts_header(&self, _: Height) -> Option<PartSetHeader> {
            None
        }
        fn part(&self, _: Height, _: u32) -> Option<Part> {
            None
        }
        fn commit(&self, h: Height) -> Option<Arc<(i32, Vec<Vote>)>> {
            (h == 3).then(|| {
                Arc::new((
                    1,
                    (0..3)
                        .map(|i| vote(3, 1, VoteType::Precommit, i, Some(id())))
                        .collect(),
                ))
            })
        }
        fn validator_count(&self, _: Height) -> usize {
            4
        }
    }

    #[test]
    fn live_votes_last_commit_and_store_answer_alike() {
        let mut v = OurView::new(OneCommit);
        let last: Vec<Vote> = [0, 2, 3]
            .into_iter()
            .map(|i| vote(5, 0, VoteType::Precommit, i, Some(id())))
            .collect();
        v.start_height(6, vec![1, 1, 1, 1], Some((0, last)));
        v.set_position(0, super::super::peer::step::PREVOTE);
        for i in 0..2 {
            v.add_vote(vote(6, 0, VoteType::Prevote, i, Some(id())));
        }
        v.add_vote(vote(7, 0, VoteType::Prevote, 3, None)); // another height: ignored

        let (bits, commit) = v.vote_bits(6, 0, VoteType::Prevote).expect("live");
        assert_eq!((bits.count(), commit), (2, false));
        assert_eq!(v.maj23(6, 0, VoteType::Prevote), None, "2 of 4 is not +2/3");
        v.add_vote(vote(6, 0, VoteType::Prevote, 3, Some(id())));
        assert_eq!(v.maj23(6, 0, VoteType::Prevote), Some(Some(id())));

        let (bits, commit) = v.vote_bits(5, 0, VoteType::Precommit).expect("last commit");
        assert_eq!((bits.count(), commit), (3, true));
        assert_eq!(v.commit_round(5), Some(0));
        assert!(
            v.vote_bits(5, 1, VoteType::Precommit).is_none(),
            "not the commit round"
        );

        let (bits, commit) = v.vote_bits(3, 1, VoteType::Precommit).expect("stored");
        assert_eq!((bits.count(), commit), (3, true));
        assert_eq!(
            v.vote(3, 1, VoteType::Precommit, 2)
                .map(|v| v.validator_index),
            Some(2)
        );
        assert_eq!(v.commit_round(3), Some(1));
        assert_eq!(v.maj23(3, 1, VoteType::Precommit), Some(Some(id())));
        assert!(
            v.vote_bits(4, 0, VoteType::Precommit).is_none(),
            "not stored"
        );
    }

    #[test]
    fn others_votes_are_relayed_only_after_the_delay_ours_at_once() {
        let mut view = OurView::new(OneCommit);
        view.start_height(5, vec![1; 4], None);
        let ours = Address([2; 20]);
        view.set_relay_delay(10, Some(ours));
        view.set_clock(100);
        view.add_vote(vote(5, 0, VoteType::Prevote, 1, Some(id())));
        view.add_vote(vote(5, 0, VoteType::Prevote, 2, Some(id())));
        let relayable = |v: &OurView<OneCommit>| {
            v.relayable(5, 0, VoteType::Prevote)
                .map(|b| b.ones().collect::<Vec<_>>())
        };
        assert_eq!(relayable(&view), Some(vec![2]), "ours (index 2) at once");
        assert_eq!(
            view.vote_bits(5, 0, VoteType::Prevote)
                .map(|(b, _)| b.count()),
            Some(2),
            "both are held and claimed"
        );
        view.set_clock(109);
        assert_eq!(relayable(&view), Some(vec![2]));
        view.set_clock(110);
        assert_eq!(
            relayable(&view),
            Some(vec![1, 2]),
            "the other's after 10 ms"
        );
        view.set_clock(50);
        assert_eq!(
            relayable(&view),
            Some(vec![1, 2]),
            "the clock never goes back"
        );
    }
}
