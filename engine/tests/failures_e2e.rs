//! The real `engine` binary when things go wrong: the app dies, the engine
//! is killed under load, the app speaks garbage or breaks the protocol, the
//! WAL has a corrupt tail. Each gives a clear error and loses nothing.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    commit_tx, free_port, get, height, init_home, log, query, rust_app, serve_in_thread,
    start_node, wait_for_height, wait_until, HookedKvStore,
};

/// Blocks come fast so that each test sees many heights.
const FAST: &[(&str, &str)] = &[("timeout_commit", "\"200ms\"")];

fn fresh_home(tmp: &tempfile::TempDir) -> PathBuf {
    let home = tmp.path().join("node");
    init_home(&home, FAST);
    home
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// (height, round, step) of the validator's last signature.
fn last_signed(home: &Path) -> (u64, i64, i64) {
    let text = std::fs::read_to_string(home.join("data/priv_validator_state.json"))
        .expect("priv_validator_state.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let h = v["height"].as_str().and_then(|s| s.parse().ok());
    (
        h.expect("height"),
        v["round"].as_i64().expect("round"),
        v["step"].as_i64().expect("step"),
    )
}

#[test]
fn an_app_that_dies_stops_consensus_keeps_rpc_and_resumes_through_the_handshake() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = fresh_home(&tmp);
    let app_port = free_port();
    let proxy = format!("tcp://127.0.0.1:{app_port}");
    let app = rust_app(app_port);
    let port = free_port();
    let _node = start_node(&home, port, &["--proxy_app", &proxy]);
    wait_for_height(port, 2, &home);
    assert!(commit_tx(port, "k1=v1").is_some(), "{}", log(&home));

    app.kill();
    wait_until("the node reports the failed app", &home, || {
        log(&home).contains("consensus stopped: the application failed")
    });
    let stopped_at = height(port).expect("/status is served while the app is down");
    let block = get(port, &format!("/block?height={stopped_at}")).expect("/block is served");
    assert!(block["result"]["block"]["header"].is_object(), "{block}");
    // Calls that need the app fail with an error naming it, not a hang.
    let q = get(port, "/abci_query?data=%22k1%22").expect("abci_query answers");
    let msg = q["error"].to_string();
    assert!(msg.contains(&proxy), "the error names the app: {q}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(height(port), Some(stopped_at), "no blocks without the app");

    // A fresh app process (the example keeps state in memory): the
    // handshake replays the whole chain into it and blocks resume.
    let _app = rust_app(app_port);
    wait_until("the node resumes", &home, || {
        log(&home).contains("the application is back")
    });
    wait_for_height(port, stopped_at + 2, &home);
    assert_eq!(query(port, "k1"), Some(b64("v1")), "the replay restored k1");
    assert!(commit_tx(port, "k2=v2").is_some(), "{}", log(&home));
    assert_eq!(query(port, "k2"), Some(b64("v2")));
}

#[test]
fn kill_9_under_load_keeps_every_acknowledged_tx() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = fresh_home(&tmp);
    let port = free_port();
    let node = start_node(&home, port, &[]);
    wait_for_height(port, 1, &home);

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (acked, stop, sent) = (acked.clone(), stop.clone(), sent.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("load{c}x{i}");
                    sent.fetch_add(1, Ordering::Relaxed);
                    if commit_tx(port, &format!("{key}={i}")).is_some() {
                        acked.lock().expect("no panics hold it").push(key);
                    }
                }
            })
        })
        .collect();
    // Let load build up, then kill in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("lock").len() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let signed_before = last_signed(&home);
    node.kill();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 20, "load ran: {} acknowledged", acked.len());
    let before = signed_before.0;

    let _node = start_node(&home, port, &[]);
    wait_for_height(port, before + 2, &home);
    let text = log(&home);
    assert!(text.contains("replayed the WAL"), "WAL replay is logged");
    assert!(
        last_signed(&home) >= signed_before,
        "the sign state never regresses"
    );
    for key in &acked {
        let value = key.rsplit('x').next().expect("index");
        assert_eq!(
            query(port, key),
            Some(b64(value)),
            "acknowledged {key} lost"
        );
    }
    eprintln!(
        "{} sent, {} acknowledged before kill -9 at height {before}; all present",
        sent.load(Ordering::Relaxed),
        acked.len()
    );
}

/// Answers every connection with bytes that are not ABCI.
fn garbage_app() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

#[test]
fn garbage_on_the_abci_socket_is_named_and_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = fresh_home(&tmp);
    let port = free_port();
    let node = start_node(&home, port, &[]);
    wait_for_height(port, 2, &home);
    assert!(commit_tx(port, "k1=v1").is_some());
    node.kill();
    let stored = last_signed(&home).0;

    let garbage = format!("tcp://127.0.0.1:{}", garbage_app());
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["start", "--home"])
        .arg(&home)
        .args(["--proxy_app", &garbage])
        .args(["--rpc.laddr", &format!("tcp://127.0.0.1:{}", free_port())])
        .env_remove("CMTHOME")
        .stdout(Stdio::null())
        .output()
        .expect("engine runs");
    assert!(!out.status.success(), "a garbage app is fatal at start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&garbage), "names the app's address: {err}");
    assert!(err.contains("HTTP"), "says what the app spoke: {err}");

    // Back to the right app: nothing was lost.
    let _node = start_node(&home, port, &[]);
    wait_for_height(port, stored + 1, &home);
    assert_eq!(query(port, "k1"), Some(b64("v1")));
}

#[test]
fn a_corrupt_wal_tail_is_truncated_with_a_warning_and_the_chain_continues() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = fresh_home(&tmp);
    let port = free_port();
    let node = start_node(&home, port, &[]);
    wait_for_height(port, 2, &home);
    assert!(commit_tx(port, "k1=v1").is_some());
    let at_kill = height(port).expect("height");
    node.kill();

    // Damage the end of the newest segment as a torn write would.
    let wal_dir = home.join("data/cs.wal");
    let newest = std::fs::read_dir(&wal_dir)
        .expect("WAL directory")
        .flatten()
        .map(|e| e.path())
        .max()
        .expect("a segment");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .expect("segment");
    f.write_all(&[0x5a; 37]).expect("garbage appended");
    drop(f);

    let _node = start_node(&home, port, &[]);
    wait_for_height(port, at_kill + 2, &home);
    assert!(
        log(&home).contains("truncated"),
        "the truncation is a warning in the log"
    );
    assert_eq!(query(port, "k1"), Some(b64("v1")));
}

#[test]
fn a_wrong_tx_results_count_halts_with_a_clear_error_and_loses_nothing() {
    // FinalizeBlock answers with one tx result too few.
    let broken = serve_in_thread(Arc::new(HookedKvStore {
        finalize_response: Some(Box::new(|r| {
            r.tx_results.pop();
        })),
        ..Default::default()
    }));
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = fresh_home(&tmp);
    let port = free_port();
    let mut node = start_node(&home, port, &["--proxy_app", &broken]);
    wait_for_height(port, 2, &home);

    // Blocks without txs have no results to miscount; the first tx halts.
    let _ = get(port, "/broadcast_tx_sync?tx=%22k1=v1%22");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = node.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the node halts: {}", log(&home));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "the halt is an error exit");
    let text = log(&home);
    assert!(
        text.contains("FinalizeBlock returned 0 tx_results for a block of 1 transactions"),
        "names the mismatch: {text}"
    );

    // A fixed app (a fresh process: the broken one holds a half-applied
    // block): the handshake executes the stored block again, and it stays.
    let fixed = serve_in_thread(Arc::new(HookedKvStore::default()));
    let _node = start_node(&home, port, &["--proxy_app", &fixed]);
    let halted_at = wait_for_height(port, 1, &home);
    wait_for_height(port, halted_at + 2, &home);
    assert_eq!(query(port, "k1"), Some(b64("v1")));
    let tx_block = (1..=halted_at)
        .find(|h| {
            get(port, &format!("/block?height={h}"))
                .is_some_and(|b| b["result"]["block"]["data"]["txs"][0] == b64("k1=v1").as_str())
        })
        .expect("the block with k1=v1 is stored");
    assert!(
        tx_block >= 3,
        "the tx came after the empty blocks: {tx_block}"
    );
}

#[test]
fn a_lost_mempool_connection_is_noticed_and_reopened() {
    // CheckTx of "boom" kills the mempool connection (the app panics in the
    // handler; the server closes that connection).
    let proxy = serve_in_thread(Arc::new(HookedKvStore {
        check_tx: Some(Box::new(|req, _| {
            assert!(&req.tx[..] != b"boom", "the app's CheckTx blows up")
        })),
        ..Default::default()
    }));
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = fresh_home(&tmp);
    let port = free_port();
    let _node = start_node(&home, port, &["--proxy_app", &proxy]);
    wait_for_height(port, 2, &home);

    let r = get(port, "/broadcast_tx_sync?tx=%22boom%22").expect("answers");
    assert!(r["error"].to_string().contains("Mempool"), "{r}");
    wait_until("the lost connection is noticed", &home, || {
        log(&home).contains("consensus stopped: the application failed")
    });
    wait_until("the connections are reopened", &home, || {
        log(&home).contains("the application is back")
    });
    // The same app process, new connections: txs flow again.
    assert!(commit_tx(port, "k1=v1").is_some(), "{}", log(&home));
    assert_eq!(query(port, "k1"), Some(b64("v1")));
}
