//! Helpers shared by the integration tests: domain values built from the
//! tendermint-rs v0.38 fixtures (real CometBFT v0.38 responses).
#![allow(dead_code)]

use base64::Engine as _;
use engine_types::{
    Address, Block, BlockId, Commit, CommitSig, Hash, Header, PartSetHeader, PublicKey, Signature,
    Time, Version,
};
use serde_json::Value;

/// Loads `tests/fixtures/<name>.json`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture present");
    serde_json::from_str(&text).expect("fixture is JSON")
}

pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string in {v}"))
}

pub fn hexb(text: &str) -> Vec<u8> {
    hex::decode(text).expect("hex")
}

pub fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

pub fn hash(text: &str) -> Hash {
    Hash(hexb(text).try_into().expect("32 bytes"))
}

pub fn addr(text: &str) -> Address {
    Address(hexb(text).try_into().expect("20 bytes"))
}

pub fn pubkey(v: &Value) -> PublicKey {
    assert_eq!(s(v, "type"), "tendermint/PubKeyEd25519");
    PublicKey(b64(s(v, "value")).try_into().expect("32 bytes"))
}

pub fn time(text: &str) -> Time {
    Time::parse_rfc3339(text).expect("rfc3339")
}

pub fn int(v: &Value, key: &str) -> u64 {
    s(v, key).parse().expect("int string")
}

pub fn block_id(v: &Value) -> Option<BlockId> {
    if s(v, "hash").is_empty() {
        return None;
    }
    Some(BlockId {
        hash: hash(s(v, "hash")),
        part_set_header: PartSetHeader {
            total: v["parts"]["total"].as_u64().expect("number") as u32,
            hash: hash(s(&v["parts"], "hash")),
        },
    })
}

pub fn header(v: &Value) -> Header {
    Header {
        version: Version {
            block: int(&v["version"], "block"),
            app: int(&v["version"], "app"),
        },
        chain_id: s(v, "chain_id").into(),
        height: int(v, "height"),
        time: time(s(v, "time")),
        last_block_id: block_id(&v["last_block_id"]),
        last_commit_hash: hash(s(v, "last_commit_hash")),
        data_hash: hash(s(v, "data_hash")),
        validators_hash: hash(s(v, "validators_hash")),
        next_validators_hash: hash(s(v, "next_validators_hash")),
        consensus_hash: hash(s(v, "consensus_hash")),
        app_hash: hexb(s(v, "app_hash")),
        last_results_hash: hash(s(v, "last_results_hash")),
        evidence_hash: hash(s(v, "evidence_hash")),
        proposer_address: addr(s(v, "proposer_address")),
    }
}

pub fn commit(v: &Value) -> Option<Commit> {
    if int(v, "height") == 0 {
        return None;
    }
    let signatures = v["signatures"]
        .as_array()
        .expect("array")
        .iter()
        .map(|sig| {
            let flag = sig["block_id_flag"].as_u64().expect("number");
            if flag == 1 {
                return CommitSig::Absent;
            }
            let validator_address = addr(s(sig, "validator_address"));
            let timestamp = time(s(sig, "timestamp"));
            let signature = Signature(b64(s(sig, "signature")).try_into().expect("64 bytes"));
            if flag == 2 {
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
            }
        })
        .collect();
    Some(Commit {
        height: int(v, "height"),
        round: v["round"].as_u64().expect("number") as u32,
        block_id: block_id(&v["block_id"]).expect("committed block id"),
        signatures,
    })
}

pub fn block(v: &Value) -> Block {
    Block {
        header: header(&v["header"]),
        txs: v["data"]["txs"]
            .as_array()
            .expect("array")
            .iter()
            .map(|t| b64(t.as_str().expect("string")))
            .collect(),
        evidence: Vec::new(),
        last_commit: commit(&v["last_commit"]),
    }
}

/// Asserts that the object at `v` has exactly `keys`, in that order.
pub fn assert_order(v: &Value, keys: &[&str]) {
    let got: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("object expected: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(got, keys, "field order");
}
