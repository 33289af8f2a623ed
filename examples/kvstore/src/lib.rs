//! CometBFT's kvstore example application, in Rust.
//!
//! It behaves like CometBFT v0.38's `abci/example/kvstore` so that the
//! engine can be tested against the application CometBFT users know, and
//! it can run in-process (use [`KvStore`] as an [`abci::Application`]) or
//! behind a socket (the `kvstore` binary).
//!
//! # Transactions
//!
//! * `key=value` stores `value` under `key`; `key:value` is accepted by
//!   CheckTx too and rewritten to `key=value` by PrepareProposal. CheckTx
//!   rejects (code [`CODE_TYPE_INVALID_TX_FORMAT`]) an empty tx, a tx with
//!   no separator or more than one, and a tx starting or ending with one.
//!   A tx reaching FinalizeBlock that does not split into exactly two parts
//!   on `=` stores itself under itself (`key = value = tx`).
//! * `val=[keytype!]<base64 pubkey>!<power>` updates a validator: keytype is
//!   `ed25519` (the default, used when absent as CometBFT v0.38.0 did) or
//!   `secp256k1`; power 0 removes the validator. Updates are returned in
//!   FinalizeBlock's `validator_updates` and applied to the app's own view
//!   of the validator set at Commit.
//!
//! Every transaction in FinalizeBlock gets an `ExecTxResult` with CometBFT
//! kvstore's two `app` events (attributes `creator`, `key`, `index_key`,
//! and the unindexed `noindex_key`).
//!
//! # App hash
//!
//! As CometBFT's kvstore: the number of transactions ever finalized, encoded
//! with Go's `binary.PutVarint` (zigzag varint) into 8 zero-padded bytes, so
//! that this app and the Go one agree on every app hash of the same chain.
//!
//! # Queries
//!
//! * any path but those below: `data` is a key; the value comes back with
//!   log `exists`, or no value with log `does not exist`; code 0 either
//!   way, as CometBFT's kvstore answers (clients test the log or value).
//! * `/val`: `data` is a raw public key; the value is the validator's
//!   `ValidatorUpdate`, length-delimited, as CometBFT's kvstore stores it.
//! * `/misbehavior`: with empty `data`, the number of misbehaviours reported
//!   in FinalizeBlock so far; with a validator address, that validator's
//!   count. The value is a decimal number. As CometBFT's kvstore does, a
//!   known validator reported for a duplicate vote also loses one unit of
//!   power.
//!
//! State lives in memory only: Commit makes the block's writes visible to
//! queries but persists nothing.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use abci::proto::{
    Event, EventAttribute, ExecTxResult, MisbehaviorType, RequestCheckTx, RequestCommit,
    RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, RequestQuery, ResponseCheckTx, ResponseCommit, ResponseFinalizeBlock,
    ResponseInfo, ResponseInitChain, ResponsePrepareProposal, ResponseProcessProposal,
    ResponseQuery, ValidatorUpdate,
};
use abci::Application;
use base64::Engine as _;
use prost::Message;
use sha2::{Digest, Sha256};
use tendermint_proto::v0_38::crypto::{public_key, PublicKey};

/// Success.
pub const CODE_TYPE_OK: u32 = 0;
/// CometBFT kvstore's code for a transaction it cannot parse.
pub const CODE_TYPE_INVALID_TX_FORMAT: u32 = 2;
/// The prefix of validator-update transactions.
pub const VALIDATOR_PREFIX: &str = "val=";
/// The application version reported by Info, as CometBFT's kvstore.
pub const APP_VERSION: u64 = 1;
/// The ABCI version reported by Info (CometBFT v0.38's `ABCISemVer`).
pub const ABCI_VERSION: &str = "2.0.0";

/// The kvstore application; all its state is behind one lock, so one value
/// can serve all four ABCI connections.
#[derive(Debug, Default)]
pub struct KvStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Height of the last finalized block.
    height: i64,
    /// Transactions finalized so far; the app hash is derived from it.
    size: i64,
    /// Committed key-value pairs, what queries see.
    store: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Writes of the finalized block, applied at Commit.
    staged: Vec<(Vec<u8>, Vec<u8>)>,
    /// Validator updates of the finalized block, applied at Commit.
    staged_validators: Vec<ValidatorUpdate>,
    /// The current validators by raw public key.
    validators: BTreeMap<Vec<u8>, ValidatorUpdate>,
    /// Address (SHA-256 of the key, first 20 bytes) to public key, for
    /// punishing ed25519 validators reported for misbehaviour.
    addresses: BTreeMap<Vec<u8>, PublicKey>,
    /// Misbehaviours reported, by validator address.
    misbehavior: BTreeMap<Vec<u8>, u64>,
}

impl State {
    fn app_hash(&self) -> Vec<u8> {
        app_hash(self.size)
    }

    /// Applies one validator update to the app's view of the validator set.
    fn update_validator(&mut self, update: ValidatorUpdate) {
        let Some(key) = update.pub_key.clone() else {
            tracing::warn!("ignoring a validator update without a public key");
            return;
        };
        let (raw, address) = match &key.sum {
            Some(public_key::Sum::Ed25519(raw)) => (raw.clone(), Some(address(raw))),
            Some(public_key::Sum::Secp256k1(raw)) => (raw.clone(), None),
            None => return,
        };
        if update.power == 0 {
            if self.validators.remove(&raw).is_none() {
                tracing::info!("tried to remove a validator that does not exist; skipping");
            }
            if let Some(address) = address {
                self.addresses.remove(&address);
            }
        } else {
            self.validators.insert(raw, update);
            if let Some(address) = address {
                self.addresses.insert(address, key);
            }
        }
    }
}

/// The app hash for `size` finalized transactions: Go's
/// `binary.PutVarint(buf[:8], size)`.
pub fn app_hash(size: i64) -> Vec<u8> {
    let zigzag = ((size << 1) ^ (size >> 63)) as u64;
    let mut hash = Vec::with_capacity(10);
    prost::encoding::encode_varint(zigzag, &mut hash);
    // PutVarint into an 8-byte buffer: zero-padded (and, past 2^55
    // transactions where Go would panic, cut).
    hash.resize(8, 0);
    hash
}

/// An ed25519 validator's address: the first 20 bytes of SHA-256(key).
fn address(raw: &[u8]) -> Vec<u8> {
    Sha256::digest(raw)[..20].to_vec()
}

/// Whether `tx` is `key=value` or `key:value` with one separator, not at
/// either end (CometBFT kvstore's `isValidTx`).
pub fn is_valid_tx(tx: &[u8]) -> bool {
    let count = |c: u8| tx.iter().filter(|&&b| b == c).count();
    let (equals, colons) = (count(b'='), count(b':'));
    let separator = match (equals, colons) {
        (1, 0) => b'=',
        (0, 1) => b':',
        _ => return false,
    };
    tx.first() != Some(&separator) && tx.last() != Some(&separator)
}

/// Parses a `val=[keytype!]<base64 pubkey>!<power>` transaction into the
/// update it asks for, or says what is wrong with it.
pub fn parse_validator_tx(tx: &[u8]) -> Result<ValidatorUpdate, String> {
    let body = tx
        .strip_prefix(VALIDATOR_PREFIX.as_bytes())
        .ok_or_else(|| format!("a validator tx starts with {VALIDATOR_PREFIX:?}"))?;
    let body = std::str::from_utf8(body).map_err(|_| "a validator tx is UTF-8".to_owned())?;
    let parts: Vec<&str> = body.split('!').collect();
    let (key_type, key, power) = match parts[..] {
        [key, power] => ("ed25519", key, power),
        [key_type, key, power] => (key_type, key, power),
        _ => return Err(format!("expected 'keytype!pubkey!power', got {body:?}")),
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| format!("pubkey ({key}) is invalid base64"))?;
    let power: i64 = power
        .parse()
        .map_err(|_| format!("power ({power}) is not an int"))?;
    if power < 0 {
        return Err(format!("power can not be less than 0, got {power}"));
    }
    let sum = match (key_type, raw.len()) {
        ("ed25519" | "", 32) => public_key::Sum::Ed25519(raw),
        ("secp256k1", 33) => public_key::Sum::Secp256k1(raw),
        ("ed25519" | "" | "secp256k1", len) => {
            return Err(format!("a {key_type} public key of {len} bytes"))
        }
        _ => return Err(format!("key type {key_type} not supported")),
    };
    Ok(ValidatorUpdate {
        pub_key: Some(PublicKey { sum: Some(sum) }),
        power,
    })
}

/// CheckTx's verdict on one transaction.
fn check(tx: &[u8]) -> u32 {
    let valid = if tx.starts_with(VALIDATOR_PREFIX.as_bytes()) {
        parse_validator_tx(tx).is_ok()
    } else {
        is_valid_tx(tx)
    };
    if valid {
        CODE_TYPE_OK
    } else {
        CODE_TYPE_INVALID_TX_FORMAT
    }
}

/// CometBFT kvstore's events for a transaction writing `key` = `value`.
fn tx_events(key: &str, value: &str) -> Vec<Event> {
    let attribute = |key: &str, value: &str, index: bool| EventAttribute {
        key: key.into(),
        value: value.into(),
        index,
    };
    let event = |creator: &str, key: &str| Event {
        r#type: "app".into(),
        attributes: vec![
            attribute("creator", creator, true),
            attribute("key", key, true),
            attribute("index_key", "index is working", true),
            attribute("noindex_key", "index is working", false),
        ],
    };
    vec![event("Cosmoshi Netowoko", key), event("Cosmoshi", value)]
}

impl KvStore {
    /// An empty store at height 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Height of the last finalized block.
    pub fn height(&self) -> i64 {
        self.lock().height
    }

    /// The committed value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lock().store.get(key).cloned()
    }

    /// How many misbehaviours FinalizeBlock has been told about.
    pub fn misbehavior_count(&self) -> u64 {
        self.lock().misbehavior.values().sum()
    }
}

impl Application for KvStore {
    async fn info(&self, _request: RequestInfo) -> ResponseInfo {
        let state = self.lock();
        ResponseInfo {
            data: format!("{{\"size\":{}}}", state.size),
            version: ABCI_VERSION.into(),
            app_version: APP_VERSION,
            last_block_height: state.height,
            last_block_app_hash: state.app_hash().into(),
        }
    }

    async fn init_chain(&self, request: RequestInitChain) -> ResponseInitChain {
        let mut state = self.lock();
        for validator in request.validators {
            state.update_validator(validator);
        }
        ResponseInitChain {
            app_hash: state.app_hash().into(),
            ..Default::default()
        }
    }

    async fn check_tx(&self, request: RequestCheckTx) -> ResponseCheckTx {
        match check(&request.tx) {
            CODE_TYPE_OK => ResponseCheckTx {
                code: CODE_TYPE_OK,
                gas_wanted: 1,
                ..Default::default()
            },
            code => ResponseCheckTx {
                code,
                log: "invalid tx format: expected key=value, key:value or val=...".into(),
                ..Default::default()
            },
        }
    }

    async fn prepare_proposal(&self, request: RequestPrepareProposal) -> ResponsePrepareProposal {
        let mut total: i64 = 0;
        let mut txs = Vec::with_capacity(request.txs.len());
        for tx in request.txs {
            if check(&tx) != CODE_TYPE_OK {
                continue;
            }
            total = total.saturating_add(i64::try_from(tx.len()).unwrap_or(i64::MAX));
            if total > request.max_tx_bytes {
                break;
            }
            // `key:value` becomes `key=value` (a validator tx has no ':').
            let mut tx = tx.to_vec();
            if let Some(colon) = tx.iter().position(|&b| b == b':') {
                tx[colon] = b'=';
            }
            txs.push(tx.into());
        }
        ResponsePrepareProposal { txs }
    }

    async fn process_proposal(&self, request: RequestProcessProposal) -> ResponseProcessProposal {
        use abci::proto::response_process_proposal::ProposalStatus;
        let all_valid = request.txs.iter().all(|tx| check(tx) == CODE_TYPE_OK);
        let status = if all_valid {
            ProposalStatus::Accept
        } else {
            ProposalStatus::Reject
        };
        ResponseProcessProposal {
            status: status.into(),
        }
    }

    async fn finalize_block(&self, request: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        let mut state = self.lock();
        let state = &mut *state;
        state.staged.clear();
        state.staged_validators.clear();

        for misbehavior in &request.misbehavior {
            let Some(validator) = &misbehavior.validator else {
                continue;
            };
            let address = validator.address.to_vec();
            *state.misbehavior.entry(address.clone()).or_default() += 1;
            if misbehavior.r#type != i32::from(MisbehaviorType::DuplicateVote) {
                continue;
            }
            match state.addresses.get(&address) {
                Some(key) => {
                    tracing::info!(validator = ?address, "decreasing the power of an equivocating validator by 1");
                    state.staged_validators.push(ValidatorUpdate {
                        pub_key: Some(key.clone()),
                        power: (validator.power - 1).max(0),
                    });
                }
                None => {
                    tracing::warn!(validator = ?address, "misbehaviour of an unknown validator")
                }
            }
        }

        let mut tx_results = Vec::with_capacity(request.txs.len());
        for tx in &request.txs {
            let mut code = CODE_TYPE_OK;
            let mut log = String::new();
            if tx.starts_with(VALIDATOR_PREFIX.as_bytes()) {
                match parse_validator_tx(tx) {
                    Ok(update) => state.staged_validators.push(update),
                    Err(error) => {
                        code = CODE_TYPE_INVALID_TX_FORMAT;
                        log = error;
                    }
                }
            }
            let parts: Vec<&[u8]> = tx.split(|&b| b == b'=').collect();
            let (key, value) = match parts[..] {
                [key, value] => (key, value),
                _ => (&tx[..], &tx[..]),
            };
            if !tx.starts_with(VALIDATOR_PREFIX.as_bytes()) {
                state.staged.push((key.to_vec(), value.to_vec()));
            }
            tx_results.push(ExecTxResult {
                code,
                log,
                events: tx_events(
                    &String::from_utf8_lossy(key),
                    &String::from_utf8_lossy(value),
                ),
                ..Default::default()
            });
            state.size += 1;
        }
        state.height = request.height;

        ResponseFinalizeBlock {
            tx_results,
            validator_updates: state.staged_validators.clone(),
            app_hash: state.app_hash().into(),
            ..Default::default()
        }
    }

    async fn commit(&self, _request: RequestCommit) -> ResponseCommit {
        let mut state = self.lock();
        for update in std::mem::take(&mut state.staged_validators) {
            state.update_validator(update);
        }
        for (key, value) in std::mem::take(&mut state.staged) {
            state.store.insert(key, value);
        }
        ResponseCommit::default()
    }

    async fn query(&self, request: RequestQuery) -> ResponseQuery {
        let state = self.lock();
        match request.path.as_str() {
            "/val" => ResponseQuery {
                key: request.data.clone(),
                value: state
                    .validators
                    .get(&request.data[..])
                    .map(Message::encode_length_delimited_to_vec)
                    .unwrap_or_default()
                    .into(),
                height: state.height,
                ..Default::default()
            },
            "/misbehavior" => {
                let count: u64 = if request.data.is_empty() {
                    state.misbehavior.values().sum()
                } else {
                    state
                        .misbehavior
                        .get(&request.data[..])
                        .copied()
                        .unwrap_or(0)
                };
                ResponseQuery {
                    key: request.data.clone(),
                    value: count.to_string().into_bytes().into(),
                    height: state.height,
                    ..Default::default()
                }
            }
            _ => {
                let value = state.store.get(&request.data[..]);
                let (code, log) = match value {
                    Some(_) => (CODE_TYPE_OK, "exists"),
                    None => (CODE_TYPE_OK, "does not exist"),
                };
                ResponseQuery {
                    code,
                    log: log.into(),
                    index: if request.prove { -1 } else { 0 },
                    key: request.data.clone(),
                    value: value.cloned().unwrap_or_default().into(),
                    height: state.height,
                    ..Default::default()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_hash_matches_go_put_varint() {
        // binary.PutVarint(buf, 0) = [0], (1) = [2], (-1) = [1], (64) = [0x80, 0x01].
        assert_eq!(app_hash(0), vec![0; 8]);
        assert_eq!(app_hash(1), vec![2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(app_hash(64), vec![0x80, 0x01, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn tx_validity_follows_cometbft() {
        for good in [&b"a=b"[..], b"a:b", b"key=some value"] {
            assert!(is_valid_tx(good), "{good:?}");
        }
        for bad in [
            &b""[..],
            b"abc",
            b"=b",
            b"a=",
            b":b",
            b"a:",
            b"a=b=c",
            b"a=b:c",
        ] {
            assert!(!is_valid_tx(bad), "{bad:?}");
        }
    }

    /// Go's kvstore v0.38 keeps `BaseApplication`'s vote-extension
    /// answers: no extension of its own, and every extension accepted.
    #[tokio::test]
    async fn vote_extensions_are_answered_like_go_base_application() {
        use abci::proto::response_verify_vote_extension::VerifyStatus;
        use abci::proto::{RequestExtendVote, RequestVerifyVoteExtension};
        let app = KvStore::new();
        let ext = app
            .extend_vote(RequestExtendVote {
                height: 2,
                ..Default::default()
            })
            .await;
        assert!(ext.vote_extension.is_empty());
        let verdict = app
            .verify_vote_extension(RequestVerifyVoteExtension {
                height: 2,
                vote_extension: b"anything".to_vec().into(),
                ..Default::default()
            })
            .await;
        assert_eq!(verdict.status, i32::from(VerifyStatus::Accept));
    }

    #[test]
    fn parses_both_validator_tx_forms() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        for tx in [format!("val={key}!10"), format!("val=ed25519!{key}!10")] {
            let update = parse_validator_tx(tx.as_bytes());
            assert_eq!(update.as_ref().map(|u| u.power), Ok(10), "{tx}");
        }
        for bad in [
            format!("val={key}!-1"),
            format!("val={key}!x"),
            "val=notbase64!1".to_owned(),
            format!("val=rsa!{key}!1"),
            "val=AAAA!1".to_owned(),
        ] {
            assert!(parse_validator_tx(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
