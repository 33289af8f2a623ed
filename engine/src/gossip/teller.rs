//! What the consensus core accepted, turned into the [`OurEvent`]s gossip
//! needs. The node's driver and the simulator's gossip mode share this one
//! mapping, so the simulator exercises the gossip the node runs.
//!
//! Pure: it reads the core after each input and remembers only what it
//! last reported (position and wanted blocks), to report changes once.

use crate::consensus::{Consensus, Input, Step};
use crate::types::{BlockId, Height, Vote};

use super::peer::step as wire_step;
use super::reactor::OurEvent;

/// Reports the core's state to gossip as events.
#[derive(Debug, Default)]
pub struct Teller {
    /// The height, round, wire step and wanted blocks last reported.
    told: (Height, u32, u8, Vec<BlockId>),
}

impl Teller {
    /// Everything the core holds at its height: on a new height (the core
    /// then also takes what it buffered for it) and after a WAL replay.
    /// `HeightStarted` carries no last commit: the reactor reads it from its
    /// store.
    pub fn all(&mut self, core: &Consensus) -> Vec<OurEvent> {
        let rs = core.round_state();
        let Some(validators) = core.validators() else {
            return Vec::new();
        };
        let mut out = vec![OurEvent::HeightStarted {
            height: rs.height,
            powers: validators
                .validators
                .iter()
                .map(|v| v.voting_power)
                .collect(),
            last_commit: None,
        }];
        for round in 0..=rs.round {
            if let Some(p) = core.proposal(round) {
                // The parts first, so that the proposal finds them.
                if let Some(block) = core.block(&p.block_id) {
                    out.push(OurEvent::Block(block.clone()));
                }
                out.push(OurEvent::Proposal(p.clone()));
            }
        }
        for (_, rv) in core.votes().rounds() {
            for v in rv
                .prevotes
                .votes()
                .values()
                .chain(rv.precommits.votes().values())
            {
                out.push(OurEvent::Vote(v.clone()));
            }
        }
        self.told = (rs.height, u32::MAX, 0, Vec::new());
        out.extend(self.position(core));
        out
    }

    /// What `input`, which the core just accepted, changed.
    pub fn accepted(&mut self, core: &Consensus, input: &Input) -> Vec<OurEvent> {
        let mut out = Vec::new();
        match input {
            Input::StartHeight { .. } => return self.all(core),
            Input::Proposal(p) if core.proposal(p.round) == Some(p) => {
                out.push(OurEvent::Proposal(p.clone()));
            }
            // Only a vote the core holds: an equivocator's refused vote
            // would replace, in gossip's view, the one the core counts.
            Input::Vote(v) if holds(core, v) => out.push(OurEvent::Vote(v.clone())),
            Input::Certificate(votes) => {
                out.extend(votes.iter().map(|v| OurEvent::Vote(v.clone())));
            }
            Input::Block { block_id, block } if core.block(block_id).is_some() => {
                out.push(OurEvent::Block(block.clone()));
            }
            _ => {}
        }
        out.extend(self.position(core));
        out
    }

    /// The core's (round, step) and wanted blocks, each if it changed.
    pub fn position(&mut self, core: &Consensus) -> Vec<OurEvent> {
        let rs = core.round_state();
        if rs.step == Step::Unstarted {
            return Vec::new();
        }
        let mut out = Vec::new();
        let step = wire_step_of(rs.step);
        if (self.told.0, self.told.1, self.told.2) != (rs.height, rs.round, step) {
            self.told = (rs.height, rs.round, step, std::mem::take(&mut self.told.3));
            out.push(OurEvent::Position {
                round: i32::try_from(rs.round).unwrap_or(i32::MAX),
                step,
            });
        }
        let wanted = core.wanted_blocks();
        if wanted != self.told.3 {
            self.told.3 = wanted.clone();
            out.push(OurEvent::Wanted(wanted));
        }
        out
    }
}

/// Whether the core holds exactly this vote at its height (counted, or in
/// a certificate).
pub fn holds(core: &Consensus, v: &Vote) -> bool {
    v.height == core.round_state().height
        && core
            .votes()
            .round(v.round)
            .and_then(|rv| rv.of(v.vote_type).vote_for(v.validator_index, &v.block_id))
            .is_some_and(|held| held == v)
}

/// CometBFT's `RoundStepType` number for a core step.
pub fn wire_step_of(step: Step) -> u8 {
    match step {
        Step::Unstarted => wire_step::NEW_HEIGHT,
        Step::NewRound => wire_step::NEW_ROUND,
        Step::Propose => wire_step::PROPOSE,
        Step::Prevote => wire_step::PREVOTE,
        Step::Precommit => wire_step::PRECOMMIT,
        Step::Commit => wire_step::COMMIT,
    }
}
