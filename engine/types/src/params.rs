//! Consensus parameters (CometBFT types/params.go): defaults, validation,
//! updates from the application, and the hash committed in headers.

use prost::Message;
use tendermint_proto::v0_38::types as pb;

use super::time::{duration_from_pb, duration_to_pb};
use super::{sha256, BlockParams, ConsensusParams, Error, EvidenceParams, Hash, Height, Time};

/// Largest block size any parameters may allow (`MaxBlockSizeBytes`, 100 MiB).
pub const MAX_BLOCK_SIZE_BYTES: i64 = 104_857_600;

/// ABCI name of the ed25519 key type.
pub const ABCI_PUB_KEY_TYPE_ED25519: &str = "ed25519";

/// Key types CometBFT v0.38 knows (`ABCIPubKeyTypesToNames`).
const KNOWN_PUB_KEY_TYPES: [&str; 2] = [ABCI_PUB_KEY_TYPE_ED25519, "secp256k1"];

impl Default for ConsensusParams {
    /// CometBFT `DefaultConsensusParams`.
    fn default() -> Self {
        ConsensusParams {
            block: BlockParams {
                max_bytes: 22_020_096,
                max_gas: -1,
            },
            evidence: EvidenceParams {
                max_age_num_blocks: 100_000,
                max_age_duration: Time {
                    secs: 48 * 3600,
                    nanos: 0,
                },
                max_bytes: 1_048_576,
            },
            validator_pub_key_types: vec![ABCI_PUB_KEY_TYPE_ED25519.to_owned()],
            version_app: 0,
            vote_extensions_enable_height: 0,
        }
    }
}

impl ConsensusParams {
    /// SHA-256 of `HashedParams{block_max_bytes, block_max_gas}`: only these
    /// two fields are committed in the header (CometBFT `Hash`).
    pub fn hash(&self) -> Hash {
        sha256(
            &pb::HashedParams {
                block_max_bytes: self.block.max_bytes,
                block_max_gas: self.block.max_gas,
            }
            .encode_to_vec(),
        )
    }

    /// CometBFT `ValidateBasic`.
    pub fn validate_basic(&self) -> Result<(), Error> {
        let b = &self.block;
        if b.max_bytes == 0 || b.max_bytes < -1 {
            return Err(Error::field("block.max_bytes", "must be -1 or > 0"));
        }
        if b.max_bytes > MAX_BLOCK_SIZE_BYTES {
            return Err(Error::field("block.max_bytes", "above 100 MiB"));
        }
        if b.max_gas < -1 {
            return Err(Error::field("block.max_gas", "must be >= -1"));
        }
        let e = &self.evidence;
        if e.max_age_num_blocks <= 0 {
            return Err(Error::field("evidence.max_age_num_blocks", "must be > 0"));
        }
        if e.max_age_duration.secs < 0
            || (e.max_age_duration.secs == 0 && e.max_age_duration.nanos == 0)
        {
            return Err(Error::field("evidence.max_age_duration", "must be > 0"));
        }
        let max_bytes = if b.max_bytes == -1 {
            MAX_BLOCK_SIZE_BYTES
        } else {
            b.max_bytes
        };
        if e.max_bytes > max_bytes {
            return Err(Error::field("evidence.max_bytes", "above the block size"));
        }
        if e.max_bytes < 0 {
            return Err(Error::field("evidence.max_bytes", "negative"));
        }
        if self.vote_extensions_enable_height < 0 {
            return Err(Error::field(
                "abci.vote_extensions_enable_height",
                "negative",
            ));
        }
        if self.validator_pub_key_types.is_empty() {
            return Err(Error::field("validator.pub_key_types", "empty"));
        }
        for t in &self.validator_pub_key_types {
            if !KNOWN_PUB_KEY_TYPES.contains(&t.as_str()) {
                return Err(Error::field(
                    "validator.pub_key_types",
                    format!("unknown key type {t:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Applies the present sections of an update from the application
    /// (CometBFT `Update`): each present section replaces the whole section.
    /// The result still needs [`ConsensusParams::validate_basic`].
    pub fn update(&self, changes: &pb::ConsensusParams) -> Result<ConsensusParams, Error> {
        let mut res = self.clone();
        if let Some(b) = &changes.block {
            res.block = BlockParams {
                max_bytes: b.max_bytes,
                max_gas: b.max_gas,
            };
        }
        if let Some(e) = &changes.evidence {
            res.evidence = EvidenceParams {
                max_age_num_blocks: e.max_age_num_blocks,
                max_age_duration: duration_from_pb(e.max_age_duration.unwrap_or_default())?,
                max_bytes: e.max_bytes,
            };
        }
        if let Some(v) = &changes.validator {
            res.validator_pub_key_types = v.pub_key_types.clone();
        }
        if let Some(v) = &changes.version {
            res.version_app = v.app;
        }
        if let Some(a) = &changes.abci {
            res.vote_extensions_enable_height = a.vote_extensions_enable_height;
        }
        Ok(res)
    }

    /// CometBFT `ValidateUpdate`: rules for changing the vote extension
    /// enable height at height `height`.
    pub fn validate_update(
        &self,
        changes: &pb::ConsensusParams,
        height: Height,
    ) -> Result<(), Error> {
        let Some(abci) = &changes.abci else {
            return Ok(());
        };
        let h = i64::try_from(height).unwrap_or(i64::MAX);
        let old = self.vote_extensions_enable_height;
        let new = abci.vote_extensions_enable_height;
        let err = |reason: &str| Err(Error::field("abci.vote_extensions_enable_height", reason));
        if new < 0 {
            return err("must be positive");
        }
        if old <= 0 && new == 0 {
            return Ok(());
        }
        if old == new {
            return Ok(());
        }
        if old > 0 && new == 0 {
            if old <= h {
                return err("vote extensions cannot be disabled once enabled");
            }
            return Ok(());
        }
        if new <= h {
            return err("vote extensions cannot be updated to a past or current height");
        }
        if old <= 0 {
            return Ok(());
        }
        if old <= h {
            return err("vote extensions cannot be modified once enabled");
        }
        Ok(())
    }

    /// Whether vote extensions are enabled at `height` (CometBFT
    /// `ABCIParams.VoteExtensionsEnabled`).
    pub fn vote_extensions_enabled(&self, height: Height) -> bool {
        let enable = self.vote_extensions_enable_height;
        enable > 0 && u64::try_from(enable).is_ok_and(|e| height >= e)
    }
}

impl From<ConsensusParams> for pb::ConsensusParams {
    fn from(p: ConsensusParams) -> Self {
        pb::ConsensusParams {
            block: Some(pb::BlockParams {
                max_bytes: p.block.max_bytes,
                max_gas: p.block.max_gas,
            }),
            evidence: Some(pb::EvidenceParams {
                max_age_num_blocks: p.evidence.max_age_num_blocks,
                max_age_duration: Some(duration_to_pb(p.evidence.max_age_duration)),
                max_bytes: p.evidence.max_bytes,
            }),
            validator: Some(pb::ValidatorParams {
                pub_key_types: p.validator_pub_key_types,
            }),
            version: Some(pb::VersionParams { app: p.version_app }),
            abci: Some(pb::AbciParams {
                vote_extensions_enable_height: p.vote_extensions_enable_height,
            }),
        }
    }
}

impl TryFrom<pb::ConsensusParams> for ConsensusParams {
    type Error = Error;

    /// CometBFT `ConsensusParamsFromProto` (which requires every section but
    /// `abci`), followed by [`ConsensusParams::validate_basic`].
    fn try_from(p: pb::ConsensusParams) -> Result<Self, Error> {
        let missing = |s: &'static str| Error::field(s, "missing");
        let b = p.block.ok_or_else(|| missing("consensus_params.block"))?;
        let e = p
            .evidence
            .ok_or_else(|| missing("consensus_params.evidence"))?;
        let v = p
            .validator
            .ok_or_else(|| missing("consensus_params.validator"))?;
        let ver = p
            .version
            .ok_or_else(|| missing("consensus_params.version"))?;
        let params = ConsensusParams {
            block: BlockParams {
                max_bytes: b.max_bytes,
                max_gas: b.max_gas,
            },
            evidence: EvidenceParams {
                max_age_num_blocks: e.max_age_num_blocks,
                max_age_duration: duration_from_pb(e.max_age_duration.unwrap_or_default())?,
                max_bytes: e.max_bytes,
            },
            validator_pub_key_types: v.pub_key_types,
            version_app: ver.app,
            vote_extensions_enable_height: p.abci.map_or(0, |a| a.vote_extensions_enable_height),
        };
        params.validate_basic()?;
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_block(max_bytes: i64, max_gas: i64) -> ConsensusParams {
        ConsensusParams {
            block: BlockParams { max_bytes, max_gas },
            ..ConsensusParams::default()
        }
    }

    /// CometBFT params_test.go TestConsensusParamsHash: distinct block params
    /// hash differently; the hash is SHA-256 of the HashedParams encoding.
    #[test]
    fn hash_is_sha256_of_hashed_params() {
        let p = with_block(4, 2);
        // HashedParams{4, 2}: 08 04 10 02
        assert_eq!(p.hash(), sha256(&[0x08, 0x04, 0x10, 0x02]));
        let hashes: Vec<Hash> = [
            (4, 2),
            (1, 4),
            (1, 2),
            (2, 5),
            (1, 7),
            (9, 5),
            (7, 8),
            (4, 6),
        ]
        .iter()
        .map(|(b, g)| with_block(*b, *g).hash())
        .collect();
        for i in 0..hashes.len() {
            for j in 0..i {
                assert_ne!(hashes[i], hashes[j]);
            }
        }
        // Other sections do not enter the hash.
        let mut q = with_block(4, 2);
        q.evidence.max_bytes = 7;
        q.vote_extensions_enable_height = 9;
        assert_eq!(q.hash(), p.hash());
    }

    /// The header's consensus hash for default params: max_bytes 22020096,
    /// max_gas -1 (10-byte varint).
    #[test]
    fn default_params_hash_bytes() {
        let mut bz = vec![0x08, 0x80, 0x80, 0xc0, 0x0a, 0x10];
        bz.extend([0xff; 9]);
        bz.push(0x01);
        assert_eq!(ConsensusParams::default().hash(), sha256(&bz));
    }

    /// CometBFT TestConsensusParamsValidation (representative cases).
    #[test]
    fn validation() {
        assert_eq!(ConsensusParams::default().validate_basic(), Ok(()));
        assert!(with_block(0, -1).validate_basic().is_err());
        assert!(with_block(-2, -1).validate_basic().is_err());
        assert!(with_block(MAX_BLOCK_SIZE_BYTES + 1, -1)
            .validate_basic()
            .is_err());
        assert!(with_block(-1, -1).validate_basic().is_ok());
        assert!(with_block(1_048_576, -2).validate_basic().is_err());
        let mut p = ConsensusParams::default();
        p.evidence.max_bytes = p.block.max_bytes + 1;
        assert!(p.validate_basic().is_err());
        let mut p = ConsensusParams::default();
        p.evidence.max_age_num_blocks = 0;
        assert!(p.validate_basic().is_err());
        let mut p = ConsensusParams::default();
        p.evidence.max_age_duration = Time { secs: 0, nanos: 0 };
        assert!(p.validate_basic().is_err());
        let mut p = ConsensusParams {
            validator_pub_key_types: vec![],
            ..ConsensusParams::default()
        };
        assert!(p.validate_basic().is_err());
        p.validator_pub_key_types = vec!["sr25519".into()];
        assert!(p.validate_basic().is_err());
        let p = ConsensusParams {
            vote_extensions_enable_height: -1,
            ..ConsensusParams::default()
        };
        assert!(p.validate_basic().is_err());
    }

    #[test]
    fn proto_roundtrip_and_update() {
        let p = ConsensusParams::default();
        let raw = pb::ConsensusParams::from(p.clone());
        assert_eq!(ConsensusParams::try_from(raw.clone()), Ok(p.clone()));
        let mut no_block = raw.clone();
        no_block.block = None;
        assert!(ConsensusParams::try_from(no_block).is_err());
        let mut no_abci = raw;
        no_abci.abci = None;
        assert_eq!(ConsensusParams::try_from(no_abci), Ok(p.clone()));

        let upd = pb::ConsensusParams {
            block: Some(pb::BlockParams {
                max_bytes: 100,
                max_gas: 200,
            }),
            abci: Some(pb::AbciParams {
                vote_extensions_enable_height: 5,
            }),
            ..Default::default()
        };
        let q = p.update(&upd).expect("valid update");
        assert_eq!(
            q.block,
            BlockParams {
                max_bytes: 100,
                max_gas: 200
            }
        );
        assert_eq!(q.vote_extensions_enable_height, 5);
        assert_eq!(q.evidence, p.evidence);
        assert!(q.vote_extensions_enabled(5));
        assert!(!q.vote_extensions_enabled(4));
        assert!(!p.vote_extensions_enabled(100));
    }

    /// CometBFT TestConsensusParamsUpdate_VoteExtensionsEnableHeight, the
    /// full table: (current height, enable height, updated (None = no abci
    /// section), error expected).
    #[test]
    fn golden_validate_update_vote_extensions() {
        let cases: [(u64, i64, Option<i64>, bool); 38] = [
            (3, 0, Some(0), false),
            (3, 100, Some(100), false),
            (100, 100, Some(100), false),
            (300, 100, Some(100), false),
            (3, 0, Some(5), false),
            (4, 0, Some(5), false),
            (5, 0, Some(5), true),
            (6, 0, Some(5), true),
            (50, 0, Some(5), true),
            (4, 5, Some(0), false),
            (5, 5, Some(0), true),
            (6, 5, Some(0), true),
            (10, 5, Some(0), true),
            (1, 10, Some(5), false),
            (4, 10, Some(5), false),
            (5, 10, Some(5), true),
            (6, 10, Some(5), true),
            (9, 10, Some(5), true),
            (10, 10, Some(5), true),
            (11, 10, Some(5), true),
            (100, 10, Some(5), true),
            (3, 10, Some(15), false),
            (9, 10, Some(15), false),
            (10, 10, Some(15), true),
            (11, 10, Some(15), true),
            (14, 10, Some(15), true),
            (15, 10, Some(15), true),
            (16, 10, Some(15), true),
            (100, 10, Some(15), true),
            (3, 0, Some(-5), true),
            (3, -5, Some(100), false),
            (3, -10, Some(3), true),
            (3, -3, Some(-3), true),
            (100, -8, Some(-9), true),
            (300, -10, Some(-8), true),
            (300, 400, None, false),
            (300, 200, None, false),
            (3, 0, None, false),
        ];
        for (i, (current, from, to, want_err)) in cases.into_iter().enumerate() {
            let p = ConsensusParams {
                vote_extensions_enable_height: from,
                ..ConsensusParams::default()
            };
            let upd = pb::ConsensusParams {
                abci: to.map(|h| pb::AbciParams {
                    vote_extensions_enable_height: h,
                }),
                ..Default::default()
            };
            assert_eq!(
                p.validate_update(&upd, current).is_err(),
                want_err,
                "case {i}"
            );
        }
    }
}
