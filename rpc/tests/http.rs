//! The transport over a real socket: the server on 127.0.0.1:0, a fixed
//! in-test backend standing in for the node, and a tiny HTTP/1.1 client.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use rpc::backend::{
    AbciInfo, AbciQuery, AbciQueryRequest, BlockResult, NetInfo, NodeInfo, ProtocolVersion,
    SignedHeader, Status, SyncInfo, TxCommitted, TxResult, ValidatorInfo, ValidatorsAt,
};
use rpc::{Backend, BoxFuture, RpcConfig, RpcError, RpcResult};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Fixed answers; records the arguments it was called with.
#[derive(Default)]
struct FixedBackend {
    calls: Mutex<Vec<String>>,
}

impl FixedBackend {
    fn record(&self, call: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }
}

fn fixture_block() -> BlockResult {
    let r = fixture("block_at_height_10")["result"].clone();
    BlockResult {
        block_id: block_id(&r["block_id"]).expect("id"),
        block: Some(block(&r["block"])),
    }
}

impl Backend for FixedBackend {
    fn health(&self) -> BoxFuture<'_, RpcResult<()>> {
        Box::pin(async { Ok(()) })
    }

    fn consensus_state(&self) -> BoxFuture<'_, RpcResult<rpc::backend::ConsensusState>> {
        Box::pin(async {
            Ok(rpc::backend::ConsensusState {
                height: 7,
                round: 1,
                step: 4,
                start_time: engine_types::Time {
                    secs: 1_700_000_000,
                    nanos: 5,
                },
                proposal_block_hash: Some(engine_types::Hash([0xAB; 32])),
                locked_block_hash: None,
                valid_block_hash: None,
                proposer: Some((engine_types::Address([0x11; 20]), 2)),
                votes: vec![rpc::backend::RoundVotes {
                    round: 0,
                    prevotes: vec!["nil-Vote".into()],
                    prevotes_bit_array: "BA{1:_} 0/10 = 0.00".into(),
                    precommits: vec!["nil-Vote".into()],
                    precommits_bit_array: "BA{1:_} 0/10 = 0.00".into(),
                }],
            })
        })
    }

    fn status(&self) -> BoxFuture<'_, RpcResult<Status>> {
        Box::pin(async {
            let b = fixture_block();
            let block = b.block.expect("block");
            Ok(Status {
                node_info: NodeInfo {
                    protocol_version: ProtocolVersion {
                        p2p: 8,
                        block: 11,
                        app: 1,
                    },
                    id: "cf4a66aa29e5123abfdfbdf485da6788bb8e46d1".into(),
                    listen_addr: "tcp://0.0.0.0:26656".into(),
                    network: "dockerchain".into(),
                    version: "0.38.17".into(),
                    channels: vec![0x40, 0x20],
                    moniker: "node".into(),
                    tx_index: "on".into(),
                    rpc_address: "tcp://127.0.0.1:26657".into(),
                },
                sync_info: SyncInfo {
                    latest_block_hash: Some(b.block_id.hash),
                    latest_app_hash: block.header.app_hash.clone(),
                    latest_block_height: 10,
                    latest_block_time: block.header.time,
                    earliest_block_hash: None,
                    earliest_app_hash: Vec::new(),
                    earliest_block_height: 1,
                    earliest_block_time: block.header.time,
                    catching_up: false,
                },
                validator_info: ValidatorInfo {
                    address: block.header.proposer_address,
                    pub_key: engine_types::PublicKey([9; 32]),
                    voting_power: 10,
                },
            })
        })
    }

    fn net_info(&self) -> BoxFuture<'_, RpcResult<NetInfo>> {
        Box::pin(async {
            Ok(NetInfo {
                listening: true,
                listeners: vec!["Listener(@)".into()],
                peers: Vec::new(),
            })
        })
    }

    fn block(&self, height: Option<u64>) -> BoxFuture<'_, RpcResult<BlockResult>> {
        self.record(format!("block {height:?}"));
        Box::pin(async move {
            match height {
                Some(h) if h > 10 => Err(RpcError::internal(format!(
                    "height {h} must be less than or equal to the current blockchain height 10"
                ))),
                _ => Ok(fixture_block()),
            }
        })
    }

    fn commit(&self, height: Option<u64>) -> BoxFuture<'_, RpcResult<SignedHeader>> {
        self.record(format!("commit {height:?}"));
        Box::pin(async move {
            let r = fixture("commit_at_height_10")["result"].clone();
            Ok(SignedHeader {
                header: header(&r["signed_header"]["header"]),
                commit: commit(&r["signed_header"]["commit"]).expect("commit"),
                canonical: height.is_some(),
            })
        })
    }

    fn validators(&self, height: Option<u64>) -> BoxFuture<'_, RpcResult<ValidatorsAt>> {
        self.record(format!("validators {height:?}"));
        Box::pin(async move {
            let validators = (1..=5u8)
                .map(|i| engine_types::Validator::new(engine_types::PublicKey([i; 32]), 10))
                .collect();
            Ok(ValidatorsAt {
                block_height: height.unwrap_or(11),
                validators,
            })
        })
    }

    fn abci_info(&self) -> BoxFuture<'_, RpcResult<AbciInfo>> {
        Box::pin(async {
            Ok(AbciInfo {
                data: "{\"size\":0}".into(),
                version: "2.0.0".into(),
                app_version: 1,
                last_block_height: 10,
                last_block_app_hash: vec![0; 8],
            })
        })
    }

    fn abci_query(&self, q: AbciQueryRequest) -> BoxFuture<'_, RpcResult<AbciQuery>> {
        self.record(format!("abci_query {} {} {}", q.path, q.height, q.prove));
        Box::pin(async move {
            Ok(AbciQuery {
                log: "exists".into(),
                key: q.data,
                value: b"value".to_vec(),
                height: 10,
                ..Default::default()
            })
        })
    }

    fn broadcast_tx_sync(&self, tx: Vec<u8>) -> BoxFuture<'_, RpcResult<TxResult>> {
        Box::pin(async move {
            if tx == b"dup" {
                return Err(RpcError::TxInCache);
            }
            Ok(TxResult {
                data: b"ok".to_vec(),
                ..Default::default()
            })
        })
    }

    fn broadcast_tx_commit(&self, _tx: Vec<u8>) -> BoxFuture<'_, RpcResult<TxCommitted>> {
        Box::pin(async move {
            Ok(TxCommitted {
                check_tx: TxResult {
                    gas_wanted: 1,
                    ..Default::default()
                },
                tx_result: TxResult::default(),
                height: 11,
            })
        })
    }
}

struct Server {
    addr: std::net::SocketAddr,
    backend: Arc<FixedBackend>,
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let backend = Arc::new(FixedBackend::default());
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    tokio::spawn(rpc::serve(listener, dyn_backend, RpcConfig::default()));
    Server { addr, backend }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 exchange with `Connection: close`.
async fn request(server: &Server, method: &str, target: &str, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // The server may refuse an oversized body before reading it all.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn get(server: &Server, target: &str) -> Reply {
    request(server, "GET", target, b"").await
}

async fn post(server: &Server, body: &str) -> Reply {
    request(server, "POST", "/", body.as_bytes()).await
}

fn calls(server: &Server) -> Vec<String> {
    server
        .backend
        .calls
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn uri_and_post_answer_every_route() {
    let srv = start().await;
    for route in [
        "health",
        "status",
        "net_info",
        "block",
        "commit",
        "validators",
        "abci_info",
        "abci_query",
    ] {
        let r = get(&srv, &format!("/{route}")).await;
        assert_eq!(r.status, 200, "{route}: {}", r.body);
        let v = r.json();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], -1, "URI calls answer with id -1");
        assert!(v["result"].is_object(), "{route}: {v}");
        assert_eq!(r.header("content-type"), Some("application/json"));

        let p = post(
            &srv,
            &format!(r#"{{"jsonrpc":"2.0","id":"x-{route}","method":"{route}","params":{{}}}}"#),
        )
        .await;
        assert_eq!(p.status, 200, "{route}");
        let pv = p.json();
        assert_eq!(pv["id"], format!("x-{route}"));
        assert_eq!(pv["result"], v["result"], "{route}: POST and GET agree");
    }
    let r = get(&srv, "/broadcast_tx_sync?tx=%22abc%22").await.json();
    assert_eq!(r["result"]["code"], 0);
    assert_eq!(r["result"]["data"], "6F6B");
    assert_eq!(
        r["result"]["hash"],
        hex::encode_upper(engine_types::sha256(b"abc").0)
    );
    let r = post(
        &srv,
        r#"{"jsonrpc":"2.0","id":3,"method":"broadcast_tx_commit","params":{"tx":"YWJj"}}"#,
    )
    .await
    .json();
    assert_eq!(r["id"], 3);
    assert_eq!(r["result"]["height"], "11");
    assert_eq!(r["result"]["check_tx"]["gas_wanted"], "1");
    assert_eq!(r["result"]["tx_result"]["data"], Value::Null);
    assert_eq!(
        r["result"]["hash"],
        hex::encode_upper(engine_types::sha256(b"abc").0)
    );
}

#[tokio::test]
async fn status_over_the_wire_keeps_go_field_order() {
    let srv = start().await;
    let r = get(&srv, "/status").await;
    // Raw text: the order on the wire is the order clients see.
    let body = &r.body;
    let pos = |k: &str| body.find(&format!("\"{k}\"")).unwrap_or(usize::MAX);
    assert!(pos("jsonrpc") < pos("id") && pos("id") < pos("result"));
    assert!(pos("node_info") < pos("sync_info") && pos("sync_info") < pos("validator_info"));
    let v = r.json();
    assert_eq!(v["result"]["sync_info"]["earliest_block_hash"], "");
    assert_eq!(v["result"]["node_info"]["protocol_version"]["p2p"], "8");
}

#[tokio::test]
async fn block_height_arguments() {
    let srv = start().await;
    let r = get(&srv, "/block?height=5").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("public, max-age=86400"));
    assert!(calls(&srv).contains(&"block Some(5)".to_string()));
    assert_eq!(r.json()["result"]["block"]["header"]["height"], "10");

    // Latest block: not cacheable.
    let r = get(&srv, "/block").await;
    assert_eq!(r.header("cache-control"), None);

    // Positional and named params, height as a string.
    let r = post(
        &srv,
        r#"{"jsonrpc":"2.0","id":1,"method":"block","params":["7"]}"#,
    )
    .await;
    assert_eq!(r.json()["id"], 1);
    assert_eq!(r.header("cache-control"), Some("public, max-age=86400"));
    let r = post(
        &srv,
        r#"{"jsonrpc":"2.0","id":2,"method":"commit","params":{"height":"8"}}"#,
    )
    .await;
    assert_eq!(r.json()["result"]["canonical"], true);
    let c = calls(&srv);
    assert!(c.contains(&"block Some(7)".to_string()), "{c:?}");
    assert!(c.contains(&"commit Some(8)".to_string()), "{c:?}");

    // Height 0: CometBFT's internal error (as in block_at_height_0.json).
    let r = post(
        &srv,
        r#"{"jsonrpc":"2.0","id":"z","method":"block","params":{"height":"0"}}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let expected = fixture("block_at_height_0");
    let got = r.json();
    assert_eq!(got["error"], expected["error"]);
    assert_eq!(got["id"], "z");
    assert_eq!(r.header("cache-control"), None);

    // Over URI, errors are HTTP 500 with the same body shape.
    let r = get(&srv, "/block?height=11").await;
    assert_eq!(r.status, 500);
    let v = r.json();
    assert_eq!(v["error"]["code"], -32603);
    assert_eq!(v["id"], -1);
}

#[tokio::test]
async fn validators_paginate() {
    let srv = start().await;
    let v = get(&srv, "/validators?height=3&page=2&per_page=2")
        .await
        .json();
    assert_eq!(v["result"]["block_height"], "3");
    assert_eq!(v["result"]["count"], "2");
    assert_eq!(v["result"]["total"], "5");
    assert_eq!(v["result"]["validators"].as_array().map(Vec::len), Some(2));
    let v = get(&srv, "/validators?page=9").await.json();
    assert_eq!(
        v["error"]["data"],
        "page should be within [1, 1] range, given 9"
    );
}

#[tokio::test]
async fn abci_query_data_forms_agree() {
    let srv = start().await;
    let quoted = get(&srv, "/abci_query?path=%22/store%22&data=%22k1%22")
        .await
        .json();
    let hexed = get(&srv, "/abci_query?path=%22/store%22&data=0x6B31")
        .await
        .json();
    // The fixed backend echoes the query data as the response key.
    assert_eq!(quoted["result"]["response"]["key"], "azE=");
    assert_eq!(hexed["result"], quoted["result"]);
    let named = post(&srv, r#"{"jsonrpc":"2.0","id":1,"method":"abci_query","params":{"path":"/store","data":"6B31","height":"4","prove":true}}"#).await.json();
    assert_eq!(named["result"], quoted["result"]);
    let positional = post(
        &srv,
        r#"{"jsonrpc":"2.0","id":1,"method":"abci_query","params":["/store","6b31","0",false]}"#,
    )
    .await
    .json();
    assert_eq!(positional["result"], quoted["result"]);
    let c = calls(&srv);
    assert!(c.contains(&"abci_query /store 4 true".to_string()), "{c:?}");
    assert_eq!(quoted["result"]["response"]["proofOps"], Value::Null);
}

#[tokio::test]
async fn batches_and_notifications() {
    let srv = start().await;
    let r = post(
        &srv,
        r#"[{"jsonrpc":"2.0","id":1,"method":"health","params":{}},
            {"jsonrpc":"2.0","method":"health","params":{}},
            {"jsonrpc":"2.0","id":"b","method":"nope"}]"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        v.as_array().map(Vec::len),
        Some(2),
        "the notification gets no answer"
    );
    assert_eq!(v[0], json!({"jsonrpc":"2.0","id":1,"result":{}}));
    assert_eq!(v[1]["error"]["code"], -32601);

    // A lone notification: empty 200.
    let r = post(&srv, r#"{"jsonrpc":"2.0","method":"health"}"#).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    // Too many requests in a batch.
    let one = r#"{"jsonrpc":"2.0","id":1,"method":"health"}"#;
    let batch = format!("[{}]", [one; 11].join(","));
    let r = post(&srv, &batch).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["error"]["code"], -32600);
    assert_eq!(
        v["error"]["data"],
        "batch request exceeds maximum (10) allowed number of requests"
    );
    assert!(v.get("id").is_none());
}

#[tokio::test]
async fn errors_have_cometbft_shapes() {
    let srv = start().await;
    // Malformed JSON: -32700, HTTP 500, no id.
    let r = post(&srv, "{not json").await;
    assert_eq!(r.status, 500);
    let v = r.json();
    assert_eq!(v["error"]["code"], -32700);
    assert_eq!(v["error"]["message"], "Parse error. Invalid JSON");
    assert!(v.get("id").is_none());
    assert_order(&v, &["jsonrpc", "error"]);

    // Unknown method: -32601 without data.
    let v = post(&srv, r#"{"jsonrpc":"2.0","id":5,"method":"no_such"}"#)
        .await
        .json();
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"Method not found"}})
    );
    assert_order(&v, &["jsonrpc", "id", "error"]);

    // Bad params: -32602 with data explaining.
    let v = post(
        &srv,
        r#"{"jsonrpc":"2.0","id":6,"method":"block","params":{"height":"abc"}}"#,
    )
    .await
    .json();
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(v["error"]["message"], "Invalid params");
    let data = v["error"]["data"].as_str().unwrap_or_default();
    assert!(
        data.starts_with("error converting json params to arguments"),
        "{data}"
    );
    assert_order(&v["error"], &["code", "message", "data"]);
    let v = post(
        &srv,
        r#"{"jsonrpc":"2.0","id":7,"method":"block","params":["1","2"]}"#,
    )
    .await
    .json();
    assert_eq!(v["error"]["code"], -32602);
    let r = get(&srv, "/block?height=0x10").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["code"], -32602);

    // Backend errors: -32603 with the text as data.
    let v = post(
        &srv,
        r#"{"jsonrpc":"2.0","id":8,"method":"broadcast_tx_sync","params":{"tx":"ZHVw"}}"#,
    )
    .await
    .json();
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","id":8,"error":{"code":-32603,"message":"Internal error","data":"tx already exists in cache"}})
    );

    // A bad id type is a parse error.
    let r = post(&srv, r#"{"jsonrpc":"2.0","id":true,"method":"health"}"#).await;
    assert_eq!(r.json()["error"]["code"], -32700);

    // Unknown path: 404.
    assert_eq!(get(&srv, "/no_such").await.status, 404);
    assert_eq!(get(&srv, "/status/extra").await.status, 404);
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let srv = start().await;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"broadcast_tx_sync","params":{{"tx":"{}"}}}}"#,
        "A".repeat(1_000_100)
    );
    let r = post(&srv, &big).await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"]["code"], -32600);
    let data = v["error"]["data"].as_str().unwrap_or_default();
    assert!(data.contains("request body too large"), "{data}");
}

#[tokio::test]
async fn root_lists_routes() {
    let srv = start().await;
    let r = get(&srv, "/").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert!(r.body.contains("/status"));
    assert!(r
        .body
        .contains("/abci_query?path=_&data=_&height=_&prove=_"));
    // An empty POST body lists them too, as CometBFT does.
    let r = post(&srv, "").await;
    assert!(r.body.contains("Available endpoints"));
}

#[tokio::test]
async fn garbage_never_panics() {
    let srv = start().await;
    for body in [
        "[]",
        "null",
        "5",
        "\"x\"",
        "[1,2]",
        "{}",
        r#"{"method":5,"id":1}"#,
        r#"{"id":1.7,"method":"health"}"#,
        r#"{"id":1,"method":"block","params":7}"#,
        r#"{"id":1,"method":"abci_query","params":{"data":"zz"}}"#,
        r#"{"id":1,"method":"broadcast_tx_sync","params":{"tx":"***"}}"#,
        r#"{"id":1,"method":"validators","params":{"page":"-9223372036854775808","per_page":"9223372036854775807"}}"#,
        &"[".repeat(5000),
    ] {
        let r = post(&srv, body).await;
        assert!(r.status == 200 || r.status == 500, "{body}: {}", r.status);
    }
    for target in [
        "/block?height=-1",
        "/block?height=99999999999999999999",
        "/abci_query?data=%E9",
        "/abci_query?data=%22",
        "/abci_query?path=0x%C3",
        "/validators?page=0",
        "/abci_query?prove=maybe",
        "/status?x=%zz",
    ] {
        let r = get(&srv, target).await;
        assert!(r.status == 200 || r.status == 500, "{target}: {}", r.status);
    }
    // Id 1.7 truncates to 1, as Go does.
    let v = post(&srv, r#"{"id":1.7,"method":"health"}"#).await.json();
    assert_eq!(v["id"], 1);
    // The server still answers.
    assert_eq!(get(&srv, "/health").await.status, 200);
}

#[tokio::test]
async fn shuts_down_on_signal() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend: Arc<dyn Backend> = Arc::new(FixedBackend::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rpc::serve_with_shutdown(
        listener,
        backend,
        RpcConfig::default(),
        async move {
            let _ = rx.await;
        },
    ));
    let _ = tx.send(());
    let outcome = server.await.expect("server task");
    assert!(outcome.is_ok());
}

#[tokio::test]
async fn consensus_state_has_cometbfts_round_state_shape() {
    let srv = start().await;
    let v = get(&srv, "/consensus_state").await.json();
    let rs = &v["result"]["round_state"];
    assert_eq!(rs["height/round/step"], "7/1/4");
    assert_eq!(rs["proposal_block_hash"], "AB".repeat(32));
    assert_eq!(rs["locked_block_hash"], "");
    assert_eq!(rs["proposer"]["address"], "11".repeat(20));
    assert_eq!(rs["proposer"]["index"], 2);
    assert_eq!(rs["height_vote_set"][0]["round"], 0);
    assert_eq!(rs["height_vote_set"][0]["prevotes"][0], "nil-Vote");
    assert_eq!(
        rs["height_vote_set"][0]["precommits_bit_array"],
        "BA{1:_} 0/10 = 0.00"
    );
    assert!(rs["start_time"].as_str().is_some_and(|t| t.ends_with('Z')));
}
