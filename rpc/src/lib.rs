//! CometBFT v0.38-compatible JSON-RPC over HTTP, so that existing clients
//! (tendermint-rs, cosmjs, curl scripts) work unchanged.
//!
//! - [`backend`]: the [`Backend`] trait the node implements and the domain
//!   values it returns.
//! - [`render`]: those values as CometBFT's JSON, byte-shape for byte-shape.
//! - [`params`]: argument decoding from JSON-RPC params and URI queries.
//! - [`routes`]: the route table (one line per route).
//! - [`server`]: the HTTP handlers and their limits ([`serve`],
//!   [`router`], [`RpcConfig`]).
//! - `conn` (private): the accept loop and connection I/O: connection
//!   limit, timeouts, header limit, hyper.
//! - `target` (private): raw request-target characters that Go accepts
//!   and hyper does not, percent-encoded before hyper parses them.
//!
//! This crate never touches the node's state directly: everything goes
//! through [`Backend`].
//!
//! Deliberate differences from CometBFT v0.38, none visible to a client
//! that works against CometBFT:
//! - integer params also accept JSON numbers (CometBFT wants strings);
//! - a JSON-RPC call without `params` uses defaults (CometBFT panics and
//!   answers 500);
//! - error responses never carry `Cache-Control` (CometBFT's JSON-RPC
//!   handler caches a failed cacheable call for a day);
//! - routes not yet implemented (tx_search, websocket, ...)
//!   answer `Method not found` / 404.
//!
//! Where the transport (hyper rather than Go's net/http) differs, only at
//! the edges:
//! - an idle keep-alive connection and its next request's head share one
//!   `read_timeout` (Go gives each its own); a body gets `read_timeout`
//!   from when its handler starts reading it;
//! - the write timeout fails a response only while it is blocked on a
//!   client that does not read; a slow handler is not cut off;
//! - a head with more than 100 headers, or a request-target longer than
//!   64 KiB, is refused (Go limits only the head's total size).

pub mod backend;
mod conn;
pub mod error;
pub mod params;
pub mod render;
pub mod routes;
pub mod server;
mod target;

pub use backend::{Backend, BoxFuture, RpcResult};
pub use error::{ErrorCode, ErrorObject, RpcError, ServeError};
pub use server::{router, serve, serve_with_shutdown, RpcConfig};
