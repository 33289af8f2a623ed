//! The mempool as the real `engine` binary runs it against an app over a
//! real socket: after each block, CheckTx (Recheck) runs again on what is
//! left, and txs the app now refuses leave the mempool and the cache.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use abci::proto::*;
use abci::server::Application;
use common::{free_port, get, init_home, serve_in_thread, start_node, wait_for_height, wait_until};

/// The kvstore, except that it never proposes txs starting with "doomed"
/// (so they stay in the mempool) and refuses them when rechecked.
struct Doomed {
    inner: kvstore::KvStore,
    rechecks: AtomicUsize,
}

fn doomed(tx: &[u8]) -> bool {
    tx.starts_with(b"doomed")
}

impl Application for Doomed {
    async fn info(&self, r: RequestInfo) -> ResponseInfo {
        self.inner.info(r).await
    }
    async fn query(&self, r: RequestQuery) -> ResponseQuery {
        self.inner.query(r).await
    }
    async fn check_tx(&self, r: RequestCheckTx) -> ResponseCheckTx {
        if doomed(&r.tx) && r.r#type == CheckTxType::Recheck as i32 {
            self.rechecks.fetch_add(1, Ordering::SeqCst);
            return ResponseCheckTx {
                code: 7,
                log: "doomed".into(),
                ..Default::default()
            };
        }
        self.inner.check_tx(r).await
    }
    async fn init_chain(&self, r: RequestInitChain) -> ResponseInitChain {
        self.inner.init_chain(r).await
    }
    async fn prepare_proposal(&self, mut r: RequestPrepareProposal) -> ResponsePrepareProposal {
        r.txs.retain(|tx| !doomed(tx));
        self.inner.prepare_proposal(r).await
    }
    async fn process_proposal(&self, r: RequestProcessProposal) -> ResponseProcessProposal {
        self.inner.process_proposal(r).await
    }
    async fn finalize_block(&self, r: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        self.inner.finalize_block(r).await
    }
    async fn commit(&self, r: RequestCommit) -> ResponseCommit {
        self.inner.commit(r).await
    }
}

#[test]
fn txs_the_app_refuses_on_recheck_leave_the_mempool_and_the_cache() {
    let app = Arc::new(Doomed {
        inner: kvstore::KvStore::new(),
        rechecks: AtomicUsize::new(0),
    });
    let proxy = serve_in_thread(app.clone());
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    init_home(&home, &[("timeout_commit", "\"200ms\"")]);
    let port = free_port();
    let _node = start_node(&home, port, &["--proxy_app", &proxy]);
    wait_for_height(port, 1, &home);

    let sync = |tx: &str| get(port, &format!("/broadcast_tx_sync?tx=%22{tx}%22")).expect("answers");
    let first = sync("doomed=1");
    assert_eq!(first["result"]["code"], 0, "accepted at first: {first}");
    // Held (in the cache), a second copy is refused as a duplicate.
    let dup = sync("doomed=1");
    assert_eq!(dup["error"]["data"], "tx already exists in cache", "{dup}");

    wait_until("a recheck after a block", &home, || {
        app.rechecks.load(Ordering::SeqCst) >= 1
    });
    // Refused on recheck: gone from the mempool and the cache, so the same
    // tx is new again.
    let again = sync("doomed=1");
    assert_eq!(again["result"]["code"], 0, "accepted anew: {again}");
    let rechecks = app.rechecks.load(Ordering::SeqCst);
    let h = wait_for_height(port, 1, &home);
    wait_for_height(port, h + 3, &home);
    assert!(
        app.rechecks.load(Ordering::SeqCst) <= rechecks + 1,
        "a removed tx is not rechecked again"
    );
}
