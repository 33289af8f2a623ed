//! `config/genesis.json` and `config/node_key.json` in CometBFT v0.38's JSON
//! formats: int64 values as strings, hashes as upper-case hex, keys as
//! `{"type": "tendermint/PubKeyEd25519", "value": <base64>}`, times in RFC 3339.
//!
//! Owns reading, validating (as CometBFT's `ValidateAndComplete` does) and
//! writing these files, and turning a genesis into the first validator set
//! and consensus parameters.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{
    Address, BlockParams, ConsensusParams, EvidenceParams, PrivateKey, PublicKey, Time, Validator,
    ValidatorSet,
};

/// CometBFT's JSON type tag of an ed25519 public key.
pub const PUB_KEY_ED25519: &str = "tendermint/PubKeyEd25519";
/// CometBFT's JSON type tag of an ed25519 private key.
pub const PRIV_KEY_ED25519: &str = "tendermint/PrivKeyEd25519";
/// Longest chain ID CometBFT accepts.
pub const MAX_CHAIN_ID_LEN: usize = 50;

/// A genesis or key file problem, naming the file and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct GenesisError {
    /// The file concerned.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

fn gerr(path: &Path, message: impl Into<String>) -> GenesisError {
    GenesisError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A typed key as CometBFT writes it in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonKey {
    /// Type tag, e.g. `tendermint/PubKeyEd25519`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Base64 of the key bytes.
    pub value: String,
}

impl JsonKey {
    /// The JSON form of an ed25519 public key.
    pub fn from_public(key: &PublicKey) -> Self {
        JsonKey {
            kind: PUB_KEY_ED25519.into(),
            value: B64.encode(key.0),
        }
    }

    /// The ed25519 public key this names.
    pub fn to_public(&self) -> Result<PublicKey, String> {
        if self.kind != PUB_KEY_ED25519 {
            return Err(format!(
                "key type `{}` is not supported; use {PUB_KEY_ED25519}",
                self.kind
            ));
        }
        let bytes = B64
            .decode(&self.value)
            .map_err(|e| format!("public key is not base64: {e}"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "an ed25519 public key has 32 bytes".to_string())?;
        Ok(PublicKey(arr))
    }
}

/// One genesis validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisValidator {
    /// Address (derived from the key when the file leaves it empty).
    pub address: Address,
    /// Consensus key.
    pub pub_key: PublicKey,
    /// Voting power.
    pub power: i64,
    /// Display name.
    pub name: String,
}

/// The genesis document.
#[derive(Clone, Debug, PartialEq)]
pub struct GenesisDoc {
    /// Genesis time; the first block's time.
    pub genesis_time: Time,
    /// Chain ID.
    pub chain_id: String,
    /// First height (1 unless the chain restarts from a later height).
    pub initial_height: u64,
    /// Consensus parameters.
    pub consensus_params: ConsensusParams,
    /// Validators (may be empty when the app sets them in InitChain).
    pub validators: Vec<GenesisValidator>,
    /// Initial app hash.
    pub app_hash: Vec<u8>,
    /// Application genesis state, passed to InitChain as bytes.
    pub app_state: Option<Value>,
}

// ----- JSON shapes -------------------------------------------------------

/// An int64 as CometBFT's JSON writes it: a string (numbers are accepted too).
fn int(v: &Value, what: &str) -> Result<i64, String> {
    match v {
        Value::String(s) => s
            .parse()
            .map_err(|_| format!("{what}: `{s}` is not an integer")),
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{what}: not an int64")),
        _ => Err(format!("{what}: expected an integer string")),
    }
}

fn field<'a>(obj: &'a Value, key: &str, what: &str) -> Result<&'a Value, String> {
    obj.get(key)
        .ok_or_else(|| format!("{what}: missing `{key}`"))
}

fn params_from_json(v: &Value) -> Result<ConsensusParams, String> {
    let d = ConsensusParams::default();
    let block = v.get("block");
    let evidence = v.get("evidence");
    let get = |sec: Option<&Value>, key: &str, default: i64| -> Result<i64, String> {
        match sec.and_then(|s| s.get(key)) {
            Some(x) => int(x, &format!("consensus_params.{key}")),
            None => Ok(default),
        }
    };
    let max_age = get(
        evidence,
        "max_age_duration",
        d.evidence.max_age_duration.go_unix_nanos(),
    )?;
    let pub_key_types = match v.get("validator").and_then(|x| x.get("pub_key_types")) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(String::from)
                    .ok_or_else(|| "consensus_params.validator.pub_key_types: strings".to_string())
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("consensus_params.validator.pub_key_types: expected a list".into()),
        None => d.validator_pub_key_types.clone(),
    };
    let version_app = get(v.get("version"), "app", d.version_app as i64)?;
    Ok(ConsensusParams {
        block: BlockParams {
            max_bytes: get(block, "max_bytes", d.block.max_bytes)?,
            max_gas: get(block, "max_gas", d.block.max_gas)?,
        },
        evidence: EvidenceParams {
            max_age_num_blocks: get(
                evidence,
                "max_age_num_blocks",
                d.evidence.max_age_num_blocks,
            )?,
            max_age_duration: Time::from_unix_nanos(max_age),
            max_bytes: get(evidence, "max_bytes", d.evidence.max_bytes)?,
        },
        validator_pub_key_types: pub_key_types,
        version_app: u64::try_from(version_app)
            .map_err(|_| "consensus_params.version.app: must not be negative".to_string())?,
        vote_extensions_enable_height: get(
            v.get("abci"),
            "vote_extensions_enable_height",
            d.vote_extensions_enable_height,
        )?,
    })
}

fn params_to_json(p: &ConsensusParams) -> Value {
    serde_json::json!({
        "block": {
            "max_bytes": p.block.max_bytes.to_string(),
            "max_gas": p.block.max_gas.to_string(),
        },
        "evidence": {
            "max_age_num_blocks": p.evidence.max_age_num_blocks.to_string(),
            "max_age_duration": p.evidence.max_age_duration.go_unix_nanos().to_string(),
            "max_bytes": p.evidence.max_bytes.to_string(),
        },
        "validator": { "pub_key_types": p.validator_pub_key_types },
        "version": { "app": p.version_app.to_string() },
        "abci": { "vote_extensions_enable_height": p.vote_extensions_enable_height.to_string() },
    })
}

impl GenesisDoc {
    /// A one-validator genesis as `engine init` writes it (power 10, as CometBFT).
    pub fn single_validator(chain_id: &str, key: PublicKey, now: Time) -> Self {
        GenesisDoc {
            genesis_time: now,
            chain_id: chain_id.into(),
            initial_height: 1,
            consensus_params: ConsensusParams::default(),
            validators: vec![GenesisValidator {
                address: key.address(),
                pub_key: key,
                power: 10,
                name: String::new(),
            }],
            app_hash: Vec::new(),
            app_state: None,
        }
    }

    /// Parses genesis JSON and completes it as CometBFT's
    /// `ValidateAndComplete` does.
    pub fn parse(text: &str, path: &Path) -> Result<Self, GenesisError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| gerr(path, format!("not valid JSON: {e}")))?;
        Self::from_json(&v).map_err(|m| gerr(path, m))
    }

    fn from_json(v: &Value) -> Result<Self, String> {
        let chain_id = field(v, "chain_id", "genesis")?
            .as_str()
            .ok_or("chain_id: expected a string")?
            .to_string();
        if chain_id.is_empty() {
            return Err("chain_id: must not be empty".into());
        }
        if chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err(format!("chain_id: longer than {MAX_CHAIN_ID_LEN} bytes"));
        }
        let genesis_time = match v.get("genesis_time").and_then(Value::as_str) {
            Some(t) => Time::parse_rfc3339(t).map_err(|e| format!("genesis_time: {e}"))?,
            None => return Err("genesis_time: missing".into()),
        };
        let initial_height = match v.get("initial_height") {
            Some(h) => int(h, "initial_height")?,
            None => 1,
        };
        if initial_height < 0 {
            return Err("initial_height: must not be negative".into());
        }
        let consensus_params = match v.get("consensus_params") {
            Some(Value::Null) | None => ConsensusParams::default(),
            Some(p) => params_from_json(p)?,
        };
        consensus_params
            .validate_basic()
            .map_err(|e| format!("consensus_params: {e}"))?;
        let mut validators = Vec::new();
        if let Some(list) = v.get("validators").filter(|x| !x.is_null()) {
            let list = list.as_array().ok_or("validators: expected a list")?;
            for (i, val) in list.iter().enumerate() {
                let what = format!("validators[{i}]");
                let key: JsonKey = serde_json::from_value(field(val, "pub_key", &what)?.clone())
                    .map_err(|e| format!("{what}.pub_key: {e}"))?;
                let pub_key = key
                    .to_public()
                    .map_err(|e| format!("{what}.pub_key: {e}"))?;
                let power = int(field(val, "power", &what)?, &format!("{what}.power"))?;
                if power <= 0 {
                    return Err(format!("{what}.power: must be positive"));
                }
                let address = match val.get("address").and_then(Value::as_str) {
                    None | Some("") => pub_key.address(),
                    Some(hexed) => {
                        let bytes =
                            hex::decode(hexed).map_err(|_| format!("{what}.address: not hex"))?;
                        if bytes != pub_key.address().0 {
                            return Err(format!(
                                "{what}.address: does not match its pub_key (should be {})",
                                hex::encode_upper(pub_key.address().0)
                            ));
                        }
                        pub_key.address()
                    }
                };
                let name = val
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                validators.push(GenesisValidator {
                    address,
                    pub_key,
                    power,
                    name,
                });
            }
        }
        let app_hash = match v.get("app_hash").and_then(Value::as_str) {
            None | Some("") => Vec::new(),
            Some(h) => hex::decode(h).map_err(|_| "app_hash: not hex".to_string())?,
        };
        Ok(GenesisDoc {
            genesis_time,
            chain_id,
            initial_height: initial_height.max(1) as u64,
            consensus_params,
            validators,
            app_hash,
            app_state: v.get("app_state").filter(|x| !x.is_null()).cloned(),
        })
    }

    /// The JSON CometBFT writes for this document.
    pub fn to_json(&self) -> Value {
        let mut doc = serde_json::json!({
            "genesis_time": self.genesis_time.to_rfc3339(),
            "chain_id": self.chain_id,
            "initial_height": self.initial_height.to_string(),
            "consensus_params": params_to_json(&self.consensus_params),
            "validators": self.validators.iter().map(|v| serde_json::json!({
                "address": hex::encode_upper(v.address.0),
                "pub_key": JsonKey::from_public(&v.pub_key),
                "power": v.power.to_string(),
                "name": v.name,
            })).collect::<Vec<_>>(),
            "app_hash": hex::encode_upper(&self.app_hash),
        });
        if let (Some(state), Some(obj)) = (&self.app_state, doc.as_object_mut()) {
            obj.insert("app_state".into(), state.clone());
        }
        doc
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            gerr(
                path,
                format!(
                    "cannot read: {e}; run `engine init` or copy the network's genesis.json here"
                ),
            )
        })?;
        Self::parse(&text, path)
    }

    /// Writes `path` (pretty-printed, as CometBFT).
    pub fn save(&self, path: &Path) -> Result<(), GenesisError> {
        let text = serde_json::to_string_pretty(&self.to_json())
            .map_err(|e| gerr(path, format!("cannot encode: {e}")))?;
        write_file(path, &text).map_err(|e| gerr(path, e))
    }

    /// The validator set of the initial height, or `None` when the genesis
    /// leaves validators to the application's InitChain response.
    pub fn validator_set(&self) -> Result<Option<ValidatorSet>, crate::types::Error> {
        if self.validators.is_empty() {
            return Ok(None);
        }
        let vals = self
            .validators
            .iter()
            .map(|v| Validator::new(v.pub_key, v.power))
            .collect();
        ValidatorSet::new(vals).map(Some)
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create directory: {e}"))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write: {e}"))
}

/// The node's p2p identity key (`config/node_key.json`).
pub struct NodeKey(pub PrivateKey);

impl NodeKey {
    /// The node ID: lower-case hex of the first 20 bytes of SHA-256 of the
    /// public key, as CometBFT derives it.
    pub fn id(&self) -> String {
        hex::encode(self.0.public_key().address().0)
    }

    /// The file's JSON: `{"priv_key": {"type": .., "value": base64(seed || pubkey)}}`.
    pub fn to_json(&self) -> Value {
        let mut bytes = self.0 .0.to_bytes().to_vec();
        bytes.extend_from_slice(&self.0.public_key().0);
        serde_json::json!({ "priv_key": { "type": PRIV_KEY_ED25519, "value": B64.encode(bytes) } })
    }

    /// Parses the file's JSON.
    pub fn parse(text: &str, path: &Path) -> Result<Self, GenesisError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| gerr(path, format!("not valid JSON: {e}")))?;
        let key: JsonKey = v
            .get("priv_key")
            .cloned()
            .ok_or_else(|| gerr(path, "missing `priv_key`"))
            .and_then(|k| {
                serde_json::from_value(k).map_err(|e| gerr(path, format!("priv_key: {e}")))
            })?;
        private_key_from_json(&key)
            .map(NodeKey)
            .map_err(|m| gerr(path, m))
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| gerr(path, format!("cannot read: {e}")))?;
        Self::parse(&text, path)
    }

    /// Writes `path`.
    pub fn save(&self, path: &Path) -> Result<(), GenesisError> {
        write_file(path, &self.to_json().to_string()).map_err(|e| gerr(path, e))
    }
}

/// An ed25519 private key from CometBFT's JSON (64 bytes: seed || public key).
pub fn private_key_from_json(key: &JsonKey) -> Result<PrivateKey, String> {
    if key.kind != PRIV_KEY_ED25519 {
        return Err(format!(
            "key type `{}` is not supported; use {PRIV_KEY_ED25519}",
            key.kind
        ));
    }
    let bytes = B64
        .decode(&key.value)
        .map_err(|e| format!("private key is not base64: {e}"))?;
    if bytes.len() != 64 {
        return Err("an ed25519 private key has 64 bytes (seed and public key)".into());
    }
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&bytes[..32]);
    let pk = PrivateKey::from_seed(seed);
    if pk.public_key().0[..] != bytes[32..] {
        return Err("the private key's public half does not match its seed".into());
    }
    Ok(pk)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A genesis.json as `cometbft init` (v0.38) writes it.
    const COMETBFT_GENESIS: &str = r#"{
  "genesis_time": "2024-05-02T09:57:28.417934Z",
  "chain_id": "test-chain-Sf3T2q",
  "initial_height": "1",
  "consensus_params": {
    "block": {
      "max_bytes": "22020096",
      "max_gas": "-1"
    },
    "evidence": {
      "max_age_num_blocks": "100000",
      "max_age_duration": "172800000000000",
      "max_bytes": "1048576"
    },
    "validator": {
      "pub_key_types": [
        "ed25519"
      ]
    },
    "version": {
      "app": "0"
    },
    "abci": {
      "vote_extensions_enable_height": "0"
    }
  },
  "validators": [
    {
      "address": "B0E3A1F1F5E0B4F7C0B0A5B7A4C7B3E4F0C9D2A1",
      "pub_key": {
        "type": "tendermint/PubKeyEd25519",
        "value": "aU5wqDF0A4v6CHfD5sJdj1kqvT8v7P8DHqJ8cJyxVuA="
      },
      "power": "10",
      "name": ""
    }
  ],
  "app_hash": ""
}"#;

    fn path() -> PathBuf {
        PathBuf::from("h/config/genesis.json")
    }

    fn cometbft_genesis_with_real_address() -> String {
        let key = JsonKey {
            kind: PUB_KEY_ED25519.into(),
            value: "aU5wqDF0A4v6CHfD5sJdj1kqvT8v7P8DHqJ8cJyxVuA=".into(),
        };
        let addr = hex::encode_upper(key.to_public().expect("key").address().0);
        COMETBFT_GENESIS.replace("B0E3A1F1F5E0B4F7C0B0A5B7A4C7B3E4F0C9D2A1", &addr)
    }

    #[test]
    fn reads_a_cometbft_genesis_and_writes_it_back_identically() {
        let text = cometbft_genesis_with_real_address();
        let g = GenesisDoc::parse(&text, &path()).expect("parses");
        assert_eq!(g.chain_id, "test-chain-Sf3T2q");
        assert_eq!(g.initial_height, 1);
        assert_eq!(g.consensus_params, ConsensusParams::default());
        assert_eq!(g.validators[0].power, 10);
        assert_eq!(g.genesis_time.to_rfc3339(), "2024-05-02T09:57:28.417934Z");
        let ours = serde_json::to_string_pretty(&g.to_json()).expect("json");
        let theirs: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(serde_json::from_str::<Value>(&ours).expect("json"), theirs);
        assert_eq!(ours, text, "byte-identical pretty printing");
        let vs = g.validator_set().expect("valid").expect("non-empty");
        assert_eq!(vs.total_voting_power(), 10);
    }

    #[test]
    fn rejects_what_cometbft_rejects() {
        let good = cometbft_genesis_with_real_address();
        for (from, to, needle) in [
            ("\"test-chain-Sf3T2q\"", "\"\"", "chain_id"),
            ("\"power\": \"10\"", "\"power\": \"0\"", "power"),
            ("\"address\": \"", "\"address\": \"00", "address"),
            (
                "\"max_bytes\": \"22020096\"",
                "\"max_bytes\": \"0\"",
                "consensus_params",
            ),
            ("2024-05-02T09:57:28.417934Z", "yesterday", "genesis_time"),
        ] {
            let bad = good.replacen(from, to, 1);
            let e = GenesisDoc::parse(&bad, &path())
                .expect_err(needle)
                .to_string();
            assert!(
                e.starts_with("h/config/genesis.json: ") && e.contains(needle),
                "{e}"
            );
        }
    }

    #[test]
    fn node_key_round_trips_and_derives_the_cometbft_id() {
        let key = NodeKey(PrivateKey::from_seed([7; 32]));
        let text = key.to_json().to_string();
        let back = NodeKey::parse(&text, Path::new("node_key.json")).expect("parses");
        assert_eq!(back.id(), key.id());
        assert_eq!(key.id().len(), 40);
        assert_eq!(key.id(), key.id().to_lowercase());
        let mut v: Value = serde_json::from_str(&text).expect("json");
        v["priv_key"]["value"] = Value::String(B64.encode([1u8; 64]));
        assert!(
            NodeKey::parse(&v.to_string(), Path::new("k")).is_err(),
            "mismatched halves"
        );
    }
}
