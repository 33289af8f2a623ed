//! Tests of the running connection: two `spawn`ed ends wired back to back
//! (through channels, and through a real loopback TCP socket), keepalive,
//! backpressure and the typed ends.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::*;

/// Generous bound for things that should happen promptly; only there so a
/// broken connection fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

struct End {
    handle: ConnHandle,
    rx: mpsc::Receiver<(u8, Bytes)>,
    task: JoinHandle<ConnError>,
}

/// Two connections whose streams feed each other directly.
fn back_to_back(channels: Vec<ChannelDescriptor>, config: ConnConfig) -> (End, End) {
    let (a_out, b_in) = mpsc::channel(8);
    let (b_out, a_in) = mpsc::channel(8);
    let (handle, rx, task) = spawn(a_in, a_out, channels.clone(), config);
    let a = End { handle, rx, task };
    let (handle, rx, task) = spawn(b_in, b_out, channels, config);
    (a, End { handle, rx, task })
}

/// The `i`th test message on channel `ch`: its index, then filler of a
/// length that varies from empty to several packets.
fn message(ch: u8, i: usize) -> Bytes {
    let mut m = format!("{ch}:{i}:").into_bytes();
    m.extend((0..(i * 397) % 3500).map(|k| (k + i) as u8));
    if i % 10 == 3 {
        m.clear();
    }
    Bytes::from(m)
}

fn one_mib() -> Bytes {
    Bytes::from(
        (0..1 << 20)
            .map(|k: u32| (k.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
}

/// What each channel carries in the exchange test.
fn plan() -> BTreeMap<u8, Vec<Bytes>> {
    let mut plan = BTreeMap::new();
    plan.insert(0x20, (0..150).map(|i| message(0x20, i)).collect());
    plan.insert(0x22, (0..300).map(|i| message(0x22, i)).collect());
    plan.insert(0x30, (0..40).map(|i| message(0x30, i)).collect());
    plan.insert(0x40, (0..60).map(|i| message(0x40, i)).collect());
    let mut data: Vec<Bytes> = (0..20).map(|i| message(0x21, i)).collect();
    data.insert(7, one_mib());
    plan.insert(0x21, data);
    plan
}

/// Sends every channel's messages from its own task (so channels compete
/// for the link) and returns when all are queued.
async fn send_all(handle: &ConnHandle, plan: &BTreeMap<u8, Vec<Bytes>>) {
    let senders: Vec<_> = plan
        .iter()
        .map(|(&ch, msgs)| {
            let handle = handle.clone();
            let msgs = msgs.clone();
            tokio::spawn(async move {
                for m in msgs {
                    handle.send(ch, m).await.expect("send");
                }
            })
        })
        .collect();
    for s in senders {
        s.await.expect("sender task");
    }
}

/// Receives until every channel got as many messages as the plan has.
async fn receive_all(
    rx: &mut mpsc::Receiver<(u8, Bytes)>,
    plan: &BTreeMap<u8, Vec<Bytes>>,
) -> BTreeMap<u8, Vec<Bytes>> {
    let total: usize = plan.values().map(Vec::len).sum();
    let mut got: BTreeMap<u8, Vec<Bytes>> = BTreeMap::new();
    for _ in 0..total {
        let (ch, data) = rx.recv().await.expect("connection alive");
        got.entry(ch).or_default().push(data);
    }
    got
}

fn assert_same(got: &BTreeMap<u8, Vec<Bytes>>, plan: &BTreeMap<u8, Vec<Bytes>>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        plan.keys().collect::<Vec<_>>()
    );
    for (ch, sent) in plan {
        let received = &got[ch];
        assert_eq!(received.len(), sent.len(), "channel {ch:#x}");
        for (i, (r, s)) in received.iter().zip(sent).enumerate() {
            assert!(
                r == s,
                "channel {ch:#x} message {i} differs ({} vs {} bytes)",
                r.len(),
                s.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_connections_exchange_messages_in_order_on_every_channel() {
    let (mut a, mut b) = back_to_back(cometbft_channels(1 << 20), ConnConfig::default());
    let plan = plan();
    // Both directions at once, every channel from its own task.
    let work = async {
        tokio::join!(
            send_all(&a.handle, &plan),
            send_all(&b.handle, &plan),
            receive_all(&mut b.rx, &plan),
            receive_all(&mut a.rx, &plan),
        )
    };
    let ((), (), at_b, at_a) = timeout(PATIENCE, work).await.expect("exchange finishes");
    assert_same(&at_b, &plan);
    assert_same(&at_a, &plan);
    assert!(!a.task.is_finished() && !b.task.is_finished());

    // Closing one end ends it with Closed and the other with PeerClosed.
    a.handle.close();
    assert_eq!(
        timeout(PATIENCE, a.task)
            .await
            .expect("in time")
            .expect("no panic"),
        ConnError::Closed
    );
    assert_eq!(
        timeout(PATIENCE, b.task)
            .await
            .expect("in time")
            .expect("no panic"),
        ConnError::PeerClosed
    );
}

/// Pumps a real TCP socket to and from a connection's two streams, in
/// plain threads, as the transport does around its blocking
/// SecretConnection.
fn pump(stream: std::net::TcpStream) -> (mpsc::Receiver<Bytes>, mpsc::Sender<Bytes>) {
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(8);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(8);
    let mut reader = stream.try_clone().expect("clone socket");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0
                || in_tx
                    .blocking_send(Bytes::copy_from_slice(&buf[..n]))
                    .is_err()
            {
                break;
            }
        }
    });
    let mut writer = stream;
    std::thread::spawn(move || {
        while let Some(chunk) = out_rx.blocking_recv() {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    (in_rx, out_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_talk_over_a_loopback_socket() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let dialed = std::net::TcpStream::connect(addr).expect("connect");
    let (accepted, _) = listener.accept().expect("accept");

    let (a_in, a_out) = pump(dialed);
    let (b_in, b_out) = pump(accepted);
    let (a, _a_rx, a_task) = spawn(
        a_in,
        a_out,
        cometbft_channels(1 << 20),
        ConnConfig::default(),
    );
    let (b, mut b_rx, b_task) = spawn(
        b_in,
        b_out,
        cometbft_channels(1 << 20),
        ConnConfig::default(),
    );

    let mut plan = BTreeMap::new();
    plan.insert(0x21, vec![one_mib(), message(0x21, 1)]);
    plan.insert(0x22, (0..100).map(|i| message(0x22, i)).collect());
    let work = async { tokio::join!(send_all(&a, &plan), receive_all(&mut b_rx, &plan)) };
    let ((), got) = timeout(PATIENCE, work).await.expect("transfer finishes");
    assert_same(&got, &plan);

    // Closing A shuts its socket for writing; B sees the end of stream.
    a.close();
    assert_eq!(
        timeout(PATIENCE, a_task)
            .await
            .expect("in time")
            .expect("no panic"),
        ConnError::Closed
    );
    assert_eq!(
        timeout(PATIENCE, b_task)
            .await
            .expect("in time")
            .expect("no panic"),
        ConnError::PeerClosed
    );
    assert_eq!(b.send(0x20, Bytes::new()).await, Err(ConnError::Closed));
}

/// Forwards chunks from `from` to `to`, counting the pings and pongs in them.
fn tap(
    mut from: mpsc::Receiver<Bytes>,
    to: mpsc::Sender<Bytes>,
    pings: Arc<AtomicUsize>,
    pongs: Arc<AtomicUsize>,
) {
    tokio::spawn(async move {
        let mut decoder = Decoder::new(&cometbft_channels(1 << 20), 1024);
        while let Some(chunk) = from.recv().await {
            for event in decoder.push(&chunk).expect("valid stream") {
                match event {
                    Event::Ping => pings.fetch_add(1, Ordering::Relaxed),
                    Event::Pong => pongs.fetch_add(1, Ordering::Relaxed),
                    Event::Message { .. } => 0,
                };
            }
            if to.send(chunk).await.is_err() {
                break;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_and_pongs_keep_an_idle_connection_alive() {
    // The pong timeout is far shorter than the idle period: without pongs
    // both ends would drop each other.
    let config = ConnConfig {
        ping_interval: Duration::from_millis(50),
        pong_timeout: Duration::from_millis(500),
        max_packet_payload: 1024,
        ..ConnConfig::default()
    };
    let (a_out, tap_a) = mpsc::channel(8);
    let (to_b, b_in) = mpsc::channel(8);
    let (b_out, tap_b) = mpsc::channel(8);
    let (to_a, a_in) = mpsc::channel(8);
    let counts: Vec<Arc<AtomicUsize>> = (0..4).map(|_| Arc::default()).collect();
    tap(tap_a, to_b, Arc::clone(&counts[0]), Arc::clone(&counts[1]));
    tap(tap_b, to_a, Arc::clone(&counts[2]), Arc::clone(&counts[3]));
    let (a, _a_rx, a_task) = spawn(a_in, a_out, cometbft_channels(1 << 20), config);
    let (_b, mut b_rx, b_task) = spawn(b_in, b_out, cometbft_channels(1 << 20), config);

    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(!a_task.is_finished(), "A ended: {:?}", a_task.await);
    assert!(!b_task.is_finished(), "B ended: {:?}", b_task.await);
    let [a_pings, a_pongs, b_pings, b_pongs] =
        [0, 1, 2, 3].map(|i| counts[i].load(Ordering::Relaxed));
    assert!(
        a_pings >= 3 && b_pings >= 3,
        "pings: A {a_pings}, B {b_pings}"
    );
    // Each side answered the other's pings.
    assert!(
        a_pongs >= 3 && b_pongs >= 3,
        "pongs: A {a_pongs}, B {b_pongs}"
    );

    // And the connection still carries messages.
    a.send(0x20, Bytes::from_static(b"still here"))
        .await
        .expect("send");
    let got = timeout(PATIENCE, b_rx.recv()).await.expect("delivered");
    assert_eq!(got, Some((0x20, Bytes::from_static(b"still here"))));
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_dropped() {
    let config = ConnConfig {
        ping_interval: Duration::from_millis(20),
        pong_timeout: Duration::from_millis(100),
        max_packet_payload: 1024,
        ..ConnConfig::default()
    };
    let (_in_tx, in_rx) = mpsc::channel(1);
    let (out_tx, mut out_rx) = mpsc::channel(64);
    let (_h, _rx, task) = spawn(in_rx, out_tx, cometbft_channels(1 << 20), config);
    let error = timeout(PATIENCE, task)
        .await
        .expect("ends")
        .expect("no panic");
    assert_eq!(error, ConnError::PongTimeout);
    // What it wrote meanwhile was pings, and nothing else.
    let mut wire = Vec::new();
    while let Some(chunk) = out_rx.recv().await {
        wire.extend_from_slice(&chunk);
    }
    assert!(!wire.is_empty());
    assert!(wire.chunks(3).all(|c| c == PING), "{wire:02x?}");
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong() {
    let (in_tx, in_rx) = mpsc::channel(1);
    let (out_tx, mut out_rx) = mpsc::channel(8);
    let (_h, _rx, task) = spawn(
        in_rx,
        out_tx,
        cometbft_channels(1 << 20),
        ConnConfig::default(),
    );
    // A ping split across two chunks.
    in_tx
        .send(Bytes::from_static(&PING[..1]))
        .await
        .expect("connection reads");
    in_tx
        .send(Bytes::from_static(&PING[1..]))
        .await
        .expect("connection reads");
    let answer = timeout(PATIENCE, out_rx.recv()).await.expect("answered");
    assert_eq!(answer.as_deref(), Some(&PONG[..]));
    assert!(!task.is_finished());
}

#[tokio::test]
async fn try_send_is_refused_while_the_queue_is_full() {
    let (_in_tx, in_rx) = mpsc::channel(1);
    let (out_tx, mut out_rx) = mpsc::channel(1);
    let chans = vec![ChannelDescriptor {
        id: 0x30,
        priority: 5,
        send_queue_capacity: 1,
        recv_message_capacity: 100,
    }];
    let (h, _rx, _task) = spawn(in_rx, out_tx, chans.clone(), ConnConfig::default());
    // Single-threaded runtime and no await since spawn: the connection has
    // not taken anything from the queue yet.
    assert!(h.try_send(0x30, Bytes::from_static(b"first")));
    assert!(!h.try_send(0x30, Bytes::from_static(b"second")));
    assert!(!h.try_send(0x99, Bytes::from_static(b"no such channel")));
    // Once the writer has taken "first", there is room again.
    let chunk = timeout(PATIENCE, out_rx.recv())
        .await
        .expect("in time")
        .expect("a chunk");
    assert_eq!(
        Decoder::new(&chans, 1024).push(&chunk).expect("decodes"),
        [Event::Message {
            channel: 0x30,
            data: Bytes::from_static(b"first")
        }]
    );
    assert!(h.try_send(0x30, Bytes::from_static(b"second")));
}

#[tokio::test]
async fn send_gives_up_when_the_queue_stays_full() {
    // Nobody reads the outgoing stream: the writer stalls inside a big
    // message, the queue fills, and a send times out.
    let (_in_tx, in_rx) = mpsc::channel(1);
    let (out_tx, _out_rx) = mpsc::channel(1);
    let (h, _rx, task) = spawn(
        in_rx,
        out_tx,
        cometbft_channels(1 << 20),
        ConnConfig::default(),
    );
    let big = Bytes::from(vec![0; 256 * 1024]);
    let mut accepted = 0;
    let error = loop {
        match h
            .send_timeout(0x38, big.clone(), Duration::from_millis(100))
            .await
        {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        // The lane being written, plus evidence's queue of 1.
        assert!(accepted <= 2, "{accepted} accepted");
    };
    assert_eq!(error, ConnError::SendTimeout(0x38));
    assert!(!task.is_finished());
    assert_eq!(
        h.send(0x77, Bytes::new()).await,
        Err(ConnError::NoSuchChannel(0x77))
    );
}

#[tokio::test]
async fn a_message_on_an_unknown_channel_ends_the_connection() {
    let (in_tx, in_rx) = mpsc::channel(4);
    let (out_tx, _out_rx) = mpsc::channel(4);
    let (h, mut rx, task) = spawn(
        in_rx,
        out_tx,
        cometbft_channels(1 << 20),
        ConnConfig::default(),
    );
    let codec = PacketCodec::new(1024);
    let mut wire = BytesMut::new();
    codec.encode_message(&mut wire, 0x20, b"hi");
    codec.encode_message(&mut wire, 0x55, b"who?");
    in_tx.send(wire.freeze()).await.expect("connection reads");
    // What came before the bad packet is delivered.
    assert_eq!(rx.recv().await, Some((0x20, Bytes::from_static(b"hi"))));
    assert_eq!(
        timeout(PATIENCE, task)
            .await
            .expect("in time")
            .expect("no panic"),
        ConnError::UnknownChannel(0x55)
    );
    assert!(in_tx.is_closed(), "incoming released");
    assert_eq!(h.send(0x20, Bytes::new()).await, Err(ConnError::Closed));
    assert!(!h.try_send(0x20, Bytes::new()));
}

#[tokio::test]
async fn oversized_and_malformed_input_end_the_connection_with_typed_errors() {
    type Check = fn(&ConnError) -> bool;
    let cases: [(&[u8], Check); 3] = [
        // uvarint(1035): one byte more than a full packet.
        (&[0x8b, 0x08], |e| {
            matches!(
                e,
                ConnError::PacketTooLarge {
                    len: 1035,
                    max: 1034
                }
            )
        }),
        (&[0x03, 0xff, 0xff, 0xff], |e| {
            matches!(e, ConnError::Decode(_))
        }),
        (&[0x00], |e| *e == ConnError::UnknownPacket),
    ];
    for (bytes, expected) in cases {
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, _out_rx) = mpsc::channel(4);
        let (_h, _rx, task) = spawn(
            in_rx,
            out_tx,
            cometbft_channels(1 << 20),
            ConnConfig::default(),
        );
        in_tx
            .send(Bytes::copy_from_slice(bytes))
            .await
            .expect("connection reads");
        let error = timeout(PATIENCE, task)
            .await
            .expect("in time")
            .expect("no panic");
        assert!(expected(&error), "{bytes:02x?} gave {error:?}");
    }

    // A 2 MiB message on a 1 MiB channel.
    let (in_tx, in_rx) = mpsc::channel(4);
    let (out_tx, _out_rx) = mpsc::channel(4);
    let (_h, _rx, task) = spawn(
        in_rx,
        out_tx,
        cometbft_channels(1 << 20),
        ConnConfig::default(),
    );
    let mut wire = BytesMut::new();
    PacketCodec::new(1024).encode_message(&mut wire, 0x22, &vec![1; 2 << 20]);
    let feeder = tokio::spawn(async move {
        for chunk in wire.freeze().chunks(4096) {
            if in_tx.send(Bytes::copy_from_slice(chunk)).await.is_err() {
                break;
            }
        }
    });
    let error = timeout(PATIENCE, task)
        .await
        .expect("in time")
        .expect("no panic");
    assert!(
        matches!(
            error,
            ConnError::MessageTooLarge {
                channel: 0x22,
                capacity: 1048576,
                ..
            }
        ),
        "{error:?}"
    );
    feeder.await.expect("feeder");
}

#[tokio::test]
async fn the_end_of_the_incoming_stream_ends_the_connection() {
    let (in_tx, in_rx) = mpsc::channel(1);
    let (out_tx, _out_rx) = mpsc::channel(1);
    let (_h, _rx, task) = spawn(
        in_rx,
        out_tx,
        cometbft_channels(1 << 20),
        ConnConfig::default(),
    );
    drop(in_tx);
    assert_eq!(
        timeout(PATIENCE, task)
            .await
            .expect("in time")
            .expect("no panic"),
        ConnError::PeerClosed
    );
}

#[tokio::test]
async fn a_gone_outgoing_stream_ends_the_connection_on_the_next_write() {
    let (_in_tx, in_rx) = mpsc::channel(1);
    let (out_tx, out_rx) = mpsc::channel(1);
    let (h, _rx, task) = spawn(
        in_rx,
        out_tx,
        cometbft_channels(1 << 20),
        ConnConfig::default(),
    );
    drop(out_rx);
    assert!(h.try_send(0x20, Bytes::from_static(b"x")));
    assert_eq!(
        timeout(PATIENCE, task)
            .await
            .expect("in time")
            .expect("no panic"),
        ConnError::WriteClosed
    );
}

#[tokio::test]
async fn dropping_the_message_receiver_ends_the_connection() {
    let (in_tx, in_rx) = mpsc::channel(1);
    let (out_tx, _out_rx) = mpsc::channel(1);
    let (_h, rx, task) = spawn(
        in_rx,
        out_tx,
        cometbft_channels(1 << 20),
        ConnConfig::default(),
    );
    drop(rx);
    let mut wire = BytesMut::new();
    PacketCodec::new(1024).encode_message(&mut wire, 0x20, b"nobody listens");
    in_tx.send(wire.freeze()).await.expect("connection reads");
    assert_eq!(
        timeout(PATIENCE, task)
            .await
            .expect("in time")
            .expect("no panic"),
        ConnError::Closed
    );
}

#[tokio::test]
async fn close_stops_both_directions() {
    let (in_tx, in_rx) = mpsc::channel(1);
    let (out_tx, mut out_rx) = mpsc::channel(1);
    let (h, _rx, task) = spawn(
        in_rx,
        out_tx,
        cometbft_channels(1 << 20),
        ConnConfig::default(),
    );
    let other = h.clone();
    other.close();
    assert!(h.is_closed());
    assert_eq!(
        timeout(PATIENCE, task)
            .await
            .expect("in time")
            .expect("no panic"),
        ConnError::Closed
    );
    assert!(in_tx.is_closed(), "incoming released");
    assert_eq!(out_rx.recv().await, None, "outgoing released");
    assert_eq!(h.send(0x20, Bytes::new()).await, Err(ConnError::Closed));
    assert!(!h.try_send(0x20, Bytes::new()));
}

#[test]
fn cometbft_channel_table() {
    let table: Vec<(u8, u32, usize, usize)> = cometbft_channels(1 << 20)
        .into_iter()
        .map(|d| {
            (
                d.id,
                d.priority,
                d.send_queue_capacity,
                d.recv_message_capacity,
            )
        })
        .collect();
    assert_eq!(
        table,
        [
            (0x30, 5, 1, (1 << 20) + 8),
            (0x40, 5, 1000, 104_857_605),
            (0x20, 6, 100, 1 << 20),
            (0x21, 10, 100, 1 << 20),
            (0x22, 7, 100, 1 << 20),
            (0x23, 1, 2, 1 << 20),
            (0x38, 6, 1, 1 << 20),
        ]
    );
}

#[test]
fn mempool_capacity_is_the_size_of_a_batch_with_the_largest_tx() {
    use tendermint_proto::v0_38::mempool::{message::Sum, Message, Txs};
    for max_tx_bytes in [0, 1, 120, 128, 16_380, 16_384, 1 << 20] {
        let batch = Message {
            sum: Some(Sum::Txs(Txs {
                txs: vec![vec![0; max_tx_bytes]],
            })),
        };
        assert_eq!(
            mempool_message_capacity(max_tx_bytes),
            batch.encoded_len(),
            "{max_tx_bytes}"
        );
    }
}

#[test]
fn descriptors_are_normalized_as_go_fills_defaults() {
    let chans = normalize(vec![
        ChannelDescriptor {
            id: 1,
            priority: 0,
            send_queue_capacity: 0,
            recv_message_capacity: 0,
        },
        ChannelDescriptor {
            id: 1,
            priority: 9,
            send_queue_capacity: 9,
            recv_message_capacity: 9,
        },
    ]);
    assert_eq!(
        chans,
        [ChannelDescriptor {
            id: 1,
            priority: 1,
            send_queue_capacity: 1,
            recv_message_capacity: 22_020_096
        }]
    );
}

#[test]
fn default_config_is_cometbfts() {
    let c = ConnConfig::default();
    assert_eq!(c.ping_interval, Duration::from_secs(60));
    assert_eq!(c.pong_timeout, Duration::from_secs(45));
    assert_eq!(c.max_packet_payload, 1024);
}

#[test]
fn a_rate_limit_lets_a_second_pass_then_holds_to_the_rate() {
    let t0 = Instant::now();
    let mut limit = RateLimit::new(1000);
    assert_eq!(
        limit.charge(600, t0),
        Duration::ZERO,
        "a burst within the bucket"
    );
    assert_eq!(limit.charge(400, t0), Duration::ZERO);
    // 500 more bytes at once: half a second owed.
    assert_eq!(limit.charge(500, t0), Duration::from_millis(500));
    // After waiting that out and another 100 ms, 100 bytes pass freely.
    let later = t0 + Duration::from_millis(600);
    assert_eq!(limit.charge(100, later), Duration::ZERO);
    // A long pause refills only up to one second's worth.
    let much_later = later + Duration::from_secs(60);
    assert_eq!(limit.charge(1000, much_later), Duration::ZERO);
    assert!(limit.charge(1, much_later) > Duration::ZERO);
    let mut off = RateLimit::new(0);
    assert_eq!(off.charge(usize::MAX, t0), Duration::ZERO, "0 never limits");
}
