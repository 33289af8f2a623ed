//! Vote extensions end to end: the real `engine` binary against an ABCI
//! application served from this test over TCP, with
//! `vote_extensions_enable_height = 2` in the genesis. The application
//! extends each precommit with `ext-<height>` and records what
//! PrepareProposal and ExtendVote receive; the node is killed with -9 and
//! restarted to show the extensions come back from the store.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use abci::proto::{
    ExtendedCommitInfo, RequestCommit, RequestExtendVote, RequestFinalizeBlock, RequestInfo,
    RequestPrepareProposal, RequestVerifyVoteExtension, ResponseCommit, ResponseExtendVote,
    ResponseFinalizeBlock, ResponseInfo, ResponsePrepareProposal, ResponseVerifyVoteExtension,
};
use abci::{Addr, Application, Server, ServerConfig};
use base64::Engine as _;
use common::Process;
use engine::types::{PublicKey, Signature, Time, Vote, VoteType};

/// How long any one awaited event may take: generous, the test is
/// normally done in a few seconds.
const PATIENCE: Duration = Duration::from_secs(25);

/// What the application saw, and its (trivial) committed height.
#[derive(Default)]
struct Recorder {
    committed: AtomicI64,
    finalized: AtomicI64,
    prepared: Mutex<Vec<(i64, ExtendedCommitInfo)>>,
    extended: Mutex<Vec<RequestExtendVote>>,
    verified: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An application with no state of its own besides its height (empty app
/// hash), whose ExtendVote answers `ext-<height>`.
#[derive(Clone, Default)]
struct ExtApp(Arc<Recorder>);

impl Application for ExtApp {
    async fn info(&self, _request: RequestInfo) -> ResponseInfo {
        ResponseInfo {
            last_block_height: self.0.committed.load(Ordering::SeqCst),
            ..Default::default()
        }
    }

    async fn prepare_proposal(&self, request: RequestPrepareProposal) -> ResponsePrepareProposal {
        let llc = request.local_last_commit.clone().unwrap_or_default();
        lock(&self.0.prepared).push((request.height, llc));
        ResponsePrepareProposal { txs: request.txs }
    }

    async fn extend_vote(&self, request: RequestExtendVote) -> ResponseExtendVote {
        let extension = format!("ext-{}", request.height).into_bytes();
        lock(&self.0.extended).push(request);
        ResponseExtendVote {
            vote_extension: extension.into(),
        }
    }

    async fn verify_vote_extension(
        &self,
        _request: RequestVerifyVoteExtension,
    ) -> ResponseVerifyVoteExtension {
        self.0.verified.fetch_add(1, Ordering::SeqCst);
        ResponseVerifyVoteExtension {
            status: abci::proto::response_verify_vote_extension::VerifyStatus::Accept.into(),
        }
    }

    async fn finalize_block(&self, request: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        self.0.finalized.store(request.height, Ordering::SeqCst);
        ResponseFinalizeBlock {
            tx_results: vec![Default::default(); request.txs.len()],
            ..Default::default()
        }
    }

    async fn commit(&self, _request: RequestCommit) -> ResponseCommit {
        let h = self.0.finalized.load(Ordering::SeqCst);
        self.0.committed.store(h, Ordering::SeqCst);
        ResponseCommit::default()
    }
}

fn start(home: &Path, app: &str) -> Process {
    common::start_node(home, common::free_port(), &["--proxy_app", app])
}

/// Waits until `done` holds for the recorded PrepareProposals, or fails
/// with the node's log.
fn wait_for(
    app: &Recorder,
    home: &Path,
    what: &str,
    done: impl Fn(&[(i64, ExtendedCommitInfo)]) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    while !done(&lock(&app.prepared)) {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(home.with_extension("log")).unwrap_or_default();
            panic!("{what}: not seen in time; node log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The genesis chain id and the validator's public key.
fn chain_and_key(home: &Path) -> (String, PublicKey) {
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(home.join(p)).expect("read")).expect("json")
    };
    let chain_id = read("config/genesis.json")["chain_id"]
        .as_str()
        .expect("chain id")
        .to_string();
    let key = read("config/priv_validator_key.json");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key["pub_key"]["value"].as_str().expect("pub key"))
        .expect("base64");
    let key = PublicKey(raw.try_into().expect("32 bytes"));
    (chain_id, key)
}

/// Asserts that the PrepareProposal of `height` got our validator's
/// precommit for `height - 1` with extension `ext-<height - 1>`, signed
/// over the canonical extension sign bytes.
fn assert_extended(height: i64, llc: &ExtendedCommitInfo, chain_id: &str, key: &PublicKey) {
    assert_eq!(llc.votes.len(), 1, "height {height}: {llc:?}");
    let vote = &llc.votes[0];
    let validator = vote.validator.as_ref().expect("validator");
    assert_eq!(validator.address.as_ref(), &key.address().0);
    assert_eq!(vote.block_id_flag, 2, "a precommit for the block");
    let want = format!("ext-{}", height - 1).into_bytes();
    assert_eq!(
        vote.vote_extension.as_ref(),
        want.as_slice(),
        "height {height}"
    );
    let signed = Vote {
        vote_type: VoteType::Precommit,
        height: (height - 1) as u64,
        round: llc.round as u32,
        block_id: None,
        timestamp: Time::default(),
        validator_address: key.address(),
        validator_index: 0,
        signature: Signature::default(),
        extension: want,
        extension_signature: vec![],
    };
    let sig = Signature::from_slice("extension_signature", &vote.extension_signature)
        .expect("a 64-byte extension signature");
    key.verify(&signed.extension_sign_bytes(chain_id), &sig)
        .expect("the extension signature verifies with the validator's key");
}

#[test]
fn precommits_carry_extensions_to_the_next_proposal_also_after_kill_9() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    // Short commit timeout to keep it quick.
    common::init_home(&home, &[("timeout_commit", "\"200ms\"")]);

    // Extensions from height 2 on.
    let genesis_path = home.join("config/genesis.json");
    let mut genesis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&genesis_path).expect("genesis"))
            .expect("json");
    genesis["consensus_params"]["abci"]["vote_extensions_enable_height"] = "2".into();
    std::fs::write(&genesis_path, genesis.to_string()).expect("write genesis");
    let (chain_id, key) = chain_and_key(&home);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = ExtApp::default();
    let server = runtime
        .block_on(Server::bind(
            &Addr::parse("tcp://127.0.0.1:0").expect("address"),
            Arc::new(app.clone()),
            ServerConfig::default(),
        ))
        .expect("bind");
    let app_addr = server.local_addr().expect("bound").to_string();
    runtime.spawn(server.run());
    let rec = &app.0;

    let node = start(&home, &app_addr);
    wait_for(rec, &home, "a proposal at height 4", |p| {
        p.iter().any(|(h, _)| *h >= 4)
    });
    {
        let prepared = lock(&rec.prepared);
        for (h, llc) in prepared.iter() {
            match h {
                1 => assert!(llc.votes.is_empty(), "no last commit at height 1"),
                // Height 1's commit predates the enable height.
                2 => {
                    assert_eq!(llc.votes.len(), 1, "{llc:?}");
                    assert_eq!(llc.votes[0].block_id_flag, 2);
                    assert!(llc.votes[0].vote_extension.is_empty(), "{llc:?}");
                    assert!(llc.votes[0].extension_signature.is_empty(), "{llc:?}");
                }
                h => assert_extended(*h, llc, &chain_id, &key),
            }
        }
    }
    {
        let extended = lock(&rec.extended);
        assert!(
            extended.iter().all(|r| r.height >= 2),
            "no ExtendVote before the enable height"
        );
        let at_2 = extended
            .iter()
            .find(|r| r.height == 2)
            .expect("ExtendVote at 2");
        assert_eq!(at_2.hash.len(), 32, "the block hash");
        assert_eq!(at_2.proposer_address.as_ref(), &key.address().0);
        let last = at_2
            .proposed_last_commit
            .as_ref()
            .expect("last commit info");
        assert_eq!(
            last.votes.len(),
            1,
            "height 1's commit, as ProcessProposal saw it"
        );
    }
    assert_eq!(
        rec.verified.load(Ordering::SeqCst),
        0,
        "our own precommits are never sent to VerifyVoteExtension"
    );

    // kill -9, restart: the first proposal afterwards still carries the
    // extension, now read back from the store.
    drop(node);
    let seen_before = lock(&rec.prepared).len();
    let _node = start(&home, &app_addr);
    wait_for(rec, &home, "a proposal after the restart", |p| {
        p.len() > seen_before
    });
    let (h, llc) = lock(&rec.prepared)[seen_before].clone();
    assert!(h >= 3, "height {h}");
    assert_extended(h, &llc, &chain_id, &key);
    runtime.shutdown_background();
}
