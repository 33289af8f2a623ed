//! `testnet init`, `start` and `status` as real processes: the homes `init`
//! writes are accepted by the `engine` binary, `start` runs real engine
//! (and app) processes that make blocks, stops them all on SIGTERM, and
//! reports a node that dies while the others keep running; `status` reads
//! their RPC. Consensus across validators is network_e2e.rs's subject.

mod common;

use common::*;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::config::Config;
use engine::genesis::GenesisDoc;

/// A running `testnet start DIR`, its output collected line by line. On
/// drop (a failed test) it is stopped, and its engines killed.
struct Start {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pids: Vec<u32>,
}

impl Start {
    fn spawn(dir: &Path, extra: &[&str]) -> Start {
        engine_binary();
        let mut child = testnet()
            .arg("start")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("testnet start runs");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().expect("lock").push(line);
                }
            });
        }
        Start {
            child,
            lines,
            pids: Vec::new(),
        }
    }

    fn output(&self) -> String {
        self.lines.lock().expect("lock").join("\n")
    }

    /// Waits for a line satisfying `pred`; returns it.
    fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(l) = self.lines.lock().expect("lock").iter().find(|l| pred(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no line {what} within a minute; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The PID `start` reports for `node`'s `what` (`engine` or `app`).
    fn pid(&mut self, node: &str, what: &str) -> u32 {
        let prefix = format!("{node}: ");
        let key = format!("{what} pid ");
        let line = self.wait_line(&format!("{node} {what} pid"), |l| {
            l.starts_with(&prefix) && l.contains(&key)
        });
        let pid = line
            .split(&key)
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line:?}"));
        self.pids.push(pid);
        pid
    }

    /// SIGTERM, then its exit code (within 30 s).
    fn terminate(&mut self) -> i32 {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().expect("exited, not killed");
            }
            assert!(
                Instant::now() < deadline,
                "testnet start did not exit within 30s of SIGTERM; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Start {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Each child leads its own process group: kill the groups.
        for pid in &self.pids {
            if group_alive(*pid) {
                let _ = Command::new("kill")
                    .args(["-s", "KILL", "--", &format!("-{pid}")])
                    .status();
            }
        }
    }
}

fn status(dir: &Path) -> Output {
    testnet()
        .arg("status")
        .arg(dir)
        .output()
        .expect("testnet status runs")
}

#[test]
fn init_writes_homes_the_engine_accepts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    init_ok(
        &dir,
        &[
            "--validators",
            "4",
            "--full-nodes",
            "1",
            "--base-port",
            "40000",
            "--chain-id",
            "four-and-one",
        ],
    );
    let homes: Vec<PathBuf> = (0..5).map(|i| dir.join(format!("node{i}"))).collect();
    let ids: Vec<String> = homes
        .iter()
        .map(|h| engine_says("show-node-id", h))
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        5,
        "distinct node IDs"
    );

    for (i, home) in homes.iter().enumerate() {
        let config = Config::load(&home.join("config/config.toml")).expect("config.toml");
        let port = |offset: u16| 40000 + 10 * i as u16 + offset;
        assert_eq!(config.moniker, format!("node{i}"));
        assert_eq!(config.p2p.laddr, format!("tcp://127.0.0.1:{}", port(0)));
        assert_eq!(config.rpc.laddr, format!("tcp://127.0.0.1:{}", port(7)));
        assert!(config.p2p.allow_duplicate_ip && !config.p2p.addr_book_strict);
        assert_eq!(config.proxy_app, "kvstore");
        let peers: BTreeSet<&str> = config.p2p.persistent_peers.split(',').collect();
        let others: Vec<String> = (0..5)
            .filter(|j| *j != i)
            .map(|j| format!("{}@127.0.0.1:{}", ids[j], 40000 + 10 * j))
            .collect();
        assert_eq!(
            peers,
            others.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            "node{i} peers with exactly the others"
        );
    }

    let genesis_bytes = std::fs::read(homes[0].join("config/genesis.json")).expect("genesis");
    for h in &homes[1..] {
        assert_eq!(
            std::fs::read(h.join("config/genesis.json")).expect("genesis"),
            genesis_bytes,
            "{} has the same genesis",
            h.display()
        );
    }
    let genesis = GenesisDoc::load(&homes[0].join("config/genesis.json")).expect("parses");
    assert_eq!(genesis.chain_id, "four-and-one");
    assert_eq!(genesis.validators.len(), 4);
    assert!(genesis.validators.iter().all(|v| v.power == 10));
    let in_genesis: Vec<String> = genesis
        .validators
        .iter()
        .map(|v| engine::genesis::JsonKey::from_public(&v.pub_key).value)
        .collect();
    for (i, h) in homes.iter().enumerate() {
        let shown: serde_json::Value =
            serde_json::from_str(&engine_says("show-validator", h)).expect("JSON key");
        let key = shown["value"].as_str().expect("key").to_string();
        assert_eq!(
            in_genesis.contains(&key),
            i < 4,
            "node{i}'s key is in the genesis iff it is a validator"
        );
    }
}

#[test]
fn init_refuses_an_existing_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("notes.txt"), "mine").expect("write");

    let out = init(&dir, &["--validators", "1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    let out = init(&dir, &["--validators", "1", "--force"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("not a testnet directory"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).expect("kept"),
        "mine"
    );

    let fresh = tmp.path().join("fresh");
    init_ok(&fresh, &["--validators", "1"]);
    let out = init(&fresh, &["--validators", "1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a second init is refused: {out:?}"
    );
    init_ok(&fresh, &["--validators", "2", "--force"]);
    assert!(fresh.join("node1/config/config.toml").is_file());
}

#[test]
fn start_and_status_explain_a_missing_engine_or_network() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    init_ok(&dir, &["--validators", "1"]);
    let out = testnet()
        .args(["start", "--engine", "/nonexistent/engine"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("--engine /nonexistent/engine: no such file"),
        "{out:?}"
    );

    let out = status(&tmp.path().join("nothing"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("testnet.json"), "{out:?}");
}

#[test]
fn one_validator_makes_blocks_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    let base = base_port(1);
    init_ok(
        &dir,
        &["--validators", "1", "--base-port", &base.to_string()],
    );
    let mut start = Start::spawn(&dir, &[]);
    let engine = start.pid("node0", "engine");
    let rpc = base + 7;
    wait_until("node0 at height 2", Duration::from_secs(60), || {
        height(rpc).is_some_and(|h| h >= 2)
    });

    let out = status(&dir);
    assert!(out.status.success(), "{out:?}");
    let report = text(&out.stdout);
    let row = report
        .lines()
        .find(|l| l.starts_with("node0"))
        .expect("a row for node0");
    let shown: u64 = row
        .split_whitespace()
        .nth(1)
        .and_then(|h| h.parse().ok())
        .expect("a height");
    assert!(shown >= 2, "{report}");
    assert!(row.contains("reachable"), "{report}");
    assert!(
        report.contains("agreement: 1 node(s) have block"),
        "{report}"
    );

    // The periodic status line (stdout is not a terminal) shows heights.
    start.wait_line("showing node0 at a height >= 1", |l| {
        l.contains("height: node0 ")
            && l.rsplit("node0 ")
                .next()
                .and_then(|h| h.split_whitespace().next())
                .and_then(|h| h.parse::<u64>().ok())
                .is_some_and(|h| h >= 1)
    });

    assert!(alive(engine));
    assert_eq!(start.terminate(), 0, "{}", start.output());
    assert!(!group_alive(engine), "the engine stopped with testnet");
    assert!(
        start.output().contains("all nodes stopped"),
        "{}",
        start.output()
    );
    let log = std::fs::read_to_string(dir.join("node0/engine.log")).expect("engine.log");
    assert!(
        log.contains("committed block"),
        "the node logged to its engine.log"
    );
}

#[test]
fn a_dead_node_is_reported_and_the_others_keep_running() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    let base = base_port(4);
    init_ok(
        &dir,
        &["--validators", "4", "--base-port", &base.to_string()],
    );
    let mut start = Start::spawn(&dir, &["--grace", "5"]);
    let pids: Vec<u32> = (0..4)
        .map(|i| start.pid(&format!("node{i}"), "engine"))
        .collect();
    let rpc = |i: u16| base + 10 * i + 7;
    for i in 0..4 {
        wait_until(
            &format!("node{i} serves RPC"),
            Duration::from_secs(60),
            || height(rpc(i)).is_some(),
        );
    }
    let out = status(&dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout).matches(" reachable").count(),
        4,
        "{}",
        text(&out.stdout)
    );

    signal(pids[1], "KILL");
    let report = start.wait_line("reporting node1's death", |l| {
        l.starts_with(&format!("node1 engine (pid {}) exited", pids[1]))
    });
    assert!(report.contains("signal: 9"), "{report}");
    let log = std::fs::read_to_string(dir.join("node1/engine.log")).expect("engine.log");
    let last = log
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .expect("a log line");
    let out = start.output();
    assert!(
        out.contains(&format!("  | {last}")),
        "the report shows the end of node1's log ({last:?}):\n{out}"
    );
    start.wait_line("marking node1 dead", |l| l.contains("node1 dead"));
    // The others keep running, serving and (3 of 4 validators) committing.
    for i in [0, 2, 3] {
        assert!(alive(pids[i as usize]), "node{i} still runs");
        assert!(height(rpc(i)).is_some(), "node{i} still serves RPC");
    }
    let h = height(rpc(0)).unwrap_or(0);
    wait_until("the three left commit", Duration::from_secs(60), || {
        [0, 2, 3]
            .iter()
            .all(|&i| height(rpc(i)).unwrap_or(0) >= h + 2)
    });
    let out = status(&dir);
    let table = text(&out.stdout);
    let node1 = table
        .lines()
        .find(|l| l.starts_with("node1"))
        .expect("node1 row");
    assert!(node1.contains("unreachable"), "{table}");
    assert_eq!(table.matches(" reachable").count(), 3, "{table}");

    assert_eq!(start.terminate(), 1, "a node died: {}", start.output());
    assert!(
        pids.iter().all(|p| !group_alive(*p)),
        "every engine stopped"
    );
    assert!(
        start
            .output()
            .contains("exited while running: node1 engine"),
        "{}",
        start.output()
    );
}

#[test]
fn an_external_app_runs_beside_each_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    let base = base_port(1);
    // A compound command: the app runs under the shell, not as `start`'s
    // direct child, and must still be stopped.
    let app = format!(
        "cd {{home}} && {} --addr tcp://127.0.0.1:{{port}}",
        kvstore_binary().display()
    );
    init_ok(
        &dir,
        &[
            "--validators",
            "1",
            "--base-port",
            &base.to_string(),
            "--app",
            &app,
        ],
    );
    let config = Config::load(&dir.join("node0/config/config.toml")).expect("config");
    assert_eq!(config.proxy_app, format!("tcp://127.0.0.1:{}", base + 8));

    let mut start = Start::spawn(&dir, &[]);
    let app_pid = start.pid("node0", "app");
    let engine = start.pid("node0", "engine");
    wait_until("node0 at height 2", Duration::from_secs(60), || {
        height(base + 7).is_some_and(|h| h >= 2)
    });
    assert!(alive(app_pid) && alive(engine));
    assert_eq!(start.terminate(), 0, "{}", start.output());
    assert!(
        !group_alive(app_pid) && !group_alive(engine),
        "the app (and what its shell started) and the engine stopped"
    );
    assert!(dir.join("node0/app.log").is_file());
}
