//! The chain state record and the block meta record, with their protobuf
//! encodings (`tendermint.state.State`, `tendermint.types.BlockMeta`: the
//! messages CometBFT keeps in its state and block stores).

use tendermint_proto::v0_38::state as pb_state;
use tendermint_proto::v0_38::types as pb;
use tendermint_proto::v0_38::version as pb_version;

use crate::types::{
    BlockId, ConsensusParams, Error, Hash, Header, Height, Time, ValidatorSet, Version,
};

/// The state after the last committed block (CometBFT `state.State`): what
/// the next height is validated and executed against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// Block and app protocol versions.
    pub version: Version,
    /// The chain.
    pub chain_id: String,
    /// The chain's first height.
    pub initial_height: Height,
    /// Height of the last committed block; `initial_height - 1` before the
    /// first block (0 on most chains).
    pub last_block_height: Height,
    /// Id of the last committed block (`None` before the first block).
    pub last_block_id: Option<BlockId>,
    /// Time of the last committed block (genesis time before the first).
    pub last_block_time: Time,
    /// Validators of `last_block_height + 2`.
    pub next_validators: ValidatorSet,
    /// Validators of `last_block_height + 1`.
    pub validators: ValidatorSet,
    /// Validators of `last_block_height` (`None` before the first block).
    pub last_validators: Option<ValidatorSet>,
    /// Height at which the validator set last changed.
    pub last_height_validators_changed: Height,
    /// Consensus parameters of `last_block_height + 1`.
    pub consensus_params: ConsensusParams,
    /// Height at which the consensus parameters last changed.
    pub last_height_consensus_params_changed: Height,
    /// Merkle root of the last block's tx results.
    pub last_results_hash: Vec<u8>,
    /// The app hash after the last block.
    pub app_hash: Vec<u8>,
}

fn to_i64(h: Height) -> i64 {
    i64::try_from(h).unwrap_or(i64::MAX)
}

fn from_i64(field: &'static str, h: i64) -> Result<Height, Error> {
    Height::try_from(h).map_err(|_| Error::field(field, format!("negative: {h}")))
}

impl From<State> for pb_state::State {
    fn from(s: State) -> Self {
        pb_state::State {
            version: Some(pb_state::Version {
                consensus: Some(pb_version::Consensus::from(s.version)),
                software: String::new(),
            }),
            chain_id: s.chain_id,
            initial_height: to_i64(s.initial_height),
            last_block_height: to_i64(s.last_block_height),
            last_block_id: Some(crate_block_id_to_pb(s.last_block_id)),
            last_block_time: Some(s.last_block_time.into()),
            next_validators: Some(s.next_validators.into()),
            validators: Some(s.validators.into()),
            last_validators: Some(s.last_validators.map(Into::into).unwrap_or_default()),
            last_height_validators_changed: to_i64(s.last_height_validators_changed),
            consensus_params: Some(s.consensus_params.into()),
            last_height_consensus_params_changed: to_i64(s.last_height_consensus_params_changed),
            last_results_hash: s.last_results_hash,
            app_hash: s.app_hash,
        }
    }
}

/// A nil block id is the empty message with an empty part set header, as Go
/// writes it.
fn crate_block_id_to_pb(b: Option<BlockId>) -> pb::BlockId {
    match b {
        Some(b) => b.into(),
        None => pb::BlockId {
            hash: Vec::new(),
            part_set_header: Some(pb::PartSetHeader::default()),
        },
    }
}

fn block_id_from_pb(b: Option<pb::BlockId>) -> Result<Option<BlockId>, Error> {
    let b = b.unwrap_or_default();
    let psh = b.part_set_header.clone().unwrap_or_default();
    if b.hash.is_empty() && psh.total == 0 && psh.hash.is_empty() {
        return Ok(None);
    }
    BlockId::try_from(b).map(Some)
}

impl TryFrom<pb_state::State> for State {
    type Error = Error;

    fn try_from(s: pb_state::State) -> Result<Self, Error> {
        let missing = |f: &'static str| Error::field(f, "missing");
        let consensus = s.version.and_then(|v| v.consensus).unwrap_or_default();
        let last_validators = match s.last_validators {
            Some(v) if !v.validators.is_empty() => Some(ValidatorSet::try_from(v)?),
            _ => None,
        };
        Ok(State {
            version: Version {
                block: consensus.block,
                app: consensus.app,
            },
            chain_id: s.chain_id,
            initial_height: from_i64("state.initial_height", s.initial_height)?,
            last_block_height: from_i64("state.last_block_height", s.last_block_height)?,
            last_block_id: block_id_from_pb(s.last_block_id)?,
            last_block_time: Time::try_from(
                s.last_block_time
                    .ok_or_else(|| missing("state.last_block_time"))?,
            )?,
            next_validators: ValidatorSet::try_from(
                s.next_validators
                    .ok_or_else(|| missing("state.next_validators"))?,
            )?,
            validators: ValidatorSet::try_from(
                s.validators.ok_or_else(|| missing("state.validators"))?,
            )?,
            last_validators,
            last_height_validators_changed: from_i64(
                "state.last_height_validators_changed",
                s.last_height_validators_changed,
            )?,
            consensus_params: ConsensusParams::try_from(
                s.consensus_params
                    .ok_or_else(|| missing("state.consensus_params"))?,
            )?,
            last_height_consensus_params_changed: from_i64(
                "state.last_height_consensus_params_changed",
                s.last_height_consensus_params_changed,
            )?,
            last_results_hash: s.last_results_hash,
            app_hash: s.app_hash,
        })
    }
}

/// Facts about a stored block, loadable without the block (CometBFT
/// `BlockMeta`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockMeta {
    /// The block's id.
    pub block_id: BlockId,
    /// Size of the block's protobuf encoding in bytes.
    pub block_size: u64,
    /// The block's header.
    pub header: Header,
    /// Number of transactions.
    pub num_txs: u64,
}

impl From<BlockMeta> for pb::BlockMeta {
    fn from(m: BlockMeta) -> Self {
        pb::BlockMeta {
            block_id: Some(m.block_id.into()),
            block_size: to_i64(m.block_size),
            header: Some(m.header.into()),
            num_txs: to_i64(m.num_txs),
        }
    }
}

impl TryFrom<pb::BlockMeta> for BlockMeta {
    type Error = Error;

    fn try_from(m: pb::BlockMeta) -> Result<Self, Error> {
        Ok(BlockMeta {
            block_id: BlockId::try_from(
                m.block_id
                    .ok_or_else(|| Error::field("block_meta.block_id", "missing"))?,
            )?,
            block_size: from_i64("block_meta.block_size", m.block_size)?,
            header: Header::try_from(
                m.header
                    .ok_or_else(|| Error::field("block_meta.header", "missing"))?,
            )?,
            num_txs: from_i64("block_meta.num_txs", m.num_txs)?,
        })
    }
}

impl BlockMeta {
    /// The block's hash.
    pub fn hash(&self) -> Hash {
        self.block_id.hash
    }
}
