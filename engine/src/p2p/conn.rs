//! PLACEHOLDER — to be replaced by the real MConnection (packet codec,
//! channel scheduler, ping/pong). Only the seam below is fixed; the framing
//! here (`[channel u8][len u32 BE][bytes]`) is NOT CometBFT's wire format and
//! exists only so the switch can be tested end to end before the real
//! MConnection lands.
//!
//! The seam between the encrypted connection (secret.rs/transport.rs) and
//! the MConnection: the transport hands over the plaintext byte stream as
//! two channels,
//! - incoming: `mpsc::Receiver<Bytes>`, plaintext chunks in order; closed
//!   means the connection is gone;
//! - outgoing: `mpsc::Sender<Bytes>`, plaintext to write; the writer flushes
//!   when its queue is empty.
//!
//! and [`spawn`] returns a [`ConnHandle`], the complete messages per channel,
//! and a handle resolving to the [`ConnError`] that ended the connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// One channel of a connection: its ID, send priority and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelDescriptor {
    /// The channel ID (see the `*_CHANNEL` constants in `p2p`).
    pub id: u8,
    /// Relative share of the send bandwidth.
    pub priority: u32,
    /// Messages queued for sending before `send` waits.
    pub send_queue_capacity: usize,
    /// Largest message accepted from the peer.
    pub recv_message_capacity: usize,
}

/// Connection timing and packet size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// Time between pings.
    pub ping_interval: Duration,
    /// Time to wait for a pong.
    pub pong_timeout: Duration,
    /// Largest packet payload.
    pub max_packet_payload: usize,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            ping_interval: Duration::from_secs(60),
            pong_timeout: Duration::from_secs(45),
            max_packet_payload: 1024,
        }
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// Closed by [`ConnHandle::close`].
    #[error("closed locally")]
    Closed,
    /// The byte stream ended.
    #[error("connection closed by the peer or the network")]
    StreamClosed,
    /// The peer sent on a channel we do not have.
    #[error("message on unknown channel {0:#04x}")]
    UnknownChannel(u8),
    /// The peer sent a message larger than the channel accepts.
    #[error("message of {size} bytes on channel {channel:#04x} exceeds {max}")]
    MessageTooLarge {
        /// The channel.
        channel: u8,
        /// The announced size.
        size: usize,
        /// The channel's receive capacity.
        max: usize,
    },
}

/// Sends on and closes one connection; cheap to clone.
#[derive(Clone)]
pub struct ConnHandle {
    queue: mpsc::Sender<(u8, Bytes)>,
    channels: Arc<HashMap<u8, ChannelDescriptor>>,
    close: Arc<watch::Sender<bool>>,
}

impl ConnHandle {
    /// Queues `msg` on channel `ch`, waiting while the queue is full.
    pub async fn send(&self, ch: u8, msg: Bytes) -> Result<(), ConnError> {
        if !self.channels.contains_key(&ch) {
            return Err(ConnError::UnknownChannel(ch));
        }
        self.queue
            .send((ch, msg))
            .await
            .map_err(|_| ConnError::StreamClosed)
    }

    /// Queues `msg` if there is room; false if it was dropped.
    pub fn try_send(&self, ch: u8, msg: Bytes) -> bool {
        self.channels.contains_key(&ch) && self.queue.try_send((ch, msg)).is_ok()
    }

    /// Ends the connection.
    pub fn close(&self) {
        let _ = self.close.send(true);
    }
}

/// Runs a connection over the plaintext byte stream (PLACEHOLDER framing).
pub fn spawn(
    mut incoming: mpsc::Receiver<Bytes>,
    outgoing: mpsc::Sender<Bytes>,
    channels: Vec<ChannelDescriptor>,
    _config: ConnConfig,
) -> (
    ConnHandle,
    mpsc::Receiver<(u8, Bytes)>,
    JoinHandle<ConnError>,
) {
    let capacity = channels
        .iter()
        .map(|c| c.send_queue_capacity)
        .sum::<usize>()
        .max(1);
    let channels: Arc<HashMap<u8, ChannelDescriptor>> =
        Arc::new(channels.into_iter().map(|c| (c.id, c)).collect());
    let (queue_tx, mut queue_rx) = mpsc::channel::<(u8, Bytes)>(capacity);
    let (msgs_tx, msgs_rx) = mpsc::channel(64);
    let (close_tx, mut close_rx) = watch::channel(false);
    let handle = ConnHandle {
        queue: queue_tx,
        channels: channels.clone(),
        close: Arc::new(close_tx),
    };
    let task = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        loop {
            tokio::select! {
                _ = close_rx.changed() => return ConnError::Closed,
                chunk = incoming.recv() => {
                    let Some(chunk) = chunk else { return ConnError::StreamClosed };
                    buf.extend_from_slice(&chunk);
                    while buf.len() >= 5 {
                        let ch = buf[0];
                        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                        let Some(desc) = channels.get(&ch) else {
                            return ConnError::UnknownChannel(ch);
                        };
                        if len > desc.recv_message_capacity {
                            return ConnError::MessageTooLarge {
                                channel: ch,
                                size: len,
                                max: desc.recv_message_capacity,
                            };
                        }
                        if buf.len() < 5 + len {
                            break;
                        }
                        buf.advance(5);
                        let msg = buf.split_to(len).freeze();
                        if msgs_tx.send((ch, msg)).await.is_err() {
                            return ConnError::Closed;
                        }
                    }
                }
                out = queue_rx.recv() => {
                    // Every handle is gone: nobody can send or close any more.
                    let Some((ch, msg)) = out else { return ConnError::Closed };
                    let mut frame = BytesMut::with_capacity(5 + msg.len());
                    frame.extend_from_slice(&[ch]);
                    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
                    frame.extend_from_slice(&msg);
                    if outgoing.send(frame.freeze()).await.is_err() {
                        return ConnError::StreamClosed;
                    }
                }
            }
        }
    });
    (handle, msgs_rx, task)
}
