//! A deterministic Byzantine network simulator for the consensus core.
//!
//! One run is a [`SimConfig`] plus a `u64` seed; everything random (network
//! delays, loss, partitions, crashes, Byzantine choices, transactions) is
//! drawn from one ChaCha RNG seeded with it, events are ordered by
//! (simulated time, sequence number), and no wall clock is read, so a seed
//! reproduces its run exactly.
//!
//! Layout:
//! - [`config`]: what a run looks like (validators, powers, strategies,
//!   network conditions);
//! - `world`: the event queue, the network model, validator sets, blocks;
//! - `node`: an honest node's driver (double-sign guard, WAL, replay,
//!   simulated application, gossip);
//! - `byzantine`: the Byzantine strategies;
//! - [`checks`]: the properties (agreement, validity, termination, evidence);
//! - `runner`: set-up and the event loop ([`run`]);
//! - [`report`]: run reports and per-configuration summaries ([`run_seeds`]);
//! - [`scenarios`]: the configurations CI runs.

mod byzantine;
pub mod checks;
pub mod config;
pub mod message;
mod node;
pub mod report;
mod runner;
pub mod scenarios;
pub mod verifier;
mod world;

pub use checks::{Property, Violation};
pub use config::{NetworkConfig, Powers, SimConfig, Strategy};
pub use report::{run_seeds, RunReport, Summary};
pub use runner::{run, validator_key, CHAIN_ID, MAX_EVENTS};
pub use world::INVALID_TX;
