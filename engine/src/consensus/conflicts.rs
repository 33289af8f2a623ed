//! Votes the core did not count because their validator had already voted
//! differently (equivocation), kept so that a quorum that includes them can
//! still reach the core as an [`Input::Certificate`].
//!
//! Why: a node that first saw an equivocator's vote for A counts only that
//! one, while its peers may have formed a quorum for B with the
//! equivocator's other vote. Gossip delivers that other vote (peers learn
//! through VoteSetMaj23/VoteSetBits which votes for B we lack), the core
//! reports the equivocation, and this pool, holding the votes for B the
//! core refused, completes the proof from the core's own votes for B plus
//! these. Without it such a node could never count the quorum its peers
//! decided with.
//!
//! Pure and bounded: at most one refused vote per validator, round and
//! type, for the current height only.

use std::collections::{BTreeMap, BTreeSet};

use super::{Consensus, Input};
use crate::types::{BlockId, Height, Round, Vote, VoteType};

/// Most refused votes kept per height (one per validator per round and
/// type makes this roomy for any real set; a flood cannot grow it).
const MAX_KEPT: usize = 4096;

fn kind(t: VoteType) -> u8 {
    match t {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    }
}

/// The refused votes of one height.
#[derive(Debug, Default)]
pub struct ConflictPool {
    height: Height,
    votes: BTreeMap<(Round, u8, u32), Vote>,
    certified: BTreeSet<(Round, u8, Option<BlockId>)>,
}

impl ConflictPool {
    /// Keeps `vote`, a validator's second vote the core reported as an
    /// equivocation, and returns a certificate if, with the core's own
    /// votes for the same value, it completes a quorum the core does not
    /// count yet (once per round, type and value).
    pub fn add(&mut self, vote: Vote, core: &Consensus) -> Option<Input> {
        let height = core.round_state().height;
        if vote.height != height {
            return None;
        }
        if self.height != height {
            *self = ConflictPool {
                height,
                ..ConflictPool::default()
            };
        }
        let (round, vote_type, value) = (vote.round, vote.vote_type, vote.block_id);
        if self.votes.len() < MAX_KEPT {
            self.votes
                .entry((round, kind(vote_type), vote.validator_index))
                .or_insert(vote);
        }
        self.check(round, vote_type, value, core)
    }

    /// After the core counted a vote: a certificate if refused votes kept
    /// here now complete a quorum with the core's votes for its value.
    pub fn on_counted(&mut self, vote: &Vote, core: &Consensus) -> Option<Input> {
        if self.votes.is_empty() || vote.height != self.height {
            return None;
        }
        self.check(vote.round, vote.vote_type, vote.block_id, core)
    }

    fn check(
        &mut self,
        round: Round,
        vote_type: VoteType,
        value: Option<BlockId>,
        core: &Consensus,
    ) -> Option<Input> {
        let k = kind(vote_type);
        if self.certified.contains(&(round, k, value))
            || !self
                .votes
                .iter()
                .any(|((r, kk, _), v)| (*r, *kk) == (round, k) && v.block_id == value)
        {
            return None;
        }
        let validators = core.validators()?;
        let counted = core.votes().round(round).map(|rv| rv.of(vote_type));
        let mut chosen: BTreeMap<u32, Vote> = counted
            .map(|set| {
                set.votes()
                    .iter()
                    .filter(|(_, v)| v.block_id == value)
                    .map(|(i, v)| (*i, v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for ((r, kk, index), v) in &self.votes {
            if (*r, *kk) == (round, k) && v.block_id == value {
                chosen.entry(*index).or_insert_with(|| v.clone());
            }
        }
        let power: i64 = chosen
            .keys()
            .filter_map(|i| validators.validators.get(*i as usize))
            .map(|v| v.voting_power)
            .sum();
        let core_power = counted.map_or(0, |set| set.weight_for(&value));
        let quorum = |p: i64| core.votes().thresholds().is_quorum(p);
        // The core already counts a quorum for this value: nothing to add.
        if !quorum(power) || quorum(core_power) {
            return None;
        }
        self.certified.insert((round, k, value));
        Some(Input::Certificate(chosen.into_values().collect()))
    }
}
