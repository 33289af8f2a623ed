//! The deterministic transition of chain state, as CometBFT v0.38's `state`
//! package performs it: the state at genesis and after InitChain, the block a
//! proposer builds from the state, the checks a block must pass against the
//! state, and the state after a block has been finalized by the application.
//!
//! This module owns that transition and never performs I/O: the application
//! is consulted elsewhere and only its responses
//! (`ResponseInitChain`, `ResponseFinalizeBlock`) come in here; persisting the
//! resulting [`State`](crate::store::State) is the store's business.
//!
//! The flow of one height, as CometBFT's `BlockExecutor` runs it:
//!
//! 1. the proposer calls [`make_block`] (time from [`block_time`]);
//! 2. every node checks a proposed or received block with [`validate_block`];
//! 3. once it is committed, the block goes to the application's
//!    FinalizeBlock, and [`next_state`] derives the state for the next height
//!    from the response (a response whose tx results do not match the block's
//!    transactions is an error on which the node must halt).
//!
//! At startup, [`genesis_state`] gives the state of a fresh chain; when the
//! application has no state yet, the node sends it [`init_chain_request`] and
//! folds the answer in with [`apply_init_chain`].

mod block;
mod genesis;
mod transition;

pub use block::{
    block_time, evidence_byte_size, make_block, needs_proof_block, next_height, validate_block,
    validate_block_with_verified_last_commit,
};
pub use genesis::{apply_init_chain, genesis_state, init_chain_request};
pub use transition::{next_state, validator_updates};

use crate::types::{Address, CommitError, Height, Time};

/// A header field that [`validate_block`] compares with the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeaderField {
    /// Block and app protocol versions.
    Version,
    /// The chain id.
    ChainId,
    /// The height.
    Height,
    /// The previous block's id.
    LastBlockId,
    /// The app hash after the previous block.
    AppHash,
    /// The hash of the consensus parameters.
    ConsensusHash,
    /// The merkle root of the previous block's tx results.
    LastResultsHash,
    /// The hash of the validators of this height.
    ValidatorsHash,
    /// The hash of the validators of the next height.
    NextValidatorsHash,
    /// The block time.
    Time,
}

/// Why a state transition, or a block checked against a state, is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The genesis document does not yield a valid state.
    #[error("invalid genesis: {0}")]
    InvalidGenesis(crate::types::Error),
    /// Neither the genesis nor the InitChain response provides validators.
    #[error("validator set is empty in genesis and still empty after InitChain")]
    NoValidators,
    /// InitChain results may only be applied to the genesis state.
    #[error("InitChain applied to a state at height {0}, after the first block")]
    NotAtGenesis(Height),
    /// The block is not internally consistent (CometBFT `Block.ValidateBasic`).
    #[error("invalid block: {0}")]
    InvalidBlock(crate::types::Error),
    /// A header field differs from what the state prescribes.
    #[error("wrong header {field:?}: expected {expected}, got {got}")]
    WrongHeader {
        /// The field.
        field: HeaderField,
        /// What the state prescribes.
        expected: String,
        /// What the block carries.
        got: String,
    },
    /// A block above the initial height without the previous block's commit.
    #[error("block at height {0} has no last commit")]
    MissingLastCommit(Height),
    /// The block at the initial height carries a last commit.
    #[error("the initial block can't have a last commit")]
    UnexpectedLastCommit,
    /// The state has no validators for the previous height.
    #[error("state has no last validators to verify the last commit with")]
    MissingLastValidators,
    /// The last commit does not prove the previous block.
    #[error("invalid last commit: {0}")]
    LastCommit(CommitError),
    /// The block time is not after the previous block's.
    #[error("block time {got:?} not greater than last block time {last:?}")]
    TimeNotIncreasing {
        /// The previous block's time.
        last: Time,
        /// This block's time.
        got: Time,
    },
    /// The proposer is not in the validator set of the height.
    #[error("block proposer {0:?} is not a validator")]
    ProposerNotValidator(Address),
    /// The evidence exceeds the consensus parameters' byte limit.
    #[error("evidence is {got} bytes, more than the maximum {max}")]
    EvidenceOverflow {
        /// `consensus_params.evidence.max_bytes`.
        max: i64,
        /// Encoded size of the block's evidence list.
        got: i64,
    },
    /// The application returned a different number of tx results than the
    /// block has transactions. The node must halt.
    #[error("the application's FinalizeBlock returned {results} tx_results for a block of {txs} transactions; an app must return exactly one result per transaction, so the node halts (fix the app, then restart: the block is executed again)")]
    TxResultsMismatch {
        /// Transactions in the block.
        txs: usize,
        /// Results in the response.
        results: usize,
    },
    /// A validator update from the application is malformed or not allowed
    /// by the consensus parameters (CometBFT `validateValidatorUpdates`).
    #[error("invalid validator update #{index}: {reason}")]
    InvalidValidatorUpdate {
        /// Position in the response's list.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The validator updates cannot be applied to the set.
    #[error("changing validator set: {0}")]
    ValidatorSetChange(crate::types::Error),
    /// The consensus parameter updates are malformed, yield invalid
    /// parameters, or break the vote-extension rules.
    #[error("invalid consensus params update: {0}")]
    ConsensusParams(crate::types::Error),
    /// The finalized header is not the state's next height.
    #[error("finalized block at height {got}, expected {expected}")]
    WrongFinalizeHeight {
        /// The state's next height.
        expected: Height,
        /// The header's height.
        got: Height,
    },
}

/// A convenience alias.
pub type Result<T, E = ExecError> = std::result::Result<T, E>;
