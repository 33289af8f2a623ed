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
    dir: PathBuf,
    base: u16,
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
        Net {
            _tmp: tmp,
            dir,
            base,
            nodes,
        }
    }

    /// Node `i`'s p2p port.
    fn p2p_port(&self, i: usize) -> u16 {
        self.base + 10 * i as u16
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
fn one_down_the_rest_go_on_two_down_stop_and_the_restarted_catch_up_and_vote() {
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

    // The first one back, long behind: it catches up through block sync,
    // then votes again (its signature is in later commits).
    let address = validator_address(&net.nodes[3].home);
    net.nodes[3].restart();
    let top = net.nodes[0].height();
    net.wait_all(&all(4), top, Duration::from_secs(120));
    let log3 = net.nodes[3].log();
    let synced = log3
        .lines()
        .filter(|l| l.contains("block sync: caught up, switching to consensus"))
        .filter_map(|l| {
            l.split(" synced=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert!(
        synced > 0,
        "node3 caught up through block sync:\n{}",
        tail(&log3)
    );
    let signed = |h: u64| {
        net.nodes[0]
            .get(&format!("/commit?height={h}"))
            .and_then(|c| {
                let sigs = c["signed_header"]["commit"]["signatures"]
                    .as_array()?
                    .clone();
                Some(sigs.iter().any(|s| {
                    s["validator_address"].as_str() == Some(address.as_str())
                        && s["block_id_flag"] == 2
                }))
            })
            .unwrap_or(false)
    };
    wait_until(
        "node3 signs commits again",
        Duration::from_secs(120),
        || {
            let h = net.nodes[0].height();
            h > top && signed(h - 1)
        },
    );
    net.assert_agree(
        &all(4),
        1..=net.nodes[3].height().min(net.nodes[0].height()),
    );
}

/// The validator address in `home`'s priv_validator_key.json.
fn validator_address(home: &Path) -> String {
    let text = std::fs::read_to_string(home.join("config/priv_validator_key.json"))
        .expect("priv_validator_key.json");
    let key: Value = serde_json::from_str(&text).expect("JSON");
    key["address"].as_str().expect("address").to_string()
}

#[test]
fn garbage_and_impostor_peers_are_dropped_and_the_network_goes_on() {
    use engine::p2p;
    use std::io::{Read, Write};

    let net = Net::start(4);
    net.wait_all(&all(4), 2, Duration::from_secs(120));
    let home0 = net.dir.join("node0");
    let id0 = engine_says("show-node-id", &home0);
    let genesis =
        engine::genesis::GenesisDoc::load(&home0.join("config/genesis.json")).expect("genesis");

    // Bytes that are no handshake: the connection is closed.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", net.p2p_port(0))).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let _ = raw.write_all(&garbage);
    let mut buf = [0u8; 1024];
    let closed = loop {
        match raw.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => {
                break e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut
            }
        }
    };
    assert!(closed, "node0 closes a connection that sends garbage");

    // An authenticated peer that sends a garbage consensus message is
    // disconnected, with the reason logged.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let key = engine::types::PrivateKey::from_seed([42; 32]);
    let our_id = p2p::NodeId::from_public_key(&key.public_key());
    let removed = runtime.block_on(async {
        let config = engine::config::P2pConfig {
            laddr: "tcp://127.0.0.1:0".into(),
            persistent_peers: format!("{id0}@127.0.0.1:{}", net.p2p_port(0)),
            allow_duplicate_ip: true,
            ..Default::default()
        };
        let info = p2p::node_info::NodeInfo::ours(our_id, &genesis.chain_id, "intruder", 1);
        let mut switch = p2p::switch::Switch::new(
            p2p::switch::SwitchConfig::from_config(&config).expect("config"),
            &key,
            info,
        );
        let mut inbound = switch
            .register(p2p::conn::cometbft_channels(1 << 20), 64)
            .expect("channels");
        let handle = switch.start().await.expect("started");
        let node0 = loop {
            match tokio::time::timeout(Duration::from_secs(30), inbound.recv()).await {
                Ok(Some(p2p::peer::Inbound::Peer(p2p::peer::PeerEvent::Added(info)))) => {
                    break info.id
                }
                Ok(Some(_)) => continue,
                other => panic!("node0 never connected: {other:?}"),
            }
        };
        handle
            .send(
                node0,
                p2p::STATE_CHANNEL,
                bytes::Bytes::from_static(b"\xff\xffjunk"),
            )
            .await
            .expect("sent");
        let removed = loop {
            match tokio::time::timeout(Duration::from_secs(30), inbound.recv()).await {
                Ok(Some(p2p::peer::Inbound::Peer(p2p::peer::PeerEvent::Removed(id, _)))) => {
                    break id
                }
                Ok(Some(_)) => continue,
                other => panic!("node0 kept the peer that sent junk: {other:?}"),
            }
        };
        // Reconnected (a persistent peer is redialled): votes with a bad
        // signature get the peer dropped too. Heights h+1..h+3 make sure one
        // is current or next at node0 when it arrives.
        // Our side sees the handshake succeed even while node0 refuses us
        // (banned); go on once node0 lists us as a peer.
        let listed = || {
            tokio::task::block_in_place(|| {
                net.nodes[0]
                    .get("/net_info")
                    .is_some_and(|v| v.to_string().contains(&our_id.to_string()))
            })
        };
        loop {
            match tokio::time::timeout(Duration::from_secs(60), inbound.recv()).await {
                Ok(Some(p2p::peer::Inbound::Peer(p2p::peer::PeerEvent::Added(_)))) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if listed() {
                        break;
                    }
                }
                Ok(Some(_)) => continue,
                other => panic!("node0 did not take the peer back: {other:?}"),
            }
        }
        let validators = net.nodes[0].get("/validators").expect("validators");
        let address = validators["validators"][0]["address"]
            .as_str()
            .and_then(|a| hex::decode(a).ok())
            .and_then(|a| <[u8; 20]>::try_from(a).ok())
            .expect("an address");
        let h = net.nodes[0].height();
        for height in h + 1..=h + 3 {
            let vote = engine::types::Vote {
                vote_type: engine::types::VoteType::Prevote,
                height,
                round: 0,
                block_id: None,
                timestamp: engine::types::Time::GO_ZERO,
                validator_address: engine::types::Address(address),
                validator_index: 0,
                signature: engine::types::Signature([7; 64]),
                extension: vec![],
                extension_signature: vec![],
            };
            let m = engine::gossip::message::ConsensusMessage::Vote(vote);
            let _ = handle
                .send(node0, p2p::VOTE_CHANNEL, bytes::Bytes::from(m.encode()))
                .await;
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(30), inbound.recv()).await {
                Ok(Some(p2p::peer::Inbound::Peer(p2p::peer::PeerEvent::Removed(..)))) => break,
                Ok(Some(_)) => continue,
                other => panic!("node0 kept the peer that forged votes: {other:?}"),
            }
        }
        handle.stop();
        removed
    });
    assert_eq!(removed.to_string(), id0);
    let log0 = net.nodes[0].log();
    assert!(
        log0.lines().any(|l| l.contains("peer removed")
            && l.contains(&our_id.to_string())
            && l.contains("invalid consensus message")),
        "node0 says why it dropped the peer:\n{}",
        tail(&log0)
    );

    let log0 = net.nodes[0].log();
    assert!(
        log0.lines()
            .any(|l| l.contains("peer banned for misbehaving") && l.contains(&our_id.to_string())),
        "node0 banned the peer for a while:\n{}",
        tail(&log0)
    );
    assert!(
        log0.lines().any(|l| l.contains("peer removed")
            && l.contains(&our_id.to_string())
            && l.contains("invalid signature")),
        "node0 says it dropped the forger:\n{}",
        tail(&log0)
    );

    // A node that dials node0 under another ID refuses the connection.
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("impostor-dialler");
    let out = Command::new(engine_binary())
        .args(["init", "--home"])
        .arg(&home)
        .env_remove("CMTHOME")
        .output()
        .expect("init");
    assert!(out.status.success(), "{out:?}");
    std::fs::copy(
        home0.join("config/genesis.json"),
        home.join("config/genesis.json"),
    )
    .expect("genesis");
    let wrong = "0123456789abcdef0123456789abcdef01234567";
    let rpc = base_port(1);
    let log = std::fs::File::create(home.join("engine.log")).expect("log");
    let child = Command::new(engine_binary())
        .args(["start", "--home"])
        .arg(&home)
        .args(["--rpc.laddr", &format!("tcp://127.0.0.1:{rpc}")])
        .args(["--p2p.laddr", "tcp://127.0.0.1:0"])
        .args([
            "--p2p.persistent_peers",
            &format!("{wrong}@127.0.0.1:{}", net.p2p_port(0)),
        ])
        .env_remove("CMTHOME")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("engine starts");
    let mut dialler = Node {
        home: home.clone(),
        rpc,
        child: Some(child),
    };
    wait_until(
        "the dialler refuses the wrong ID",
        Duration::from_secs(60),
        || {
            dialler.log().contains(&format!(
                "dialled {wrong} but the peer authenticated as {id0}"
            ))
        },
    );
    dialler.kill();

    // The validators never stopped.
    let h = net.nodes[0].height();
    net.wait_all(&all(4), h + 3, Duration::from_secs(60));
    net.assert_agree(&all(4), 1..=h + 3);
}
