//! Local networks of engine validators.
//!
//! [`net`] generates, runs and inspects networks of real `engine`
//! processes on this machine.
//!
//! [`sim`] is a deterministic discrete-event simulator that runs a network of
//! validators (honest and Byzantine) over a lossy, partitionable simulated
//! network from one `u64` seed, and checks the safety and liveness properties
//! of the consensus core on every run.

pub mod net;
pub mod sim;
