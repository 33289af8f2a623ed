//! `testnet bench`: a network of real engine processes on loopback,
//! measured. Heights per second come from the nodes' RPC over a timed
//! window; consensus gossip per height (messages and bytes each node sent
//! and received) from the line each node logs when a height ends.
//!
//! The numbers describe this machine and build; the command that produced
//! them is printed with them, so a report can be reproduced.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use engine::config::{Config, GoDuration};
use engine::home::Home;
use engine::types::Time;

use super::init::{init, InitOptions};
use super::process::Proc;
use super::{rpc, AppSpec, Error};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The network directory (replaced if it holds a testnet).
    pub dir: PathBuf,
    /// Number of validators.
    pub validators: usize,
    /// node0's first port.
    pub base_port: u16,
    /// `timeout_commit` of every node.
    pub timeout_commit: Duration,
    /// Length of the measured window, after warm-up.
    pub window: Duration,
    /// The engine binary.
    pub engine: PathBuf,
}

/// Gossip one node logged for one height.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeightTraffic {
    /// The height.
    pub height: u64,
    /// Consensus messages sent.
    pub sent: u64,
    /// Their bytes.
    pub sent_bytes: u64,
    /// Consensus messages received.
    pub received: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Sent by kind: votes, HasVote, round steps, data (proposals and
    /// parts), maj23 (absent from older logs: zeros).
    pub sent_kinds: [u64; 5],
}

/// The measurement.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Validators in the network.
    pub validators: usize,
    /// Heights committed by every node within the window.
    pub heights: u64,
    /// The window's length.
    pub elapsed: Duration,
    /// Mean per node and height over the window's heights.
    pub per_node_height: Traffic,
}

/// Means of [`HeightTraffic`] fields.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Messages sent.
    pub sent: f64,
    /// Bytes sent.
    pub sent_bytes: f64,
    /// Messages received.
    pub received: f64,
    /// Bytes received.
    pub received_bytes: f64,
    /// Sent by kind, as [`HeightTraffic::sent_kinds`].
    pub sent_kinds: [f64; 5],
}

impl BenchReport {
    /// Heights per second.
    pub fn heights_per_second(&self) -> f64 {
        self.heights as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Votes one node sends per height if every node sent every vote to
    /// every peer once (prevote and precommit of n validators to n - 1
    /// peers): the n² baseline gossip is measured against.
    pub fn all_to_all_votes(&self) -> u64 {
        let n = self.validators as u64;
        2 * n * n.saturating_sub(1)
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.per_node_height;
        writeln!(
            f,
            "validators {}: {} heights in {:.1}s = {:.2} heights/s",
            self.validators,
            self.heights,
            self.elapsed.as_secs_f64(),
            self.heights_per_second()
        )?;
        writeln!(
            f,
            "consensus gossip per node per height: sent {:.1} msgs ({:.0} B), received {:.1} msgs ({:.0} B); all-to-all votes alone: {} msgs",
            t.sent,
            t.sent_bytes,
            t.received,
            t.received_bytes,
            self.all_to_all_votes()
        )?;
        let k = &t.sent_kinds;
        write!(
            f,
            "sent by kind: votes {:.1}, HasVote {:.1}, round steps {:.1}, proposals and parts {:.1}, maj23 {:.1}",
            k[0], k[1], k[2], k[3], k[4]
        )
    }
}

/// Parses a node log's "consensus gossip for the height" lines.
pub fn parse_traffic(log: &str) -> Vec<HeightTraffic> {
    log.lines()
        .filter(|l| l.contains("consensus gossip for the height"))
        .filter_map(|l| {
            let field = |key: &str| -> Option<u64> {
                let at = l.find(&format!(" {key}="))? + key.len() + 2;
                l[at..].split(' ').next()?.parse().ok()
            };
            let kinds = [
                "sent_votes",
                "sent_has_vote",
                "sent_steps",
                "sent_data",
                "sent_maj23",
            ];
            Some(HeightTraffic {
                height: field("height")?,
                sent: field("sent")?,
                sent_bytes: field("sent_bytes")?,
                received: field("received")?,
                received_bytes: field("received_bytes")?,
                sent_kinds: kinds.map(|k| field(k).unwrap_or(0)),
            })
        })
        .collect()
}

/// Mean traffic per node and height over heights in `(from, to]`.
pub fn mean_traffic(per_node: &[Vec<HeightTraffic>], from: u64, to: u64) -> Traffic {
    let mut sum = Traffic::default();
    let mut count = 0u64;
    for t in per_node
        .iter()
        .flatten()
        .filter(|t| t.height > from && t.height <= to)
    {
        sum.sent += t.sent as f64;
        sum.sent_bytes += t.sent_bytes as f64;
        sum.received += t.received as f64;
        sum.received_bytes += t.received_bytes as f64;
        for (s, k) in sum.sent_kinds.iter_mut().zip(t.sent_kinds) {
            *s += k as f64;
        }
        count += 1;
    }
    let n = count.max(1) as f64;
    Traffic {
        sent: sum.sent / n,
        sent_bytes: sum.sent_bytes / n,
        received: sum.received / n,
        received_bytes: sum.received_bytes / n,
        sent_kinds: sum.sent_kinds.map(|k| k / n),
    }
}

fn min_height(rpcs: &[SocketAddr]) -> Option<u64> {
    rpcs.iter()
        .map(|a| {
            let status = rpc::get(*a, "/status", Duration::from_secs(2)).ok()?;
            rpc::sync_info(&status).map(|s| s.height)
        })
        .collect::<Option<Vec<u64>>>()?
        .into_iter()
        .min()
}

/// Generates the network, runs it, measures, and stops it.
pub fn run(opts: &BenchOptions, now: Time) -> Result<BenchReport, Error> {
    let net = init(
        &InitOptions {
            dir: opts.dir.clone(),
            validators: opts.validators,
            full_nodes: 0,
            app: AppSpec::Kvstore,
            base_port: opts.base_port,
            chain_id: Some("bench".into()),
            force: true,
        },
        now,
    )?;
    for node in &net.nodes {
        let path = Home::config_path(&node.home);
        let mut config = Config::load(&path).map_err(engine::home::HomeError::from)?;
        config.consensus.timeout_commit =
            GoDuration::from_millis(opts.timeout_commit.as_millis() as u64);
        config.save(&path).map_err(engine::home::HomeError::from)?;
    }
    let mut procs = Vec::with_capacity(net.nodes.len());
    for node in &net.nodes {
        let mut cmd = Command::new(&opts.engine);
        cmd.arg("start").arg("--home").arg(&node.home);
        let log = node.home.join("engine.log");
        procs.push(Proc::spawn(
            format!("{} engine", node.name),
            cmd,
            &log,
            "testnet bench",
        )?);
    }
    let rpcs: Vec<SocketAddr> = net.nodes.iter().map(|n| n.rpc).collect();
    let measured = measure(&rpcs, opts.window);
    for p in &mut procs {
        p.signal("TERM");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while procs.iter_mut().any(|p| {
        p.poll();
        p.alive()
    }) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in &mut procs {
        p.signal("KILL");
    }
    let (from, to, elapsed) = measured?;
    let logs: Vec<Vec<HeightTraffic>> = net
        .nodes
        .iter()
        .map(|n| parse_traffic(&read(&n.home.join("engine.log"))))
        .collect();
    Ok(BenchReport {
        validators: opts.validators,
        heights: to - from,
        elapsed,
        per_node_height: mean_traffic(&logs, from, to),
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits for every node to pass height 2 (warm-up), then measures the
/// lowest height over `window`.
fn measure(rpcs: &[SocketAddr], window: Duration) -> Result<(u64, u64, Duration), Error> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let from = loop {
        match min_height(rpcs) {
            Some(h) if h >= 2 => break h,
            _ if Instant::now() > deadline => return Err(Error::Invalid(
                "the network did not reach height 2 within 2 minutes; see the nodes' engine.log"
                    .into(),
            )),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let start = Instant::now();
    std::thread::sleep(window);
    let to = min_height(rpcs)
        .ok_or_else(|| Error::Invalid("a node stopped answering during the measurement".into()))?;
    Ok((from, to, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_lines_are_parsed_and_averaged_over_the_window() {
        let log = "\
2026-11-25T01:00:00Z  INFO engine::node::consensus_reactor: consensus gossip for the height height=4 peers=3 sent=20 sent_bytes=2000 received=30 received_bytes=3000
2026-11-25T01:00:00Z  INFO engine::node::driver: committed block height=5
2026-11-25T01:00:01Z  INFO engine::node::consensus_reactor: consensus gossip for the height height=5 peers=3 sent=40 sent_bytes=4000 received=50 received_bytes=5000 sent_votes=10 sent_has_vote=20 sent_steps=8 sent_data=2 sent_maj23=0
";
        let parsed = parse_traffic(log);
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parsed[1],
            HeightTraffic {
                height: 5,
                sent: 40,
                sent_bytes: 4000,
                received: 50,
                received_bytes: 5000,
                sent_kinds: [10, 20, 8, 2, 0],
            }
        );
        let mean = mean_traffic(&[parsed.clone(), parsed], 3, 5);
        assert_eq!(mean.sent, 30.0);
        assert_eq!(mean.received_bytes, 4000.0);
        let only_five = mean_traffic(&[parse_traffic(log)], 4, 5);
        assert_eq!(
            only_five.sent, 40.0,
            "heights outside the window are left out"
        );
    }
}
