//! The real `engine` binary as a user runs it: `engine start` on a fresh
//! home with the built-in kvstore, transactions over HTTP RPC, kill -9 and
//! restart.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    free_port, get, height, init_home, log, python_app, query, rust_app, start_node,
    wait_for_height,
};

fn start(home: &Path, port: u16) -> common::Process {
    start_node(home, port, &[])
}

#[test]
fn a_fresh_home_produces_blocks_commits_txs_and_survives_kill_9() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    let port = free_port();
    let node = start(&home, port);
    let h = wait_for_height(port, 2, &home);
    assert!(h >= 2);

    let r = get(port, "/broadcast_tx_commit?tx=%22k1=v1%22").expect("broadcast_tx_commit answers");
    let result = &r["result"];
    assert_eq!(result["check_tx"]["code"], 0, "{r}");
    assert_eq!(result["tx_result"]["code"], 0, "{r}");
    let tx_height: u64 = result["height"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("height");
    assert!(tx_height > 0, "{r}");
    // base64("v1") == "djE="
    assert_eq!(query(port, "k1").as_deref(), Some("djE="));
    let again = get(port, "/broadcast_tx_sync?tx=%22k1=v1%22").expect("answers");
    assert_eq!(
        again["error"]["data"], "tx already exists in cache",
        "{again}"
    );

    let block = get(port, &format!("/block?height={tx_height}")).expect("block");
    let txs = &block["result"]["block"]["data"]["txs"];
    assert_eq!(txs[0], "azE9djE=", "base64 of k1=v1: {block}");

    // kill -9 and restart: height continues, the tx is still there (the
    // in-process kvstore lost its memory: the handshake replays the chain),
    // and the validator's last-sign state never went backwards.
    let state_path = home.join("data/priv_validator_state.json");
    let signed = |p: &Path| -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).expect("state")).expect("json");
        v["height"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("height")
    };
    let before_kill = height(port).expect("height");
    let signed_before = signed(&state_path);
    drop(node);
    let node = start(&home, port);
    let after = wait_for_height(port, before_kill + 2, &home);
    assert!(after >= before_kill + 2);
    assert_eq!(query(port, "k1").as_deref(), Some("djE="));
    assert!(signed(&state_path) >= signed_before);
    assert!(
        log(&home).contains("ABCI handshake"),
        "the handshake is logged"
    );
    drop(node);
}

fn run_chain_against(addr: &str, _app: common::Process) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    let port = free_port();
    let _node = start_node(&home, port, &["--proxy_app", addr]);
    wait_for_height(port, 2, &home);
    let r = get(port, "/broadcast_tx_commit?tx=%22color=blue%22").expect("answers");
    assert_eq!(r["result"]["tx_result"]["code"], 0, "{r}");
    // base64("blue") == "Ymx1ZQ=="
    assert_eq!(query(port, "color").as_deref(), Some("Ymx1ZQ=="));
    let info = get(port, "/abci_info").expect("abci_info");
    assert!(
        info["result"]["response"]["last_block_height"]
            .as_str()
            .is_some(),
        "{info}"
    );
}

#[test]
fn drives_an_external_app_process_over_tcp() {
    let addr = format!("tcp://127.0.0.1:{}", free_port());
    run_chain_against(&addr, python_app(&addr));
}

#[test]
fn drives_the_rust_kvstore_binary_over_tcp() {
    let port = free_port();
    run_chain_against(&format!("tcp://127.0.0.1:{port}"), rust_app(port));
}

#[test]
fn drives_an_external_app_process_over_a_unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("unix://{}", dir.path().join("app.sock").display());
    run_chain_against(&addr, python_app(&addr));
}

/// The height once it stays the same for `window`; panics if it still
/// moves after 20 s.
fn idle_height(port: u16, window: Duration, home: &Path) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = height(port);
    loop {
        std::thread::sleep(window);
        let now = height(port);
        if let (Some(a), Some(b)) = (last, now) {
            if a == b {
                return b;
            }
        }
        if Instant::now() > deadline {
            panic!(
                "the height never stopped (last {now:?}); node log:\n{}",
                log(home)
            );
        }
        last = now;
    }
}

fn header(port: u16, h: u64) -> serde_json::Value {
    let b = get(port, &format!("/block?height={h}")).expect("block");
    b["result"]["block"].clone()
}

/// `--consensus.create_empty_blocks=false`: after the initial block (and a
/// proof block if the app hash changed) the chain stops; a transaction
/// makes one block, the app hash it changed makes one proof block, and the
/// chain stops again, also across a kill -9 and restart; restarted without
/// the flag it produces empty blocks again.
#[test]
fn without_empty_blocks_the_chain_waits_for_transactions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    init_home(&home, &[("timeout_commit", "\"200ms\"")]);
    let port = free_port();
    let flag = ["--consensus.create_empty_blocks=false"];
    let node = start_node(&home, port, &flag);
    wait_for_height(port, 1, &home);
    // 3 s without a block is 15 timeout_commit periods.
    let window = Duration::from_secs(3);
    let idle = idle_height(port, window, &home);
    assert!(idle <= 2, "only the initial and a proof block: {idle}");

    let r = get(port, "/broadcast_tx_commit?tx=%22k1=v1%22").expect("answers");
    assert_eq!(r["result"]["check_tx"]["code"], 0, "{r}");
    assert_eq!(r["result"]["tx_result"]["code"], 0, "{r}");
    let tx_height: u64 = r["result"]["height"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("height");
    assert_eq!(tx_height, idle + 1, "{r}");
    assert_eq!(query(port, "k1").as_deref(), Some("djE="));

    // The proof block commits the new app hash, then the chain stops.
    let after = idle_height(port, window, &home);
    assert_eq!(after, tx_height + 1, "exactly one proof block");
    let with_tx = header(port, tx_height);
    let proof = header(port, after);
    assert_eq!(proof["data"]["txs"].as_array().map(Vec::len), Some(0));
    assert_ne!(
        proof["header"]["app_hash"], with_tx["header"]["app_hash"],
        "the proof block carries the app hash the tx produced"
    );

    // A restart replays the WAL into the same wait: no block without txs.
    drop(node);
    let node = start_node(&home, port, &flag);
    wait_for_height(port, after, &home);
    assert_eq!(idle_height(port, window, &home), after);
    let r = get(port, "/broadcast_tx_commit?tx=%22k2=v2%22").expect("answers");
    assert_eq!(r["result"]["tx_result"]["code"], 0, "{r}");
    assert_eq!(query(port, "k2").as_deref(), Some("djI="));
    let waiting = idle_height(port, Duration::from_secs(1), &home);

    // Restarted with empty blocks on, the height the WAL left waiting
    // proceeds, and so do the next ones.
    drop(node);
    let node = start(&home, port);
    wait_for_height(port, waiting + 3, &home);
    drop(node);
}

/// `--consensus.create_empty_blocks_interval=1s` with no transactions:
/// empty blocks still come, one per interval rather than one per
/// timeout_commit.
#[test]
fn the_empty_blocks_interval_spaces_empty_blocks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    init_home(&home, &[("timeout_commit", "\"100ms\"")]);
    let port = free_port();
    let _node = start_node(
        &home,
        port,
        &["--consensus.create_empty_blocks_interval=1s"],
    );
    let start = wait_for_height(port, 2, &home);
    // Record when each new height shows up for the next three.
    let mut seen = vec![(start, Instant::now())];
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 4 {
        assert!(Instant::now() < deadline, "empty blocks stopped: {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
        if let Some(h) = height(port) {
            if h > seen[seen.len() - 1].0 {
                seen.push((h, Instant::now()));
            }
        }
    }
    for pair in seen.windows(2).skip(1) {
        let ((h0, t0), (h1, t1)) = (pair[0], pair[1]);
        assert_eq!(h1, h0 + 1, "one block at a time: {seen:?}");
        // Each empty block waited the 1 s interval (plus timeout_commit);
        // 100 ms of slack covers the polling.
        assert!(
            t1 - t0 >= Duration::from_millis(900),
            "height {h1} came {:?} after {h0}: {seen:?}",
            t1 - t0
        );
    }
}
