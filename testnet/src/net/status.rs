//! `testnet status`: each node's height, last block hash, peer count and
//! reachability, and whether the reachable nodes agree on the block at the
//! lowest height they all have.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use super::{rpc, Network};

/// What one node's RPC said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Its RPC address.
    pub rpc: SocketAddr,
    /// Its chain, or why it could not be asked.
    pub state: Result<NodeChain, String>,
}

/// A reachable node's view of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeChain {
    /// Latest committed height.
    pub height: u64,
    /// That block's hash.
    pub hash: String,
    /// Connected peers, when the node serves `/net_info`.
    pub peers: Option<u64>,
}

/// Whether the reachable nodes agree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// No node answered.
    NoneReachable,
    /// Some reachable node has no block yet: nothing to compare.
    NoBlocksYet,
    /// Every node that returned the block at `height` returned `hash`.
    Agree {
        /// The lowest height every reachable node has.
        height: u64,
        /// The block hash they report.
        hash: String,
        /// How many nodes returned it.
        nodes: usize,
    },
    /// No reachable node returned the block at `height` (see
    /// [`Report::missing_block`]), so agreement is unknown.
    Unverified {
        /// The height that could not be compared.
        height: u64,
    },
    /// Nodes returned different blocks at `height`.
    Disagree {
        /// The height compared.
        height: u64,
        /// Each node's block hash there.
        hashes: Vec<(String, String)>,
    },
}

/// The report of `testnet status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// One entry per node, in order.
    pub nodes: Vec<NodeStatus>,
    /// Agreement of the reachable nodes.
    pub agreement: Agreement,
    /// Nodes that were reachable but did not return the compared block.
    pub missing_block: Vec<(String, String)>,
}

impl Report {
    /// False when nodes disagree, none is reachable, or none returned the
    /// block to compare.
    pub fn ok(&self) -> bool {
        matches!(
            self.agreement,
            Agreement::NoBlocksYet | Agreement::Agree { .. }
        )
    }

    /// The report as a table and a verdict line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<8} {:>8}  {:<64}  {:>5}  RPC",
            "NODE", "HEIGHT", "LAST BLOCK HASH", "PEERS"
        );
        for n in &self.nodes {
            match &n.state {
                Ok(c) => {
                    let peers = c.peers.map_or("-".to_string(), |p| p.to_string());
                    let hash = if c.hash.is_empty() { "-" } else { &c.hash };
                    let _ = writeln!(
                        s,
                        "{:<8} {:>8}  {:<64}  {:>5}  {} reachable",
                        n.name, c.height, hash, peers, n.rpc
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        s,
                        "{:<8} {:>8}  {:<64}  {:>5}  {} {e}",
                        n.name, "-", "-", "-", n.rpc
                    );
                }
            }
        }
        for (name, why) in &self.missing_block {
            let _ = writeln!(s, "{name}: cannot compare its block: {why}");
        }
        let _ = match &self.agreement {
            Agreement::NoneReachable => {
                writeln!(s, "no node is reachable; is the network running?")
            }
            Agreement::NoBlocksYet => {
                writeln!(s, "agreement: nothing to compare yet (a node has no block)")
            }
            Agreement::Unverified { height } => writeln!(
                s,
                "agreement unknown: no node returned its block at height {height}"
            ),
            Agreement::Agree {
                height,
                hash,
                nodes,
            } => writeln!(
                s,
                "agreement: {nodes} node(s) have block {hash} at height {height}"
            ),
            Agreement::Disagree { height, hashes } => {
                let list: Vec<String> = hashes.iter().map(|(n, h)| format!("{n} {h}")).collect();
                writeln!(s, "DISAGREEMENT at height {height}: {}", list.join(", "))
            }
        };
        s
    }
}

/// Asks every node of `net`, each call bounded by `timeout`.
pub fn check(net: &Network, timeout: Duration) -> Report {
    let nodes: Vec<NodeStatus> = parallel(net, |addr| node_status(addr, timeout))
        .into_iter()
        .zip(&net.nodes)
        .map(|(state, spec)| NodeStatus {
            name: spec.name.clone(),
            rpc: spec.rpc,
            state,
        })
        .collect();
    let Some(height) = lowest_common_height(&nodes) else {
        return Report {
            nodes,
            agreement: Agreement::NoneReachable,
            missing_block: Vec::new(),
        };
    };
    if height == 0 {
        return Report {
            nodes,
            agreement: Agreement::NoBlocksYet,
            missing_block: Vec::new(),
        };
    }
    let fetched = parallel(net, |addr| {
        rpc::get(addr, &format!("/block?height={height}"), timeout)
            .map_err(|e| e.to_string())
            .and_then(|b| rpc::block_hash(&b).ok_or_else(|| "no block_id.hash".to_string()))
    });
    let mut hashes = Vec::new();
    let mut missing_block = Vec::new();
    for ((n, fetched), spec) in nodes.iter().zip(fetched).zip(&net.nodes) {
        if n.state.is_err() {
            continue;
        }
        match fetched {
            Ok(h) => hashes.push((spec.name.clone(), h)),
            Err(e) => missing_block.push((spec.name.clone(), e)),
        }
    }
    Report {
        agreement: agreement(height, hashes),
        nodes,
        missing_block,
    }
}

/// The lowest latest height among reachable nodes; `None` if none is.
pub fn lowest_common_height(nodes: &[NodeStatus]) -> Option<u64> {
    nodes
        .iter()
        .filter_map(|n| n.state.as_ref().ok())
        .map(|c| c.height)
        .min()
}

/// Agreement of the `(node, hash)` pairs returned for `height`.
pub fn agreement(height: u64, hashes: Vec<(String, String)>) -> Agreement {
    match hashes.first() {
        None => Agreement::Unverified { height },
        Some((_, first)) if hashes.iter().all(|(_, h)| h == first) => Agreement::Agree {
            height,
            hash: first.clone(),
            nodes: hashes.len(),
        },
        Some(_) => Agreement::Disagree { height, hashes },
    }
}

fn node_status(addr: SocketAddr, timeout: Duration) -> Result<NodeChain, String> {
    let status = rpc::get(addr, "/status", timeout).map_err(|e| e.to_string())?;
    let info = rpc::sync_info(&status).ok_or("no sync_info in /status")?;
    let peers = rpc::get(addr, "/net_info", timeout)
        .ok()
        .and_then(|v| rpc::peer_count(&v));
    Ok(NodeChain {
        height: info.height,
        hash: info.hash,
        peers,
    })
}

/// `f` of every node's RPC address, concurrently, in node order.
fn parallel<T: Send>(net: &Network, f: impl Fn(SocketAddr) -> T + Sync) -> Vec<T> {
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = net
            .nodes
            .iter()
            .map(|n| scope.spawn(move || f(n.rpc)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(v) => v,
                // f does not panic on any answer a node can give; if it
                // did, the panic belongs to this thread too.
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, state: Result<(u64, &str), &str>) -> NodeStatus {
        NodeStatus {
            name: name.into(),
            rpc: "127.0.0.1:1".parse().expect("addr"),
            state: state
                .map(|(height, hash)| NodeChain {
                    height,
                    hash: hash.into(),
                    peers: None,
                })
                .map_err(String::from),
        }
    }

    #[test]
    fn compares_at_the_lowest_height_of_reachable_nodes() {
        let nodes = vec![
            node("node0", Ok((7, "A"))),
            node("node1", Ok((5, "B"))),
            node("node2", Err("connection refused")),
        ];
        assert_eq!(lowest_common_height(&nodes), Some(5));
        assert_eq!(lowest_common_height(&nodes[2..]), None);
    }

    #[test]
    fn same_hashes_agree_and_any_difference_disagrees() {
        let same = vec![
            ("node0".to_string(), "H".to_string()),
            ("node1".into(), "H".into()),
        ];
        assert_eq!(
            agreement(4, same),
            Agreement::Agree {
                height: 4,
                hash: "H".into(),
                nodes: 2
            }
        );
        let differ = vec![
            ("node0".to_string(), "H".to_string()),
            ("node1".into(), "H".into()),
            ("node2".into(), "X".into()),
        ];
        assert_eq!(agreement(4, vec![]), Agreement::Unverified { height: 4 });
        let a = agreement(4, differ);
        assert!(matches!(a, Agreement::Disagree { height: 4, .. }), "{a:?}");
        let report = Report {
            nodes: vec![node("node0", Ok((4, "H")))],
            agreement: a,
            missing_block: vec![],
        };
        assert!(!report.ok());
        assert!(report
            .render()
            .contains("DISAGREEMENT at height 4: node0 H, node1 H, node2 X"));
    }

    #[test]
    fn renders_unreachable_nodes_and_missing_peer_counts() {
        let report = Report {
            nodes: vec![
                node("node0", Ok((4, "H"))),
                node("node1", Err("unreachable: connection refused")),
            ],
            agreement: Agreement::Agree {
                height: 4,
                hash: "H".into(),
                nodes: 1,
            },
            missing_block: vec![],
        };
        assert!(report.ok());
        let text = report.render();
        let line0 = text.lines().nth(1).expect("node0 line");
        assert!(
            line0.starts_with("node0") && line0.contains(" 4 ") && line0.contains(" - "),
            "{line0}"
        );
        assert!(
            text.contains("127.0.0.1:1 unreachable: connection refused"),
            "{text}"
        );
        assert!(
            text.contains("agreement: 1 node(s) have block H at height 4"),
            "{text}"
        );
        let none = Report {
            nodes: vec![],
            agreement: Agreement::NoneReachable,
            missing_block: vec![],
        };
        assert!(!none.ok());
    }
}
