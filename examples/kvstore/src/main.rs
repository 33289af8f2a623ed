//! `kvstore`: CometBFT's kvstore example application behind an ABCI socket.
//!
//! ```text
//! kvstore --addr tcp://127.0.0.1:26658
//! kvstore --addr unix:///tmp/kvstore.sock
//! ```
//!
//! Stops cleanly on SIGINT (ctrl-c) or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use abci::{Addr, Server, ServerConfig};
use clap::Parser;
use kvstore::KvStore;

/// Command line of the kvstore application.
#[derive(Debug, Parser)]
#[command(version, about = "CometBFT's kvstore ABCI application, in Rust")]
struct Cli {
    /// Where to listen: tcp://host:port, unix:///path, or host:port.
    #[arg(long, default_value = "tcp://127.0.0.1:26658")]
    addr: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kvstore: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> abci::Result<()> {
    let addr = Addr::parse(&cli.addr)?;
    let server = Server::bind(&addr, Arc::new(KvStore::new()), ServerConfig::default()).await?;
    tracing::info!(addr = %server.local_addr()?, "kvstore listening");
    server.run_until(shutdown_signal()).await?;
    tracing::info!("kvstore stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
