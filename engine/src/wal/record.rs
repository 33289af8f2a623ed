//! The WAL record: framing and the protobuf envelope of a consensus input.
//!
//! A record is `crc32c(payload) u32 BE || len(payload) u32 BE || payload`,
//! and `payload` is a [`WalRecord`] protobuf message: a time stamp and one
//! of the [`wal_record::Msg`] variants. Votes, proposals, blocks, block ids
//! and validator sets are the tendermint-proto v0.38 messages; the other
//! variants are small messages of our own (field numbers below are the
//! format and must never be reused).

use std::sync::Arc;

use prost::Message;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::types as pb;

use crate::consensus::{Input, TimeoutStep};
use crate::types::{
    Block, BlockId, Height, Proposal, Time, ValidatorSet, Vote, MAX_BLOCK_SIZE_BYTES,
};

/// Bytes of a record header: CRC-32C then payload length, both big-endian.
pub const HEADER_LEN: usize = 8;

/// The largest payload accepted: a whole block of the maximum size
/// (an `Input::Block` or `Input::ProposalValue` carries one) plus 1 MiB for
/// the envelope. A length field above this is corruption.
pub const MAX_PAYLOAD_LEN: usize = MAX_BLOCK_SIZE_BYTES as usize + (1 << 20);

const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// CRC-32C (Castagnoli), the checksum CometBFT's WAL uses.
pub fn crc32c(data: &[u8]) -> u32 {
    CRC32C.checksum(data)
}

/// One WAL entry as stored: when it was written and what it holds.
#[derive(Clone, PartialEq, Message)]
pub struct WalRecord {
    /// Wall-clock time of the write (for operators; replay ignores it).
    #[prost(message, optional, tag = "1")]
    pub time: Option<Timestamp>,
    /// The entry.
    #[prost(oneof = "wal_record::Msg", tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11")]
    pub msg: Option<wal_record::Msg>,
}

/// The variants of [`WalRecord::msg`].
pub mod wal_record {
    use tendermint_proto::v0_38::types as pb;

    /// One consensus input, or the end-of-height marker.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Msg {
        /// `Input::StartHeight`.
        #[prost(message, tag = "2")]
        StartHeight(super::StartHeightMsg),
        /// `Input::Proposal`.
        #[prost(message, tag = "3")]
        Proposal(pb::Proposal),
        /// `Input::Block`.
        #[prost(message, tag = "4")]
        Block(super::BlockMsg),
        /// `Input::Vote`.
        #[prost(message, tag = "5")]
        Vote(pb::Vote),
        /// `Input::Certificate`.
        #[prost(message, tag = "6")]
        Certificate(super::CertificateMsg),
        /// `Input::Timeout`.
        #[prost(message, tag = "7")]
        Timeout(super::TimeoutMsg),
        /// `Input::ProposalValue`.
        #[prost(message, tag = "8")]
        ProposalValue(super::ProposalValueMsg),
        /// `Input::BlockValidated`.
        #[prost(message, tag = "9")]
        BlockValidated(super::BlockValidatedMsg),
        /// The block of this height is committed and saved.
        #[prost(message, tag = "10")]
        EndHeight(super::EndHeightMsg),
        /// `Input::TxsAvailable`.
        #[prost(message, tag = "11")]
        TxsAvailable(super::TxsAvailableMsg),
    }
}

/// `Input::StartHeight`.
#[derive(Clone, PartialEq, Message)]
pub struct StartHeightMsg {
    /// The height started.
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// Its validators.
    #[prost(message, optional, tag = "2")]
    pub validators: Option<pb::ValidatorSet>,
    /// Round 0 waits for transactions. Absent in records written before
    /// the field existed, which decode as `false`: those nodes never waited.
    #[prost(bool, tag = "3")]
    pub wait_for_txs: bool,
}

/// `Input::TxsAvailable`.
#[derive(Clone, PartialEq, Message)]
pub struct TxsAvailableMsg {
    /// The height the transactions are for.
    #[prost(uint64, tag = "1")]
    pub height: u64,
}

/// `Input::Block`.
#[derive(Clone, PartialEq, Message)]
pub struct BlockMsg {
    /// The id the block was verified against.
    #[prost(message, optional, tag = "1")]
    pub block_id: Option<pb::BlockId>,
    /// The block.
    #[prost(message, optional, tag = "2")]
    pub block: Option<pb::Block>,
}

/// `Input::Certificate`.
#[derive(Clone, PartialEq, Message)]
pub struct CertificateMsg {
    /// The votes.
    #[prost(message, repeated, tag = "1")]
    pub votes: Vec<pb::Vote>,
}

/// `Input::Timeout`.
#[derive(Clone, PartialEq, Message)]
pub struct TimeoutMsg {
    /// Height.
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// Round.
    #[prost(uint32, tag = "2")]
    pub round: u32,
    /// 1 propose, 2 prevote, 3 precommit, 4 new round (the
    /// create_empty_blocks_interval).
    #[prost(int32, tag = "3")]
    pub step: i32,
}

/// `Input::ProposalValue`.
#[derive(Clone, PartialEq, Message)]
pub struct ProposalValueMsg {
    /// Height.
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// Round.
    #[prost(uint32, tag = "2")]
    pub round: u32,
    /// The block to propose.
    #[prost(message, optional, tag = "3")]
    pub block: Option<pb::Block>,
}

/// `Input::BlockValidated`.
#[derive(Clone, PartialEq, Message)]
pub struct BlockValidatedMsg {
    /// Height.
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// The block judged.
    #[prost(message, optional, tag = "2")]
    pub block_id: Option<pb::BlockId>,
    /// The verdict.
    #[prost(bool, tag = "3")]
    pub valid: bool,
}

/// The end-of-height marker.
#[derive(Clone, PartialEq, Message)]
pub struct EndHeightMsg {
    /// The height whose block was committed.
    #[prost(uint64, tag = "1")]
    pub height: u64,
}

/// What a WAL entry holds.
// Entries are short-lived (built, encoded, dropped); boxing the input would
// only add an allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum WalMessage {
    /// A consensus input, written before the core handles it.
    Input(Input),
    /// Height `h` is over: its block and state are saved. Replay of height
    /// `h + 1` starts after this marker.
    EndHeight(Height),
}

/// A decoded WAL entry.
#[derive(Clone, Debug)]
pub struct TimedMessage {
    /// When it was written.
    pub time: Time,
    /// What it holds.
    pub msg: WalMessage,
}

fn step_to_pb(s: TimeoutStep) -> i32 {
    match s {
        TimeoutStep::Propose => 1,
        TimeoutStep::Prevote => 2,
        TimeoutStep::Precommit => 3,
        TimeoutStep::NewRound => 4,
    }
}

fn block_to_pb(b: &Arc<Block>) -> pb::Block {
    pb::Block::from(Block::clone(b))
}

/// The envelope of `msg` written at `time`.
pub fn to_record(time: Time, msg: &WalMessage) -> WalRecord {
    use wal_record::Msg;
    let m = match msg {
        WalMessage::EndHeight(h) => Msg::EndHeight(EndHeightMsg { height: *h }),
        WalMessage::Input(input) => match input {
            Input::StartHeight {
                height,
                validators,
                wait_for_txs,
            } => Msg::StartHeight(StartHeightMsg {
                height: *height,
                validators: Some(validators.clone().into()),
                wait_for_txs: *wait_for_txs,
            }),
            Input::TxsAvailable { height } => {
                Msg::TxsAvailable(TxsAvailableMsg { height: *height })
            }
            Input::Proposal(p) => Msg::Proposal(p.clone().into()),
            Input::Block { block_id, block } => Msg::Block(BlockMsg {
                block_id: Some((*block_id).into()),
                block: Some(block_to_pb(block)),
            }),
            Input::Vote(v) => Msg::Vote(v.clone().into()),
            Input::Certificate(votes) => Msg::Certificate(CertificateMsg {
                votes: votes.iter().cloned().map(Into::into).collect(),
            }),
            Input::Timeout {
                height,
                round,
                step,
            } => Msg::Timeout(TimeoutMsg {
                height: *height,
                round: *round,
                step: step_to_pb(*step),
            }),
            Input::ProposalValue {
                height,
                round,
                block,
            } => Msg::ProposalValue(ProposalValueMsg {
                height: *height,
                round: *round,
                block: Some(block_to_pb(block)),
            }),
            Input::BlockValidated {
                height,
                block_id,
                valid,
            } => Msg::BlockValidated(BlockValidatedMsg {
                height: *height,
                block_id: Some((*block_id).into()),
                valid: *valid,
            }),
        },
    };
    WalRecord {
        time: Some(time.into()),
        msg: Some(m),
    }
}

fn missing(field: &str) -> String {
    format!("{field} missing")
}

/// The domain message of a decoded envelope, validated as the types'
/// `TryFrom` conversions validate wire data.
pub fn from_record(r: WalRecord) -> Result<TimedMessage, String> {
    use wal_record::Msg;
    let time = Time::try_from(r.time.ok_or_else(|| missing("time"))?).map_err(|e| e.to_string())?;
    let e = |e: crate::types::Error| e.to_string();
    let input = match r.msg.ok_or_else(|| missing("message"))? {
        Msg::EndHeight(m) => {
            return Ok(TimedMessage {
                time,
                msg: WalMessage::EndHeight(m.height),
            })
        }
        Msg::StartHeight(m) => Input::StartHeight {
            height: m.height,
            validators: ValidatorSet::try_from(m.validators.ok_or_else(|| missing("validators"))?)
                .map_err(e)?,
            wait_for_txs: m.wait_for_txs,
        },
        Msg::TxsAvailable(m) => Input::TxsAvailable { height: m.height },
        Msg::Proposal(p) => Input::Proposal(Proposal::try_from(p).map_err(e)?),
        Msg::Block(m) => Input::Block {
            block_id: BlockId::try_from(m.block_id.ok_or_else(|| missing("block_id"))?)
                .map_err(e)?,
            block: Arc::new(Block::try_from(m.block.ok_or_else(|| missing("block"))?).map_err(e)?),
        },
        Msg::Vote(v) => Input::Vote(Vote::try_from(v).map_err(e)?),
        Msg::Certificate(m) => Input::Certificate(
            m.votes
                .into_iter()
                .map(Vote::try_from)
                .collect::<Result<_, _>>()
                .map_err(e)?,
        ),
        Msg::Timeout(m) => Input::Timeout {
            height: m.height,
            round: m.round,
            step: match m.step {
                1 => TimeoutStep::Propose,
                2 => TimeoutStep::Prevote,
                3 => TimeoutStep::Precommit,
                4 => TimeoutStep::NewRound,
                s => return Err(format!("unknown timeout step {s}")),
            },
        },
        Msg::ProposalValue(m) => Input::ProposalValue {
            height: m.height,
            round: m.round,
            block: Arc::new(Block::try_from(m.block.ok_or_else(|| missing("block"))?).map_err(e)?),
        },
        Msg::BlockValidated(m) => Input::BlockValidated {
            height: m.height,
            block_id: BlockId::try_from(m.block_id.ok_or_else(|| missing("block_id"))?)
                .map_err(e)?,
            valid: m.valid,
        },
    };
    Ok(TimedMessage {
        time,
        msg: WalMessage::Input(input),
    })
}

/// Frames `payload`: CRC-32C, length, payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&crc32c(payload).to_be_bytes());
    // Callers check `payload.len() <= MAX_PAYLOAD_LEN`, which fits in u32.
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// Why the bytes at some offset are not a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The header or payload runs past the end of the file.
    Short,
    /// The length field exceeds [`MAX_PAYLOAD_LEN`].
    TooLong(u32),
    /// The checksum does not match the payload.
    Crc,
    /// The payload is not a WAL envelope.
    Decode(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Short => write!(f, "record cut short"),
            FrameError::TooLong(n) => write!(f, "record length {n} above the maximum"),
            FrameError::Crc => write!(f, "checksum mismatch"),
            FrameError::Decode(e) => write!(f, "undecodable record: {e}"),
        }
    }
}

/// Reads the record at the start of `bytes`: the envelope and the record's
/// total length in bytes.
pub fn read_frame(bytes: &[u8]) -> Result<(WalRecord, usize), FrameError> {
    let payload = frame_payload(bytes)?;
    let record = WalRecord::decode(payload).map_err(|e| FrameError::Decode(e.to_string()))?;
    if record.msg.is_none() {
        return Err(FrameError::Decode("empty envelope".into()));
    }
    Ok((record, HEADER_LEN + payload.len()))
}

/// The checksummed payload of the record at the start of `bytes`.
fn frame_payload(bytes: &[u8]) -> Result<&[u8], FrameError> {
    let (Some(crc), Some(len)) = (bytes.get(0..4), bytes.get(4..8)) else {
        return Err(FrameError::Short);
    };
    let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let len32 = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    let len = len32 as usize;
    if len > MAX_PAYLOAD_LEN {
        return Err(FrameError::TooLong(len32));
    }
    let payload = bytes
        .get(HEADER_LEN..HEADER_LEN + len)
        .ok_or(FrameError::Short)?;
    if crc32c(payload) != crc {
        return Err(FrameError::Crc);
    }
    Ok(payload)
}

/// Whether the damage at the start of `tail` (the rest of the last segment
/// from the first bad record on) is a torn tail: no valid record starts
/// anywhere after it. A valid record after the damage means the log was
/// corrupted in the middle, which is never repaired silently. Looking costs
/// at most `budget` checksummed bytes; past that the damage is not proven
/// to be a tail and counts as mid-log corruption.
pub fn is_torn_tail(tail: &[u8], mut budget: usize) -> bool {
    for start in 1..tail.len() {
        let rest = &tail[start..];
        let Some(len) = rest.get(4..8) else {
            return true;
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_PAYLOAD_LEN || rest.len() - HEADER_LEN < len {
            continue;
        }
        if len > budget {
            return false;
        }
        budget -= len;
        if read_frame(rest).is_ok() {
            return false;
        }
    }
    true
}
