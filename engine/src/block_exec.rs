//! Running decided blocks through the application and persisting the result
//! (CometBFT's `BlockExecutor.ApplyBlock`), and the handshake that brings the
//! application and the stores into agreement when the node starts
//! (CometBFT's `Handshaker`, consensus/replay.go).
//!
//! The pure state transition is [`crate::execution`]; this module adds the
//! application calls and the store writes around it, in the order that makes
//! a crash at any point recoverable: block and seen commit are saved before
//! FinalizeBlock, the FinalizeBlock response before Commit, and the state
//! after Commit. [`handshake`] finishes whatever a crash interrupted.

use abci::proto::{
    CommitInfo, Misbehavior, RequestCommit, RequestFinalizeBlock, RequestInfo,
    ResponseFinalizeBlock, Validator as AbciValidator, VoteInfo,
};
use prost::Message;

use crate::app_conn::{AppConns, AppError};
use crate::execution::{self, ExecError};
use crate::genesis::GenesisDoc;
use crate::store::{State, Store, StoreError};
use crate::types::{Block, BlockId, CommitSig, Evidence, Height, ValidatorSet};

/// The ABCI version we speak.
pub const ABCI_VERSION: &str = "2.0.0";
/// CometBFT's p2p protocol version we speak.
pub const P2P_PROTOCOL: u64 = 8;

/// Why a block could not be applied or the handshake failed. Each is fatal
/// for consensus: the node stops producing blocks and says why.
#[derive(Debug, thiserror::Error)]
pub enum BlockExecError {
    /// The application failed or misbehaved.
    #[error(transparent)]
    App(#[from] AppError),
    /// A store read or write failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state transition refused the block or the app's answer.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The application's state disagrees with the chain.
    #[error("app hash mismatch at height {height}: the chain has {expected}, the application reports {got}; the application's data does not belong to this chain or was changed (reset the application or the node)")]
    AppHashMismatch {
        /// Height concerned.
        height: Height,
        /// What the chain records (hex).
        expected: String,
        /// What the app reports (hex).
        got: String,
    },
    /// The application has blocks the node does not.
    #[error("the application is at height {app} but the node's block store ends at {store}; restore the node's data or reset the application")]
    AppAhead {
        /// App height.
        app: Height,
        /// Store height.
        store: Height,
    },
    /// A block the replay needs is not stored.
    #[error("block {0} is missing from the store; the data directory is damaged")]
    MissingBlock(Height),
    /// The application reported a negative height.
    #[error("the application reported height {0}")]
    BadAppHeight(i64),
}

/// `Info` as CometBFT sends it during the handshake.
pub fn info_request() -> RequestInfo {
    RequestInfo {
        version: crate::config::COMETBFT_VERSION.into(),
        block_version: crate::types::BLOCK_PROTOCOL,
        p2p_version: P2P_PROTOCOL,
        abci_version: ABCI_VERSION.into(),
    }
}

/// The FinalizeBlock request for `block`: its txs, the last commit as
/// `CommitInfo` over the previous height's validators, its evidence as
/// misbehaviour, and header facts.
pub fn finalize_request(
    block: &Block,
    block_id: &BlockId,
    last_validators: Option<&ValidatorSet>,
    evidence_validators: &dyn Fn(Height) -> Option<ValidatorSet>,
) -> RequestFinalizeBlock {
    let decided_last_commit = match (&block.last_commit, last_validators) {
        (Some(commit), Some(vals)) => CommitInfo {
            round: commit.round as i32,
            votes: vals
                .validators
                .iter()
                .zip(&commit.signatures)
                .map(|(v, sig)| VoteInfo {
                    validator: Some(AbciValidator {
                        address: v.address.0.to_vec().into(),
                        power: v.voting_power,
                    }),
                    block_id_flag: match sig {
                        CommitSig::Absent => 1,
                        CommitSig::Commit { .. } => 2,
                        CommitSig::Nil { .. } => 3,
                    },
                })
                .collect(),
        },
        _ => CommitInfo::default(),
    };
    let misbehavior = block
        .evidence
        .iter()
        .map(|ev| match ev {
            Evidence::DuplicateVote(d) => {
                let power = evidence_validators(d.vote_a.height)
                    .and_then(|vs| {
                        vs.get_by_address(&d.vote_a.validator_address)
                            .map(|(_, v)| v.voting_power)
                    })
                    .unwrap_or(d.validator_power);
                Misbehavior {
                    r#type: 1, // DUPLICATE_VOTE
                    validator: Some(AbciValidator {
                        address: d.vote_a.validator_address.0.to_vec().into(),
                        power,
                    }),
                    height: d.vote_a.height as i64,
                    time: Some(d.timestamp.into()),
                    total_voting_power: d.total_voting_power,
                }
            }
        })
        .collect();
    RequestFinalizeBlock {
        txs: block.txs.iter().map(|t| t.clone().into()).collect(),
        decided_last_commit: Some(decided_last_commit),
        misbehavior,
        hash: block_id.hash.0.to_vec().into(),
        height: block.header.height as i64,
        time: Some(block.header.time.into()),
        next_validators_hash: block.header.next_validators_hash.0.to_vec().into(),
        proposer_address: block.header.proposer_address.0.to_vec().into(),
    }
}

/// Runs a decided block (already saved with its seen commit) through the
/// application and persists the outcome: FinalizeBlock, its response, the
/// next state, Commit, the state. Returns the new state and the response.
pub async fn apply_block(
    app: &AppConns,
    store: &Store,
    state: &State,
    block: &Block,
    block_id: &BlockId,
) -> Result<(State, ResponseFinalizeBlock), BlockExecError> {
    let request = finalize_request(block, block_id, state.last_validators.as_ref(), &|h| {
        store.load_validators(h).ok().flatten()
    });
    let response = app.finalize_block(request).await?;
    store.save_finalize_response(block.header.height, &response.encode_to_vec())?;
    let next = execution::next_state(state, *block_id, block, &response)?;
    app.commit(RequestCommit {}).await?;
    store.save_state(&next)?;
    Ok((next, response))
}

/// Brings the application, the block store and the state into agreement, as
/// CometBFT's handshake does: Info; InitChain when the app is at height 0
/// and the chain has no blocks; then replays the stored blocks the
/// application has not executed, finishing a block whose state a crash left
/// unsaved; finally checks that the application's app hash is the chain's.
/// Returns the state to run consensus from.
pub async fn handshake(
    app: &AppConns,
    store: &Store,
    genesis: &GenesisDoc,
) -> Result<State, BlockExecError> {
    let info = app.info(info_request()).await?;
    let app_height = Height::try_from(info.last_block_height)
        .map_err(|_| BlockExecError::BadAppHeight(info.last_block_height))?;
    let mut state = match store.load_state()? {
        Some(s) => s,
        None => execution::genesis_state(genesis)?,
    };
    let at_genesis = state.last_block_height < state.initial_height;
    if at_genesis {
        // Only a fresh chain takes the app's version (CometBFT does the same).
        state.version.app = info.app_version;
    }
    let store_height = store.height()?;
    tracing::info!(
        app_height,
        app_hash = %hex::encode_upper(&info.last_block_app_hash),
        store_height,
        state_height = state.last_block_height,
        "ABCI handshake"
    );
    if app_height > store_height {
        return Err(BlockExecError::AppAhead {
            app: app_height,
            store: store_height,
        });
    }

    if app_height == 0 && store_height == 0 && at_genesis {
        let response = app
            .init_chain(execution::init_chain_request(genesis))
            .await?;
        state = execution::apply_init_chain(state, &response)?;
        store.save_state(&state)?;
        tracing::info!(app_hash = %hex::encode_upper(&state.app_hash), "InitChain done");
        return Ok(state);
    }

    // Blocks the app has not executed: replay them. Heights up to the
    // state's only feed the app; a block beyond the state (saved, then a
    // crash before its state) is applied fully.
    let state_height = state.last_block_height;
    // The app hash the app reported after replaying a block, checked against
    // the next block's header (or the state, after the last) as it loads.
    let mut pending: Option<(Height, Vec<u8>)> = None;
    for h in app_height.saturating_add(1)..=store_height {
        let block = store
            .load_block(h)?
            .ok_or(BlockExecError::MissingBlock(h))?;
        if let Some((ph, got)) = pending.take() {
            check_app_hash(ph, &block.header.app_hash, &got)?;
        }
        let block_id = block.block_id();
        if h <= state_height {
            let last_vals = store.load_validators(h.saturating_sub(1))?;
            let request = finalize_request(&block, &block_id, last_vals.as_ref(), &|x| {
                store.load_validators(x).ok().flatten()
            });
            let response = app.finalize_block(request).await?;
            app.commit(RequestCommit {}).await?;
            pending = Some((h, response.app_hash.to_vec()));
            tracing::info!(height = h, "replayed block to the application");
        } else {
            let (next, _) = apply_block(app, store, &state, &block, &block_id).await?;
            state = next;
            tracing::info!(height = h, "applied block whose state was not saved");
        }
    }

    if let Some((ph, got)) = pending {
        // Only the last stored block is left unchecked, and it is the
        // state's: its app hash is the state's.
        check_app_hash(ph, &state.app_hash, &got)?;
    }

    // The app executed the last block but the state was not saved: finish
    // the state from the stored FinalizeBlock response.
    if app_height == store_height && state.last_block_height + 1 == store_height {
        let block = store
            .load_block(store_height)?
            .ok_or(BlockExecError::MissingBlock(store_height))?;
        let response = store
            .load_finalize_response_decoded(store_height)?
            .ok_or(BlockExecError::MissingBlock(store_height))?;
        state = execution::next_state(&state, block.block_id(), &block, &response)?;
        store.save_state(&state)?;
        tracing::info!(
            height = store_height,
            "recovered the state of the last block"
        );
    }

    if app_height == store_height {
        check_app_hash(app_height, &state.app_hash, &info.last_block_app_hash)?;
    }
    Ok(state)
}

fn check_app_hash(height: Height, expected: &[u8], got: &[u8]) -> Result<(), BlockExecError> {
    if expected != got {
        return Err(BlockExecError::AppHashMismatch {
            height,
            expected: hex::encode_upper(expected),
            got: hex::encode_upper(got),
        });
    }
    Ok(())
}
