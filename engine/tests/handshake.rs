//! The start-up handshake between the node's stores and a real application
//! (the kvstore, in-process), through every crash point block execution has.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use engine::app_conn::{AppConnConfig, AppConns};
use engine::block_exec::{apply_block, finalize_request, handshake, BlockExecError};
use engine::execution::{block_time, make_block};
use engine::genesis::GenesisDoc;
use engine::store::{State, Store};
use engine::types::{
    Block, BlockId, Commit, CommitSig, Height, PrivateKey, Signature, Time, Vote, VoteType,
};

struct Chain {
    key: PrivateKey,
    genesis: GenesisDoc,
    _dir: tempfile::TempDir,
    store: Store,
}

async fn fresh_app() -> AppConns {
    AppConns::connect("kvstore", &AppConnConfig::default())
        .await
        .expect("in-process kvstore")
}

fn chain() -> Chain {
    let key = PrivateKey::from_seed([5; 32]);
    let genesis = GenesisDoc::single_validator(
        "handshake-chain",
        key.public_key(),
        Time {
            secs: 1_700_000_000,
            nanos: 0,
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("engine.db")).expect("store");
    Chain {
        key,
        genesis,
        _dir: dir,
        store,
    }
}

impl Chain {
    /// Builds block `h` with `txs` on `state`, signs its commit, saves both.
    fn save_next_block(&self, state: &State, txs: Vec<Vec<u8>>) -> (Block, BlockId) {
        let h = state.last_block_height + 1;
        let last_commit = if h > state.initial_height {
            self.store.load_seen_commit(h - 1).expect("read")
        } else {
            None
        };
        let time = block_time(state, last_commit.as_ref());
        let addr = self.key.public_key().address();
        let block = make_block(state, h, txs, last_commit, vec![], addr, time);
        let id = block.block_id();
        let mut vote = Vote {
            vote_type: VoteType::Precommit,
            height: h,
            round: 0,
            block_id: Some(id),
            timestamp: time.add_nanos(1_000_000_000),
            validator_address: addr,
            validator_index: 0,
            signature: Signature::default(),
            extension: vec![],
            extension_signature: vec![],
        };
        vote.signature = self.key.sign(&vote.sign_bytes(&self.genesis.chain_id));
        let commit = Commit {
            height: h,
            round: 0,
            block_id: id,
            signatures: vec![CommitSig::Commit {
                validator_address: addr,
                timestamp: vote.timestamp,
                signature: vote.signature,
            }],
        };
        self.store
            .save_block(&block, &id, &commit)
            .expect("save block");
        (block, id)
    }

    /// Runs `n` blocks of one tx each through `app`.
    async fn produce(&self, app: &AppConns, mut state: State, n: Height) -> State {
        for _ in 0..n {
            let h = state.last_block_height + 1;
            let (block, id) = self.save_next_block(&state, vec![format!("k{h}=v{h}").into_bytes()]);
            state = apply_block(app, &self.store, &state, &block, &id)
                .await
                .expect("apply")
                .0;
        }
        state
    }
}

#[tokio::test]
async fn a_fresh_chain_runs_init_chain_once() {
    let c = chain();
    let app = fresh_app().await;
    let state = handshake(&app, &c.store, &c.genesis)
        .await
        .expect("handshake");
    assert_eq!(state.last_block_height, 0);
    assert_eq!(state.chain_id, "handshake-chain");
    assert_eq!(c.store.load_state().expect("read"), Some(state.clone()));
    // Again with the same app: nothing to do, hashes agree.
    let again = handshake(&app, &c.store, &c.genesis)
        .await
        .expect("second handshake");
    assert_eq!(again, state);
}

#[tokio::test]
async fn a_fresh_app_gets_every_stored_block_replayed() {
    let c = chain();
    let app = fresh_app().await;
    let state = handshake(&app, &c.store, &c.genesis)
        .await
        .expect("handshake");
    let state = c.produce(&app, state, 3).await;

    // The app lost its data (kvstore keeps it in memory): a new one replays.
    let app2 = fresh_app().await;
    let replayed = handshake(&app2, &c.store, &c.genesis)
        .await
        .expect("replay");
    assert_eq!(replayed, state);
    let info = app2
        .info(engine::block_exec::info_request())
        .await
        .expect("info");
    assert_eq!(info.last_block_height, 3);
    assert_eq!(info.last_block_app_hash.to_vec(), state.app_hash);
    let q = app2
        .query(abci::proto::RequestQuery {
            data: b"k2".to_vec().into(),
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(&q.value[..], b"v2");
}

#[tokio::test]
async fn a_block_saved_before_a_crash_is_applied() {
    let c = chain();
    let app = fresh_app().await;
    let state = handshake(&app, &c.store, &c.genesis)
        .await
        .expect("handshake");
    let state = c.produce(&app, state, 2).await;
    // Crash after saving block 3, before FinalizeBlock.
    c.save_next_block(&state, vec![b"late=1".to_vec()]);
    let recovered = handshake(&app, &c.store, &c.genesis)
        .await
        .expect("recover");
    assert_eq!(recovered.last_block_height, 3);
    assert_eq!(
        c.store
            .load_state()
            .expect("read")
            .map(|s| s.last_block_height),
        Some(3)
    );
}

#[tokio::test]
async fn a_state_lost_after_commit_is_rebuilt_from_the_stored_response() {
    let c = chain();
    let app = fresh_app().await;
    let state = handshake(&app, &c.store, &c.genesis)
        .await
        .expect("handshake");
    let state = c.produce(&app, state, 2).await;
    // Block 3 reaches the app and its response is saved, then a crash
    // before the state is saved.
    let (block, id) = c.save_next_block(&state, vec![b"x=1".to_vec()]);
    let req = finalize_request(&block, &id, state.last_validators.as_ref(), &|_| None);
    let resp = app.finalize_block(req).await.expect("finalize");
    use prost::Message;
    c.store
        .save_finalize_response(3, &resp.encode_to_vec())
        .expect("save response");
    app.commit(Default::default()).await.expect("commit");
    let recovered = handshake(&app, &c.store, &c.genesis)
        .await
        .expect("recover");
    assert_eq!(recovered.last_block_height, 3);
    assert_eq!(recovered.app_hash, resp.app_hash.to_vec());
}

#[tokio::test]
async fn an_app_ahead_of_the_store_or_on_another_chain_is_refused() {
    let c = chain();
    let app = fresh_app().await;
    let state = handshake(&app, &c.store, &c.genesis)
        .await
        .expect("handshake");
    c.produce(&app, state.clone(), 1).await;
    let ahead = fresh_app().await;
    for height in 1..=2 {
        let req = abci::proto::RequestFinalizeBlock {
            txs: vec![b"a=1".to_vec().into()],
            height,
            ..Default::default()
        };
        ahead.finalize_block(req).await.expect("finalize");
        ahead.commit(Default::default()).await.expect("commit");
    }
    let e = handshake(&ahead, &c.store, &c.genesis)
        .await
        .expect_err("ahead");
    assert!(
        matches!(e, BlockExecError::AppAhead { app: 2, store: 1 }),
        "{e}"
    );

    // Same height, different history: the app hashes differ.
    let other = fresh_app().await;
    let req = abci::proto::RequestFinalizeBlock {
        txs: vec![b"a=1".to_vec().into(), b"b=2".to_vec().into()],
        height: 1,
        ..Default::default()
    };
    other.finalize_block(req).await.expect("finalize");
    other.commit(Default::default()).await.expect("commit");
    let e = handshake(&other, &c.store, &c.genesis)
        .await
        .expect_err("mismatch");
    assert!(
        matches!(e, BlockExecError::AppHashMismatch { height: 1, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("reset the application"), "{e}");
}

#[tokio::test]
async fn a_replay_that_diverges_midway_stops_at_the_first_wrong_height() {
    let c = chain();
    let app = fresh_app().await;
    let state = handshake(&app, &c.store, &c.genesis)
        .await
        .expect("handshake");
    c.produce(&app, state, 3).await;

    // A fresh app over a real socket whose second block comes out with a
    // different app hash (a nondeterministic app, say).
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let proxy = common::serve_in_thread(Arc::new(common::HookedKvStore {
        finalize_response: Some(Box::new(move |r| {
            if counter.fetch_add(1, Ordering::SeqCst) == 1 {
                r.app_hash = vec![0xEE; 8].into();
            }
        })),
        ..Default::default()
    }));
    let diverging = AppConns::connect(&proxy, &AppConnConfig::default())
        .await
        .expect("connects");
    let e = handshake(&diverging, &c.store, &c.genesis)
        .await
        .expect_err("the replay diverges");
    assert!(
        matches!(&e, BlockExecError::AppHashMismatch { height: 2, got, .. } if got == "EEEEEEEEEEEEEEEE"),
        "{e}"
    );
    // It stopped there: block 3 was not fed to the app.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
