//! The real `engine` binary as a user runs it: `engine start` on a fresh
//! home with the built-in kvstore, transactions over HTTP RPC, kill -9 and
//! restart.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the node when the test ends, pass or fail.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(home: &Path, port: u16) -> NodeProcess {
    start_with(home, port, &[])
}

fn start_with(home: &Path, port: u16, extra: &[&str]) -> NodeProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.with_extension("log"))
        .expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["start", "--home"])
        .arg(home)
        .args(["--rpc.laddr", &format!("tcp://127.0.0.1:{port}")])
        .args(extra)
        .env_remove("CMTHOME")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("engine starts");
    NodeProcess(child)
}

/// GET `path` from the RPC and parse the JSON body.
fn get(port: u16, path: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let body = raw.split_once("\r\n\r\n")?.1;
    // Chunked or plain: the JSON object spans the first '{' to the last '}'.
    let json = &body[body.find('{')?..=body.rfind('}')?];
    serde_json::from_str(json).ok()
}

fn height(port: u16) -> Option<u64> {
    get(port, "/status")?["result"]["sync_info"]["latest_block_height"]
        .as_str()?
        .parse()
        .ok()
}

fn wait_for_height(port: u16, at_least: u64, home: &Path) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(h) = height(port).filter(|h| *h >= at_least) {
            return h;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(home.with_extension("log")).unwrap_or_default();
            panic!("no height {at_least} within a minute; node log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn query(port: u16, key: &str) -> Option<String> {
    let r = get(port, &format!("/abci_query?data=%22{key}%22"))?;
    r["result"]["response"]["value"].as_str().map(String::from)
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
    let log = std::fs::read_to_string(home.with_extension("log")).unwrap_or_default();
    assert!(log.contains("ABCI handshake"), "the handshake is logged");
    drop(node);
}

/// The Python kvstore as a separate process.
fn python_app(addr: &str) -> NodeProcess {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kvstore-py/kvstore.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args(["--addr", addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs (CI machines have Python 3.11)");
    // Wait for its "listening" line.
    if let Some(out) = child.stdout.as_mut() {
        let mut byte = [0u8; 1];
        let mut line = Vec::new();
        while out.read(&mut byte).map(|n| n == 1).unwrap_or(false) && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        assert!(
            String::from_utf8_lossy(&line).contains("listening"),
            "{}",
            String::from_utf8_lossy(&line)
        );
    }
    NodeProcess(child)
}

fn run_chain_against(addr: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    let _app = python_app(addr);
    let port = free_port();
    let _node = start_with(&home, port, &["--proxy_app", addr]);
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
    run_chain_against(&format!("tcp://127.0.0.1:{}", free_port()));
}

#[test]
fn drives_an_external_app_process_over_a_unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_chain_against(&format!("unix://{}", dir.path().join("app.sock").display()));
}
