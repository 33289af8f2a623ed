//! Extended commits (CometBFT `types.ExtendedCommit`): a decided height's
//! precommits with their vote extensions, the rules on when extension data
//! must and must not be present, and the protobuf encoding CometBFT keeps
//! in its block store.

use tendermint_proto::v0_38::types as pb;

use super::proto::{
    block_id_from_pb, height_from_pb, height_to_pb, round_from_pb, round_to_pb, MAX_SIGNATURE_SIZE,
    MAX_VOTE_EXTENSION_SIZE,
};
use super::{Commit, CommitSig, Error, ExtendedCommit, ExtendedCommitSig};

impl ExtendedCommitSig {
    /// An entry without extension data (CometBFT wraps a plain commit this
    /// way when extensions are disabled).
    pub fn without_extension(commit_sig: CommitSig) -> Self {
        ExtendedCommitSig {
            commit_sig,
            extension: Vec::new(),
            extension_signature: Vec::new(),
        }
    }

    /// CometBFT `ExtendedCommitSig.EnsureExtension`: with extensions
    /// enabled, a precommit for the block must carry an extension signature
    /// (the extension itself may be empty) and other entries carry nothing;
    /// with extensions disabled no entry carries extension data.
    pub fn ensure_extension(&self, enabled: bool) -> Result<(), Error> {
        let is_commit = matches!(self.commit_sig, CommitSig::Commit { .. });
        let reason = if enabled {
            if is_commit && self.extension_signature.is_empty() {
                Some("vote extension signature is missing")
            } else if !is_commit && !self.extension.is_empty() {
                Some("non-commit vote extension present")
            } else if !is_commit && !self.extension_signature.is_empty() {
                Some("non-commit vote extension signature present")
            } else {
                None
            }
        } else if !self.extension.is_empty() {
            Some("vote extension present but extensions disabled")
        } else if !self.extension_signature.is_empty() {
            Some("vote extension signature present but extensions disabled")
        } else {
            None
        };
        match reason {
            Some(r) => Err(Error::field("extended_commit_sig", r)),
            None => Ok(()),
        }
    }

    /// CometBFT `ExtendedCommitSig.ValidateBasic` beyond the commit
    /// signature itself: size limits on a precommit for the block, and no
    /// extension without a signature elsewhere.
    fn validate_extension(&self) -> Result<(), Error> {
        if matches!(self.commit_sig, CommitSig::Commit { .. }) {
            if self.extension.len() > MAX_VOTE_EXTENSION_SIZE {
                return Err(Error::field("extended_commit_sig.extension", "too big"));
            }
            if self.extension_signature.len() > MAX_SIGNATURE_SIZE {
                return Err(Error::field(
                    "extended_commit_sig.extension_signature",
                    "too big",
                ));
            }
        } else if self.extension_signature.is_empty() && !self.extension.is_empty() {
            return Err(Error::field(
                "extended_commit_sig.extension_signature",
                "absent on an entry with an extension",
            ));
        }
        Ok(())
    }
}

impl ExtendedCommit {
    /// The plain commit: the same signatures without extension data
    /// (CometBFT `ToCommit`). This is what the block store keeps as the
    /// seen commit and what the next block carries.
    pub fn to_commit(&self) -> Commit {
        Commit {
            height: self.height,
            round: self.round,
            block_id: self.block_id,
            signatures: self
                .signatures
                .iter()
                .map(|s| s.commit_sig.clone())
                .collect(),
        }
    }

    /// `commit` with no extension data (CometBFT `WrappedExtendedCommit`),
    /// for heights where extensions were disabled.
    pub fn from_commit(commit: Commit) -> Self {
        ExtendedCommit {
            height: commit.height,
            round: commit.round,
            block_id: commit.block_id,
            signatures: commit
                .signatures
                .into_iter()
                .map(ExtendedCommitSig::without_extension)
                .collect(),
        }
    }

    /// [`ExtendedCommitSig::ensure_extension`] for every entry (CometBFT
    /// `EnsureExtensions`); `enabled` is whether extensions were enabled at
    /// this commit's height.
    pub fn ensure_extensions(&self, enabled: bool) -> Result<(), Error> {
        self.signatures
            .iter()
            .try_for_each(|s| s.ensure_extension(enabled))
    }
}

impl From<ExtendedCommitSig> for pb::ExtendedCommitSig {
    fn from(s: ExtendedCommitSig) -> Self {
        let c = pb::CommitSig::from(s.commit_sig);
        pb::ExtendedCommitSig {
            block_id_flag: c.block_id_flag,
            validator_address: c.validator_address,
            timestamp: c.timestamp,
            signature: c.signature,
            extension: s.extension,
            extension_signature: s.extension_signature,
        }
    }
}

impl TryFrom<pb::ExtendedCommitSig> for ExtendedCommitSig {
    type Error = Error;

    /// CometBFT `ExtendedCommitSig.ValidateBasic`.
    fn try_from(s: pb::ExtendedCommitSig) -> Result<Self, Error> {
        let commit_sig = CommitSig::try_from(pb::CommitSig {
            block_id_flag: s.block_id_flag,
            validator_address: s.validator_address,
            timestamp: s.timestamp,
            signature: s.signature,
        })?;
        let sig = ExtendedCommitSig {
            commit_sig,
            extension: s.extension,
            extension_signature: s.extension_signature,
        };
        sig.validate_extension()?;
        Ok(sig)
    }
}

impl From<ExtendedCommit> for pb::ExtendedCommit {
    fn from(c: ExtendedCommit) -> Self {
        pb::ExtendedCommit {
            height: height_to_pb(c.height),
            round: round_to_pb(c.round),
            block_id: Some(c.block_id.into()),
            extended_signatures: c.signatures.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::ExtendedCommit> for ExtendedCommit {
    type Error = Error;

    /// CometBFT `ExtendedCommitFromProto` + `ValidateBasic`: height >= 1,
    /// round >= 0, a complete block id, at least one signature, every
    /// entry valid.
    fn try_from(c: pb::ExtendedCommit) -> Result<Self, Error> {
        let block_id = block_id_from_pb(c.block_id)?
            .ok_or_else(|| Error::field("extended_commit.block_id", "commit for a nil block"))?;
        if c.extended_signatures.is_empty() {
            return Err(Error::field(
                "extended_commit.extended_signatures",
                "no signatures",
            ));
        }
        Ok(ExtendedCommit {
            height: height_from_pb("extended_commit.height", c.height)?,
            round: round_from_pb("extended_commit.round", c.round)?,
            block_id,
            signatures: c
                .extended_signatures
                .into_iter()
                .map(ExtendedCommitSig::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::{Address, BlockId, Hash, PartSetHeader, Signature, Time};

    fn commit_sig(b: u8) -> CommitSig {
        CommitSig::Commit {
            validator_address: Address([b; 20]),
            timestamp: Time {
                secs: 1_700_000_000,
                nanos: 5,
            },
            signature: Signature([b; 64]),
        }
    }

    fn extended() -> ExtendedCommit {
        ExtendedCommit {
            height: 7,
            round: 1,
            block_id: BlockId {
                hash: Hash([3; 32]),
                part_set_header: PartSetHeader {
                    total: 1,
                    hash: Hash([4; 32]),
                },
            },
            signatures: vec![
                ExtendedCommitSig {
                    commit_sig: commit_sig(1),
                    extension: b"ext".to_vec(),
                    extension_signature: vec![9; 64],
                },
                ExtendedCommitSig::without_extension(CommitSig::Absent),
                ExtendedCommitSig::without_extension(CommitSig::Nil {
                    validator_address: Address([2; 20]),
                    timestamp: Time::default(),
                    signature: Signature([2; 64]),
                }),
            ],
        }
    }

    #[test]
    fn round_trips_through_protobuf_and_drops_extensions_in_the_commit() {
        let ec = extended();
        let bytes = pb::ExtendedCommit::from(ec.clone()).encode_to_vec();
        let back = ExtendedCommit::try_from(
            pb::ExtendedCommit::decode(bytes.as_slice()).expect("decodes"),
        )
        .expect("valid");
        assert_eq!(back, ec);
        let commit = ec.to_commit();
        assert_eq!(commit.signatures[0], commit_sig(1));
        assert_eq!(
            ExtendedCommit::from_commit(commit.clone()).to_commit(),
            commit
        );
        assert!(ExtendedCommit::from_commit(commit)
            .signatures
            .iter()
            .all(|s| s.extension.is_empty() && s.extension_signature.is_empty()));
    }

    #[test]
    fn ensure_extensions_follows_cometbft() {
        let ec = extended();
        assert_eq!(ec.ensure_extensions(true), Ok(()));
        assert!(ec.ensure_extensions(false).is_err(), "data while disabled");
        let plain = ExtendedCommit::from_commit(ec.to_commit());
        assert_eq!(plain.ensure_extensions(false), Ok(()));
        assert!(
            plain.ensure_extensions(true).is_err(),
            "a commit vote without an extension signature while enabled"
        );
        // An empty extension with its signature is a valid extended vote.
        let mut empty = ec.clone();
        empty.signatures[0].extension.clear();
        assert_eq!(empty.ensure_extensions(true), Ok(()));
        // A nil vote never carries extension data.
        let mut nil_ext = ec;
        nil_ext.signatures[2].extension_signature = vec![1; 64];
        assert!(nil_ext.ensure_extensions(true).is_err());
    }

    #[test]
    fn decoding_enforces_the_size_limits() {
        let mut big = extended();
        big.signatures[0].extension = vec![0; MAX_VOTE_EXTENSION_SIZE + 1];
        assert!(ExtendedCommit::try_from(pb::ExtendedCommit::from(big)).is_err());
        let mut long_sig = extended();
        long_sig.signatures[0].extension_signature = vec![0; 65];
        assert!(ExtendedCommit::try_from(pb::ExtendedCommit::from(long_sig)).is_err());
        let mut unsigned = extended();
        unsigned.signatures[2].extension = b"x".to_vec();
        assert!(ExtendedCommit::try_from(pb::ExtendedCommit::from(unsigned)).is_err());
    }
}
