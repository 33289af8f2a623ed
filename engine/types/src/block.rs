//! Headers, commits and blocks (CometBFT types/block.go, types/tx.go): the
//! header hash, the commit hash, the transactions hash, the block's protobuf
//! encoding and its part set.

use prost::Message;
use tendermint_proto::v0_38::{types as pb, version as pb_version};

use super::merkle::empty_hash;
use super::proto::{
    block_id_from_pb, block_id_to_pb, height_from_pb, height_to_pb, round_from_pb, round_to_pb,
    signature_from_pb,
};
use super::time::time_from_pb;
use super::{
    evidence_hash, merkle_hash_from_byte_slices, sha256, Address, Block, BlockId, Commit,
    CommitSig, Error, Evidence, Hash, Header, PartSet, Time, Version, Vote, VoteType,
    BLOCK_PART_SIZE,
};

/// The block protocol version of CometBFT v0.38 (`version.BlockProtocol`).
pub const BLOCK_PROTOCOL: u64 = 11;

/// Longest chain id CometBFT accepts, in bytes (`MaxChainIDLen`).
pub const MAX_CHAIN_ID_LEN: usize = 50;

/// CometBFT's `cdcEncode` of a string: the `StringValue{value}` encoding, or
/// nothing at all for the empty string.
fn cdc_string(s: &str) -> Vec<u8> {
    cdc_bytes(s.as_bytes())
}

/// `cdcEncode` of an int64: `Int64Value{value}`, or nothing for 0.
fn cdc_i64(v: i64) -> Vec<u8> {
    if v == 0 {
        return Vec::new();
    }
    let mut out = vec![0x08];
    // Negative int64 varints are their two's complement as u64.
    prost::encoding::encode_varint(v as u64, &mut out);
    out
}

/// `cdcEncode` of bytes: `BytesValue{value}`, or nothing when empty.
/// (`StringValue` and `BytesValue` share the wire form: field 1, length-delimited.)
fn cdc_bytes(b: &[u8]) -> Vec<u8> {
    if b.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0x0a];
    prost::encoding::encode_varint(b.len() as u64, &mut out);
    out.extend_from_slice(b);
    out
}

impl From<Version> for pb_version::Consensus {
    fn from(v: Version) -> Self {
        pb_version::Consensus {
            block: v.block,
            app: v.app,
        }
    }
}

impl Header {
    /// The header hash (the block hash): merkle root of the 14 fields in
    /// declaration order, each encoded as CometBFT `Header.Hash` does —
    /// version and time and last block id as protobuf messages, the rest
    /// through `cdcEncode` wrappers (empty values contribute empty leaves).
    pub fn hash(&self) -> Hash {
        let fields: [Vec<u8>; 14] = [
            pb_version::Consensus::from(self.version).encode_to_vec(),
            cdc_string(&self.chain_id),
            cdc_i64(height_to_pb(self.height)),
            tendermint_proto::google::protobuf::Timestamp::from(self.time).encode_to_vec(),
            block_id_to_pb(self.last_block_id).encode_to_vec(),
            cdc_bytes(&self.last_commit_hash.0),
            cdc_bytes(&self.data_hash.0),
            cdc_bytes(&self.validators_hash.0),
            cdc_bytes(&self.next_validators_hash.0),
            cdc_bytes(&self.consensus_hash.0),
            cdc_bytes(&self.app_hash),
            cdc_bytes(&self.last_results_hash.0),
            cdc_bytes(&self.evidence_hash.0),
            cdc_bytes(&self.proposer_address.0),
        ];
        merkle_hash_from_byte_slices(&fields)
    }
}

impl From<Header> for pb::Header {
    fn from(h: Header) -> Self {
        pb::Header {
            version: Some(h.version.into()),
            chain_id: h.chain_id,
            height: height_to_pb(h.height),
            time: Some(h.time.into()),
            last_block_id: Some(block_id_to_pb(h.last_block_id)),
            last_commit_hash: h.last_commit_hash.0.to_vec(),
            data_hash: h.data_hash.0.to_vec(),
            validators_hash: h.validators_hash.0.to_vec(),
            next_validators_hash: h.next_validators_hash.0.to_vec(),
            consensus_hash: h.consensus_hash.0.to_vec(),
            app_hash: h.app_hash,
            last_results_hash: h.last_results_hash.0.to_vec(),
            evidence_hash: h.evidence_hash.0.to_vec(),
            proposer_address: h.proposer_address.0.to_vec(),
        }
    }
}

impl TryFrom<pb::Header> for Header {
    type Error = Error;

    /// CometBFT `HeaderFromProto` + `Header.ValidateBasic`: block protocol
    /// [`BLOCK_PROTOCOL`], chain id of at most [`MAX_CHAIN_ID_LEN`] bytes,
    /// height >= 1, nil-or-complete last block id, 20-byte proposer. The
    /// hash fields must be 32 bytes: CometBFT's `ValidateBasic` also lets them
    /// be empty, but its block and state checks then reject every empty one
    /// (after InitChain even the first block's results hash is the empty-tree
    /// root), so nothing valid is lost.
    fn try_from(h: pb::Header) -> Result<Self, Error> {
        let version = h.version.unwrap_or_default();
        if version.block != BLOCK_PROTOCOL {
            return Err(Error::field(
                "header.version.block",
                format!("expected {BLOCK_PROTOCOL}, got {}", version.block),
            ));
        }
        if h.chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err(Error::field("header.chain_id", "too long"));
        }
        Ok(Header {
            version: Version {
                block: version.block,
                app: version.app,
            },
            chain_id: h.chain_id,
            height: height_from_pb("header.height", h.height)?,
            time: time_from_pb(h.time)?,
            last_block_id: block_id_from_pb(h.last_block_id)?,
            last_commit_hash: Hash::from_slice("header.last_commit_hash", &h.last_commit_hash)?,
            data_hash: Hash::from_slice("header.data_hash", &h.data_hash)?,
            validators_hash: Hash::from_slice("header.validators_hash", &h.validators_hash)?,
            next_validators_hash: Hash::from_slice(
                "header.next_validators_hash",
                &h.next_validators_hash,
            )?,
            consensus_hash: Hash::from_slice("header.consensus_hash", &h.consensus_hash)?,
            app_hash: h.app_hash,
            last_results_hash: Hash::from_slice("header.last_results_hash", &h.last_results_hash)?,
            evidence_hash: Hash::from_slice("header.evidence_hash", &h.evidence_hash)?,
            proposer_address: Address::from_slice("header.proposer_address", &h.proposer_address)?,
        })
    }
}

/// Wire values of CometBFT's `BlockIDFlag`.
const FLAG_ABSENT: i32 = 1;
const FLAG_COMMIT: i32 = 2;
const FLAG_NIL: i32 = 3;

impl From<CommitSig> for pb::CommitSig {
    fn from(s: CommitSig) -> Self {
        match s {
            // Go writes the zero time.Time of an absent signature explicitly.
            CommitSig::Absent => pb::CommitSig {
                block_id_flag: FLAG_ABSENT,
                validator_address: Vec::new(),
                timestamp: Some(Time::GO_ZERO.into()),
                signature: Vec::new(),
            },
            CommitSig::Commit {
                validator_address,
                timestamp,
                signature,
            } => pb::CommitSig {
                block_id_flag: FLAG_COMMIT,
                validator_address: validator_address.0.to_vec(),
                timestamp: Some(timestamp.into()),
                signature: signature.0.to_vec(),
            },
            CommitSig::Nil {
                validator_address,
                timestamp,
                signature,
            } => pb::CommitSig {
                block_id_flag: FLAG_NIL,
                validator_address: validator_address.0.to_vec(),
                timestamp: Some(timestamp.into()),
                signature: signature.0.to_vec(),
            },
        }
    }
}

impl TryFrom<pb::CommitSig> for CommitSig {
    type Error = Error;

    /// CometBFT `CommitSig.ValidateBasic`: flag 1 carries no address, no
    /// signature and the zero time; flags 2 and 3 carry a 20-byte address and
    /// a (64-byte) signature; other flags are rejected.
    fn try_from(s: pb::CommitSig) -> Result<Self, Error> {
        let timestamp = time_from_pb(s.timestamp)?;
        match s.block_id_flag {
            FLAG_ABSENT => {
                if !s.validator_address.is_empty() {
                    return Err(Error::field(
                        "commit_sig",
                        "absent signature with an address",
                    ));
                }
                if timestamp != Time::GO_ZERO {
                    return Err(Error::field("commit_sig", "absent signature with a time"));
                }
                if !s.signature.is_empty() {
                    return Err(Error::field(
                        "commit_sig",
                        "absent signature with a signature",
                    ));
                }
                Ok(CommitSig::Absent)
            }
            flag @ (FLAG_COMMIT | FLAG_NIL) => {
                let validator_address =
                    Address::from_slice("commit_sig.validator_address", &s.validator_address)?;
                let signature = signature_from_pb("commit_sig.signature", &s.signature)?;
                Ok(if flag == FLAG_COMMIT {
                    CommitSig::Commit {
                        validator_address,
                        timestamp,
                        signature,
                    }
                } else {
                    CommitSig::Nil {
                        validator_address,
                        timestamp,
                        signature,
                    }
                })
            }
            other => Err(Error::field(
                "commit_sig.block_id_flag",
                format!("unknown flag {other}"),
            )),
        }
    }
}

impl Commit {
    /// Merkle root of the signatures' protobuf encodings (CometBFT
    /// `Commit.Hash`), the next header's `last_commit_hash`.
    pub fn hash(&self) -> Hash {
        let leaves: Vec<Vec<u8>> = self
            .signatures
            .iter()
            .map(|s| pb::CommitSig::from(s.clone()).encode_to_vec())
            .collect();
        merkle_hash_from_byte_slices(&leaves)
    }

    /// The precommit the signature at `index` stands for (CometBFT
    /// `Commit.GetVote`): `None` for an absent or missing entry. Its
    /// [`Vote::sign_bytes`] are what the validator signed.
    pub fn get_vote(&self, index: u32) -> Option<Vote> {
        let (validator_address, timestamp, signature, block_id) =
            match self.signatures.get(usize::try_from(index).ok()?)? {
                CommitSig::Absent => return None,
                CommitSig::Commit {
                    validator_address,
                    timestamp,
                    signature,
                } => (validator_address, timestamp, signature, Some(self.block_id)),
                CommitSig::Nil {
                    validator_address,
                    timestamp,
                    signature,
                } => (validator_address, timestamp, signature, None),
            };
        Some(Vote {
            vote_type: VoteType::Precommit,
            height: self.height,
            round: self.round,
            block_id,
            timestamp: *timestamp,
            validator_address: *validator_address,
            validator_index: index,
            signature: *signature,
            extension: Vec::new(),
            extension_signature: Vec::new(),
        })
    }
}

/// The last-commit hash of a block: that of its commit, or of the empty
/// commit CometBFT places in the first block (`SHA256("")`).
fn last_commit_hash(c: Option<&Commit>) -> Hash {
    c.map_or_else(empty_hash, Commit::hash)
}

impl From<Commit> for pb::Commit {
    fn from(c: Commit) -> Self {
        pb::Commit {
            height: height_to_pb(c.height),
            round: round_to_pb(c.round),
            block_id: Some(c.block_id.into()),
            signatures: c.signatures.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::Commit> for Commit {
    type Error = Error;

    /// CometBFT `CommitFromProto` + `Commit.ValidateBasic` for a commit of a
    /// real block: height >= 1, round >= 0, complete block id, at least one
    /// signature, every signature valid. (The empty commit of the first block
    /// is handled by [`Block`] as `last_commit: None`.)
    fn try_from(c: pb::Commit) -> Result<Self, Error> {
        let block_id = block_id_from_pb(c.block_id)?
            .ok_or_else(|| Error::field("commit.block_id", "commit for a nil block"))?;
        if c.signatures.is_empty() {
            return Err(Error::field("commit.signatures", "no signatures"));
        }
        Ok(Commit {
            height: height_from_pb("commit.height", c.height)?,
            round: round_from_pb("commit.round", c.round)?,
            block_id,
            signatures: c
                .signatures
                .into_iter()
                .map(CommitSig::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The empty commit CometBFT puts in the block at the initial height
/// (`ExtendedCommit{}.ToCommit()`): height 0, nil block id, no signatures.
fn empty_commit_pb() -> pb::Commit {
    pb::Commit {
        height: 0,
        round: 0,
        block_id: Some(block_id_to_pb(None)),
        signatures: Vec::new(),
    }
}

/// The header's data hash: merkle root over the SHA-256 of each transaction
/// (CometBFT `Txs.Hash`, whose leaves are `Tx.Hash()`).
pub fn txs_hash(txs: &[Vec<u8>]) -> Hash {
    let leaves: Vec<Hash> = txs.iter().map(|tx| sha256(tx)).collect();
    merkle_hash_from_byte_slices(&leaves)
}

impl Block {
    /// The block hash, which is the header hash.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Sets the header fields that are functions of the block's contents:
    /// `last_commit_hash`, `data_hash` and `evidence_hash` (CometBFT
    /// `fillHeader`, which however only fills unset fields).
    pub fn fill_header(&mut self) {
        self.header.last_commit_hash = last_commit_hash(self.last_commit.as_ref());
        self.header.data_hash = txs_hash(&self.txs);
        self.header.evidence_hash = evidence_hash(&self.evidence);
    }

    /// CometBFT `Block.ValidateBasic` for what our types do not already
    /// guarantee: the header's commit, data and evidence hashes match the
    /// block's contents.
    pub fn validate_basic(&self) -> Result<(), Error> {
        if self.header.last_commit_hash != last_commit_hash(self.last_commit.as_ref()) {
            return Err(Error::field(
                "header.last_commit_hash",
                "does not match the last commit",
            ));
        }
        if self.header.data_hash != txs_hash(&self.txs) {
            return Err(Error::field(
                "header.data_hash",
                "does not match the transactions",
            ));
        }
        if self.header.evidence_hash != evidence_hash(&self.evidence) {
            return Err(Error::field(
                "header.evidence_hash",
                "does not match the evidence",
            ));
        }
        Ok(())
    }

    /// The protobuf encoding of `tendermint.types.Block`, as CometBFT
    /// marshals it (what block parts carry and the store keeps). A block
    /// without last commit carries CometBFT's empty commit.
    pub fn to_bytes(&self) -> Vec<u8> {
        pb::Block::from(self.clone()).encode_to_vec()
    }

    /// Decodes and validates a block encoded by [`Block::to_bytes`] (or by
    /// CometBFT), as `BlockFromProto` does, including
    /// [`Block::validate_basic`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let raw = pb::Block::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
        Block::try_from(raw)
    }

    /// The block's encoding split into [`BLOCK_PART_SIZE`] parts.
    pub fn part_set(&self) -> PartSet {
        PartSet::from_data(&self.to_bytes(), BLOCK_PART_SIZE)
    }

    /// The id under which the block is voted: its hash and part set header.
    pub fn block_id(&self) -> BlockId {
        BlockId {
            hash: self.hash(),
            part_set_header: self.part_set().header,
        }
    }
}

impl From<Block> for pb::Block {
    fn from(b: Block) -> Self {
        pb::Block {
            header: Some(b.header.into()),
            // Data and EvidenceList are non-nullable: always written.
            data: Some(pb::Data { txs: b.txs }),
            evidence: Some(pb::EvidenceList {
                evidence: b.evidence.into_iter().map(Into::into).collect(),
            }),
            last_commit: Some(b.last_commit.map_or_else(empty_commit_pb, Into::into)),
        }
    }
}

impl TryFrom<pb::Block> for Block {
    type Error = Error;

    /// CometBFT `BlockFromProto`: the last commit must be present; a commit
    /// at height 0 must be exactly the empty commit and becomes `None`.
    /// Ends with [`Block::validate_basic`].
    fn try_from(b: pb::Block) -> Result<Self, Error> {
        let header = Header::try_from(
            b.header
                .ok_or_else(|| Error::field("block.header", "missing"))?,
        )?;
        let last_commit = match b.last_commit {
            None => return Err(Error::field("block.last_commit", "missing")),
            Some(c) if c.height == 0 => {
                let nil_block = matches!(block_id_from_pb(c.block_id), Ok(None));
                if c.round != 0 || !c.signatures.is_empty() || !nil_block {
                    return Err(Error::field(
                        "block.last_commit",
                        "a height-0 commit must be empty",
                    ));
                }
                None
            }
            Some(c) => Some(Commit::try_from(c)?),
        };
        let evidence = b
            .evidence
            .unwrap_or_default()
            .evidence
            .into_iter()
            .map(Evidence::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let block = Block {
            header,
            txs: b.data.unwrap_or_default().txs,
            evidence,
            last_commit,
        };
        block.validate_basic()?;
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PartSetHeader, Signature};

    fn sha(s: &str) -> Hash {
        sha256(s.as_bytes())
    }

    /// CometBFT types/block_test.go TestHeaderHash ("Generates expected hash").
    #[test]
    fn golden_header_hash() {
        let mut proposer = [0u8; 20];
        proposer.copy_from_slice(&sha("proposer_address").0[..20]);
        let h = Header {
            version: Version { block: 1, app: 2 },
            chain_id: "chainId".into(),
            height: 3,
            // 2019-10-13T16:14:44Z
            time: Time {
                secs: 1_570_983_284,
                nanos: 0,
            },
            last_block_id: Some(BlockId {
                hash: Hash([0; 32]),
                part_set_header: PartSetHeader {
                    total: 6,
                    hash: Hash([0; 32]),
                },
            }),
            last_commit_hash: sha("last_commit_hash"),
            data_hash: sha("data_hash"),
            validators_hash: sha("validators_hash"),
            next_validators_hash: sha("next_validators_hash"),
            consensus_hash: sha("consensus_hash"),
            app_hash: sha("app_hash").0.to_vec(),
            last_results_hash: sha("last_results_hash"),
            evidence_hash: sha("evidence_hash"),
            proposer_address: Address(proposer),
        };
        assert_eq!(
            hex::encode_upper(h.hash().0),
            "F740121F553B5418C3EFBD343C2DBFE9E007BB67B0D020A0741374BAB65242A4"
        );
    }

    #[test]
    fn cdc_encoding_of_empty_values_is_empty() {
        assert!(cdc_string("").is_empty());
        assert!(cdc_i64(0).is_empty());
        assert!(cdc_bytes(&[]).is_empty());
        assert_eq!(cdc_string("ab"), vec![0x0a, 2, b'a', b'b']);
        assert_eq!(cdc_i64(3), vec![0x08, 3]);
        let mut neg = vec![0x08];
        neg.extend([0xff; 9]);
        neg.push(0x01);
        assert_eq!(cdc_i64(-1), neg);
    }

    fn header(height: u64) -> Header {
        Header {
            version: Version {
                block: BLOCK_PROTOCOL,
                app: 1,
            },
            chain_id: "test-chain".into(),
            height,
            time: Time {
                secs: 1_700_000_000,
                nanos: 5,
            },
            last_block_id: None,
            last_commit_hash: Hash::default(),
            data_hash: Hash::default(),
            validators_hash: Hash([1; 32]),
            next_validators_hash: Hash([2; 32]),
            consensus_hash: Hash([3; 32]),
            app_hash: vec![],
            last_results_hash: sha256(&[]),
            evidence_hash: Hash::default(),
            proposer_address: Address([4; 20]),
        }
    }

    fn commit() -> Commit {
        Commit {
            height: 1,
            round: 0,
            block_id: BlockId {
                hash: Hash([7; 32]),
                part_set_header: PartSetHeader {
                    total: 1,
                    hash: Hash([8; 32]),
                },
            },
            signatures: vec![
                CommitSig::Commit {
                    validator_address: Address([1; 20]),
                    timestamp: Time { secs: 10, nanos: 0 },
                    signature: Signature([1; 64]),
                },
                CommitSig::Absent,
                CommitSig::Nil {
                    validator_address: Address([3; 20]),
                    timestamp: Time { secs: 11, nanos: 0 },
                    signature: Signature([3; 64]),
                },
            ],
        }
    }

    /// The first block carries CometBFT's empty commit: `22 04 1a 02 12 00`
    /// (last_commit { block_id { part_set_header {} } }), and its
    /// last-commit hash is the empty-tree root.
    #[test]
    fn initial_block_encoding() {
        let mut b = Block {
            header: header(1),
            txs: vec![],
            evidence: vec![],
            last_commit: None,
        };
        b.fill_header();
        assert_eq!(b.header.last_commit_hash, sha256(&[]));
        assert_eq!(b.header.data_hash, sha256(&[]));
        assert_eq!(b.header.evidence_hash, sha256(&[]));
        let bytes = b.to_bytes();
        let header_bytes = pb::Header::from(b.header.clone()).encode_to_vec();
        let mut want = vec![0x0a];
        prost::encoding::encode_varint(header_bytes.len() as u64, &mut want);
        want.extend(header_bytes);
        want.extend([0x12, 0x00, 0x1a, 0x00, 0x22, 0x04, 0x1a, 0x02, 0x12, 0x00]);
        assert_eq!(bytes, want);
        assert_eq!(Block::from_bytes(&bytes), Ok(b.clone()));
        assert_eq!(b.block_id().hash, b.hash());
        assert_eq!(b.block_id().part_set_header.total, 1);
    }

    #[test]
    fn block_roundtrip_and_validation() {
        let mut b = Block {
            header: header(2),
            txs: vec![b"tx1".to_vec(), vec![], b"tx3".to_vec()],
            evidence: vec![],
            last_commit: Some(commit()),
        };
        b.header.last_block_id = Some(commit().block_id);
        b.fill_header();
        assert_eq!(b.validate_basic(), Ok(()));
        let bytes = b.to_bytes();
        assert_eq!(Block::from_bytes(&bytes), Ok(b.clone()));
        assert_eq!(b.part_set().data(), Some(bytes.clone()));
        assert!(Block::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(Block::from_bytes(&[0xff, 0xff]).is_err());

        let mut wrong = b.clone();
        wrong.txs.push(b"x".to_vec());
        assert!(Block::from_bytes(&wrong.to_bytes()).is_err());
        let mut wrong = b.clone();
        wrong.header.last_commit_hash = Hash([0; 32]);
        assert!(Block::from_bytes(&wrong.to_bytes()).is_err());
        let mut wrong = b.clone();
        wrong.header.evidence_hash = Hash([0; 32]);
        assert!(Block::from_bytes(&wrong.to_bytes()).is_err());

        let mut raw = pb::Block::from(b.clone());
        raw.last_commit = None;
        assert!(Block::try_from(raw).is_err());
        let mut raw = pb::Block::from(b.clone());
        if let Some(h) = raw.header.as_mut() {
            h.version = None;
        }
        assert!(Block::try_from(raw).is_err());
        let mut raw = pb::Block::from(b);
        raw.last_commit = Some(pb::Commit {
            round: 1,
            ..empty_commit_pb()
        });
        assert!(Block::try_from(raw).is_err());
    }

    #[test]
    fn header_proto_validation() {
        let h = header(5);
        let raw = pb::Header::from(h.clone());
        assert_eq!(Header::try_from(raw.clone()), Ok(h));
        type Mutation = Box<dyn Fn(&mut pb::Header)>;
        let cases: Vec<Mutation> = vec![
            Box::new(|h| h.height = 0),
            Box::new(|h| h.chain_id = "x".repeat(51)),
            Box::new(|h| h.version = Some(pb_version::Consensus { block: 10, app: 0 })),
            Box::new(|h| h.data_hash.clear()),
            Box::new(|h| h.validators_hash.push(0)),
            Box::new(|h| h.proposer_address.pop().map(drop).unwrap_or(())),
            Box::new(|h| {
                h.last_block_id = Some(pb::BlockId {
                    hash: vec![1; 32],
                    part_set_header: None,
                })
            }),
        ];
        for (i, f) in cases.iter().enumerate() {
            let mut r = raw.clone();
            f(&mut r);
            assert!(Header::try_from(r).is_err(), "case {i}");
        }
    }

    #[test]
    fn commit_sig_encoding_and_validation() {
        // Absent: flag 1 and Go's zero time written explicitly.
        let absent = pb::CommitSig::from(CommitSig::Absent).encode_to_vec();
        assert_eq!(
            absent,
            vec![
                0x08, 0x01, 0x1a, 0x0b, 0x08, 0x80, 0x92, 0xb8, 0xc3, 0x98, 0xfe, 0xff, 0xff, 0xff,
                0x01
            ]
        );
        for s in commit().signatures {
            assert_eq!(CommitSig::try_from(pb::CommitSig::from(s.clone())), Ok(s));
        }
        // An absent signature whose time field is omitted is accepted (Go reads
        // it as the zero time); one at the Unix epoch is not.
        let mut raw = pb::CommitSig::from(CommitSig::Absent);
        raw.timestamp = None;
        assert_eq!(CommitSig::try_from(raw.clone()), Ok(CommitSig::Absent));
        raw.timestamp = Some(Time::default().into());
        assert!(CommitSig::try_from(raw).is_err());
        let good = pb::CommitSig::from(commit().signatures[0].clone());
        for flag in [0, 4, -1] {
            let mut r = good.clone();
            r.block_id_flag = flag;
            assert!(CommitSig::try_from(r).is_err());
        }
        let mut r = good.clone();
        r.signature.clear();
        assert!(CommitSig::try_from(r).is_err());
        let mut r = good.clone();
        r.validator_address.clear();
        assert!(CommitSig::try_from(r).is_err());
        let mut r = pb::CommitSig::from(CommitSig::Absent);
        r.signature = vec![1; 64];
        assert!(CommitSig::try_from(r).is_err());
    }

    #[test]
    fn commit_hash_and_proto() {
        let c = commit();
        let leaves: Vec<Vec<u8>> = c
            .signatures
            .iter()
            .map(|s| pb::CommitSig::from(s.clone()).encode_to_vec())
            .collect();
        assert_eq!(c.hash(), merkle_hash_from_byte_slices(&leaves));
        assert_eq!(Commit::try_from(pb::Commit::from(c.clone())), Ok(c.clone()));
        let mut r = pb::Commit::from(c.clone());
        r.signatures.clear();
        assert!(Commit::try_from(r).is_err());
        let mut r = pb::Commit::from(c.clone());
        r.block_id = Some(block_id_to_pb(None));
        assert!(Commit::try_from(r).is_err());
        let mut r = pb::Commit::from(c.clone());
        r.height = 0;
        assert!(Commit::try_from(r).is_err());
        let mut r = pb::Commit::from(c.clone());
        r.round = -1;
        assert!(Commit::try_from(r).is_err());

        let v = c.get_vote(0).expect("commit sig");
        assert_eq!(v.block_id, Some(c.block_id));
        assert_eq!(v.vote_type, VoteType::Precommit);
        assert_eq!(c.get_vote(1), None);
        assert_eq!(c.get_vote(2).expect("nil sig").block_id, None);
        assert_eq!(c.get_vote(3), None);
    }

    /// Data hash leaves are the transactions' SHA-256, not the raw bytes.
    #[test]
    fn txs_hash_hashes_tx_hashes() {
        let txs = vec![b"a".to_vec(), b"bc".to_vec()];
        assert_eq!(
            txs_hash(&txs),
            merkle_hash_from_byte_slices(&[sha256(b"a").0, sha256(b"bc").0])
        );
        assert_ne!(txs_hash(&txs), merkle_hash_from_byte_slices(&txs));
        assert_eq!(txs_hash(&[]), sha256(&[]));
    }
}
