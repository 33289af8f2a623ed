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
//! This first node runs without peers (a single validator, or a validator
//! waiting for a network the p2p layer will provide).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use abci::proto::{
    ExtendedCommitInfo, ExtendedVoteInfo, RequestCheckTx, RequestPrepareProposal,
    RequestProcessProposal, Validator as AbciValidator,
};
use rpc::backend as rb;
use tokio::sync::{broadcast, mpsc};

use crate::app_conn::{AppConnConfig, AppConns, AppError};
use crate::block_exec::{self, BlockExecError};
use crate::consensus::{self, Consensus, Ed25519Verifier, Input, Output};
use crate::execution;
use crate::home::{Home, HomeError};
use crate::mempool::{Mempool, MempoolError};
use crate::privval::{FilePV, PrivvalError};
use crate::store::{State, Store, StoreError};
use crate::types::{sha256, Block, Hash, Height, Time};
use crate::wal::{Durability, Wal, WalError, WalMessage, WalOptions};

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
    /// The RPC listener.
    #[error("rpc listen address {addr}: {reason}")]
    Rpc {
        /// The address.
        addr: String,
        /// Why it failed.
        reason: String,
    },
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
    app: AppConns,
    state: RwLock<State>,
    mempool: Mutex<Mempool>,
    events: broadcast::Sender<TxEvent>,
    validator: (crate::types::Address, crate::types::PublicKey),
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

    fn with_mempool<R>(&self, f: impl FnOnce(&mut Mempool) -> R) -> R {
        match self.mempool.lock() {
            Ok(mut m) => f(&mut m),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

/// Runs the node at `home` until `shutdown` resolves or a fatal error.
pub async fn run(
    home: Home,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let config = home.config.clone();
    if !config.consensus.create_empty_blocks
        || config.consensus.create_empty_blocks_interval.0 > Duration::ZERO
    {
        tracing::warn!(
            "consensus.create_empty_blocks = false and create_empty_blocks_interval are not honoured yet: blocks are produced every timeout_commit, with or without transactions"
        );
    }
    let genesis = home.genesis()?;
    let node_id = home.node_key()?.id();
    let store = Arc::new(Store::open(&Store::path_in_home(&home.dir))?);
    tracing::info!(app = %config.proxy_app, "connecting to the application");
    let app = AppConns::connect(&config.proxy_app, &AppConnConfig::default()).await?;
    let state = block_exec::handshake(&app, &store, &genesis).await?;
    let pv = FilePV::load(home.privval_paths())?;
    let (mut wal, truncation) = Wal::open(
        &home.data_dir().join("cs.wal"),
        WalOptions::default(),
        now(),
    )?;
    if let Some(t) = truncation {
        tracing::warn!(?t, "the WAL had a damaged tail; it was truncated");
    }
    let (events, _) = broadcast::channel(1024);
    let shared = Arc::new(Shared {
        chain_id: state.chain_id.clone(),
        node_id,
        validator: (pv.address(), pv.public_key()),
        mempool: Mutex::new(Mempool::new(
            config.mempool.clone(),
            state.last_block_height,
        )),
        state: RwLock::new(state),
        store,
        app,
        events,
        home,
    });

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
    let rpc_config = rpc::RpcConfig {
        max_body_bytes: config.rpc.max_body_bytes as usize,
        max_request_batch_size: config.rpc.max_request_batch_size as usize,
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

    let driver = Driver::new(shared, pv, config.consensus.timeouts());
    let result = tokio::select! {
        r = driver.run(&mut wal, stop_rx) => r,
        _ = shutdown => Ok(()),
    };
    let _ = stop_tx.send(true);
    let _ = wal.flush_and_sync();
    result
}

/// The consensus driver: the single place where core outputs become I/O.
struct Driver {
    shared: Arc<Shared>,
    core: Consensus,
    pv: FilePV,
    timeouts: consensus::Timeouts,
    inputs: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
}

impl Driver {
    fn new(shared: Arc<Shared>, pv: FilePV, timeouts: consensus::Timeouts) -> Self {
        let mut cfg = consensus::Config::new(shared.chain_id.clone(), Some(pv.address()));
        cfg.timeouts = timeouts;
        let core = Consensus::new(cfg, Arc::new(Ed25519Verifier));
        let (inputs, rx) = mpsc::unbounded_channel();
        Driver {
            shared,
            core,
            pv,
            timeouts,
            inputs,
            rx,
        }
    }

    async fn run(
        mut self,
        wal: &mut Wal,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let state = self.shared.state();
        let height = execution::next_height(&state);
        // Replay what this height already saw; its outputs were carried out
        // before the crash, so they are not repeated. Then restart the
        // round's timers.
        let replay = wal
            .replay_after(state.last_block_height)?
            .unwrap_or_default();
        let mut started = false;
        for m in &replay {
            if let WalMessage::Input(input) = &m.msg {
                started |= matches!(input, Input::StartHeight { height: h, .. } if *h == height);
                if started {
                    let _ = self.core.handle(input.clone());
                }
            }
        }
        let mut queue = VecDeque::new();
        if started {
            tracing::info!(height, inputs = replay.len(), "replayed the WAL");
            let rs = self.core.round_state();
            for step in [
                consensus::TimeoutStep::Propose,
                consensus::TimeoutStep::Prevote,
                consensus::TimeoutStep::Precommit,
            ] {
                self.schedule(
                    rs.height,
                    rs.round,
                    step,
                    self.timeouts.duration(step, rs.round),
                );
            }
        } else {
            queue.push_back(Input::StartHeight {
                height,
                validators: state.validators.clone(),
            });
        }
        loop {
            let input = match queue.pop_front() {
                Some(i) => i,
                None => tokio::select! {
                    i = self.rx.recv() => match i { Some(i) => i, None => return Ok(()) },
                    _ = stop.changed() => return Ok(()),
                },
            };
            let own = match &input {
                Input::Vote(v) => Some(v.validator_address) == Some(self.pv.address()),
                Input::Proposal(_) | Input::StartHeight { .. } => true,
                _ => false,
            };
            let durability = if own {
                Durability::Sync
            } else {
                Durability::Buffered
            };
            wal.append(now(), &WalMessage::Input(input.clone()), durability)?;
            let outputs = match self.core.handle(input) {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(error = %e, "input refused");
                    continue;
                }
            };
            for output in outputs {
                self.carry_out(output, &mut queue, wal).await?;
            }
        }
    }

    fn schedule(&self, height: Height, round: u32, step: consensus::TimeoutStep, after: Duration) {
        let tx = self.inputs.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(Input::Timeout {
                height,
                round,
                step,
            });
        });
    }

    async fn carry_out(
        &mut self,
        output: Output,
        queue: &mut VecDeque<Input>,
        wal: &mut Wal,
    ) -> Result<(), NodeError> {
        let chain_id = self.shared.chain_id.clone();
        match output {
            Output::ScheduleTimeout {
                height,
                round,
                step,
                duration,
            } => self.schedule(height, round, step, duration),
            Output::RequestProposal { height, round } => {
                let block = self.build_block(height).await?;
                queue.push_back(Input::ProposalValue {
                    height,
                    round,
                    block: Arc::new(block),
                });
            }
            Output::Propose {
                mut proposal,
                block: _,
            } => {
                proposal.timestamp = now();
                self.pv.sign_proposal(&chain_id, &mut proposal)?;
                queue.push_back(Input::Proposal(proposal));
            }
            Output::Vote(mut vote) => {
                // CometBFT's vote time: now, but after the block's time.
                let floor = self.shared.last_block_time().add_nanos(1_000_000);
                let t = now();
                vote.timestamp = if t > floor { t } else { floor };
                self.pv.sign_vote(&chain_id, &mut vote, false)?;
                queue.push_back(Input::Vote(vote));
            }
            Output::ValidateBlock { height, block, .. } => {
                // Encoding and hashing a block is the costly part: once.
                let block_id = block.block_id();
                let valid = self.validate(&block, &block_id).await;
                queue.push_back(Input::BlockValidated {
                    height,
                    block_id,
                    valid,
                });
            }
            Output::Decide {
                height,
                round,
                block,
                commit,
            } => {
                self.decide(height, round, &block, &commit, wal).await?;
            }
            Output::Equivocation { first, second } => {
                tracing::warn!(validator = ?first.validator_address, height = first.height, round = first.round, a = ?first.block_id, b = ?second.block_id, "equivocation observed");
            }
        }
        Ok(())
    }

    async fn build_block(&self, height: Height) -> Result<Block, NodeError> {
        let state = self.shared.state();
        let last_commit = if height > state.initial_height {
            self.shared.store.load_seen_commit(height - 1)?
        } else {
            None
        };
        let params = &state.consensus_params;
        let max_bytes = if params.block.max_bytes < 0 {
            crate::types::MAX_BLOCK_SIZE_BYTES
        } else {
            params.block.max_bytes
        };
        // CometBFT's MaxDataBytes: block bytes minus header, commit and
        // protobuf overhead.
        let vals = state.validators.len() as i64;
        let max_data = max_bytes - 11 - 626 - (94 + 109 * vals);
        let txs: Vec<Vec<u8>> = self
            .shared
            .with_mempool(|m| m.reap(max_data, params.block.max_gas))
            .iter()
            .map(|t| t.to_vec())
            .collect();
        let time = execution::block_time(&state, last_commit.as_ref());
        let local_last_commit = ExtendedCommitInfo {
            round: last_commit.as_ref().map_or(0, |c| c.round as i32),
            votes: match (&last_commit, &state.last_validators) {
                (Some(c), Some(vs)) => vs
                    .validators
                    .iter()
                    .zip(&c.signatures)
                    .map(|(v, s)| ExtendedVoteInfo {
                        validator: Some(AbciValidator {
                            address: v.address.0.to_vec().into(),
                            power: v.voting_power,
                        }),
                        block_id_flag: match s {
                            crate::types::CommitSig::Absent => 1,
                            crate::types::CommitSig::Commit { .. } => 2,
                            crate::types::CommitSig::Nil { .. } => 3,
                        },
                        ..Default::default()
                    })
                    .collect(),
                _ => vec![],
            },
        };
        let resp = self
            .shared
            .app
            .prepare_proposal(RequestPrepareProposal {
                max_tx_bytes: max_data,
                txs: txs.into_iter().map(Into::into).collect(),
                local_last_commit: Some(local_last_commit),
                misbehavior: vec![],
                height: height as i64,
                time: Some(time.into()),
                next_validators_hash: state.next_validators.hash().0.to_vec().into(),
                proposer_address: self.pv.address().0.to_vec().into(),
            })
            .await?;
        let txs = resp.txs.into_iter().map(|t| t.to_vec()).collect();
        Ok(execution::make_block(
            &state,
            height,
            txs,
            last_commit,
            vec![],
            self.pv.address(),
            time,
        ))
    }

    async fn validate(&self, block: &Block, id: &crate::types::BlockId) -> bool {
        let state = self.shared.state();
        if let Err(e) = execution::validate_block(&state, block) {
            tracing::warn!(height = block.header.height, error = %e, "invalid proposed block");
            return false;
        }
        let req =
            block_exec::finalize_request(block, id, state.last_validators.as_ref(), &|_| None);
        let resp = self
            .shared
            .app
            .process_proposal(RequestProcessProposal {
                txs: req.txs,
                proposed_last_commit: req.decided_last_commit,
                misbehavior: req.misbehavior,
                hash: req.hash,
                height: req.height,
                time: req.time,
                next_validators_hash: req.next_validators_hash,
                proposer_address: req.proposer_address,
            })
            .await;
        match resp {
            Ok(r) => r.status == 1,
            Err(e) => {
                tracing::error!(error = %e, "ProcessProposal failed");
                false
            }
        }
    }

    async fn decide(
        &mut self,
        height: Height,
        round: u32,
        block: &Block,
        commit: &crate::types::Commit,
        wal: &mut Wal,
    ) -> Result<(), NodeError> {
        // The core decided exactly this block: the commit names its id.
        let id = commit.block_id;
        let state = self.shared.state();
        self.shared.store.save_block(block, &id, commit)?;
        let (next, resp) =
            block_exec::apply_block(&self.shared.app, &self.shared.store, &state, block, &id)
                .await?;
        match self.shared.state.write() {
            Ok(mut s) => *s = next.clone(),
            Err(p) => *p.into_inner() = next.clone(),
        }
        let committed: Vec<(Vec<u8>, u32)> = block
            .txs
            .iter()
            .zip(&resp.tx_results)
            .map(|(tx, r)| (tx.clone(), r.code))
            .collect();
        self.shared.with_mempool(|m| m.update(height, &committed));
        for (tx, result) in block.txs.iter().zip(resp.tx_results) {
            let _ = self.shared.events.send(TxEvent {
                hash: sha256(tx),
                height,
                result,
            });
        }
        wal.append(now(), &WalMessage::EndHeight(height), Durability::Sync)?;
        tracing::info!(height, round, txs = block.txs.len(), hash = ?id.hash, app_hash = %hex::encode_upper(&next.app_hash), "committed block");
        let tx = self.inputs.clone();
        let validators = next.validators.clone();
        let wait = self.timeouts.commit;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = tx.send(Input::StartHeight {
                height: height + 1,
                validators,
            });
        });
        Ok(())
    }
}

/// The RPC's view of the node.
struct NodeBackend(Arc<Shared>);

fn internal(e: impl std::fmt::Display) -> rpc::RpcError {
    rpc::RpcError::Internal(e.to_string())
}

fn events(events: &[abci::proto::Event]) -> Vec<rb::Event> {
    events
        .iter()
        .map(|e| rb::Event {
            kind: e.r#type.clone(),
            attributes: e
                .attributes
                .iter()
                .map(|a| rb::EventAttribute {
                    key: a.key.clone(),
                    value: a.value.clone(),
                    index: a.index,
                })
                .collect(),
        })
        .collect()
}

fn check_tx_result(r: &abci::proto::ResponseCheckTx) -> rb::TxResult {
    rb::TxResult {
        code: r.code,
        data: r.data.to_vec(),
        log: r.log.clone(),
        info: r.info.clone(),
        gas_wanted: r.gas_wanted,
        gas_used: r.gas_used,
        events: events(&r.events),
        codespace: r.codespace.clone(),
    }
}

fn exec_tx_result(r: &abci::proto::ExecTxResult) -> rb::TxResult {
    rb::TxResult {
        code: r.code,
        data: r.data.to_vec(),
        log: r.log.clone(),
        info: r.info.clone(),
        gas_wanted: r.gas_wanted,
        gas_used: r.gas_used,
        events: events(&r.events),
        codespace: r.codespace.clone(),
    }
}

impl NodeBackend {
    fn height_or_latest(&self, h: Option<Height>) -> Result<Height, rpc::RpcError> {
        let latest = self.0.store.height().map_err(internal)?;
        match h {
            None => Ok(latest),
            Some(h) if h > latest => Err(rpc::RpcError::Internal(format!(
                "height {h} must be less than or equal to the current blockchain height {latest}"
            ))),
            Some(h) => Ok(h),
        }
    }

    async fn check_tx(&self, tx: Vec<u8>) -> Result<rb::TxResult, rpc::RpcError> {
        self.0
            .with_mempool(|m| m.precheck(&tx))
            .map_err(|e| match e {
                MempoolError::InCache => rpc::RpcError::TxInCache,
                other => rpc::RpcError::Internal(other.to_string()),
            })?;
        let resp = self
            .0
            .app
            .check_tx(RequestCheckTx {
                tx: tx.clone().into(),
                r#type: 0,
            })
            .await
            .map_err(internal)?;
        self.0
            .with_mempool(|m| m.add_checked(tx, resp.code, resp.gas_wanted))
            .map_err(internal)?;
        Ok(check_tx_result(&resp))
    }
}

type Fut<'a, T> = rpc::BoxFuture<'a, rpc::RpcResult<T>>;

impl rpc::Backend for NodeBackend {
    fn health(&self) -> Fut<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn status(&self) -> Fut<'_, rb::Status> {
        Box::pin(async move {
            let s = &self.0;
            let state = s.state();
            let cfg = &s.home.config;
            let latest = s.store.height().map_err(internal)?;
            let base = s.store.base().map_err(internal)?;
            let meta = |h| s.store.load_block_meta(h).ok().flatten();
            let (latest_meta, base_meta) = (meta(latest), meta(base));
            Ok(rb::Status {
                node_info: rb::NodeInfo {
                    protocol_version: rb::ProtocolVersion {
                        p2p: block_exec::P2P_PROTOCOL,
                        block: crate::types::BLOCK_PROTOCOL,
                        app: state.version.app,
                    },
                    id: s.node_id.clone(),
                    listen_addr: cfg.p2p.laddr.clone(),
                    network: s.chain_id.clone(),
                    version: crate::config::COMETBFT_VERSION.into(),
                    channels: vec![0x40, 0x20, 0x21, 0x22, 0x23, 0x30, 0x38, 0x60, 0x61, 0x00],
                    moniker: cfg.moniker.clone(),
                    tx_index: if cfg.tx_index.indexer == "null" {
                        "off"
                    } else {
                        "on"
                    }
                    .into(),
                    rpc_address: cfg.rpc.laddr.clone(),
                },
                sync_info: rb::SyncInfo {
                    latest_block_hash: latest_meta.as_ref().map(|m| m.block_id.hash),
                    latest_app_hash: state.app_hash.clone(),
                    latest_block_height: latest,
                    latest_block_time: latest_meta
                        .as_ref()
                        .map_or(Time::GO_ZERO, |m| m.header.time),
                    earliest_block_hash: base_meta.as_ref().map(|m| m.block_id.hash),
                    earliest_app_hash: base_meta
                        .as_ref()
                        .map_or(vec![], |m| m.header.app_hash.clone()),
                    earliest_block_height: base,
                    earliest_block_time: base_meta
                        .as_ref()
                        .map_or(Time::GO_ZERO, |m| m.header.time),
                    catching_up: false,
                },
                validator_info: rb::ValidatorInfo {
                    address: s.validator.0,
                    pub_key: s.validator.1,
                    voting_power: state
                        .validators
                        .get_by_address(&s.validator.0)
                        .map_or(0, |(_, v)| v.voting_power),
                },
            })
        })
    }

    fn block(&self, height: Option<Height>) -> Fut<'_, rb::BlockResult> {
        Box::pin(async move {
            let h = self.height_or_latest(height)?;
            let block = self.0.store.load_block(h).map_err(internal)?;
            Ok(rb::BlockResult {
                block_id: block.as_ref().map(|b| b.block_id()).unwrap_or_default(),
                block,
            })
        })
    }

    fn commit(&self, height: Option<Height>) -> Fut<'_, rb::SignedHeader> {
        Box::pin(async move {
            let h = self.height_or_latest(height)?;
            let latest = self.0.store.height().map_err(internal)?;
            let block = self
                .0
                .store
                .load_block(h)
                .map_err(internal)?
                .ok_or_else(|| internal(format!("no block at height {h}")))?;
            let (commit, canonical) = if h == latest {
                (self.0.store.load_seen_commit(h).map_err(internal)?, false)
            } else {
                (self.0.store.load_block_commit(h).map_err(internal)?, true)
            };
            let commit = commit.ok_or_else(|| internal(format!("no commit for height {h}")))?;
            Ok(rb::SignedHeader {
                header: block.header,
                commit,
                canonical,
            })
        })
    }

    fn validators(&self, height: Option<Height>) -> Fut<'_, rb::ValidatorsAt> {
        Box::pin(async move {
            let h = match height {
                Some(h) => h,
                None => self.0.store.height().map_err(internal)?.max(1),
            };
            let vs = self
                .0
                .store
                .load_validators(h)
                .map_err(internal)?
                .ok_or_else(|| internal(format!("validators at height {h} not found")))?;
            Ok(rb::ValidatorsAt {
                block_height: h,
                validators: vs.validators,
            })
        })
    }

    fn abci_info(&self) -> Fut<'_, rb::AbciInfo> {
        Box::pin(async move {
            let r = self
                .0
                .app
                .info(block_exec::info_request())
                .await
                .map_err(internal)?;
            Ok(rb::AbciInfo {
                data: r.data,
                version: r.version,
                app_version: r.app_version,
                last_block_height: r.last_block_height,
                last_block_app_hash: r.last_block_app_hash.to_vec(),
            })
        })
    }

    fn abci_query(&self, q: rb::AbciQueryRequest) -> Fut<'_, rb::AbciQuery> {
        Box::pin(async move {
            let r = self
                .0
                .app
                .query(abci::proto::RequestQuery {
                    data: q.data.into(),
                    path: q.path,
                    height: q.height,
                    prove: q.prove,
                })
                .await
                .map_err(internal)?;
            Ok(rb::AbciQuery {
                code: r.code,
                log: r.log,
                info: r.info,
                index: r.index,
                key: r.key.to_vec(),
                value: r.value.to_vec(),
                proof_ops: None,
                height: r.height,
                codespace: r.codespace,
            })
        })
    }

    fn broadcast_tx_sync(&self, tx: Vec<u8>) -> Fut<'_, rb::TxCheck> {
        Box::pin(async move { self.check_tx(tx).await })
    }

    fn broadcast_tx_commit(&self, tx: Vec<u8>) -> Fut<'_, rb::TxCommitted> {
        Box::pin(async move {
            let hash = sha256(&tx);
            // Subscribe before the tx can possibly be committed.
            let mut events = self.0.events.subscribe();
            let check = self.check_tx(tx).await?;
            if check.code != 0 {
                return Ok(rb::TxCommitted {
                    check_tx: check,
                    tx_result: rb::TxResult::default(),
                    height: 0,
                });
            }
            let wait = self.0.home.config.rpc.timeout_broadcast_tx_commit.0;
            let found = tokio::time::timeout(wait, async {
                loop {
                    match events.recv().await {
                        Ok(ev) if ev.hash == hash => return Some(ev),
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
            .await;
            match found {
                Ok(Some(ev)) => Ok(rb::TxCommitted {
                    check_tx: check,
                    tx_result: exec_tx_result(&ev.result),
                    height: ev.height as i64,
                }),
                _ => Err(rpc::RpcError::Internal(
                    "timed out waiting for tx to be included in a block".into(),
                )),
            }
        })
    }
}
