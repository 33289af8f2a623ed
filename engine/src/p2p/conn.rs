//! MConnection: CometBFT's multiplexed peer connection (`p2p/conn/connection.go`).
//!
//! One MConnection runs over the plaintext stream inside a peer's
//! SecretConnection and carries many logical channels (consensus state,
//! block parts, votes, txs, evidence, block sync...). Messages are cut into
//! packets of at most `max_packet_payload` bytes ([`codec`]); a
//! [`Scheduler`] shares the link between channels by priority; pings keep
//! the link honest.
//!
//! This module owns the framing, the per-channel send queues, reassembly
//! and keepalive. It never looks inside a channel message (the reactors
//! decode those) and never touches a socket: the transport hands it the
//! plaintext stream as two byte channels.
//!
//! Differences from Go that the wire cannot see: packets are written as soon
//! as the queues drain instead of on a 100 ms flush throttle, and there is
//! no send/receive rate limit.

pub mod codec;
pub mod scheduler;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

pub use codec::{Decoder, Event, PacketCodec, PING, PONG};
pub use scheduler::Scheduler;

/// How long [`ConnHandle::send`] waits for room in a full queue (Go's
/// `defaultSendTimeout`).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Complete messages waiting for the consumer of [`spawn`]'s receiver.
/// When it is full the connection stops reading, so a slow consumer slows
/// the peer down (TCP backpressure) instead of growing a buffer.
pub const DELIVERY_QUEUE: usize = 16;

/// The writer hands the transport a chunk once this many bytes are
/// encoded, and checks for pings and pongs between chunks.
const WRITE_CHUNK: usize = 16 * 1024;

/// Go's receive capacity for a descriptor that leaves it at 0 (21 MiB).
const DEFAULT_RECV_MESSAGE_CAPACITY: usize = 22_020_096;

/// One logical channel of a connection (Go's `ChannelDescriptor`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelDescriptor {
    /// The channel id on the wire.
    pub id: u8,
    /// Share of the link when several channels have data (higher sends
    /// more); 0 counts as 1.
    pub priority: u32,
    /// Messages that may wait to be sent on this channel, besides the one
    /// being sent; 0 counts as 1, as in Go.
    pub send_queue_capacity: usize,
    /// The largest message the peer may send on this channel; 0 means
    /// Go's default of 21 MiB.
    pub recv_message_capacity: usize,
}

/// Timing and packet size of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// How often we ping the peer (at least every millisecond is used).
    pub ping_interval: Duration,
    /// How long we wait for the pong before dropping the peer.
    pub pong_timeout: Duration,
    /// Data bytes per packet; the receiver refuses packets larger than a
    /// full packet of this payload.
    pub max_packet_payload: usize,
    /// Most bytes per second we send (`p2p.send_rate`); 0 for no limit.
    pub send_rate: u64,
    /// Most bytes per second we read from the peer (`p2p.recv_rate`): a
    /// peer that sends faster is slowed down, as TCP stops reading; 0 for
    /// no limit.
    pub recv_rate: u64,
}

impl Default for ConnConfig {
    /// CometBFT's defaults: ping every 60 s, pong within 45 s, 1024-byte
    /// packets, 5,120,000 bytes/s each way.
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(60),
            pong_timeout: Duration::from_secs(45),
            max_packet_payload: 1024,
            send_rate: 5_120_000,
            recv_rate: 5_120_000,
        }
    }
}

/// A byte-rate limit as a token bucket holding at most one second's worth:
/// bursts up to the rate pass at once, a sustained stream is held to it.
/// Pure: the caller passes the time and sleeps for what it returns.
#[derive(Clone, Debug)]
pub struct RateLimit {
    rate: u64,
    /// Bytes that may pass now without waiting (negative: owed).
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimit {
    /// `rate` bytes per second; 0 never limits.
    pub fn new(rate: u64) -> Self {
        RateLimit {
            rate,
            tokens: rate as f64,
            last: None,
        }
    }

    /// Charges `bytes` at `now`; returns how long to wait before the next
    /// transfer to stay within the rate.
    pub fn charge(&mut self, bytes: usize, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let rate = self.rate as f64;
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * rate;
            self.tokens = (self.tokens + refill).min(rate);
        }
        self.last = Some(now);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

/// Why a connection ended, or why a send failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// A packet's length prefix is not a valid uvarint.
    #[error("malformed packet length prefix")]
    InvalidLength,
    /// The peer announced a packet larger than a full packet.
    #[error("packet of {len} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// The announced length.
        len: u64,
        /// The most we accept.
        max: usize,
    },
    /// A packet is not valid protobuf.
    #[error("malformed packet: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A packet is none of ping, pong or message.
    #[error("packet is none of ping, pong, msg")]
    UnknownPacket,
    /// The peer sent on a channel not open on this connection.
    #[error("peer sent on unknown channel {0:#x}")]
    UnknownChannel(i32),
    /// The peer's message outgrew its channel's receive capacity.
    #[error("message of at least {size} bytes on channel {channel:#04x} exceeds {capacity}")]
    MessageTooLarge {
        /// The channel.
        channel: u8,
        /// Bytes received of the message so far.
        size: usize,
        /// The channel's receive capacity.
        capacity: usize,
    },
    /// The peer did not answer a ping in time.
    #[error("no pong within the pong timeout")]
    PongTimeout,
    /// The connection was closed on our side ([`ConnHandle::close`], or the
    /// consumer of received messages went away); a send on a connection
    /// that has ended for any reason also reports this.
    #[error("connection closed")]
    Closed,
    /// The incoming stream ended: the peer or the transport hung up.
    #[error("peer closed the connection")]
    PeerClosed,
    /// The outgoing stream's reader went away.
    #[error("outgoing stream closed")]
    WriteClosed,
    /// A send named a channel not open on this connection.
    #[error("channel {0:#04x} is not open on this connection")]
    NoSuchChannel(u8),
    /// A send waited for room in a full queue and gave up.
    #[error("send queue of channel {0:#04x} stayed full")]
    SendTimeout(u8),
}

/// The channel table of a CometBFT v0.38 node, in the order its switch
/// adds reactors (mempool, block sync, consensus, evidence); PEX and state
/// sync are not served. `max_tx_bytes` is the mempool's `max_tx_bytes`.
///
/// From `mempool/reactor.go`, `blocksync/reactor.go`,
/// `consensus/reactor.go` and `evidence/reactor.go` `GetChannels`, with
/// Go's `FillDefaults` applied (an unset send queue capacity is 1).
pub fn cometbft_channels(max_tx_bytes: usize) -> Vec<ChannelDescriptor> {
    const MIB: usize = 1 << 20;
    // types.MaxBlockSizeBytes plus BlockResponse's prefix (4) and key (1).
    const BLOCKSYNC_MAX_MSG: usize = 100 * MIB + 5;
    let chan = |id, priority, send_queue_capacity, recv_message_capacity| ChannelDescriptor {
        id,
        priority,
        send_queue_capacity,
        recv_message_capacity,
    };
    vec![
        chan(0x30, 5, 1, mempool_message_capacity(max_tx_bytes)), // mempool
        chan(0x40, 5, 1000, BLOCKSYNC_MAX_MSG),                   // block sync
        chan(0x20, 6, 100, MIB),                                  // consensus state
        chan(0x21, 10, 100, MIB),                                 // consensus data
        chan(0x22, 7, 100, MIB),                                  // consensus votes
        chan(0x23, 1, 2, MIB),                                    // consensus vote-set bits
        chan(0x38, 6, 1, MIB),                                    // evidence
    ]
}

/// Encoded size of `mempool.Message{txs: Txs{txs: [max_tx_bytes bytes]}}`,
/// the mempool channel's receive capacity in Go.
fn mempool_message_capacity(max_tx_bytes: usize) -> usize {
    let field = |len: usize| 1 + prost::length_delimiter_len(len) + len;
    field(field(max_tx_bytes))
}

/// Normalizes descriptors as Go's `FillDefaults` does, keeping the first of
/// a duplicated id.
fn normalize(channels: Vec<ChannelDescriptor>) -> Vec<ChannelDescriptor> {
    let mut out: Vec<ChannelDescriptor> = Vec::with_capacity(channels.len());
    for mut desc in channels {
        if out.iter().any(|d| d.id == desc.id) {
            continue;
        }
        desc.priority = desc.priority.max(1);
        desc.send_queue_capacity = desc.send_queue_capacity.max(1);
        if desc.recv_message_capacity == 0 {
            desc.recv_message_capacity = DEFAULT_RECV_MESSAGE_CAPACITY;
        }
        out.push(desc);
    }
    out
}

/// State the reader, the writer and the handles share.
#[derive(Debug, Default)]
struct Shared {
    /// Wakes the writer: a message was queued, a ping or pong arrived.
    wake: Notify,
    /// The peer pinged; the writer owes it a pong (pings coalesce).
    pong_due: AtomicBool,
    /// The peer ponged since the writer last looked.
    pong_seen: AtomicBool,
}

#[derive(Debug)]
struct HandleInner {
    queues: Vec<(u8, mpsc::Sender<Bytes>)>,
    shared: Arc<Shared>,
    close: watch::Sender<bool>,
}

/// Sends on a connection and closes it. Cheap to clone; all clones drive
/// the same connection. Dropping every handle does not close it.
#[derive(Clone, Debug)]
pub struct ConnHandle {
    inner: Arc<HandleInner>,
}

impl ConnHandle {
    /// Queues `msg` on channel `ch`, waiting up to [`SEND_TIMEOUT`] for room
    /// (Go's `Send`).
    pub async fn send(&self, ch: u8, msg: Bytes) -> Result<(), ConnError> {
        self.send_timeout(ch, msg, SEND_TIMEOUT).await
    }

    /// [`send`](Self::send) with a chosen wait.
    pub async fn send_timeout(
        &self,
        ch: u8,
        msg: Bytes,
        timeout: Duration,
    ) -> Result<(), ConnError> {
        if self.is_closed() {
            return Err(ConnError::Closed);
        }
        let queue = self.queue(ch).ok_or(ConnError::NoSuchChannel(ch))?;
        match tokio::time::timeout(timeout, queue.send(msg)).await {
            Ok(Ok(())) => {
                self.inner.shared.wake.notify_one();
                Ok(())
            }
            Ok(Err(_)) => Err(ConnError::Closed),
            Err(_) => Err(ConnError::SendTimeout(ch)),
        }
    }

    /// Queues `msg` on channel `ch` if there is room right now (Go's
    /// `TrySend`); false if the queue is full, the channel is not open, or
    /// the connection has ended. Callers record "peer has X" only on true.
    pub fn try_send(&self, ch: u8, msg: Bytes) -> bool {
        if self.is_closed() {
            return false;
        }
        let Some(queue) = self.queue(ch) else {
            return false;
        };
        let queued = queue.try_send(msg).is_ok();
        if queued {
            self.inner.shared.wake.notify_one();
        }
        queued
    }

    /// Ends the connection in both directions: queued messages are dropped,
    /// the transport's streams are released, and the task ends with
    /// [`ConnError::Closed`].
    pub fn close(&self) {
        self.inner.close.send_replace(true);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        *self.inner.close.borrow()
    }

    fn queue(&self, ch: u8) -> Option<&mpsc::Sender<Bytes>> {
        self.inner
            .queues
            .iter()
            .find(|(id, _)| *id == ch)
            .map(|(_, q)| q)
    }
}

/// Starts a connection over the plaintext stream of one peer.
///
/// `incoming` yields the peer's bytes in order, cut anywhere (closed = the
/// peer is gone); `outgoing` takes ours. Returns the handle to send with,
/// the complete messages as `(channel, bytes)`, and the task, which ends
/// with the reason the connection ended. Must be called inside a tokio
/// runtime.
pub fn spawn(
    incoming: mpsc::Receiver<Bytes>,
    outgoing: mpsc::Sender<Bytes>,
    channels: Vec<ChannelDescriptor>,
    config: ConnConfig,
) -> (
    ConnHandle,
    mpsc::Receiver<(u8, Bytes)>,
    tokio::task::JoinHandle<ConnError>,
) {
    let channels = normalize(channels);
    let shared = Arc::new(Shared::default());
    let (close, closed) = watch::channel(false);
    let (queues, lanes): (Vec<_>, Vec<_>) = channels
        .iter()
        .map(|d| {
            let (tx, rx) = mpsc::channel(d.send_queue_capacity);
            ((d.id, tx), rx)
        })
        .unzip();
    let (deliver, delivered) = mpsc::channel(DELIVERY_QUEUE);

    let reader = Reader {
        incoming,
        decoder: Decoder::new(&channels, config.max_packet_payload),
        deliver,
        shared: Arc::clone(&shared),
        limit: RateLimit::new(config.recv_rate),
    };
    let writer = Writer {
        outgoing,
        queues: lanes,
        scheduler: Scheduler::new(&channels),
        codec: PacketCodec::new(config.max_packet_payload),
        config,
        shared: Arc::clone(&shared),
        limit: RateLimit::new(config.send_rate),
    };
    let task = tokio::spawn(run(reader, writer, closed));
    let handle = ConnHandle {
        inner: Arc::new(HandleInner {
            queues,
            shared,
            close,
        }),
    };
    (handle, delivered, task)
}

/// Runs both directions until one fails or the connection is closed;
/// dropping the other releases its stream and queues.
async fn run(reader: Reader, writer: Writer, mut closed: watch::Receiver<bool>) -> ConnError {
    let close = async move {
        if closed.wait_for(|c| *c).await.is_err() {
            // Every handle is gone without closing: nobody can close now.
            std::future::pending::<()>().await;
        }
    };
    let error = tokio::select! {
        e = reader.run() => e,
        e = writer.run() => e,
        () = close => ConnError::Closed,
    };
    tracing::debug!(%error, "connection ended");
    error
}

struct Reader {
    incoming: mpsc::Receiver<Bytes>,
    decoder: Decoder,
    deliver: mpsc::Sender<(u8, Bytes)>,
    shared: Arc<Shared>,
    limit: RateLimit,
}

impl Reader {
    async fn run(mut self) -> ConnError {
        match self.go().await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn go(&mut self) -> Result<Infallible, ConnError> {
        loop {
            let chunk = self.incoming.recv().await.ok_or(ConnError::PeerClosed)?;
            // Not reading while over the rate: the socket buffers fill and
            // the peer's writes wait (pings included, so keep the rate sane).
            let wait = self.limit.charge(chunk.len(), Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let mut input = &chunk[..];
            while let Some(event) = self.decoder.decode(&mut input)? {
                match event {
                    Event::Ping => {
                        self.shared.pong_due.store(true, Ordering::Release);
                        self.shared.wake.notify_one();
                    }
                    Event::Pong => {
                        self.shared.pong_seen.store(true, Ordering::Release);
                        self.shared.wake.notify_one();
                    }
                    Event::Message { channel, data } => {
                        // Waits while the consumer is behind: backpressure.
                        self.deliver
                            .send((channel, data))
                            .await
                            .map_err(|_| ConnError::Closed)?;
                    }
                }
            }
        }
    }
}

struct Writer {
    outgoing: mpsc::Sender<Bytes>,
    /// One queue per scheduler lane, in the same order.
    queues: Vec<mpsc::Receiver<Bytes>>,
    scheduler: Scheduler,
    codec: PacketCodec,
    config: ConnConfig,
    shared: Arc<Shared>,
    limit: RateLimit,
}

impl Writer {
    async fn run(mut self) -> ConnError {
        match self.go().await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    /// Encodes pongs, pings and scheduled packets into chunks of up to
    /// [`WRITE_CHUNK`] bytes and hands each to the transport at once: no
    /// flush timer, so a lone vote leaves as soon as it is queued.
    async fn go(&mut self) -> Result<Infallible, ConnError> {
        let start = Instant::now();
        // A zero interval would ping in a busy loop.
        let ping_interval = self.config.ping_interval.max(Duration::from_millis(1));
        let mut next_ping = start + ping_interval;
        let mut pong_deadline: Option<Instant> = None;
        let mut buf = BytesMut::new();
        loop {
            let now = Instant::now();
            if self.shared.pong_seen.swap(false, Ordering::AcqRel) {
                pong_deadline = None;
            }
            if pong_deadline.is_some_and(|d| now >= d) {
                return Err(ConnError::PongTimeout);
            }
            if self.shared.pong_due.swap(false, Ordering::AcqRel) {
                buf.put_slice(&PONG);
            }
            if now >= next_ping {
                buf.put_slice(&PING);
                next_ping = now + ping_interval;
                // A ping sent while one is outstanding does not move the deadline.
                pong_deadline.get_or_insert(now + self.config.pong_timeout);
            }
            self.scheduler.decay_to(now - start);
            while buf.len() < WRITE_CHUNK {
                self.refill();
                if self.scheduler.next_packet(&self.codec, &mut buf).is_none() {
                    break;
                }
            }

            if !buf.is_empty() {
                // Reserve first so that a pong deadline can interrupt the
                // wait without losing the chunk.
                tokio::select! {
                    permit = self.outgoing.reserve() => {
                        let chunk = buf.split().freeze();
                        let wait = self.limit.charge(chunk.len(), Instant::now());
                        permit.map_err(|_| ConnError::WriteClosed)?.send(chunk);
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                    }
                    () = sleep_until(pong_deadline) => {
                        check_pong(&self.shared, &mut pong_deadline)?;
                    }
                }
                continue;
            }
            tokio::select! {
                () = self.shared.wake.notified() => {}
                () = tokio::time::sleep_until(next_ping) => {}
                () = sleep_until(pong_deadline) => check_pong(&self.shared, &mut pong_deadline)?,
            }
        }
    }

    /// Moves the next queued message into every lane that is free, so the
    /// scheduler sees all channels with data.
    fn refill(&mut self) {
        for (lane, queue) in self.queues.iter_mut().enumerate() {
            if self.scheduler.is_free(lane) {
                if let Ok(msg) = queue.try_recv() {
                    // The lane is free, so load cannot hand the message back.
                    let _ = self.scheduler.load(lane, msg);
                }
            }
        }
    }
}

/// At the pong deadline: a pong that arrived meanwhile clears it, else the
/// peer is gone.
fn check_pong(shared: &Shared, deadline: &mut Option<Instant>) -> Result<(), ConnError> {
    if shared.pong_seen.swap(false, Ordering::AcqRel) {
        *deadline = None;
        Ok(())
    } else {
        Err(ConnError::PongTimeout)
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
