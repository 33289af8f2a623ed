//! The consensus reactor's messages (`tendermint.consensus.Message`) as
//! our types, with CometBFT's `ValidateBasic` checks applied on decode: a
//! message that fails them is the sender's fault (the peer is dropped).

use prost::Message as _;
use tendermint_proto::v0_38::consensus::{self as pb, message::Sum};
use tendermint_proto::v0_38::types as pbt;

use super::bits::{BitArray, BitsError};
use super::peer::step;
use crate::types::{
    BlockId, Height, Part, PartSetHeader, Proposal, Vote, VoteType, MAX_BLOCK_PARTS_COUNT,
};

/// One consensus gossip message.
#[derive(Clone, Debug, PartialEq)]
pub enum ConsensusMessage {
    /// The sender moved to (height, round, step).
    NewRoundStep {
        /// Height.
        height: Height,
        /// Round.
        round: i32,
        /// Step (`peer::step`).
        step: u8,
        /// Seconds since the round started (informational).
        seconds_since_start: i64,
        /// Round of the last commit (-1 at the initial height).
        last_commit_round: i32,
    },
    /// The sender has a valid (or, `is_commit`, committed) block's parts.
    NewValidBlock {
        /// Height.
        height: Height,
        /// Round.
        round: i32,
        /// The block's part set.
        parts_header: PartSetHeader,
        /// The parts the sender has.
        parts: BitArray,
        /// True when the block is committed.
        is_commit: bool,
    },
    /// A signed proposal.
    Proposal(Proposal),
    /// The sender's prevotes in the proposal's POL round.
    ProposalPol {
        /// Height.
        height: Height,
        /// The POL round.
        pol_round: i32,
        /// Which prevotes the sender has.
        pol: BitArray,
    },
    /// One part of a proposed or committed block.
    BlockPart {
        /// Height.
        height: Height,
        /// Round.
        round: i32,
        /// The part, with its merkle proof.
        part: Part,
    },
    /// A signed vote.
    Vote(Vote),
    /// The sender has this vote.
    HasVote {
        /// Height.
        height: Height,
        /// Round.
        round: i32,
        /// Kind.
        kind: VoteType,
        /// Validator index.
        index: u32,
    },
    /// The sender saw +2/3 for `block_id` (None: nil) in (height, round).
    VoteSetMaj23 {
        /// Height.
        height: Height,
        /// Round.
        round: i32,
        /// Kind.
        kind: VoteType,
        /// The value.
        block_id: Option<BlockId>,
    },
    /// Answer to `VoteSetMaj23`: which of those votes the sender has.
    VoteSetBits {
        /// Height.
        height: Height,
        /// Round.
        round: i32,
        /// Kind.
        kind: VoteType,
        /// The value.
        block_id: Option<BlockId>,
        /// Which votes for it the sender has.
        votes: BitArray,
    },
}

/// Why a peer's consensus message is refused.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not a protobuf `tendermint.consensus.Message`.
    #[error("undecodable consensus message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// No message inside.
    #[error("empty consensus message")]
    Empty,
    /// A field is out of range (CometBFT's ValidateBasic).
    #[error("invalid consensus message: {0}")]
    Invalid(String),
    /// A contained type failed its own checks.
    #[error("invalid consensus message: {0}")]
    Types(#[from] crate::types::Error),
    /// A bit array is malformed.
    #[error("invalid consensus message: {0}")]
    Bits(#[from] BitsError),
}

fn invalid(why: impl Into<String>) -> MessageError {
    MessageError::Invalid(why.into())
}

fn height(h: i64) -> Result<Height, MessageError> {
    u64::try_from(h).map_err(|_| invalid("negative height"))
}

fn round(r: i32) -> Result<i32, MessageError> {
    if r < 0 {
        return Err(invalid("negative round"));
    }
    Ok(r)
}

fn bits(
    b: Option<tendermint_proto::v0_38::libs::bits::BitArray>,
) -> Result<BitArray, MessageError> {
    Ok(BitArray::try_from(b.unwrap_or_default())?)
}

/// A possibly-nil block id: nil is the empty id (no hash, no parts).
fn maybe_block_id(b: Option<pbt::BlockId>) -> Result<Option<BlockId>, MessageError> {
    match b {
        None => Ok(None),
        Some(b)
            if b.hash.is_empty()
                && b.part_set_header
                    .as_ref()
                    .is_none_or(|p| p.total == 0 && p.hash.is_empty()) =>
        {
            Ok(None)
        }
        Some(b) => Ok(Some(BlockId::try_from(b)?)),
    }
}

fn block_id_pb(b: Option<BlockId>) -> pbt::BlockId {
    match b {
        Some(b) => b.into(),
        None => pbt::BlockId {
            hash: vec![],
            part_set_header: Some(pbt::PartSetHeader::default()),
        },
    }
}

fn parts_header(p: Option<pbt::PartSetHeader>) -> Result<PartSetHeader, MessageError> {
    let p = PartSetHeader::try_from(p.ok_or_else(|| invalid("missing part set header"))?)?;
    if p.total == 0 || p.total > MAX_BLOCK_PARTS_COUNT {
        return Err(invalid(format!("part set of {} parts", p.total)));
    }
    Ok(p)
}

impl ConsensusMessage {
    /// Decodes and validates a message received on a consensus channel.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let msg = pb::Message::decode(bytes)?;
        Self::try_from(msg)
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        pb::Message::from(self.clone()).encode_to_vec()
    }
}

impl TryFrom<pb::Message> for ConsensusMessage {
    type Error = MessageError;

    fn try_from(m: pb::Message) -> Result<Self, MessageError> {
        Ok(match m.sum.ok_or(MessageError::Empty)? {
            Sum::NewRoundStep(m) => {
                let s = u8::try_from(m.step).map_err(|_| invalid("invalid step"))?;
                if !(step::NEW_HEIGHT..=step::COMMIT).contains(&s) {
                    return Err(invalid("invalid step"));
                }
                if m.last_commit_round < -1 {
                    return Err(invalid("last commit round below -1"));
                }
                ConsensusMessage::NewRoundStep {
                    height: height(m.height)?,
                    round: round(m.round)?,
                    step: s,
                    seconds_since_start: m.seconds_since_start_time,
                    last_commit_round: m.last_commit_round,
                }
            }
            Sum::NewValidBlock(m) => {
                let parts_header = parts_header(m.block_part_set_header)?;
                let parts = bits(m.block_parts)?;
                if parts.len() != parts_header.total as usize {
                    return Err(invalid(
                        "block parts bit array does not match the part count",
                    ));
                }
                ConsensusMessage::NewValidBlock {
                    height: height(m.height)?,
                    round: round(m.round)?,
                    parts_header,
                    parts,
                    is_commit: m.is_commit,
                }
            }
            Sum::Proposal(m) => ConsensusMessage::Proposal(Proposal::try_from(
                m.proposal.ok_or_else(|| invalid("missing proposal"))?,
            )?),
            Sum::ProposalPol(m) => {
                let pol = bits(m.proposal_pol)?;
                if pol.is_empty() {
                    return Err(invalid("empty proposal POL bit array"));
                }
                ConsensusMessage::ProposalPol {
                    height: height(m.height)?,
                    pol_round: round(m.proposal_pol_round)?,
                    pol,
                }
            }
            Sum::BlockPart(m) => ConsensusMessage::BlockPart {
                height: height(m.height)?,
                round: round(m.round)?,
                part: Part::try_from(m.part.ok_or_else(|| invalid("missing part"))?)?,
            },
            Sum::Vote(m) => ConsensusMessage::Vote(Vote::try_from(
                m.vote.ok_or_else(|| invalid("missing vote"))?,
            )?),
            Sum::HasVote(m) => ConsensusMessage::HasVote {
                height: height(m.height)?,
                round: round(m.round)?,
                kind: VoteType::try_from(m.r#type)?,
                index: u32::try_from(m.index).map_err(|_| invalid("negative index"))?,
            },
            Sum::VoteSetMaj23(m) => ConsensusMessage::VoteSetMaj23 {
                height: height(m.height)?,
                round: round(m.round)?,
                kind: VoteType::try_from(m.r#type)?,
                block_id: maybe_block_id(m.block_id)?,
            },
            Sum::VoteSetBits(m) => ConsensusMessage::VoteSetBits {
                height: height(m.height)?,
                round: round(m.round)?,
                kind: VoteType::try_from(m.r#type)?,
                block_id: maybe_block_id(m.block_id)?,
                votes: bits(m.votes)?,
            },
        })
    }
}

impl From<ConsensusMessage> for pb::Message {
    fn from(m: ConsensusMessage) -> Self {
        let sum = match m {
            ConsensusMessage::NewRoundStep {
                height,
                round,
                step,
                seconds_since_start,
                last_commit_round,
            } => Sum::NewRoundStep(pb::NewRoundStep {
                height: height as i64,
                round,
                step: step.into(),
                seconds_since_start_time: seconds_since_start,
                last_commit_round,
            }),
            ConsensusMessage::NewValidBlock {
                height,
                round,
                parts_header,
                parts,
                is_commit,
            } => Sum::NewValidBlock(pb::NewValidBlock {
                height: height as i64,
                round,
                block_part_set_header: Some(parts_header.into()),
                block_parts: Some((&parts).into()),
                is_commit,
            }),
            ConsensusMessage::Proposal(p) => Sum::Proposal(pb::Proposal {
                proposal: Some(p.into()),
            }),
            ConsensusMessage::ProposalPol {
                height,
                pol_round,
                pol,
            } => Sum::ProposalPol(pb::ProposalPol {
                height: height as i64,
                proposal_pol_round: pol_round,
                proposal_pol: Some((&pol).into()),
            }),
            ConsensusMessage::BlockPart {
                height,
                round,
                part,
            } => Sum::BlockPart(pb::BlockPart {
                height: height as i64,
                round,
                part: Some(part.into()),
            }),
            ConsensusMessage::Vote(v) => Sum::Vote(pb::Vote {
                vote: Some(v.into()),
            }),
            ConsensusMessage::HasVote {
                height,
                round,
                kind,
                index,
            } => Sum::HasVote(pb::HasVote {
                height: height as i64,
                round,
                r#type: pbt::SignedMsgType::from(kind).into(),
                index: index as i32,
            }),
            ConsensusMessage::VoteSetMaj23 {
                height,
                round,
                kind,
                block_id,
            } => Sum::VoteSetMaj23(pb::VoteSetMaj23 {
                height: height as i64,
                round,
                r#type: pbt::SignedMsgType::from(kind).into(),
                block_id: Some(block_id_pb(block_id)),
            }),
            ConsensusMessage::VoteSetBits {
                height,
                round,
                kind,
                block_id,
                votes,
            } => Sum::VoteSetBits(pb::VoteSetBits {
                height: height as i64,
                round,
                r#type: pbt::SignedMsgType::from(kind).into(),
                block_id: Some(block_id_pb(block_id)),
                votes: Some((&votes).into()),
            }),
        };
        pb::Message { sum: Some(sum) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Hash;

    fn block_id() -> BlockId {
        BlockId {
            hash: Hash([1; 32]),
            part_set_header: PartSetHeader {
                total: 2,
                hash: Hash([2; 32]),
            },
        }
    }

    #[test]
    fn round_trips() {
        let mut parts = BitArray::new(2);
        parts.set(1, true);
        for m in [
            ConsensusMessage::NewRoundStep {
                height: 5,
                round: 1,
                step: step::PREVOTE,
                seconds_since_start: 3,
                last_commit_round: 0,
            },
            ConsensusMessage::NewValidBlock {
                height: 5,
                round: 1,
                parts_header: block_id().part_set_header,
                parts: parts.clone(),
                is_commit: true,
            },
            ConsensusMessage::HasVote {
                height: 5,
                round: 0,
                kind: VoteType::Precommit,
                index: 3,
            },
            ConsensusMessage::VoteSetMaj23 {
                height: 5,
                round: 0,
                kind: VoteType::Prevote,
                block_id: None,
            },
            ConsensusMessage::VoteSetBits {
                height: 5,
                round: 0,
                kind: VoteType::Prevote,
                block_id: Some(block_id()),
                votes: parts.clone(),
            },
        ] {
            assert_eq!(ConsensusMessage::decode(&m.encode()).expect("decodes"), m);
        }
    }

    #[test]
    fn golden_new_round_step_and_has_vote_bytes() {
        // NewRoundStep{height 5, round 1, step 4, secs 0, lcr 0} is field 1
        // of Message: 0a len, then 08 05 (height), 10 01 (round), 18 04
        // (step); zero fields are omitted.
        let m = ConsensusMessage::NewRoundStep {
            height: 5,
            round: 1,
            step: step::PREVOTE,
            seconds_since_start: 0,
            last_commit_round: 0,
        };
        assert_eq!(m.encode(), [0x0a, 0x06, 0x08, 0x05, 0x10, 0x01, 0x18, 0x04]);
        // HasVote is field 7 (tag 0x3a): height 2, round 0, type 2, index 1.
        let m = ConsensusMessage::HasVote {
            height: 2,
            round: 0,
            kind: VoteType::Precommit,
            index: 1,
        };
        assert_eq!(m.encode(), [0x3a, 0x06, 0x08, 0x02, 0x18, 0x02, 0x20, 0x01]);
    }

    #[test]
    fn validate_basic_refusals() {
        let refused =
            |sum: Sum| ConsensusMessage::try_from(pb::Message { sum: Some(sum) }).is_err();
        assert!(refused(Sum::NewRoundStep(pb::NewRoundStep {
            height: 1,
            round: 0,
            step: 9,
            ..Default::default()
        })));
        assert!(refused(Sum::NewRoundStep(pb::NewRoundStep {
            height: -1,
            step: 1,
            ..Default::default()
        })));
        assert!(refused(Sum::HasVote(pb::HasVote {
            height: 1,
            r#type: 32,
            ..Default::default()
        })));
        assert!(refused(Sum::HasVote(pb::HasVote {
            height: 1,
            r#type: 1,
            index: -1,
            ..Default::default()
        })));
        // Bits that do not match the part count.
        assert!(refused(Sum::NewValidBlock(pb::NewValidBlock {
            height: 1,
            block_part_set_header: Some(block_id().part_set_header.into()),
            block_parts: Some((&BitArray::new(3)).into()),
            ..Default::default()
        })));
        assert!(refused(Sum::ProposalPol(pb::ProposalPol {
            height: 1,
            proposal_pol_round: 0,
            proposal_pol: Some((&BitArray::new(0)).into()),
        })));
        assert!(matches!(
            ConsensusMessage::decode(&[0xff, 0xff]),
            Err(MessageError::Decode(_))
        ));
        assert!(matches!(
            ConsensusMessage::decode(&[]),
            Err(MessageError::Empty)
        ));
    }
}
