//! The engine: a Byzantine-fault-tolerant consensus node in the Tendermint
//! family, compatible with CometBFT v0.38.
//!
//! `types` holds the chain's data and its byte-exact encodings; `consensus`
//! is the Tendermint algorithm as a pure state machine.

pub mod app_conn;
pub mod block_exec;
pub mod blocksync;
pub mod config;
pub mod consensus;
pub mod execution;
pub mod genesis;
pub mod gossip;
pub mod home;
pub mod mempool;
pub mod node;
pub mod p2p;
pub mod privval;
pub mod store;
pub mod vote_ext;
pub mod wal;

/// The chain's domain types (the `engine-types` crate, shared with `rpc`).
pub use engine_types as types;
