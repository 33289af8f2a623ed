//! Peer-to-peer networking, wire-compatible with CometBFT v0.38.

pub mod conn;
