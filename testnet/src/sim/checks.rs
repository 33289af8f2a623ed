//! What a run observes and the properties checked against it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use engine::types::{Address, BlockId, Height, Round, Vote, VoteType};

use super::message::short_id;

/// A property of the consensus protocol the simulator checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    /// No two honest validators decide different blocks at a height (and no
    /// honest validator changes its decision, e.g. after a restart).
    Agreement,
    /// A decided block was accepted by some honest validator's ProcessProposal.
    Validity,
    /// After GST every honest validator decides every target height within the
    /// round bound, and the run reaches the target heights.
    Termination,
    /// Every pair of conflicting votes an honest core accepted at its height
    /// produced an `Output::Equivocation`.
    Evidence,
    /// The core asked an honest node to sign a vote or proposal conflicting
    /// with one it had signed (the double-sign guard refused).
    SignGuard,
    /// The core panicked.
    Panic,
}

impl Property {
    /// Safety properties end a run as soon as they are violated.
    pub fn is_safety(self) -> bool {
        matches!(self, Property::Agreement | Property::Validity)
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Property::Agreement => "agreement",
            Property::Validity => "validity",
            Property::Termination => "termination",
            Property::Evidence => "evidence",
            Property::SignGuard => "sign-guard",
            Property::Panic => "panic",
        })
    }
}

/// One violated property, with when and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The property.
    pub property: Property,
    /// Simulated time in milliseconds.
    pub time_ms: u64,
    /// Human-readable details.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}ms: {}",
            self.property, self.time_ms, self.detail
        )
    }
}

pub(crate) type VoteSlot = (Height, Round, VoteType, Address);
type EvidencePair = (VoteSlot, Option<BlockId>, Option<BlockId>);

/// A decision of an honest node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decision {
    pub round: Round,
    pub block_id: BlockId,
    pub time: u64,
}

/// Everything a run records for the checks and the report.
pub(crate) struct Recorder {
    trace: Option<Vec<String>>,
    honest: Vec<bool>,
    /// Honest decisions per height and node.
    pub decisions: BTreeMap<Height, BTreeMap<usize, Decision>>,
    /// Blocks an honest node's ProcessProposal accepted, and by whom.
    pub accepted_blocks: BTreeMap<BlockId, BTreeSet<usize>>,
    /// Per honest node: votes its core accepted while at their height, one per
    /// distinct block id per slot, in order.
    accepted_votes: Vec<BTreeMap<VoteSlot, Vec<Option<BlockId>>>>,
    /// Per honest node: equivocation outputs as (slot, block id pair).
    evidence: Vec<BTreeSet<EvidencePair>>,
    /// Distinct equivocations reported by honest nodes.
    pub evidence_count: u64,
    /// Violations found so far.
    pub violations: Vec<Violation>,
    /// (height, round) of each honest node at GST.
    pub gst_positions: Vec<Option<(Height, Round)>>,
}

impl Recorder {
    pub fn new(honest: Vec<bool>, trace: bool) -> Self {
        let n = honest.len();
        Recorder {
            trace: trace.then(Vec::new),
            honest,
            decisions: BTreeMap::new(),
            accepted_blocks: BTreeMap::new(),
            accepted_votes: vec![BTreeMap::new(); n],
            evidence: vec![BTreeSet::new(); n],
            evidence_count: 0,
            violations: Vec::new(),
            gst_positions: vec![None; n],
        }
    }

    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    pub fn trace_line(&mut self, now: u64, line: String) {
        if let Some(t) = &mut self.trace {
            t.push(format!("{now:>8}ms {line}"));
        }
    }

    pub fn take_trace(&mut self) -> Vec<String> {
        self.trace.take().unwrap_or_default()
    }

    pub fn violation(&mut self, now: u64, property: Property, detail: String) {
        self.trace_line(now, format!("VIOLATION {property}: {detail}"));
        self.violations.push(Violation {
            property,
            time_ms: now,
            detail,
        });
    }

    pub fn has_safety_violation(&self) -> bool {
        self.violations.iter().any(|v| v.property.is_safety())
    }

    /// An honest node's ProcessProposal accepted `block_id`.
    pub fn app_accepted(&mut self, node: usize, block_id: BlockId) {
        self.accepted_blocks
            .entry(block_id)
            .or_default()
            .insert(node);
    }

    /// An honest node decided; checks agreement and validity on the spot.
    pub fn decide(
        &mut self,
        now: u64,
        node: usize,
        height: Height,
        round: Round,
        block_id: BlockId,
        invalid_marker: bool,
    ) {
        if !self.honest[node] {
            return;
        }
        let at_height = self.decisions.entry(height).or_default();
        if let Some(prev) = at_height.get(&node) {
            if prev.block_id != block_id {
                let detail = format!(
                    "n{node} decided {} then {} at height {height}",
                    short_id(&Some(prev.block_id)),
                    short_id(&Some(block_id))
                );
                self.violation(now, Property::Agreement, detail);
            }
            return;
        }
        let conflict = at_height
            .iter()
            .find(|(_, d)| d.block_id != block_id)
            .map(|(other, d)| (*other, d.block_id));
        at_height.insert(
            node,
            Decision {
                round,
                block_id,
                time: now,
            },
        );
        if let Some((other, other_id)) = conflict {
            let detail = format!(
                "height {height}: n{other} decided {} but n{node} decided {} (round {round})",
                short_id(&Some(other_id)),
                short_id(&Some(block_id))
            );
            self.violation(now, Property::Agreement, detail);
        }
        let accepted = self
            .accepted_blocks
            .get(&block_id)
            .is_some_and(|s| !s.is_empty());
        if invalid_marker || !accepted {
            let detail = format!(
                "n{node} decided {} at height {height} round {round}, which no honest validator's ProcessProposal accepted{}",
                short_id(&Some(block_id)),
                if invalid_marker { " (it carries the invalid tx)" } else { "" }
            );
            self.violation(now, Property::Validity, detail);
        }
    }

    /// An honest core returned Ok for `vote` while at the vote's height.
    pub fn vote_accepted(&mut self, node: usize, vote: &Vote) {
        let slot = (
            vote.height,
            vote.round,
            vote.vote_type,
            vote.validator_address,
        );
        let seen = self.accepted_votes[node].entry(slot).or_default();
        if !seen.contains(&vote.block_id) {
            seen.push(vote.block_id);
        }
    }

    /// How many conflicting vote pairs at `height` `node`'s core reported
    /// (only the first vote of a slot counts towards quorums in the core).
    pub fn conflicts_at(&self, node: usize, height: Height) -> usize {
        self.evidence[node]
            .iter()
            .filter(|(slot, _, _)| slot.0 == height)
            .count()
    }

    /// An honest core reported an equivocation.
    pub fn equivocation(&mut self, node: usize, first: &Vote, second: &Vote) {
        let slot = (
            first.height,
            first.round,
            first.vote_type,
            first.validator_address,
        );
        let (a, b) = if first.block_id <= second.block_id {
            (first.block_id, second.block_id)
        } else {
            (second.block_id, first.block_id)
        };
        if self.evidence[node].insert((slot, a, b)) {
            self.evidence_count += 1;
        }
    }

    /// The evidence property, checked at the end of a run.
    pub fn check_evidence(&mut self, now: u64) {
        let mut missing = Vec::new();
        for (node, slots) in self.accepted_votes.iter().enumerate() {
            for (slot, ids) in slots {
                // The core reports a validator once per height, round and
                // type, however many different votes it sends there.
                let reported = self.evidence[node]
                    .range((*slot, None, None)..)
                    .take_while(|(s, _, _)| s == slot)
                    .next()
                    .is_some();
                for id in ids.iter().skip(1) {
                    if !reported {
                        missing.push(format!(
                            "n{node} accepted conflicting {:?}s h{} r{} by {:?} ({} vs {}) without an Equivocation output",
                            slot.2,
                            slot.0,
                            slot.1,
                            slot.3,
                            short_id(&ids[0]),
                            short_id(id)
                        ));
                    }
                }
            }
        }
        if let Some(first) = missing.first().cloned() {
            let more = missing.len() - 1;
            let detail = if more > 0 {
                format!("{first} (and {more} more)")
            } else {
                first
            };
            self.violation(now, Property::Evidence, detail);
        }
    }

    /// The round bound of termination, checked at the end of a run: a height
    /// decided after GST takes at most `max_rounds` rounds above the highest
    /// round an honest node was in at that height at GST.
    pub fn check_round_bound(&mut self, now: u64, gst: u64, max_rounds: Round) {
        let mut start_round: BTreeMap<Height, Round> = BTreeMap::new();
        for (h, r) in self.gst_positions.iter().flatten() {
            let e = start_round.entry(*h).or_default();
            *e = (*e).max(*r);
        }
        let mut bad = None;
        for (h, per_node) in &self.decisions {
            let bound = start_round.get(h).copied().unwrap_or(0) + max_rounds;
            for (node, d) in per_node {
                if d.time >= gst && d.round > bound && bad.is_none() {
                    bad = Some(format!(
                        "n{node} decided height {h} in round {} after GST, above the bound {bound}",
                        d.round
                    ));
                }
            }
        }
        if let Some(detail) = bad {
            self.violation(now, Property::Termination, detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::types::{Hash, PartSetHeader, Signature, Time};

    fn vote(block: u8) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height: 1,
            round: 0,
            block_id: Some(BlockId {
                hash: Hash([block; 32]),
                part_set_header: PartSetHeader::default(),
            }),
            timestamp: Time::default(),
            validator_address: Address([7; 20]),
            validator_index: 3,
            signature: Signature::default(),
            extension: Vec::new(),
            extension_signature: Vec::new(),
        }
    }

    #[test]
    fn conflicting_votes_without_equivocation_violate_evidence() {
        let mut rec = Recorder::new(vec![true, true], false);
        rec.vote_accepted(0, &vote(1));
        rec.vote_accepted(0, &vote(1));
        rec.vote_accepted(0, &vote(2));
        rec.vote_accepted(1, &vote(1));
        rec.vote_accepted(1, &vote(2));
        rec.equivocation(1, &vote(1), &vote(2));
        rec.check_evidence(10);
        assert_eq!(rec.violations.len(), 1, "{:?}", rec.violations);
        assert_eq!(rec.violations[0].property, Property::Evidence);
        assert!(rec.violations[0].detail.starts_with("n0 "));
    }

    #[test]
    fn different_decisions_violate_agreement_and_unaccepted_ones_validity() {
        let mut rec = Recorder::new(vec![true, true, false], false);
        let a = vote(1).block_id.unwrap_or_default();
        let b = vote(2).block_id.unwrap_or_default();
        rec.app_accepted(0, a);
        rec.decide(5, 0, 1, 0, a, false);
        assert!(rec.violations.is_empty());
        rec.decide(6, 1, 1, 0, b, false);
        let props: Vec<_> = rec.violations.iter().map(|v| v.property).collect();
        assert_eq!(props, [Property::Agreement, Property::Validity]);
        // Byzantine decisions are not recorded.
        rec.decide(7, 2, 1, 0, b, false);
        assert_eq!(rec.violations.len(), 2);
    }
}
