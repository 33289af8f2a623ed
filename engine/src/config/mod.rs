//! The node's configuration: `config/config.toml` with CometBFT v0.38's
//! sections, keys and defaults, so an operator's existing file keeps working.
//!
//! Owns reading, validating and writing the file. A wrong key, a bad value or
//! a missing file is a one-line error naming the file, the key and the fix.
//! Where our default differs from CometBFT's, the field says so.

mod duration;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use duration::GoDuration;

use crate::consensus::Timeouts;

/// The CometBFT version whose protocols we speak; existing clients choose
/// their protocol from it.
pub const COMETBFT_VERSION: &str = "0.38.25";

/// The built-in application: the kvstore example run in-process.
pub const BUILTIN_KVSTORE: &str = "kvstore";

/// A configuration problem, naming the file and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The file concerned.
    pub path: PathBuf,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// The whole of config.toml: base keys at the top level, then one table per
/// section. Missing keys take their defaults; unknown keys are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Version of the config format (CometBFT writes its own version here).
    pub version: String,
    /// The application: "kvstore" (built in, ours), "tcp://host:port" or
    /// "unix:///path" for an external ABCI app. CometBFT's default is
    /// tcp://127.0.0.1:26658; a home made by `engine init` uses "kvstore".
    pub proxy_app: String,
    /// A name for this node.
    pub moniker: String,
    /// CometBFT's database backend name; we always store in one redb file and
    /// accept CometBFT's values for compatibility.
    pub db_backend: String,
    /// Data directory, relative to the home directory.
    pub db_dir: String,
    /// Log level: a level (`info`) or per-module list (`consensus:debug,*:info`).
    pub log_level: String,
    /// Log format: `plain` or `json`.
    pub log_format: String,
    /// Genesis file, relative to the home directory.
    pub genesis_file: String,
    /// Validator key file, relative to the home directory.
    pub priv_validator_key_file: String,
    /// Validator last-sign state file, relative to the home directory.
    pub priv_validator_state_file: String,
    /// Remote signer address (not supported yet; must be empty).
    pub priv_validator_laddr: String,
    /// Node (p2p identity) key file, relative to the home directory.
    pub node_key_file: String,
    /// ABCI transport: `socket` (gRPC is not supported).
    pub abci: String,
    /// Ask the app to filter peers.
    pub filter_peers: bool,
    /// Event bus buffer capacity (0 = unbuffered).
    pub event_bus_buffer_capacity: u64,
    /// \[rpc\]
    pub rpc: RpcConfig,
    /// \[p2p\]
    pub p2p: P2pConfig,
    /// \[mempool\]
    pub mempool: MempoolConfig,
    /// \[statesync\]
    pub statesync: StateSyncConfig,
    /// \[blocksync\]
    pub blocksync: BlockSyncConfig,
    /// \[consensus\]
    pub consensus: ConsensusConfig,
    /// \[storage\]
    pub storage: StorageConfig,
    /// \[tx_index\]
    pub tx_index: TxIndexConfig,
    /// \[instrumentation\]
    pub instrumentation: InstrumentationConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: COMETBFT_VERSION.into(),
            proxy_app: "tcp://127.0.0.1:26658".into(),
            moniker: "node".into(),
            db_backend: "goleveldb".into(),
            db_dir: "data".into(),
            log_level: "info".into(),
            log_format: "plain".into(),
            genesis_file: "config/genesis.json".into(),
            priv_validator_key_file: "config/priv_validator_key.json".into(),
            priv_validator_state_file: "data/priv_validator_state.json".into(),
            priv_validator_laddr: String::new(),
            node_key_file: "config/node_key.json".into(),
            abci: "socket".into(),
            filter_peers: false,
            event_bus_buffer_capacity: 0,
            rpc: RpcConfig::default(),
            p2p: P2pConfig::default(),
            mempool: MempoolConfig::default(),
            statesync: StateSyncConfig::default(),
            blocksync: BlockSyncConfig::default(),
            consensus: ConsensusConfig::default(),
            storage: StorageConfig::default(),
            tx_index: TxIndexConfig::default(),
            instrumentation: InstrumentationConfig::default(),
        }
    }
}

/// \[rpc\]: the JSON-RPC server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// Listen address, `tcp://127.0.0.1:26657`.
    pub laddr: String,
    /// CORS origins allowed (empty: CORS off).
    pub cors_allowed_origins: Vec<String>,
    /// CORS methods allowed.
    pub cors_allowed_methods: Vec<String>,
    /// CORS headers allowed.
    pub cors_allowed_headers: Vec<String>,
    /// gRPC listen address (not supported; must be empty).
    pub grpc_laddr: String,
    /// Max gRPC connections.
    pub grpc_max_open_connections: u64,
    /// Enable the unsafe routes (dial_seeds, dial_peers, unsafe_flush_mempool).
    #[serde(rename = "unsafe")]
    pub unsafe_routes: bool,
    /// Max simultaneous connections (0 = unlimited).
    pub max_open_connections: u64,
    /// Max WebSocket clients with subscriptions.
    pub max_subscription_clients: u64,
    /// Max subscriptions per client.
    pub max_subscriptions_per_client: u64,
    /// Buffered events per subscription.
    pub experimental_subscription_buffer_size: u64,
    /// Buffered messages per WebSocket writer.
    pub experimental_websocket_write_buffer_size: u64,
    /// Close a slow WebSocket client instead of dropping its events.
    pub experimental_close_on_slow_client: bool,
    /// How long broadcast_tx_commit waits for the tx to be committed.
    pub timeout_broadcast_tx_commit: GoDuration,
    /// Max requests in a JSON-RPC batch (0 = unlimited).
    pub max_request_batch_size: u64,
    /// Max request body size in bytes.
    pub max_body_bytes: u64,
    /// Max request header size in bytes.
    pub max_header_bytes: u64,
    /// TLS certificate file (empty: plain HTTP).
    pub tls_cert_file: String,
    /// TLS key file.
    pub tls_key_file: String,
    /// Profiling listen address (not supported; must be empty).
    pub pprof_laddr: String,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            laddr: "tcp://127.0.0.1:26657".into(),
            cors_allowed_origins: vec![],
            cors_allowed_methods: vec!["HEAD".into(), "GET".into(), "POST".into()],
            cors_allowed_headers: [
                "Origin",
                "Accept",
                "Content-Type",
                "X-Requested-With",
                "X-Server-Time",
            ]
            .map(String::from)
            .to_vec(),
            grpc_laddr: String::new(),
            grpc_max_open_connections: 900,
            unsafe_routes: false,
            max_open_connections: 900,
            max_subscription_clients: 100,
            max_subscriptions_per_client: 5,
            experimental_subscription_buffer_size: 200,
            experimental_websocket_write_buffer_size: 200,
            experimental_close_on_slow_client: false,
            timeout_broadcast_tx_commit: GoDuration::from_millis(10_000),
            max_request_batch_size: 10,
            max_body_bytes: 1_000_000,
            max_header_bytes: 1 << 20,
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            pprof_laddr: String::new(),
        }
    }
}

/// \[p2p\]: peer connections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// Listen address, `tcp://0.0.0.0:26656`.
    pub laddr: String,
    /// Address advertised to peers.
    pub external_address: String,
    /// Comma-separated seed nodes, `ID@host:port`.
    pub seeds: String,
    /// Comma-separated peers to keep connected, `ID@host:port`.
    pub persistent_peers: String,
    /// Address book file, relative to the home directory.
    pub addr_book_file: String,
    /// Refuse non-routable addresses in the address book.
    pub addr_book_strict: bool,
    /// Max inbound peers.
    pub max_num_inbound_peers: u64,
    /// Max outbound peers.
    pub max_num_outbound_peers: u64,
    /// Comma-separated peer IDs exempt from the peer limits.
    pub unconditional_peer_ids: String,
    /// Max time between dials to a persistent peer (0 = exponential backoff only).
    pub persistent_peers_max_dial_period: GoDuration,
    /// Time to wait before flushing messages to a peer.
    pub flush_throttle_timeout: GoDuration,
    /// Max size of a message packet payload, in bytes.
    pub max_packet_msg_payload_size: u64,
    /// Send rate limit per connection, bytes/s.
    pub send_rate: u64,
    /// Receive rate limit per connection, bytes/s.
    pub recv_rate: u64,
    /// Peer exchange.
    pub pex: bool,
    /// Seed mode: crawl and serve addresses only.
    pub seed_mode: bool,
    /// Comma-separated peer IDs not to gossip.
    pub private_peer_ids: String,
    /// Allow several peers from one IP.
    pub allow_duplicate_ip: bool,
    /// Handshake timeout.
    pub handshake_timeout: GoDuration,
    /// Dial timeout.
    pub dial_timeout: GoDuration,
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            laddr: "tcp://0.0.0.0:26656".into(),
            external_address: String::new(),
            seeds: String::new(),
            persistent_peers: String::new(),
            addr_book_file: "config/addrbook.json".into(),
            addr_book_strict: true,
            max_num_inbound_peers: 40,
            max_num_outbound_peers: 10,
            unconditional_peer_ids: String::new(),
            persistent_peers_max_dial_period: GoDuration::default(),
            flush_throttle_timeout: GoDuration::from_millis(100),
            max_packet_msg_payload_size: 1024,
            send_rate: 5_120_000,
            recv_rate: 5_120_000,
            pex: true,
            seed_mode: false,
            private_peer_ids: String::new(),
            allow_duplicate_ip: false,
            handshake_timeout: GoDuration::from_millis(20_000),
            dial_timeout: GoDuration::from_millis(3_000),
        }
    }
}

/// \[mempool\]: pending transactions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MempoolConfig {
    /// `flood` (gossip to all peers) or `nop` (no mempool).
    #[serde(rename = "type")]
    pub kind: String,
    /// Re-run CheckTx on remaining txs after each block.
    pub recheck: bool,
    /// How long to wait for the app to finish a recheck.
    pub recheck_timeout: GoDuration,
    /// Gossip txs to peers.
    pub broadcast: bool,
    /// Mempool WAL directory (empty: none).
    pub wal_dir: String,
    /// Max number of txs.
    pub size: u64,
    /// Max total bytes of txs.
    pub max_txs_bytes: u64,
    /// Size of the cache of recently seen txs.
    pub cache_size: u64,
    /// Keep txs that failed CheckTx in the cache (so they are not re-checked).
    #[serde(rename = "keep-invalid-txs-in-cache")]
    pub keep_invalid_txs_in_cache: bool,
    /// Max size of one tx in bytes.
    pub max_tx_bytes: u64,
    /// Deprecated in CometBFT; accepted and ignored.
    pub max_batch_bytes: u64,
    /// Peers (persistent) a tx is gossiped to at once (0 = all).
    pub experimental_max_gossip_connections_to_persistent_peers: u64,
    /// Peers (non-persistent) a tx is gossiped to at once (0 = all).
    pub experimental_max_gossip_connections_to_non_persistent_peers: u64,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            kind: "flood".into(),
            recheck: true,
            recheck_timeout: GoDuration::from_millis(1_000),
            broadcast: true,
            wal_dir: String::new(),
            size: 5_000,
            max_txs_bytes: 1 << 30,
            cache_size: 10_000,
            keep_invalid_txs_in_cache: false,
            max_tx_bytes: 1 << 20,
            max_batch_bytes: 0,
            experimental_max_gossip_connections_to_persistent_peers: 0,
            experimental_max_gossip_connections_to_non_persistent_peers: 0,
        }
    }
}

/// \[statesync\]: bootstrapping from an app snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSyncConfig {
    /// Enable state sync on a fresh node.
    pub enable: bool,
    /// Comma-separated RPC servers for light client verification.
    pub rpc_servers: String,
    /// Trusted height.
    pub trust_height: u64,
    /// Trusted header hash (hex).
    pub trust_hash: String,
    /// Trust period.
    pub trust_period: GoDuration,
    /// Time to discover snapshots.
    pub discovery_time: GoDuration,
    /// Temporary directory for chunks.
    pub temp_dir: String,
    /// Chunk request timeout.
    pub chunk_request_timeout: GoDuration,
    /// Concurrent chunk fetchers (CometBFT writes it as a quoted number).
    pub chunk_fetchers: String,
    /// Max chunks in a snapshot.
    pub max_snapshot_chunks: u64,
}

impl Default for StateSyncConfig {
    fn default() -> Self {
        StateSyncConfig {
            enable: false,
            rpc_servers: String::new(),
            trust_height: 0,
            trust_hash: String::new(),
            trust_period: GoDuration::from_millis(168 * 3_600_000),
            discovery_time: GoDuration::from_millis(15_000),
            temp_dir: String::new(),
            chunk_request_timeout: GoDuration::from_millis(10_000),
            chunk_fetchers: "4".into(),
            max_snapshot_chunks: 100_000,
        }
    }
}

/// \[blocksync\]: catching up from peers' blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockSyncConfig {
    /// Block sync protocol version (`v0`).
    pub version: String,
}

impl Default for BlockSyncConfig {
    fn default() -> Self {
        BlockSyncConfig {
            version: "v0".into(),
        }
    }
}

/// \[consensus\]: timeouts and block production.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Consensus WAL file, relative to the home directory.
    pub wal_file: String,
    /// Time to wait for a proposal in round 0.
    pub timeout_propose: GoDuration,
    /// Added to timeout_propose per round.
    pub timeout_propose_delta: GoDuration,
    /// Time to wait after +2/3 prevotes of mixed values.
    pub timeout_prevote: GoDuration,
    /// Added to timeout_prevote per round.
    pub timeout_prevote_delta: GoDuration,
    /// Time to wait after +2/3 precommits of mixed values.
    pub timeout_precommit: GoDuration,
    /// Added to timeout_precommit per round.
    pub timeout_precommit_delta: GoDuration,
    /// Time to wait after a commit before starting the next height.
    pub timeout_commit: GoDuration,
    /// Heights to look back for our own signatures before signing (0 = off).
    pub double_sign_check_height: u64,
    /// Start the next height as soon as all precommits are in.
    pub skip_timeout_commit: bool,
    /// Produce blocks without transactions.
    pub create_empty_blocks: bool,
    /// The longest round 0 waits for transactions before making an empty
    /// block (0: no limit). When set, round 0 waits even with
    /// create_empty_blocks = true (CometBFT's WaitForTxs).
    pub create_empty_blocks_interval: GoDuration,
    /// Gossip routine sleep.
    pub peer_gossip_sleep_duration: GoDuration,
    /// Maj23 query routine sleep.
    pub peer_query_maj23_sleep_duration: GoDuration,
    /// Tolerated clock drift of a proposed block's time.
    pub block_time_tolerance: GoDuration,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            wal_file: "data/cs.wal/wal".into(),
            timeout_propose: GoDuration::from_millis(3_000),
            timeout_propose_delta: GoDuration::from_millis(500),
            timeout_prevote: GoDuration::from_millis(1_000),
            timeout_prevote_delta: GoDuration::from_millis(500),
            timeout_precommit: GoDuration::from_millis(1_000),
            timeout_precommit_delta: GoDuration::from_millis(500),
            timeout_commit: GoDuration::from_millis(1_000),
            double_sign_check_height: 0,
            skip_timeout_commit: false,
            create_empty_blocks: true,
            create_empty_blocks_interval: GoDuration::default(),
            peer_gossip_sleep_duration: GoDuration::from_millis(100),
            peer_query_maj23_sleep_duration: GoDuration::from_millis(2_000),
            block_time_tolerance: GoDuration::from_millis(60_000),
        }
    }
}

impl ConsensusConfig {
    /// The consensus core's timeouts.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            propose: self.timeout_propose.0,
            propose_delta: self.timeout_propose_delta.0,
            prevote: self.timeout_prevote.0,
            prevote_delta: self.timeout_prevote_delta.0,
            precommit: self.timeout_precommit.0,
            precommit_delta: self.timeout_precommit_delta.0,
            commit: self.timeout_commit.0,
            create_empty_blocks_interval: self.create_empty_blocks_interval.0,
        }
    }

    /// Whether round 0 waits for transactions before proposing, unless the
    /// height needs a proof block (CometBFT's `WaitForTxs`): with
    /// `create_empty_blocks = false`, or with an interval, which then bounds
    /// the wait.
    pub fn wait_for_txs(&self) -> bool {
        !self.create_empty_blocks || !self.create_empty_blocks_interval.0.is_zero()
    }
}

/// \[storage\].
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Do not keep FinalizeBlock responses beyond what is needed to restart.
    pub discard_abci_responses: bool,
}

/// \[tx_index\].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TxIndexConfig {
    /// `kv` (index txs and blocks by events) or `null`.
    pub indexer: String,
    /// PostgreSQL connection for the `psql` indexer (not supported).
    #[serde(rename = "psql-conn")]
    pub psql_conn: String,
}

impl Default for TxIndexConfig {
    fn default() -> Self {
        TxIndexConfig {
            indexer: "kv".into(),
            psql_conn: String::new(),
        }
    }
}

/// \[instrumentation\]: Prometheus metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstrumentationConfig {
    /// Serve metrics.
    pub prometheus: bool,
    /// Metrics listen address.
    pub prometheus_listen_addr: String,
    /// Max metrics connections.
    pub max_open_connections: u64,
    /// Metric name prefix.
    pub namespace: String,
}

impl Default for InstrumentationConfig {
    fn default() -> Self {
        InstrumentationConfig {
            prometheus: false,
            prometheus_listen_addr: ":26660".into(),
            max_open_connections: 3,
            namespace: "cometbft".into(),
        }
    }
}

const HEADER: &str = "\
# The engine's node configuration, in CometBFT v0.38's format: every key
# CometBFT's config.toml has is accepted here with the same meaning.
# Relative paths are relative to the home directory. Durations use Go's
# notation (\"3s\", \"500ms\", \"1m0s\").
";

impl Config {
    /// The configuration `engine init` writes: CometBFT's defaults with the
    /// built-in kvstore application.
    pub fn for_init(moniker: &str) -> Self {
        Config {
            proxy_app: BUILTIN_KVSTORE.into(),
            moniker: moniker.into(),
            ..Config::default()
        }
    }

    /// Parses config.toml text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let before = e.span().map(|sp| &text[..sp.start.min(text.len())]);
            let line = before.map(|b| b.matches('\n').count() + 1);
            // The table the offending key sits in, for "[rpc] listen".
            let section = before
                .and_then(|b| b.lines().rev().find(|l| l.trim_start().starts_with('[')))
                .map(|l| format!("{} ", l.trim()))
                .unwrap_or_default();
            let message = e.message().trim();
            let (what, fix) = match message.strip_prefix("unknown field ") {
                Some(rest) => (
                    format!(
                        "{section}unknown key {}",
                        rest.split(", expected").next().unwrap_or(rest)
                    ),
                    "remove it or correct its spelling (`engine init --home <new dir>` writes a file with every key)",
                ),
                None => {
                    let key = line
                        .and_then(|l| text.lines().nth(l - 1))
                        .and_then(|l| l.split_once('='))
                        .map(|(k, _)| format!("{} = ", k.trim()))
                        .unwrap_or_default();
                    (format!("{section}{key}{message}"), "correct the value")
                }
            };
            let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
            ConfigError::new(path, format!("{at}{what}; {fix}"))
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                path,
                format!("cannot read: {e}; run `engine init --home <dir>` to create it"),
            )
        })?;
        Config::parse(&text, path)
    }

    /// The file's text: a short header, then every key.
    pub fn to_toml(&self) -> String {
        // Serializing plain structs of strings, numbers, bools and string
        // lists to TOML cannot fail.
        let body = toml::to_string(self).unwrap_or_default();
        format!("{HEADER}\n{body}")
    }

    /// Writes the file, creating its directory.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ConfigError::new(path, format!("cannot create directory: {e}")))?;
        }
        std::fs::write(path, self.to_toml())
            .map_err(|e| ConfigError::new(path, format!("cannot write: {e}")))
    }

    /// Checks values the parser cannot: each error names the key and the fix.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |key: &str, msg: &str| Err(ConfigError::new(path, format!("{key}: {msg}")));
        if self.proxy_app.is_empty() {
            return err(
                "proxy_app",
                "is empty; set \"kvstore\" or an app address like \"tcp://127.0.0.1:26658\"",
            );
        }
        if self.proxy_app != BUILTIN_KVSTORE
            && !self.proxy_app.starts_with("tcp://")
            && !self.proxy_app.starts_with("unix://")
        {
            return err(
                "proxy_app",
                "must be \"kvstore\", \"tcp://HOST:PORT\" or \"unix:///PATH\"",
            );
        }
        if self.abci != "socket" {
            return err(
                "abci",
                "only \"socket\" is supported; set abci = \"socket\"",
            );
        }
        if !matches!(self.log_format.as_str(), "plain" | "json") {
            return err("log_format", "must be \"plain\" or \"json\"");
        }
        if !self.priv_validator_laddr.is_empty() {
            return err(
                "priv_validator_laddr",
                "remote signers are not supported yet; leave it empty",
            );
        }
        if !matches!(self.mempool.kind.as_str(), "flood" | "nop") {
            return err("[mempool] type", "must be \"flood\" or \"nop\"");
        }
        if self.mempool.size == 0 || self.mempool.max_tx_bytes == 0 {
            return err("[mempool] size / max_tx_bytes", "must be positive");
        }
        if self.mempool.max_tx_bytes > self.mempool.max_txs_bytes {
            return err(
                "[mempool] max_tx_bytes",
                "is larger than max_txs_bytes; lower it or raise max_txs_bytes",
            );
        }
        if !matches!(self.tx_index.indexer.as_str(), "kv" | "null") {
            return err(
                "[tx_index] indexer",
                "must be \"kv\" or \"null\" (psql is not supported)",
            );
        }
        if self.rpc.max_body_bytes == 0 {
            return err("[rpc] max_body_bytes", "must be positive");
        }
        if self.rpc.max_subscriptions_per_client == 0 && self.rpc.max_subscription_clients > 0 {
            return err("[rpc] max_subscriptions_per_client", "must be positive");
        }
        for (key, addr) in [
            ("[rpc] laddr", &self.rpc.laddr),
            ("[p2p] laddr", &self.p2p.laddr),
        ] {
            if !addr.is_empty() && !addr.starts_with("tcp://") && !addr.starts_with("unix://") {
                return err(key, "must look like \"tcp://127.0.0.1:26657\"");
            }
        }
        if self.blocksync.version != "v0" {
            return err("[blocksync] version", "only \"v0\" exists");
        }
        Ok(())
    }

    /// `rel` resolved against `home` (absolute paths are kept).
    pub fn resolve(home: &Path, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            home.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> PathBuf {
        PathBuf::from("home/config/config.toml")
    }

    #[test]
    fn writes_and_reads_back_every_key() {
        let c = Config::for_init("n0");
        let text = c.to_toml();
        assert_eq!(Config::parse(&text, &path()).expect("parses"), c);
        for key in [
            "proxy_app = \"kvstore\"",
            "[rpc]",
            "laddr = \"tcp://127.0.0.1:26657\"",
            "timeout_broadcast_tx_commit = \"10s\"",
            "[consensus]",
            "timeout_propose = \"3s\"",
            "timeout_propose_delta = \"500ms\"",
            "keep-invalid-txs-in-cache = false",
            "psql-conn = \"\"",
            "prometheus_listen_addr = \":26660\"",
            "unsafe = false",
            "type = \"flood\"",
        ] {
            assert!(text.contains(key), "missing {key}");
        }
    }

    #[test]
    fn a_cometbft_style_file_with_a_subset_of_keys_takes_defaults() {
        let text = r#"
proxy_app = "tcp://127.0.0.1:26658"
moniker = "val-1"
db_backend = "goleveldb"

[consensus]
timeout_commit = "500ms"
create_empty_blocks = false

[p2p]
persistent_peers = "abc@1.2.3.4:26656"
"#;
        let c = Config::parse(text, &path()).expect("parses");
        assert_eq!(c.consensus.timeout_commit, GoDuration::from_millis(500));
        assert!(!c.consensus.create_empty_blocks);
        assert_eq!(c.consensus.timeout_propose, GoDuration::from_millis(3000));
        assert_eq!(c.consensus.timeouts().commit.as_millis(), 500);
        assert_eq!(c.rpc.max_body_bytes, 1_000_000);
        assert_eq!(c.p2p.persistent_peers, "abc@1.2.3.4:26656");
    }

    #[test]
    fn an_unknown_key_names_file_line_key_and_fix() {
        let text = "moniker = \"x\"\n[rpc]\nlisten = \"tcp://0.0.0.0:1\"\n";
        let e = Config::parse(text, &path())
            .expect_err("unknown key")
            .to_string();
        assert!(e.starts_with("home/config/config.toml: line 3"), "{e}");
        assert!(e.contains("[rpc] unknown key `listen`"), "{e}");
        assert!(e.contains("remove it"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::parse("[consensus]\ntimeout_propose = \"3x\"\n", &path())
            .expect_err("bad duration")
            .to_string();
        assert!(e.contains("line 2: [consensus] timeout_propose = "), "{e}");
        assert!(e.contains("\"3s\""), "{e}");
        let e = Config::parse("proxy_app = \"http://x\"\n", &path())
            .expect_err("bad app")
            .to_string();
        assert!(e.contains("proxy_app"), "{e}");
        let e = Config::parse("[mempool]\nsize = \"many\"\n", &path())
            .expect_err("bad type")
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = Config::load(Path::new("/nonexistent/config.toml"))
            .expect_err("missing")
            .to_string();
        assert!(e.contains("engine init"), "{e}");
    }
}
