//! What to send a peer next: CometBFT's gossip routines as pure functions.
//!
//! Each planner reads what we have ([`Ours`]) and what we believe the peer
//! has ([`PeerRoundState`]), returns the messages to send, and marks them
//! as the peer's in its state. The caller marks them only if the send was
//! accepted (CometBFT does the same: a full queue means "not sent"), so it
//! plans on a copy and commits the copy on success.
//!
//! - [`plan_data`]: parts of the block the peer is assembling, parts of a
//!   stored block for a peer at a lower height, our proposal (with its POL).
//! - [`plan_votes`]: one vote the peer lacks, chosen as CometBFT chooses.
//! - [`plan_maj23`]: the +2/3 we saw, so the peer answers with what it has
//!   and accepts votes for it even from a validator that equivocated.

use rand_core::RngCore;

use super::bits::BitArray;
use super::message::ConsensusMessage;
use super::peer::{step, PeerRoundState};
use crate::types::{BlockId, Height, Part, PartSetHeader, Proposal, Vote, VoteType};

/// Read access to what this node holds, for planning.
pub trait Ours {
    /// Our height, round and wire step.
    fn position(&self) -> (Height, i32, u8);
    /// Validators at `height` (bit array sizes).
    fn validator_count(&self, height: Height) -> usize;
    /// Our current round's proposal, if we have it.
    fn proposal(&self) -> Option<&Proposal>;
    /// The part set we hold for our current block (the proposal's, or the
    /// valid or decided block's): its header and which parts we have.
    fn parts(&self) -> Option<(PartSetHeader, BitArray)>;
    /// Part `index` of our current block.
    fn part(&self, index: u32) -> Option<Part>;
    /// The lowest height whose block and commit we store.
    fn store_base(&self) -> Height;
    /// A stored block's part set header.
    fn stored_parts_header(&self, height: Height) -> Option<PartSetHeader>;
    /// Part `index` of a stored block.
    fn stored_part(&self, height: Height, index: u32) -> Option<Part>;
    /// Which validators' votes of (height, round, kind) we hold, and whether
    /// they are a commit (precommits with +2/3 for a block). Heights below
    /// ours are the commits we keep (the last commit, then the store).
    fn vote_bits(&self, height: Height, round: i32, kind: VoteType) -> Option<(BitArray, bool)>;
    /// Which of those votes may be sent on to peers now (all by default;
    /// a view may hold back votes it just received from others, which
    /// their signer is likely sending everyone directly).
    fn relayable(&self, height: Height, round: i32, kind: VoteType) -> Option<BitArray> {
        self.vote_bits(height, round, kind).map(|(bits, _)| bits)
    }
    /// The vote of validator `index` among them.
    fn vote(&self, height: Height, round: i32, kind: VoteType, index: u32) -> Option<Vote>;
    /// The round that committed `height` (below ours).
    fn commit_round(&self, height: Height) -> Option<i32>;
    /// The value with +2/3 of (height, round, kind), if any (None inside:
    /// nil).
    fn maj23(&self, height: Height, round: i32, kind: VoteType) -> Option<Option<BlockId>>;
}

/// Data to send: a block part, or our proposal (and its POL bits).
pub fn plan_data(
    ours: &impl Ours,
    peer: &mut PeerRoundState,
    rng: &mut impl RngCore,
) -> Vec<ConsensusMessage> {
    let (height, round, _) = ours.position();
    // The block the peer is assembling is ours: send a part it lacks.
    if let (Some((header, have)), Some(its)) = (ours.parts(), &peer.parts) {
        if header == peer.parts_header {
            if let Some(i) = have.sub(its).pick_random(rng) {
                if let Some(part) = ours.part(i as u32) {
                    peer.set_has_part(peer.height, peer.round, i);
                    return vec![ConsensusMessage::BlockPart {
                        height,
                        round,
                        part,
                    }];
                }
            }
        }
    }
    // A peer at a lower height we store: the parts of that block.
    if peer.height > 0 && peer.height < height && peer.height >= ours.store_base() {
        let Some(header) = ours.stored_parts_header(peer.height) else {
            return vec![];
        };
        peer.init_parts(header);
        if peer.parts_header != header {
            // It is assembling another block (a proposal that was not
            // committed); it will learn the commit's from the votes.
            return vec![];
        }
        let missing = match &peer.parts {
            Some(its) => full(header.total as usize).sub(its),
            None => return vec![],
        };
        if let Some(i) = missing.pick_random(rng) {
            if let Some(part) = ours.stored_part(peer.height, i as u32) {
                let (h, r) = (peer.height, peer.round);
                peer.set_has_part(h, r, i);
                return vec![ConsensusMessage::BlockPart {
                    height: h,
                    round: r,
                    part,
                }];
            }
        }
        return vec![];
    }
    // Same height and round: our proposal, if it lacks one.
    if peer.height != height || peer.round != round || peer.proposal {
        return vec![];
    }
    let Some(proposal) = ours.proposal() else {
        return vec![];
    };
    let pol_round = proposal.pol_round.map_or(-1, |r| r as i32);
    peer.set_has_proposal(height, round, proposal.block_id.part_set_header, pol_round);
    let mut out = vec![ConsensusMessage::Proposal(proposal.clone())];
    if pol_round >= 0 {
        if let Some((pol, _)) = ours.vote_bits(height, pol_round, VoteType::Prevote) {
            out.push(ConsensusMessage::ProposalPol {
                height,
                pol_round,
                pol,
            });
        }
    }
    out
}

/// One vote the peer lacks, in CometBFT's order of usefulness.
pub fn plan_votes(
    ours: &impl Ours,
    peer: &mut PeerRoundState,
    rng: &mut impl RngCore,
) -> Option<ConsensusMessage> {
    let (height, round, _) = ours.position();
    if peer.height == 0 {
        return None;
    }
    if peer.height == height {
        let r = peer.round;
        let in_reach = r != -1 && r <= round;
        let mut tries: Vec<(Height, i32, VoteType)> = Vec::with_capacity(6);
        if peer.step == step::NEW_HEIGHT {
            if let Some(lc) = height.checked_sub(1).and_then(|h| ours.commit_round(h)) {
                tries.push((height - 1, lc, VoteType::Precommit));
            }
        }
        if peer.step <= step::PROPOSE && in_reach && peer.pol_round != -1 {
            tries.push((height, peer.pol_round, VoteType::Prevote));
        }
        if peer.step <= step::PREVOTE_WAIT && in_reach {
            tries.push((height, r, VoteType::Prevote));
        }
        if peer.step <= step::PRECOMMIT_WAIT && in_reach {
            tries.push((height, r, VoteType::Precommit));
        }
        if in_reach {
            tries.push((height, r, VoteType::Prevote));
        }
        if peer.pol_round != -1 {
            tries.push((height, peer.pol_round, VoteType::Prevote));
        }
        return tries
            .into_iter()
            .find_map(|(h, r, k)| pick_vote(ours, peer, h, r, k, rng));
    }
    if peer.height + 1 == height || (peer.height < height && peer.height >= ours.store_base()) {
        // Its height is committed here: the commit's precommits.
        let r = ours.commit_round(peer.height)?;
        return pick_vote(ours, peer, peer.height, r, VoteType::Precommit, rng);
    }
    None
}

/// Our +2/3 claims for the peer's position (CometBFT's queryMaj23, run
/// every couple of seconds).
pub fn plan_maj23(ours: &impl Ours, peer: &PeerRoundState) -> Vec<ConsensusMessage> {
    let (height, round, _) = ours.position();
    let mut out = Vec::new();
    let mut claim = |h: Height, r: i32, kind: VoteType| {
        if let Some(block_id) = ours.maj23(h, r, kind) {
            out.push(ConsensusMessage::VoteSetMaj23 {
                height: h,
                round: r,
                kind,
                block_id,
            });
        }
    };
    if peer.height == height && peer.round != -1 && peer.round <= round {
        claim(height, peer.round, VoteType::Prevote);
        claim(height, peer.round, VoteType::Precommit);
        if peer.pol_round >= 0 {
            claim(height, peer.pol_round, VoteType::Prevote);
        }
    } else if peer.height > 0 && peer.height < height && peer.height >= ours.store_base() {
        if let Some(r) = ours.commit_round(peer.height) {
            claim(peer.height, r, VoteType::Precommit);
        }
    }
    out
}

/// Picks a random vote of (height, round, kind) we have and the peer lacks,
/// and marks it as the peer's (CometBFT's `PickVoteToSend`).
fn pick_vote(
    ours: &impl Ours,
    peer: &mut PeerRoundState,
    height: Height,
    round: i32,
    kind: VoteType,
    rng: &mut impl RngCore,
) -> Option<ConsensusMessage> {
    let (all, is_commit) = ours.vote_bits(height, round, kind)?;
    if all.count() == 0 {
        return None;
    }
    let have = ours.relayable(height, round, kind)?;
    let n = ours.validator_count(height);
    if is_commit {
        peer.ensure_catchup_commit_round(height, round, n);
    }
    peer.ensure_vote_bits(height, n);
    let its = peer.vote_bits(height, round, kind)?;
    let i = have.sub(its).pick_random(rng)?;
    let vote = ours.vote(height, round, kind, i as u32)?;
    peer.set_has_vote(height, round, kind, i);
    Some(ConsensusMessage::Vote(vote))
}

fn full(n: usize) -> BitArray {
    let mut b = BitArray::new(n);
    for i in 0..n {
        b.set(i, true);
    }
    b
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand_chacha::rand_core::SeedableRng;

    use super::*;
    use crate::types::{Address, Hash, Signature, Time};

    /// Our side, in memory.
    #[derive(Default)]
    struct Mine {
        height: Height,
        round: i32,
        step: u8,
        validators: usize,
        proposal: Option<Proposal>,
        parts: Option<(PartSetHeader, BTreeMap<u32, Part>)>,
        base: Height,
        stored: BTreeMap<Height, (PartSetHeader, BTreeMap<u32, Part>, i32)>,
        votes: BTreeMap<(Height, i32, u8), BTreeMap<u32, Vote>>,
        commits: BTreeMap<Height, i32>,
    }

    fn kind_key(k: VoteType) -> u8 {
        match k {
            VoteType::Prevote => 1,
            VoteType::Precommit => 2,
        }
    }

    fn bits_of(n: usize, keys: impl Iterator<Item = u32>) -> BitArray {
        let mut b = BitArray::new(n);
        for k in keys {
            b.set(k as usize, true);
        }
        b
    }

    impl Ours for Mine {
        fn position(&self) -> (Height, i32, u8) {
            (self.height, self.round, self.step)
        }
        fn validator_count(&self, _: Height) -> usize {
            self.validators
        }
        fn proposal(&self) -> Option<&Proposal> {
            self.proposal.as_ref()
        }
        fn parts(&self) -> Option<(PartSetHeader, BitArray)> {
            self.parts
                .as_ref()
                .map(|(h, p)| (*h, bits_of(h.total as usize, p.keys().copied())))
        }
        fn part(&self, index: u32) -> Option<Part> {
            self.parts.as_ref()?.1.get(&index).cloned()
        }
        fn store_base(&self) -> Height {
            self.base
        }
        fn stored_parts_header(&self, h: Height) -> Option<PartSetHeader> {
            self.stored.get(&h).map(|s| s.0)
        }
        fn stored_part(&self, h: Height, index: u32) -> Option<Part> {
            self.stored.get(&h)?.1.get(&index).cloned()
        }
        fn vote_bits(&self, h: Height, r: i32, k: VoteType) -> Option<(BitArray, bool)> {
            let v = self.votes.get(&(h, r, kind_key(k)))?;
            let commit = self.commits.get(&h) == Some(&r) && k == VoteType::Precommit;
            Some((bits_of(self.validators, v.keys().copied()), commit))
        }
        fn vote(&self, h: Height, r: i32, k: VoteType, i: u32) -> Option<Vote> {
            self.votes.get(&(h, r, kind_key(k)))?.get(&i).cloned()
        }
        fn commit_round(&self, h: Height) -> Option<i32> {
            self.commits.get(&h).copied()
        }
        fn maj23(&self, h: Height, r: i32, k: VoteType) -> Option<Option<BlockId>> {
            let v = self.votes.get(&(h, r, kind_key(k)))?;
            (v.len() * 3 > self.validators * 2).then(|| v.values().next().and_then(|v| v.block_id))
        }
    }

    fn header(total: u32) -> PartSetHeader {
        PartSetHeader {
            total,
            hash: Hash([9; 32]),
        }
    }

    fn part(index: u32) -> Part {
        Part {
            index,
            bytes: vec![index as u8],
            proof: crate::types::Proof {
                total: 1,
                index: 0,
                leaf_hash: Hash([0; 32]),
                aunts: vec![],
            },
        }
    }

    fn vote(h: Height, r: i32, kind: VoteType, index: u32) -> Vote {
        Vote {
            vote_type: kind,
            height: h,
            round: r as u32,
            block_id: Some(BlockId {
                hash: Hash([1; 32]),
                part_set_header: header(3),
            }),
            timestamp: Time::GO_ZERO,
            validator_address: Address([index as u8; 20]),
            validator_index: index,
            signature: Signature([0; 64]),
            extension: vec![],
            extension_signature: vec![],
        }
    }

    fn add_votes(m: &mut Mine, h: Height, r: i32, kind: VoteType, idx: &[u32]) {
        let set = m.votes.entry((h, r, kind_key(kind))).or_default();
        for i in idx {
            set.insert(*i, vote(h, r, kind, *i));
        }
    }

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(7)
    }

    fn peer_at(h: Height, r: i32, s: u8, lcr: i32) -> PeerRoundState {
        let mut p = PeerRoundState::default();
        p.apply_new_round_step(h, r, s, lcr);
        p
    }

    #[test]
    fn a_peer_gets_the_proposal_once_then_every_part_once() {
        let mut m = Mine {
            height: 4,
            round: 0,
            step: step::PREVOTE,
            validators: 4,
            ..Default::default()
        };
        let h = header(3);
        m.proposal = Some(Proposal {
            height: 4,
            round: 0,
            pol_round: None,
            block_id: BlockId {
                hash: Hash([1; 32]),
                part_set_header: h,
            },
            timestamp: Time::GO_ZERO,
            signature: Signature([0; 64]),
        });
        m.parts = Some((h, (0..3).map(|i| (i, part(i))).collect()));
        let mut p = peer_at(4, 0, step::PROPOSE, 0);
        let mut r = rng();
        let first = plan_data(&m, &mut p, &mut r);
        assert!(matches!(first.as_slice(), [ConsensusMessage::Proposal(_)]));
        let mut sent = Vec::new();
        loop {
            let out = plan_data(&m, &mut p, &mut r);
            match out.as_slice() {
                [] => break,
                [ConsensusMessage::BlockPart { part, .. }] => sent.push(part.index),
                other => panic!("unexpected {other:?}"),
            }
        }
        sent.sort_unstable();
        assert_eq!(sent, vec![0, 1, 2], "each part exactly once");
    }

    #[test]
    fn a_lagging_peer_gets_the_stored_block_and_its_commit() {
        let mut m = Mine {
            height: 8,
            round: 0,
            step: step::PROPOSE,
            validators: 4,
            base: 1,
            ..Default::default()
        };
        m.stored
            .insert(6, (header(2), (0..2).map(|i| (i, part(i))).collect(), 1));
        m.commits.insert(6, 1);
        add_votes(&mut m, 6, 1, VoteType::Precommit, &[0, 1, 3]);
        let mut p = peer_at(6, 0, step::PREVOTE, 0);
        let mut r = rng();
        let mut parts = Vec::new();
        while let [ConsensusMessage::BlockPart { height, part, .. }] =
            plan_data(&m, &mut p, &mut r).as_slice()
        {
            assert_eq!(*height, 6);
            parts.push(part.index);
        }
        parts.sort_unstable();
        assert_eq!(parts, vec![0, 1]);
        let mut votes = Vec::new();
        while let Some(ConsensusMessage::Vote(v)) = plan_votes(&m, &mut p, &mut r) {
            assert_eq!((v.height, v.round), (6, 1));
            votes.push(v.validator_index);
        }
        votes.sort_unstable();
        assert_eq!(votes, vec![0, 1, 3], "the commit's precommits, once each");
        // Once it moves to the commit round, those bits are its precommits.
        p.apply_new_round_step(6, 1, step::COMMIT, 0);
        assert_eq!(p.precommits.as_ref().map(BitArray::count), Some(3));
    }

    #[test]
    fn votes_follow_the_peer_s_step_and_skip_what_it_has() {
        let mut m = Mine {
            height: 3,
            round: 1,
            step: step::PRECOMMIT,
            validators: 4,
            ..Default::default()
        };
        add_votes(&mut m, 3, 1, VoteType::Prevote, &[0, 1, 2]);
        add_votes(&mut m, 3, 1, VoteType::Precommit, &[2]);
        let mut p = peer_at(3, 1, step::PREVOTE, 0);
        p.ensure_vote_bits(3, 4);
        p.set_has_vote(3, 1, VoteType::Prevote, 0); // announced by HasVote
        let mut r = rng();
        let mut got = Vec::new();
        while let Some(ConsensusMessage::Vote(v)) = plan_votes(&m, &mut p, &mut r) {
            got.push((v.vote_type, v.validator_index));
        }
        // Prevotes first (its step), then the precommit; never prevote 0.
        assert_eq!(got.len(), 3);
        assert!(got[..2].iter().all(|(k, _)| *k == VoteType::Prevote));
        assert!(!got.contains(&(VoteType::Prevote, 0)));
        assert_eq!(got[2], (VoteType::Precommit, 2));
        // A peer in a round we have not reached gets nothing of its round.
        let mut ahead = peer_at(3, 5, step::PREVOTE, 0);
        assert_eq!(plan_votes(&m, &mut ahead, &mut r), None);
    }

    #[test]
    fn a_peer_at_the_next_height_gets_our_last_commit_when_it_waits() {
        let mut m = Mine {
            height: 5,
            round: 0,
            step: step::NEW_HEIGHT,
            validators: 4,
            ..Default::default()
        };
        m.commits.insert(4, 2);
        add_votes(&mut m, 4, 2, VoteType::Precommit, &[1, 2, 3]);
        let mut p = peer_at(5, 0, step::NEW_HEIGHT, 2);
        let mut r = rng();
        let mut n = 0;
        while let Some(ConsensusMessage::Vote(v)) = plan_votes(&m, &mut p, &mut r) {
            assert_eq!((v.height, v.round), (4, 2));
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn maj23_claims_cover_the_peer_s_round_or_its_commit() {
        let mut m = Mine {
            height: 3,
            round: 0,
            step: step::PRECOMMIT,
            validators: 4,
            base: 1,
            ..Default::default()
        };
        add_votes(&mut m, 3, 0, VoteType::Prevote, &[0, 1, 2]);
        let p = peer_at(3, 0, step::PREVOTE, 0);
        assert!(matches!(
            plan_maj23(&m, &p).as_slice(),
            [ConsensusMessage::VoteSetMaj23 {
                round: 0,
                kind: VoteType::Prevote,
                block_id: Some(_),
                ..
            }]
        ));
        m.commits.insert(2, 0);
        add_votes(&mut m, 2, 0, VoteType::Precommit, &[0, 1, 3]);
        let behind = peer_at(2, 0, step::PROPOSE, 0);
        assert!(matches!(
            plan_maj23(&m, &behind).as_slice(),
            [ConsensusMessage::VoteSetMaj23 {
                height: 2,
                kind: VoteType::Precommit,
                ..
            }]
        ));
    }
}
