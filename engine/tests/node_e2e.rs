//! The real `engine` binary as a user runs it: `engine start` on a fresh
//! home with the built-in kvstore, transactions over HTTP RPC, kill -9 and
//! restart.

mod common;

use std::path::Path;

use common::{
    free_port, get, height, log, python_app, query, rust_app, start_node, wait_for_height,
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
