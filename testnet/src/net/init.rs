//! `testnet init`: the homes of a local network, as `cometbft testnet`
//! writes them, on one machine.
//!
//! Every node gets a home made by the engine's own [`Home::init_keys`]
//! (config.toml, validator key and state, node key), then one shared genesis
//! naming the validators with power 10 each. Config differences from
//! `engine init`: moniker `nodeI`, listen ports from [`Ports`],
//! `persistent_peers` listing every other node, `allow_duplicate_ip = true`
//! and `addr_book_strict = false` (all peers share 127.0.0.1), and
//! `proxy_app` pointing at the node's external app when there is one.

use std::path::{Path, PathBuf};

use engine::config::{Config, BUILTIN_KVSTORE};
use engine::genesis::{GenesisDoc, GenesisValidator, MAX_CHAIN_ID_LEN};
use engine::home::Home;
use engine::types::{ConsensusParams, Time};

use super::layout::{node_name, Manifest, MANIFEST};
use super::{io_err, AppSpec, Error, Network, Ports};

/// Voting power of each genesis validator (as `engine init` gives its one).
pub const VALIDATOR_POWER: i64 = 10;

/// What `testnet init` generates.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The network directory.
    pub dir: PathBuf,
    /// Number of validators (node0 … node{N-1}); at least 1.
    pub validators: usize,
    /// Number of full nodes after the validators.
    pub full_nodes: usize,
    /// The application of every node.
    pub app: AppSpec,
    /// node0's first port; see [`Ports`].
    pub base_port: u16,
    /// Chain ID; `chain-` and six random characters when absent.
    pub chain_id: Option<String>,
    /// Replace an existing testnet directory.
    pub force: bool,
}

/// Writes the network's homes and manifest, then loads it back as `start`
/// will see it.
pub fn init(opts: &InitOptions, now: Time) -> Result<Network, Error> {
    let total = opts.validators + opts.full_nodes;
    if opts.validators == 0 {
        return Err(Error::Invalid(
            "--validators must be at least 1: a chain needs a validator".into(),
        ));
    }
    let ports: Vec<Ports> = (0..total)
        .map(|i| Ports::of(opts.base_port, i))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            Error::Invalid(format!(
                "--base-port {}: {total} nodes need ports up to {}+10*{} + 8, past 65535; lower it",
                opts.base_port,
                opts.base_port,
                total - 1
            ))
        })?;
    let chain_id = match &opts.chain_id {
        Some(id) if id.is_empty() || id.len() > MAX_CHAIN_ID_LEN => {
            return Err(Error::Invalid(format!(
                "--chain-id must have 1 to {MAX_CHAIN_ID_LEN} bytes"
            )))
        }
        Some(id) => id.clone(),
        None => random_chain_id(),
    };
    prepare_dir(&opts.dir, opts.force)?;

    // The manifest goes first, so that even a directory left half-written
    // by a failure is recognized (and replaceable with --force).
    let names: Vec<String> = (0..total).map(node_name).collect();
    Manifest {
        chain_id: chain_id.clone(),
        nodes: names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i < opts.validators))
            .collect(),
        app: opts.app.clone(),
    }
    .save(&opts.dir)?;

    let mut homes = Vec::with_capacity(total);
    for (name, ports) in names.iter().zip(&ports) {
        let config = node_config(name, ports, &opts.app);
        let (home, _) = Home::init_keys(&opts.dir.join(name), config)?;
        homes.push(home);
    }

    let addresses: Vec<(String, u16)> = homes
        .iter()
        .zip(&ports)
        .map(|(h, p)| Ok((h.node_key()?.id(), p.p2p)))
        .collect::<Result<_, Error>>()?;
    for (i, home) in homes.iter_mut().enumerate() {
        home.config.p2p.persistent_peers = persistent_peers(&addresses, i);
        home.config
            .save(&Home::config_path(&home.dir))
            .map_err(engine::home::HomeError::from)?;
    }

    let mut validators = Vec::with_capacity(opts.validators);
    for (home, name) in homes.iter().zip(&names).take(opts.validators) {
        let key = home.validator_key()?;
        validators.push(GenesisValidator {
            address: key.address(),
            pub_key: key,
            power: VALIDATOR_POWER,
            name: name.clone(),
        });
    }
    let genesis = GenesisDoc {
        genesis_time: now,
        chain_id,
        initial_height: 1,
        consensus_params: ConsensusParams::default(),
        validators,
        app_hash: Vec::new(),
        app_state: None,
    };
    for home in &homes {
        home.save_genesis(&genesis)?;
    }
    Network::load(&opts.dir)
}

/// Node `name`'s config.toml (without peers, added once every node key
/// exists).
fn node_config(name: &str, ports: &Ports, app: &AppSpec) -> Config {
    let mut c = Config::for_init(name);
    c.p2p.laddr = format!("tcp://127.0.0.1:{}", ports.p2p);
    c.rpc.laddr = format!("tcp://127.0.0.1:{}", ports.rpc);
    c.p2p.allow_duplicate_ip = true;
    c.p2p.addr_book_strict = false;
    c.proxy_app = match app {
        AppSpec::Kvstore => BUILTIN_KVSTORE.into(),
        AppSpec::Command(_) => format!("tcp://127.0.0.1:{}", ports.app),
    };
    c
}

/// `ID@127.0.0.1:PORT` of every node but `me`, comma-separated.
pub fn persistent_peers(addresses: &[(String, u16)], me: usize) -> String {
    addresses
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, (id, port))| format!("{id}@127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Makes `dir` an empty directory: creates it, or with `force` replaces a
/// previous testnet there. Anything else with content is refused, so a
/// mistyped `--dir` never deletes unrelated files.
fn prepare_dir(dir: &Path, force: bool) -> Result<(), Error> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(Error::Invalid(format!(
                "--dir {} is a file, not a directory",
                dir.display()
            )));
        }
        let empty = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .next()
            .is_none();
        if !empty {
            if !force {
                return Err(Error::DirNotEmpty(dir.to_path_buf()));
            }
            if !dir.join(MANIFEST).is_file() {
                return Err(Error::NotATestnet(dir.to_path_buf()));
            }
            std::fs::remove_dir_all(dir).map_err(io_err(dir))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))
}

/// `chain-` and six random letters and digits, as `cometbft testnet`.
fn random_chain_id() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    format!(
        "chain-{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 6)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> InitOptions {
        InitOptions {
            dir: dir.to_path_buf(),
            validators: 3,
            full_nodes: 1,
            app: AppSpec::Kvstore,
            base_port: 30000,
            chain_id: Some("net-chain".into()),
            force: false,
        }
    }

    fn now() -> Time {
        Time {
            secs: 1_700_000_000,
            nanos: 0,
        }
    }

    #[test]
    fn peers_list_every_other_node() {
        let addrs = vec![
            ("a".to_string(), 1),
            ("b".to_string(), 2),
            ("c".to_string(), 3),
        ];
        assert_eq!(persistent_peers(&addrs, 1), "a@127.0.0.1:1,c@127.0.0.1:3");
        assert_eq!(persistent_peers(&addrs[..1], 0), "");
    }

    #[test]
    fn writes_homes_sharing_one_genesis_of_the_validators() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("net");
        let net = init(&opts(&dir), now()).expect("init");
        assert_eq!(net.nodes.len(), 4);
        assert_eq!(net.chain_id, "net-chain");

        let homes: Vec<Home> = net
            .nodes
            .iter()
            .map(|n| Home::load(&n.home).expect("home"))
            .collect();
        let genesis = homes[0].genesis().expect("genesis");
        assert_eq!(genesis.chain_id, "net-chain");
        assert_eq!(genesis.genesis_time, now());
        let keys: Vec<_> = genesis.validators.iter().map(|v| v.pub_key).collect();
        for (i, home) in homes.iter().enumerate() {
            assert_eq!(home.genesis().expect("genesis"), genesis, "node{i}");
            assert_eq!(home.config.moniker, format!("node{i}"));
            let key = home.validator_key().expect("key");
            assert_eq!(
                keys.contains(&key),
                i < 3,
                "node{i} in genesis iff validator"
            );
            let p = Ports::of(30000, i).expect("ports");
            assert_eq!(home.config.p2p.laddr, format!("tcp://127.0.0.1:{}", p.p2p));
            assert_eq!(net.nodes[i].rpc.port(), p.rpc);
            assert!(home.config.p2p.allow_duplicate_ip);
            assert!(!home.config.p2p.addr_book_strict);
            assert_eq!(home.config.proxy_app, "kvstore");
            assert_eq!(net.nodes[i].app, None);
        }
        assert!(genesis
            .validators
            .iter()
            .all(|v| v.power == VALIDATOR_POWER));
        assert_eq!(genesis.validators[2].name, "node2");
    }

    #[test]
    fn an_external_app_gets_the_nodes_app_port() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("net");
        let o = InitOptions {
            app: AppSpec::Command("app --port {port}".into()),
            ..opts(&dir)
        };
        let net = init(&o, now()).expect("init");
        let home1 = Home::load(&net.nodes[1].home).expect("home");
        assert_eq!(home1.config.proxy_app, "tcp://127.0.0.1:30018");
        assert_eq!(
            net.nodes[1].app,
            Some(("app --port 30018".to_string(), 30018))
        );
    }

    #[test]
    fn refuses_content_unless_forced_and_then_only_a_testnet() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("net");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("precious.txt"), "x").expect("write");
        let err = init(&opts(&dir), now()).expect_err("not empty");
        assert!(matches!(err, Error::DirNotEmpty(_)), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        let forced = InitOptions {
            force: true,
            ..opts(&dir)
        };
        let err = init(&forced, now()).expect_err("not a testnet");
        assert!(matches!(err, Error::NotATestnet(_)), "{err}");
        assert!(dir.join("precious.txt").exists(), "nothing deleted");

        std::fs::remove_file(dir.join("precious.txt")).expect("rm");
        let id = |n: &Network| {
            Home::load(&n.nodes[0].home)
                .and_then(|h| h.node_key())
                .expect("key")
                .id()
        };
        let first = id(&init(&opts(&dir), now()).expect("empty dir is fine"));
        let again = id(&init(&forced, now()).expect("a testnet is replaced with --force"));
        assert_ne!(first, again, "fresh keys");
    }

    #[test]
    fn rejects_unusable_options() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("net");
        let none = InitOptions {
            validators: 0,
            ..opts(&dir)
        };
        assert!(init(&none, now()).is_err());
        let high = InitOptions {
            base_port: 65500,
            ..opts(&dir)
        };
        let err = init(&high, now()).expect_err("ports overflow");
        assert!(err.to_string().contains("--base-port"), "{err}");
        let long = InitOptions {
            chain_id: Some("x".repeat(51)),
            ..opts(&dir)
        };
        assert!(init(&long, now()).is_err());
        assert!(!dir.exists(), "nothing written on bad options");
    }
}
