//! Networks of real `engine` processes on loopback, made by `testnet init`:
//! validators agree on every block (checked through each node's RPC), txs
//! sent to any node are committed once and readable everywhere, and the
//! network survives crashes of up to f validators.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use engine::config::Config;
use serde_json::Value;

/// One engine process of the network; killed (SIGKILL) on drop.
struct Node {
    home: PathBuf,
    rpc: u16,
    child: Option<Child>,
}

impl Node {
    fn start(home: &Path, rpc: u16) -> Node {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("engine.log"))
            .expect("log file");
        let child = Command::new(engine_binary())
            .args(["start", "--home"])
            .arg(home)
            .env_remove("CMTHOME")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("engine starts");
        Node {
            home: home.to_path_buf(),
            rpc,
            child: Some(child),
        }
    }

    /// kill -9.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        *self = Node::start(&self.home.clone(), self.rpc);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("engine.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Option<Value> {
        let addr = ([127, 0, 0, 1], self.rpc).into();
        testnet::net::rpc::get(addr, path, Duration::from_secs(15)).ok()
    }

    fn height(&self) -> u64 {
        height(self.rpc).unwrap_or(0)
    }

    /// The hash of the block at `h`, as this node's RPC reports it.
    fn block_hash(&self, h: u64) -> Option<String> {
        let v = self.get(&format!("/block?height={h}"))?;
        Some(v["block_id"]["hash"].as_str()?.to_string())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A network of `n` validators written by `testnet init` with short
/// commit timeouts, its nodes started.
struct Net {
    _tmp: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl Net {
    fn start(n: u16) -> Net {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("net");
        let base = base_port(n);
        init_ok(
            &dir,
            &[
                "--validators",
                &n.to_string(),
                "--base-port",
                &base.to_string(),
            ],
        );
        let nodes = (0..n)
            .map(|i| {
                let home = dir.join(format!("node{i}"));
                let path = home.join("config/config.toml");
                let mut config = Config::load(&path).expect("config");
                config.consensus.timeout_commit = engine::config::GoDuration::from_millis(200);
                config.save(&path).expect("saved");
                Node::start(&home, base + 10 * i + 7)
            })
            .collect();
        Net { _tmp: tmp, nodes }
    }

    /// Waits until every node in `which` has committed `h`.
    fn wait_all(&self, which: &[usize], h: u64, within: Duration) {
        let deadline = Instant::now() + within;
        for &i in which {
            while self.nodes[i].height() < h {
                assert!(
                    Instant::now() < deadline,
                    "node{i} did not reach height {h} within {within:?} (at {}); its log:\n{}",
                    self.nodes[i].height(),
                    tail(&self.nodes[i].log())
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Every node in `which` reports the same hash at each height in `hs`.
    fn assert_agree(&self, which: &[usize], hs: std::ops::RangeInclusive<u64>) {
        for h in hs {
            let hashes: Vec<Option<String>> =
                which.iter().map(|&i| self.nodes[i].block_hash(h)).collect();
            assert!(hashes[0].is_some(), "height {h} has a block");
            assert!(
                hashes.iter().all(|x| *x == hashes[0]),
                "the nodes disagree at height {h}: {hashes:?}"
            );
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

fn agree(n: u16) {
    let net = Net::start(n);
    let every = all(n as usize);
    net.wait_all(&every, 5, Duration::from_secs(120));
    net.assert_agree(&every, 1..=5);

    // A tx sent to each node is committed once and readable everywhere.
    for (i, node) in net.nodes.iter().enumerate() {
        let tx = format!("\"k{i}=v{i}\"");
        let done = node
            .get(&format!("/broadcast_tx_commit?tx={tx}"))
            .unwrap_or_else(|| panic!("node{i} answers broadcast_tx_commit"));
        let height = done["height"].as_str().unwrap_or("0");
        assert_ne!(height, "0", "committed through node{i}: {done}");
    }
    let top = net.nodes.iter().map(Node::height).max().unwrap_or(0);
    net.wait_all(&every, top, Duration::from_secs(60));
    let mut committed = 0;
    for h in 1..=top {
        let b = net.nodes[0]
            .get(&format!("/block?height={h}"))
            .expect("block");
        committed += b["block"]["data"]["txs"].as_array().map_or(0, |t| t.len());
    }
    assert_eq!(committed, n as usize, "each tx is in exactly one block");
    for node in &net.nodes {
        for i in 0..n {
            let v = node
                .get(&format!("/abci_query?data=\"k{i}\""))
                .expect("query");
            let value = v["response"]["value"].as_str().unwrap_or("");
            assert_eq!(
                base64_decode(value),
                format!("v{i}").into_bytes(),
                "k{i} on every node"
            );
        }
    }
    net.assert_agree(&every, 1..=top);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default()
}

#[test]
fn four_validators_commit_the_same_blocks() {
    agree(4);
}

#[test]
fn seven_validators_commit_the_same_blocks() {
    agree(7);
}

#[test]
fn one_of_four_down_the_rest_go_on_and_two_down_stops_without_forking() {
    let mut net = Net::start(4);
    net.wait_all(&all(4), 3, Duration::from_secs(120));

    // kill -9 one: the other three (3 of 4 = 3/4 of the power) go on.
    net.nodes[3].kill();
    let h = net.nodes[0].height();
    net.wait_all(&[0, 1, 2], h + 5, Duration::from_secs(60));
    net.assert_agree(&[0, 1, 2], 1..=h + 5);

    // Two down: 2 of 4 is not more than 2/3; progress stops.
    net.nodes[2].kill();
    std::thread::sleep(Duration::from_secs(2));
    let stuck = net.nodes[0].height().max(net.nodes[1].height());
    std::thread::sleep(Duration::from_secs(3));
    let after = net.nodes[0].height().max(net.nodes[1].height());
    assert!(
        after <= stuck + 1,
        "two of four cannot commit: {stuck} then {after}"
    );
    net.assert_agree(
        &[0, 1],
        1..=net.nodes[0].height().min(net.nodes[1].height()),
    );

    // One back: three of four again, progress resumes.
    net.nodes[2].restart();
    net.wait_all(&[0, 1, 2], after + 3, Duration::from_secs(120));
    net.assert_agree(&[0, 1, 2], 1..=after + 3);
}
