//! The Tendermint consensus algorithm (Buchman, Kwon, Milosevic 2018,
//! Algorithm 1) as a sans-IO state machine.
//!
//! [`Consensus::handle`] takes one [`Input`] and returns the [`Output`]s to
//! carry out. It owns no clock, socket, disk or randomness: the same inputs in
//! the same order always give the same outputs, which is what makes WAL replay
//! and deterministic Byzantine simulation possible. Comments of the form
//! `// L22` name the line of Algorithm 1 a branch implements.
//!
//! The core never signs: it emits unsigned votes and proposals, and the I/O
//! layer signs them through the double-sign guard and feeds the signed message
//! back as an input, exactly like a message from a peer.

mod conflicts;
mod error;
mod input;
mod output;
mod state;
mod votes;

#[cfg(test)]
mod tests;

#[cfg(feature = "mutants")]
pub mod mutants;

pub use conflicts::ConflictPool;
pub use error::InputError;
pub use input::Input;
pub use output::Output;
pub use state::{Consensus, RoundState, Step};
pub use votes::{AddOutcome, RoundVotes, Thresholds, VoteKeeper, VoteSet};

use std::time::Duration;

use crate::types::{PublicKey, Round, Signature};

/// The step a timeout belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeoutStep {
    /// timeoutPropose (L57).
    Propose,
    /// timeoutPrevote (L61).
    Prevote,
    /// timeoutPrecommit (L65).
    Precommit,
    /// The longest round 0 waits for transactions before proposing
    /// (`create_empty_blocks_interval`; CometBFT's RoundStepNewRound
    /// timeout). Scheduled only when round 0 waits and the interval is set.
    NewRound,
}

/// Timeout durations with CometBFT's per-round increments: the timeout of a
/// step in round r is `base + r * delta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// timeout_propose (CometBFT default 3 s).
    pub propose: Duration,
    /// timeout_propose_delta (default 500 ms).
    pub propose_delta: Duration,
    /// timeout_prevote (default 1 s).
    pub prevote: Duration,
    /// timeout_prevote_delta (default 500 ms).
    pub prevote_delta: Duration,
    /// timeout_precommit (default 1 s).
    pub precommit: Duration,
    /// timeout_precommit_delta (default 500 ms).
    pub precommit_delta: Duration,
    /// timeout_commit (default 1 s): the I/O layer waits this long after a
    /// decision before starting the next height.
    pub commit: Duration,
    /// create_empty_blocks_interval (default 0, no limit): when round 0
    /// waits for transactions, it proposes after this long anyway.
    pub create_empty_blocks_interval: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            propose: Duration::from_millis(3000),
            propose_delta: Duration::from_millis(500),
            prevote: Duration::from_millis(1000),
            prevote_delta: Duration::from_millis(500),
            precommit: Duration::from_millis(1000),
            precommit_delta: Duration::from_millis(500),
            commit: Duration::from_millis(1000),
            create_empty_blocks_interval: Duration::ZERO,
        }
    }
}

impl Timeouts {
    /// The duration of `step`'s timeout in `round`.
    pub fn duration(&self, step: TimeoutStep, round: Round) -> Duration {
        let (base, delta) = match step {
            TimeoutStep::Propose => (self.propose, self.propose_delta),
            TimeoutStep::Prevote => (self.prevote, self.prevote_delta),
            TimeoutStep::Precommit => (self.precommit, self.precommit_delta),
            // Only round 0 waits for transactions: no per-round increment.
            TimeoutStep::NewRound => (self.create_empty_blocks_interval, Duration::ZERO),
        };
        base.saturating_add(delta.saturating_mul(round))
    }
}

/// Checks signatures for the core. Production verifies directly; a simulator
/// may memoize, since verification is a pure function of its arguments.
pub trait SignatureVerifier: Send + Sync {
    /// True when `signature` is a valid signature of `msg` by `key`.
    fn verify(&self, key: &PublicKey, msg: &[u8], signature: &Signature) -> bool;
}

/// Verifies each signature with ed25519 (ZIP-215 rules).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ed25519Verifier;

impl SignatureVerifier for Ed25519Verifier {
    fn verify(&self, key: &PublicKey, msg: &[u8], signature: &Signature) -> bool {
        key.verify(msg, signature).is_ok()
    }
}

/// Static configuration of a consensus instance.
#[derive(Clone, Debug)]
pub struct Config {
    /// Chain ID, part of every signed message.
    pub chain_id: String,
    /// Our validator address, or `None` for a non-validating node.
    pub address: Option<crate::types::Address>,
    /// Step timeouts.
    pub timeouts: Timeouts,
    /// How many rounds above the current one a validator's votes are kept
    /// (messages further ahead are dropped; at most this many future rounds
    /// are kept per validator, bounding memory under floods).
    pub future_rounds_per_validator: usize,
    /// Deliberate bugs, for tests proving the simulator catches them.
    #[cfg(feature = "mutants")]
    pub mutant: Option<mutants::Mutant>,
}

impl Config {
    /// A configuration with CometBFT's default timeouts.
    pub fn new(chain_id: impl Into<String>, address: Option<crate::types::Address>) -> Self {
        Config {
            chain_id: chain_id.into(),
            address,
            timeouts: Timeouts::default(),
            future_rounds_per_validator: 2,
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }
}
