//! The node's home directory, laid out as CometBFT's:
//!
//! ```text
//! config/config.toml  config/genesis.json  config/node_key.json
//! config/priv_validator_key.json  config/addrbook.json
//! data/priv_validator_state.json  data/engine.db  data/cs.wal/
//! ```
//!
//! Owns creating a home (`engine init`), resolving its files from
//! config.toml, and the reset commands. Existing files are never
//! overwritten by `init`, as CometBFT's `init` keeps them.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::genesis::{GenesisDoc, GenesisError, NodeKey};
use crate::privval::{FilePV, FilePVPaths, PrivvalError};
use crate::types::{PrivateKey, PublicKey, Time};

/// A problem with the home directory, naming the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// config.toml.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// genesis.json or node_key.json.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// The validator key or state file.
    #[error(transparent)]
    Privval(#[from] PrivvalError),
    /// Any other file operation.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A home directory and its configuration.
#[derive(Clone, Debug)]
pub struct Home {
    /// The directory.
    pub dir: PathBuf,
    /// Its config.toml.
    pub config: Config,
}

/// What `init` did, for its log lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitReport {
    /// Files written.
    pub created: Vec<PathBuf>,
    /// Files that existed and were kept.
    pub kept: Vec<PathBuf>,
}

/// Options of `engine init`.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Chain ID; `test-chain-XXXXXX` with random letters when absent.
    pub chain_id: Option<String>,
    /// Moniker; the host name when absent.
    pub moniker: Option<String>,
}

impl Home {
    /// `config/config.toml` under `dir`.
    pub fn config_path(dir: &Path) -> PathBuf {
        dir.join("config").join("config.toml")
    }

    /// Loads the home at `dir`: its config.toml must exist.
    pub fn load(dir: &Path) -> Result<Home, HomeError> {
        let config = Config::load(&Self::config_path(dir))?;
        Ok(Home {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// True when `dir` holds a config.toml.
    pub fn exists(dir: &Path) -> bool {
        Self::config_path(dir).is_file()
    }

    /// A path from config.toml, resolved against the home directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        Config::resolve(&self.dir, rel)
    }

    /// The validator signer's files, as config.toml names them.
    pub fn privval_paths(&self) -> FilePVPaths {
        FilePVPaths {
            key: self.path(&self.config.priv_validator_key_file),
            state: self.path(&self.config.priv_validator_state_file),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.path(&self.config.db_dir)
    }

    /// Creates a single-validator home at `dir` (CometBFT's `init`): config
    /// with the built-in kvstore app, validator key and state, node key, and
    /// a genesis naming this validator with power 10. Files that exist are
    /// kept.
    pub fn init(
        dir: &Path,
        opts: &InitOptions,
        now: Time,
    ) -> Result<(Home, InitReport), HomeError> {
        let moniker = opts.moniker.clone().unwrap_or_else(default_moniker);
        let (home, mut report) = Self::init_keys(dir, Config::for_init(&moniker))?;
        let genesis_path = home.path(&home.config.genesis_file);
        if genesis_path.is_file() {
            report.kept.push(genesis_path);
        } else {
            let chain_id = opts.chain_id.clone().unwrap_or_else(random_chain_id);
            GenesisDoc::single_validator(&chain_id, home.validator_key()?, now)
                .save(&genesis_path)?;
            report.created.push(genesis_path);
        }
        Ok((home, report))
    }

    /// Creates everything of a home at `dir` but its genesis: `config`
    /// written as config.toml (an existing config.toml is kept and used
    /// instead), the data directory, a validator key and last-sign state, and
    /// a node key; existing key files are kept.
    ///
    /// `init` is this plus a one-validator genesis. Tools that generate a
    /// network of several validators (`testnet init`) call it once per node,
    /// collect the validator keys ([`Home::validator_key`]), and then write
    /// one shared genesis to every home ([`Home::save_genesis`]).
    pub fn init_keys(dir: &Path, config: Config) -> Result<(Home, InitReport), HomeError> {
        let mut report = InitReport::default();
        let config_path = Self::config_path(dir);
        let config = if config_path.is_file() {
            report.kept.push(config_path.clone());
            Config::load(&config_path)?
        } else {
            config.save(&config_path)?;
            report.created.push(config_path);
            config
        };
        let home = Home {
            dir: dir.to_path_buf(),
            config,
        };
        std::fs::create_dir_all(home.data_dir()).map_err(io(&home.data_dir()))?;

        let paths = home.privval_paths();
        let existed = paths.key.is_file();
        // Loading an existing key checks its state file is readable too.
        FilePV::load_or_generate(paths.clone())?;
        if existed {
            report.kept.push(paths.key.clone());
        } else {
            report.created.push(paths.key.clone());
            report.created.push(paths.state.clone());
        }

        let node_key_path = home.path(&home.config.node_key_file);
        if node_key_path.is_file() {
            report.kept.push(node_key_path);
        } else {
            NodeKey(PrivateKey::from_seed(random_seed())).save(&node_key_path)?;
            report.created.push(node_key_path);
        }
        Ok((home, report))
    }

    /// The validator's consensus public key, from its key file.
    pub fn validator_key(&self) -> Result<PublicKey, HomeError> {
        Ok(crate::privval::key_identity(&self.privval_paths().key)?.1)
    }

    /// Writes `genesis` as this home's genesis file (replacing any).
    pub fn save_genesis(&self, genesis: &GenesisDoc) -> Result<(), HomeError> {
        Ok(genesis.save(&self.path(&self.config.genesis_file))?)
    }

    /// The node key.
    pub fn node_key(&self) -> Result<NodeKey, HomeError> {
        Ok(NodeKey::load(&self.path(&self.config.node_key_file))?)
    }

    /// The genesis document.
    pub fn genesis(&self) -> Result<GenesisDoc, HomeError> {
        Ok(GenesisDoc::load(&self.path(&self.config.genesis_file))?)
    }

    /// `reset-state`: removes the block store, state, WAL and indexes; keeps
    /// keys and the validator's last-sign state (so it cannot double-sign).
    pub fn reset_state(&self) -> Result<Vec<PathBuf>, HomeError> {
        let data = self.data_dir();
        let keep = self.privval_paths().state;
        let mut removed = Vec::new();
        let entries = match std::fs::read_dir(&data) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(io(&data)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io(&data))?.path();
            if path == keep {
                continue;
            }
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            } else {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
            removed.push(path);
        }
        let wal = self.path(&self.config.consensus.wal_file);
        if let Some(wal_dir) = wal.parent().filter(|d| d.exists() && !d.starts_with(&data)) {
            std::fs::remove_dir_all(wal_dir).map_err(io(wal_dir))?;
            removed.push(wal_dir.to_path_buf());
        }
        Ok(removed)
    }

    /// `unsafe-reset-all`: `reset-state`, plus the validator's last-sign
    /// state reset to height 0 (keys kept) and the address book removed.
    /// Unsafe: a validator that signed at some height may sign again there.
    pub fn unsafe_reset_all(&self) -> Result<Vec<PathBuf>, HomeError> {
        let mut removed = self.reset_state()?;
        let paths = self.privval_paths();
        if paths.key.is_file() {
            let mut pv = FilePV::load_empty_state(paths.clone())?;
            pv.reset()?;
            removed.push(paths.state);
        }
        let book = self.path(&self.config.p2p.addr_book_file);
        if book.is_file() {
            std::fs::remove_file(&book).map_err(io(&book))?;
            removed.push(book);
        }
        Ok(removed)
    }
}

fn random_seed() -> [u8; 32] {
    use rand_core::RngCore;
    let mut seed = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut seed);
    seed
}

/// `test-chain-` and six random letters and digits, as CometBFT's init.
fn random_chain_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let seed = random_seed();
    let suffix: String = seed[..6]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("test-chain-{suffix}")
}

fn default_moniker() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time {
            secs: 1_700_000_000,
            nanos: 0,
        }
    }

    #[test]
    fn init_writes_cometbft_layout_and_keeps_existing_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("h");
        let opts = InitOptions {
            chain_id: Some("my-chain".into()),
            moniker: Some("m".into()),
        };
        let (home, report) = Home::init(&dir, &opts, now()).expect("init");
        for f in [
            "config/config.toml",
            "config/genesis.json",
            "config/node_key.json",
            "config/priv_validator_key.json",
            "data/priv_validator_state.json",
        ] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        assert_eq!(report.created.len(), 5);
        assert_eq!(home.config.proxy_app, crate::config::BUILTIN_KVSTORE);
        let g = home.genesis().expect("genesis");
        assert_eq!(g.chain_id, "my-chain");
        let pv = FilePV::load(home.privval_paths()).expect("pv");
        assert_eq!(g.validators[0].pub_key, pv.public_key());
        assert_eq!(g.validators[0].power, 10);
        let id = home.node_key().expect("node key").id();

        // A second init keeps everything.
        let (_, again) = Home::init(&dir, &InitOptions::default(), now()).expect("init again");
        assert!(again.created.is_empty(), "{again:?}");
        assert_eq!(
            Home::load(&dir)
                .expect("load")
                .node_key()
                .expect("key")
                .id(),
            id
        );
    }

    #[test]
    fn init_keys_leaves_the_genesis_to_the_caller() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("h");
        let mut config = Config::for_init("node3");
        config.rpc.laddr = "tcp://127.0.0.1:26637".into();
        let (home, report) = Home::init_keys(&dir, config.clone()).expect("init_keys");
        assert_eq!(report.created.len(), 4, "config, key, state, node key");
        assert_eq!(Home::load(&dir).expect("load").config, config);
        assert!(home.genesis().is_err(), "no genesis yet");

        let key = home.validator_key().expect("key");
        let other = PrivateKey::from_seed([7; 32]).public_key();
        let mut genesis = GenesisDoc::single_validator("shared", other, now());
        genesis
            .validators
            .extend(GenesisDoc::single_validator("shared", key, now()).validators);
        home.save_genesis(&genesis).expect("save");
        assert_eq!(home.genesis().expect("genesis"), genesis);
        assert_eq!(
            FilePV::load(home.privval_paths()).expect("pv").public_key(),
            key
        );
    }

    #[test]
    fn resets_remove_data_and_only_unsafe_reset_forgets_the_sign_state() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("h");
        let (home, _) = Home::init(&dir, &InitOptions::default(), now()).expect("init");
        let db = home.data_dir().join("engine.db");
        std::fs::write(&db, b"x").expect("write");
        std::fs::create_dir_all(home.data_dir().join("cs.wal")).expect("mkdir");
        let state_file = home.privval_paths().state;
        let state_before = std::fs::read(&state_file).expect("state");

        let removed = home.reset_state().expect("reset-state");
        assert!(!db.exists() && !home.data_dir().join("cs.wal").exists());
        assert_eq!(removed.len(), 2);
        assert_eq!(std::fs::read(&state_file).expect("state"), state_before);

        home.unsafe_reset_all().expect("unsafe-reset-all");
        assert!(state_file.is_file(), "reset to height 0, not deleted");
        assert!(home.privval_paths().key.is_file(), "keys are kept");
    }
}
