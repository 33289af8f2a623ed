//! What we believe one peer has, CometBFT's `PeerRoundState`, and the rules
//! that update it from the peer's messages and from what we send it.
//!
//! Gossip never sends a peer what it has: every proposal, part and vote
//! sent or announced sets a bit here, and the planners only pick cleared
//! bits. The rules follow CometBFT v0.38's `PeerState` exactly (a peer is a
//! CometBFT node as often as one of ours), so that both sides agree on what
//! "has" means.

use super::bits::BitArray;
use crate::types::{Height, PartSetHeader, VoteType};

/// CometBFT's round steps on the wire (`RoundStepType`).
pub mod step {
    /// Waiting for the commit timeout before the next height.
    pub const NEW_HEIGHT: u8 = 1;
    /// Round started (waiting for txs, or about to propose).
    pub const NEW_ROUND: u8 = 2;
    /// Proposing or waiting for the proposal.
    pub const PROPOSE: u8 = 3;
    /// Prevoted.
    pub const PREVOTE: u8 = 4;
    /// Saw +2/3 prevotes for anything; waiting.
    pub const PREVOTE_WAIT: u8 = 5;
    /// Precommitted.
    pub const PRECOMMIT: u8 = 6;
    /// Saw +2/3 precommits for anything; waiting.
    pub const PRECOMMIT_WAIT: u8 = 7;
    /// Deciding: +2/3 precommits for a block.
    pub const COMMIT: u8 = 8;
}

/// A peer's announced position and what it holds there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRoundState {
    /// The peer's height (0 before it told us).
    pub height: Height,
    /// The peer's round (-1 before it told us).
    pub round: i32,
    /// The peer's step ([`step`]).
    pub step: u8,
    /// Whether it has the proposal of its round.
    pub proposal: bool,
    /// The part set it is assembling (of the proposal, or of a valid or
    /// committed block it announced).
    pub parts_header: PartSetHeader,
    /// Which parts of it the peer has; `None` until known.
    pub parts: Option<BitArray>,
    /// The proposal's proof-of-lock round (-1: none).
    pub pol_round: i32,
    /// Prevotes of `pol_round` it has.
    pub pol: Option<BitArray>,
    /// Prevotes of its round it has.
    pub prevotes: Option<BitArray>,
    /// Precommits of its round it has.
    pub precommits: Option<BitArray>,
    /// The round of the commit of `height - 1` (-1 at the initial height).
    pub last_commit_round: i32,
    /// Precommits of that commit it has.
    pub last_commit: Option<BitArray>,
    /// A round of its height whose commit we are sending it (-1: none).
    pub catchup_commit_round: i32,
    /// Precommits of that round it has.
    pub catchup_commit: Option<BitArray>,
}

impl Default for PeerRoundState {
    fn default() -> Self {
        PeerRoundState {
            height: 0,
            round: -1,
            step: 0,
            proposal: false,
            parts_header: PartSetHeader::default(),
            parts: None,
            pol_round: -1,
            pol: None,
            prevotes: None,
            precommits: None,
            last_commit_round: -1,
            last_commit: None,
            catchup_commit_round: -1,
            catchup_commit: None,
        }
    }
}

impl PeerRoundState {
    /// The peer moved (`NewRoundStep`). Older positions are ignored; a new
    /// round forgets the round's proposal and votes; a new height keeps the
    /// old precommits as its last commit when they are that commit's round.
    pub fn apply_new_round_step(
        &mut self,
        height: Height,
        round: i32,
        step: u8,
        last_commit_round: i32,
    ) {
        if (height, round, step) <= (self.height, self.round, self.step) {
            return;
        }
        let (old_height, old_round) = (self.height, self.round);
        let catchup_round = self.catchup_commit_round;
        let catchup = self.catchup_commit.take();
        let old_precommits = self.precommits.clone();
        self.height = height;
        self.round = round;
        self.step = step;
        if old_height != height || old_round != round {
            self.proposal = false;
            self.parts_header = PartSetHeader::default();
            self.parts = None;
            self.pol_round = -1;
            self.pol = None;
            self.prevotes = None;
            self.precommits = None;
        }
        if old_height == height && old_round != round && round == catchup_round {
            // It reached the round whose commit we were sending it.
            self.precommits = catchup.clone();
        }
        if old_height != height {
            self.last_commit_round = last_commit_round;
            self.last_commit = if old_height + 1 == height && old_round == last_commit_round {
                old_precommits
            } else {
                None
            };
            self.catchup_commit_round = -1;
            self.catchup_commit = None;
        } else {
            self.catchup_commit = catchup;
        }
    }

    /// The peer has a complete valid (or committed) block's parts as in
    /// `parts` (`NewValidBlock`).
    pub fn apply_new_valid_block(
        &mut self,
        height: Height,
        round: i32,
        header: PartSetHeader,
        parts: BitArray,
        is_commit: bool,
    ) {
        if self.height != height || (self.round != round && !is_commit) {
            return;
        }
        self.parts_header = header;
        self.parts = Some(parts);
    }

    /// The peer has the proposal of (height, round), sent or announced.
    pub fn set_has_proposal(
        &mut self,
        height: Height,
        round: i32,
        header: PartSetHeader,
        pol_round: i32,
    ) {
        if self.height != height || self.round != round || self.proposal {
            return;
        }
        self.proposal = true;
        if self.parts.is_some() {
            return;
        }
        self.parts = Some(BitArray::new(header.total as usize));
        self.parts_header = header;
        self.pol_round = pol_round;
        self.pol = None;
    }

    /// Starts tracking the peer's parts of `header` if nothing is tracked
    /// (catch-up: it will need the stored block's parts).
    pub fn init_parts(&mut self, header: PartSetHeader) {
        if self.parts.is_none() {
            self.parts = Some(BitArray::new(header.total as usize));
            self.parts_header = header;
        }
    }

    /// The peer has part `index` of its (height, round)'s part set.
    pub fn set_has_part(&mut self, height: Height, round: i32, index: usize) {
        if self.height != height || self.round != round {
            return;
        }
        if let Some(p) = &mut self.parts {
            p.set(index, true);
        }
    }

    /// The peer has the `ProposalPOL` bits of its proposal's POL round.
    pub fn apply_proposal_pol(&mut self, height: Height, pol_round: i32, pol: BitArray) {
        if self.height == height && self.pol_round == pol_round {
            self.pol = Some(pol);
        }
    }

    /// The peer has a vote (`HasVote`, or one we sent it).
    pub fn set_has_vote(&mut self, height: Height, round: i32, kind: VoteType, index: usize) {
        if let Some(b) = self.vote_bits_mut(height, round, kind) {
            b.set(index, true);
        }
    }

    /// `VoteSetBits` answering our `VoteSetMaj23`: the peer has `votes`,
    /// except those we know we have ourselves and it may lack (`ours`).
    pub fn apply_vote_set_bits(
        &mut self,
        height: Height,
        round: i32,
        kind: VoteType,
        votes: &BitArray,
        ours: Option<&BitArray>,
    ) {
        if let Some(b) = self.vote_bits_mut(height, round, kind) {
            *b = match ours {
                None => b.or(votes),
                // Go: keep what it had beyond ours, plus what it claims.
                Some(ours) => b.sub(ours).or(votes),
            };
        }
    }

    /// Makes room for votes of `height` among `validators`: bit arrays
    /// appear once we know the validator count.
    pub fn ensure_vote_bits(&mut self, height: Height, validators: usize) {
        if self.height == height {
            for b in [
                &mut self.prevotes,
                &mut self.precommits,
                &mut self.catchup_commit,
                &mut self.pol,
            ] {
                b.get_or_insert_with(|| BitArray::new(validators));
            }
        } else if self.height == height + 1 {
            self.last_commit
                .get_or_insert_with(|| BitArray::new(validators));
        }
    }

    /// We are about to send the precommits of a commit at (height, round):
    /// track them as the peer's catch-up commit.
    pub fn ensure_catchup_commit_round(&mut self, height: Height, round: i32, validators: usize) {
        if self.height != height || self.catchup_commit_round == round {
            return;
        }
        self.catchup_commit_round = round;
        self.catchup_commit = if round == self.round {
            self.precommits.clone()
        } else {
            Some(BitArray::new(validators))
        };
    }

    /// The bits to consult for votes of (height, round, kind), or `None`
    /// when such votes are not worth sending the peer.
    pub fn vote_bits(&self, height: Height, round: i32, kind: VoteType) -> Option<&BitArray> {
        self.select(height, round, kind).and_then(|w| match w {
            Which::Prevotes => self.prevotes.as_ref(),
            Which::Precommits => self.precommits.as_ref(),
            Which::Catchup => self.catchup_commit.as_ref(),
            Which::Pol => self.pol.as_ref(),
            Which::LastCommit => self.last_commit.as_ref(),
        })
    }

    fn vote_bits_mut(
        &mut self,
        height: Height,
        round: i32,
        kind: VoteType,
    ) -> Option<&mut BitArray> {
        self.select(height, round, kind).and_then(move |w| match w {
            Which::Prevotes => self.prevotes.as_mut(),
            Which::Precommits => self.precommits.as_mut(),
            Which::Catchup => self.catchup_commit.as_mut(),
            Which::Pol => self.pol.as_mut(),
            Which::LastCommit => self.last_commit.as_mut(),
        })
    }

    /// CometBFT's `getVoteBitArray`, returning which array.
    fn select(&self, height: Height, round: i32, kind: VoteType) -> Option<Which> {
        if self.height == height {
            if self.round == round {
                return Some(match kind {
                    VoteType::Prevote => Which::Prevotes,
                    VoteType::Precommit => Which::Precommits,
                });
            }
            if self.catchup_commit_round == round {
                return (kind == VoteType::Precommit).then_some(Which::Catchup);
            }
            if self.pol_round == round {
                return (kind == VoteType::Prevote).then_some(Which::Pol);
            }
            return None;
        }
        if self.height == height + 1 && self.last_commit_round == round {
            return (kind == VoteType::Precommit).then_some(Which::LastCommit);
        }
        None
    }
}

#[derive(Clone, Copy)]
enum Which {
    Prevotes,
    Precommits,
    Catchup,
    Pol,
    LastCommit,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(total: u32) -> PartSetHeader {
        PartSetHeader {
            total,
            hash: crate::types::Hash([7; 32]),
        }
    }

    #[test]
    fn a_new_round_forgets_the_round_and_a_new_height_keeps_the_last_commit() {
        let mut p = PeerRoundState::default();
        p.apply_new_round_step(5, 0, step::PROPOSE, 0);
        p.set_has_proposal(5, 0, header(3), -1);
        p.set_has_part(5, 0, 1);
        p.ensure_vote_bits(5, 4);
        p.set_has_vote(5, 0, VoteType::Precommit, 2);
        assert!(p.proposal);
        assert!(p.parts.as_ref().is_some_and(|b| b.get(1)));

        // Stale: ignored.
        p.apply_new_round_step(5, 0, step::NEW_ROUND, 0);
        assert!(p.proposal);

        // Next height, its last commit is round 0: our precommit bits move.
        p.apply_new_round_step(6, 0, step::NEW_HEIGHT, 0);
        assert!(!p.proposal);
        assert_eq!(p.parts, None);
        assert_eq!(p.last_commit_round, 0);
        assert!(p.last_commit.as_ref().is_some_and(|b| b.get(2)));
        assert_eq!(
            p.vote_bits(5, 0, VoteType::Precommit).map(|b| b.get(2)),
            Some(true)
        );
        assert!(
            p.vote_bits(5, 0, VoteType::Prevote).is_none(),
            "not worth sending"
        );

        // Next height again, but the commit was another round: forgotten.
        p.apply_new_round_step(7, 0, step::NEW_HEIGHT, 1);
        assert_eq!(p.last_commit, None);
    }

    #[test]
    fn catchup_commit_bits_become_the_round_s_precommits() {
        let mut p = PeerRoundState::default();
        p.apply_new_round_step(9, 0, step::PRECOMMIT, 2);
        p.ensure_vote_bits(9, 4);
        p.ensure_catchup_commit_round(9, 3, 4);
        p.set_has_vote(9, 3, VoteType::Precommit, 1);
        p.apply_new_round_step(9, 3, step::COMMIT, 2);
        assert!(p.precommits.as_ref().is_some_and(|b| b.get(1)));
    }

    #[test]
    fn valid_block_and_pol_only_for_the_peer_s_position() {
        let mut p = PeerRoundState::default();
        p.apply_new_round_step(3, 1, step::PREVOTE, 0);
        let mut bits = BitArray::new(2);
        bits.set(0, true);
        p.apply_new_valid_block(3, 0, header(2), bits.clone(), false);
        assert_eq!(p.parts, None, "another round, not a commit");
        p.apply_new_valid_block(3, 0, header(2), bits.clone(), true);
        assert_eq!(p.parts, Some(bits.clone()));
        p.apply_proposal_pol(3, 0, bits.clone());
        assert_eq!(p.pol, None, "not its POL round");
    }
}
