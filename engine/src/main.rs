//! The `engine` command: CometBFT's verbs and flags where we have the same
//! verb. Each command is a thin call into the library; errors are reported
//! in one line naming the file and the fix.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use engine::home::{Home, InitOptions};
use engine::node::now;

use engine::config::GoDuration;
use engine::config::COMETBFT_VERSION as COMETBFT_COMPAT;

#[derive(Parser)]
#[command(
    name = "engine",
    version,
    about = "A BFT consensus engine compatible with CometBFT v0.38"
)]
struct Cli {
    /// Home directory (CometBFT layout). Also read from $CMTHOME.
    #[arg(long, global = true, env = "CMTHOME", default_value_os_t = default_home())]
    home: PathBuf,
    /// Log level, e.g. "info" or "consensus:debug,*:info".
    #[arg(long = "log_level", global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a single-validator home: config, keys and genesis (existing files are kept).
    Init {
        /// Chain ID (default: test-chain-<random>).
        #[arg(long = "chain-id")]
        chain_id: Option<String>,
        /// Node name (default: the host name).
        #[arg(long)]
        moniker: Option<String>,
    },
    /// Run the node (a home without config.toml is initialized first).
    Start {
        /// The application: "kvstore", "tcp://HOST:PORT" or "unix:///PATH".
        #[arg(long = "proxy_app")]
        proxy_app: Option<String>,
        /// RPC listen address.
        #[arg(long = "rpc.laddr")]
        rpc_laddr: Option<String>,
        /// P2P listen address.
        #[arg(long = "p2p.laddr")]
        p2p_laddr: Option<String>,
        /// Comma-separated ID@host:port peers.
        #[arg(long = "p2p.persistent_peers")]
        persistent_peers: Option<String>,
        /// Node name.
        #[arg(long)]
        moniker: Option<String>,
        /// Produce blocks without transactions (false: only when there are
        /// transactions or the app hash changed).
        #[arg(long = "consensus.create_empty_blocks")]
        create_empty_blocks: Option<bool>,
        /// The longest wait for transactions before an empty block, e.g. "30s".
        #[arg(long = "consensus.create_empty_blocks_interval", value_parser = GoDuration::parse)]
        create_empty_blocks_interval: Option<GoDuration>,
    },
    /// Print this node's p2p ID.
    #[command(name = "show-node-id")]
    ShowNodeId,
    /// Print this validator's public key as CometBFT's JSON.
    #[command(name = "show-validator")]
    ShowValidator,
    /// Remove all data and the WAL; keep keys and the last-sign state.
    #[command(name = "reset-state")]
    ResetState,
    /// Remove all data and reset the last-sign state (unsafe: allows re-signing).
    #[command(name = "unsafe-reset-all")]
    UnsafeResetAll,
    /// Roll the state back one height, to re-execute the last block.
    Rollback {
        /// Also remove the last block.
        #[arg(long)]
        hard: bool,
    },
    /// Print version information.
    Version,
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".bft")
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref().unwrap_or("info"));
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Logs to stderr at the most verbose level named in `filter` (CometBFT's
/// "module:level,*:level" syntax; per-module filtering comes with the node).
fn init_logging(filter: &str) {
    let level = filter
        .split(',')
        .filter_map(|part| {
            part.rsplit(':')
                .next()?
                .trim()
                .parse::<tracing::Level>()
                .ok()
        })
        .max()
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .try_init();
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM: what supervisors
/// (`testnet start`, systemd, docker) send to stop a node cleanly.
async fn shutdown_signal() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = cli.home;
    match cli.command {
        Command::Init { chain_id, moniker } => {
            let (home, report) = Home::init(&dir, &InitOptions { chain_id, moniker }, now())?;
            for f in &report.created {
                tracing::info!(file = %f.display(), "generated");
            }
            for f in &report.kept {
                tracing::info!(file = %f.display(), "found, kept");
            }
            let g = home.genesis()?;
            println!("initialized {} (chain {})", dir.display(), g.chain_id);
        }
        Command::Start {
            proxy_app,
            rpc_laddr,
            p2p_laddr,
            persistent_peers,
            moniker,
            create_empty_blocks,
            create_empty_blocks_interval,
        } => {
            if !Home::exists(&dir) {
                Home::init(&dir, &InitOptions::default(), now())?;
                tracing::info!(home = %dir.display(), "initialized a new home");
            }
            let mut home = Home::load(&dir)?;
            let c = &mut home.config;
            if let Some(v) = proxy_app {
                c.proxy_app = v;
            }
            if let Some(v) = rpc_laddr {
                c.rpc.laddr = v;
            }
            if let Some(v) = p2p_laddr {
                c.p2p.laddr = v;
            }
            if let Some(v) = persistent_peers {
                c.p2p.persistent_peers = v;
            }
            if let Some(v) = moniker {
                c.moniker = v;
            }
            if let Some(v) = create_empty_blocks {
                c.consensus.create_empty_blocks = v;
            }
            if let Some(v) = create_empty_blocks_interval {
                c.consensus.create_empty_blocks_interval = v;
            }
            c.validate(&Home::config_path(&dir))?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(async move {
                let shutdown = async {
                    shutdown_signal().await;
                    tracing::info!("shutting down");
                };
                engine::node::run(home, shutdown).await
            })?;
        }
        Command::ShowNodeId => {
            let home = Home::load(&dir)?;
            println!("{}", home.node_key()?.id());
        }
        Command::ShowValidator => {
            let home = Home::load(&dir)?;
            let (_, key) = engine::privval::key_identity(&home.privval_paths().key)?;
            println!(
                "{}",
                serde_json::to_string(&engine::genesis::JsonKey::from_public(&key))?
            );
        }
        Command::ResetState => {
            let home = Home::load(&dir)?;
            for p in home.reset_state()? {
                tracing::info!(path = %p.display(), "removed");
            }
            println!("reset state of {}", dir.display());
        }
        Command::UnsafeResetAll => {
            let home = Home::load(&dir)?;
            for p in home.unsafe_reset_all()? {
                tracing::info!(path = %p.display(), "reset");
            }
            println!("reset all data of {}", dir.display());
        }
        Command::Rollback { hard } => {
            let home = Home::load(&dir)?;
            let db = engine::store::Store::path_in_home(&home.dir);
            let store = engine::store::Store::open(&db)
                .with_context(|| format!("{}: cannot open the database", db.display()))?;
            let (height, app_hash) = store.rollback(hard)?;
            println!(
                "Rolled back state to height {height} and hash {}",
                hex::encode_upper(app_hash)
            );
        }
        Command::Version => {
            println!("engine {}", env!("CARGO_PKG_VERSION"));
            println!("cometbft-compatible {COMETBFT_COMPAT}");
            println!("abci 2.0.0");
            println!("block protocol 11");
            println!("p2p protocol 8");
        }
    }
    Ok(())
}
