//! The shape of a network directory: node names, the port formula, the
//! `testnet.json` manifest, and the [`Network`] that `start` and `status`
//! load from a directory.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use engine::config::BUILTIN_KVSTORE;
use engine::home::Home;
use serde_json::{json, Value};

use super::{io_err, Error};

/// The first port of node0 when `--base-port` is not given.
pub const DEFAULT_BASE_PORT: u16 = 26600;

/// Ports each node takes: node `i` uses `P + 10*i + offset`.
const PORTS_PER_NODE: u32 = 10;
/// Offset of the RPC port.
const RPC_OFFSET: u32 = 7;
/// Offset of the external application's ABCI port.
const APP_OFFSET: u32 = 8;

/// The manifest's file name inside the network directory.
pub const MANIFEST: &str = "testnet.json";

/// The placeholder an external app command must contain: the node's app
/// port.
pub const PORT_PLACEHOLDER: &str = "{port}";
/// An optional placeholder of an external app command: the node's home
/// directory (for an app that keeps data per node).
pub const HOME_PLACEHOLDER: &str = "{home}";

/// The ports of one node, from the base port `P` and the node's index `i`:
/// p2p `P+10i`, RPC `P+10i+7`, external app `P+10i+8` (as 26656, 26657 and
/// 26658 sit together in CometBFT's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// Peer-to-peer listen port.
    pub p2p: u16,
    /// RPC listen port.
    pub rpc: u16,
    /// ABCI port of the node's external application (unused with kvstore).
    pub app: u16,
}

impl Ports {
    /// Node `index`'s ports, or `None` when they would pass 65535.
    pub fn of(base: u16, index: usize) -> Option<Ports> {
        let index = u32::try_from(index).ok()?;
        let first = u32::from(base).checked_add(index.checked_mul(PORTS_PER_NODE)?)?;
        let port = |offset: u32| u16::try_from(first + offset).ok();
        Some(Ports {
            p2p: port(0)?,
            rpc: port(RPC_OFFSET)?,
            app: port(APP_OFFSET)?,
        })
    }
}

/// The name (and home directory name) of node `index`.
pub fn node_name(index: usize) -> String {
    format!("node{index}")
}

/// The application every node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppSpec {
    /// The engine's built-in kvstore, in-process (`proxy_app = "kvstore"`).
    Kvstore,
    /// An external ABCI application: a shell command containing `{port}`,
    /// which `start` replaces with the node's app port (and `{home}`, if
    /// present, with the node's home directory).
    Command(String),
}

impl AppSpec {
    /// Parses `--app`: `kvstore`, or a command containing `{port}`.
    pub fn parse(text: &str) -> Result<AppSpec, Error> {
        let text = text.trim();
        if text == BUILTIN_KVSTORE {
            Ok(AppSpec::Kvstore)
        } else if text.contains(PORT_PLACEHOLDER) {
            Ok(AppSpec::Command(text.to_string()))
        } else {
            Err(Error::Invalid(format!(
                "--app: `{text}` is neither \"kvstore\" nor a command containing {PORT_PLACEHOLDER} \
                 (where the app must listen), e.g. \"my-app --addr tcp://127.0.0.1:{PORT_PLACEHOLDER}\""
            )))
        }
    }

    /// The command with `{port}` and `{home}` replaced, or `None` for
    /// kvstore.
    pub fn command_for(&self, port: u16, home: &Path) -> Option<String> {
        match self {
            AppSpec::Kvstore => None,
            AppSpec::Command(c) => Some(
                c.replace(PORT_PLACEHOLDER, &port.to_string())
                    .replace(HOME_PLACEHOLDER, &home.display().to_string()),
            ),
        }
    }
}

/// `testnet.json`: the nodes in order and the app command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The chain ID (informational; each genesis is authoritative).
    pub chain_id: String,
    /// Node names and whether each is a validator, node0 first.
    pub nodes: Vec<(String, bool)>,
    /// The application.
    pub app: AppSpec,
}

impl Manifest {
    /// The file's JSON.
    pub fn to_json(&self) -> Value {
        let app = match &self.app {
            AppSpec::Kvstore => Value::String(BUILTIN_KVSTORE.into()),
            AppSpec::Command(c) => Value::String(c.clone()),
        };
        json!({
            "chain_id": self.chain_id,
            "app": app,
            "nodes": self.nodes.iter().map(|(name, validator)| json!({
                "name": name,
                "validator": validator,
            })).collect::<Vec<_>>(),
        })
    }

    /// Parses the file's JSON; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, Error> {
        let bad = |message: String| Error::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let v: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let chain_id = v["chain_id"]
            .as_str()
            .ok_or_else(|| bad("missing `chain_id`".into()))?
            .to_string();
        let app = AppSpec::parse(
            v["app"]
                .as_str()
                .ok_or_else(|| bad("missing `app`".into()))?,
        )
        .map_err(|e| bad(e.to_string()))?;
        let list = v["nodes"]
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| bad("`nodes` must be a non-empty list".into()))?;
        let mut nodes = Vec::with_capacity(list.len());
        for (i, n) in list.iter().enumerate() {
            let name = n["name"]
                .as_str()
                .filter(|s| is_plain_name(s))
                .ok_or_else(|| bad(format!("nodes[{i}].name must be a plain directory name")))?;
            let validator = n["validator"]
                .as_bool()
                .ok_or_else(|| bad(format!("nodes[{i}].validator must be true or false")))?;
            nodes.push((name.to_string(), validator));
        }
        Ok(Manifest {
            chain_id,
            nodes,
            app,
        })
    }

    /// Reads `dir/testnet.json`.
    pub fn load(dir: &Path) -> Result<Manifest, Error> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: format!("cannot read: {e}; is this a directory made by `testnet init`?"),
        })?;
        Manifest::parse(&text, &path)
    }

    /// Writes `dir/testnet.json`.
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        std::fs::write(&path, text + "\n").map_err(io_err(&path))
    }
}

/// A node name usable as a directory name inside the network directory
/// (no separators, no `..`), so a manifest cannot point outside it.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// One node of a network on disk, as `start` and `status` need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// Its name, e.g. `node2`.
    pub name: String,
    /// Whether its validator key is in the genesis.
    pub validator: bool,
    /// Its home directory.
    pub home: PathBuf,
    /// Where its RPC listens (from its config.toml).
    pub rpc: SocketAddr,
    /// Its external application: the command with `{port}` replaced, and
    /// that port (from `proxy_app`); `None` with the built-in kvstore.
    pub app: Option<(String, u16)>,
}

/// A network directory: its nodes in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// The directory.
    pub dir: PathBuf,
    /// The chain ID the manifest records.
    pub chain_id: String,
    /// The nodes, node0 first.
    pub nodes: Vec<NodeSpec>,
}

impl Network {
    /// Loads the manifest of `dir` and each node's config.toml.
    pub fn load(dir: &Path) -> Result<Network, Error> {
        let manifest = Manifest::load(dir)?;
        let mut nodes = Vec::with_capacity(manifest.nodes.len());
        for (name, validator) in &manifest.nodes {
            let home_dir = dir.join(name);
            let home = Home::load(&home_dir)?;
            let config_path = Home::config_path(&home_dir);
            let rpc = socket_addr(&home.config.rpc.laddr).ok_or_else(|| Error::Manifest {
                path: config_path.clone(),
                message: format!(
                    "[rpc] laddr `{}` is not a tcp://HOST:PORT address `testnet` can reach",
                    home.config.rpc.laddr
                ),
            })?;
            let app = match &manifest.app {
                AppSpec::Kvstore => None,
                AppSpec::Command(_) => {
                    let port = socket_addr(&home.config.proxy_app)
                        .map(|a| a.port())
                        .ok_or_else(|| Error::Manifest {
                            path: config_path.clone(),
                            message: format!(
                                "proxy_app `{}` must be tcp://127.0.0.1:PORT for the app command of {MANIFEST}",
                                home.config.proxy_app
                            ),
                        })?;
                    manifest.app.command_for(port, &home_dir).map(|c| (c, port))
                }
            };
            nodes.push(NodeSpec {
                name: name.clone(),
                validator: *validator,
                home: home_dir,
                rpc,
                app,
            });
        }
        Ok(Network {
            dir: dir.to_path_buf(),
            chain_id: manifest.chain_id,
            nodes,
        })
    }
}

/// The address to connect to for a `tcp://HOST:PORT` listen address; an
/// unspecified host (0.0.0.0, ::) means this machine.
pub fn socket_addr(laddr: &str) -> Option<SocketAddr> {
    let hostport = laddr.strip_prefix("tcp://")?;
    let mut addr = hostport.to_socket_addrs().ok()?.next()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_documented_formula() {
        assert_eq!(
            Ports::of(26600, 0),
            Some(Ports {
                p2p: 26600,
                rpc: 26607,
                app: 26608
            })
        );
        assert_eq!(
            Ports::of(26600, 3),
            Some(Ports {
                p2p: 26630,
                rpc: 26637,
                app: 26638
            })
        );
        assert_eq!(Ports::of(65520, 1), None, "65530+7 passes 65535");
        assert!(Ports::of(65527, 0).is_some(), "65527+8 = 65535 fits");
        assert!(Ports::of(65528, 0).is_none(), "65528+8 passes 65535");
        assert!(Ports::of(26600, usize::MAX).is_none());
    }

    #[test]
    fn app_spec_needs_kvstore_or_a_port_placeholder() {
        assert_eq!(
            AppSpec::parse("kvstore").expect("kvstore"),
            AppSpec::Kvstore
        );
        let app = AppSpec::parse("my-app --addr tcp://127.0.0.1:{port} --x {port} --db {home}/app")
            .expect("cmd");
        assert_eq!(
            app.command_for(26608, Path::new("net/node0")).as_deref(),
            Some("my-app --addr tcp://127.0.0.1:26608 --x 26608 --db net/node0/app")
        );
        let err = AppSpec::parse("my-app --addr 1234").expect_err("no placeholder");
        assert!(err.to_string().contains("{port}"), "{err}");
    }

    #[test]
    fn manifest_round_trips_and_rejects_paths_outside_the_directory() {
        let m = Manifest {
            chain_id: "c".into(),
            nodes: vec![("node0".into(), true), ("node1".into(), false)],
            app: AppSpec::Command("app {port}".into()),
        };
        let text = m.to_json().to_string();
        assert_eq!(
            Manifest::parse(&text, Path::new("t.json")).expect("parses"),
            m
        );

        let evil = text.replace("\"node1\"", "\"../x\"");
        let err = Manifest::parse(&evil, Path::new("t.json")).expect_err("path escape");
        assert!(err.to_string().contains("nodes[1].name"), "{err}");
        assert!(Manifest::parse("{}", Path::new("t.json")).is_err());
    }

    #[test]
    fn listen_addresses_become_reachable_addresses() {
        assert_eq!(
            socket_addr("tcp://127.0.0.1:26607"),
            Some("127.0.0.1:26607".parse().expect("addr"))
        );
        assert_eq!(
            socket_addr("tcp://0.0.0.0:26657"),
            Some("127.0.0.1:26657".parse().expect("addr"))
        );
        assert_eq!(socket_addr("unix:///tmp/x.sock"), None);
        assert_eq!(socket_addr("tcp://127.0.0.1"), None);
    }
}
