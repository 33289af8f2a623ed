//! Conversions between the small domain types (part set headers, block ids,
//! votes, proposals) and the tendermint-proto v0.38 messages.
//!
//! CometBFT declares most embedded messages `nullable = false` in gogoproto,
//! so Go always writes them, even when empty. prost models them as `Option`;
//! to produce identical bytes every such field is filled with `Some(..)` here,
//! and an absent field on input is read as the empty value, as Go reads it.

use tendermint_proto::v0_38::types as pb;

use super::time::time_from_pb;
use super::{
    Address, BlockId, Error, Hash, Height, PartSetHeader, Proposal, Round, Signature, Vote,
    VoteType,
};

/// Heights are int64 on the wire. Domain heights come from the wire or are
/// derived by +1 from one, so they stay <= i64::MAX; saturate rather than wrap.
pub(crate) fn height_to_pb(h: Height) -> i64 {
    i64::try_from(h).unwrap_or(i64::MAX)
}

/// Rounds are int32 on the wire; see [`height_to_pb`] for why saturating is safe.
pub(crate) fn round_to_pb(r: Round) -> i32 {
    i32::try_from(r).unwrap_or(i32::MAX)
}

/// A wire height that must be >= 1.
pub(crate) fn height_from_pb(field: &'static str, h: i64) -> Result<Height, Error> {
    if h < 1 {
        return Err(Error::field(field, format!("must be >= 1, got {h}")));
    }
    // h >= 1 so the conversion is lossless.
    Ok(h as Height)
}

/// A wire round that must be >= 0.
pub(crate) fn round_from_pb(field: &'static str, r: i32) -> Result<Round, Error> {
    Round::try_from(r).map_err(|_| Error::field(field, format!("must be >= 0, got {r}")))
}

/// A wire signature of exactly 64 bytes. CometBFT accepts 1..=64 bytes in
/// `ValidateBasic`, but anything but 64 can never verify as ed25519.
pub(crate) fn signature_from_pb(field: &'static str, s: &[u8]) -> Result<Signature, Error> {
    Signature::from_slice(field, s)
}

impl From<PartSetHeader> for pb::PartSetHeader {
    fn from(p: PartSetHeader) -> Self {
        pb::PartSetHeader {
            total: p.total,
            hash: p.hash.0.to_vec(),
        }
    }
}

impl TryFrom<pb::PartSetHeader> for PartSetHeader {
    type Error = Error;

    fn try_from(p: pb::PartSetHeader) -> Result<Self, Error> {
        Ok(PartSetHeader {
            total: p.total,
            hash: Hash::from_slice("part_set_header.hash", &p.hash)?,
        })
    }
}

impl From<BlockId> for pb::BlockId {
    fn from(b: BlockId) -> Self {
        pb::BlockId {
            hash: b.hash.0.to_vec(),
            part_set_header: Some(b.part_set_header.into()),
        }
    }
}

impl TryFrom<pb::BlockId> for BlockId {
    type Error = Error;

    /// Accepts only a complete block id (CometBFT `BlockID.IsComplete`):
    /// 32-byte hash, at least one part, 32-byte part set hash.
    fn try_from(b: pb::BlockId) -> Result<Self, Error> {
        block_id_from_pb(Some(b))?.ok_or_else(|| Error::field("block_id", "nil block id"))
    }
}

/// Go's `BlockID.ToProto` for an optional id: nil is the empty struct whose
/// (non-nullable) part set header is still written.
pub(crate) fn block_id_to_pb(b: Option<BlockId>) -> pb::BlockId {
    match b {
        Some(b) => b.into(),
        None => pb::BlockId {
            hash: Vec::new(),
            part_set_header: Some(pb::PartSetHeader::default()),
        },
    }
}

/// Reads a wire block id that is either zero (nil, `None`) or complete.
/// CometBFT accepts some partial ids in `ValidateBasic` (e.g. an empty part
/// set header), but every consumer then requires zero-or-complete, so they
/// are rejected here.
pub(crate) fn block_id_from_pb(b: Option<pb::BlockId>) -> Result<Option<BlockId>, Error> {
    let b = b.unwrap_or_default();
    let psh = b.part_set_header.unwrap_or_default();
    if b.hash.is_empty() && psh.total == 0 && psh.hash.is_empty() {
        return Ok(None);
    }
    if psh.total == 0 {
        return Err(Error::field(
            "block_id",
            "neither nil nor complete (zero parts)",
        ));
    }
    Ok(Some(BlockId {
        hash: Hash::from_slice("block_id.hash", &b.hash)?,
        part_set_header: psh.try_into()?,
    }))
}

impl BlockId {
    /// CometBFT `BlockID.Key()`: the hash bytes followed by the protobuf
    /// encoding of the part set header. Duplicate-vote evidence orders its
    /// votes by comparing these keys bytewise.
    pub fn key(&self) -> Vec<u8> {
        use prost::Message;
        let mut out = self.hash.0.to_vec();
        out.extend(pb::PartSetHeader::from(self.part_set_header).encode_to_vec());
        out
    }
}

/// The key of a possibly-nil block id; nil is the empty string.
pub(crate) fn block_id_key(b: Option<&BlockId>) -> Vec<u8> {
    b.map(BlockId::key).unwrap_or_default()
}

impl From<VoteType> for pb::SignedMsgType {
    fn from(t: VoteType) -> Self {
        match t {
            VoteType::Prevote => pb::SignedMsgType::Prevote,
            VoteType::Precommit => pb::SignedMsgType::Precommit,
        }
    }
}

impl TryFrom<i32> for VoteType {
    type Error = Error;

    fn try_from(t: i32) -> Result<Self, Error> {
        match t {
            1 => Ok(VoteType::Prevote),
            2 => Ok(VoteType::Precommit),
            _ => Err(Error::field("vote.type", format!("not a vote type: {t}"))),
        }
    }
}

impl From<Vote> for pb::Vote {
    fn from(v: Vote) -> Self {
        pb::Vote {
            r#type: pb::SignedMsgType::from(v.vote_type) as i32,
            height: height_to_pb(v.height),
            round: round_to_pb(v.round),
            block_id: Some(block_id_to_pb(v.block_id)),
            timestamp: Some(v.timestamp.into()),
            validator_address: v.validator_address.0.to_vec(),
            validator_index: i32::try_from(v.validator_index).unwrap_or(i32::MAX),
            signature: v.signature.0.to_vec(),
            extension: v.extension,
            extension_signature: v.extension_signature,
        }
    }
}

/// CometBFT's `MaxSignatureSize` (for extension signatures).
pub(crate) const MAX_SIGNATURE_SIZE: usize = 64;
/// CometBFT's `MaxVoteExtensionSize`.
pub const MAX_VOTE_EXTENSION_SIZE: usize = 1024 * 1024;

impl TryFrom<pb::Vote> for Vote {
    type Error = Error;

    /// CometBFT `VoteFromProto` followed by `Vote.ValidateBasic`.
    fn try_from(v: pb::Vote) -> Result<Self, Error> {
        let vote_type = VoteType::try_from(v.r#type)?;
        let block_id = block_id_from_pb(v.block_id)?;
        let validator_index = u32::try_from(v.validator_index)
            .map_err(|_| Error::field("vote.validator_index", "negative"))?;
        let for_block_precommit = vote_type == VoteType::Precommit && block_id.is_some();
        if for_block_precommit {
            if v.extension_signature.len() > MAX_SIGNATURE_SIZE {
                return Err(Error::field("vote.extension_signature", "too long"));
            }
            if v.extension_signature.is_empty() && !v.extension.is_empty() {
                return Err(Error::field(
                    "vote.extension_signature",
                    "absent on a vote with an extension",
                ));
            }
        } else if !v.extension.is_empty() || !v.extension_signature.is_empty() {
            return Err(Error::field(
                "vote.extension",
                "only non-nil precommits may carry an extension",
            ));
        }
        Ok(Vote {
            vote_type,
            height: height_from_pb("vote.height", v.height)?,
            round: round_from_pb("vote.round", v.round)?,
            block_id,
            timestamp: time_from_pb(v.timestamp)?,
            validator_address: Address::from_slice("vote.validator_address", &v.validator_address)?,
            validator_index,
            signature: signature_from_pb("vote.signature", &v.signature)?,
            extension: v.extension,
            extension_signature: v.extension_signature,
        })
    }
}

/// `SignedMsgType` of proposals.
pub(crate) const PROPOSAL_TYPE: i32 = 32;

impl From<Proposal> for pb::Proposal {
    fn from(p: Proposal) -> Self {
        pb::Proposal {
            r#type: PROPOSAL_TYPE,
            height: height_to_pb(p.height),
            round: round_to_pb(p.round),
            pol_round: p.pol_round.map_or(-1, round_to_pb),
            block_id: Some(p.block_id.into()),
            timestamp: Some(p.timestamp.into()),
            signature: p.signature.0.to_vec(),
        }
    }
}

impl TryFrom<pb::Proposal> for Proposal {
    type Error = Error;

    /// CometBFT `ProposalFromProto` + `ValidateBasic`: type 32, height >= 1,
    /// round >= 0, pol_round >= -1, complete block id, 64-byte signature.
    /// Like CometBFT's types, this does not check `pol_round < round`; the
    /// consensus state machine does.
    fn try_from(p: pb::Proposal) -> Result<Self, Error> {
        if p.r#type != PROPOSAL_TYPE {
            return Err(Error::field(
                "proposal.type",
                format!("expected 32, got {}", p.r#type),
            ));
        }
        let pol_round = match p.pol_round {
            -1 => None,
            r => Some(round_from_pb("proposal.pol_round", r)?),
        };
        Ok(Proposal {
            height: height_from_pb("proposal.height", p.height)?,
            round: round_from_pb("proposal.round", p.round)?,
            pol_round,
            block_id: block_id_from_pb(p.block_id)?
                .ok_or_else(|| Error::field("proposal.block_id", "nil block id"))?,
            timestamp: time_from_pb(p.timestamp)?,
            signature: signature_from_pb("proposal.signature", &p.signature)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Time;

    fn block_id() -> BlockId {
        BlockId {
            hash: Hash([1; 32]),
            part_set_header: PartSetHeader {
                total: 3,
                hash: Hash([2; 32]),
            },
        }
    }

    fn vote(t: VoteType, b: Option<BlockId>) -> Vote {
        Vote {
            vote_type: t,
            height: 5,
            round: 2,
            block_id: b,
            timestamp: Time {
                secs: 1_600_000_000,
                nanos: 7,
            },
            validator_address: Address([9; 20]),
            validator_index: 4,
            signature: Signature([3; 64]),
            extension: Vec::new(),
            extension_signature: Vec::new(),
        }
    }

    #[test]
    fn vote_roundtrip() {
        for v in [
            vote(VoteType::Prevote, None),
            vote(VoteType::Prevote, Some(block_id())),
            vote(VoteType::Precommit, None),
            Vote {
                extension: b"ext".to_vec(),
                extension_signature: vec![1; 64],
                ..vote(VoteType::Precommit, Some(block_id()))
            },
        ] {
            assert_eq!(Vote::try_from(pb::Vote::from(v.clone())), Ok(v));
        }
    }

    #[test]
    fn vote_rejects_invalid_fields() {
        let good = pb::Vote::from(vote(VoteType::Precommit, Some(block_id())));
        type Mutation = Box<dyn Fn(&mut pb::Vote)>;
        let bad: Vec<Mutation> = vec![
            Box::new(|v| v.r#type = 0),
            Box::new(|v| v.r#type = 32),
            Box::new(|v| v.height = 0),
            Box::new(|v| v.height = -1),
            Box::new(|v| v.round = -1),
            Box::new(|v| v.validator_index = -1),
            Box::new(|v| v.validator_address.pop().map(drop).unwrap_or(())),
            Box::new(|v| v.signature.clear()),
            Box::new(|v| v.signature.push(0)),
            Box::new(|v| {
                v.timestamp = Some(tendermint_proto::google::protobuf::Timestamp {
                    seconds: 0,
                    nanos: -1,
                })
            }),
            Box::new(|v| {
                v.block_id
                    .as_mut()
                    .map(|b| b.hash.pop())
                    .map(drop)
                    .unwrap_or(())
            }),
            Box::new(|v| {
                if let Some(psh) = v.block_id.as_mut().and_then(|b| b.part_set_header.as_mut()) {
                    psh.total = 0;
                }
            }),
            Box::new(|v| v.extension = b"x".to_vec()),
            Box::new(|v| v.extension_signature = vec![0; 65]),
        ];
        for (i, f) in bad.iter().enumerate() {
            let mut v = good.clone();
            f(&mut v);
            assert!(Vote::try_from(v).is_err(), "case {i} accepted");
        }
        // Extensions on prevotes or nil precommits are rejected.
        let mut nil_ext = pb::Vote::from(vote(VoteType::Precommit, None));
        nil_ext.extension_signature = vec![1; 64];
        assert!(Vote::try_from(nil_ext).is_err());
        let mut prevote_ext = pb::Vote::from(vote(VoteType::Prevote, Some(block_id())));
        prevote_ext.extension = b"e".to_vec();
        prevote_ext.extension_signature = vec![1; 64];
        assert!(Vote::try_from(prevote_ext).is_err());
    }

    #[test]
    fn nil_block_id_encodes_as_go_empty_struct() {
        use prost::Message;
        assert_eq!(block_id_to_pb(None).encode_to_vec(), vec![0x12, 0x00]);
        assert_eq!(block_id_from_pb(None), Ok(None));
        assert_eq!(block_id_from_pb(Some(block_id_to_pb(None))), Ok(None));
        assert_eq!(
            block_id_from_pb(Some(block_id().into())),
            Ok(Some(block_id()))
        );
        assert!(BlockId::try_from(block_id_to_pb(None)).is_err());
    }

    #[test]
    fn proposal_roundtrip_and_validation() {
        let p = Proposal {
            height: 3,
            round: 4,
            pol_round: Some(1),
            block_id: block_id(),
            timestamp: Time { secs: 10, nanos: 0 },
            signature: Signature([5; 64]),
        };
        assert_eq!(
            Proposal::try_from(pb::Proposal::from(p.clone())),
            Ok(p.clone())
        );
        let none = Proposal {
            pol_round: None,
            ..p.clone()
        };
        let raw = pb::Proposal::from(none.clone());
        assert_eq!(raw.pol_round, -1);
        assert_eq!(Proposal::try_from(raw.clone()), Ok(none));
        let mut r = raw.clone();
        r.pol_round = -2;
        assert!(Proposal::try_from(r).is_err());
        let mut r = raw.clone();
        r.r#type = 1;
        assert!(Proposal::try_from(r).is_err());
        let mut r = raw.clone();
        r.block_id = Some(block_id_to_pb(None));
        assert!(Proposal::try_from(r).is_err());
        let mut r = raw;
        r.height = 0;
        assert!(Proposal::try_from(r).is_err());
    }

    #[test]
    fn block_id_key_orders_nil_first() {
        let k = block_id().key();
        assert_eq!(&k[..32], &[1; 32]);
        assert_eq!(
            &k[32..],
            &[
                0x08, 0x03, 0x12, 0x20, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
                2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2
            ]
        );
        assert!(block_id_key(None) < k);
    }
}
