//! The per-height state machine (placeholder signatures; implementation follows).
#![allow(missing_docs, unused)]

use std::sync::Arc;

use super::{Config, Input, InputError, Output, SignatureVerifier};
use crate::types::{BlockId, Height, Round};

/// The step within a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// No height started yet.
    Unstarted,
    /// Waiting for the round's proposal.
    Propose,
    /// Prevoted; waiting for +2/3 prevotes.
    Prevote,
    /// Precommitted; waiting for +2/3 precommits.
    Precommit,
    /// The height is decided; waiting for `StartHeight`.
    Commit,
}

/// A snapshot of the core's position, for RPC (`consensus_state`) and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundState {
    pub height: Height,
    pub round: Round,
    pub step: Step,
    pub locked: Option<(Round, BlockId)>,
    pub valid: Option<(Round, BlockId)>,
    pub decision: Option<(Round, BlockId)>,
}

/// The consensus core of one node.
pub struct Consensus {
    config: Config,
    verifier: Arc<dyn SignatureVerifier>,
}

impl Consensus {
    pub fn new(config: Config, verifier: Arc<dyn SignatureVerifier>) -> Self {
        Consensus { config, verifier }
    }
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, InputError> {
        todo!()
    }
    pub fn round_state(&self) -> RoundState {
        todo!()
    }
}
