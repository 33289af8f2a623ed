//! The [`Backend`] trait the node implements, and the domain values it
//! returns. The RPC layer owns argument parsing, pagination, tx hashing and
//! JSON rendering; the backend only answers questions about the chain.

use std::future::Future;
use std::pin::Pin;

use engine_types::Validator;
use engine_types::{Address, Block, BlockId, Commit, Hash, Header, Height, PublicKey, Time};

use crate::error::RpcError;

/// A boxed, sendable future: what every [`Backend`] method returns, so the
/// trait is object-safe and the server can hold an `Arc<dyn Backend>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The outcome of a backend call.
pub type RpcResult<T> = Result<T, RpcError>;

/// What the RPC server asks of the node.
///
/// Object-safe by design: each method returns a [`BoxFuture`], so the node
/// implements it with `Box::pin(async move { .. })` and the server keeps an
/// `Arc<dyn Backend>` without generic parameters leaking into the transport.
///
/// Heights passed in are already checked to be >= 1 (`None` means latest);
/// range checks against the store (too high, pruned) are the backend's,
/// with CometBFT's texts, e.g. `height 9 must be less than or equal to the
/// current blockchain height 5`.
pub trait Backend: Send + Sync + 'static {
    /// `health`: `Ok(())` when the node is running.
    fn health(&self) -> BoxFuture<'_, RpcResult<()>>;

    /// `status`: node, sync and validator information.
    fn status(&self) -> BoxFuture<'_, RpcResult<Status>>;

    /// `consensus_state`: where consensus stands now (CometBFT's
    /// `RoundStateSimple`).
    fn consensus_state(&self) -> BoxFuture<'_, RpcResult<ConsensusState>>;

    /// `block`: the block at `height` (latest when `None`). A height the
    /// store lacks but within range may be answered with `block: None`, as
    /// CometBFT does.
    fn block(&self, height: Option<Height>) -> BoxFuture<'_, RpcResult<BlockResult>>;

    /// `commit`: the header and commit at `height` (latest when `None`; the
    /// latest height's commit is the seen commit, `canonical: false`).
    fn commit(&self, height: Option<Height>) -> BoxFuture<'_, RpcResult<SignedHeader>>;

    /// `validators`: the whole validator set at `height` (latest known, i.e.
    /// the next height's set, when `None`). The RPC layer paginates.
    fn validators(&self, height: Option<Height>) -> BoxFuture<'_, RpcResult<ValidatorsAt>>;

    /// `abci_info`: the application's Info response.
    fn abci_info(&self) -> BoxFuture<'_, RpcResult<AbciInfo>>;

    /// `abci_query`: the application's Query response.
    fn abci_query(&self, query: AbciQueryRequest) -> BoxFuture<'_, RpcResult<AbciQuery>>;

    /// `broadcast_tx_sync`: submit `tx` to the mempool and return its
    /// CheckTx result (`RpcError::TxInCache` when it is a duplicate).
    fn broadcast_tx_sync(&self, tx: Vec<u8>) -> BoxFuture<'_, RpcResult<TxCheck>>;

    /// `net_info`: whether the node listens for peers, and the connected
    /// peers.
    fn net_info(&self) -> BoxFuture<'_, RpcResult<NetInfo>>;

    /// `broadcast_tx_commit`: submit `tx`, wait for CheckTx and, when it
    /// passes, for the tx to be committed (or the node's timeout). A failed
    /// CheckTx is an `Ok` value with a default `tx_result` and height 0.
    fn broadcast_tx_commit(&self, tx: Vec<u8>) -> BoxFuture<'_, RpcResult<TxCommitted>>;
}

/// `consensus_state` result: the consensus position and this height's
/// votes per round.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ConsensusState {
    /// Height being decided.
    pub height: Height,
    /// Current round.
    pub round: u32,
    /// CometBFT's `RoundStepType` number (1 NewHeight … 8 Commit).
    pub step: u8,
    /// When this height started.
    pub start_time: Time,
    /// The current round's proposed block, if any.
    pub proposal_block_hash: Option<Hash>,
    /// The block we are locked on, if any.
    pub locked_block_hash: Option<Hash>,
    /// The latest valid block, if any.
    pub valid_block_hash: Option<Hash>,
    /// The current round's proposer and its index in the validator set.
    pub proposer: Option<(Address, u32)>,
    /// Votes received per round, in CometBFT's text forms.
    pub votes: Vec<RoundVotes>,
}

/// One round's votes in `consensus_state`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct RoundVotes {
    /// The round.
    pub round: u32,
    /// One entry per validator: `Vote{..}` or `nil-Vote`.
    pub prevotes: Vec<String>,
    /// `BA{n:x_x_} voted/total = fraction`.
    pub prevotes_bit_array: String,
    /// As `prevotes`.
    pub precommits: Vec<String>,
    /// As `prevotes_bit_array`.
    pub precommits_bit_array: String,
}

/// `status` result (CometBFT ResultStatus).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Status {
    /// This node's p2p identity and software.
    pub node_info: NodeInfo,
    /// Where the node's store stands.
    pub sync_info: SyncInfo,
    /// This node's validator key and power (0 when not a validator).
    pub validator_info: ValidatorInfo,
}

/// P2P protocol versions (CometBFT ProtocolVersion).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProtocolVersion {
    /// P2P protocol (8).
    pub p2p: u64,
    /// Block protocol (11).
    pub block: u64,
    /// Application protocol version.
    pub app: u64,
}

/// CometBFT DefaultNodeInfo.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NodeInfo {
    /// Protocol versions.
    pub protocol_version: ProtocolVersion,
    /// Node id: hex of the first 20 bytes of SHA-256 of the node key.
    pub id: String,
    /// P2P listen address, e.g. `tcp://0.0.0.0:26656`.
    pub listen_addr: String,
    /// Chain id.
    pub network: String,
    /// Software version string, e.g. `0.38.17`.
    pub version: String,
    /// P2P channel ids this node speaks.
    pub channels: Vec<u8>,
    /// Human-readable node name.
    pub moniker: String,
    /// `on` or `off`.
    pub tx_index: String,
    /// RPC listen address, e.g. `tcp://127.0.0.1:26657`.
    pub rpc_address: String,
}

/// `net_info` result (CometBFT ResultNetInfo; `n_peers` is the length of
/// `peers`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct NetInfo {
    /// Whether the node accepts peer connections.
    pub listening: bool,
    /// Its listeners, as CometBFT writes them: `Listener(@<external_address>)`.
    pub listeners: Vec<String>,
    /// The connected peers.
    pub peers: Vec<Peer>,
}

/// A connected peer (CometBFT `coretypes.Peer`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Peer {
    /// What the peer said about itself in the handshake.
    pub node_info: NodeInfo,
    /// Whether we dialled it.
    pub is_outbound: bool,
    /// Its connection's statistics.
    pub connection_status: ConnectionStatus,
    /// The IP address at the other end, without the port.
    pub remote_ip: String,
}

/// A peer connection's statistics (CometBFT `p2p.ConnectionStatus`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ConnectionStatus {
    /// How long the connection has been up, in nanoseconds.
    pub duration_ns: i64,
    /// Bytes sent.
    pub send_monitor: FlowStatus,
    /// Bytes received.
    pub recv_monitor: FlowStatus,
    /// Our channels on this connection.
    pub channels: Vec<ChannelStatus>,
}

/// Transfer statistics of one direction (CometBFT `flowrate.Status`).
/// Durations are nanoseconds; rates bytes per second.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowStatus {
    /// When the transfer started (Go's zero time if unknown).
    pub start: Time,
    /// Bytes transferred.
    pub bytes: i64,
    /// Samples taken.
    pub samples: i64,
    /// Instantaneous rate.
    pub inst_rate: i64,
    /// Current rate (moving average).
    pub cur_rate: i64,
    /// Average rate since the start.
    pub avg_rate: i64,
    /// Highest instantaneous rate.
    pub peak_rate: i64,
    /// Bytes remaining (0 for a connection).
    pub bytes_rem: i64,
    /// Period the statistics cover.
    pub duration_ns: i64,
    /// Time since the last transfer.
    pub idle_ns: i64,
    /// Estimated time to completion.
    pub time_rem_ns: i64,
    /// Progress in percent (0 for a connection).
    pub progress: u32,
    /// Whether the transfer is active.
    pub active: bool,
}

impl Default for FlowStatus {
    /// Nothing measured: zeros and Go's zero time.
    fn default() -> Self {
        FlowStatus {
            start: crate::render::ZERO_TIME,
            bytes: 0,
            samples: 0,
            inst_rate: 0,
            cur_rate: 0,
            avg_rate: 0,
            peak_rate: 0,
            bytes_rem: 0,
            duration_ns: 0,
            idle_ns: 0,
            time_rem_ns: 0,
            progress: 0,
            active: false,
        }
    }
}

/// One channel of a peer connection (CometBFT `conn.ChannelStatus`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ChannelStatus {
    /// The channel ID.
    pub id: u8,
    /// Messages the send queue holds at most.
    pub send_queue_capacity: i64,
    /// Messages waiting now.
    pub send_queue_size: i64,
    /// The channel's priority.
    pub priority: i64,
    /// Bytes sent recently (decaying).
    pub recently_sent: i64,
}

/// CometBFT SyncInfo. Empty hashes (no block yet) are written as `""`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SyncInfo {
    /// Hash of the latest block, if any.
    pub latest_block_hash: Option<Hash>,
    /// App hash after the latest block.
    pub latest_app_hash: Vec<u8>,
    /// Latest block height (0 when none).
    pub latest_block_height: Height,
    /// Latest block time.
    pub latest_block_time: Time,
    /// Hash of the earliest stored block, if any.
    pub earliest_block_hash: Option<Hash>,
    /// App hash of the earliest stored block.
    pub earliest_app_hash: Vec<u8>,
    /// Earliest stored height.
    pub earliest_block_height: Height,
    /// Earliest stored block time.
    pub earliest_block_time: Time,
    /// Whether the node is still syncing.
    pub catching_up: bool,
}

/// CometBFT ValidatorInfo of this node.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ValidatorInfo {
    /// Validator address.
    pub address: Address,
    /// Consensus public key.
    pub pub_key: PublicKey,
    /// Voting power (0 when not in the set).
    pub voting_power: i64,
}

/// `block` result: the block and its id. `block: None` is written as
/// `{"block_id": <empty>, "block": null}`, as CometBFT does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlockResult {
    /// The block's id (ignored when `block` is `None`).
    pub block_id: BlockId,
    /// The block, if stored.
    pub block: Option<Block>,
}

/// `commit` result: a header with its commit.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedHeader {
    /// The header.
    pub header: Header,
    /// The commit for it.
    pub commit: Commit,
    /// `false` for the latest height's seen commit, `true` once the next
    /// block carries the canonical one.
    pub canonical: bool,
}

/// A validator set at a height, before pagination.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ValidatorsAt {
    /// The height the set is for.
    pub block_height: Height,
    /// All validators, in set order.
    pub validators: Vec<Validator>,
}

/// The application's Info response (ABCI ResponseInfo).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AbciInfo {
    /// Free-form app data.
    pub data: String,
    /// App software version.
    pub version: String,
    /// App protocol version.
    pub app_version: u64,
    /// Last height the app committed.
    pub last_block_height: i64,
    /// App hash after that height.
    pub last_block_app_hash: Vec<u8>,
}

/// Arguments of `abci_query`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AbciQueryRequest {
    /// Query path, e.g. `/store`.
    pub path: String,
    /// Query data.
    pub data: Vec<u8>,
    /// Height to query at (0 = latest).
    pub height: i64,
    /// Whether to include a proof.
    pub prove: bool,
}

/// One Merkle proof operation (CometBFT crypto.ProofOp).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ProofOp {
    /// Operation type.
    pub op_type: String,
    /// Key the operation proves.
    pub key: Vec<u8>,
    /// Encoded operation.
    pub data: Vec<u8>,
}

/// The application's Query response (ABCI ResponseQuery).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AbciQuery {
    /// Result code (0 = OK).
    pub code: u32,
    /// Log text.
    pub log: String,
    /// Extra info.
    pub info: String,
    /// Index of the key in the tree.
    pub index: i64,
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty is written as `null`).
    pub value: Vec<u8>,
    /// Proof operations, if any.
    pub proof_ops: Option<Vec<ProofOp>>,
    /// Height of the state queried.
    pub height: i64,
    /// Namespace of `code`.
    pub codespace: String,
}

/// An ABCI event attribute.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct EventAttribute {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Whether the indexer indexes it.
    pub index: bool,
}

/// An ABCI event.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Event {
    /// Event type.
    pub kind: String,
    /// Attributes.
    pub attributes: Vec<EventAttribute>,
}

/// A transaction's CheckTx or FinalizeBlock result (ABCI ResponseCheckTx and
/// ExecTxResult share these fields and their JSON).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TxResult {
    /// Result code (0 = OK).
    pub code: u32,
    /// Result data (empty is written as `null`).
    pub data: Vec<u8>,
    /// Log text.
    pub log: String,
    /// Extra info.
    pub info: String,
    /// Gas requested.
    pub gas_wanted: i64,
    /// Gas used.
    pub gas_used: i64,
    /// Events.
    pub events: Vec<Event>,
    /// Namespace of `code`.
    pub codespace: String,
}

/// `broadcast_tx_sync` backend answer: the CheckTx result (the RPC layer
/// adds the tx hash).
pub type TxCheck = TxResult;

/// `broadcast_tx_commit` backend answer (the RPC layer adds the tx hash).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TxCommitted {
    /// CheckTx result.
    pub check_tx: TxResult,
    /// FinalizeBlock result for the tx (default when not committed).
    pub tx_result: TxResult,
    /// Height of the block that included it (0 when not committed).
    pub height: i64,
}
