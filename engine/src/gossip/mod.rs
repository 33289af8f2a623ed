//! Consensus gossip, CometBFT's consensus reactor: which proposals, block
//! parts and votes to send each peer, and what each peer already has.
//!
//! Pure and deterministic (an explicit RNG for CometBFT's random picks), so
//! the deterministic simulator can drive it as well as the real network.
//! The p2p layer carries its messages on the State, Data, Vote and
//! VoteSetBits channels.

pub mod bits;
pub mod message;
pub mod parts;
pub mod peer;
pub mod plan;
pub mod reactor;
pub mod stored;
pub mod teller;
pub mod view;
