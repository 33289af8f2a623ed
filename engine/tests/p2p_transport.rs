//! The p2p transport and switch over real loopback sockets: the encrypted
//! handshake, refusals with their reasons, and a switch that keeps its
//! persistent peers connected.

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use engine::p2p::conn::{self, ChannelDescriptor, ConnConfig};
use engine::p2p::node_info::{Incompatible, NodeInfo};
use engine::p2p::peer::{Direction, Inbound, PeerEvent, RemovalReason};
use engine::p2p::switch::{DialSchedule, Switch, SwitchConfig, SwitchHandle};
use engine::p2p::transport::{self, Connection, Transport, TransportConfig};
use engine::p2p::{NodeId, P2pError, PeerAddr, MEMPOOL_CHANNEL};
use engine::types::PrivateKey;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

const CHAIN: &str = "test-chain";
/// Generous bound for anything that should happen at once on loopback.
const SOON: Duration = Duration::from_secs(4);

fn key(seed: u8) -> PrivateKey {
    PrivateKey::from_seed([seed; 32])
}

fn id_of(key: &PrivateKey) -> NodeId {
    NodeId::from_public_key(&key.public_key())
}

fn channel() -> ChannelDescriptor {
    ChannelDescriptor {
        id: MEMPOOL_CHANNEL,
        priority: 5,
        send_queue_capacity: 16,
        recv_message_capacity: 1 << 20,
    }
}

fn transport_config() -> TransportConfig {
    TransportConfig {
        handshake_timeout: Duration::from_secs(2),
        dial_timeout: Duration::from_secs(2),
    }
}

/// A bare transport (no switch) listening on a fresh loopback port.
async fn bare(seed: u8, chain: &str) -> (Transport, TcpListener) {
    let listener = transport::listen("tcp://127.0.0.1:0").await.expect("bind");
    let k = key(seed);
    let mut info = NodeInfo::ours(id_of(&k), chain, &format!("bare{seed}"), 0);
    info.listen_addr = listener.local_addr().expect("addr").to_string();
    info.channels = vec![MEMPOOL_CHANNEL];
    let t = Transport::new(&k, info, transport_config()).expect("transport");
    (t, listener)
}

fn addr_of(id: NodeId, listener: &TcpListener) -> PeerAddr {
    PeerAddr {
        id,
        host: "127.0.0.1".into(),
        port: listener.local_addr().expect("addr").port(),
    }
}

/// Accepts one connection on `listener` and upgrades it, in the background.
fn accept_one(
    t: &Transport,
    listener: TcpListener,
) -> tokio::task::JoinHandle<(Result<Connection, P2pError>, TcpListener)> {
    let t = t.clone();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        (t.upgrade(stream, None).await, listener)
    })
}

#[tokio::test]
async fn handshake_then_200_kb_through_the_secret_connection() {
    let (ta, _la) = bare(1, CHAIN).await;
    let (tb, lb) = bare(2, CHAIN).await;
    let target = addr_of(tb.id(), &lb);
    let server = accept_one(&tb, lb);
    let mut a = ta.dial(&target).await.expect("dial");
    let mut b = server.await.expect("task").0.expect("upgrade");
    assert_eq!(a.node_info.id, tb.id());
    assert_eq!(b.node_info.id, ta.id());
    assert_eq!(a.node_info.moniker, "bare2");
    assert_eq!(
        (a.direction, b.direction),
        (Direction::Outbound, Direction::Inbound)
    );

    // 200 KB: about 200 encrypted frames of at most 1024 plaintext bytes.
    let data: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    a.stream
        .outgoing
        .send(Bytes::from(data.clone()))
        .await
        .expect("queued");
    let mut got = Vec::new();
    let mut chunks = 0;
    while got.len() < data.len() {
        let chunk = timeout(SOON, b.stream.incoming.recv())
            .await
            .expect("in time")
            .expect("open");
        assert!(!chunk.is_empty() && chunk.len() <= 1024, "{}", chunk.len());
        chunks += 1;
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, data);
    assert!(chunks >= 196, "{chunks} chunks");

    // The other direction, in several pieces.
    for piece in data.chunks(70_000) {
        b.stream
            .outgoing
            .send(Bytes::copy_from_slice(piece))
            .await
            .expect("queued");
    }
    let mut back = Vec::new();
    while back.len() < data.len() {
        let chunk = timeout(SOON, a.stream.incoming.recv())
            .await
            .expect("in time")
            .expect("open");
        back.extend_from_slice(&chunk);
    }
    assert_eq!(back, data);

    // Closing one end ends the stream at both ends (each side's reader
    // thread exits and drops its channel).
    a.stream.closer.close();
    let end = timeout(SOON, b.stream.incoming.recv())
        .await
        .expect("in time");
    assert!(end.is_none());
    let end = timeout(SOON, a.stream.incoming.recv())
        .await
        .expect("in time");
    assert!(end.is_none());
}

#[tokio::test]
async fn dialling_with_the_wrong_id_is_refused() {
    let (ta, _la) = bare(1, CHAIN).await;
    let (tb, lb) = bare(2, CHAIN).await;
    let wrong = NodeId([7; 20]);
    let target = addr_of(wrong, &lb);
    let server = accept_one(&tb, lb);
    let e = ta.dial(&target).await.err().expect("refused");
    match &e {
        P2pError::WrongPeerId { expected, actual } => {
            assert_eq!(*expected, wrong);
            assert_eq!(*actual, tb.id());
        }
        other => panic!("unexpected: {other}"),
    }
    let text = e.to_string();
    assert!(
        text.contains(&wrong.to_string()) && text.contains(&tb.id().to_string()),
        "{text}"
    );
    // The listener's side fails too: we hung up before the node info.
    assert!(server.await.expect("task").0.is_err());
}

#[tokio::test]
async fn a_peer_on_another_chain_is_refused_by_both_sides() {
    let (ta, _la) = bare(1, CHAIN).await;
    let (tb, lb) = bare(2, "other-chain").await;
    let target = addr_of(tb.id(), &lb);
    let server = accept_one(&tb, lb);
    let e = ta.dial(&target).await.err().expect("refused");
    assert!(
        matches!(&e, P2pError::Incompatible(Incompatible::Network { ours, theirs })
            if ours == CHAIN && theirs == "other-chain"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "incompatible peer: peer is on chain `other-chain`, we are on `test-chain`"
    );
    let e = server.await.expect("task").0.err().expect("refused");
    assert!(
        matches!(&e, P2pError::Incompatible(Incompatible::Network { .. })),
        "{e}"
    );
}

#[tokio::test]
async fn dialling_ourselves_is_refused() {
    let (ta, la) = bare(1, CHAIN).await;
    let target = addr_of(ta.id(), &la);
    let server = accept_one(&ta, la);
    let e = ta.dial(&target).await.err().expect("refused");
    assert!(
        matches!(e, P2pError::SelfConnection(id) if id == ta.id()),
        "{e}"
    );
    assert!(server.await.expect("task").0.is_err());
}

// ---------------------------------------------------------------- switch

fn switch_config(persistent: Vec<PeerAddr>) -> SwitchConfig {
    SwitchConfig {
        listen_addr: String::new(),
        external_address: String::new(),
        persistent_peers: persistent,
        unconditional_peer_ids: Vec::new(),
        max_num_inbound_peers: 40,
        allow_duplicate_ip: true,
        transport: transport_config(),
        dial: DialSchedule {
            interval: Duration::from_millis(200),
            jitter: Duration::from_millis(50),
            max_period: None,
        },
        conn: ConnConfig::default(),
        misbehaviour_ban: Duration::ZERO,
    }
}

async fn start_switch(
    seed: u8,
    listener: TcpListener,
    config: SwitchConfig,
) -> (SwitchHandle, mpsc::Receiver<Inbound>) {
    let k = key(seed);
    let mut switch = Switch::new(
        config,
        &k,
        NodeInfo::ours(id_of(&k), CHAIN, &format!("node{seed}"), 0),
    );
    let rx = switch.register(vec![channel()], 64).expect("register");
    let handle = switch.start_on(listener).expect("start");
    (handle, rx)
}

async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// The next reactor input, within `SOON`.
async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    timeout(SOON, rx.recv())
        .await
        .expect("an event in time")
        .expect("switch alive")
}

async fn expect_added(rx: &mut mpsc::Receiver<Inbound>, id: NodeId) {
    match next(rx).await {
        Inbound::Peer(PeerEvent::Added(p)) if p.id == id => {}
        other => panic!("expected Added({id}), got {other:?}"),
    }
}

async fn expect_removed(rx: &mut mpsc::Receiver<Inbound>, id: NodeId) -> RemovalReason {
    match next(rx).await {
        Inbound::Peer(PeerEvent::Removed(p, reason)) if p == id => reason,
        other => panic!("expected Removed({id}), got {other:?}"),
    }
}

/// Waits until `from` reaches `to` through the switches: sends numbered
/// messages until one arrives. Tolerates a connection that is replaced on
/// the way (events are skipped).
async fn exchange(
    from: &SwitchHandle,
    to_id: NodeId,
    to_rx: &mut mpsc::Receiver<Inbound>,
    tag: &str,
) {
    let deadline = tokio::time::Instant::now() + SOON;
    for n in 0.. {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{tag}: never delivered"
        );
        let msg = Bytes::from(format!("{tag}-{n}"));
        if from
            .send(to_id, MEMPOOL_CHANNEL, msg.clone())
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let wait = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(event)) = tokio::time::timeout_at(wait, to_rx.recv()).await {
            if let Inbound::Message {
                peer,
                channel,
                msg: got,
            } = event
            {
                assert_eq!((peer, channel), (from.id(), MEMPOOL_CHANNEL));
                if got == msg {
                    return;
                }
            }
        }
    }
}

/// Skips messages and additions until `id` is removed; returns why.
async fn until_removed(rx: &mut mpsc::Receiver<Inbound>, id: NodeId) -> RemovalReason {
    loop {
        match next(rx).await {
            Inbound::Peer(PeerEvent::Removed(p, reason)) if p == id => return reason,
            Inbound::Peer(PeerEvent::Removed(p, _)) => panic!("unexpected removal of {p}"),
            Inbound::Message { .. } | Inbound::Peer(PeerEvent::Added(_)) => {}
        }
    }
}

/// `stopper` disconnects `other` with `stop_peer`; both see the removal
/// (with the right reason), then messages flow both ways again.
async fn stop_and_reconnect(
    (stopper, stopper_rx): (&SwitchHandle, &mut mpsc::Receiver<Inbound>),
    (other, other_rx): (&SwitchHandle, &mut mpsc::Receiver<Inbound>),
    tag: &str,
) {
    stopper.stop_peer(other.id(), tag).expect("connected");
    // A connection replaced right after the previous reconnection may show
    // up first; the stop is the removal with our reason.
    while until_removed(stopper_rx, other.id()).await != RemovalReason::Stopped(tag.into()) {}
    let reason = until_removed(other_rx, stopper.id()).await;
    assert!(
        matches!(reason, RemovalReason::ConnectionFailed(_)),
        "{reason}"
    );
    exchange(stopper, other.id(), other_rx, tag).await;
    exchange(other, stopper.id(), stopper_rx, tag).await;
}

#[tokio::test]
async fn persistent_switches_connect_exchange_and_reconnect_after_a_stop() {
    let (la, lb) = (loopback().await, loopback().await);
    let (ida, idb) = (id_of(&key(1)), id_of(&key(2)));
    // Each lists the other; A also lists itself, which it must skip.
    let (a, mut rx_a) = start_switch(
        1,
        la,
        switch_config(vec![
            addr_of(idb, &lb),
            PeerAddr {
                id: ida,
                host: "127.0.0.1".into(),
                port: 1,
            },
        ]),
    )
    .await;
    let b_to_a = PeerAddr {
        id: ida,
        host: "127.0.0.1".into(),
        port: a.local_addr().expect("listening").port(),
    };
    let (b, mut rx_b) = start_switch(2, lb, switch_config(vec![b_to_a])).await;

    expect_added(&mut rx_a, idb).await;
    expect_added(&mut rx_b, ida).await;
    let on_a = a.peers();
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    assert!(on_a[0].persistent);
    assert_eq!(on_a[0].node_info.moniker, "node2");
    assert_eq!(on_a[0].node_info.channels, vec![MEMPOOL_CHANNEL]);
    assert_eq!(
        b.node_info().listen_addr,
        a.peers()[0].node_info.listen_addr
    );
    exchange(&a, idb, &mut rx_b, "a-to-b").await;
    exchange(&b, ida, &mut rx_a, "b-to-a").await;
    assert_eq!(a.broadcast(MEMPOOL_CHANNEL, Bytes::from_static(b"all")), 1);
    assert_eq!(
        a.broadcast(0x38, Bytes::from_static(b"nobody serves this")),
        0
    );
    let e = a
        .send(idb, 0x38, Bytes::new())
        .await
        .expect_err("not served");
    assert!(
        matches!(e, P2pError::ChannelNotServed { channel: 0x38, .. }),
        "{e}"
    );

    // Stopped from either side, the peers find each other again: at least
    // one of them dials after a removal, not only at start-up.
    stop_and_reconnect((&a, &mut rx_a), (&b, &mut rx_b), "a stops b").await;
    stop_and_reconnect((&b, &mut rx_b), (&a, &mut rx_a), "b stops a").await;
    stop_and_reconnect((&a, &mut rx_a), (&b, &mut rx_b), "a stops b again").await;
    assert_eq!(a.peers().len(), 1);
    assert_eq!(b.peers().len(), 1);
    a.stop();
    b.stop();
}

#[tokio::test]
async fn a_persistent_peer_that_sends_garbage_is_removed_and_redialled() {
    let (tp, lp) = bare(9, CHAIN).await;
    let (s, mut rx) = start_switch(
        1,
        loopback().await,
        switch_config(vec![addr_of(tp.id(), &lp)]),
    )
    .await;

    let (stream, _) = timeout(SOON, lp.accept())
        .await
        .expect("dialled")
        .expect("accept");
    let first = tp.upgrade(stream, None).await.expect("upgrade");
    assert_eq!(first.node_info.id, s.id());
    expect_added(&mut rx, tp.id()).await;
    // Not a valid packet in any framing: an unknown channel / an overlong varint.
    first
        .stream
        .outgoing
        .send(Bytes::from_static(&[0xff; 16]))
        .await
        .expect("queued");
    let reason = expect_removed(&mut rx, tp.id()).await;
    assert!(
        matches!(reason, RemovalReason::ConnectionFailed(_)),
        "{reason}"
    );

    let (stream, _) = timeout(SOON, lp.accept())
        .await
        .expect("redialled")
        .expect("accept");
    let _second = tp.upgrade(stream, None).await.expect("upgrade");
    expect_added(&mut rx, tp.id()).await;
    assert!(s.is_connected(&tp.id()));
    s.stop();
}

#[tokio::test]
async fn a_second_connection_from_a_connected_peer_is_refused_and_the_first_kept() {
    let (s, mut rx) = start_switch(1, loopback().await, switch_config(vec![])).await;
    let (tp, _lp) = bare(9, CHAIN).await;
    let target = PeerAddr {
        id: s.id(),
        host: "127.0.0.1".into(),
        port: s.local_addr().expect("listening").port(),
    };
    let first = tp.dial(&target).await.expect("dial");
    expect_added(&mut rx, tp.id()).await;
    let mut second = tp
        .dial(&target)
        .await
        .expect("upgrade completes before the switch decides");
    let end = timeout(SOON, second.stream.incoming.recv())
        .await
        .expect("closed in time");
    assert!(end.is_none(), "the duplicate is closed");

    // The first connection still works both ways.
    let (handle, mut msgs, _done) = conn::spawn(
        first.stream.incoming,
        first.stream.outgoing,
        vec![channel()],
        ConnConfig::default(),
    );
    handle
        .send(MEMPOOL_CHANNEL, Bytes::from_static(b"still here"))
        .await
        .expect("sent");
    match next(&mut rx).await {
        Inbound::Message { peer, channel, msg } => {
            assert_eq!((peer, channel), (tp.id(), MEMPOOL_CHANNEL));
            assert_eq!(&msg[..], b"still here");
        }
        other => panic!("expected the message, got {other:?}"),
    }
    s.send(tp.id(), MEMPOOL_CHANNEL, Bytes::from_static(b"reply"))
        .await
        .expect("sent");
    let got = timeout(SOON, msgs.recv())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(got, (MEMPOOL_CHANNEL, Bytes::from_static(b"reply")));
    assert_eq!(s.peers().len(), 1);

    // Stopping the switch disconnects its peers.
    s.stop();
    let end = timeout(SOON, msgs.recv()).await.expect("closed in time");
    assert!(end.is_none());
    assert_eq!(
        until_removed(&mut rx, tp.id()).await,
        RemovalReason::Shutdown
    );
}

#[tokio::test]
async fn inbound_peers_beyond_the_limit_are_refused() {
    let config = SwitchConfig {
        max_num_inbound_peers: 1,
        ..switch_config(vec![])
    };
    let (s, mut rx) = start_switch(1, loopback().await, config).await;
    let target = PeerAddr {
        id: s.id(),
        host: "127.0.0.1".into(),
        port: s.local_addr().expect("listening").port(),
    };
    let (t1, _l1) = bare(8, CHAIN).await;
    let (t2, _l2) = bare(9, CHAIN).await;
    let _kept = t1.dial(&target).await.expect("dial");
    expect_added(&mut rx, t1.id()).await;
    let mut refused = t2.dial(&target).await.expect("upgrade");
    let end = timeout(SOON, refused.stream.incoming.recv())
        .await
        .expect("closed in time");
    assert!(end.is_none());
    assert_eq!(
        s.peers().iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![t1.id()]
    );
    s.stop();
}

/// Reads until the server hangs up; false if it is still open after
/// `limit` (the test's bound, far above the handshake timeout).
fn hung_up_within(mut stream: std::net::TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_is_dropped_while_the_listener_keeps_accepting() {
    let config = SwitchConfig {
        transport: TransportConfig {
            handshake_timeout: Duration::from_millis(500),
            ..transport_config()
        },
        ..switch_config(vec![])
    };
    let (s, mut rx) = start_switch(1, loopback().await, config).await;
    let addr = s.local_addr().expect("listening");

    // A client that starts like HTTP: the first byte announces a 71-byte key
    // message that never completes, so only the timeout can end it.
    let mut slow = std::net::TcpStream::connect(addr).expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\n").expect("write");
    // A client whose key message is malformed at once.
    let mut bad = std::net::TcpStream::connect(addr).expect("connect");
    bad.write_all(&[34]).expect("write");
    bad.write_all(&[0x55; 34]).expect("write");

    // Meanwhile a real peer gets in.
    let (tp, _lp) = bare(9, CHAIN).await;
    let target = PeerAddr {
        id: s.id(),
        host: "127.0.0.1".into(),
        port: addr.port(),
    };
    let _peer = tp
        .dial(&target)
        .await
        .expect("dial while garbage is pending");
    expect_added(&mut rx, tp.id()).await;

    let slow_closed = tokio::task::spawn_blocking(move || hung_up_within(slow, SOON));
    let bad_closed = tokio::task::spawn_blocking(move || hung_up_within(bad, SOON));
    assert!(
        slow_closed.await.expect("task"),
        "slow client still connected"
    );
    assert!(
        bad_closed.await.expect("task"),
        "bad client still connected"
    );
    assert_eq!(s.peers().len(), 1);
    s.stop();
}

#[tokio::test]
async fn a_peer_stopped_for_misbehaving_is_banned_and_its_reconnection_refused() {
    let config = SwitchConfig {
        misbehaviour_ban: Duration::from_secs(600),
        ..switch_config(vec![])
    };
    let (s, mut rx) = start_switch(1, loopback().await, config).await;
    let target = PeerAddr {
        id: s.id(),
        host: "127.0.0.1".into(),
        port: s.local_addr().expect("listening").port(),
    };
    let (t, _l) = bare(8, CHAIN).await;
    let _first = t.dial(&target).await.expect("dial");
    expect_added(&mut rx, t.id()).await;
    assert_eq!(s.banned_for(&t.id()), None, "not banned before misbehaving");

    s.stop_peer(t.id(), "sent junk").expect("connected");
    assert_eq!(
        until_removed(&mut rx, t.id()).await,
        RemovalReason::Stopped("sent junk".into())
    );
    let left = s.banned_for(&t.id()).expect("banned");
    assert!(left > Duration::from_secs(500), "{left:?}");
    // It comes back at once: the handshake completes, then the switch
    // refuses it and closes the connection.
    let mut again = t.dial(&target).await.expect("upgrade");
    let end = timeout(SOON, again.stream.incoming.recv())
        .await
        .expect("closed in time");
    assert!(end.is_none(), "a banned peer is not admitted");
    assert!(!s.is_connected(&t.id()));
    // Others are unaffected.
    let (other, _l2) = bare(9, CHAIN).await;
    let _ok = other.dial(&target).await.expect("dial");
    expect_added(&mut rx, other.id()).await;
    s.stop();
}
