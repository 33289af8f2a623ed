//! The mempool as the real `engine` binary runs it against an app over a
//! real socket: after each block, CheckTx (Recheck) runs again on what is
//! left, and txs the app now refuses leave the mempool and the cache. The
//! recheck runs beside consensus: a stuck one delays no block, and a tx
//! waiting for its recheck is not proposed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use abci::proto::CheckTxType;
use common::{
    free_port, get, init_home, serve_in_thread, start_node, wait_for_height, wait_until,
    HookedKvStore,
};

fn doomed(tx: &[u8]) -> bool {
    tx.starts_with(b"doomed")
}

#[test]
fn txs_the_app_refuses_on_recheck_leave_the_mempool_and_the_cache() {
    // The kvstore, except that it never proposes txs starting with "doomed"
    // (so they stay in the mempool) and refuses them when rechecked.
    let rechecks = Arc::new(AtomicUsize::new(0));
    let counter = rechecks.clone();
    let proxy = serve_in_thread(Arc::new(HookedKvStore {
        check_tx: Some(Box::new(move |req, resp| {
            if doomed(&req.tx) && req.r#type == CheckTxType::Recheck as i32 {
                counter.fetch_add(1, Ordering::SeqCst);
                resp.code = 7;
            }
        })),
        prepare_request: Some(Box::new(|r| r.txs.retain(|tx| !doomed(tx)))),
        ..Default::default()
    }));
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
        rechecks.load(Ordering::SeqCst) >= 1
    });
    // Refused on recheck: gone from the mempool and the cache, so the same
    // tx is new again.
    let again = sync("doomed=1");
    assert_eq!(again["result"]["code"], 0, "accepted anew: {again}");
    let seen = rechecks.load(Ordering::SeqCst);
    let h = wait_for_height(port, 1, &home);
    wait_for_height(port, h + 3, &home);
    assert!(
        rechecks.load(Ordering::SeqCst) <= seen + 1,
        "a removed tx is not rechecked again"
    );
}

#[test]
fn a_stuck_recheck_delays_no_block_and_its_tx_is_not_proposed_meanwhile() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let proposed = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let seen = proposed.clone();
    let proxy = serve_in_thread(Arc::new(HookedKvStore {
        recheck_gate: Some((b"slow".to_vec(), gate.clone())),
        // Record the heights whose PrepareProposal was offered the tx, and
        // keep it out of blocks so it stays in the mempool.
        prepare_request: Some(Box::new(move |r| {
            if r.txs.iter().any(|tx| tx.starts_with(b"slow")) {
                seen.lock().expect("lock").push(r.height as u64);
            }
            r.txs.retain(|tx| !tx.starts_with(b"slow"));
        })),
        ..Default::default()
    }));
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    init_home(&home, &[("timeout_commit", "\"100ms\"")]);
    let port = free_port();
    let _node = start_node(&home, port, &["--proxy_app", &proxy]);
    wait_for_height(port, 1, &home);

    let added = get(port, "/broadcast_tx_sync?tx=%22slow=1%22").expect("answers");
    assert_eq!(added["result"]["code"], 0, "{added}");
    let h = wait_for_height(port, 1, &home);
    // The tx's recheck after the next block is stuck; blocks go on.
    let later = wait_for_height(port, h + 5, &home);
    let offered: Vec<u64> = proposed.lock().expect("lock").clone();
    assert!(
        offered.iter().all(|at| *at <= h + 1),
        "offered only before its recheck started ({offered:?}, stuck since about {h})"
    );
    // Released, it passes its recheck and is offered again.
    gate.add_permits(1_000);
    wait_until("the rechecked tx is proposed again", &home, || {
        proposed.lock().expect("lock").iter().any(|at| *at > later)
    });
}
