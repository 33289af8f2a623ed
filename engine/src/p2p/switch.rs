//! The switch: the set of connected peers and the routes between them and
//! the reactors (consensus, mempool, block sync, evidence).
//!
//! It accepts inbound connections (at most `max_num_inbound_peers`, at most
//! [`MAX_PENDING_HANDSHAKES`] handshakes at a time), keeps dialling every
//! persistent peer for as long as it runs, refuses a second connection to a
//! connected peer (the first one stays), and hands each reactor, in order
//! per peer, `Added`, that peer's messages on the reactor's channels, then
//! `Removed`. A connection that fails for any reason removes its peer; a
//! persistent peer is then dialled again.
//!
//! Owns peer bookkeeping and routing. Never decodes a channel message: a
//! reactor that finds one invalid calls [`SwitchHandle::stop_peer`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::conn::{self, ChannelDescriptor, ConnConfig, ConnError, ConnHandle};
use super::node_info::NodeInfo;
use super::peer::{Direction, Inbound, Peer, PeerEvent, PeerInfo, RemovalReason};
use super::score::ScoreBook;
use super::secret::{Closer, PlainStream};
use super::transport::{self, Connection, Transport, TransportConfig};
use super::{parse_id_list, parse_peer_list, NodeId, P2pError, PeerAddr};
use crate::config::P2pConfig;
use crate::types::PrivateKey;

/// Inbound connections upgraded at the same time; further connections wait
/// in the kernel's backlog. Bounds the threads and memory strangers can make
/// us spend before they have authenticated.
pub const MAX_PENDING_HANDSHAKES: usize = 32;

/// When to dial a persistent peer that is not connected.
///
/// Attempt 0 follows start-up or the loss of the peer. Its base delay is
/// zero for the node with the smaller ID and `interval` for the other, so
/// two nodes that list each other do not dial at the same moment (each
/// would keep its own outbound connection and refuse the other's, and both
/// would be lost). Attempts 1 to [`DialSchedule::FIXED_ATTEMPTS`] wait
/// `interval`, later ones 3^k seconds (k = attempts beyond that, at most
/// [`DialSchedule::MAX_BACKOFF_EXPONENT`], about 16 h) — CometBFT's
/// schedule, except that we never give up. Every delay adds a random
/// `0..=jitter` and is then capped by `max_period`
/// (`persistent_peers_max_dial_period`) when that is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialSchedule {
    /// The fixed delay (CometBFT: 5 s).
    pub interval: Duration,
    /// The largest random addition (CometBFT: 3 s).
    pub jitter: Duration,
    /// The cap on any delay; `None` for no cap.
    pub max_period: Option<Duration>,
}

impl Default for DialSchedule {
    fn default() -> Self {
        DialSchedule {
            interval: Duration::from_secs(5),
            jitter: Duration::from_secs(3),
            max_period: None,
        }
    }
}

impl DialSchedule {
    /// Attempts at the fixed interval (CometBFT's `reconnectAttempts`).
    pub const FIXED_ATTEMPTS: u32 = 20;
    /// The largest exponent of the 3^k s backoff (`reconnectBackOffAttempts`).
    pub const MAX_BACKOFF_EXPONENT: u32 = 10;

    /// The delay before `attempt`, given the random part `jitter` and
    /// whether we let the peer dial first (`yield_first`: our ID is larger).
    pub fn delay(&self, attempt: u32, yield_first: bool, jitter: Duration) -> Duration {
        let base = match attempt {
            0 if yield_first => self.interval,
            0 => Duration::ZERO,
            n if n <= Self::FIXED_ATTEMPTS => self.interval,
            n => {
                let k = (n - Self::FIXED_ATTEMPTS).min(Self::MAX_BACKOFF_EXPONENT);
                Duration::from_secs(3u64.pow(k))
            }
        };
        let delay = base + jitter;
        match self.max_period {
            Some(max) => delay.min(max),
            None => delay,
        }
    }

    fn sample_jitter(&self) -> Duration {
        let max = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(0..=max))
    }
}

/// The first ban of a misbehaving peer: long enough that a reconnecting
/// attacker gets little done, short enough that an honest peer with a bug
/// (or one wrongly suspected) is back soon.
pub const DEFAULT_MISBEHAVIOUR_BAN: Duration = Duration::from_secs(10);

/// The switch's settings, normally [`SwitchConfig::from_config`] of the
/// `[p2p]` section.
#[derive(Clone, Debug)]
pub struct SwitchConfig {
    /// `host:port` to accept connections on (port 0 picks one); empty for
    /// none.
    pub listen_addr: String,
    /// The address announced to peers; empty to announce the bound one.
    pub external_address: String,
    /// Peers to stay connected to.
    pub persistent_peers: Vec<PeerAddr>,
    /// Peers exempt from the inbound limit.
    pub unconditional_peer_ids: Vec<NodeId>,
    /// Most inbound peers (unconditional ones not counted).
    pub max_num_inbound_peers: usize,
    /// Whether several peers may connect from one IP address.
    pub allow_duplicate_ip: bool,
    /// Dial and handshake time limits.
    pub transport: TransportConfig,
    /// When to redial persistent peers.
    pub dial: DialSchedule,
    /// Settings of each peer's MConnection.
    pub conn: ConnConfig,
    /// The first ban of a peer a reactor disconnected for misbehaving
    /// (doubling with each further strike, see [`super::score`]); zero
    /// never bans.
    pub misbehaviour_ban: Duration,
}

impl SwitchConfig {
    /// Reads the `[p2p]` keys the switch uses: `laddr`, `external_address`,
    /// `persistent_peers`, `unconditional_peer_ids`, `max_num_inbound_peers`,
    /// `allow_duplicate_ip`, `handshake_timeout`, `dial_timeout`,
    /// `persistent_peers_max_dial_period`, `max_packet_msg_payload_size`,
    /// `send_rate` and `recv_rate`.
    ///
    /// Not used: `max_num_outbound_peers` (as in CometBFT it limits only
    /// peers found by PEX, and persistent peers are all we dial), and the
    /// keys of features we do not have (seeds, PEX, address book, flush
    /// throttling).
    pub fn from_config(p2p: &P2pConfig) -> Result<Self, P2pError> {
        let listen_addr = transport::strip_tcp(&p2p.laddr)?.to_string();
        let config_err = |key: &'static str| {
            move |e: P2pError| P2pError::Config {
                key,
                reason: e.to_string(),
            }
        };
        let persistent_peers =
            parse_peer_list(&p2p.persistent_peers).map_err(config_err("persistent_peers"))?;
        let unconditional_peer_ids = parse_id_list(&p2p.unconditional_peer_ids)
            .map_err(config_err("unconditional_peer_ids"))?;
        for (key, value) in [
            ("handshake_timeout", p2p.handshake_timeout.0),
            ("dial_timeout", p2p.dial_timeout.0),
        ] {
            if value.is_zero() {
                return Err(P2pError::Config {
                    key,
                    reason: "must be positive, e.g. \"20s\"".into(),
                });
            }
        }
        if p2p.max_packet_msg_payload_size == 0 {
            return Err(P2pError::Config {
                key: "max_packet_msg_payload_size",
                reason: "must be positive; CometBFT's default is 1024".into(),
            });
        }
        let max_period = p2p.persistent_peers_max_dial_period.0;
        Ok(SwitchConfig {
            listen_addr,
            external_address: p2p.external_address.clone(),
            persistent_peers,
            unconditional_peer_ids,
            max_num_inbound_peers: usize::try_from(p2p.max_num_inbound_peers).unwrap_or(usize::MAX),
            allow_duplicate_ip: p2p.allow_duplicate_ip,
            transport: TransportConfig {
                handshake_timeout: p2p.handshake_timeout.0,
                dial_timeout: p2p.dial_timeout.0,
            },
            dial: DialSchedule {
                max_period: (!max_period.is_zero()).then_some(max_period),
                ..DialSchedule::default()
            },
            conn: ConnConfig {
                max_packet_payload: usize::try_from(p2p.max_packet_msg_payload_size)
                    .unwrap_or(usize::MAX),
                send_rate: p2p.send_rate,
                recv_rate: p2p.recv_rate,
                ..ConnConfig::default()
            },
            misbehaviour_ban: DEFAULT_MISBEHAVIOUR_BAN,
        })
    }
}

/// A switch being set up: reactors register their channels, then
/// [`Switch::start`] runs it.
pub struct Switch {
    config: SwitchConfig,
    key: PrivateKey,
    node_info: NodeInfo,
    descriptors: Vec<ChannelDescriptor>,
    routes: HashMap<u8, mpsc::Sender<Inbound>>,
    reactors: Vec<mpsc::Sender<Inbound>>,
}

impl Switch {
    /// A switch for the node with `key`. `node_info` describes us; the
    /// switch sets its `channels` (the registered ones) and `listen_addr`
    /// (`external_address`, else the bound address).
    pub fn new(config: SwitchConfig, key: &PrivateKey, node_info: NodeInfo) -> Self {
        Switch {
            config,
            key: PrivateKey(key.0.clone()),
            node_info,
            descriptors: Vec::new(),
            routes: HashMap::new(),
            reactors: Vec::new(),
        }
    }

    /// Registers one reactor: it owns `channels` (advertised to peers, and
    /// every message on them goes to it) and receives every peer event.
    /// `capacity` bounds its queue; a full queue makes the sending peer's
    /// connection wait. A channel may have only one owner.
    pub fn register(
        &mut self,
        channels: Vec<ChannelDescriptor>,
        capacity: usize,
    ) -> Result<mpsc::Receiver<Inbound>, P2pError> {
        let mut ids = HashSet::new();
        for d in &channels {
            if self.routes.contains_key(&d.id) || !ids.insert(d.id) {
                return Err(P2pError::ChannelTaken(d.id));
            }
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        for d in channels {
            self.routes.insert(d.id, tx.clone());
            self.descriptors.push(d);
        }
        self.reactors.push(tx);
        Ok(rx)
    }

    /// Binds `listen_addr` (if set) and starts accepting and dialling.
    pub async fn start(self) -> Result<SwitchHandle, P2pError> {
        let listener = if self.config.listen_addr.is_empty() {
            None
        } else {
            Some(transport::listen(&self.config.listen_addr).await?)
        };
        self.launch(listener)
    }

    /// Starts with a listener bound by the caller (who then knows the port
    /// before starting); `listen_addr` is ignored. Must run inside a tokio
    /// runtime.
    pub fn start_on(self, listener: TcpListener) -> Result<SwitchHandle, P2pError> {
        self.launch(Some(listener))
    }

    fn launch(self, listener: Option<TcpListener>) -> Result<SwitchHandle, P2pError> {
        let Switch {
            config,
            key,
            mut node_info,
            descriptors,
            routes,
            reactors,
        } = self;
        let local_addr = match &listener {
            Some(l) => Some(l.local_addr().map_err(|source| P2pError::Io {
                what: "reading the listen address".into(),
                source,
            })?),
            None => None,
        };
        node_info.channels = descriptors.iter().map(|d| d.id).collect();
        if !config.external_address.is_empty() {
            node_info.listen_addr = config.external_address.clone();
        } else if let Some(addr) = local_addr {
            node_info.listen_addr = addr.to_string();
        }
        let transport = Transport::new(&key, node_info, config.transport.clone())?;
        let our_id = transport.id();
        let inner = Arc::new(Inner {
            scores: Mutex::new(ScoreBook::new(config.misbehaviour_ban)),
            persistent: config.persistent_peers.iter().map(|p| p.id).collect(),
            unconditional: config.unconditional_peer_ids.iter().copied().collect(),
            config,
            transport,
            descriptors,
            routes,
            reactors,
            peers: Mutex::new(BTreeMap::new()),
            serials: AtomicU64::new(0),
            removals: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            local_addr,
        });
        if let Some(listener) = listener {
            tokio::spawn(accept_loop(inner.clone(), listener));
        }
        for addr in &inner.config.persistent_peers {
            if addr.id == our_id {
                // Testnets list every node, this one included.
                debug!(peer = %addr, "not dialling ourselves");
                continue;
            }
            tokio::spawn(dial_loop(inner.clone(), addr.clone()));
        }
        info!(id = %our_id, listen = ?local_addr, "p2p switch started");
        Ok(SwitchHandle { inner })
    }
}

/// Talks to a running switch; cheap to clone.
#[derive(Clone)]
pub struct SwitchHandle {
    inner: Arc<Inner>,
}

impl SwitchHandle {
    /// Our node info as sent to peers.
    pub fn node_info(&self) -> &NodeInfo {
        self.inner.transport.node_info()
    }

    /// Our ID.
    pub fn id(&self) -> NodeId {
        self.inner.transport.id()
    }

    /// The address the listener is bound to, if listening.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr
    }

    /// The connected peers, ordered by ID.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.inner
            .lock_peers()
            .values()
            .map(|p| (*p.info).clone())
            .collect()
    }

    /// How much longer `id` is banned for misbehaving, if it is.
    pub fn banned_for(&self, id: &NodeId) -> Option<Duration> {
        self.inner.lock_scores().banned_for(id, Instant::now())
    }

    /// Whether `id` is connected.
    pub fn is_connected(&self, id: &NodeId) -> bool {
        self.inner.lock_peers().contains_key(id)
    }

    fn peer(&self, id: &NodeId) -> Result<Peer, P2pError> {
        self.inner
            .lock_peers()
            .get(id)
            .cloned()
            .ok_or(P2pError::NotConnected(*id))
    }

    /// Sends `msg` to `peer` on `channel`, waiting while its queue is full.
    /// Fails if the peer is not connected or does not serve the channel.
    pub async fn send(&self, peer: NodeId, channel: u8, msg: Bytes) -> Result<(), P2pError> {
        self.peer(&peer)?.send(channel, msg).await
    }

    /// Sends if the peer is connected, serves the channel and has room;
    /// false if the message was dropped.
    pub fn try_send(&self, peer: NodeId, channel: u8, msg: Bytes) -> bool {
        self.peer(&peer).is_ok_and(|p| p.try_send(channel, msg))
    }

    /// Offers `msg` to every peer serving `channel` without waiting (a full
    /// queue drops it for that peer); returns how many took it.
    pub fn broadcast(&self, channel: u8, msg: Bytes) -> usize {
        let peers: Vec<Peer> = self.inner.lock_peers().values().cloned().collect();
        peers
            .iter()
            .filter(|p| p.try_send(channel, msg.clone()))
            .count()
    }

    /// Disconnects `peer` for misbehaving; reactors get `Removed` with
    /// [`RemovalReason::Stopped`]. It is banned for a while (see
    /// [`SwitchConfig::misbehaviour_ban`]) unless it is a persistent or
    /// unconditional peer, which is dialled again as usual.
    pub fn stop_peer(&self, peer: NodeId, reason: impl Into<String>) -> Result<(), P2pError> {
        let p = self.peer(&peer)?;
        // A full slot means a stop is already on its way.
        let _ = p.stop.try_send(reason.into());
        Ok(())
    }

    /// Stops accepting and dialling and disconnects every peer.
    pub fn stop(&self) {
        self.inner.shutdown.send_replace(true);
        for p in self.inner.lock_peers().values() {
            p.conn.close();
        }
    }
}

struct Inner {
    config: SwitchConfig,
    transport: Transport,
    descriptors: Vec<ChannelDescriptor>,
    routes: HashMap<u8, mpsc::Sender<Inbound>>,
    reactors: Vec<mpsc::Sender<Inbound>>,
    persistent: HashSet<NodeId>,
    unconditional: HashSet<NodeId>,
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    /// Strikes and bans; locked after `peers` when both are needed.
    scores: Mutex<ScoreBook>,
    serials: AtomicU64,
    /// Bumped after every removal; dialers wait on it.
    removals: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    local_addr: Option<SocketAddr>,
}

impl Inner {
    fn lock_peers(&self) -> MutexGuard<'_, BTreeMap<NodeId, Peer>> {
        // No code panics while holding the lock, so a poisoned lock still
        // holds a consistent map.
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_scores(&self) -> MutexGuard<'_, ScoreBook> {
        // As `lock_peers`: no code panics while holding it.
        self.scores.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_ip(&self, ip: IpAddr) -> bool {
        self.lock_peers()
            .values()
            .any(|p| p.info.remote_addr.ip() == ip)
    }

    /// Admits an upgraded connection as a peer, or refuses it (and closes
    /// it) with the reason.
    fn add_peer(self: &Arc<Self>, conn: Connection) -> Result<(), P2pError> {
        let Connection {
            node_info,
            remote_addr,
            direction,
            stream,
        } = conn;
        let id = node_info.id;
        let mut peers = self.lock_peers();
        if let Err(e) = self.admissible(&peers, id, direction, remote_addr.ip()) {
            drop(peers);
            stream.closer.close();
            return Err(e);
        }
        let PlainStream {
            incoming,
            outgoing,
            closer,
        } = stream;
        let (handle, msgs, done) = conn::spawn(
            incoming,
            outgoing,
            self.descriptors.clone(),
            self.config.conn,
        );
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let info = Arc::new(PeerInfo {
            id,
            node_info,
            direction,
            persistent: self.persistent.contains(&id),
            remote_addr,
        });
        let serial = self.serials.fetch_add(1, Ordering::Relaxed);
        peers.insert(
            id,
            Peer {
                info: info.clone(),
                conn: handle.clone(),
                stop: stop_tx,
                serial,
            },
        );
        drop(peers);
        info!(peer = %id, addr = %remote_addr, ?direction, "peer added");
        tokio::spawn(run_peer(
            self.clone(),
            PeerTask {
                info,
                handle,
                msgs,
                done,
                stop: stop_rx,
                closer,
                serial,
            },
        ));
        Ok(())
    }

    fn admissible(
        &self,
        peers: &BTreeMap<NodeId, Peer>,
        id: NodeId,
        direction: Direction,
        ip: IpAddr,
    ) -> Result<(), P2pError> {
        if *self.shutdown.borrow() {
            return Err(P2pError::Stopped);
        }
        if peers.contains_key(&id) {
            return Err(P2pError::DuplicatePeer(id));
        }
        if let Some(left) = self.lock_scores().banned_for(&id, Instant::now()) {
            return Err(P2pError::Banned { id, left });
        }
        if direction == Direction::Inbound && !self.unconditional.contains(&id) {
            let inbound = peers
                .values()
                .filter(|p| {
                    p.info.direction == Direction::Inbound
                        && !self.unconditional.contains(&p.info.id)
                })
                .count();
            if inbound >= self.config.max_num_inbound_peers {
                return Err(P2pError::TooManyInboundPeers(inbound));
            }
        }
        if !self.config.allow_duplicate_ip && peers.values().any(|p| p.info.remote_addr.ip() == ip)
        {
            return Err(P2pError::DuplicateIp(ip));
        }
        Ok(())
    }
}

/// Resolves when the switch is told to stop (or is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let permit = tokio::select! {
            permit = pending.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = stopping(&mut shutdown) => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopping(&mut shutdown) => return,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, don't spin.
                warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !inner.config.allow_duplicate_ip && inner.has_ip(addr.ip()) {
            info!(%addr, "inbound connection refused: a peer from this IP is connected");
            continue;
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let result = match inner.transport.upgrade(stream, None).await {
                Ok(conn) => inner.add_peer(conn),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                info!(%addr, reason = %e, "inbound peer refused");
            }
        });
    }
}

async fn dial_loop(inner: Arc<Inner>, addr: PeerAddr) {
    let mut removals = inner.removals.subscribe();
    let mut shutdown = inner.shutdown.subscribe();
    let yield_first = inner.transport.id() > addr.id;
    let mut attempt: u32 = 0;
    loop {
        // Mark removals so far as seen before looking, so none is missed.
        removals.borrow_and_update();
        if inner.lock_peers().contains_key(&addr.id) {
            attempt = 0;
            tokio::select! {
                changed = removals.changed() => if changed.is_err() { return },
                () = stopping(&mut shutdown) => return,
            }
            continue;
        }
        let schedule = &inner.config.dial;
        let delay = schedule.delay(attempt, yield_first, schedule.sample_jitter());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopping(&mut shutdown) => return,
        }
        if inner.lock_peers().contains_key(&addr.id) {
            continue;
        }
        // A banned peer is dialled when its ban ends, not before.
        let banned = inner.lock_scores().banned_for(&addr.id, Instant::now());
        if let Some(left) = banned {
            tokio::select! {
                () = tokio::time::sleep(left) => {}
                () = stopping(&mut shutdown) => return,
            }
        }
        attempt = attempt.saturating_add(1);
        let dialled = tokio::select! {
            dialled = inner.transport.dial(&addr) => dialled,
            () = stopping(&mut shutdown) => return,
        };
        match dialled.and_then(|conn| inner.add_peer(conn)) {
            Ok(()) => debug!(peer = %addr, "persistent peer connected"),
            Err(e) => {
                info!(peer = %addr, attempt, reason = %e, "dialling persistent peer failed; will retry")
            }
        }
    }
}

/// What a peer's task needs besides the switch.
struct PeerTask {
    info: Arc<PeerInfo>,
    handle: ConnHandle,
    msgs: mpsc::Receiver<(u8, Bytes)>,
    done: JoinHandle<ConnError>,
    stop: mpsc::Receiver<String>,
    closer: Closer,
    serial: u64,
}

/// One peer's life: announce it, route its messages, and when it ends (its
/// connection fails, `stop_peer`, or the switch stops) announce the removal
/// before forgetting it, so a reconnection's `Added` always comes after.
async fn run_peer(inner: Arc<Inner>, task: PeerTask) {
    let PeerTask {
        info,
        handle,
        mut msgs,
        done,
        mut stop,
        closer,
        serial,
    } = task;
    let id = info.id;
    for reactor in &inner.reactors {
        let _ = reactor
            .send(Inbound::Peer(PeerEvent::Added(info.clone())))
            .await;
    }
    let mut shutdown = inner.shutdown.subscribe();
    let stopped = async {
        tokio::select! {
            reason = stop.recv() => RemovalReason::Stopped(reason.unwrap_or_default()),
            () = stopping(&mut shutdown) => RemovalReason::Shutdown,
        }
    };
    tokio::pin!(stopped);
    let reason = loop {
        let next = tokio::select! {
            biased;
            reason = &mut stopped => break reason,
            next = msgs.recv() => next,
        };
        let Some((channel, msg)) = next else {
            break connection_end(done).await;
        };
        let Some(reactor) = inner.routes.get(&channel) else {
            // The MConnection only accepts our channels, which all have a
            // route; nothing to deliver otherwise.
            continue;
        };
        let delivery = Inbound::Message {
            peer: id,
            channel,
            msg,
        };
        tokio::select! {
            biased;
            reason = &mut stopped => break reason,
            _ = reactor.send(delivery) => {}
        }
    };
    handle.close();
    closer.close();
    info!(peer = %id, %reason, "peer removed");
    // Peers the operator named (persistent, unconditional) are trusted
    // enough never to be banned, as in CometBFT; the others are.
    let trusted = info.persistent || inner.unconditional.contains(&id);
    if let (RemovalReason::Stopped(why), false) = (&reason, trusted) {
        let now = Instant::now();
        let mut scores = inner.lock_scores();
        let ban = scores.strike(id, now);
        if !ban.is_zero() {
            let strikes = scores.strikes(&id, now);
            drop(scores);
            warn!(peer = %id, ?ban, strikes, reason = %why, "peer banned for misbehaving");
        }
    }
    for reactor in &inner.reactors {
        let _ = reactor
            .send(Inbound::Peer(PeerEvent::Removed(id, reason.clone())))
            .await;
    }
    {
        let mut peers = inner.lock_peers();
        if peers.get(&id).is_some_and(|p| p.serial == serial) {
            peers.remove(&id);
        }
    }
    inner.removals.send_modify(|n| *n = n.wrapping_add(1));
}

/// The reason a connection's message stream ended: the MConnection's error.
async fn connection_end(done: JoinHandle<ConnError>) -> RemovalReason {
    // The stream closes when the connection task ends, so `done` is ready
    // or about to be; the bound only guards against a stray sender.
    match tokio::time::timeout(Duration::from_secs(5), done).await {
        Ok(Ok(e)) => RemovalReason::ConnectionFailed(e.to_string()),
        Ok(Err(join)) => RemovalReason::ConnectionFailed(format!("connection task failed: {join}")),
        Err(_) => RemovalReason::ConnectionFailed("message stream ended".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> DialSchedule {
        DialSchedule {
            interval: Duration::from_secs(5),
            jitter: Duration::from_secs(3),
            max_period: None,
        }
    }

    #[test]
    fn first_dial_is_immediate_only_for_the_smaller_id() {
        let j = Duration::from_millis(700);
        assert_eq!(s().delay(0, false, Duration::ZERO), Duration::ZERO);
        assert_eq!(s().delay(0, false, j), j);
        assert_eq!(s().delay(0, true, j), Duration::from_secs(5) + j);
    }

    #[test]
    fn schedule_is_fixed_then_exponential_and_never_ends() {
        let z = Duration::ZERO;
        assert_eq!(s().delay(1, false, z), Duration::from_secs(5));
        assert_eq!(s().delay(20, false, z), Duration::from_secs(5));
        assert_eq!(s().delay(21, false, z), Duration::from_secs(3));
        assert_eq!(s().delay(22, false, z), Duration::from_secs(9));
        assert_eq!(s().delay(30, false, z), Duration::from_secs(59049));
        assert_eq!(s().delay(u32::MAX, true, z), Duration::from_secs(59049));
    }

    #[test]
    fn max_dial_period_caps_every_delay() {
        let capped = DialSchedule {
            max_period: Some(Duration::from_secs(30)),
            ..s()
        };
        let z = Duration::ZERO;
        assert_eq!(
            capped.delay(5, false, Duration::from_secs(2)),
            Duration::from_secs(7)
        );
        assert_eq!(capped.delay(25, false, z), Duration::from_secs(30));
        assert_eq!(capped.delay(1000, false, z), Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_in_range() {
        let sched = DialSchedule {
            jitter: Duration::from_millis(10),
            ..s()
        };
        for _ in 0..100 {
            assert!(sched.sample_jitter() <= Duration::from_millis(10));
        }
    }

    #[test]
    fn a_channel_has_one_owner() {
        let key = PrivateKey::from_seed([1; 32]);
        let info = NodeInfo::ours(NodeId::from_public_key(&key.public_key()), "c", "m", 0);
        let config = SwitchConfig::from_config(&P2pConfig::default()).expect("valid");
        let mut switch = Switch::new(config, &key, info);
        let desc = |id| ChannelDescriptor {
            id,
            priority: 1,
            send_queue_capacity: 1,
            recv_message_capacity: 1,
        };
        switch
            .register(vec![desc(0x20), desc(0x21)], 1)
            .expect("free");
        switch.register(vec![], 1).expect("events only");
        let e = switch
            .register(vec![desc(0x30), desc(0x21)], 1)
            .expect_err("refused");
        assert!(matches!(e, P2pError::ChannelTaken(0x21)), "{e}");
        let e = switch
            .register(vec![desc(0x30), desc(0x30)], 1)
            .expect_err("refused");
        assert!(matches!(e, P2pError::ChannelTaken(0x30)), "{e}");
        // A refused registration claims nothing.
        switch.register(vec![desc(0x30)], 1).expect("still free");
        assert_eq!(switch.descriptors.len(), 3);
    }

    #[test]
    fn config_comes_from_the_p2p_section() {
        let id = "0123456789abcdef0123456789abcdef01234567";
        let p2p = P2pConfig {
            persistent_peers: format!("{id}@10.0.0.1:26656,tcp://{id}@host:1"),
            unconditional_peer_ids: id.into(),
            persistent_peers_max_dial_period: crate::config::GoDuration::from_millis(60_000),
            ..P2pConfig::default()
        };
        let c = SwitchConfig::from_config(&p2p).expect("valid");
        assert_eq!(c.listen_addr, "0.0.0.0:26656");
        assert_eq!(c.persistent_peers.len(), 2);
        assert_eq!(c.unconditional_peer_ids.len(), 1);
        assert_eq!(c.max_num_inbound_peers, 40);
        assert!(!c.allow_duplicate_ip);
        assert_eq!(c.transport.handshake_timeout, Duration::from_secs(20));
        assert_eq!(c.transport.dial_timeout, Duration::from_secs(3));
        assert_eq!(c.dial.max_period, Some(Duration::from_secs(60)));
        assert_eq!(c.conn.max_packet_payload, 1024);
        let defaults = SwitchConfig::from_config(&P2pConfig::default()).expect("valid");
        assert_eq!(defaults.dial.max_period, None);
    }

    #[test]
    fn config_errors_name_the_key() {
        let bad_peer = P2pConfig {
            persistent_peers: "nobody@1.2.3.4:1".into(),
            ..P2pConfig::default()
        };
        let e = SwitchConfig::from_config(&bad_peer)
            .expect_err("refused")
            .to_string();
        assert!(
            e.starts_with("[p2p] persistent_peers: invalid peer address"),
            "{e}"
        );
        let unix = P2pConfig {
            laddr: "unix:///tmp/p2p.sock".into(),
            ..P2pConfig::default()
        };
        let e = SwitchConfig::from_config(&unix)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("laddr") && e.contains("only tcp://"), "{e}");
        let zero = P2pConfig {
            handshake_timeout: crate::config::GoDuration::from_millis(0),
            ..P2pConfig::default()
        };
        let e = SwitchConfig::from_config(&zero)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("handshake_timeout: must be positive"), "{e}");
    }
}
