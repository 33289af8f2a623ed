//! Errors: what a [`Backend`](crate::Backend) reports, and the JSON-RPC error
//! object CometBFT puts on the wire.
//!
//! CometBFT turns every error returned by a route's function into `-32603
//! Internal error` with the error's text in `data` (e.g. `"tx already exists
//! in cache"`, `"height must be greater than 0, but got 0"`); the other codes
//! come from the transport (parse, request shape, unknown method, params).

use serde_json::{json, Value};

/// JSON-RPC 2.0 error codes CometBFT uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ErrorCode {
    /// -32700: the body is not valid JSON or not a request.
    ParseError,
    /// -32600: the request is not a valid request (bad path, batch too large, body too large).
    InvalidRequest,
    /// -32601: no such method.
    MethodNotFound,
    /// -32602: the params could not be converted to the method's arguments.
    InvalidParams,
    /// -32603: the method failed.
    InternalError,
    /// -32000: a server-side condition outside the method.
    ServerError,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::InternalError => -32603,
            ErrorCode::ServerError => -32000,
        }
    }

    /// The fixed message CometBFT sends with the code.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "Parse error. Invalid JSON",
            ErrorCode::InvalidRequest => "Invalid Request",
            ErrorCode::MethodNotFound => "Method not found",
            ErrorCode::InvalidParams => "Invalid params",
            ErrorCode::InternalError => "Internal error",
            ErrorCode::ServerError => "Server error",
        }
    }
}

/// A JSON-RPC error object: `{"code":..,"message":..,"data":..}`; `data` is
/// left out when empty, as Go's `omitempty` does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ErrorObject {
    /// Which error.
    pub code: ErrorCode,
    /// Explanation (CometBFT's `data` string); empty means absent.
    pub data: String,
}

impl ErrorObject {
    /// An error object with the given code and explanation.
    pub fn new(code: ErrorCode, data: impl Into<String>) -> Self {
        ErrorObject {
            code,
            data: data.into(),
        }
    }

    /// Renders the object in CometBFT's field order.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"code": self.code.code(), "message": self.code.message()});
        if !self.data.is_empty() {
            if let Value::Object(m) = &mut v {
                m.insert("data".into(), Value::String(self.data.clone()));
            }
        }
        v
    }
}

/// An error a backend (or a route's argument checks) reports for one call.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RpcError {
    /// The call failed; sent as -32603 with this text as `data`. This is
    /// what CometBFT sends for every error a route's function returns.
    #[error("{0}")]
    Internal(String),
    /// The transaction is already in the mempool cache (-32603, data
    /// `tx already exists in cache`).
    #[error("tx already exists in cache")]
    TxInCache,
    /// The arguments are well-formed but unacceptable (-32602).
    #[error("{0}")]
    InvalidParams(String),
    /// A server condition outside the route (-32000).
    #[error("{0}")]
    Server(String),
}

impl RpcError {
    /// An [`RpcError::Internal`] with the given text.
    pub fn internal(msg: impl Into<String>) -> Self {
        RpcError::Internal(msg.into())
    }

    /// The error object sent for this error.
    pub fn to_object(&self) -> ErrorObject {
        let code = match self {
            RpcError::Internal(_) | RpcError::TxInCache => ErrorCode::InternalError,
            RpcError::InvalidParams(_) => ErrorCode::InvalidParams,
            RpcError::Server(_) => ErrorCode::ServerError,
        };
        ErrorObject::new(code, self.to_string())
    }
}

/// Errors of the server itself (binding, serving).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener failed.
    #[error("rpc server i/o: {0}")]
    Io(#[from] std::io::Error),
}
