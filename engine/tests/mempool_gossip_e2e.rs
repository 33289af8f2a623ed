//! Mempool gossip between real `engine` processes over real sockets: a
//! full node passes the transactions its clients submit to the validator,
//! which learns them only through the mempool channel and commits them.
//! `net_info` on each lists the other. A raw peer (the engine's p2p switch
//! in this test process) sees CometBFT's exact message bytes both ways, and
//! is dropped for a garbage message while the nodes carry on.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{engine_says, free_port, get, init_home, log, query, start_node, wait_for_height};
use engine::p2p::conn::{ChannelDescriptor, ConnConfig};
use engine::p2p::node_info::NodeInfo;
use engine::p2p::peer::{Inbound, PeerEvent, RemovalReason};
use engine::p2p::switch::{DialSchedule, Switch, SwitchConfig};
use engine::p2p::transport::TransportConfig;
use engine::p2p::{NodeId, PeerAddr, MEMPOOL_CHANNEL};
use engine::types::PrivateKey;
use serde_json::Value;
use tokio::sync::mpsc;

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Both nodes' logs, for a failure message.
fn logs(a: &Path, b: &Path) -> String {
    format!(
        "--- validator A ---\n{}\n--- full node B ---\n{}",
        log(a),
        log(b)
    )
}

/// Waits (up to a minute) until `cond` holds; panics with both logs.
fn wait(what: &str, homes: (&Path, &Path), mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within a minute\n{}",
            logs(homes.0, homes.1)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `net_info`'s result.
fn net_info(port: u16) -> Option<Value> {
    get(port, "/net_info").map(|v| v["result"].clone())
}

/// The peer with `id` in a `net_info` result.
fn peer<'a>(info: &'a Value, id: &str) -> Option<&'a Value> {
    info["peers"]
        .as_array()?
        .iter()
        .find(|p| p["node_info"]["id"] == id)
}

/// `Message{txs: Txs{txs}}` written by hand (field 1 within field 1), for
/// transactions under 128 bytes.
fn wire(txs: &[&[u8]]) -> Vec<u8> {
    let mut inner = Vec::new();
    for tx in txs {
        inner.push(0x0a);
        inner.push(u8::try_from(tx.len()).expect("short tx"));
        inner.extend_from_slice(tx);
    }
    let mut out = vec![0x0a, u8::try_from(inner.len()).expect("short batch")];
    out.extend(inner);
    out
}

/// The next event from the raw peer's switch, within a minute.
async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("an event within a minute")
        .expect("the switch runs")
}

#[test]
fn txs_submitted_to_a_full_node_are_gossiped_to_the_validator_and_committed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home_a, home_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let homes = (home_a.as_path(), home_b.as_path());
    // A and the raw peer below both connect from 127.0.0.1.
    init_home(
        &home_a,
        &[
            ("timeout_commit", "\"200ms\""),
            ("allow_duplicate_ip", "true"),
        ],
    );
    init_home(&home_b, &[("timeout_commit", "\"200ms\"")]);
    std::fs::copy(
        home_a.join("config/genesis.json"),
        home_b.join("config/genesis.json"),
    )
    .expect("A's genesis copied to B");
    let (id_a, id_b) = (
        engine_says(&home_a, &["show-node-id"]),
        engine_says(&home_b, &["show-node-id"]),
    );
    let (rpc_a, rpc_b, p2p_a) = (free_port(), free_port(), free_port());
    let _a = start_node(
        &home_a,
        rpc_a,
        &["--p2p.laddr", &format!("tcp://127.0.0.1:{p2p_a}")],
    );
    let _b = start_node(
        &home_b,
        rpc_b,
        &[
            "--p2p.persistent_peers",
            &format!("{id_a}@127.0.0.1:{p2p_a}"),
        ],
    );
    wait_for_height(rpc_a, 1, &home_a);

    // net_info: each lists the other, B as the one that dialled.
    wait("A and B list each other", homes, || {
        let (Some(a), Some(b)) = (net_info(rpc_a), net_info(rpc_b)) else {
            return false;
        };
        peer(&a, &id_b).is_some() && peer(&b, &id_a).is_some()
    });
    let (info_a, info_b) = (
        net_info(rpc_a).expect("A answers"),
        net_info(rpc_b).expect("B answers"),
    );
    assert_eq!(info_a["n_peers"], "1", "{info_a}");
    assert_eq!(info_a["listening"], true);
    let b_at_a = peer(&info_a, &id_b).expect("B listed");
    let a_at_b = peer(&info_b, &id_a).expect("A listed");
    assert_eq!(b_at_a["is_outbound"], false, "{b_at_a}");
    assert_eq!(a_at_b["is_outbound"], true, "{a_at_b}");
    assert_eq!(a_at_b["remote_ip"], "127.0.0.1");
    assert_eq!(
        a_at_b["node_info"]["listen_addr"],
        format!("127.0.0.1:{p2p_a}")
    );
    let status_a = get(rpc_a, "/status").expect("status");
    let chain_id = status_a["result"]["node_info"]["network"]
        .as_str()
        .expect("chain id")
        .to_string();
    assert_eq!(a_at_b["node_info"]["network"], chain_id.as_str());

    // Txs submitted to B only; A commits them, learnt through gossip.
    let txs: Vec<(String, String)> = (0..5)
        .map(|i| (format!("gossip{i}"), format!("v{i}")))
        .collect();
    for (k, v) in &txs {
        let r = get(rpc_b, &format!("/broadcast_tx_sync?tx=%22{k}={v}%22")).expect("B answers");
        assert_eq!(r["result"]["code"], 0, "{r}");
    }
    wait("A commits every tx submitted to B", homes, || {
        txs.iter()
            .all(|(k, v)| query(rpc_a, k).as_deref() == Some(b64(v).as_str()))
    });

    // A raw peer on A's chain, speaking only the mempool channel.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let key = PrivateKey::from_seed([42; 32]);
    let raw_id = NodeId::from_public_key(&key.public_key());
    let a_node: NodeId = id_a.parse().expect("A's id");
    let (raw, mut rx) = rt.block_on(async {
        let config = SwitchConfig {
            listen_addr: String::new(),
            external_address: String::new(),
            persistent_peers: vec![PeerAddr {
                id: a_node,
                host: "127.0.0.1".into(),
                port: p2p_a,
            }],
            unconditional_peer_ids: Vec::new(),
            max_num_inbound_peers: 1,
            allow_duplicate_ip: true,
            transport: TransportConfig {
                handshake_timeout: Duration::from_secs(10),
                dial_timeout: Duration::from_secs(10),
            },
            dial: DialSchedule {
                interval: Duration::from_millis(200),
                jitter: Duration::from_millis(50),
                max_period: None,
            },
            conn: ConnConfig::default(),
            misbehaviour_ban: Duration::ZERO,
        };
        let mut switch = Switch::new(
            config,
            &key,
            NodeInfo::ours(raw_id, &chain_id, "raw-peer", 0),
        );
        let rx = switch
            .register(
                vec![ChannelDescriptor {
                    id: MEMPOOL_CHANNEL,
                    priority: 5,
                    send_queue_capacity: 16,
                    recv_message_capacity: 1 << 20,
                }],
                64,
            )
            .expect("register");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        (switch.start_on(listener).expect("start"), rx)
    });
    rt.block_on(async {
        match next(&mut rx).await {
            Inbound::Peer(PeerEvent::Added(p)) => assert_eq!(p.id, a_node),
            other => panic!("expected A to be added, got {other:?}"),
        }
    });
    assert!(
        net_info(rpc_a).is_some_and(
            |i| peer(&i, &raw_id.to_string()).is_some_and(|p| p["is_outbound"] == false)
        ),
        "A lists the raw peer"
    );

    // A batch of two txs in hand-written CometBFT bytes: A checks and
    // commits both.
    rt.block_on(raw.send(
        a_node,
        MEMPOOL_CHANNEL,
        wire(&[b"raw1=a", b"raw2=b"]).into(),
    ))
    .expect("sent to A");
    wait("A commits the raw peer's txs", homes, || {
        query(rpc_a, "raw1").as_deref() == Some(b64("a").as_str())
            && query(rpc_a, "raw2").as_deref() == Some(b64("b").as_str())
    });

    // A tx submitted to B reaches the raw peer through A, alone in its
    // message, in exactly CometBFT's bytes. A's cursor sends in admission
    // order and wakes on each admission, so a tx it wrongly sent back
    // (raw1, raw2) would have come first.
    let r = get(rpc_b, "/broadcast_tx_sync?tx=%22relay=1%22").expect("B answers");
    assert_eq!(r["result"]["code"], 0, "{r}");
    let expected = Bytes::from(wire(&[b"relay=1"]));
    rt.block_on(async {
        loop {
            match next(&mut rx).await {
                Inbound::Message { peer, channel, msg } => {
                    assert_eq!((peer, channel), (a_node, MEMPOOL_CHANNEL));
                    assert_ne!(msg, Bytes::from(wire(&[b"raw1=a"])), "not sent back");
                    assert_ne!(msg, Bytes::from(wire(&[b"raw2=b"])), "not sent back");
                    if msg == expected {
                        break;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    });

    // Garbage on the mempool channel: A drops the raw peer and says why.
    rt.block_on(raw.send(a_node, MEMPOOL_CHANNEL, Bytes::from_static(&[0xff; 3])))
        .expect("sent to A");
    rt.block_on(async {
        loop {
            match next(&mut rx).await {
                Inbound::Peer(PeerEvent::Removed(id, reason)) => {
                    assert_eq!(id, a_node);
                    assert!(
                        matches!(reason, RemovalReason::ConnectionFailed(_)),
                        "{reason}"
                    );
                    break;
                }
                Inbound::Message { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    raw.stop();
    wait("A logs why it stopped the raw peer", homes, || {
        log(&home_a).contains("mempool message does not decode")
    });

    // A and B carry on: B stays connected and its clients' txs still
    // reach A's blocks.
    let r = get(rpc_b, "/broadcast_tx_sync?tx=%22after=garbage%22").expect("B answers");
    assert_eq!(r["result"]["code"], 0, "{r}");
    wait(
        "A commits a tx submitted to B after the garbage",
        homes,
        || query(rpc_a, "after").as_deref() == Some(b64("garbage").as_str()),
    );
    assert!(net_info(rpc_a).is_some_and(|i| peer(&i, &id_b).is_some()));
}
