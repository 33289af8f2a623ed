//! The HTTP transport: JSON-RPC 2.0 on `POST /`, URI calls on
//! `GET /<route>?args`, the route list on `GET /`, with CometBFT's status
//! codes, envelope shapes, body and batch limits and cache headers.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use crate::backend::Backend;
use crate::conn::{self, Limits, DEFAULT_MAX_HEADER_BYTES};
use crate::error::{ErrorCode, ErrorObject, ServeError};
use crate::params;
use crate::routes::{self, Route, ROUTES};

/// Server limits (CometBFT `[rpc]` config, and the timeouts CometBFT's
/// RPC server hard-codes).
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Largest request body accepted, in bytes (`max_body_bytes`, 1 MB).
    pub max_body_bytes: usize,
    /// Most requests in one JSON-RPC batch; 0 means unlimited
    /// (`max_request_batch_size`, 10).
    pub max_request_batch_size: usize,
    /// Most connections served at once (`max_open_connections`, 900); 0
    /// means unlimited. As in CometBFT, clients beyond it are not refused:
    /// they wait, connected, until a connection closes.
    pub max_open_connections: usize,
    /// Largest request head (request line and headers) accepted, in bytes;
    /// a larger one gets `431` (`max_header_bytes`, 1 MB; 0 means 1 MB, as
    /// in Go).
    pub max_header_bytes: usize,
    /// How long a client has to send a request's head, counted from when
    /// the server starts waiting for it (connection open, end of the
    /// previous response), and then its body; an idle keep-alive
    /// connection is closed after it too (10 s, CometBFT's `ReadTimeout`).
    /// Zero: no limit.
    pub read_timeout: Duration,
    /// How long after a request's head was read its response may still be
    /// blocked on a client that does not read it before the connection is
    /// closed (10 s, CometBFT's `WriteTimeout`; CometBFT's node raises it
    /// to `timeout_broadcast_tx_commit` + 1 s when that is not below).
    /// Zero: no limit.
    pub write_timeout: Duration,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            max_body_bytes: 1_000_000,
            max_request_batch_size: 10,
            max_open_connections: 900,
            max_header_bytes: 1 << 20,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

impl RpcConfig {
    fn limits(&self) -> Limits {
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        Limits {
            max_open_connections: self.max_open_connections,
            max_header_bytes: match self.max_header_bytes {
                0 => DEFAULT_MAX_HEADER_BYTES,
                n => n,
            },
            read_timeout: nonzero(self.read_timeout),
            write_timeout: nonzero(self.write_timeout),
        }
    }
}

struct Shared {
    backend: Arc<dyn Backend>,
    config: RpcConfig,
}

type AppState = Arc<Shared>;

/// Serves RPC on `listener` for as long as the task runs.
pub async fn serve(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    config: RpcConfig,
) -> Result<(), ServeError> {
    serve_with_shutdown(listener, backend, config, std::future::pending()).await
}

/// Serves RPC on `listener` until `shutdown` resolves; requests in flight
/// are finished first. A failed accept (a client gone before it was
/// accepted, no file descriptors left) is retried, not returned.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    config: RpcConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let limits = config.limits();
    conn::serve(listener, router(backend, config), limits, shutdown).await;
    Ok(())
}

/// The axum router, for embedding in another server. The connection-level
/// behaviour (raw characters in targets, connection limit, timeouts,
/// header limit) comes with [`serve`] only.
pub fn router(backend: Arc<dyn Backend>, config: RpcConfig) -> Router {
    let state = Arc::new(Shared { backend, config });
    Router::new()
        .route("/", get(list_routes_get).post(json_rpc))
        .route("/{method}", any(uri_call))
        .fallback(not_found)
        .with_state(state)
}

/// A JSON-RPC request id: CometBFT accepts strings and numbers (truncated
/// to integers); URI calls use -1.
#[derive(Clone, PartialEq, Debug)]
pub enum Id {
    /// Numeric id.
    Num(i64),
    /// String id.
    Str(String),
}

impl Id {
    fn to_json(&self) -> Value {
        match self {
            Id::Num(n) => Value::from(*n),
            Id::Str(s) => Value::String(s.clone()),
        }
    }
}

/// A JSON-RPC response; `id: None` is left out, as Go's `omitempty` does.
fn envelope(id: Option<&Id>, outcome: Result<Value, ErrorObject>) -> Value {
    let mut m = Map::new();
    m.insert("jsonrpc".into(), Value::from("2.0"));
    if let Some(id) = id {
        m.insert("id".into(), id.to_json());
    }
    match outcome {
        Ok(result) => m.insert("result".into(), result),
        Err(e) => m.insert("error".into(), e.to_json()),
    };
    Value::Object(m)
}

fn server_time() -> HeaderValue {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    HeaderValue::from(secs)
}

fn json_response(status: StatusCode, body: &Value, cache: bool) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-server-time", server_time());
    if cache {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=86400"),
        );
    }
    (status, headers, body.to_string()).into_response()
}

/// Reads a request body of at most `limit` bytes within `timeout`
/// (CometBFT's read deadline; zero: none), answering as CometBFT does when
/// it cannot.
async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, Response> {
    let read = axum::body::to_bytes(body, limit);
    let outcome = if timeout.is_zero() {
        read.await.map_err(|e| body_error(&e, limit))
    } else {
        match tokio::time::timeout(timeout, read).await {
            Ok(r) => r.map_err(|e| body_error(&e, limit)),
            Err(_) => Err(format!("read timeout ({timeout:?})")),
        }
    };
    outcome.map_err(|why| {
        let obj = ErrorObject::new(
            ErrorCode::InvalidRequest,
            format!("error reading request body: {why}"),
        );
        json_response(StatusCode::BAD_REQUEST, &envelope(None, Err(obj)), false)
    })
}

fn body_error(e: &axum::Error, limit: usize) -> String {
    let too_large = std::error::Error::source(e)
        .is_some_and(|s| s.to_string().contains("length limit"))
        || e.to_string().contains("length limit");
    if too_large {
        format!("http: request body too large (max_body_bytes {limit})")
    } else {
        e.to_string()
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

fn list_routes(headers: &HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let mut sorted: Vec<&Route> = ROUTES.iter().collect();
    sorted.sort_by_key(|r| r.name);
    let mut html = String::from("<html><body><br>Available endpoints:<br>");
    for r in sorted.iter().filter(|r| r.params.is_empty()) {
        let link = format!("//{host}/{}", r.name);
        html.push_str(&format!("<a href=\"{link}\">{link}</a></br>"));
    }
    html.push_str("<br>Endpoints that require arguments:<br>");
    for r in sorted.iter().filter(|r| !r.params.is_empty()) {
        let args: Vec<String> = r.params.iter().map(|p| format!("{}=_", p.name)).collect();
        let link = format!("//{host}/{}?{}", r.name, args.join("&"));
        html.push_str(&format!("<a href=\"{link}\">{link}</a></br>"));
    }
    html.push_str("</body></html>");
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], html).into_response()
}

async fn list_routes_get(headers: HeaderMap) -> Response {
    list_routes(&headers)
}

/// `GET|POST /<route>?args`: one call, id -1.
async fn uri_call(
    State(state): State<AppState>,
    Path(method): Path<String>,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(resp) = read_body(body, state.config.max_body_bytes, state.config.read_timeout).await
    {
        return resp;
    }
    let Some(route) = routes::find(&method) else {
        return not_found().await;
    };
    let id = Id::Num(-1);
    let args = match params::from_query(route.params, parts.uri.query()) {
        Ok(a) => a,
        Err(e) => {
            let obj = ErrorObject::new(
                ErrorCode::InvalidParams,
                format!("error converting http params to arguments: {e}"),
            );
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &envelope(Some(&id), Err(obj)),
                false,
            );
        }
    };
    let cache = route.cacheable(&args);
    match (route.handler)(state.backend.clone(), args).await {
        Ok(result) => json_response(StatusCode::OK, &envelope(Some(&id), Ok(result)), cache),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &envelope(Some(&id), Err(e.to_object())),
            false,
        ),
    }
}

/// One element of a JSON-RPC body, checked as Go's `RPCRequest` decoding
/// checks it.
struct Call {
    id: Option<Id>,
    method: String,
    params: Option<Value>,
}

fn parse_call(v: &Value) -> Result<Call, String> {
    let Value::Object(m) = v else {
        return Err(format!(
            "cannot unmarshal {} into Go value of type RPCRequest",
            kind(v)
        ));
    };
    let method = match m.get("method") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "cannot unmarshal {} into field method of type string",
                kind(other)
            ))
        }
    };
    if let Some(j) = m.get("jsonrpc") {
        if !(j.is_string() || j.is_null()) {
            return Err(format!(
                "cannot unmarshal {} into field jsonrpc of type string",
                kind(j)
            ));
        }
    }
    let id = match m.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Id::Str(s.clone())),
        Some(Value::Number(n)) => Some(Id::Num(
            n.as_i64()
                // Go decodes ids as float64 and truncates them to int.
                .or_else(|| n.as_f64().map(|f| f as i64))
                .unwrap_or(0),
        )),
        Some(other) => {
            return Err(format!(
                "json-rpc ID ({other}) is of unknown type ({})",
                kind(other)
            ))
        }
    };
    Ok(Call {
        id,
        method,
        params: m.get("params").cloned(),
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `POST /`: a single request or a batch.
async fn json_rpc(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match read_body(body, state.config.max_body_bytes, state.config.read_timeout).await
    {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if bytes.is_empty() {
        return list_routes(&headers);
    }
    let parse_error = |why: String| {
        let obj = ErrorObject::new(
            ErrorCode::ParseError,
            format!("error unmarshaling request: {why}"),
        );
        json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &envelope(None, Err(obj)),
            false,
        )
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return parse_error(e.to_string()),
    };
    let items: Vec<&Value> = match &value {
        Value::Array(items) => {
            let max = state.config.max_request_batch_size;
            if max > 0 && items.len() > max {
                let obj = ErrorObject::new(
                    ErrorCode::InvalidRequest,
                    format!("batch request exceeds maximum ({max}) allowed number of requests"),
                );
                return json_response(StatusCode::OK, &envelope(None, Err(obj)), false);
            }
            items.iter().collect()
        }
        Value::Null => Vec::new(),
        single => vec![single],
    };
    let mut calls = Vec::with_capacity(items.len());
    for item in items {
        match parse_call(item) {
            Ok(c) => calls.push(c),
            Err(why) => return parse_error(why),
        }
    }

    let mut responses = Vec::new();
    let mut cache = true;
    for call in calls {
        // Notifications get no response.
        let Some(id) = call.id else { continue };
        let Some(route) = routes::find(&call.method) else {
            cache = false;
            let obj = ErrorObject::new(ErrorCode::MethodNotFound, "");
            responses.push(envelope(Some(&id), Err(obj)));
            continue;
        };
        let args = match params::from_json_params(route.params, call.params.as_ref()) {
            Ok(a) => a,
            Err(e) => {
                cache = false;
                let obj = ErrorObject::new(
                    ErrorCode::InvalidParams,
                    format!("error converting json params to arguments: {e}"),
                );
                responses.push(envelope(Some(&id), Err(obj)));
                continue;
            }
        };
        cache &= route.cacheable(&args);
        match (route.handler)(state.backend.clone(), args).await {
            Ok(result) => responses.push(envelope(Some(&id), Ok(result))),
            Err(e) => {
                // CometBFT would still cache here; caching an error for a
                // day helps nobody, so we do not.
                cache = false;
                responses.push(envelope(Some(&id), Err(e.to_object())));
            }
        }
    }
    match responses.len() {
        0 => (StatusCode::OK, [("x-server-time", server_time())]).into_response(),
        // CometBFT writes a lone response as an object, even for a batch.
        1 => json_response(StatusCode::OK, &responses[0], cache),
        _ => json_response(StatusCode::OK, &Value::Array(responses), cache),
    }
}
