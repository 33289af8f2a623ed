//! A minimal blocking client for the nodes' JSON-RPC over plain HTTP GET
//! (`GET /status`), with short timeouts and a bounded response size, and the
//! few fields `start` and `status` read from the answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// The largest response read; a `/block` of a local testnet is far smaller.
pub const MAX_RESPONSE_BYTES: u64 = 8 << 20;

/// Why a call produced no result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing answered (connection refused, timed out, reset).
    #[error("unreachable: {0}")]
    Unreachable(std::io::Error),
    /// The node does not serve this route (HTTP 404).
    #[error("no such route")]
    NoRoute,
    /// The node answered with a JSON-RPC error.
    #[error("RPC error: {0}")]
    Rpc(String),
    /// The answer is not an HTTP response carrying JSON-RPC.
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// `GET path` from the node at `addr`; the JSON-RPC `result`.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Value, CallError> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(CallError::Unreachable)?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(CallError::Unreachable)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(CallError::Unreachable)?;
    let mut raw = Vec::new();
    s.take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .map_err(CallError::Unreachable)?;
    parse_response(&raw)
}

/// The JSON-RPC `result` of a raw HTTP/1.1 response (plain or chunked body).
pub fn parse_response(raw: &[u8]) -> Result<Value, CallError> {
    let malformed = |m: &str| CallError::Malformed(m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| malformed("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| malformed("headers not UTF-8"))?;
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| malformed("no HTTP status line"))?;
    if status == 404 {
        return Err(CallError::NoRoute);
    }
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim().to_ascii_lowercase();
            if name.trim().eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
                chunked = true;
            } else if name.trim().eq_ignore_ascii_case("content-length") {
                let len: usize = value.parse().map_err(|_| malformed("bad Content-Length"))?;
                body = body.get(..len).ok_or_else(|| malformed("body cut short"))?;
            }
        }
    }
    let dechunked;
    if chunked {
        dechunked = dechunk(body).ok_or_else(|| malformed("bad chunked body"))?;
        body = &dechunked;
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| CallError::Malformed(format!("HTTP {status}, body is not JSON: {e}")))?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        let text = [&err["message"], &err["data"]]
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(": ");
        return Err(CallError::Rpc(if text.is_empty() {
            err.to_string()
        } else {
            text
        }));
    }
    v.get("result")
        .cloned()
        .ok_or_else(|| malformed("no `result` in the JSON-RPC response"))
}

/// The payload of a chunked HTTP body.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..eol]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// What `/status` says of the node's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncInfo {
    /// Latest committed height (0 before the first block).
    pub height: u64,
    /// That block's hash (upper-case hex; empty before the first block).
    pub hash: String,
}

/// Reads `sync_info` from a `/status` result.
pub fn sync_info(status: &Value) -> Option<SyncInfo> {
    let s = &status["sync_info"];
    Some(SyncInfo {
        height: s["latest_block_height"].as_str()?.parse().ok()?,
        hash: s["latest_block_hash"].as_str()?.to_string(),
    })
}

/// The consensus round from a `/consensus_state` result
/// (`round_state["height/round/step"]`, e.g. `"5/0/1"`) or a
/// `/dump_consensus_state` result (`round_state.round`).
pub fn round(consensus_state: &Value) -> Option<u32> {
    let rs = &consensus_state["round_state"];
    if let Some(hrs) = rs["height/round/step"].as_str() {
        return hrs.split('/').nth(1)?.parse().ok();
    }
    match &rs["round"] {
        Value::Number(n) => n.as_u64().and_then(|r| u32::try_from(r).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The number of peers from a `/net_info` result.
pub fn peer_count(net_info: &Value) -> Option<u64> {
    match &net_info["n_peers"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The block hash from a `/block` result.
pub fn block_hash(block: &Value) -> Option<String> {
    block["block_id"]["hash"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_plain_and_chunked_bodies() {
        let json = "{\"jsonrpc\":\"2.0\",\"id\":-1,\"result\":{}}";
        // Bytes past Content-Length are not part of the body.
        let plain = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}garbage",
            json.len()
        );
        assert_eq!(parse_response(plain.as_bytes()).expect("plain"), json!({}));

        let body = "{\"jsonrpc\":\"2.0\",\"id\":-1,\"result\":{\"a\":1}}";
        let (one, two) = body.split_at(10);
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{one}\r\n{:x};ext=1\r\n{two}\r\n0\r\n\r\n",
            one.len(),
            two.len()
        );
        assert_eq!(
            parse_response(chunked.as_bytes()).expect("chunked"),
            json!({"a": 1})
        );
    }

    #[test]
    fn tells_missing_routes_and_rpc_errors_apart() {
        let missing = b"HTTP/1.1 404 Not Found\r\ncontent-length: 19\r\n\r\n404 page not found\n";
        assert!(matches!(parse_response(missing), Err(CallError::NoRoute)));
        let err = b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":-1,\"error\":{\"code\":-32603,\"message\":\"Internal error\",\"data\":\"height 9 must be less than or equal to the current blockchain height 3\"}}";
        match parse_response(err) {
            Err(CallError::Rpc(m)) => assert!(m.contains("height 9"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\nnot json"),
            Err(CallError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(b"garbage"),
            Err(CallError::Malformed(_))
        ));
    }

    #[test]
    fn reads_the_fields_of_cometbft_results() {
        let status = json!({"sync_info": {
            "latest_block_hash": "AB12",
            "latest_block_height": "42",
        }});
        assert_eq!(
            sync_info(&status),
            Some(SyncInfo {
                height: 42,
                hash: "AB12".into()
            })
        );
        assert_eq!(
            round(&json!({"round_state": {"height/round/step": "43/2/1"}})),
            Some(2)
        );
        assert_eq!(
            round(&json!({"round_state": {"height": "43", "round": 1, "step": 3}})),
            Some(1)
        );
        assert_eq!(round(&json!({})), None);
        assert_eq!(peer_count(&json!({"n_peers": "3"})), Some(3));
        assert_eq!(
            block_hash(&json!({"block_id": {"hash": "CAFE"}})),
            Some("CAFE".into())
        );
        assert_eq!(block_hash(&json!({"block_id": {"hash": ""}})), None);
    }
}
