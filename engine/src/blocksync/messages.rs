//! The block sync channel's messages (channel 0x40, CometBFT v0.38
//! `tendermint.blocksync.Message`) as domain values, with CometBFT's rules
//! for accepting them.
//!
//! Decoding is where a peer's bytes become trusted shapes, so every limit is
//! applied here, before anything big is built:
//!
//! 1. the whole message is at most [`MAX_MSG_SIZE`] bytes (a block of
//!    CometBFT's `MaxBlockSizeBytes` plus the response's framing);
//! 2. a raw walk over the wire bytes counts the signatures of a
//!    `BlockResponse`'s last commit and extended commit without decoding
//!    them, and refuses more than [`MAX_VOTES_COUNT`] of either (CometBFT
//!    v0.38.25's `FilterMsgBytes`);
//! 3. prost decodes, and the block and extended commit pass their
//!    `TryFrom` checks (CometBFT `BlockFromProto` + `ValidateBasic`);
//! 4. heights are >= 0 and a status's base is <= its height (CometBFT
//!    `ValidateMsg`), and an extended commit is for the block's height
//!    (CometBFT `BlockPool.AddBlock`).
//!
//! [`inspect`] runs steps 1 and 2 alone and names the message kind, so the
//! node can refuse a `BlockResponse` it never asked for without paying for
//! decoding it.

use prost::encoding::{decode_key, decode_varint, WireType};
use prost::Message as _;
use tendermint_proto::v0_38::blocksync as pb;

use crate::types::{Block, ExtendedCommit, Height, MAX_BLOCK_SIZE_BYTES};

/// Bytes a `BlockResponse` adds around a block of `MaxBlockSizeBytes`: a
/// 4-byte length prefix and a 1-byte field key (CometBFT `MaxMsgSize`).
const BLOCK_RESPONSE_OVERHEAD: usize = 5;

/// The largest block sync message accepted (CometBFT `blocksync.MaxMsgSize`).
// MAX_BLOCK_SIZE_BYTES is a positive constant (100 MiB), so the cast is exact.
pub const MAX_MSG_SIZE: usize = MAX_BLOCK_SIZE_BYTES as usize + BLOCK_RESPONSE_OVERHEAD;

/// The most signatures a commit or extended commit in a `BlockResponse` may
/// carry (CometBFT `types.MaxVotesCount`).
pub const MAX_VOTES_COUNT: usize = 10_000;

/// A peer's range of stored blocks, as a `StatusResponse` reports it.
/// Valid by construction: `base <= height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status {
    base: Height,
    height: Height,
}

impl Status {
    /// A status with `base <= height`; `None` otherwise. A node without
    /// blocks reports `(0, 0)`.
    pub fn new(base: Height, height: Height) -> Option<Status> {
        (base <= height).then_some(Status { base, height })
    }

    /// The lowest stored height.
    pub fn base(&self) -> Height {
        self.base
    }

    /// The highest stored height.
    pub fn height(&self) -> Height {
        self.height
    }
}

/// A block with the extended commit of its own height, as served to a
/// syncing node. The extended commit is present iff vote extensions were
/// enabled at the block's height (the verifier checks that); when present
/// it is for the block's height (checked on decode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockResponse {
    /// The block.
    pub block: Block,
    /// The precommits for the block with their vote extensions.
    pub ext_commit: Option<ExtendedCommit>,
}

/// One message of the block sync channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncMessage {
    /// Asks for the block at a height.
    BlockRequest(Height),
    /// The sender does not have the block at this height.
    NoBlockResponse(Height),
    /// A requested block (boxed: blocks are large).
    BlockResponse(Box<BlockResponse>),
    /// Asks for the peer's [`Status`].
    StatusRequest,
    /// The sender's stored range.
    StatusResponse(Status),
}

/// Which message some bytes hold, as [`inspect`] tells before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `BlockRequest`.
    BlockRequest,
    /// `NoBlockResponse`.
    NoBlockResponse,
    /// `BlockResponse`.
    BlockResponse,
    /// `StatusRequest`.
    StatusRequest,
    /// `StatusResponse`.
    StatusResponse,
}

/// Why bytes received on the block sync channel are refused. Every variant
/// is the sender's fault: CometBFT disconnects the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Longer than [`MAX_MSG_SIZE`].
    #[error("block sync message of {len} bytes exceeds the maximum of {MAX_MSG_SIZE}")]
    TooLarge {
        /// The message's length.
        len: usize,
    },
    /// Not a well-formed protobuf message.
    #[error("malformed block sync message: {0}")]
    Malformed(String),
    /// No message kind is set.
    #[error("empty block sync message")]
    Empty,
    /// A commit or extended commit with more than [`MAX_VOTES_COUNT`]
    /// signatures.
    #[error("{what} has {count} signatures, more than the maximum of {MAX_VOTES_COUNT}")]
    TooManySignatures {
        /// "last commit" or "extended commit".
        what: &'static str,
        /// The signatures counted.
        count: usize,
    },
    /// A negative height.
    #[error("negative height {0}")]
    NegativeHeight(i64),
    /// A negative base.
    #[error("negative base {0}")]
    NegativeBase(i64),
    /// A status whose base is above its height.
    #[error("base {base} is above height {height}")]
    BaseAboveHeight {
        /// The reported base.
        base: i64,
        /// The reported height.
        height: i64,
    },
    /// A `BlockResponse` without a block.
    #[error("block response without a block")]
    MissingBlock,
    /// The block does not decode into a valid block.
    #[error("invalid block: {0}")]
    InvalidBlock(crate::types::Error),
    /// The extended commit does not decode into a valid extended commit.
    #[error("invalid extended commit: {0}")]
    InvalidExtendedCommit(crate::types::Error),
    /// The extended commit is for another height than the block.
    #[error("extended commit for height {ext_commit}, block at height {block}")]
    ExtCommitHeight {
        /// The block's height.
        block: Height,
        /// The extended commit's height.
        ext_commit: Height,
    },
}

/// A height on the wire; domain heights come from `i64`s, so they fit.
fn height_to_pb(h: Height) -> i64 {
    i64::try_from(h).unwrap_or(i64::MAX)
}

fn height_from_pb(h: i64) -> Result<Height, MessageError> {
    Height::try_from(h).map_err(|_| MessageError::NegativeHeight(h))
}

impl From<SyncMessage> for pb::Message {
    fn from(m: SyncMessage) -> Self {
        use pb::message::Sum;
        let sum = match m {
            SyncMessage::BlockRequest(h) => Sum::BlockRequest(pb::BlockRequest {
                height: height_to_pb(h),
            }),
            SyncMessage::NoBlockResponse(h) => Sum::NoBlockResponse(pb::NoBlockResponse {
                height: height_to_pb(h),
            }),
            SyncMessage::BlockResponse(r) => {
                let BlockResponse { block, ext_commit } = *r;
                Sum::BlockResponse(pb::BlockResponse {
                    block: Some(block.into()),
                    ext_commit: ext_commit.map(Into::into),
                })
            }
            SyncMessage::StatusRequest => Sum::StatusRequest(pb::StatusRequest {}),
            SyncMessage::StatusResponse(s) => Sum::StatusResponse(pb::StatusResponse {
                height: height_to_pb(s.height),
                base: height_to_pb(s.base),
            }),
        };
        pb::Message { sum: Some(sum) }
    }
}

impl TryFrom<pb::Message> for SyncMessage {
    type Error = MessageError;

    /// CometBFT `ValidateMsg`, plus the block and extended commit checks
    /// of the block sync reactor's `handlePeerResponse` and `AddBlock`.
    fn try_from(m: pb::Message) -> Result<Self, MessageError> {
        use pb::message::Sum;
        Ok(match m.sum.ok_or(MessageError::Empty)? {
            Sum::BlockRequest(r) => SyncMessage::BlockRequest(height_from_pb(r.height)?),
            Sum::NoBlockResponse(r) => SyncMessage::NoBlockResponse(height_from_pb(r.height)?),
            Sum::BlockResponse(r) => {
                let block = Block::try_from(r.block.ok_or(MessageError::MissingBlock)?)
                    .map_err(MessageError::InvalidBlock)?;
                let ext_commit = r
                    .ext_commit
                    .map(ExtendedCommit::try_from)
                    .transpose()
                    .map_err(MessageError::InvalidExtendedCommit)?;
                if let Some(ec) = &ext_commit {
                    if ec.height != block.header.height {
                        return Err(MessageError::ExtCommitHeight {
                            block: block.header.height,
                            ext_commit: ec.height,
                        });
                    }
                }
                SyncMessage::BlockResponse(Box::new(BlockResponse { block, ext_commit }))
            }
            Sum::StatusRequest(_) => SyncMessage::StatusRequest,
            Sum::StatusResponse(s) => {
                if s.base < 0 {
                    return Err(MessageError::NegativeBase(s.base));
                }
                let height = height_from_pb(s.height)?;
                // Both are >= 0 here, so the conversions are exact.
                let status =
                    Status::new(s.base as Height, height).ok_or(MessageError::BaseAboveHeight {
                        base: s.base,
                        height: s.height,
                    })?;
                SyncMessage::StatusResponse(status)
            }
        })
    }
}

impl SyncMessage {
    /// The bytes of the channel message (the protobuf encoding of
    /// `tendermint.blocksync.Message`).
    pub fn into_bytes(self) -> Vec<u8> {
        pb::Message::from(self).encode_to_vec()
    }

    /// Decodes and validates a channel message: the size and signature
    /// limits of [`inspect`] first, then the protobuf and the domain rules.
    pub fn decode(bytes: &[u8]) -> Result<SyncMessage, MessageError> {
        inspect(bytes)?;
        let raw = pb::Message::decode(bytes).map_err(|e| MessageError::Malformed(e.to_string()))?;
        SyncMessage::try_from(raw)
    }
}

/// Checks the limits that must hold before a message is decoded (its size,
/// and the signature counts of a `BlockResponse`) and names its kind,
/// without building any of it.
pub fn inspect(bytes: &[u8]) -> Result<MessageKind, MessageError> {
    if bytes.len() > MAX_MSG_SIZE {
        return Err(MessageError::TooLarge { len: bytes.len() });
    }
    let mut kind = None;
    let mut commit_sigs = 0usize;
    let mut ext_sigs = 0usize;
    // Repeated occurrences of a message field merge in protobuf, so the
    // counts add up over every occurrence at every level.
    for_each_field(bytes, |tag, payload| {
        kind = match tag {
            1 => Some(MessageKind::BlockRequest),
            2 => Some(MessageKind::NoBlockResponse),
            3 => Some(MessageKind::BlockResponse),
            4 => Some(MessageKind::StatusRequest),
            5 => Some(MessageKind::StatusResponse),
            _ => kind,
        };
        let (3, Some(response)) = (tag, payload) else {
            return Ok(());
        };
        for_each_field(response, |tag, payload| match (tag, payload) {
            // BlockResponse.block -> Block.last_commit -> Commit.signatures
            (1, Some(block)) => for_each_field(block, |tag, payload| match (tag, payload) {
                (4, Some(commit)) => {
                    commit_sigs += count_field(commit, 4)?;
                    Ok(())
                }
                _ => Ok(()),
            }),
            // BlockResponse.ext_commit -> ExtendedCommit.extended_signatures
            (2, Some(ext_commit)) => {
                ext_sigs += count_field(ext_commit, 4)?;
                Ok(())
            }
            _ => Ok(()),
        })
    })?;
    for (what, count) in [("last commit", commit_sigs), ("extended commit", ext_sigs)] {
        if count > MAX_VOTES_COUNT {
            return Err(MessageError::TooManySignatures { what, count });
        }
    }
    kind.ok_or(MessageError::Empty)
}

/// How many times field `wanted` occurs in a message.
fn count_field(bytes: &[u8], wanted: u32) -> Result<usize, MessageError> {
    let mut n = 0usize;
    for_each_field(bytes, |tag, _| {
        if tag == wanted {
            n += 1;
        }
        Ok(())
    })?;
    Ok(n)
}

/// Walks the top-level fields of one protobuf message, calling `f` with
/// each field number and, for length-delimited fields, the payload. Groups
/// (deprecated, never written by CometBFT) are refused.
fn for_each_field(
    mut buf: &[u8],
    mut f: impl FnMut(u32, Option<&[u8]>) -> Result<(), MessageError>,
) -> Result<(), MessageError> {
    let malformed = |e: prost::DecodeError| MessageError::Malformed(e.to_string());
    let truncated = || MessageError::Malformed("truncated field".into());
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(malformed)?;
        let skip = match wire_type {
            WireType::Varint => {
                decode_varint(&mut buf).map_err(malformed)?;
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut buf).map_err(malformed)?)
                    .map_err(|_| truncated())?;
                let payload = buf.get(..len).ok_or_else(truncated)?;
                f(tag, Some(payload))?;
                buf = &buf[len..];
                continue;
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err(MessageError::Malformed(
                    "protobuf groups are not accepted".into(),
                ))
            }
        };
        buf = buf.get(skip..).ok_or_else(truncated)?;
        f(tag, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tendermint_proto::v0_38::types as pb_types;

    use super::*;
    use crate::types::{
        Address, BlockId, Commit, CommitSig, ExtendedCommitSig, Hash, Header, PartSetHeader,
        Signature, Time, Version, BLOCK_PROTOCOL,
    };

    fn block_id(b: u8) -> BlockId {
        BlockId {
            hash: Hash([b; 32]),
            part_set_header: PartSetHeader {
                total: 1,
                hash: Hash([b.wrapping_add(1); 32]),
            },
        }
    }

    fn commit(height: Height, n: usize) -> Commit {
        Commit {
            height,
            round: 0,
            block_id: block_id(7),
            signatures: (0..n)
                .map(|i| CommitSig::Commit {
                    validator_address: Address([i as u8; 20]),
                    timestamp: Time {
                        secs: 1_700_000_000,
                        nanos: i as u32,
                    },
                    signature: Signature([i as u8; 64]),
                })
                .collect(),
        }
    }

    fn block(height: Height) -> Block {
        let mut b = Block {
            header: Header {
                version: Version {
                    block: BLOCK_PROTOCOL,
                    app: 1,
                },
                chain_id: "sync-chain".into(),
                height,
                time: Time {
                    secs: 1_700_000_100,
                    nanos: 0,
                },
                last_block_id: Some(block_id(7)),
                last_commit_hash: Hash::default(),
                data_hash: Hash::default(),
                validators_hash: Hash([1; 32]),
                next_validators_hash: Hash([2; 32]),
                consensus_hash: Hash([3; 32]),
                app_hash: vec![4; 32],
                last_results_hash: Hash([5; 32]),
                evidence_hash: Hash::default(),
                proposer_address: Address([6; 20]),
            },
            txs: vec![b"tx-a".to_vec(), b"tx-b".to_vec()],
            evidence: vec![],
            last_commit: Some(commit(height - 1, 3)),
        };
        b.fill_header();
        b
    }

    fn ext_commit(height: Height, n: usize) -> ExtendedCommit {
        let mut ec = ExtendedCommit::from_commit(commit(height, n));
        ec.signatures[0].extension = b"ext".to_vec();
        ec.signatures[0].extension_signature = vec![9; 64];
        ec
    }

    /// A `BlockResponse` channel message built from the raw types, so
    /// tests can encode what the domain types would refuse.
    fn block_response_pb(block: &Block, ext: Option<&ExtendedCommit>) -> pb::Message {
        pb::Message {
            sum: Some(pb::message::Sum::BlockResponse(pb::BlockResponse {
                block: Some(pb_types::Block::from(block.clone())),
                ext_commit: ext.cloned().map(Into::into),
            })),
        }
    }

    fn round_trip(m: SyncMessage) {
        let bytes = m.clone().into_bytes();
        assert_eq!(SyncMessage::decode(&bytes), Ok(m));
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(SyncMessage::BlockRequest(0));
        round_trip(SyncMessage::BlockRequest(42));
        round_trip(SyncMessage::NoBlockResponse(7));
        round_trip(SyncMessage::StatusRequest);
        round_trip(SyncMessage::StatusResponse(
            Status::new(0, 0).expect("0 <= 0"),
        ));
        round_trip(SyncMessage::StatusResponse(
            Status::new(3, 1 << 40).expect("base <= height"),
        ));
        round_trip(SyncMessage::BlockResponse(Box::new(BlockResponse {
            block: block(5),
            ext_commit: None,
        })));
        round_trip(SyncMessage::BlockResponse(Box::new(BlockResponse {
            block: block(5),
            ext_commit: Some(ext_commit(5, 3)),
        })));
    }

    /// Golden bytes worked out by hand from
    /// proto/tendermint/blocksync/types.proto. A field key is
    /// `field_number << 3 | wire_type`; messages are wire type 2
    /// (length-delimited), int64s wire type 0 (varint).
    ///
    /// - `Message{block_request: BlockRequest{height: 5}}`: `block_request`
    ///   is field 1, key `0x0a`; its body is `height` (field 1, key `0x08`)
    ///   with varint 5, two bytes, so `0a 02 08 05`.
    /// - `Message{status_response: StatusResponse{height: 300, base: 1}}`:
    ///   `status_response` is field 5, key `0x2a`. 300 = 0b10_0101100 is the
    ///   varint `ac 02` (low 7 bits 0x2c with the continuation bit, then 2);
    ///   `base` is field 2, key `0x10`, varint 1. The body `08 ac 02 10 01`
    ///   is 5 bytes: `2a 05 08 ac 02 10 01`.
    /// - `Message{status_request: StatusRequest{}}`: field 4, key `0x22`, an
    ///   empty body that a oneof still writes: `22 00`.
    /// - `Message{no_block_response: NoBlockResponse{height: 0}}`: field 2,
    ///   key `0x12`; proto3 omits the zero height: `12 00`.
    #[test]
    fn golden_bytes() {
        let cases: [(SyncMessage, &[u8]); 4] = [
            (SyncMessage::BlockRequest(5), &[0x0a, 0x02, 0x08, 0x05]),
            (
                SyncMessage::StatusResponse(Status::new(1, 300).expect("1 <= 300")),
                &[0x2a, 0x05, 0x08, 0xac, 0x02, 0x10, 0x01],
            ),
            (SyncMessage::StatusRequest, &[0x22, 0x00]),
            (SyncMessage::NoBlockResponse(0), &[0x12, 0x00]),
        ];
        for (m, bytes) in cases {
            assert_eq!(m.clone().into_bytes(), bytes, "{m:?}");
            assert_eq!(SyncMessage::decode(bytes), Ok(m));
        }
    }

    #[test]
    fn inspect_names_the_kind_without_decoding() {
        assert_eq!(
            inspect(&SyncMessage::BlockRequest(5).into_bytes()),
            Ok(MessageKind::BlockRequest)
        );
        assert_eq!(
            inspect(&SyncMessage::StatusRequest.into_bytes()),
            Ok(MessageKind::StatusRequest)
        );
        // A block that would fail to decode is still only inspected.
        let mut raw = block_response_pb(&block(5), None);
        if let Some(pb::message::Sum::BlockResponse(r)) = &mut raw.sum {
            if let Some(b) = &mut r.block {
                b.data = Some(pb_types::Data {
                    txs: vec![b"other".to_vec()],
                });
            }
        }
        let bytes = raw.encode_to_vec();
        assert_eq!(inspect(&bytes), Ok(MessageKind::BlockResponse));
        assert!(matches!(
            SyncMessage::decode(&bytes),
            Err(MessageError::InvalidBlock(_))
        ));
    }

    fn raw(sum: pb::message::Sum) -> Vec<u8> {
        pb::Message { sum: Some(sum) }.encode_to_vec()
    }

    #[test]
    fn refuses_what_validate_msg_refuses() {
        use pb::message::Sum;
        let cases = [
            (
                raw(Sum::BlockRequest(pb::BlockRequest { height: -1 })),
                MessageError::NegativeHeight(-1),
            ),
            (
                raw(Sum::NoBlockResponse(pb::NoBlockResponse { height: -5 })),
                MessageError::NegativeHeight(-5),
            ),
            (
                raw(Sum::StatusResponse(pb::StatusResponse {
                    height: 10,
                    base: -1,
                })),
                MessageError::NegativeBase(-1),
            ),
            (
                raw(Sum::StatusResponse(pb::StatusResponse {
                    height: -1,
                    base: 0,
                })),
                MessageError::NegativeHeight(-1),
            ),
            (
                raw(Sum::StatusResponse(pb::StatusResponse {
                    height: 10,
                    base: 11,
                })),
                MessageError::BaseAboveHeight {
                    base: 11,
                    height: 10,
                },
            ),
            (
                raw(Sum::BlockResponse(pb::BlockResponse {
                    block: None,
                    ext_commit: None,
                })),
                MessageError::MissingBlock,
            ),
            (Vec::new(), MessageError::Empty),
        ];
        for (bytes, err) in cases {
            assert_eq!(SyncMessage::decode(&bytes), Err(err));
        }
        assert!(Status::new(2, 1).is_none());
        assert!(matches!(
            SyncMessage::decode(&[0xff, 0xff]),
            Err(MessageError::Malformed(_))
        ));
        // A length prefix running past the end.
        assert!(matches!(
            SyncMessage::decode(&[0x2a, 0x09, 0x08]),
            Err(MessageError::Malformed(_))
        ));
        // A group, which no CometBFT node writes.
        assert!(matches!(
            inspect(&[0x0b, 0x0c]),
            Err(MessageError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_bad_blocks_and_extended_commits() {
        let wrong_height = block_response_pb(&block(5), Some(&ext_commit(4, 3))).encode_to_vec();
        assert_eq!(
            SyncMessage::decode(&wrong_height),
            Err(MessageError::ExtCommitHeight {
                block: 5,
                ext_commit: 4
            })
        );
        let mut bad_ext = ext_commit(5, 3);
        bad_ext.signatures[1] = ExtendedCommitSig {
            commit_sig: CommitSig::Absent,
            extension: b"no signature".to_vec(),
            extension_signature: vec![],
        };
        assert!(matches!(
            SyncMessage::decode(&block_response_pb(&block(5), Some(&bad_ext)).encode_to_vec()),
            Err(MessageError::InvalidExtendedCommit(_))
        ));
    }

    #[test]
    fn refuses_oversized_messages_before_decoding() {
        // One byte too many, made of a field that would decode fine.
        let mut big = vec![0x22, 0x00];
        big.resize(MAX_MSG_SIZE + 1, 0);
        assert_eq!(
            inspect(&big),
            Err(MessageError::TooLarge {
                len: MAX_MSG_SIZE + 1
            })
        );
        assert_eq!(MAX_MSG_SIZE, 104_857_605);
    }

    #[test]
    fn refuses_more_than_max_votes_signatures() {
        let mut b = block(5);
        b.last_commit = Some(commit(4, MAX_VOTES_COUNT));
        b.fill_header();
        let at_limit = block_response_pb(&b, None).encode_to_vec();
        assert!(matches!(
            SyncMessage::decode(&at_limit),
            Ok(SyncMessage::BlockResponse(_))
        ));

        b.last_commit = Some(commit(4, MAX_VOTES_COUNT + 1));
        b.fill_header();
        assert_eq!(
            inspect(&block_response_pb(&b, None).encode_to_vec()),
            Err(MessageError::TooManySignatures {
                what: "last commit",
                count: MAX_VOTES_COUNT + 1
            })
        );

        let many = ext_commit(5, MAX_VOTES_COUNT + 1);
        assert_eq!(
            SyncMessage::decode(&block_response_pb(&block(5), Some(&many)).encode_to_vec()),
            Err(MessageError::TooManySignatures {
                what: "extended commit",
                count: MAX_VOTES_COUNT + 1
            })
        );

        // Protobuf merges repeated occurrences of a message field, so a
        // response split in two halves still counts as one commit.
        let half = commit(4, MAX_VOTES_COUNT / 2 + 1);
        let half_pb = pb_types::Commit::from(half).encode_to_vec();
        let mut block_body = vec![0x22];
        prost::encoding::encode_varint(half_pb.len() as u64, &mut block_body);
        block_body.extend(&half_pb);
        let mut response_body = vec![0x0a];
        prost::encoding::encode_varint(block_body.len() as u64, &mut response_body);
        response_body.extend(&block_body);
        let mut msg = Vec::new();
        for _ in 0..2 {
            msg.push(0x1a);
            prost::encoding::encode_varint(response_body.len() as u64, &mut msg);
            msg.extend(&response_body);
        }
        assert_eq!(
            inspect(&msg),
            Err(MessageError::TooManySignatures {
                what: "last commit",
                count: 2 * (MAX_VOTES_COUNT / 2 + 1)
            })
        );
    }
}
