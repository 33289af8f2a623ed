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

pub mod backend;
pub mod error;
pub mod params;
pub mod render;
pub mod routes;
pub mod server;

pub use backend::{Backend, BoxFuture, RpcResult};
pub use error::{ErrorCode, ErrorObject, RpcError, ServeError};
pub use server::{router, serve, RpcConfig};
