//! The RPC's view of the node: reads from the store and state, and
//! CheckTx/Query through the application.

use std::sync::Arc;

use rpc::backend as rb;
use tokio::sync::broadcast;

use super::mempool_reactor::CheckTxError;
use super::Shared;
use crate::block_exec;
use crate::mempool::MempoolError;
use crate::p2p::node_info::NodeInfo;
use crate::p2p::peer::Direction;
use crate::types::{sha256, Height, Time};

/// The RPC's view of the node.
pub(super) struct NodeBackend(pub(super) Arc<Shared>);

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

/// The RPC's rendering of a CheckTx or FinalizeBlock tx result: two proto
/// messages with the same fields.
macro_rules! tx_result {
    ($r:expr) => {{
        let r = $r;
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
    }};
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
        let resp = self.0.check_tx(tx, None).await.map_err(|e| match e {
            CheckTxError::Mempool(MempoolError::InCache) => rpc::RpcError::TxInCache,
            other => internal(other),
        })?;
        Ok(tx_result!(&resp))
    }
}

/// A peer's node info as the RPC renders it.
fn rpc_node_info(n: &NodeInfo) -> rb::NodeInfo {
    rb::NodeInfo {
        protocol_version: rb::ProtocolVersion {
            p2p: n.protocol_version.p2p,
            block: n.protocol_version.block,
            app: n.protocol_version.app,
        },
        id: n.id.to_string(),
        listen_addr: n.listen_addr.clone(),
        network: n.network.clone(),
        version: n.version.clone(),
        channels: n.channels.clone(),
        moniker: n.moniker.clone(),
        tx_index: n.tx_index.clone(),
        rpc_address: n.rpc_address.clone(),
    }
}

type Fut<'a, T> = rpc::BoxFuture<'a, rpc::RpcResult<T>>;

impl rpc::Backend for NodeBackend {
    fn health(&self) -> Fut<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn consensus_state(&self) -> Fut<'_, rb::ConsensusState> {
        Box::pin(async move {
            let not_running = || {
                rpc::RpcError::internal(
                    "consensus is not running (block sync, or waiting for the application)",
                )
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.0
                .round_state
                .send(tx)
                .await
                .map_err(|_| not_running())?;
            rx.await.map_err(|_| not_running())
        })
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
                    // The bound address (the configured port may be 0).
                    listen_addr: s.switch.node_info().listen_addr.clone(),
                    network: s.chain_id.clone(),
                    version: crate::config::COMETBFT_VERSION.into(),
                    channels: s.switch.node_info().channels.clone(),
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
                    catching_up: s.catching_up.load(std::sync::atomic::Ordering::Relaxed),
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

    fn net_info(&self) -> Fut<'_, rb::NetInfo> {
        Box::pin(async move {
            let s = &self.0;
            let ours = s.switch.node_info();
            // We do not measure traffic: the monitors stay at zero; the
            // channels are ours, with their configured queues.
            let descriptors = crate::p2p::conn::cometbft_channels(
                usize::try_from(s.home.config.mempool.max_tx_bytes).unwrap_or(usize::MAX),
            );
            let channels: Vec<rb::ChannelStatus> = ours
                .channels
                .iter()
                .filter_map(|id| descriptors.iter().find(|d| d.id == *id))
                .map(|d| rb::ChannelStatus {
                    id: d.id,
                    send_queue_capacity: i64::try_from(d.send_queue_capacity).unwrap_or(i64::MAX),
                    send_queue_size: 0,
                    priority: i64::from(d.priority),
                    recently_sent: 0,
                })
                .collect();
            let peers = s
                .switch
                .peers()
                .iter()
                .map(|p| rb::Peer {
                    node_info: rpc_node_info(&p.node_info),
                    is_outbound: p.direction == Direction::Outbound,
                    connection_status: rb::ConnectionStatus {
                        channels: channels.clone(),
                        ..rb::ConnectionStatus::default()
                    },
                    remote_ip: p.remote_addr.ip().to_string(),
                })
                .collect();
            Ok(rb::NetInfo {
                listening: s.switch.local_addr().is_some(),
                // CometBFT names the configured external address here.
                listeners: vec![format!("Listener(@{})", s.home.config.p2p.external_address)],
                peers,
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
                .app()
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
                .app()
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
                    tx_result: tx_result!(&ev.result),
                    height: ev.height as i64,
                }),
                _ => Err(rpc::RpcError::Internal(
                    "timed out waiting for tx to be included in a block".into(),
                )),
            }
        })
    }
}
