//! The client and the server over real sockets: the kvstore application
//! behind TCP and Unix sockets, and hand-written misbehaving peers.

use std::sync::Arc;
use std::time::Duration;

use abci::proto::{
    request, response, Misbehavior, MisbehaviorType, Request, RequestCheckTx, RequestFinalizeBlock,
    RequestInfo, RequestInitChain, RequestPrepareProposal, RequestProcessProposal, RequestQuery,
    Response, ResponseCommit, ResponseEcho, ResponseException, Validator, ValidatorUpdate,
};
use abci::{Addr, Client, ClientConfig, CodecError, Error, Server, ServerConfig};
use base64::Engine as _;
use kvstore::KvStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts the kvstore on `addr` with `config`; returns the bound address.
async fn start_kvstore(addr: &str, config: ServerConfig) -> (Addr, Arc<KvStore>) {
    let app = Arc::new(KvStore::new());
    let server = Server::bind(&Addr::parse(addr).expect("address"), app.clone(), config)
        .await
        .expect("bind");
    let bound = server.local_addr().expect("local address");
    tokio::spawn(server.run());
    (bound, app)
}

async fn connect(addr: &Addr) -> Client {
    Client::connect_with(addr, ClientConfig::default())
        .await
        .expect("connect")
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

/// Info, InitChain, PrepareProposal, ProcessProposal, FinalizeBlock, Commit,
/// Query, Echo: one height of a chain, as the engine drives it.
async fn whole_flow(addr: &Addr) {
    let client = connect(addr).await;

    let echo = client.echo("hello").await.expect("echo");
    assert_eq!(echo.message, "hello");

    let info = client.info(RequestInfo::default()).await.expect("info");
    assert_eq!(info.last_block_height, 0);
    assert_eq!(info.version, "2.0.0");
    assert_eq!(&info.last_block_app_hash[..], &[0; 8]);

    let validator = ValidatorUpdate {
        pub_key: Some(abci_ed25519_key(1)),
        power: 10,
    };
    let init = client
        .init_chain(RequestInitChain {
            chain_id: "test-chain".into(),
            validators: vec![validator],
            initial_height: 1,
            ..Default::default()
        })
        .await
        .expect("init_chain");
    assert_eq!(&init.app_hash[..], &[0; 8]);

    let proposed = vec![tx("a=1"), tx("b:2"), tx("malformed"), tx("")];
    let prepared = client
        .prepare_proposal(RequestPrepareProposal {
            max_tx_bytes: 1 << 20,
            txs: proposed,
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
    assert_eq!(events[0].attributes[1].key, "key");
    assert_eq!(events[0].attributes[1].value, "a");
    assert_eq!(events[1].attributes[1].value, "1");
    assert_eq!(&finalized.app_hash[..], &kvstore::app_hash(2)[..]);

    // Writes become visible at Commit.
    let before = client.query(query("a")).await.expect("query");
    assert!(before.value.is_empty());
    assert_eq!(before.log, "does not exist");
    client.commit().await.expect("commit");

    let a = client.query(query("a")).await.expect("query");
    assert_eq!(
        (a.code, &a.value[..], a.log.as_str()),
        (0, &b"1"[..], "exists")
    );
    let b = client.query(query("b")).await.expect("query");
    assert_eq!(&b.value[..], b"2");
    let missing = client.query(query("zzz")).await.expect("query");
    assert_eq!(missing.code, kvstore::CODE_TYPE_OK);
    assert_eq!(missing.log, "does not exist");
    assert!(missing.value.is_empty());

    let info = client.info(RequestInfo::default()).await.expect("info");
    assert_eq!(info.last_block_height, 1);
    assert_eq!(&info.last_block_app_hash[..], &kvstore::app_hash(2)[..]);
    assert_eq!(info.data, r#"{"size":2}"#);
}

fn abci_ed25519_key(seed: u8) -> tendermint_proto::v0_38::crypto::PublicKey {
    use tendermint_proto::v0_38::crypto::{public_key, PublicKey};
    PublicKey {
        sum: Some(public_key::Sum::Ed25519(vec![seed; 32])),
    }
}

#[tokio::test]
async fn whole_flow_over_tcp() {
    let (addr, _) = start_kvstore("tcp://127.0.0.1:0", ServerConfig::default()).await;
    assert!(matches!(&addr, Addr::Tcp(a) if !a.ends_with(":0")));
    whole_flow(&addr).await;
}

#[tokio::test]
async fn whole_flow_over_unix_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kvstore.sock");
    let (addr, _) = start_kvstore(
        &format!("unix://{}", path.display()),
        ServerConfig::default(),
    )
    .await;
    whole_flow(&addr).await;
}

#[tokio::test]
async fn four_connections_share_one_app() {
    let (addr, app) = start_kvstore("127.0.0.1:0", ServerConfig::default()).await;
    let consensus = connect(&addr).await;
    let mempool = connect(&addr).await;
    let query_conn = connect(&addr).await;
    let snapshot = connect(&addr).await;

    let checked = mempool
        .check_tx(RequestCheckTx {
            tx: tx("k=v"),
            ..Default::default()
        })
        .await
        .expect("check_tx");
    assert_eq!((checked.code, checked.gas_wanted), (0, 1));
    consensus
        .finalize_block(RequestFinalizeBlock {
            txs: vec![tx("k=v")],
            height: 1,
            ..Default::default()
        })
        .await
        .expect("finalize_block");
    consensus.commit().await.expect("commit");
    let value = query_conn.query(query("k")).await.expect("query");
    assert_eq!(&value.value[..], b"v");
    let snapshots = snapshot
        .list_snapshots(Default::default())
        .await
        .expect("list_snapshots");
    assert!(snapshots.snapshots.is_empty());
    assert_eq!(app.get(b"k").as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (addr, _) = start_kvstore("tcp://127.0.0.1:0", ServerConfig::default()).await;
    let mempool = connect(&addr).await;
    let mut pending = Vec::new();
    for i in 0..1000 {
        // Even: valid; odd: malformed. Every tenth is an echo of its index.
        let request = if i % 10 == 0 {
            request::Value::Echo(abci::proto::RequestEcho {
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
        pending.push(
            mempool
                .send(Request {
                    value: Some(request),
                })
                .await
                .expect("send"),
        );
    }
    mempool.flush().await.expect("flush");
    for (i, response) in pending.into_iter().enumerate() {
        match response.wait().await.expect("response").value {
            Some(response::Value::Echo(ResponseEcho { message })) => {
                assert_eq!(message, i.to_string());
            }
            Some(response::Value::CheckTx(checked)) => {
                assert_eq!(checked.code == 0, i % 2 == 0, "response {i}");
            }
            other => panic!("response {i}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn validator_updates_and_misbehavior() {
    let (addr, app) = start_kvstore("tcp://127.0.0.1:0", ServerConfig::default()).await;
    let client = connect(&addr).await;
    let key = [9u8; 32];
    let val_tx = format!(
        "val=ed25519!{}!5",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let checked = client
        .check_tx(RequestCheckTx {
            tx: tx(&val_tx),
            ..Default::default()
        })
        .await
        .expect("check_tx");
    assert_eq!(checked.code, 0);

    let finalized = client
        .finalize_block(RequestFinalizeBlock {
            txs: vec![tx(&val_tx)],
            height: 1,
            ..Default::default()
        })
        .await
        .expect("finalize_block");
    assert_eq!(finalized.validator_updates.len(), 1);
    assert_eq!(finalized.validator_updates[0].power, 5);
    client.commit().await.expect("commit");

    let val = client
        .query(RequestQuery {
            path: "/val".into(),
            data: key.to_vec().into(),
            ..Default::default()
        })
        .await
        .expect("query");
    assert!(!val.value.is_empty());

    // The validator equivocates: reported, counted, and loses one power.
    let address = {
        use sha2::{Digest, Sha256};
        Sha256::digest(key)[..20].to_vec()
    };
    let finalized = client
        .finalize_block(RequestFinalizeBlock {
            height: 2,
            misbehavior: vec![Misbehavior {
                r#type: MisbehaviorType::DuplicateVote.into(),
                validator: Some(Validator {
                    address: address.clone().into(),
                    power: 5,
                }),
                height: 1,
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("finalize_block");
    assert_eq!(finalized.validator_updates.len(), 1);
    assert_eq!(finalized.validator_updates[0].power, 4);
    client.commit().await.expect("commit");
    let count = client
        .query(RequestQuery {
            path: "/misbehavior".into(),
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(&count.value[..], b"1");
    assert_eq!(app.misbehavior_count(), 1);
}

/// A TCP server that answers every connection with `reply` (after reading
/// the first request), then keeps the connection open.
async fn fake_app(reply: Vec<u8>) -> Addr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = Addr::Tcp(listener.local_addr().expect("address").to_string());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(&reply).await;
                // Hold the connection until the client goes away.
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

fn response_frame(value: response::Value) -> Vec<u8> {
    abci::codec::frame(&Response { value: Some(value) })
}

#[tokio::test]
async fn garbage_from_the_app_is_a_decode_error() {
    // A 5-byte frame of 0xff: not a protobuf message.
    let addr = fake_app(vec![0x05, 0xff, 0xff, 0xff, 0xff, 0xff]).await;
    let error = connect(&addr).await.echo("hi").await;
    assert!(
        matches!(error, Err(Error::Decode(CodecError::Protobuf { .. }))),
        "{error:?}"
    );

    let addr = fake_app(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()).await;
    let error = connect(&addr).await.echo("hi").await;
    assert!(
        matches!(error, Err(Error::Decode(CodecError::NotAbci(_)))),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_v034_app_is_named_as_such() {
    // What a v0.34 app sends for Echo + Flush: signed zigzag varint lengths.
    let mut reply = Vec::new();
    for frame in [
        response_frame(response::Value::Echo(ResponseEcho {
            message: "hi".into(),
        })),
        response_frame(response::Value::Flush(Default::default())),
    ] {
        reply.push(frame[0] * 2); // zigzag of a small positive length
        reply.extend_from_slice(&frame[1..]);
    }
    let addr = fake_app(reply).await;
    let error = connect(&addr).await.echo("hi").await;
    assert!(
        matches!(error, Err(Error::Decode(CodecError::LegacyFraming))),
        "{error:?}"
    );
    let message = error.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("v0.34"), "{message}");
}

#[tokio::test]
async fn a_response_of_the_wrong_kind_is_named() {
    let addr = fake_app(response_frame(response::Value::Commit(
        ResponseCommit::default(),
    )))
    .await;
    let client = connect(&addr).await;
    let error = client.echo("hi").await;
    assert!(
        matches!(
            error,
            Err(Error::UnexpectedResponse {
                expected: "echo",
                got: "commit"
            })
        ),
        "{error:?}"
    );
    // The connection is out of step: later calls fail at once.
    assert!(client.echo("again").await.is_err());
    assert!(client.error().is_some());
}

#[tokio::test]
async fn an_exception_is_reported() {
    let exception = ResponseException {
        error: "app is broken".into(),
    };
    let addr = fake_app(response_frame(response::Value::Exception(exception))).await;
    let error = connect(&addr).await.info(RequestInfo::default()).await;
    assert!(
        matches!(&error, Err(Error::Exception(m)) if m == "app is broken"),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_app_that_closes_gives_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = Addr::Tcp(listener.local_addr().expect("address").to_string());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let error = connect(&addr).await.echo("hi").await;
    assert!(
        matches!(error, Err(Error::Closed { .. } | Error::Io(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_silent_app_times_out() {
    let addr = fake_app(Vec::new()).await;
    let config = ClientConfig {
        request_timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let client = Client::connect_with(&addr, config).await.expect("connect");
    let error = client.echo("anyone?").await;
    assert!(
        matches!(
            error,
            Err(Error::Timeout {
                request: "echo",
                ..
            })
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_oversized_response_is_refused() {
    let (addr, _) = start_kvstore("tcp://127.0.0.1:0", ServerConfig::default()).await;
    let config = ClientConfig {
        max_frame_size: 1024,
        ..Default::default()
    };
    let client = Client::connect_with(&addr, config).await.expect("connect");
    assert!(client.echo("small").await.is_ok());
    let error = client.echo("x".repeat(2000)).await;
    assert!(
        matches!(
            error,
            Err(Error::Decode(CodecError::FrameTooLarge { max: 1024, .. }))
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_closes_only_the_connection_that_sent_garbage() {
    let config = ServerConfig {
        max_frame_size: 1024,
    };
    let (addr, _) = start_kvstore("tcp://127.0.0.1:0", config).await;
    let Addr::Tcp(host_port) = &addr else {
        unreachable!("bound a TCP address")
    };
    let good = connect(&addr).await;
    assert_eq!(good.echo("before").await.expect("echo").message, "before");

    // Garbage (an overlong varint), an oversized frame, an unknown request
    // kind (v0.34's BeginBlock field): each connection is closed.
    let mut oversized = Vec::new();
    prost::encoding::encode_varint(1 << 20, &mut oversized);
    for bad in [vec![0xff; 11], oversized, vec![0x02, 0x3a, 0x00]] {
        let mut raw = TcpStream::connect(host_port.as_str())
            .await
            .expect("connect");
        raw.write_all(&bad).await.expect("write");
        let mut answer = Vec::new();
        // The server closes: read_to_end ends (or the socket is reset).
        let _ = raw.read_to_end(&mut answer).await;
        if bad == [0x02, 0x3a, 0x00] {
            // CometBFT's server answers an unknown request with an exception.
            let mut reader = abci::codec::FrameReader::new(&answer[..], 1024);
            let reply: Option<Response> = reader.read().await.expect("a frame");
            assert!(matches!(
                reply.and_then(|r| r.value),
                Some(response::Value::Exception(_))
            ));
        }
    }

    // An oversized request through the real client fails that client only.
    let victim = connect(&addr).await;
    let error = victim.echo("x".repeat(2000)).await;
    assert!(
        matches!(error, Err(Error::Closed { .. } | Error::Io(_))),
        "{error:?}"
    );

    assert_eq!(good.echo("after").await.expect("echo").message, "after");
    let fresh = connect(&addr).await;
    assert_eq!(fresh.echo("fresh").await.expect("echo").message, "fresh");
}

#[tokio::test]
async fn bad_addresses_are_typed_errors() {
    let error = Client::connect("http://127.0.0.1:1").await;
    assert!(
        matches!(error, Err(Error::InvalidAddress { .. })),
        "{error:?}"
    );
}
