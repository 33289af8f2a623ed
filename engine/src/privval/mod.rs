//! The file-based validator signer (CometBFT `privval.FilePV`): the
//! validator's ed25519 key and the double-sign guard.
//!
//! This module owns `config/priv_validator_key.json` and
//! `data/priv_validator_state.json` (formats in [`files`]). It signs votes
//! and proposals only after checking them against the last signed
//! (height, round, step), and it persists the new last-sign state durably
//! *before* a signature is returned. It must never hand out a signature
//! that is not covered by the state on disk, never sign below the last
//! signed step, and never sign two different messages at one step. It
//! knows nothing of consensus rules, the network or the WAL.
//!
//! Steps are ordered propose (1) < prevote (2) < precommit (3) within a
//! round. At the same (height, round, step) the signer answers again only
//! for the very same message (or one differing only in its timestamp, in
//! which case the stored timestamp and signature are reused), which lets a
//! node that crashed between signing and writing the WAL recover.

pub mod files;
mod fsutil;

use std::path::{Path, PathBuf};

use prost::Message;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::types as pb;

pub use files::{key_identity, FilePVPaths, LastSignState, PRIV_KEY_TYPE, PUB_KEY_TYPE};

use crate::types::{
    Address, Height, PrivateKey, Proposal, PublicKey, Round, Signature, Time, Vote, VoteType,
};

/// The step of a signed message within a round, in signing order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i8)]
pub enum SignStep {
    /// Nothing signed yet (the initial state).
    #[default]
    None = 0,
    /// A proposal.
    Propose = 1,
    /// A prevote.
    Prevote = 2,
    /// A precommit.
    Precommit = 3,
}

impl SignStep {
    /// The step of a vote type.
    pub fn of_vote(t: VoteType) -> SignStep {
        match t {
            VoteType::Prevote => SignStep::Prevote,
            VoteType::Precommit => SignStep::Precommit,
        }
    }

    /// The step with CometBFT's numeric code, if any.
    pub fn from_i8(code: i8) -> Option<SignStep> {
        match code {
            0 => Some(SignStep::None),
            1 => Some(SignStep::Propose),
            2 => Some(SignStep::Prevote),
            3 => Some(SignStep::Precommit),
            _ => None,
        }
    }
}

/// A (height, round, step) position, ordered lexicographically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hrs {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Step.
    pub step: SignStep,
}

impl std::fmt::Display for Hrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{:?}", self.height, self.round, self.step)
    }
}

/// Why the signer refused, or failed to read or write its files.
#[derive(Debug, thiserror::Error)]
pub enum PrivvalError {
    /// A privval file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A privval file is not in the expected format or contradicts itself.
    #[error("{}: invalid file: {reason}", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The message is at a position below the last signed one.
    #[error("refusing to sign at {requested}: already signed at {last}")]
    Regression {
        /// Position of the message.
        requested: Hrs,
        /// Last signed position.
        last: Hrs,
    },
    /// A different message was already signed at this position.
    #[error("refusing to sign at {0}: a conflicting message was signed there")]
    Conflict(Hrs),
    /// The state records this position but no sign bytes (a state file
    /// written by hand, or reset without sign bytes).
    #[error("refusing to sign at {0}: the state records this step but no sign bytes")]
    NoSignBytes(Hrs),
    /// The stored sign bytes do not decode as a canonical message.
    #[error("{}: stored signbytes do not decode: {reason}", path.display())]
    BadStoredSignBytes {
        /// The state file.
        path: PathBuf,
        /// Decoding error.
        reason: String,
    },
    /// A vote carries an extension that will not be signed: only non-nil
    /// precommits carry extensions, and only when extensions are enabled.
    #[error("vote extension on a vote whose extension is not signed")]
    UnexpectedExtension,
}

/// A validator signer backed by the two CometBFT privval files.
pub struct FilePV {
    key: PrivateKey,
    pub_key: PublicKey,
    paths: FilePVPaths,
    state: LastSignState,
}

impl std::fmt::Debug for FilePV {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePV")
            .field("address", &self.address())
            .field("paths", &self.paths)
            .field("state", &self.state)
            .finish()
    }
}

impl FilePV {
    /// A signer for `key` with an empty sign state; nothing is written until
    /// [`FilePV::save`] or the first signature.
    pub fn new(key: PrivateKey, paths: FilePVPaths) -> FilePV {
        let pub_key = key.public_key();
        FilePV {
            key,
            pub_key,
            paths,
            state: LastSignState::default(),
        }
    }

    /// Generates a fresh random key and saves both files (`gen-validator`,
    /// `init`). The parent directories must exist.
    pub fn generate(paths: FilePVPaths) -> Result<FilePV, PrivvalError> {
        let pv = FilePV::new(
            PrivateKey(ed25519_consensus::SigningKey::new(rand::rngs::OsRng)),
            paths,
        );
        pv.save()?;
        Ok(pv)
    }

    /// Loads the key file and the state file.
    pub fn load(paths: FilePVPaths) -> Result<FilePV, PrivvalError> {
        let key = files::load_key(&paths.key)?;
        let state = LastSignState::load(&paths.state)?;
        let mut pv = FilePV::new(key, paths);
        pv.state = state;
        Ok(pv)
    }

    /// Loads the key file and starts from an empty sign state, which is
    /// written on the next signature (CometBFT `LoadFilePVEmptyState`).
    pub fn load_empty_state(paths: FilePVPaths) -> Result<FilePV, PrivvalError> {
        let key = files::load_key(&paths.key)?;
        Ok(FilePV::new(key, paths))
    }

    /// Loads both files if the key file exists, else generates and saves a
    /// new signer. A missing state file next to an existing key is an
    /// error, never silently recreated (that would forget what was signed).
    pub fn load_or_generate(paths: FilePVPaths) -> Result<FilePV, PrivvalError> {
        if paths.key.exists() {
            FilePV::load(paths)
        } else {
            FilePV::generate(paths)
        }
    }

    /// Writes both files atomically.
    pub fn save(&self) -> Result<(), PrivvalError> {
        files::save_key(&self.paths.key, &self.key)?;
        self.state.save(&self.paths.state)
    }

    /// Forgets the sign state and saves the empty state (`unsafe-reset-all`,
    /// `reset-state`). Unsafe: the guard no longer protects earlier heights.
    pub fn reset(&mut self) -> Result<(), PrivvalError> {
        let empty = LastSignState::default();
        empty.save(&self.paths.state)?;
        self.state = empty;
        Ok(())
    }

    /// The validator address.
    pub fn address(&self) -> Address {
        self.pub_key.address()
    }

    /// The validator public key.
    pub fn public_key(&self) -> PublicKey {
        self.pub_key
    }

    /// The file paths.
    pub fn paths(&self) -> &FilePVPaths {
        &self.paths
    }

    /// The last-sign state as persisted.
    pub fn last_sign_state(&self) -> &LastSignState {
        &self.state
    }

    /// Signs `vote` for `chain_id` through the double-sign guard, setting
    /// `vote.signature` (and possibly `vote.timestamp`, see the module
    /// docs). When `sign_extension` is true and the vote is a precommit for
    /// a block, the extension is signed too (even if empty), and re-signed
    /// on a repeat at the same step since extensions need not be
    /// deterministic. A vote carrying an extension that is not signed is
    /// refused. On error the vote is left unchanged.
    pub fn sign_vote(
        &mut self,
        chain_id: &str,
        vote: &mut Vote,
        sign_extension: bool,
    ) -> Result<(), PrivvalError> {
        let hrs = Hrs {
            height: vote.height,
            round: vote.round,
            step: SignStep::of_vote(vote.vote_type),
        };
        let extends =
            sign_extension && vote.vote_type == VoteType::Precommit && vote.block_id.is_some();
        if !extends && !vote.extension.is_empty() {
            return Err(PrivvalError::UnexpectedExtension);
        }
        let same = self.check_hrs(hrs)?;
        let sign_bytes = vote.sign_bytes(chain_id);
        let ext_sig = extends.then(|| self.key.sign(&vote.extension_sign_bytes(chain_id)));
        let (timestamp, signature) = if same {
            self.reuse(hrs, &sign_bytes, decode_vote_time)?
        } else {
            (vote.timestamp, self.sign_and_persist(hrs, sign_bytes)?)
        };
        vote.timestamp = timestamp;
        vote.signature = signature;
        vote.extension_signature = ext_sig.map(|s| s.0.to_vec()).unwrap_or_default();
        Ok(())
    }

    /// Signs `proposal` for `chain_id` through the double-sign guard,
    /// setting `proposal.signature` (and possibly `proposal.timestamp`).
    /// On error the proposal is left unchanged.
    pub fn sign_proposal(
        &mut self,
        chain_id: &str,
        proposal: &mut Proposal,
    ) -> Result<(), PrivvalError> {
        let hrs = Hrs {
            height: proposal.height,
            round: proposal.round,
            step: SignStep::Propose,
        };
        let same = self.check_hrs(hrs)?;
        let sign_bytes = proposal.sign_bytes(chain_id);
        let (timestamp, signature) = if same {
            self.reuse(hrs, &sign_bytes, decode_proposal_time)?
        } else {
            (proposal.timestamp, self.sign_and_persist(hrs, sign_bytes)?)
        };
        proposal.timestamp = timestamp;
        proposal.signature = signature;
        Ok(())
    }

    /// CometBFT `CheckHRS`: an error on a regression, `true` when `hrs` is
    /// the last signed position (and sign bytes are on record), `false`
    /// when it is above it.
    fn check_hrs(&self, hrs: Hrs) -> Result<bool, PrivvalError> {
        let last = Hrs {
            height: self.state.height,
            round: self.state.round,
            step: self.state.step,
        };
        match hrs.cmp(&last) {
            std::cmp::Ordering::Less => Err(PrivvalError::Regression {
                requested: hrs,
                last,
            }),
            std::cmp::Ordering::Greater => Ok(false),
            std::cmp::Ordering::Equal => match (&self.state.sign_bytes, &self.state.signature) {
                (Some(_), Some(_)) => Ok(true),
                _ => Err(PrivvalError::NoSignBytes(hrs)),
            },
        }
    }

    /// At the last signed position: the stored signature if `sign_bytes`
    /// equal the stored ones, or differ from them only in the timestamp (then
    /// with the stored timestamp); a conflict otherwise.
    fn reuse(
        &self,
        hrs: Hrs,
        sign_bytes: &[u8],
        decode: SplitTimestamp,
    ) -> Result<(Time, Signature), PrivvalError> {
        let (Some(stored), Some(signature)) = (&self.state.sign_bytes, self.state.signature) else {
            return Err(PrivvalError::NoSignBytes(hrs));
        };
        let bad = |e: prost::DecodeError| PrivvalError::BadStoredSignBytes {
            path: self.paths.state.clone(),
            reason: e.to_string(),
        };
        let (stored_rest, stored_time) = decode(stored).map_err(bad)?;
        // Our own freshly encoded bytes always decode; treat a failure as a
        // conflict rather than panicking.
        let (new_rest, _) = decode(sign_bytes).map_err(|_| PrivvalError::Conflict(hrs))?;
        if stored_rest != new_rest {
            return Err(PrivvalError::Conflict(hrs));
        }
        let time = Time::try_from(stored_time).map_err(|e| PrivvalError::BadStoredSignBytes {
            path: self.paths.state.clone(),
            reason: e.to_string(),
        })?;
        Ok((time, signature))
    }

    /// Signs `sign_bytes`, persists the new state, and only then returns
    /// the signature. If persisting fails the in-memory state is unchanged
    /// and no signature leaves.
    fn sign_and_persist(
        &mut self,
        hrs: Hrs,
        sign_bytes: Vec<u8>,
    ) -> Result<Signature, PrivvalError> {
        let signature = self.key.sign(&sign_bytes);
        let next = LastSignState {
            height: hrs.height,
            round: hrs.round,
            step: hrs.step,
            signature: Some(signature),
            sign_bytes: Some(sign_bytes),
        };
        next.save(&self.paths.state)?;
        self.state = next;
        Ok(signature)
    }
}

/// Splits canonical sign bytes into (encoding without the timestamp,
/// timestamp).
type SplitTimestamp = fn(&[u8]) -> Result<(Vec<u8>, Timestamp), prost::DecodeError>;

/// Splits length-delimited canonical vote bytes into (encoding without the
/// timestamp, timestamp), so two votes can be compared modulo timestamp.
fn decode_vote_time(bytes: &[u8]) -> Result<(Vec<u8>, Timestamp), prost::DecodeError> {
    let mut v = pb::CanonicalVote::decode_length_delimited(bytes)?;
    let t = v.timestamp.take().unwrap_or_default();
    Ok((v.encode_to_vec(), t))
}

/// As [`decode_vote_time`] for canonical proposals.
fn decode_proposal_time(bytes: &[u8]) -> Result<(Vec<u8>, Timestamp), prost::DecodeError> {
    let mut p = pb::CanonicalProposal::decode_length_delimited(bytes)?;
    let t = p.timestamp.take().unwrap_or_default();
    Ok((p.encode_to_vec(), t))
}

/// Re-exported for callers that only need the key file (e.g. `show-validator`).
pub fn load_private_key(path: &Path) -> Result<PrivateKey, PrivvalError> {
    files::load_key(path)
}

/// Writes a key file for `key` (e.g. for `testnet` generation).
pub fn save_private_key(path: &Path, key: &PrivateKey) -> Result<(), PrivvalError> {
    files::save_key(path, key)
}
