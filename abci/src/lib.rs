//! The ABCI socket protocol of CometBFT v0.38, both ends.
//!
//! * [`codec`]: the wire format, unsigned-varint length-prefixed protobuf
//!   frames of [`proto::Request`] and [`proto::Response`], with a maximum
//!   frame size and diagnostics for peers speaking something else.
//! * [`client`]: the engine's side of one connection ([`Client`]), with
//!   Flush-driven batching as CometBFT's socket client does it, pipelining,
//!   per-request timeouts and a typed method per request.
//! * [`server`]: the application's side: the [`Application`] trait with
//!   CometBFT's `BaseApplication` defaults, and a [`Server`] over TCP or a
//!   Unix socket serving many connections concurrently.
//! * [`Addr`]: CometBFT's address notation (`tcp://host:port`,
//!   `unix:///path`, bare `host:port`).
//!
//! The messages themselves are the real CometBFT protobuf definitions from
//! `tendermint-proto`, re-exported as [`proto`].

#![forbid(unsafe_code)]

mod addr;
pub mod client;
pub mod codec;
mod error;
pub mod server;
mod transport;

pub use addr::Addr;
pub use client::{Client, ClientConfig, PendingResponse};
pub use codec::CodecError;
pub use error::{Error, Result};
pub use server::{serve, Application, Server, ServerConfig};

/// The ABCI v0.38 protobuf messages (`tendermint.abci` of CometBFT v0.38).
pub use tendermint_proto::v0_38::abci as proto;
