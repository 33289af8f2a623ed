//! Domain types of the chain: blocks, headers, votes, proposals, commits,
//! validator sets and part sets, with hashing and canonical sign bytes
//! computed byte-for-byte as CometBFT v0.38 computes them.
//!
//! Values of these types are valid by construction once they have crossed the
//! wire boundary (`TryFrom<proto>`); code inside the engine never re-checks
//! field shapes. This crate performs no I/O; the engine re-exports it as
//! `engine::types` and the RPC crate renders it as CometBFT JSON.

use std::fmt;

/// A block height. CometBFT encodes heights as int64; valid heights are >= 1.
pub type Height = u64;
/// A consensus round within a height. CometBFT encodes rounds as int32 >= 0.
pub type Round = u32;

/// Errors raised when outside data does not form a valid domain value, or
/// when a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A field is missing, out of range or of the wrong length.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The offending field.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A signature failed verification.
    #[error("invalid signature")]
    InvalidSignature,
    /// Protobuf bytes could not be decoded.
    #[error("decode error: {0}")]
    Decode(String),
}

impl Error {
    /// Builds an [`Error::InvalidField`].
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// A SHA-256 digest (block hashes, merkle roots, header hash fields).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode_upper(&self.0[..4]))
    }
}

/// A validator address: the first 20 bytes of SHA-256 of the ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 20]);

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode_upper(&self.0[..3]))
    }
}

/// An ed25519 public key (32 bytes), the only key type validators use here.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PubKey({})", hex::encode_upper(&self.0[..4]))
    }
}

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Default for Signature {
    fn default() -> Self {
        Signature([0; 64])
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({})", hex::encode_upper(&self.0[..4]))
    }
}

/// A point in time as CometBFT carries it (google.protobuf.Timestamp, UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second, 0..1_000_000_000.
    pub nanos: u32,
}

/// The header of a part set: how many 64 KiB parts a block has and the merkle
/// root over them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct PartSetHeader {
    /// Number of parts.
    pub total: u32,
    /// Merkle root of the parts.
    pub hash: Hash,
}

/// Identifies a block: its header hash and its part set header.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct BlockId {
    /// The header hash.
    pub hash: Hash,
    /// The part set header of the block's protobuf encoding.
    pub part_set_header: PartSetHeader,
}

/// The two vote types (CometBFT's SignedMsgType 1 and 2).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum VoteType {
    /// First-stage vote.
    Prevote,
    /// Second-stage vote; +2/3 of these for a block commit it.
    Precommit,
}

/// A signed prevote or precommit. `block_id == None` is a vote for nil.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height voted at.
    pub height: Height,
    /// Round voted at.
    pub round: Round,
    /// The block voted for, or `None` for nil.
    pub block_id: Option<BlockId>,
    /// The voter's local time when signing.
    pub timestamp: Time,
    /// The voter's address.
    pub validator_address: Address,
    /// The voter's index in the validator set of this height.
    pub validator_index: u32,
    /// Signature over [`Vote::sign_bytes`].
    pub signature: Signature,
    /// Vote extension (precommits for a block only, when enabled).
    pub extension: Vec<u8>,
    /// Signature over the canonical vote extension (empty when none).
    pub extension_signature: Vec<u8>,
}

/// A signed block proposal for a height and round; `pol_round` is the round of
/// the proof-of-lock the proposer re-proposes from, `None` for a fresh value.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Proposal {
    /// Height proposed at.
    pub height: Height,
    /// Round proposed at.
    pub round: Round,
    /// Proof-of-lock round (CometBFT's -1 is `None`).
    pub pol_round: Option<Round>,
    /// The proposed block.
    pub block_id: BlockId,
    /// The proposer's local time.
    pub timestamp: Time,
    /// Signature over [`Proposal::sign_bytes`].
    pub signature: Signature,
}

/// A validator and its voting power and proposer priority.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Validator {
    /// Address derived from `pub_key`.
    pub address: Address,
    /// Consensus public key.
    pub pub_key: PublicKey,
    /// Voting power, > 0 in a set.
    pub voting_power: i64,
    /// Proposer priority, maintained by the proposer-selection algorithm.
    pub proposer_priority: i64,
}

/// A validator set as CometBFT keeps it: validators sorted by voting power
/// (desc) then address (asc), with proposer priorities and the current proposer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ValidatorSet {
    /// The validators, in CometBFT's order.
    pub validators: Vec<Validator>,
    /// The proposer for the current (height, round 0) position, if computed.
    pub proposer: Option<Validator>,
    /// Sum of voting powers (cached).
    pub total_voting_power: i64,
}

/// Block and app protocol versions carried in a header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Version {
    /// Block protocol (11 for CometBFT v0.38).
    pub block: u64,
    /// Application protocol version.
    pub app: u64,
}

/// A block header (CometBFT types.Header).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Header {
    /// Protocol versions.
    pub version: Version,
    /// Chain identifier.
    pub chain_id: String,
    /// Height of this block.
    pub height: Height,
    /// BFT time of this block.
    pub time: Time,
    /// The previous block (`None` at the initial height).
    pub last_block_id: Option<BlockId>,
    /// Merkle root of the previous block's commit signatures.
    pub last_commit_hash: Hash,
    /// Merkle root of the transactions.
    pub data_hash: Hash,
    /// Hash of the validator set of this height.
    pub validators_hash: Hash,
    /// Hash of the validator set of the next height.
    pub next_validators_hash: Hash,
    /// Hash of the consensus params of this height.
    pub consensus_hash: Hash,
    /// Application state hash after the previous block.
    pub app_hash: Vec<u8>,
    /// Merkle root of the previous block's tx results.
    pub last_results_hash: Hash,
    /// Merkle root of the evidence in this block.
    pub evidence_hash: Hash,
    /// Address of the proposer of this block.
    pub proposer_address: Address,
}

/// A validator's signature in a commit (CometBFT CommitSig, BlockIDFlag 1/2/3).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum CommitSig {
    /// No precommit from this validator was included.
    Absent,
    /// A precommit for the committed block.
    Commit {
        /// The signer.
        validator_address: Address,
        /// The precommit's timestamp.
        timestamp: Time,
        /// The precommit's signature.
        signature: Signature,
    },
    /// A precommit for nil.
    Nil {
        /// The signer.
        validator_address: Address,
        /// The precommit's timestamp.
        timestamp: Time,
        /// The precommit's signature.
        signature: Signature,
    },
}

/// +2/3 precommits for a block, one entry per validator in set order.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Commit {
    /// Height of the committed block.
    pub height: Height,
    /// Round in which it was committed.
    pub round: Round,
    /// The committed block.
    pub block_id: BlockId,
    /// One entry per validator of the height, in set order.
    pub signatures: Vec<CommitSig>,
}

/// A validator's entry in an [`ExtendedCommit`] (CometBFT
/// `ExtendedCommitSig`): its commit signature and, for a precommit for the
/// committed block while vote extensions are enabled, the vote extension
/// and the extension's signature (both empty otherwise).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ExtendedCommitSig {
    /// The commit signature, as it appears in the block's commit.
    pub commit_sig: CommitSig,
    /// The precommit's vote extension.
    pub extension: Vec<u8>,
    /// Signature over the canonical vote extension.
    pub extension_signature: Vec<u8>,
}

/// A commit whose precommits keep their vote extensions (CometBFT
/// `ExtendedCommit`). Stored next to the seen commit so that the next
/// proposer can hand the extensions to the application in PrepareProposal;
/// it never enters a block or a hash.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ExtendedCommit {
    /// Height of the committed block.
    pub height: Height,
    /// Round in which it was committed.
    pub round: Round,
    /// The committed block.
    pub block_id: BlockId,
    /// One entry per validator of the height, in set order.
    pub signatures: Vec<ExtendedCommitSig>,
}

/// Evidence that a validator signed two conflicting votes.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct DuplicateVoteEvidence {
    /// The vote with the smaller block id key.
    pub vote_a: Vote,
    /// The other vote.
    pub vote_b: Vote,
    /// Total voting power of the set at the evidence height.
    pub total_voting_power: i64,
    /// The offender's voting power.
    pub validator_power: i64,
    /// Block time of the evidence height.
    pub timestamp: Time,
}

/// Misbehaviour carried in a block.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Evidence {
    /// Two conflicting votes by one validator.
    DuplicateVote(Box<DuplicateVoteEvidence>),
}

/// A full block.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// Transactions.
    pub txs: Vec<Vec<u8>>,
    /// Evidence of misbehaviour.
    pub evidence: Vec<Evidence>,
    /// Commit for the previous block (`None` at the initial height).
    pub last_commit: Option<Commit>,
}

/// Block size and gas limits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockParams {
    /// Maximum block size in bytes (-1 means the hard limit of 100 MiB).
    pub max_bytes: i64,
    /// Maximum gas per block (-1 means unlimited).
    pub max_gas: i64,
}

/// Evidence age and size limits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EvidenceParams {
    /// Max age in blocks.
    pub max_age_num_blocks: i64,
    /// Max age in time, as (seconds, nanos).
    pub max_age_duration: Time,
    /// Max total evidence bytes per block.
    pub max_bytes: i64,
}

/// Consensus parameters (CometBFT types.ConsensusParams).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ConsensusParams {
    /// Block limits.
    pub block: BlockParams,
    /// Evidence limits.
    pub evidence: EvidenceParams,
    /// Allowed validator key types (e.g. "ed25519").
    pub validator_pub_key_types: Vec<String>,
    /// Application version.
    pub version_app: u64,
    /// Height from which vote extensions are enabled (0 = never).
    pub vote_extensions_enable_height: i64,
}

mod block;
mod canonical;
mod commit_verify;
mod crypto;
mod evidence;
mod extended_commit;
mod merkle;
mod params;
mod part_set;
mod proto;
mod results;
mod rfc3339;
mod time;
mod validator_set;

pub use block::{txs_hash, BLOCK_PROTOCOL, MAX_CHAIN_ID_LEN};
pub use commit_verify::CommitError;
pub use crypto::{sha256, PrivateKey};
pub use evidence::evidence_hash;
pub use merkle::{merkle_hash_from_byte_slices, merkle_proofs_from_byte_slices, Proof, MAX_AUNTS};
pub use params::{ABCI_PUB_KEY_TYPE_ED25519, MAX_BLOCK_SIZE_BYTES};
pub use part_set::{Part, PartSet, BLOCK_PART_SIZE, MAX_BLOCK_PARTS_COUNT};
pub use proto::MAX_VOTE_EXTENSION_SIZE;
pub use results::results_hash;
pub use time::bft_time;
pub use validator_set::MAX_TOTAL_VOTING_POWER;
