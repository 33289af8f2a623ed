//! Local networks of real `engine` processes on 127.0.0.1: generate their
//! homes ([`init`]), run and watch them ([`start`]), inspect a running
//! network ([`status`]), and measure one ([`bench`]).
//!
//! A network directory holds one CometBFT home per node (`node0`, `node1`,
//! … validators first, then full nodes) and a small manifest,
//! `testnet.json`, naming the nodes and the external application command if
//! any. Everything else `start` and `status` need (ports, keys) is read from
//! each home's own files, which stay the single source of truth.
//!
//! This module never talks to the consensus core: it only writes files,
//! starts processes and reads the nodes' RPC.

pub mod bench;
pub mod init;
pub mod layout;
pub mod rpc;
pub mod start;
pub mod status;

mod process;

use std::path::PathBuf;

pub use layout::{AppSpec, Network, NodeSpec, Ports, DEFAULT_BASE_PORT};

/// What can go wrong generating, starting or inspecting a network; each
/// message names the file or the flag concerned and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag's value is unusable.
    #[error("{0}")]
    Invalid(String),
    /// `init` would overwrite a directory with something in it.
    #[error(
        "{0} exists and is not empty; choose another --dir, or pass --force to replace a testnet there"
    )]
    DirNotEmpty(PathBuf),
    /// `--force` was given for a directory that holds no testnet, which
    /// `init` refuses to delete.
    #[error(
        "{0} is not a testnet directory (it has no testnet.json); remove it yourself or choose another --dir"
    )]
    NotATestnet(PathBuf),
    /// The manifest is missing or malformed.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A node home could not be created or read.
    #[error(transparent)]
    Home(#[from] engine::home::HomeError),
    /// The genesis file could not be written.
    #[error(transparent)]
    Genesis(#[from] engine::genesis::GenesisError),
    /// The `engine` binary was not found.
    #[error("{0}")]
    EngineNotFound(String),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The Ctrl-C / SIGTERM handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// A process could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The process, e.g. "node0 engine (/path/to/engine)".
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
