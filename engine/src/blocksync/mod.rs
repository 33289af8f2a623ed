//! Block sync: how a node that is behind fetches committed blocks from its
//! peers, checks them and catches up, as CometBFT v0.38's block sync
//! reactor does, over the same channel (0x40) and messages.
//!
//! This module owns the logic only, sans I/O: the channel's messages and
//! their limits ([`SyncMessage`]), the deterministic pool deciding what
//! to request from whom and whom to blame ([`BlockPool`]), and the pure
//! verification of each block against the state ([`verify_pair`]). It
//! never touches sockets, clocks, the store or the application; the node
//! wires it to the p2p switch, feeds it time, stores and applies what it
//! verifies.

mod messages;
mod pool;
#[cfg(test)]
pub(crate) mod testchain;
mod verify;

pub use messages::{
    inspect, BlockResponse, MessageError, MessageKind, Status, SyncMessage, MAX_MSG_SIZE,
    MAX_VOTES_COUNT,
};
pub use pool::{BlockPool, PeerFault, PoolConfig, TwoBlocks};
pub use verify::{verify_pair, verify_pair_after, ProvenCommit, VerifiedPair, VerifyError};
