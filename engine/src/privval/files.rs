//! The two privval files in CometBFT v0.38's exact JSON formats
//! (`privval/file.go`, encoded by `libs/json`):
//!
//! `config/priv_validator_key.json`
//! ```json
//! {
//!   "address": "<20 bytes, upper-case hex>",
//!   "pub_key": {
//!     "type": "tendermint/PubKeyEd25519",
//!     "value": "<32 bytes, base64>"
//!   },
//!   "priv_key": {
//!     "type": "tendermint/PrivKeyEd25519",
//!     "value": "<64 bytes: seed || public key, base64>"
//!   }
//! }
//! ```
//!
//! `data/priv_validator_state.json`
//! ```json
//! {
//!   "height": "<int64 as a string>",
//!   "round": <int32>,
//!   "step": <int8: 0 none, 1 propose, 2 prevote, 3 precommit>,
//!   "signature": "<base64, omitted when empty>",
//!   "signbytes": "<upper-case hex, omitted when empty>"
//! }
//! ```
//! Both are written indented by two spaces without a trailing newline, as
//! Go's `MarshalIndent` does.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::fsutil::write_atomic;
use super::{PrivvalError, SignStep};
use crate::types::{Address, Height, PrivateKey, PublicKey, Round, Signature};

/// Amino name of ed25519 public keys in CometBFT JSON.
pub const PUB_KEY_TYPE: &str = "tendermint/PubKeyEd25519";
/// Amino name of ed25519 private keys in CometBFT JSON.
pub const PRIV_KEY_TYPE: &str = "tendermint/PrivKeyEd25519";

#[derive(Serialize, Deserialize)]
struct TypedValue {
    #[serde(rename = "type")]
    type_: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct KeyJson {
    address: String,
    pub_key: TypedValue,
    priv_key: TypedValue,
}

#[derive(Serialize, Deserialize)]
struct StateJson {
    height: String,
    round: i32,
    step: i8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signbytes: Option<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, PrivvalError> {
    std::fs::read(path).map_err(|source| PrivvalError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, data: &[u8]) -> Result<(), PrivvalError> {
    write_atomic(path, data).map_err(|source| PrivvalError::Io {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, reason: impl Into<String>) -> PrivvalError {
    PrivvalError::InvalidFile {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Renders `value` as Go's `json.MarshalIndent(v, "", "  ")` does.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain string/number structs cannot fail.
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

/// Reads and checks `config/priv_validator_key.json`. The private key must
/// be 64 bytes whose second half is the public key of the first (the seed),
/// and the stored address and public key must match it: a file that
/// disagrees with itself is refused rather than silently repaired.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKey, PrivvalError> {
    let raw: KeyJson =
        serde_json::from_slice(&read(path)?).map_err(|e| invalid(path, e.to_string()))?;
    if raw.priv_key.type_ != PRIV_KEY_TYPE {
        return Err(invalid(
            path,
            format!("unsupported private key type {:?}", raw.priv_key.type_),
        ));
    }
    if raw.pub_key.type_ != PUB_KEY_TYPE {
        return Err(invalid(
            path,
            format!("unsupported public key type {:?}", raw.pub_key.type_),
        ));
    }
    let priv_bytes = B64
        .decode(raw.priv_key.value.as_bytes())
        .map_err(|e| invalid(path, format!("priv_key.value: {e}")))?;
    let Ok(priv_bytes) = <[u8; 64]>::try_from(priv_bytes.as_slice()) else {
        return Err(invalid(
            path,
            format!(
                "priv_key.value: expected 64 bytes, got {}",
                priv_bytes.len()
            ),
        ));
    };
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&priv_bytes[..32]);
    let key = PrivateKey::from_seed(seed);
    let pub_key = key.public_key();
    if priv_bytes[32..] != pub_key.0 {
        return Err(invalid(
            path,
            "priv_key.value: the public half does not match the seed",
        ));
    }
    let stored_pub = B64
        .decode(raw.pub_key.value.as_bytes())
        .map_err(|e| invalid(path, format!("pub_key.value: {e}")))?;
    if stored_pub != pub_key.0 {
        return Err(invalid(path, "pub_key does not match priv_key"));
    }
    let stored_addr =
        hex::decode(&raw.address).map_err(|e| invalid(path, format!("address: {e}")))?;
    if stored_addr != pub_key.address().0 {
        return Err(invalid(path, "address does not match priv_key"));
    }
    Ok(key)
}

/// The JSON of a key file for `key`.
pub(crate) fn key_json(key: &PrivateKey) -> Vec<u8> {
    let pub_key = key.public_key();
    let mut priv_bytes = key.0.to_bytes().to_vec();
    priv_bytes.extend_from_slice(&pub_key.0);
    to_json(&KeyJson {
        address: hex::encode_upper(pub_key.address().0),
        pub_key: TypedValue {
            type_: PUB_KEY_TYPE.to_owned(),
            value: B64.encode(pub_key.0),
        },
        priv_key: TypedValue {
            type_: PRIV_KEY_TYPE.to_owned(),
            value: B64.encode(priv_bytes),
        },
    })
}

/// Writes the key file atomically (mode 0600).
pub(crate) fn save_key(path: &Path, key: &PrivateKey) -> Result<(), PrivvalError> {
    write(path, &key_json(key))
}

/// The mutable half of a file signer: the last height, round and step it
/// signed, with the bytes and signature, so that a restart after signing but
/// before the message reached the WAL can hand out the same signature again.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LastSignState {
    /// Last signed height (0: never signed).
    pub height: Height,
    /// Last signed round.
    pub round: Round,
    /// Last signed step.
    pub step: SignStep,
    /// The signature given out at (height, round, step).
    pub signature: Option<Signature>,
    /// The sign bytes of that signature (a length-delimited canonical vote
    /// or proposal).
    pub sign_bytes: Option<Vec<u8>>,
}

impl LastSignState {
    /// Reads `data/priv_validator_state.json`; every field is checked, and
    /// a file with sign bytes but no signature (which CometBFT would panic
    /// on when signing) is refused here.
    pub fn load(path: &Path) -> Result<LastSignState, PrivvalError> {
        Self::from_json(path, &read(path)?)
    }

    /// Parses the state file's JSON; `path` only names the file in errors.
    pub fn from_json(path: &Path, json: &[u8]) -> Result<LastSignState, PrivvalError> {
        let raw: StateJson =
            serde_json::from_slice(json).map_err(|e| invalid(path, e.to_string()))?;
        let height: i64 = raw
            .height
            .parse()
            .map_err(|e| invalid(path, format!("height {:?}: {e}", raw.height)))?;
        let height = Height::try_from(height)
            .map_err(|_| invalid(path, format!("negative height {height}")))?;
        let round = Round::try_from(raw.round)
            .map_err(|_| invalid(path, format!("negative round {}", raw.round)))?;
        let step = SignStep::from_i8(raw.step)
            .ok_or_else(|| invalid(path, format!("unknown step {}", raw.step)))?;
        let signature = match raw.signature.filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let bytes = B64
                    .decode(s.as_bytes())
                    .map_err(|e| invalid(path, format!("signature: {e}")))?;
                Some(
                    Signature::from_slice("signature", &bytes)
                        .map_err(|e| invalid(path, e.to_string()))?,
                )
            }
        };
        let sign_bytes = match raw.signbytes.filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(hex::decode(&s).map_err(|e| invalid(path, format!("signbytes: {e}")))?),
        };
        if sign_bytes.is_some() && signature.is_none() {
            return Err(invalid(path, "signbytes present without a signature"));
        }
        Ok(LastSignState {
            height,
            round,
            step,
            signature,
            sign_bytes,
        })
    }

    /// The JSON CometBFT writes for this state.
    pub fn to_json(&self) -> Vec<u8> {
        to_json(&StateJson {
            height: self.height.to_string(),
            round: i32::try_from(self.round).unwrap_or(i32::MAX),
            step: self.step as i8,
            signature: self.signature.map(|s| B64.encode(s.0)),
            signbytes: self.sign_bytes.as_ref().map(hex::encode_upper),
        })
    }

    /// Writes the state atomically: temporary file, fsync, rename, fsync of
    /// the directory. When this returns `Ok` the state survives a crash.
    pub fn save(&self, path: &Path) -> Result<(), PrivvalError> {
        write(path, &self.to_json())
    }
}

/// The two paths of a file signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePVPaths {
    /// `config/priv_validator_key.json`.
    pub key: PathBuf,
    /// `data/priv_validator_state.json`.
    pub state: PathBuf,
}

impl FilePVPaths {
    /// The default paths under a CometBFT home directory.
    pub fn in_home(home: &Path) -> FilePVPaths {
        FilePVPaths {
            key: home.join("config").join("priv_validator_key.json"),
            state: home.join("data").join("priv_validator_state.json"),
        }
    }
}

/// The address and public key a key file declares, for `show-validator`.
pub fn key_identity(path: &Path) -> Result<(Address, PublicKey), PrivvalError> {
    let key = load_key(path)?;
    let pk = key.public_key();
    Ok((pk.address(), pk))
}
