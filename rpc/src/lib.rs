//! CometBFT v0.38-compatible JSON-RPC over HTTP, so that existing clients
//! (tendermint-rs, cosmjs, curl scripts) work unchanged.
//!
//! - [`backend`]: the [`Backend`] trait the node implements and the domain
//!   values it returns.
//! - [`render`]: those values as CometBFT's JSON, byte-shape for byte-shape.
//! - [`params`]: argument decoding from JSON-RPC params and URI queries.
//! - [`routes`]: the route table (one line per route).
//! - [`server`]: the axum transport ([`serve`], [`router`]).
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
//! - routes not yet implemented (net_info, tx_search, websocket, ...)
//!   answer `Method not found` / 404.

pub mod backend;
pub mod error;
pub mod params;
pub mod render;
pub mod routes;
pub mod server;

pub use backend::{Backend, BoxFuture, RpcResult};
pub use error::{ErrorCode, ErrorObject, RpcError, ServeError};
pub use server::{router, serve, serve_with_shutdown, RpcConfig};
