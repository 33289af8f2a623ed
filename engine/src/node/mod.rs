//! The node: the only place that wires the parts together.
//!
//! Start-up: load the home, open the store, connect the application, run the
//! handshake, open the WAL and replay it into a fresh consensus core, serve
//! RPC, then drive consensus. The driver is the single place where the
//! core's outputs become I/O: signing through the double-sign guard, the
//! WAL (each input recorded before the core sees it; own messages and
//! end-of-height synced), timers, PrepareProposal/ProcessProposal, and
//! block execution on a decision.
//!
//! The p2p switch starts after the handshake (our node info names the
//! application's version); each reactor task gets the inbound queue of its
//! channels: consensus gossip, the mempool, block sync and evidence.
//!
//! Before each driver starts, block sync catches up with the peers; a
//! driver whose node falls behind again is stopped, and the node catches
//! up and starts a fresh one.

mod backend;
mod commit;
mod consensus_reactor;
mod driver;
mod mempool_reactor;
mod sync;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;

use backend::NodeBackend;
use driver::Driver;

use crate::app_conn::{AppConnConfig, AppConns, AppError};
use crate::block_exec::{self, BlockExecError};

use crate::execution;
use crate::home::{Home, HomeError};
use crate::mempool::Mempool;
use crate::p2p::node_info::NodeInfo;
use crate::p2p::peer::Inbound;
use crate::p2p::switch::{Switch, SwitchConfig, SwitchHandle};
use crate::p2p::{self, P2pError};
use crate::privval::{FilePV, PrivvalError};
use crate::store::{State, Store, StoreError};
use crate::types::{Hash, Height, Time};
use crate::wal::{Wal, WalError, WalOptions};

/// Why the node stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The home directory (config, genesis, keys).
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The application.
    #[error(transparent)]
    App(#[from] AppError),
    /// Handshake or block execution.
    #[error(transparent)]
    Exec(#[from] BlockExecError),
    /// The state transition.
    #[error(transparent)]
    Transition(#[from] execution::ExecError),
    /// The signer (including a refused double sign).
    #[error(transparent)]
    Privval(#[from] PrivvalError),
    /// The consensus WAL.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// Vote-extension data the node produced or stored breaks the rules.
    #[error(transparent)]
    VoteExtension(#[from] crate::vote_ext::VoteExtensionError),
    /// The p2p layer's configuration or listener.
    #[error(transparent)]
    P2p(#[from] P2pError),
    /// A task the node cannot run without ended (a bug: it panicked, or
    /// the switch is gone); the node stops rather than run without it.
    #[error("the {0} task stopped; the node cannot go on without it")]
    TaskStopped(&'static str),
    /// The block sync task is gone (it ends only if it panicked).
    #[error("the block sync task stopped")]
    SyncStopped,
    /// The RPC listener.
    #[error("rpc listen address {addr}: {reason}")]
    Rpc {
        /// The address.
        addr: String,
        /// Why it failed.
        reason: String,
    },
}

impl NodeError {
    /// The application's failure behind this error, if that is what it is:
    /// the node then waits for the application instead of exiting. A
    /// protocol violation the state transition caught (a wrong number of tx
    /// results) is not one: it would recur, so the node halts.
    fn app_failure(&self) -> Option<&AppError> {
        match self {
            NodeError::App(e) | NodeError::Exec(BlockExecError::App(e)) => Some(e),
            _ => None,
        }
    }
}

/// The current wall-clock time.
pub fn now() -> Time {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Time {
        secs: since.as_secs() as i64,
        nanos: since.subsec_nanos(),
    }
}

/// A committed transaction, for `broadcast_tx_commit` waiters.
#[derive(Clone, Debug)]
struct TxEvent {
    hash: Hash,
    height: Height,
    result: abci::proto::ExecTxResult,
}

/// What the RPC and the driver share.
struct Shared {
    home: Home,
    chain_id: String,
    node_id: String,
    store: Arc<Store>,
    /// Replaced when the node reconnects to a restarted application.
    app: RwLock<AppConns>,
    state: RwLock<State>,
    mempool: Mutex<Mempool>,
    /// Rung when the mempool reports transactions available (once per
    /// height, see [`Mempool::notify_txs_available`]); the driver then
    /// releases a round 0 that waits for them. A watch, so a ring while
    /// the driver is busy is kept, not lost.
    txs_available: tokio::sync::watch::Sender<()>,
    /// Rung after every transaction admitted to the mempool; wakes the
    /// mempool reactor's per-peer gossip.
    tx_added: tokio::sync::watch::Sender<()>,
    events: broadcast::Sender<TxEvent>,
    validator: (crate::types::Address, crate::types::PublicKey),
    /// The p2p switch (peers for `net_info`, sends for the reactors).
    switch: SwitchHandle,
    /// Asks the running driver for `consensus_state`.
    round_state: tokio::sync::mpsc::Sender<driver::RoundStateRequest>,
    /// A background mempool recheck runs (see [`Shared::request_recheck`]).
    recheck_running: std::sync::atomic::AtomicBool,
    /// Another recheck is due once the running one ends.
    recheck_again: std::sync::atomic::AtomicBool,
    /// Block sync is catching up (`/status` reports `catching_up`).
    catching_up: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn state(&self) -> State {
        // A poisoned lock means a panic elsewhere; the last state is still valid.
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The last block's time, without copying the state (read per vote).
    fn last_block_time(&self) -> Time {
        match self.state.read() {
            Ok(s) => s.last_block_time,
            Err(p) => p.into_inner().last_block_time,
        }
    }

    /// Runs `f` on the current state without copying it (per received vote).
    fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        match self.state.read() {
            Ok(s) => f(&s),
            Err(p) => f(&p.into_inner()),
        }
    }

    /// Whether vote extensions are enabled at `height` under the current
    /// consensus parameters (those of the height being decided).
    fn vote_extensions_enabled(&self, height: Height) -> bool {
        self.with_state(|s| s.consensus_params.vote_extensions_enabled(height))
    }

    /// The current connections to the application (cheap to clone).
    fn app(&self) -> AppConns {
        match self.app.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_app(&self, app: AppConns) {
        match self.app.write() {
            Ok(mut a) => *a = app,
            Err(p) => *p.into_inner() = app,
        }
    }

    fn set_state(&self, state: State) {
        match self.state.write() {
            Ok(mut s) => *s = state,
            Err(p) => *p.into_inner() = state,
        }
    }

    /// Runs CheckTx (type Recheck) again on every tx left in the mempool
    /// and drops those the application now refuses, as CometBFT does after
    /// each block when `mempool.recheck` is on, and after the application
    /// came back (its state may differ). Requests are pipelined on the
    /// mempool connection. A recheck that times out keeps its tx; a failed
    /// connection is the application's failure.
    async fn recheck_mempool(&self) -> Result<(), AppError> {
        let (height, txs) = self.with_mempool(|m| m.recheck_list());
        if txs.is_empty() {
            // Nothing waits for a recheck: what is left may be proposed.
            self.notify_txs_available();
            return Ok(());
        }
        let app = self.app();
        let mut calls = tokio::task::JoinSet::new();
        let mut removed = 0usize;
        let total = txs.len();
        for chunk in txs.chunks(256) {
            for t in chunk {
                let (app, t) = (app.clone(), t.clone());
                calls.spawn(async move {
                    let req = abci::proto::RequestCheckTx {
                        tx: t.tx.to_vec().into(),
                        r#type: abci::proto::CheckTxType::Recheck as i32,
                    };
                    (t.hash, app.check_tx(req).await)
                });
            }
            while let Some(done) = calls.join_next().await {
                let Ok((hash, result)) = done else { continue };
                match result {
                    Ok(r) if r.code == 0 => self.with_mempool(|m| m.mark_rechecked(&hash, height)),
                    Ok(_) => {
                        removed += 1;
                        self.with_mempool(|m| m.remove_invalid(&hash));
                    }
                    Err(e) if matches!(e.source, abci::Error::Timeout { .. }) => {
                        tracing::warn!(error = %e, "recheck timed out; the tx stays");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        tracing::debug!(total, removed, "rechecked the mempool");
        // What passed may be proposed now.
        self.notify_txs_available();
        Ok(())
    }

    /// Rechecks the mempool in the background, off consensus's path: a
    /// large mempool must not delay the next height's proposal. Requests
    /// while a recheck runs coalesce into one more pass after it. Until a
    /// transaction passes its recheck it is not reaped (see
    /// [`Mempool::reap`]), so a proposal made meanwhile carries only
    /// transactions checked against the current state; those left are
    /// reported available when the pass ends. A failed application
    /// connection is noticed by the driver's health check, so it is only
    /// logged here.
    fn request_recheck(self: &Arc<Self>) {
        use std::sync::atomic::Ordering::SeqCst;
        self.recheck_again.store(true, SeqCst);
        if self.recheck_running.swap(true, SeqCst) {
            return;
        }
        let shared = self.clone();
        tokio::spawn(async move {
            loop {
                while shared.recheck_again.swap(false, SeqCst) {
                    if let Err(e) = shared.recheck_mempool().await {
                        tracing::warn!(error = %e, "mempool recheck failed");
                    }
                }
                shared.recheck_running.store(false, SeqCst);
                // A request that came after the last swap but before the
                // flag cleared found it set and left: take it here.
                if !shared.recheck_again.load(SeqCst) || shared.recheck_running.swap(true, SeqCst) {
                    return;
                }
            }
        });
    }

    fn with_mempool<R>(&self, f: impl FnOnce(&mut Mempool) -> R) -> R {
        match self.mempool.lock() {
            Ok(mut m) => f(&mut m),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Tells the driver that transactions are available, the first time
    /// per height the mempool holds some. Call after the mempool changed.
    fn notify_txs_available(&self) {
        if self.with_mempool(|m| m.notify_txs_available()) {
            self.txs_available.send_replace(());
        }
    }
}

/// Connects to the application again and replays what it lacks, retrying
/// with a growing pause until it succeeds; returns the state to resume from.
async fn reconnect(shared: &Shared, genesis: &crate::genesis::GenesisDoc) -> State {
    let proxy_app = &shared.home.config.proxy_app;
    let mut pause = Duration::from_millis(250);
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
        let app = match AppConns::connect(proxy_app, &AppConnConfig::default()).await {
            Ok(app) => app,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?pause, "the application is still unavailable");
                continue;
            }
        };
        match block_exec::handshake(&app, &shared.store, genesis).await {
            Ok(state) => {
                shared.set_app(app);
                return state;
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?pause, "the handshake with the application failed");
            }
        }
    }
}

/// Each reactor's inbound queue from the switch.
struct ReactorQueues {
    consensus: tokio::sync::mpsc::Receiver<Inbound>,
    mempool: tokio::sync::mpsc::Receiver<Inbound>,
    blocksync: tokio::sync::mpsc::Receiver<Inbound>,
    evidence: tokio::sync::mpsc::Receiver<Inbound>,
}

/// Starts the p2p switch from the `[p2p]` section, with CometBFT's channels
/// split among the reactors.
async fn start_switch(
    home: &Home,
    key: &crate::types::PrivateKey,
    state: &State,
) -> Result<(SwitchHandle, ReactorQueues), NodeError> {
    let config = &home.config;
    let id = p2p::NodeId::from_public_key(&key.public_key());
    let mut info = NodeInfo::ours(id, &state.chain_id, &config.moniker, state.version.app);
    info.rpc_address = config.rpc.laddr.clone();
    let mut switch = Switch::new(SwitchConfig::from_config(&config.p2p)?, key, info);
    let channels = p2p::conn::cometbft_channels(
        usize::try_from(config.mempool.max_tx_bytes).unwrap_or(usize::MAX),
    );
    let mut take = |ids: &[u8], capacity: usize| {
        let mine = channels
            .iter()
            .filter(|d| ids.contains(&d.id))
            .cloned()
            .collect();
        switch.register(mine, capacity)
    };
    let queues = ReactorQueues {
        consensus: take(
            &[
                p2p::STATE_CHANNEL,
                p2p::DATA_CHANNEL,
                p2p::VOTE_CHANNEL,
                p2p::VOTE_SET_BITS_CHANNEL,
            ],
            1024,
        )?,
        mempool: take(&[p2p::MEMPOOL_CHANNEL], 256)?,
        blocksync: take(&[p2p::BLOCKSYNC_CHANNEL], 64)?,
        evidence: take(&[p2p::EVIDENCE_CHANNEL], 16)?,
    };
    Ok((switch.start().await?, queues))
}

/// Runs `task` in the background; if it ever ends (returns or panics),
/// `fatal` is told its name.
fn essential(
    name: &'static str,
    task: impl std::future::Future<Output = ()> + Send + 'static,
    fatal: &tokio::sync::mpsc::Sender<&'static str>,
) {
    let handle = tokio::spawn(task);
    let fatal = fatal.clone();
    tokio::spawn(async move {
        if let Err(e) = handle.await {
            tracing::error!(task = name, error = %e, "a node task failed");
        }
        let _ = fatal.send(name).await;
    });
}

/// The node's result when the shutdown future resolved with `stop`.
fn stopped(stop: Option<&'static str>) -> Result<(), NodeError> {
    match stop {
        None => Ok(()),
        Some(task) => Err(NodeError::TaskStopped(task)),
    }
}

/// Drains a reactor queue whose messages nobody handles yet, so that the
/// peers sending them are not held up.
async fn drain(mut queue: tokio::sync::mpsc::Receiver<Inbound>, what: &'static str) {
    while let Some(inbound) = queue.recv().await {
        if let Inbound::Message { peer, channel, msg } = inbound {
            tracing::trace!(%peer, channel, len = msg.len(), what, "message not handled yet");
        }
    }
}

/// Runs `work` while no driver runs: what peers send consensus is dropped
/// (nothing would take it, and a full queue would stall the peers'
/// connections, block sync included), and `consensus_state` requests go
/// unanswered (the RPC reports that consensus is not running). What is dropped is not lost for
/// good: peers send a lagging node the commit of its height (catch-up),
/// and block sync takes over when it falls further behind.
async fn while_draining<T>(
    work: impl std::future::Future<Output = T>,
    links: &mut driver::Links,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            got = links.peers.recv() => if got.is_none() {
                return work.await;
            },
            // Dropping the request answers it with an error.
            Some(_) = links.round_state.recv() => {}
        }
    }
}

/// Runs the node at `home` until `shutdown` resolves or a fatal error.
pub async fn run(
    home: Home,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let config = home.config.clone();
    let genesis = home.genesis()?;
    let node_key = home.node_key()?;
    let node_id = node_key.id();
    let store = Arc::new(Store::open(&Store::path_in_home(&home.dir))?);
    tracing::info!(app = %config.proxy_app, "connecting to the application");
    let app = AppConns::connect(&config.proxy_app, &AppConnConfig::default()).await?;
    let state = block_exec::handshake(&app, &store, &genesis).await?;
    let mut pv = FilePV::load(home.privval_paths())?;
    let (mut wal, truncation) = Wal::open(
        &home.data_dir().join("cs.wal"),
        WalOptions::default(),
        now(),
    )?;
    if let Some(t) = truncation {
        tracing::warn!(?t, "the WAL had a damaged tail; it was truncated");
    }
    let (switch, queues) = start_switch(&home, &node_key.0, &state).await?;
    let (events, _) = broadcast::channel(1024);
    let (round_state, round_state_rx) = tokio::sync::mpsc::channel(16);
    let shared = Arc::new(Shared {
        chain_id: state.chain_id.clone(),
        node_id,
        validator: (pv.address(), pv.public_key()),
        mempool: Mutex::new(Mempool::new(
            config.mempool.clone(),
            state.last_block_height,
        )),
        txs_available: tokio::sync::watch::channel(()).0,
        tx_added: tokio::sync::watch::channel(()).0,
        state: RwLock::new(state),
        store,
        app: RwLock::new(app),
        events,
        home,
        switch: switch.clone(),
        round_state,
        recheck_running: Default::default(),
        recheck_again: Default::default(),
        catching_up: std::sync::atomic::AtomicBool::new(false),
    });
    let (gossip_tx, gossip_rx) = tokio::sync::mpsc::unbounded_channel();
    let (peer_tx, peer_rx) = tokio::sync::mpsc::channel(consensus_reactor::TO_DRIVER_CAPACITY);
    let mut links = driver::Links {
        peers: peer_rx,
        round_state: round_state_rx,
    };
    // Each reactor is essential: if one ends, the node stops with an error.
    let (fatal_tx, mut fatal_rx) = tokio::sync::mpsc::channel::<&'static str>(4);
    essential(
        "consensus reactor",
        consensus_reactor::run(shared.clone(), queues.consensus, gossip_rx, peer_tx),
        &fatal_tx,
    );
    essential(
        "mempool reactor",
        mempool_reactor::run(shared.clone(), queues.mempool),
        &fatal_tx,
    );
    essential(
        "evidence reactor",
        drain(queues.evidence, "evidence"),
        &fatal_tx,
    );
    let sync = sync::spawn(shared.clone(), queues.blocksync);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let rpc_addr = config.rpc.laddr.trim_start_matches("tcp://").to_string();
    let listener = tokio::net::TcpListener::bind(&rpc_addr)
        .await
        .map_err(|e| NodeError::Rpc {
            addr: rpc_addr.clone(),
            reason: e.to_string(),
        })?;
    tracing::info!(addr = %rpc_addr, "serving RPC");
    let backend: Arc<dyn rpc::Backend> = Arc::new(NodeBackend(shared.clone()));
    let rpc_defaults = rpc::RpcConfig::default();
    let commit_wait = config.rpc.timeout_broadcast_tx_commit.0;
    let rpc_config = rpc::RpcConfig {
        max_body_bytes: config.rpc.max_body_bytes as usize,
        max_request_batch_size: config.rpc.max_request_batch_size as usize,
        max_open_connections: config.rpc.max_open_connections as usize,
        max_header_bytes: config.rpc.max_header_bytes as usize,
        // As CometBFT's node: a response may take as long as
        // broadcast_tx_commit waits, and a second more.
        write_timeout: if rpc_defaults.write_timeout <= commit_wait {
            commit_wait.saturating_add(std::time::Duration::from_secs(1))
        } else {
            rpc_defaults.write_timeout
        },
        ..rpc_defaults
    };
    let mut rpc_stop = stop_rx.clone();
    tokio::spawn(async move {
        let stop = async move {
            let _ = rpc_stop.changed().await;
        };
        if let Err(e) = rpc::serve_with_shutdown(listener, backend, rpc_config, stop).await {
            tracing::error!(error = %e, "RPC server stopped");
        }
    });

    // Resolves with None on a requested shutdown, with a task's name when
    // an essential task ended.
    let mut shutdown = Box::pin(async move {
        tokio::select! {
            () = shutdown => None,
            Some(task) = fatal_rx.recv() => Some(task),
        }
    });
    let result = 'node: loop {
        let synced_from = shared.with_state(|s| s.last_block_height);
        let caught_up = tokio::select! {
            r = while_draining(sync.catch_up(), &mut links) => r,
            stop = &mut shutdown => break stopped(stop),
        };
        let ready = match caught_up {
            Ok(()) => sync::after_catch_up(&shared, synced_from).await,
            Err(e) => Err(e),
        };
        let failure = match ready {
            Err(e) => e,
            Ok(()) => {
                // The driver stops at its next wait for input when told to
                // (never inside a decision), so what it wrote is whole.
                let (halt_tx, halt_rx) = tokio::sync::watch::channel(false);
                let driver = Driver::new(
                    shared.clone(),
                    pv,
                    config.consensus.timeouts(),
                    gossip_tx.clone(),
                );
                let run = driver.run(&mut wal, &mut links, halt_rx);
                tokio::pin!(run);
                let mut halted = false;
                let outcome = loop {
                    tokio::select! {
                        r = &mut run => break r,
                        () = sync.fallen_behind(), if !halted => {
                            halted = true;
                            let _ = halt_tx.send(true);
                        }
                        stop = &mut shutdown => break 'node stopped(stop),
                    }
                };
                match outcome {
                    Ok(()) if halted => {
                        // Fallen behind: catch up, then a fresh driver.
                        // The signer's state on disk is where we were.
                        pv = FilePV::load(shared.home.privval_paths())?;
                        continue 'node;
                    }
                    Ok(()) => break Ok(()),
                    Err(e) => e,
                }
            }
        };
        let failure = match failure.app_failure() {
            Some(app_error) => app_error.clone(),
            None => break Err(failure),
        };
        // The application died or misbehaved. Consensus stops here; the
        // store, the WAL and the signer's state are consistent (every write
        // is atomic), so the RPC keeps serving reads while we wait for the
        // application and resume through the handshake, as at start.
        tracing::error!(error = %failure, "consensus stopped: the application failed; RPC keeps serving, reconnecting until it is back");
        let state = tokio::select! {
            s = while_draining(reconnect(&shared, &genesis), &mut links) => s,
            stop = &mut shutdown => break stopped(stop),
        };
        tracing::info!(height = state.last_block_height, app_hash = %hex::encode_upper(&state.app_hash), "the application is back; resuming consensus");
        shared.set_state(state);
        if let Err(e) = shared.recheck_mempool().await {
            // Consensus will meet the same failure and report it.
            tracing::warn!(error = %e, "mempool recheck after reconnecting failed");
        }
        // The signer's state on disk is authoritative (it is synced before
        // every signature), so a fresh load is exactly where we were.
        pv = FilePV::load(shared.home.privval_paths())?;
    };
    let _ = stop_tx.send(true);
    switch.stop();
    let _ = wal.flush_and_sync();
    result
}
