//! Building a block from the state (CometBFT `State.MakeBlock`) and checking
//! a block against the state (CometBFT `validateBlock`).

use prost::Message;
use tendermint_proto::v0_38::types as pb;

use super::{ExecError, HeaderField, Result};
use crate::store::State;
use crate::types::{
    bft_time, evidence_hash, sha256, txs_hash, Address, Block, Commit, Evidence, Hash, Header,
    Height, Time,
};

/// The height of the next block: the initial height before the first block,
/// otherwise one above the last. (Before the first block CometBFT keeps
/// `last_block_height` at 0 and this engine at `initial_height - 1`; both
/// lead here to the initial height.)
pub fn next_height(state: &State) -> Height {
    if state.last_block_id.is_none() {
        state.initial_height
    } else {
        state.last_block_height + 1
    }
}

/// Whether `height` needs a "proof block" even when round 0 waits for
/// transactions (CometBFT's needProofBlock): the initial height, so the
/// genesis app hash is signed at once, and any height whose previous block
/// changed the app hash, since a header commits the app hash of the block
/// before it. `state` is the state after `height - 1`; `last_app_hash` the
/// app hash in the header of block `height - 1`, `None` if that block is
/// unknown (then a block is made, as CometBFT does).
pub fn needs_proof_block(state: &State, height: Height, last_app_hash: Option<&[u8]>) -> bool {
    height <= state.initial_height || last_app_hash != Some(state.app_hash.as_slice())
}

/// The time of the block at `height` built on `state`: the genesis time at
/// the initial height, otherwise the voting-power-weighted median of the
/// last commit's timestamps over the last validators (`MedianTime`).
fn time_at(state: &State, height: Height, last_commit: Option<&Commit>) -> Time {
    if height == state.initial_height {
        return state.last_block_time;
    }
    match (last_commit, &state.last_validators) {
        (Some(commit), Some(vals)) => bft_time(commit, vals),
        // No commit or no last validators above the initial height: the
        // block is invalid anyway; Go's median of nothing is the zero time.
        _ => Time::GO_ZERO,
    }
}

/// The time the proposer gives the next block (CometBFT v0.38
/// `State.MakeBlock`): the genesis time (`state.last_block_time`) at the
/// initial height, otherwise the BFT median time of `last_commit` weighted
/// by `state.last_validators`. [`Time::GO_ZERO`] when a commit is needed and
/// missing.
pub fn block_time(state: &State, last_commit: Option<&Commit>) -> Time {
    time_at(state, next_height(state), last_commit)
}

/// `state.last_results_hash` as a header hash. CometBFT's genesis state has
/// an empty one until the handshake's InitChain sets the empty-tree root;
/// both mean "no results", so an empty (or malformed) value reads as
/// `SHA256("")`.
fn last_results_hash(state: &State) -> Hash {
    Hash::from_slice("last_results_hash", &state.last_results_hash).unwrap_or_else(|_| sha256(&[]))
}

/// Encoded size of an evidence list (CometBFT `EvidenceData.ByteSize`: the
/// size of the `EvidenceList` message, 0 for no evidence).
pub fn evidence_byte_size(evidence: &[Evidence]) -> i64 {
    let list = pb::EvidenceList {
        evidence: evidence.iter().cloned().map(Into::into).collect(),
    };
    i64::try_from(list.encoded_len()).unwrap_or(i64::MAX)
}

/// The block a proposer builds at `height` on `state` (CometBFT
/// `State.MakeBlock`): the state's versions, chain id, last block id,
/// validator and next-validator hashes, consensus hash, app hash and last
/// results hash; the content hashes (last commit, data, evidence) from the
/// arguments; and the time given. Pass [`block_time`] as `time` to follow
/// CometBFT v0.38 (a different time makes the block fail
/// [`validate_block`]).
pub fn make_block(
    state: &State,
    height: Height,
    txs: Vec<Vec<u8>>,
    last_commit: Option<Commit>,
    evidence: Vec<Evidence>,
    proposer_address: Address,
    time: Time,
) -> Block {
    let mut block = Block {
        header: Header {
            version: state.version,
            chain_id: state.chain_id.clone(),
            height,
            time,
            last_block_id: state.last_block_id,
            last_commit_hash: Hash::default(),
            data_hash: txs_hash(&txs),
            validators_hash: state.validators.hash(),
            next_validators_hash: state.next_validators.hash(),
            consensus_hash: state.consensus_params.hash(),
            app_hash: state.app_hash.clone(),
            last_results_hash: last_results_hash(state),
            evidence_hash: evidence_hash(&evidence),
            proposer_address,
        },
        txs,
        evidence,
        last_commit,
    };
    block.fill_header();
    block
}

fn wrong<T: std::fmt::Debug>(field: HeaderField, expected: T, got: T) -> ExecError {
    ExecError::WrongHeader {
        field,
        expected: format!("{expected:?}"),
        got: format!("{got:?}"),
    }
}

fn check_eq<T: PartialEq + std::fmt::Debug>(field: HeaderField, expected: T, got: T) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(wrong(field, expected, got))
    }
}

/// Checks a block against the state it extends, as CometBFT `validateBlock`
/// does, in the same order: internal consistency (`validate_basic`); version,
/// chain id, height and last block id; app hash, consensus hash, last results
/// hash, validators and next validators hashes; the last commit (none at the
/// initial height, else verified against `state.last_validators` for the
/// last block); the proposer being a validator of the height; the time (the
/// genesis time at the initial height, else after the last block's and equal
/// to the median time of the last commit); and the evidence size limit.
///
/// Not checked here, as in CometBFT's `validateBlock`: the evidence itself
/// (the evidence pool's `CheckEvidence`) and a wall-clock bound on the time.
pub fn validate_block(state: &State, block: &Block) -> Result<()> {
    check_block(state, block, true)
}

/// [`validate_block`] without verifying the signatures of the block's last
/// commit (it must still be present above the initial height), for a caller
/// that has already verified that very commit against
/// `state.last_validators` for `state.last_block_id` (block sync, which
/// proved the previous block with it; CometBFT
/// `ValidateBlockSkipLastCommit`). Signature checks are the costly part.
pub fn validate_block_with_verified_last_commit(state: &State, block: &Block) -> Result<()> {
    check_block(state, block, false)
}

fn check_block(state: &State, block: &Block, verify_last_commit: bool) -> Result<()> {
    block.validate_basic().map_err(ExecError::InvalidBlock)?;
    let h = &block.header;

    check_eq(HeaderField::Version, state.version, h.version)?;
    check_eq(HeaderField::ChainId, &state.chain_id, &h.chain_id)?;
    let height = next_height(state);
    check_eq(HeaderField::Height, height, h.height)?;
    check_eq(
        HeaderField::LastBlockId,
        state.last_block_id,
        h.last_block_id,
    )?;

    if state.app_hash != h.app_hash {
        return Err(wrong(
            HeaderField::AppHash,
            hex::encode_upper(&state.app_hash),
            hex::encode_upper(&h.app_hash),
        ));
    }
    check_eq(
        HeaderField::ConsensusHash,
        state.consensus_params.hash(),
        h.consensus_hash,
    )?;
    check_eq(
        HeaderField::LastResultsHash,
        last_results_hash(state),
        h.last_results_hash,
    )?;
    check_eq(
        HeaderField::ValidatorsHash,
        state.validators.hash(),
        h.validators_hash,
    )?;
    check_eq(
        HeaderField::NextValidatorsHash,
        state.next_validators.hash(),
        h.next_validators_hash,
    )?;

    let initial = h.height == state.initial_height;
    if initial {
        if block.last_commit.is_some() {
            return Err(ExecError::UnexpectedLastCommit);
        }
    } else {
        let commit = block
            .last_commit
            .as_ref()
            .ok_or(ExecError::MissingLastCommit(h.height))?;
        let last_validators = state
            .last_validators
            .as_ref()
            .ok_or(ExecError::MissingLastValidators)?;
        // The height check above and the last block id check make
        // `state.last_block_id` present here.
        let last_block_id = state
            .last_block_id
            .ok_or(ExecError::MissingLastCommit(h.height))?;
        if verify_last_commit {
            last_validators
                .verify_commit(&state.chain_id, &last_block_id, h.height - 1, commit)
                .map_err(ExecError::LastCommit)?;
        }
    }

    if state
        .validators
        .get_by_address(&h.proposer_address)
        .is_none()
    {
        return Err(ExecError::ProposerNotValidator(h.proposer_address));
    }

    if initial {
        check_eq(HeaderField::Time, state.last_block_time, h.time)?;
    } else {
        if h.time <= state.last_block_time {
            return Err(ExecError::TimeNotIncreasing {
                last: state.last_block_time,
                got: h.time,
            });
        }
        let median = time_at(state, h.height, block.last_commit.as_ref());
        check_eq(HeaderField::Time, median, h.time)?;
    }

    let max = state.consensus_params.evidence.max_bytes;
    let got = evidence_byte_size(&block.evidence);
    if got > max {
        return Err(ExecError::EvidenceOverflow { max, got });
    }
    Ok(())
}
