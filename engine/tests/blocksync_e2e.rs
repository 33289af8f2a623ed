//! Block sync between real `engine` processes over real sockets: a full
//! node syncs a single validator's chain (plain commits below the vote
//! extensions height, extended commits above), replays its transactions
//! in its own application, keeps following it (through consensus gossip,
//! or block sync again whenever it falls behind), and catches up again
//! after kill -9. A peer that
//! sends garbage on the block sync channel is disconnected while the node
//! goes on.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    commit_tx, engine_says, free_port, get, height, init_home, log, query, start_node,
    wait_for_height, wait_until,
};
use engine::blocksync::SyncMessage;
use engine::p2p::node_info::NodeInfo;
use engine::p2p::peer::{Inbound, PeerEvent};
use engine::p2p::switch::{DialSchedule, Switch, SwitchConfig, SwitchHandle};
use engine::p2p::{conn, NodeId, PeerAddr, BLOCKSYNC_CHANNEL};
use engine::types::{Block, PrivateKey};
use tokio::sync::mpsc;

/// Vote extensions are enabled from this height of the validator's chain.
const EXTENSIONS_FROM: u64 = 40;

/// A one-validator chain: its own `engine init` home, 50 ms between
/// blocks, vote extensions from [`EXTENSIONS_FROM`].
fn validator_home(home: &Path) {
    init_home(
        home,
        &[
            ("timeout_commit", "\"50ms\""),
            ("allow_duplicate_ip", "true"),
        ],
    );
    let path = home.join("config/genesis.json");
    let mut genesis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("genesis")).expect("json");
    genesis["consensus_params"]["abci"]["vote_extensions_enable_height"] =
        EXTENSIONS_FROM.to_string().into();
    std::fs::write(&path, genesis.to_string()).expect("write genesis");
}

/// A full node's home: its own keys (not a validator), the validator's
/// genesis.
fn full_node_home(home: &Path, validator: &Path) {
    init_home(home, &[("timeout_commit", "\"50ms\"")]);
    std::fs::copy(
        validator.join("config/genesis.json"),
        home.join("config/genesis.json"),
    )
    .expect("copy genesis");
}

fn start_validator(home: &Path, rpc: u16, p2p: u16) -> common::Process {
    start_node(
        home,
        rpc,
        &["--p2p.laddr", &format!("tcp://127.0.0.1:{p2p}")],
    )
}

/// `ID@127.0.0.1:PORT` of the node at `home` listening on `p2p`.
fn peer_address(home: &Path, p2p: u16) -> String {
    format!("{}@127.0.0.1:{p2p}", engine_says(home, &["show-node-id"]))
}

fn block_hash(port: u16, h: u64) -> Option<String> {
    let r = get(port, &format!("/block?height={h}"))?;
    r["result"]["block_id"]["hash"].as_str().map(String::from)
}

fn catching_up(port: u16) -> Option<bool> {
    get(port, "/status")?["result"]["sync_info"]["catching_up"].as_bool()
}

/// Both nodes hold the same block at each height.
fn assert_same_blocks(a: u16, b: u16, heights: &[u64]) {
    for &h in heights {
        let ours = block_hash(a, h).unwrap_or_else(|| panic!("validator's block {h}"));
        assert_eq!(
            block_hash(b, h).as_deref(),
            Some(ours.as_str()),
            "block {h} differs"
        );
    }
}

#[test]
fn a_full_node_syncs_follows_the_validator_and_catches_up_after_kill_9() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a_home, b_home) = (tmp.path().join("a"), tmp.path().join("b"));
    validator_home(&a_home);
    let (a_rpc, a_p2p) = (free_port(), free_port());
    let _a = start_validator(&a_home, a_rpc, a_p2p);

    wait_for_height(a_rpc, 1, &a_home);
    // Transactions on both sides of the extensions height.
    let mut tx_heights = Vec::new();
    for i in 0..3 {
        tx_heights.push(commit_tx(a_rpc, &format!("early{i}=v{i}")).expect("committed"));
    }
    wait_for_height(a_rpc, EXTENSIONS_FROM + 5, &a_home);
    for i in 0..3 {
        tx_heights.push(commit_tx(a_rpc, &format!("late{i}=w{i}")).expect("committed"));
    }
    assert!(tx_heights[0] < EXTENSIONS_FROM && tx_heights[5] > EXTENSIONS_FROM);
    wait_for_height(a_rpc, 100, &a_home);

    full_node_home(&b_home, &a_home);
    let b_rpc = free_port();
    let peer = peer_address(&a_home, a_p2p);
    let b = start_node(&b_home, b_rpc, &["--p2p.persistent_peers", &peer]);
    wait_for_height(b_rpc, 99, &b_home);
    wait_until("B no longer catching up", &b_home, || {
        catching_up(b_rpc) == Some(false)
    });
    let mut heights = vec![1, 2, EXTENSIONS_FROM - 1, EXTENSIONS_FROM, 99];
    heights.extend(&tx_heights);
    assert_same_blocks(a_rpc, b_rpc, &heights);
    // B's own application executed the synced blocks.
    for i in 0..3 {
        for (key, value) in [
            (format!("early{i}"), format!("v{i}")),
            (format!("late{i}"), format!("w{i}")),
        ] {
            use base64::Engine as _;
            let want = base64::engine::general_purpose::STANDARD.encode(value);
            assert_eq!(query(b_rpc, &key), Some(want), "{key} on B");
        }
    }
    // B's commits for synced heights are the validator's.
    let commit = get(b_rpc, "/commit?height=50").expect("commit");
    assert_eq!(
        commit["result"]["signed_header"]["commit"]["block_id"]["hash"].as_str(),
        block_hash(a_rpc, 50).as_deref()
    );

    // A keeps going and B follows it.
    let a_now = height(a_rpc).expect("A's height");
    wait_for_height(b_rpc, a_now + 20, &b_home);
    let b_now = height(b_rpc).expect("B's height");
    assert_same_blocks(a_rpc, b_rpc, &[a_now, b_now]);

    // kill -9, A advances, B restarts and catches up again.
    b.kill();
    let a_then = wait_for_height(a_rpc, b_now + 40, &a_home);
    let _b = start_node(&b_home, b_rpc, &["--p2p.persistent_peers", &peer]);
    wait_for_height(b_rpc, a_then, &b_home);
    assert_same_blocks(a_rpc, b_rpc, &[b_now + 1, a_then]);
    wait_until("B no longer catching up after the restart", &b_home, || {
        catching_up(b_rpc) == Some(false)
    });
}

// ------------------------------------------------------------ a bad peer

/// Generous bound for a reply on loopback.
const SOON: Duration = Duration::from_secs(20);

async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(SOON, rx.recv())
        .await
        .expect("an event in time")
        .expect("switch alive")
}

/// The next block sync message from `peer`, skipping the node's own
/// status traffic unless it is what `want` accepts.
async fn next_message<T>(
    rx: &mut mpsc::Receiver<Inbound>,
    peer: NodeId,
    want: impl Fn(SyncMessage) -> Option<T>,
) -> T {
    loop {
        match next(rx).await {
            Inbound::Message { peer: p, msg, .. } if p == peer => {
                let m = SyncMessage::decode(&msg).expect("the node sends valid messages");
                if let Some(t) = want(m) {
                    return t;
                }
            }
            Inbound::Peer(PeerEvent::Removed(id, reason)) if id == peer => {
                panic!("disconnected early: {reason}")
            }
            _ => {}
        }
    }
}

/// A p2p node of our own, in this test, that dials `target`, accepts
/// connections, and speaks block sync only.
async fn prober(chain_id: &str, target: PeerAddr) -> (SwitchHandle, mpsc::Receiver<Inbound>) {
    let key = PrivateKey::from_seed([42; 32]);
    let id = NodeId::from_public_key(&key.public_key());
    let config = SwitchConfig {
        listen_addr: String::new(),
        external_address: String::new(),
        persistent_peers: vec![target],
        unconditional_peer_ids: Vec::new(),
        max_num_inbound_peers: 40,
        allow_duplicate_ip: true,
        transport: engine::p2p::transport::TransportConfig {
            handshake_timeout: Duration::from_secs(5),
            dial_timeout: Duration::from_secs(5),
        },
        dial: DialSchedule {
            interval: Duration::from_millis(200),
            jitter: Duration::from_millis(50),
            max_period: None,
        },
        conn: conn::ConnConfig::default(),
        misbehaviour_ban: Duration::ZERO,
    };
    let mut switch = Switch::new(config, &key, NodeInfo::ours(id, chain_id, "prober", 0));
    let blocksync = conn::cometbft_channels(1 << 20)
        .into_iter()
        .filter(|d| d.id == BLOCKSYNC_CHANNEL)
        .collect();
    let rx = switch.register(blocksync, 64).expect("register");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    (switch.start_on(listener).expect("start"), rx)
}

#[test]
fn a_peer_sending_garbage_on_the_block_sync_channel_is_dropped_and_the_node_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("a");
    validator_home(&home);
    let (rpc, p2p) = (free_port(), free_port());
    let _a = start_validator(&home, rpc, p2p);
    wait_for_height(rpc, 3, &home);
    let chain_id = get(rpc, "/status").expect("status")["result"]["node_info"]["network"]
        .as_str()
        .expect("network")
        .to_string();
    let target: PeerAddr = peer_address(&home, p2p).parse().expect("address");
    let a_id = target.id;

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (switch, mut rx) = prober(&chain_id, target).await;
        loop {
            if let Inbound::Peer(PeerEvent::Added(p)) = next(&mut rx).await {
                assert_eq!(p.id, a_id);
                break;
            }
        }
        let send = |m: SyncMessage| {
            let sw = switch.clone();
            async move {
                sw.send(a_id, BLOCKSYNC_CHANNEL, Bytes::from(m.into_bytes()))
                    .await
                    .expect("sent")
            }
        };

        // Served: our status question and a block, over the wire.
        send(SyncMessage::StatusRequest).await;
        let status = next_message(&mut rx, a_id, |m| match m {
            SyncMessage::StatusResponse(s) if s.height() >= 3 => Some(s),
            _ => None,
        })
        .await;
        assert_eq!(status.base(), 1);
        send(SyncMessage::BlockRequest(2)).await;
        let block = next_message(&mut rx, a_id, |m| match m {
            SyncMessage::BlockResponse(r) => Some(r),
            _ => None,
        })
        .await;
        assert_eq!(block.block.header.height, 2);
        assert!(block.ext_commit.is_none(), "extensions are off at 2");
        assert_eq!(
            Some(hex::encode_upper(block.block.hash().0)),
            block_hash(rpc, 2),
            "the validator's block 2"
        );
        send(SyncMessage::BlockRequest(1_000_000)).await;
        let none = next_message(&mut rx, a_id, |m| match m {
            SyncMessage::NoBlockResponse(h) => Some(h),
            _ => None,
        })
        .await;
        assert_eq!(none, 1_000_000);

        // Garbage: the node hangs up on us.
        switch
            .send(a_id, BLOCKSYNC_CHANNEL, Bytes::from_static(&[0xff; 16]))
            .await
            .expect("sent");
        let deadline = Instant::now() + SOON;
        loop {
            assert!(Instant::now() < deadline, "not disconnected");
            if let Inbound::Peer(PeerEvent::Removed(id, _)) = next(&mut rx).await {
                assert_eq!(id, a_id);
                break;
            }
        }
        switch.stop();
    });
    assert!(
        log(&home).contains("disconnecting a block sync peer"),
        "the node says why"
    );
    // And it goes on making blocks.
    let h = height(rpc).expect("height");
    wait_for_height(rpc, h + 5, &home);
}

#[test]
fn a_peer_serving_a_forged_block_is_dropped_and_nothing_of_it_is_applied() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a_home, b_home) = (tmp.path().join("a"), tmp.path().join("b"));
    validator_home(&a_home);
    let (a_rpc, a_p2p) = (free_port(), free_port());
    let _a = start_validator(&a_home, a_rpc, a_p2p);
    wait_for_height(a_rpc, 7, &a_home);
    let chain_id = get(a_rpc, "/status").expect("status")["result"]["node_info"]["network"]
        .as_str()
        .expect("network")
        .to_string();
    let target: PeerAddr = peer_address(&a_home, a_p2p).parse().expect("address");
    let a_id = target.id;
    full_node_home(&b_home, &a_home);
    let b_rpc = free_port();

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (switch, mut rx) = runtime.block_on(prober(&chain_id, target));
    let prober_port = switch.local_addr().expect("listening").port();
    let prober_addr = format!("{}@127.0.0.1:{prober_port}", switch.id());
    // The prober fetches the real blocks 1..=6 from the validator by block
    // sync, and forges block 2 (one more transaction, header refilled).
    let blocks: Vec<Block> = runtime.block_on(async {
        loop {
            if let Inbound::Peer(PeerEvent::Added(p)) = next(&mut rx).await {
                assert_eq!(p.id, a_id);
                break;
            }
        }
        let mut blocks = Vec::new();
        for h in 1..=6 {
            switch
                .send(
                    a_id,
                    BLOCKSYNC_CHANNEL,
                    Bytes::from(SyncMessage::BlockRequest(h).into_bytes()),
                )
                .await
                .expect("sent");
            let r = next_message(&mut rx, a_id, |m| match m {
                SyncMessage::BlockResponse(r) => Some(r),
                _ => None,
            })
            .await;
            assert_eq!(r.block.header.height, h);
            blocks.push(r.block);
        }
        blocks
    });
    let mut served = blocks.clone();
    served[1].txs.push(b"forged=1".to_vec());
    served[1].fill_header();

    // B's only peer is the prober.
    let _b = start_node(&b_home, b_rpc, &["--p2p.persistent_peers", &prober_addr]);
    let reason = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "B never hung up");
            match next(&mut rx).await {
                Inbound::Message { peer, msg, .. } if peer != a_id => {
                    let reply = match SyncMessage::decode(&msg).expect("B sends valid messages") {
                        SyncMessage::StatusRequest => SyncMessage::StatusResponse(
                            engine::blocksync::Status::new(1, 6).expect("status"),
                        ),
                        SyncMessage::BlockRequest(h) if (1..=6).contains(&h) => {
                            SyncMessage::BlockResponse(Box::new(engine::blocksync::BlockResponse {
                                block: served[h as usize - 1].clone(),
                                ext_commit: None,
                            }))
                        }
                        _ => continue,
                    };
                    let _ = switch
                        .send(peer, BLOCKSYNC_CHANNEL, Bytes::from(reply.into_bytes()))
                        .await;
                }
                Inbound::Peer(PeerEvent::Removed(peer, reason)) if peer != a_id => {
                    break reason;
                }
                _ => {}
            }
        }
    });
    switch.stop();
    drop(runtime);
    // Block 1 was proven by the forged block's (genuine) last commit and
    // applied; the forged block 2 is not proven by block 3's: B hung up
    // and applied nothing more.
    wait_until("B says why it hung up", &b_home, || {
        log(&b_home).contains("blocks 2 and 3 fail verification")
    });
    assert_eq!(height(b_rpc), Some(1), "hung up on us: {reason}");
    assert_eq!(
        block_hash(b_rpc, 1),
        Some(hex::encode_upper(blocks[0].hash().0))
    );
    assert_eq!(block_hash(b_rpc, 1), block_hash(a_rpc, 1));
    assert_eq!(catching_up(b_rpc), Some(true), "still looking for blocks");
}
