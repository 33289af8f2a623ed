//! Vote counting for one height: weights per round, type and value, and
//! equivocation detection as a by-product of counting.
//!
//! Owns the only definition of the thresholds (+2/3 and +1/3 of voting power)
//! so that no rule of the state machine can count differently from another.
//! Each validator counts at most once per (round, type): its first vote.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{BlockId, Round, Vote, VoteType};

/// The power thresholds of the algorithm over a fixed total power.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    total: i64,
    /// Mutant: a quorum of 2f instead of 2f+1.
    two_f_quorum: bool,
}

impl Thresholds {
    /// Thresholds over `total` voting power.
    pub fn new(total: i64) -> Self {
        Thresholds {
            total,
            two_f_quorum: false,
        }
    }

    /// Replaces the quorum with the broken 2f quorum (mutant tests only).
    #[cfg(feature = "mutants")]
    pub fn with_two_f_quorum(mut self) -> Self {
        self.two_f_quorum = true;
        self
    }

    /// "2f+1": strictly more than two thirds of the total power.
    pub fn is_quorum(&self, weight: i64) -> bool {
        if self.two_f_quorum {
            let f = (i128::from(self.total) - 1) / 3;
            return i128::from(weight) >= (2 * f).max(1);
        }
        i128::from(weight) * 3 > i128::from(self.total) * 2
    }

    /// "f+1": strictly more than one third of the total power.
    pub fn is_one_third_plus(&self, weight: i64) -> bool {
        i128::from(weight) * 3 > i128::from(self.total)
    }
}

/// Votes of one type in one round.
#[derive(Clone, Debug, Default)]
pub struct VoteSet {
    /// The first vote of each validator, by validator index.
    votes: BTreeMap<u32, Vote>,
    /// Summed power per value (`None` = nil).
    by_value: BTreeMap<Option<BlockId>, i64>,
    /// Summed power of all counted votes.
    total: i64,
    /// Validators already reported for a conflicting vote in this set.
    equivocators: BTreeSet<u32>,
    /// A proven quorum: its value, its power, and the votes of it that are
    /// not counted in `votes` (their signers voted otherwise to us first).
    certificate: Option<Certificate>,
}

/// A quorum proven by a certificate.
#[derive(Clone, Debug)]
struct Certificate {
    value: Option<BlockId>,
    power: i64,
    uncounted: BTreeMap<u32, Vote>,
}

impl VoteSet {
    /// Power of votes for `value`: those counted one by one, or the power of
    /// a certificate for it, whichever is larger.
    pub fn weight_for(&self, value: &Option<BlockId>) -> i64 {
        let counted = self.by_value.get(value).copied().unwrap_or(0);
        match &self.certificate {
            Some(c) if c.value == *value => counted.max(c.power),
            _ => counted,
        }
    }

    /// Power of all votes.
    pub fn weight_any(&self) -> i64 {
        self.total
    }

    /// The value holding a quorum, if any. At most one value can, since
    /// quorums intersect in a validator that counts once.
    pub fn quorum_value(&self, t: &Thresholds) -> Option<Option<BlockId>> {
        if let Some(c) = &self.certificate {
            return Some(c.value);
        }
        self.by_value
            .iter()
            .find(|(_, w)| t.is_quorum(**w))
            .map(|(v, _)| *v)
    }

    /// The counted votes, by validator index.
    pub fn votes(&self) -> &BTreeMap<u32, Vote> {
        &self.votes
    }

    /// The counted vote of validator `index`.
    pub fn get(&self, index: u32) -> Option<&Vote> {
        self.votes.get(&index)
    }

    /// The vote of validator `index` for `value`, counted or from a certificate.
    pub fn vote_for(&self, index: u32, value: &Option<BlockId>) -> Option<&Vote> {
        match self.votes.get(&index) {
            Some(v) if v.block_id == *value => Some(v),
            _ => self
                .certificate
                .as_ref()
                .filter(|c| c.value == *value)
                .and_then(|c| c.uncounted.get(&index)),
        }
    }

    /// True when a certificate proved a quorum here.
    pub fn is_certified(&self) -> bool {
        self.certificate.is_some()
    }

    fn remove(&mut self, index: u32, power: i64) {
        if let Some(v) = self.votes.remove(&index) {
            if let Some(w) = self.by_value.get_mut(&v.block_id) {
                *w -= power;
                if *w == 0 {
                    self.by_value.remove(&v.block_id);
                }
            }
            self.total -= power;
        }
    }
}

/// Prevotes and precommits of one round, and who sent anything in it.
#[derive(Clone, Debug, Default)]
pub struct RoundVotes {
    /// Prevotes.
    pub prevotes: VoteSet,
    /// Precommits.
    pub precommits: VoteSet,
    /// Validators with at least one vote in this round (for L55).
    senders: BTreeSet<u32>,
    /// Their summed power.
    sender_weight: i64,
}

impl RoundVotes {
    /// The vote set of `vote_type`.
    pub fn of(&self, vote_type: VoteType) -> &VoteSet {
        match vote_type {
            VoteType::Prevote => &self.prevotes,
            VoteType::Precommit => &self.precommits,
        }
    }

    /// Power of the distinct validators that sent any vote in this round.
    pub fn sender_weight(&self) -> i64 {
        self.sender_weight
    }
}

/// What adding a vote did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// Counted.
    Added,
    /// The same vote was already counted; nothing changed.
    Duplicate,
    /// The validator already voted differently for this round and type; the
    /// new vote is not counted. Carries the first vote. Reported once per
    /// validator, round and type.
    Conflict(Box<Vote>),
    /// Another conflicting vote from a validator already reported for this
    /// round and type; not counted.
    AlreadyReported,
}

/// All votes of one height.
#[derive(Clone, Debug)]
pub struct VoteKeeper {
    thresholds: Thresholds,
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteKeeper {
    /// An empty keeper for a height with the given thresholds.
    pub fn new(thresholds: Thresholds) -> Self {
        VoteKeeper {
            thresholds,
            rounds: BTreeMap::new(),
        }
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Votes of `round`, if any arrived.
    pub fn round(&self, round: Round) -> Option<&RoundVotes> {
        self.rounds.get(&round)
    }

    /// All rounds with votes, ascending.
    pub fn rounds(&self) -> impl Iterator<Item = (&Round, &RoundVotes)> {
        self.rounds.iter()
    }

    /// True when `validator` already has a vote in `round`.
    pub fn has_voted_in(&self, round: Round, validator: u32) -> bool {
        self.rounds
            .get(&round)
            .is_some_and(|r| r.senders.contains(&validator))
    }

    /// Rounds above `above` in which `validator` has votes, ascending.
    pub fn rounds_voted_above(&self, above: Round, validator: u32) -> Vec<Round> {
        match above.checked_add(1) {
            Some(from) => self
                .rounds
                .range(from..)
                .filter(|(_, r)| r.senders.contains(&validator))
                .map(|(r, _)| *r)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Records a certificate: `votes` (already authenticated, one per
    /// validator, all of this round and type and of one value) whose signers
    /// hold `power`, a quorum. Only the first certificate of a round and type
    /// is kept: a second value cannot have a quorum unless more than 1/3 of
    /// the power equivocated.
    pub fn certify(&mut self, round: Round, vote_type: VoteType, votes: Vec<(Vote, i64)>) {
        let Some((first, _)) = votes.first() else {
            return;
        };
        let value = first.block_id;
        let rv = self.rounds.entry(round).or_default();
        let set = match vote_type {
            VoteType::Prevote => &mut rv.prevotes,
            VoteType::Precommit => &mut rv.precommits,
        };
        if set.certificate.is_some() {
            return;
        }
        let power = votes.iter().map(|(_, p)| *p).sum();
        let uncounted = votes
            .into_iter()
            .filter(|(v, _)| set.votes.get(&v.validator_index).map(|c| c.block_id) != Some(value))
            .map(|(v, _)| (v.validator_index, v))
            .collect();
        set.certificate = Some(Certificate {
            value,
            power,
            uncounted,
        });
    }

    /// Forgets the votes of `validator` (of voting `power`) in `round`. Used
    /// only for rounds above the current one, where no rule has acted on
    /// them unless it moved the round: forgetting can delay, never mislead.
    pub fn forget(&mut self, round: Round, validator: u32, power: i64) {
        let Some(rv) = self.rounds.get_mut(&round) else {
            return;
        };
        rv.prevotes.remove(validator, power);
        rv.precommits.remove(validator, power);
        if rv.senders.remove(&validator) {
            rv.sender_weight -= power;
        }
        if rv.senders.is_empty() && !rv.prevotes.is_certified() && !rv.precommits.is_certified() {
            self.rounds.remove(&round);
        }
    }

    /// Counts `vote` (already authenticated) with the signer's `power`.
    pub fn add(&mut self, vote: Vote, power: i64) -> AddOutcome {
        let round = self.rounds.entry(vote.round).or_default();
        let index = vote.validator_index;
        let set = match vote.vote_type {
            VoteType::Prevote => &mut round.prevotes,
            VoteType::Precommit => &mut round.precommits,
        };
        if let Some(first) = set.votes.get(&index) {
            // Same value (timestamps may differ only if the signer re-signed,
            // which the double-sign guard forbids; treat as duplicate).
            if first.block_id == vote.block_id {
                return AddOutcome::Duplicate;
            }
            let first = Box::new(first.clone());
            if set.equivocators.insert(index) {
                return AddOutcome::Conflict(first);
            }
            return AddOutcome::AlreadyReported;
        }
        *set.by_value.entry(vote.block_id).or_insert(0) += power;
        set.total += power;
        set.votes.insert(index, vote);
        if round.senders.insert(index) {
            round.sender_weight += power;
        }
        AddOutcome::Added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Address, Hash, PartSetHeader, Signature, Time};

    fn vote(index: u32, round: Round, vote_type: VoteType, value: Option<u8>) -> Vote {
        Vote {
            vote_type,
            height: 1,
            round,
            block_id: value.map(|b| BlockId {
                hash: Hash([b; 32]),
                part_set_header: PartSetHeader {
                    total: 1,
                    hash: Hash([b; 32]),
                },
            }),
            timestamp: Time::default(),
            validator_address: Address([index as u8; 20]),
            validator_index: index,
            signature: Signature::default(),
            extension: vec![],
            extension_signature: vec![],
        }
    }

    #[test]
    fn quorum_is_strictly_more_than_two_thirds() {
        let t = Thresholds::new(3);
        assert!(!t.is_quorum(2));
        assert!(t.is_quorum(3));
        let t = Thresholds::new(4);
        assert!(!t.is_quorum(2));
        assert!(t.is_quorum(3));
        let t = Thresholds::new(100);
        assert!(!t.is_quorum(66));
        assert!(t.is_quorum(67));
        // Exactly two thirds is not enough.
        let t = Thresholds::new(6);
        assert!(!t.is_quorum(4));
        assert!(t.is_quorum(5));
    }

    #[test]
    fn one_third_plus_is_strict() {
        let t = Thresholds::new(3);
        assert!(!t.is_one_third_plus(1));
        assert!(t.is_one_third_plus(2));
        let t = Thresholds::new(4);
        assert!(t.is_one_third_plus(2));
        assert!(!t.is_one_third_plus(1));
    }

    #[test]
    fn thresholds_do_not_overflow_at_max_total_power() {
        let total = i64::MAX / 8;
        let t = Thresholds::new(total);
        assert!(t.is_quorum(total));
        assert!(!t.is_quorum(total / 3 * 2));
    }

    #[test]
    fn counts_each_validator_once_and_reports_conflicts() {
        let mut k = VoteKeeper::new(Thresholds::new(4));
        assert_eq!(
            k.add(vote(0, 0, VoteType::Prevote, Some(1)), 1),
            AddOutcome::Added
        );
        assert_eq!(
            k.add(vote(0, 0, VoteType::Prevote, Some(1)), 1),
            AddOutcome::Duplicate
        );
        match k.add(vote(0, 0, VoteType::Prevote, None), 1) {
            AddOutcome::Conflict(first) => assert_eq!(first.block_id.map(|b| b.hash.0[0]), Some(1)),
            other => panic!("expected conflict, got {other:?}"),
        }
        assert_eq!(
            k.add(vote(0, 0, VoteType::Prevote, Some(9)), 1),
            AddOutcome::AlreadyReported,
            "one report per validator, round and type"
        );
        // A precommit by the same validator is a different vote type.
        assert_eq!(
            k.add(vote(0, 0, VoteType::Precommit, None), 1),
            AddOutcome::Added
        );
        let r = k.round(0).expect("round 0 has votes");
        assert_eq!(r.prevotes.weight_any(), 1);
        assert_eq!(r.prevotes.weight_for(&None), 0);
        assert_eq!(r.sender_weight(), 1);
    }

    #[test]
    fn quorum_value_needs_weight_not_count() {
        // 7 of 12 is not more than 2/3; 9 of 12 is.
        let mut k = VoteKeeper::new(Thresholds::new(12));
        k.add(vote(0, 0, VoteType::Prevote, Some(7)), 6);
        k.add(vote(1, 0, VoteType::Prevote, Some(7)), 1);
        let t = *k.thresholds();
        assert_eq!(k.round(0).map(|r| r.prevotes.quorum_value(&t)), Some(None));
        k.add(vote(2, 0, VoteType::Prevote, Some(7)), 2);
        let q = k.round(0).and_then(|r| r.prevotes.quorum_value(&t));
        assert_eq!(q.flatten().map(|b| b.hash.0[0]), Some(7));
        assert!(k.rounds_voted_above(0, 0).is_empty());
        k.add(vote(0, 3, VoteType::Prevote, None), 6);
        k.add(vote(0, 3, VoteType::Precommit, None), 6);
        assert_eq!(k.rounds_voted_above(0, 0), vec![3]);
        assert!(k.has_voted_in(3, 0));
        k.forget(3, 0, 6);
        assert!(!k.has_voted_in(3, 0));
        assert!(k.round(3).is_none(), "an emptied round is dropped");
        assert_eq!(k.round(0).map(|r| r.prevotes.weight_any()), Some(9));
    }
}
