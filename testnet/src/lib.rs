//! Local networks of engine validators.
//!
//! [`sim`] is a deterministic discrete-event simulator that runs a network of
//! validators (honest and Byzantine) over a lossy, partitionable simulated
//! network from one `u64` seed, and checks the safety and liveness properties
//! of the consensus core on every run.

pub mod sim;
