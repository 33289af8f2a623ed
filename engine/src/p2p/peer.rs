//! A connected peer as the rest of the node sees it: who it is, how it came
//! (in or out, persistent or not), and the events and messages the switch
//! hands to reactors about it.
//!
//! Owns these descriptions and the per-peer send path (which refuses a
//! channel the peer did not advertise). Never reads a socket.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::conn::ConnHandle;
use super::node_info::NodeInfo;
use super::NodeId;

/// Who opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialled us.
    Inbound,
    /// We dialled the peer.
    Outbound,
}

/// A connected peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its authenticated ID.
    pub id: NodeId,
    /// What it told us about itself (validated and compatible with ours).
    pub node_info: NodeInfo,
    /// Who dialled.
    pub direction: Direction,
    /// Whether it is in our `persistent_peers` (redialled when lost).
    pub persistent: bool,
    /// The TCP address at the other end.
    pub remote_addr: SocketAddr,
}

/// Why a peer was removed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemovalReason {
    /// The connection failed: socket closed, undecodable bytes, a message
    /// too large, no pong in time, ...
    #[error("connection failed: {0}")]
    ConnectionFailed(String),
    /// A reactor (or the operator) asked for it with `stop_peer`.
    #[error("stopped: {0}")]
    Stopped(String),
    /// The switch is shutting down.
    #[error("the switch is stopping")]
    Shutdown,
}

/// A change in the set of connected peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// A peer connected; messages from it may follow. Shared, as every
    /// reactor gets the same description.
    Added(Arc<PeerInfo>),
    /// A peer is gone; nothing more comes from it on this connection.
    Removed(NodeId, RemovalReason),
}

/// What a reactor receives from the switch, in order per peer: `Added`,
/// then its messages on the reactor's channels, then `Removed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A peer came or went.
    Peer(PeerEvent),
    /// A complete message on one of the reactor's channels.
    Message {
        /// The sender.
        peer: NodeId,
        /// The channel it came on.
        channel: u8,
        /// The message bytes (the channel's proto message).
        msg: Bytes,
    },
}

/// The switch's record of one connected peer.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) info: Arc<PeerInfo>,
    pub(crate) conn: ConnHandle,
    /// Asks the peer's task to disconnect, with a reason.
    pub(crate) stop: mpsc::Sender<String>,
    /// Tells this connection apart from a later one with the same ID.
    pub(crate) serial: u64,
}

impl Peer {
    /// Sends on `ch`, waiting for room; the channel must be one the peer
    /// serves.
    pub(crate) async fn send(&self, ch: u8, msg: Bytes) -> Result<(), super::P2pError> {
        if !self.info.node_info.has_channel(ch) {
            return Err(super::P2pError::ChannelNotServed {
                peer: self.info.id,
                channel: ch,
            });
        }
        self.conn
            .send(ch, msg)
            .await
            .map_err(|source| super::P2pError::Conn {
                peer: self.info.id,
                source,
            })
    }

    /// Sends on `ch` if the peer serves it and its queue has room.
    pub(crate) fn try_send(&self, ch: u8, msg: Bytes) -> bool {
        self.info.node_info.has_channel(ch) && self.conn.try_send(ch, msg)
    }
}
