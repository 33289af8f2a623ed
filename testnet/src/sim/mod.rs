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
//! - `gossip`: gossip mode (`--gossip`), where every message between nodes
//!   is planned by the node's real consensus reactor;
//! - [`checks`]: the properties (agreement, validity, termination, evidence);
//! - `runner`: set-up and the event loop ([`run`]);
//! - [`report`]: run reports and per-configuration summaries ([`run_seeds`]);
//! - [`scenarios`]: the configurations CI runs.
//!
//! Running it:
//!
//! ```text
//! testnet sim --validators 7 --byzantine 2 --seeds 200 --partition --crashes 2
//! testnet sim --matrix                      # CI's scenario matrix
//! testnet sim ... --seed 17 --trace         # reproduce one seed with its trace
//! testnet sim --gossip --byzantine 1 --partition --crashes 1
//! ```
//!
//! In gossip mode the network is a full mesh of TCP-like connections: FIFO
//! per direction, with no per-message loss or duplication (the reactors
//! re-send only what a peer's state says it lacks, as over TCP); before
//! GST a message may instead break its connection, losing everything in
//! flight, and the connection comes back after a random delay (by GST),
//! both reactors re-adding the peer; a partition breaks the connections
//! across it until it heals; a crash breaks all of a node's connections
//! until it restarts with a fresh reactor.
//!
//! Each honest node is the core plus a driver that signs through a
//! double-sign guard, logs every input to a WAL before handling it, answers
//! the application requests (PrepareProposal builds a small block;
//! ProcessProposal rejects blocks carrying [`INVALID_TX`]), starts the next
//! height `timeouts.commit` after a decision (telling a round 0 that waits
//! for transactions when they arrive, see [`WaitForTxs`]), and gossips
//! what lagging peers miss (the decided block with its precommits, or the
//! messages of the peer's round). A crashed node restarts with a fresh core and replays its
//! WAL. Byzantine nodes run a core for bookkeeping and distort what they
//! send (see [`Strategy`]).

mod byzantine;
pub mod checks;
pub mod config;
mod gossip;
pub mod message;
mod node;
pub mod report;
mod runner;
pub mod scenarios;
pub mod verifier;
mod world;

pub use checks::{Property, Violation};
pub use config::{NetworkConfig, Powers, SimConfig, Strategy, WaitForTxs};
pub use report::{run_seeds, RunReport, Summary};
pub use runner::{run, validator_key, CHAIN_ID, MAX_EVENTS};
pub use world::INVALID_TX;
