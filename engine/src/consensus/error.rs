//! Why the core refused an input.

use crate::types::{Address, Height, Round};

/// An input the core rejected. Rejection changes no state; the I/O layer may
/// use the reason to score the peer that sent the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The signature does not verify (wrong key, corrupted, or another chain).
    #[error("invalid signature from {0:?}")]
    InvalidSignature(Address),
    /// The signer is not in the validator set of the message's height.
    #[error("unknown validator {0:?}")]
    UnknownValidator(Address),
    /// validator_index does not match validator_address.
    #[error("validator index {index} does not belong to {address:?}")]
    WrongValidatorIndex {
        /// The claimed index.
        index: u32,
        /// The claimed address.
        address: Address,
    },
    /// The proposal is not signed by the proposer of its round.
    #[error("proposal for round {round} not from its proposer")]
    NotProposer {
        /// The proposal's round.
        round: Round,
    },
    /// A proposal's POL round is not below its round.
    #[error("invalid POL round {pol_round} for round {round}")]
    InvalidPolRound {
        /// The proposal round.
        round: Round,
        /// The claimed POL round.
        pol_round: Round,
    },
    /// The message is for a height already decided, or too far ahead to buffer.
    #[error("message for height {got} while at height {current}")]
    WrongHeight {
        /// The message's height.
        got: Height,
        /// Our height.
        current: Height,
    },
    /// The message is for a round too far ahead to keep.
    #[error("round {got} too far ahead of round {current}")]
    RoundTooFarAhead {
        /// The message's round.
        got: Round,
        /// Our round.
        current: Round,
    },
    /// A certificate is not a quorum of valid votes for one value.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(&'static str),
    /// A buffer for future messages is full.
    #[error("future-message buffer full")]
    BufferFull,
    /// The block does not match any proposal or vote of this height, or its
    /// height is wrong.
    #[error("unexpected block")]
    UnexpectedBlock,
    /// `StartHeight` did not move forward, or the validator set is empty.
    #[error("invalid start of height {0}")]
    InvalidStart(Height),
    /// The core has not started a height yet.
    #[error("consensus not started")]
    NotStarted,
}
