//! The Rust client against the Python kvstore (`examples/kvstore-py`), a
//! separate process speaking the socket protocol with its own protobuf
//! codec: one height of a chain, pipelining, TCP and Unix sockets, garbage
//! on one connection, and the same requests answered identically by the
//! Python app and the Rust kvstore.
//!
//! Needs `python3` (3.11 or newer) on `PATH`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use abci::proto::{
    request, response, Misbehavior, MisbehaviorType, Request, RequestCheckTx, RequestEcho,
    RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, RequestQuery, Response, Validator, ValidatorUpdate,
};
use abci::{Addr, Client, Server, ServerConfig};
use base64::Engine as _;
use kvstore::KvStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The Python application's entry point.
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/kvstore-py/kvstore.py"
);
/// How long the app may take to say it is listening.
const STARTUP: Duration = Duration::from_secs(5);

/// The Python kvstore running as a child process; killed when dropped,
/// including when a test fails (its stderr is then printed).
struct PythonApp {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
    _dir: Option<tempfile::TempDir>,
}

impl PythonApp {
    /// Starts the app on a free TCP port of 127.0.0.1.
    fn tcp() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        Self::start(format!("tcp://127.0.0.1:{port}"), None)
    }

    /// Starts the app on a Unix socket in a fresh temporary directory.
    fn unix() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = format!("unix://{}", dir.path().join("app.sock").display());
        Self::start(addr, Some(dir))
    }

    fn start(addr: String, dir: Option<tempfile::TempDir>) -> Self {
        let mut child = match Command::new("python3")
            .arg(SCRIPT)
            .arg("--addr")
            .arg(&addr)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "`python3` is not on PATH: this test runs the Python kvstore example \
                 ({SCRIPT}) and needs Python 3.11 or newer installed"
            ),
            Err(error) => panic!("cannot start python3 {SCRIPT}: {error}"),
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        // The guard exists from here on, so any panic below kills the child.
        let app = Self {
            child,
            addr,
            stderr: Arc::default(),
            _dir: dir,
        };

        let stderr = app.stderr.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr_pipe);
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut chunk) {
                let text = String::from_utf8_lossy(&chunk[..n]);
                stderr
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&text);
            }
        });
        let (lines, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        match listening.recv_timeout(STARTUP) {
            Ok(line) => assert!(
                line.contains("listening on") && line.ends_with(&app.addr),
                "unexpected first line from the Python app: {line:?}"
            ),
            Err(error) => panic!(
                "the Python app did not report listening on {} within {STARTUP:?} ({error})",
                app.addr
            ),
        }
        app
    }

    async fn connect(&self) -> Client {
        Client::connect(&self.addr)
            .await
            .expect("connect to the Python app")
    }

    /// `host:port` of a TCP app.
    fn host_port(&self) -> &str {
        self.addr.strip_prefix("tcp://").expect("a TCP app")
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let stderr = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "--- stderr of the Python kvstore ({}) ---\n{stderr}",
                self.addr
            );
        }
    }
}

fn tx(s: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(s.as_bytes())
}

fn query(key: &str) -> RequestQuery {
    RequestQuery {
        data: tx(key),
        ..Default::default()
    }
}

fn ed25519_key(seed: u8) -> tendermint_proto::v0_38::crypto::PublicKey {
    use tendermint_proto::v0_38::crypto::{public_key, PublicKey};
    PublicKey {
        sum: Some(public_key::Sum::Ed25519(vec![seed; 32])),
    }
}

fn validator_tx(seed: u8, power: i64) -> String {
    let key = base64::engine::general_purpose::STANDARD.encode([seed; 32]);
    format!("val=ed25519!{key}!{power}")
}

/// One height of a chain as the engine drives it, with the Rust client.
async fn whole_flow(app: &PythonApp) {
    let client = app.connect().await;

    assert_eq!(client.echo("hello").await.expect("echo").message, "hello");

    let info = client.info(RequestInfo::default()).await.expect("info");
    assert_eq!(info.last_block_height, 0);
    assert_eq!(info.version, "2.0.0");
    assert_eq!(info.app_version, 1);
    assert_eq!(&info.last_block_app_hash[..], &[0; 8]);

    let init = client
        .init_chain(RequestInitChain {
            chain_id: "py-chain".into(),
            validators: vec![ValidatorUpdate {
                pub_key: Some(ed25519_key(1)),
                power: 10,
            }],
            initial_height: 1,
            ..Default::default()
        })
        .await
        .expect("init_chain");
    assert_eq!(&init.app_hash[..], &[0; 8]);

    let valid = client
        .check_tx(RequestCheckTx {
            tx: tx("a=1"),
            ..Default::default()
        })
        .await
        .expect("check_tx");
    assert_eq!((valid.code, valid.gas_wanted), (kvstore::CODE_TYPE_OK, 1));
    let invalid = client
        .check_tx(RequestCheckTx {
            tx: tx("no separator"),
            ..Default::default()
        })
        .await
        .expect("check_tx");
    assert_eq!(invalid.code, kvstore::CODE_TYPE_INVALID_TX_FORMAT);
    assert!(!invalid.log.is_empty());

    let prepared = client
        .prepare_proposal(RequestPrepareProposal {
            max_tx_bytes: 1 << 20,
            txs: vec![tx("a=1"), tx("b:2"), tx("malformed"), tx("")],
            height: 1,
            ..Default::default()
        })
        .await
        .expect("prepare_proposal");
    assert_eq!(prepared.txs, vec![tx("a=1"), tx("b=2")]);

    let processed = client
        .process_proposal(RequestProcessProposal {
            txs: prepared.txs.clone(),
            height: 1,
            ..Default::default()
        })
        .await
        .expect("process_proposal");
    assert_eq!(processed.status, 1, "ACCEPT");
    let rejected = client
        .process_proposal(RequestProcessProposal {
            txs: vec![tx("no separator")],
            height: 1,
            ..Default::default()
        })
        .await
        .expect("process_proposal");
    assert_eq!(rejected.status, 2, "REJECT");

    let finalized = client
        .finalize_block(RequestFinalizeBlock {
            txs: prepared.txs,
            height: 1,
            ..Default::default()
        })
        .await
        .expect("finalize_block");
    assert_eq!(finalized.tx_results.len(), 2);
    assert!(finalized.tx_results.iter().all(|r| r.code == 0));
    let events = &finalized.tx_results[0].events;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].r#type, "app");
    assert_eq!(
        (
            &*events[0].attributes[1].key,
            &*events[0].attributes[1].value
        ),
        ("key", "a")
    );
    assert_eq!(events[1].attributes[1].value, "1");
    assert_eq!(&finalized.app_hash[..], &kvstore::app_hash(2)[..]);

    // Writes become visible at Commit.
    let before = client.query(query("a")).await.expect("query");
    assert_eq!(
        (before.value.is_empty(), &*before.log),
        (true, "does not exist")
    );
    client.commit().await.expect("commit");

    let a = client.query(query("a")).await.expect("query");
    assert_eq!((a.code, &a.value[..], &*a.log), (0, &b"1"[..], "exists"));
    assert_eq!(a.height, 1);
    let b = client.query(query("b")).await.expect("query");
    assert_eq!(&b.value[..], b"2");
    let missing = client.query(query("zzz")).await.expect("query");
    assert_eq!((missing.code, &*missing.log), (0, "does not exist"));

    let info = client.info(RequestInfo::default()).await.expect("info");
    assert_eq!(info.last_block_height, 1);
    assert_eq!(&info.last_block_app_hash[..], &kvstore::app_hash(2)[..]);
    assert_eq!(info.data, r#"{"size":2}"#);
}

#[tokio::test]
async fn whole_flow_over_tcp() {
    let app = PythonApp::tcp();
    whole_flow(&app).await;
}

#[tokio::test]
async fn whole_flow_over_unix_socket() {
    let app = PythonApp::unix();
    whole_flow(&app).await;
}

#[tokio::test]
async fn pipelined_check_tx_is_answered_in_order() {
    let app = PythonApp::tcp();
    let mempool = app.connect().await;
    let mut pending = Vec::new();
    for i in 0..200 {
        // Even: valid; odd: malformed. Every tenth is an echo of its index.
        let value = if i % 10 == 0 {
            request::Value::Echo(RequestEcho {
                message: i.to_string(),
            })
        } else {
            let tx = if i % 2 == 0 {
                format!("k{i}=v")
            } else {
                format!("k{i}")
            };
            request::Value::CheckTx(RequestCheckTx {
                tx: tx.into_bytes().into(),
                ..Default::default()
            })
        };
        let request = Request { value: Some(value) };
        pending.push(mempool.send(request).await.expect("send"));
    }
    mempool.flush().await.expect("flush");
    for (i, response) in pending.into_iter().enumerate() {
        match response.wait().await.expect("response").value {
            Some(response::Value::Echo(echo)) => assert_eq!(echo.message, i.to_string()),
            Some(response::Value::CheckTx(checked)) => {
                assert_eq!(checked.code == 0, i % 2 == 0, "response {i}")
            }
            other => panic!("response {i}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn four_connections_are_served_concurrently() {
    let app = PythonApp::tcp();
    // A connection stuck in the middle of a frame holds only its own thread.
    let mut stalled = TcpStream::connect(app.host_port()).await.expect("connect");
    stalled.write_all(&[0x09, 0x0a]).await.expect("write");

    let (consensus, mempool, query_conn, snapshot) =
        tokio::join!(app.connect(), app.connect(), app.connect(), app.connect());
    let checked = mempool
        .check_tx(RequestCheckTx {
            tx: tx("k=v"),
            ..Default::default()
        })
        .await
        .expect("check_tx");
    assert_eq!(checked.code, 0);
    consensus
        .finalize_block(RequestFinalizeBlock {
            txs: vec![tx("k=v")],
            height: 1,
            ..Default::default()
        })
        .await
        .expect("finalize_block");
    consensus.commit().await.expect("commit");
    let (value, snapshots, info) = tokio::join!(
        query_conn.query(query("k")),
        snapshot.list_snapshots(Default::default()),
        mempool.info(RequestInfo::default()),
    );
    assert_eq!(&value.expect("query").value[..], b"v");
    assert!(snapshots.expect("list_snapshots").snapshots.is_empty());
    assert_eq!(info.expect("info").last_block_height, 1);
}

#[tokio::test]
async fn garbage_on_one_connection_does_not_stop_another() {
    let app = PythonApp::tcp();
    let good = app.connect().await;
    assert_eq!(good.echo("before").await.expect("echo").message, "before");

    // An overlong varint, a frame that is not protobuf, and a v0.34
    // BeginBlock (which gets a ResponseException): each is closed.
    for bad in [vec![0xff; 11], vec![0x05, 0xff, 0xff, 0xff, 0xff, 0xff]] {
        let mut raw = TcpStream::connect(app.host_port()).await.expect("connect");
        raw.write_all(&bad).await.expect("write");
        let mut answer = Vec::new();
        // The app closes: read_to_end ends (or the socket is reset).
        let _ = raw.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "{bad:?} got {answer:?}");
    }
    let mut raw = TcpStream::connect(app.host_port()).await.expect("connect");
    raw.write_all(&[0x02, 0x3a, 0x00]).await.expect("write");
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer).await;
    let mut reader = abci::codec::FrameReader::new(&answer[..], 1024);
    let reply: Option<Response> = reader.read().await.expect("a frame");
    match reply.and_then(|r| r.value) {
        Some(response::Value::Exception(exception)) => {
            assert!(exception.error.contains("unknown request"), "{exception:?}")
        }
        other => panic!("expected an exception, got {other:?}"),
    }

    assert_eq!(good.echo("after").await.expect("echo").message, "after");
    let fresh = app.connect().await;
    assert_eq!(fresh.echo("fresh").await.expect("echo").message, "fresh");
}

/// Sends `requests` to `client`, one call each, and collects the responses.
async fn answers(client: &Client, requests: &[request::Value]) -> Vec<Response> {
    let mut responses = Vec::new();
    for value in requests {
        let request = Request {
            value: Some(value.clone()),
        };
        responses.push(client.call(request).await.expect("call"));
    }
    responses
}

#[tokio::test]
async fn answers_exactly_as_the_rust_kvstore() {
    let python = PythonApp::tcp();
    let server = Server::bind(
        &Addr::parse("tcp://127.0.0.1:0").expect("address"),
        Arc::new(KvStore::new()),
        ServerConfig::default(),
    )
    .await
    .expect("bind");
    let rust_addr = server.local_addr().expect("local address");
    tokio::spawn(server.run());

    let key = [3u8; 32];
    let address = {
        use sha2::{Digest, Sha256};
        Sha256::digest(key)[..20].to_vec()
    };
    let check = |s: &str| {
        request::Value::CheckTx(RequestCheckTx {
            tx: tx(s),
            ..Default::default()
        })
    };
    let query_at = |path: &str, data: &[u8], prove: bool| {
        request::Value::Query(RequestQuery {
            path: path.into(),
            data: data.to_vec().into(),
            prove,
            ..Default::default()
        })
    };
    let block = vec![
        tx("a=1"),
        tx("odd=tx=here"),
        tx(&validator_tx(3, 7)),
        tx("val=broken"),
        tx("ünïcode=välue"),
    ];
    let mut requests = vec![
        request::Value::Info(RequestInfo::default()),
        request::Value::InitChain(RequestInitChain {
            validators: vec![ValidatorUpdate {
                pub_key: Some(ed25519_key(1)),
                power: 10,
            }],
            ..Default::default()
        }),
    ];
    for s in [
        "a=1",
        "a:1",
        "",
        ":a",
        "a=b=c",
        &validator_tx(3, 7),
        "val=x!1",
    ] {
        requests.push(check(s));
    }
    requests.extend([
        request::Value::PrepareProposal(RequestPrepareProposal {
            max_tx_bytes: 20,
            txs: vec![tx("x:1"), tx("bad"), tx("y=2"), tx("zzzzzzzzzzzz=3")],
            ..Default::default()
        }),
        request::Value::ProcessProposal(RequestProcessProposal {
            txs: block.clone(),
            ..Default::default()
        }),
        request::Value::FinalizeBlock(RequestFinalizeBlock {
            txs: block,
            height: 1,
            ..Default::default()
        }),
        request::Value::Commit(Default::default()),
        request::Value::FinalizeBlock(RequestFinalizeBlock {
            txs: vec![tx("b=2")],
            misbehavior: vec![Misbehavior {
                r#type: MisbehaviorType::DuplicateVote.into(),
                validator: Some(Validator {
                    address: address.clone().into(),
                    power: 7,
                }),
                height: 1,
                ..Default::default()
            }],
            height: 2,
            ..Default::default()
        }),
        request::Value::Commit(Default::default()),
        query_at("", b"a", false),
        query_at("/store", "ünïcode".as_bytes(), true),
        query_at("", b"odd=tx=here", false),
        query_at("", b"missing", false),
        query_at("/val", &key, false),
        query_at("/val", &[1; 32], false),
        query_at("/misbehavior", b"", false),
        query_at("/misbehavior", &address, false),
        request::Value::Info(RequestInfo::default()),
    ]);

    let python_client = python.connect().await;
    let rust_client = Client::connect_with(&rust_addr, Default::default())
        .await
        .expect("connect to the Rust kvstore");
    let from_python = answers(&python_client, &requests).await;
    let from_rust = answers(&rust_client, &requests).await;
    for ((request, python), rust) in requests.iter().zip(&from_python).zip(&from_rust) {
        assert_eq!(python, rust, "answers to {request:?} differ");
    }
}
