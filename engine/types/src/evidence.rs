//! Duplicate-vote evidence (CometBFT types/evidence.go): construction with
//! CometBFT's vote order, hashing, and the protobuf forms.

use prost::Message;
use tendermint_proto::v0_38::types as pb;

use super::proto::block_id_key;
use super::time::time_from_pb;
use super::{
    merkle_hash_from_byte_slices, sha256, DuplicateVoteEvidence, Error, Evidence, Hash, Height,
    PublicKey, Time, ValidatorSet, Vote,
};

impl DuplicateVoteEvidence {
    /// Evidence that one validator signed both votes (CometBFT
    /// `NewDuplicateVoteEvidence`), with the votes ordered so that `vote_a`
    /// has the smaller `BlockID.Key()`. Checks that the votes share height,
    /// round, type, validator address and index and differ in block id, and
    /// that the validator is in `validators`, whose powers are recorded.
    /// Signatures are not checked here; see [`DuplicateVoteEvidence::verify`].
    pub fn new(
        a: Vote,
        b: Vote,
        timestamp: Time,
        validators: &ValidatorSet,
    ) -> Result<Self, Error> {
        if a.height != b.height || a.round != b.round || a.vote_type != b.vote_type {
            return Err(Error::field(
                "duplicate_vote_evidence",
                "votes are for different height, round or type",
            ));
        }
        if a.validator_address != b.validator_address || a.validator_index != b.validator_index {
            return Err(Error::field(
                "duplicate_vote_evidence",
                "votes are from different validators",
            ));
        }
        if a.block_id == b.block_id {
            return Err(Error::field(
                "duplicate_vote_evidence",
                "votes are for the same block id",
            ));
        }
        let (_, val) = validators
            .get_by_address(&a.validator_address)
            .ok_or_else(|| Error::field("duplicate_vote_evidence", "validator not in the set"))?;
        let validator_power = val.voting_power;
        let (vote_a, vote_b) =
            if block_id_key(a.block_id.as_ref()) < block_id_key(b.block_id.as_ref()) {
                (a, b)
            } else {
                (b, a)
            };
        Ok(DuplicateVoteEvidence {
            vote_a,
            vote_b,
            total_voting_power: validators.total_voting_power(),
            validator_power,
            timestamp,
        })
    }

    /// The protobuf encoding of the evidence (CometBFT `Bytes`), which is
    /// also its leaf in the evidence merkle tree.
    pub fn to_bytes(&self) -> Vec<u8> {
        pb::DuplicateVoteEvidence::from(self.clone()).encode_to_vec()
    }

    /// SHA-256 of [`DuplicateVoteEvidence::to_bytes`] (CometBFT `Hash`).
    pub fn hash(&self) -> Hash {
        sha256(&self.to_bytes())
    }

    /// Height of the equivocation.
    pub fn height(&self) -> Height {
        self.vote_a.height
    }

    /// Checks both votes' signatures under `pub_key` for `chain_id`.
    pub fn verify(&self, chain_id: &str, pub_key: &PublicKey) -> Result<(), Error> {
        self.vote_a.verify(chain_id, pub_key)?;
        self.vote_b.verify(chain_id, pub_key)
    }
}

impl Evidence {
    /// The evidence's own hash.
    pub fn hash(&self) -> Hash {
        match self {
            Evidence::DuplicateVote(e) => e.hash(),
        }
    }

    /// The evidence's leaf in the block's evidence merkle tree.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Evidence::DuplicateVote(e) => e.to_bytes(),
        }
    }

    /// Height of the misbehaviour.
    pub fn height(&self) -> Height {
        match self {
            Evidence::DuplicateVote(e) => e.height(),
        }
    }
}

/// The header's evidence hash: merkle root of each evidence's bytes, which for
/// duplicate votes are the bare `DuplicateVoteEvidence` encoding, not the
/// `Evidence` oneof wrapper (CometBFT `EvidenceList.Hash`).
pub fn evidence_hash(evidence: &[Evidence]) -> Hash {
    let leaves: Vec<Vec<u8>> = evidence.iter().map(Evidence::to_bytes).collect();
    merkle_hash_from_byte_slices(&leaves)
}

impl From<DuplicateVoteEvidence> for pb::DuplicateVoteEvidence {
    fn from(e: DuplicateVoteEvidence) -> Self {
        pb::DuplicateVoteEvidence {
            vote_a: Some(e.vote_a.into()),
            vote_b: Some(e.vote_b.into()),
            total_voting_power: e.total_voting_power,
            validator_power: e.validator_power,
            // Non-nullable stdtime in gogoproto: always written.
            timestamp: Some(e.timestamp.into()),
        }
    }
}

impl TryFrom<pb::DuplicateVoteEvidence> for DuplicateVoteEvidence {
    type Error = Error;

    /// CometBFT `DuplicateVoteEvidenceFromProto` + `ValidateBasic`: both
    /// votes present and valid and in key order. Whether the evidence is
    /// true (same validator, signatures, powers) is for the evidence pool.
    fn try_from(e: pb::DuplicateVoteEvidence) -> Result<Self, Error> {
        let vote_a = Vote::try_from(
            e.vote_a
                .ok_or_else(|| Error::field("duplicate_vote_evidence.vote_a", "missing"))?,
        )?;
        let vote_b = Vote::try_from(
            e.vote_b
                .ok_or_else(|| Error::field("duplicate_vote_evidence.vote_b", "missing"))?,
        )?;
        if block_id_key(vote_a.block_id.as_ref()) >= block_id_key(vote_b.block_id.as_ref()) {
            return Err(Error::field(
                "duplicate_vote_evidence",
                "duplicate votes in invalid order",
            ));
        }
        Ok(DuplicateVoteEvidence {
            vote_a,
            vote_b,
            total_voting_power: e.total_voting_power,
            validator_power: e.validator_power,
            timestamp: time_from_pb(e.timestamp)?,
        })
    }
}

impl From<Evidence> for pb::Evidence {
    fn from(e: Evidence) -> Self {
        match e {
            Evidence::DuplicateVote(d) => pb::Evidence {
                sum: Some(pb::evidence::Sum::DuplicateVoteEvidence((*d).into())),
            },
        }
    }
}

impl TryFrom<pb::Evidence> for Evidence {
    type Error = Error;

    /// Duplicate-vote evidence only; light-client-attack evidence is not
    /// supported by this engine and is rejected.
    fn try_from(e: pb::Evidence) -> Result<Self, Error> {
        match e.sum {
            Some(pb::evidence::Sum::DuplicateVoteEvidence(d)) => {
                Ok(Evidence::DuplicateVote(Box::new(d.try_into()?)))
            }
            Some(pb::evidence::Sum::LightClientAttackEvidence(_)) => Err(Error::field(
                "evidence",
                "light client attack evidence is not supported",
            )),
            None => Err(Error::field("evidence", "missing")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Address, BlockId, Hash, PartSetHeader, PrivateKey, Signature, Validator, VoteType,
    };

    fn bid(h: u8, total: u32) -> BlockId {
        BlockId {
            hash: Hash([h; 32]),
            part_set_header: PartSetHeader {
                total,
                hash: Hash([h; 32]),
            },
        }
    }

    fn vote(key: &PrivateKey, b: Option<BlockId>) -> Vote {
        let mut v = Vote {
            vote_type: VoteType::Prevote,
            height: 10,
            round: 1,
            block_id: b,
            timestamp: Time {
                secs: 100,
                nanos: 0,
            },
            validator_address: key.public_key().address(),
            validator_index: 0,
            signature: Signature::default(),
            extension: Vec::new(),
            extension_signature: Vec::new(),
        };
        v.sign("chain", key);
        v
    }

    fn setup() -> (PrivateKey, ValidatorSet) {
        let key = PrivateKey::from_seed([5; 32]);
        let other = PrivateKey::from_seed([6; 32]);
        let set = ValidatorSet::new(vec![
            Validator::new(key.public_key(), 7),
            Validator::new(other.public_key(), 3),
        ])
        .expect("valid");
        (key, set)
    }

    #[test]
    fn orders_votes_by_block_id_key() {
        let (key, set) = setup();
        let lo = vote(&key, Some(bid(1, 9)));
        let hi = vote(&key, Some(bid(2, 1)));
        let t = Time { secs: 99, nanos: 0 };
        let e1 = DuplicateVoteEvidence::new(hi.clone(), lo.clone(), t, &set).expect("valid");
        let e2 = DuplicateVoteEvidence::new(lo.clone(), hi.clone(), t, &set).expect("valid");
        assert_eq!(e1, e2);
        assert_eq!(e1.vote_a, lo);
        assert_eq!(e1.total_voting_power, 10);
        assert_eq!(e1.validator_power, 7);
        assert_eq!(e1.verify("chain", &key.public_key()), Ok(()));
        // Nil sorts first (empty key); with equal hashes the part set header
        // encoding decides.
        let nil = vote(&key, None);
        let e = DuplicateVoteEvidence::new(lo.clone(), nil.clone(), t, &set).expect("valid");
        assert_eq!(e.vote_a, nil);
        let a = vote(&key, Some(bid(1, 2)));
        let b = vote(&key, Some(bid(1, 1)));
        let e = DuplicateVoteEvidence::new(a.clone(), b.clone(), t, &set).expect("valid");
        assert_eq!(e.vote_a, b);
    }

    #[test]
    fn rejects_non_conflicting_votes() {
        let (key, set) = setup();
        let t = Time::default();
        let a = vote(&key, Some(bid(1, 1)));
        assert!(DuplicateVoteEvidence::new(a.clone(), a.clone(), t, &set).is_err());
        let mut b = vote(&key, Some(bid(2, 1)));
        b.height = 11;
        assert!(DuplicateVoteEvidence::new(a.clone(), b, t, &set).is_err());
        let mut b = vote(&key, Some(bid(2, 1)));
        b.round = 2;
        assert!(DuplicateVoteEvidence::new(a.clone(), b, t, &set).is_err());
        let mut b = vote(&key, Some(bid(2, 1)));
        b.vote_type = VoteType::Precommit;
        assert!(DuplicateVoteEvidence::new(a.clone(), b, t, &set).is_err());
        let mut b = vote(&key, Some(bid(2, 1)));
        b.validator_index = 1;
        assert!(DuplicateVoteEvidence::new(a.clone(), b, t, &set).is_err());
        let stranger = PrivateKey::from_seed([9; 32]);
        let x = vote(&stranger, Some(bid(1, 1)));
        let y = vote(&stranger, Some(bid(2, 1)));
        assert!(DuplicateVoteEvidence::new(x, y, t, &set).is_err());
        let mut forged = vote(&key, Some(bid(2, 1)));
        forged.validator_address = Address([1; 20]);
        assert!(DuplicateVoteEvidence::new(a, forged, t, &set).is_err());
    }

    #[test]
    fn hashes_and_proto() {
        let (key, set) = setup();
        let e = DuplicateVoteEvidence::new(
            vote(&key, Some(bid(1, 1))),
            vote(&key, Some(bid(2, 1))),
            Time { secs: 5, nanos: 6 },
            &set,
        )
        .expect("valid");
        let bytes = pb::DuplicateVoteEvidence::from(e.clone()).encode_to_vec();
        assert_eq!(e.hash(), sha256(&bytes));
        let ev = Evidence::DuplicateVote(Box::new(e.clone()));
        // The merkle leaf is the bare evidence, not the oneof wrapper.
        assert_eq!(
            evidence_hash(std::slice::from_ref(&ev)),
            merkle_hash_from_byte_slices(&[bytes])
        );
        assert_eq!(evidence_hash(&[]), sha256(&[]));
        assert_eq!(Evidence::try_from(pb::Evidence::from(ev.clone())), Ok(ev));
        let mut swapped = pb::DuplicateVoteEvidence::from(e);
        std::mem::swap(&mut swapped.vote_a, &mut swapped.vote_b);
        assert!(DuplicateVoteEvidence::try_from(swapped.clone()).is_err());
        swapped.vote_a = None;
        assert!(DuplicateVoteEvidence::try_from(swapped).is_err());
        assert!(Evidence::try_from(pb::Evidence { sum: None }).is_err());
    }
}
