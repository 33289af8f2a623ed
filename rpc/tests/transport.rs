//! The connection layer over real sockets: raw (unescaped) characters in
//! URI targets as Go's net/http accepts them, pipelining, connection limits,
//! timeouts and header limits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc::backend::{AbciInfo, TxCommitted, TxResult};
use rpc::backend::{AbciQuery, AbciQueryRequest, BlockResult, SignedHeader, Status, ValidatorsAt};
use rpc::{Backend, BoxFuture, RpcConfig, RpcError, RpcResult};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Echoes what it is given, so a test can see the exact bytes that reached
/// the node; records every transaction.
#[derive(Default)]
struct EchoBackend {
    txs: Mutex<Vec<Vec<u8>>>,
}

fn unused<T>() -> BoxFuture<'static, RpcResult<T>> {
    Box::pin(async { Err(RpcError::internal("not used by these tests")) })
}

impl Backend for EchoBackend {
    fn health(&self) -> BoxFuture<'_, RpcResult<()>> {
        Box::pin(async { Ok(()) })
    }
    fn status(&self) -> BoxFuture<'_, RpcResult<Status>> {
        unused()
    }
    fn consensus_state(&self) -> BoxFuture<'_, RpcResult<rpc::backend::ConsensusState>> {
        unused()
    }
    fn net_info(&self) -> BoxFuture<'_, RpcResult<rpc::backend::NetInfo>> {
        unused()
    }
    fn block(&self, _: Option<u64>) -> BoxFuture<'_, RpcResult<BlockResult>> {
        unused()
    }
    fn commit(&self, _: Option<u64>) -> BoxFuture<'_, RpcResult<SignedHeader>> {
        unused()
    }
    fn validators(&self, _: Option<u64>) -> BoxFuture<'_, RpcResult<ValidatorsAt>> {
        unused()
    }
    fn abci_info(&self) -> BoxFuture<'_, RpcResult<AbciInfo>> {
        unused()
    }
    fn abci_query(&self, q: AbciQueryRequest) -> BoxFuture<'_, RpcResult<AbciQuery>> {
        Box::pin(async move {
            // A response far larger than any socket buffer.
            let value = if q.path == "/big" {
                vec![7; BIG]
            } else {
                Vec::new()
            };
            Ok(AbciQuery {
                key: q.data,
                log: q.path,
                value,
                ..Default::default()
            })
        })
    }
    fn broadcast_tx_sync(&self, tx: Vec<u8>) -> BoxFuture<'_, RpcResult<TxResult>> {
        if let Ok(mut txs) = self.txs.lock() {
            txs.push(tx.clone());
        }
        Box::pin(async move {
            Ok(TxResult {
                data: tx,
                ..Default::default()
            })
        })
    }
    fn broadcast_tx_commit(&self, tx: Vec<u8>) -> BoxFuture<'_, RpcResult<TxCommitted>> {
        if let Ok(mut txs) = self.txs.lock() {
            txs.push(tx.clone());
        }
        Box::pin(async move {
            Ok(TxCommitted {
                check_tx: TxResult {
                    data: tx,
                    ..Default::default()
                },
                height: 7,
                ..Default::default()
            })
        })
    }
}

const BIG: usize = 8 << 20;

struct Server {
    addr: std::net::SocketAddr,
    backend: Arc<EchoBackend>,
}

async fn start_with(config: RpcConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let backend = Arc::new(EchoBackend::default());
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    tokio::spawn(rpc::serve(listener, dyn_backend, config));
    Server { addr, backend }
}

async fn start() -> Server {
    start_with(RpcConfig::default()).await
}

/// Status code and body of one response read from `raw`.
fn split_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// Sends `raw` bytes as they are and reads until the server closes.
async fn exchange(server: &Server, raw: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    out
}

async fn get_raw(server: &Server, target: &[u8]) -> (u16, String) {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    split_response(&exchange(server, &req).await)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn raw_quotes_in_uri_work_like_escaped_ones() {
    let srv = start().await;
    let (status, raw) = get_raw(&srv, br#"/abci_query?path="/store"&data="abcd""#).await;
    let (_, escaped) = get_raw(&srv, b"/abci_query?path=%22/store%22&data=%22abcd%22").await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(json(&raw), json(&escaped));
    assert_eq!(json(&raw)["result"]["response"]["key"], "YWJjZA==");
}

#[tokio::test]
async fn raw_quotes_in_broadcast_tx_commit() {
    let srv = start().await;
    let (status, raw) = get_raw(&srv, br#"/broadcast_tx_commit?tx="k1=v1""#).await;
    let (_, escaped) = get_raw(&srv, b"/broadcast_tx_commit?tx=%22k1=v1%22").await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(json(&raw), json(&escaped));
    let txs = srv
        .backend
        .txs
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    assert_eq!(txs, vec![b"k1=v1".to_vec(), b"k1=v1".to_vec()]);
}

/// Every byte Go takes literally in a target but hyper refuses or reads
/// differently answers as its `%XX` form does; bytes hyper already takes
/// (`{ } | \ ^`) keep working.
#[tokio::test]
async fn every_byte_go_accepts_works_like_its_escape() {
    let srv = start().await;
    let cases: [(&[u8], Option<&[u8]>); 8] = [
        (b"a#b", Some(b"a#b")),
        (b"<a>", Some(b"<a>")),
        (b"`a`", Some(b"`a`")),
        // JSON string rules apply inside the quotes: `\\` is one `\`.
        (b"{a}|\\\\^", Some(b"{a}|\\^")),
        ("é€".as_bytes(), Some("é€".as_bytes())),
        (b"a\"b", None),
        (b"\xff", None),
        (b"%41", Some(b"A")),
    ];
    for (data, key) in cases {
        let mut raw = b"/abci_query?data=\"".to_vec();
        raw.extend_from_slice(data);
        raw.push(b'"');
        let escaped: String = raw
            .iter()
            .map(|&b| match b {
                b'"' | b'#' | b'<' | b'>' | b'`' | 0x80.. => format!("%{b:02X}"),
                _ => char::from(b).to_string(),
            })
            .collect();
        let (status, got) = get_raw(&srv, &raw).await;
        let (_, want) = get_raw(&srv, escaped.as_bytes()).await;
        let what = String::from_utf8_lossy(data);
        assert!(status == 200 || status == 500, "{what}: {status} {got}");
        assert_eq!(json(&got), json(&want), "{what}");
        if let Some(key) = key {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(key);
            assert_eq!(
                json(&got)["result"]["response"]["key"],
                b64.as_str(),
                "{what}"
            );
        }
    }
}

/// Reads one response (head and Content-Length body) from `stream`,
/// keeping what follows in `buf`; `None` at end of stream.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, String)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let (status, _) = split_response(&buf[..end + 4]);
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                buf.drain(..end + 4 + len);
                return Some((status, body));
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Pipelined requests in one write, with bodies (by length and chunked)
/// that contain request lines with raw quotes: targets are rewritten,
/// bodies reach the handlers byte for byte.
#[tokio::test]
async fn pipelined_requests_keep_their_bodies() {
    let srv = start().await;
    let id = r#"GET /abci_query?data=\"x\" HTTP/1.1\r\n\r\n"#;
    let json_body = format!(r#"{{"jsonrpc":"2.0","id":"{id}","method":"health"}}"#);
    let mut wire = Vec::new();
    wire.extend_from_slice(b"GET /abci_query?data=\"abcd\" HTTP/1.1\r\nHost: x\r\n\r\n");
    wire.extend_from_slice(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{json_body}",
            json_body.len()
        )
        .as_bytes(),
    );
    let (a, b) = json_body.split_at(20);
    wire.extend_from_slice(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:X}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
        .as_bytes(),
    );
    wire.extend_from_slice(
        b"\r\nGET /broadcast_tx_sync?tx=\"<k>=#v\" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    stream.write_all(&wire).await.expect("write");
    let mut buf = Vec::new();
    let mut replies = Vec::new();
    while let Some(r) = read_response(&mut stream, &mut buf).await {
        replies.push(r);
    }
    assert_eq!(replies.len(), 4, "{replies:?}");
    assert!(
        replies.iter().all(|(status, _)| *status == 200),
        "{replies:?}"
    );
    assert_eq!(json(&replies[0].1)["result"]["response"]["key"], "YWJjZA==");
    let unquoted_id = id.replace(r#"\""#, "\"").replace(r"\r\n", "\r\n");
    assert_eq!(json(&replies[1].1)["id"], unquoted_id.as_str());
    assert_eq!(json(&replies[2].1)["id"], unquoted_id.as_str());
    let txs = srv
        .backend
        .txs
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    assert_eq!(txs, vec![b"<k>=#v".to_vec()]);
}

/// Reads until the server closes the connection; `None` if it does not
/// within a minute (a generous bound: the server's timeouts here are
/// fractions of a second).
async fn until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let read = async {
        let mut chunk = [0u8; 65536];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .ok()?;
    Some(out)
}

async fn health_over(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<u16> {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    read_response(stream, buf).await.map(|(status, _)| status)
}

/// Slowloris: a client that sends nothing, one that sends half a head,
/// one that stops halfway through its body and one that idles after a
/// response are all disconnected, and meanwhile others are served.
#[tokio::test]
async fn slow_clients_are_disconnected_while_others_are_served() {
    let srv = start_with(RpcConfig {
        read_timeout: Duration::from_millis(300),
        ..RpcConfig::default()
    })
    .await;
    let mut silent = TcpStream::connect(srv.addr).await.expect("connect");
    let mut half_head = TcpStream::connect(srv.addr).await.expect("connect");
    half_head
        .write_all(b"GET /health HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let mut half_body = TcpStream::connect(srv.addr).await.expect("connect");
    half_body
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
        .await
        .expect("write");
    let mut idle = TcpStream::connect(srv.addr).await.expect("connect");
    let mut buf = Vec::new();
    assert_eq!(health_over(&mut idle, &mut buf).await, Some(200));

    let (status, _) = get_raw(&srv, b"/health").await;
    assert_eq!(status, 200);

    assert_eq!(until_closed(&mut silent).await, Some(Vec::new()));
    assert_eq!(until_closed(&mut half_head).await, Some(Vec::new()));
    let answer = until_closed(&mut half_body).await.expect("closed");
    let (status, body) = split_response(&answer);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("read timeout"), "{body}");
    assert_eq!(until_closed(&mut idle).await, Some(Vec::new()));
}

/// With max_open_connections = 2 a third client is not refused: it waits
/// and is served as soon as one of the first two goes away.
#[tokio::test]
async fn third_connection_waits_for_a_free_slot() {
    let srv = start_with(RpcConfig {
        max_open_connections: 2,
        read_timeout: Duration::from_secs(120),
        ..RpcConfig::default()
    })
    .await;
    let mut first = TcpStream::connect(srv.addr).await.expect("connect");
    let mut second = TcpStream::connect(srv.addr).await.expect("connect");
    let (mut buf1, mut buf2, mut buf3) = (Vec::new(), Vec::new(), Vec::new());
    assert_eq!(health_over(&mut first, &mut buf1).await, Some(200));
    assert_eq!(health_over(&mut second, &mut buf2).await, Some(200));

    let mut third = TcpStream::connect(srv.addr)
        .await
        .expect("connect is not refused");
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let early = tokio::time::timeout(
        Duration::from_millis(500),
        read_response(&mut third, &mut buf3),
    )
    .await;
    assert!(early.is_err(), "served beyond the limit: {early:?}");

    drop(first);
    let late = tokio::time::timeout(
        Duration::from_secs(60),
        read_response(&mut third, &mut buf3),
    )
    .await;
    assert_eq!(late.ok().flatten().map(|(s, _)| s), Some(200));
    // The second connection is still served.
    assert_eq!(health_over(&mut second, &mut buf2).await, Some(200));
}

/// A head of `size` bytes, complete when `complete`.
fn head_of(size: usize, complete: bool) -> Vec<u8> {
    let start = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ";
    let end: &[u8] = if complete { b"\r\n\r\n" } else { b"" };
    let mut head = start.to_vec();
    head.resize(size - end.len(), b'p');
    head.extend_from_slice(end);
    head
}

/// Heads up to max_header_bytes are read (1 MB by default, like Go, well
/// above hyper's own default); one that reaches it without ending is
/// refused with 431.
#[tokio::test]
async fn header_size_limit() {
    let small = start_with(RpcConfig {
        max_header_bytes: 16 * 1024,
        ..RpcConfig::default()
    })
    .await;
    let (status, _) = split_response(&exchange(&small, &head_of(12 * 1024, true)).await);
    assert_eq!(status, 200);
    let (status, _) = split_response(&exchange(&small, &head_of(16 * 1024, false)).await);
    assert_eq!(status, 431);

    let default = start().await;
    let (status, _) = split_response(&exchange(&default, &head_of(900 * 1024, true)).await);
    assert_eq!(status, 200);
    let (status, _) = split_response(&exchange(&default, &head_of(1 << 20, false)).await);
    assert_eq!(status, 431);
}

/// A client that asks for a large response and never reads it loses the
/// connection once the write timeout passes, which frees its slot.
#[tokio::test]
async fn client_that_never_reads_is_dropped() {
    let srv = start_with(RpcConfig {
        max_open_connections: 1,
        write_timeout: Duration::from_millis(300),
        ..RpcConfig::default()
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    // A small receive window, so the response cannot hide in buffers.
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stuck = socket.connect(srv.addr).await.expect("connect");
    stuck
        .write_all(b"GET /abci_query?path=\"/big\" HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");

    // Served only once the stuck client's connection is gone.
    let mut other = TcpStream::connect(srv.addr).await.expect("connect");
    let mut buf = Vec::new();
    let served = tokio::time::timeout(Duration::from_secs(60), health_over(&mut other, &mut buf))
        .await
        .ok()
        .flatten();
    assert_eq!(served, Some(200));

    let got = until_closed(&mut stuck).await.expect("closed");
    assert!(
        got.len() < BIG,
        "{} bytes: the whole response went out",
        got.len()
    );
}

/// Shutdown closes idle keep-alive connections and returns.
#[tokio::test]
async fn shutdown_closes_idle_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let backend: Arc<dyn Backend> = Arc::new(EchoBackend::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rpc::serve_with_shutdown(
        listener,
        backend,
        RpcConfig::default(),
        async move {
            let _ = rx.await;
        },
    ));
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let mut buf = Vec::new();
    assert_eq!(health_over(&mut idle, &mut buf).await, Some(200));
    let _ = tx.send(());
    let outcome = tokio::time::timeout(Duration::from_secs(60), server).await;
    assert!(matches!(outcome, Ok(Ok(Ok(())))), "{outcome:?}");
    assert_eq!(until_closed(&mut idle).await, Some(Vec::new()));
}
