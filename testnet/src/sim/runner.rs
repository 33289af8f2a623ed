//! One simulated run: set-up from the seed, the event loop, the final checks.

use engine::consensus::{Config, Input, TimeoutStep};
use std::collections::BTreeMap;

use engine::consensus::Step;
use engine::types::{Height, PrivateKey, Round, Validator, ValidatorSet};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::checks::{Property, Recorder};
use super::config::{SimConfig, Strategy};
use super::gossip;
use super::node::Node;
use super::report::RunReport;
use super::world::{Ctx, Event, Net, Partition, World};

/// The chain every simulated network runs.
pub const CHAIN_ID: &str = "sim-chain";

/// Upper bound on processed events per run; exceeding it is reported as a
/// termination violation (a livelock).
pub const MAX_EVENTS: u64 = 2_000_000;

/// The fixed key of validator `i` (the same in every run).
pub fn validator_key(i: usize) -> PrivateKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    seed[31] = 0x5a;
    PrivateKey::from_seed(seed)
}

/// Picks `count` Byzantine validators whose total power is below 1/3:
/// a random order, skipping any that would reach 1/3; falls back to the
/// smallest powers. None if impossible.
fn pick_byzantine(rng: &mut ChaCha8Rng, powers: &[i64], count: usize) -> Option<Vec<usize>> {
    let total: i64 = powers.iter().sum();
    let mut order: Vec<usize> = (0..powers.len()).collect();
    order.shuffle(rng);
    let mut chosen = Vec::new();
    let mut sum = 0;
    for i in order {
        if chosen.len() == count {
            break;
        }
        if 3 * (sum + powers[i]) < total {
            sum += powers[i];
            chosen.push(i);
        }
    }
    if chosen.len() < count {
        let mut by_power: Vec<usize> = (0..powers.len()).collect();
        by_power.sort_by_key(|i| (powers[*i], *i));
        chosen = by_power.into_iter().take(count).collect();
        let sum: i64 = chosen.iter().map(|i| powers[*i]).sum();
        if 3 * sum >= total {
            return None;
        }
    }
    chosen.sort_unstable();
    Some(chosen)
}

struct Sim {
    cfg: SimConfig,
    net: Net,
    world: World,
    rec: Recorder,
    nodes: Vec<Node>,
    deadline: u64,
    events: u64,
    quiescent: bool,
}

/// Runs one seed of `cfg`. Errors only on an impossible configuration
/// (e.g. Byzantine power of 1/3 or more).
pub fn run(cfg: &SimConfig, seed: u64) -> Result<RunReport, String> {
    let n = cfg.validators;
    if n == 0 {
        return Err("no validators".into());
    }
    if let Some(w) = cfg.wait_for_txs {
        if w.txs_within_ms.is_none() && cfg.timeouts.create_empty_blocks_interval.is_zero() {
            return Err("round 0 waits for transactions that never come, with no interval".into());
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let powers = cfg.powers.of(n);
    let byz = pick_byzantine(&mut rng, &powers, cfg.byzantine).ok_or_else(|| {
        format!(
            "{} Byzantine validators with {} powers reach 1/3 of the power (at most {})",
            cfg.byzantine,
            cfg.powers,
            cfg.powers.max_byzantine(n)
        )
    })?;
    let keys: Vec<PrivateKey> = (0..n).map(validator_key).collect();
    let addresses: Vec<_> = keys.iter().map(|k| k.public_key().address()).collect();
    let validators: Vec<Validator> = keys
        .iter()
        .zip(&powers)
        .map(|(k, p)| Validator::new(k.public_key(), *p))
        .collect();
    let genesis = ValidatorSet::new(validators).map_err(|e| format!("validator set: {e}"))?;
    let mut byzantine = vec![false; n];
    for b in &byz {
        byzantine[*b] = true;
    }
    let mut honest: Vec<usize> = (0..n).filter(|i| !byzantine[*i]).collect();
    honest.shuffle(&mut rng);
    let mut side_a = vec![false; n];
    let mut decide_side = vec![false; n];
    if honest.len() >= 2 {
        let k = rng.gen_range(1..honest.len());
        for i in &honest[..k] {
            side_a[*i] = true;
        }
        let d = if k >= 2 { rng.gen_range(1..k) } else { k };
        for i in &honest[..d] {
            decide_side[*i] = true;
        }
    }
    let mut world = World::new(
        CHAIN_ID.to_string(),
        addresses.clone(),
        genesis,
        byzantine.clone(),
        side_a,
        decide_side,
        cfg.timeouts,
    );
    world.wait_for_txs = cfg.wait_for_txs;
    world.full_headers = cfg.gossip;
    let strategies: Vec<Option<Strategy>> = {
        let mut next = 0;
        (0..n)
            .map(|i| {
                if !byzantine[i] {
                    return None;
                }
                let s = if cfg.strategies.is_empty() {
                    *Strategy::ALL.choose(&mut rng).unwrap_or(&Strategy::Silent)
                } else {
                    cfg.strategies[next % cfg.strategies.len()]
                };
                next += 1;
                Some(s)
            })
            .collect()
    };
    let mut nodes: Vec<Node> = keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| {
            #[allow(unused_mut)]
            let mut config = Config::new(CHAIN_ID, Some(addresses[i]));
            config.timeouts = cfg.timeouts;
            config.future_rounds_per_validator = cfg.future_rounds_per_validator;
            #[cfg(feature = "mutants")]
            if !byzantine[i] {
                config.mutant = cfg.mutant;
            }
            Node::new(i, n, key, config, &world, strategies[i])
        })
        .collect();
    let mut net = Net::new(rng, cfg.network.clone());
    if cfg.gossip {
        net.connect_all(n);
        for node in nodes.iter_mut() {
            node.enable_gossip(net.rng.gen(), &world);
        }
    }
    let gst = cfg.network.gst_ms;
    if cfg.network.partition && gst > 0 && n >= 2 {
        let start = net.rng.gen_range(0..gst);
        let end = net.rng.gen_range(start + 1..=gst);
        let mut side: Vec<bool> = (0..n).map(|_| net.rng.gen_bool(0.5)).collect();
        side[0] = true;
        side[n - 1] = false;
        net.partition = Some(Partition { start, end, side });
    }
    let mut crash_candidates = honest.clone();
    crash_candidates.sort_unstable();
    crash_candidates.shuffle(&mut net.rng);
    let mut crashes = Vec::new();
    for node in crash_candidates.into_iter().take(cfg.network.crashes) {
        if gst < 2 {
            break;
        }
        let at = net.rng.gen_range(1..gst);
        let back = net.rng.gen_range(at + 1..=gst);
        crashes.push((node, at, back));
    }
    let mut rec = Recorder::new(byzantine.iter().map(|b| !b).collect(), cfg.trace);
    {
        let strat: Vec<String> = strategies
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| format!("n{i}={s}")))
            .collect();
        let sides: Vec<String> = (0..n)
            .filter(|i| world.side_a[*i])
            .map(|i| format!("n{i}"))
            .collect();
        rec.trace_line(
            0,
            format!(
                "seed {seed}: {} | byzantine [{}] | coalition side A [{}] | partition {:?} | crashes {:?} (node, down, up)",
                cfg.describe(),
                strat.join(" "),
                sides.join(" "),
                net.partition,
                crashes
            ),
        );
        let powers_line: Vec<String> = (0..n)
            .map(|i| format!("n{i}={:?}/{}", addresses[i], powers[i]))
            .collect();
        rec.trace_line(0, format!("validators {}", powers_line.join(" ")));
        let _ = &mut world;
    }
    for i in 0..n {
        net.schedule(
            0,
            Event::StartHeight {
                node: i,
                epoch: 0,
                height: 1,
            },
        );
    }
    net.schedule(cfg.network.gossip_interval_ms.max(1), Event::Gossip);
    for (node, at, back) in crashes {
        net.schedule(at, Event::Crash { node });
        net.schedule(back, Event::Restart { node });
    }
    net.schedule(gst, Event::Gst);
    if cfg.gossip {
        net.schedule(gossip::TICK_MS, Event::GossipTick);
        net.schedule(gossip::MAJ23_MS, Event::Maj23);
    }
    let mut sim = Sim {
        cfg: cfg.clone(),
        net,
        world,
        rec,
        nodes,
        deadline: u64::MAX,
        events: 0,
        quiescent: false,
    };
    if cfg.gossip {
        // Every connection is up from the start: each side learns of the
        // other (the first NewRoundStep goes out as the height starts).
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    let mut ctx = Ctx {
                        net: &mut sim.net,
                        world: &mut sim.world,
                        rec: &mut sim.rec,
                    };
                    sim.nodes[a].gossip_connect(&mut ctx, b);
                }
            }
        }
    }
    sim.run_loop();
    Ok(sim.finish(seed))
}

impl Sim {
    fn done(&self) -> bool {
        let h = self.cfg.heights;
        match self.rec.decisions.get(&h) {
            Some(d) => self
                .nodes
                .iter()
                .filter(|n| n.honest())
                .all(|n| d.contains_key(&n.idx)),
            None => false,
        }
    }

    fn run_loop(&mut self) {
        while let Some((now, event)) = self.net.pop() {
            if now > self.deadline {
                let detail = self.stuck_report(now);
                self.rec.violation(now, Property::Termination, detail);
                return;
            }
            self.events += 1;
            if self.events > MAX_EVENTS {
                let detail = format!(
                    "event budget of {MAX_EVENTS} exhausted; {}",
                    self.stuck_report(now)
                );
                self.rec.violation(now, Property::Termination, detail);
                return;
            }
            self.dispatch(event);
            self.apply_breaks();
            if self.quiescent && !self.done() {
                if !self
                    .rec
                    .violations
                    .iter()
                    .any(|v| v.property == Property::Termination)
                {
                    let detail = format!("network quiescent; {}", self.stuck_report(now));
                    self.rec.violation(now, Property::Termination, detail);
                }
                return;
            }
            if self.rec.has_safety_violation()
                || self
                    .rec
                    .violations
                    .iter()
                    .any(|v| v.property == Property::Panic)
                || self.done()
            {
                return;
            }
        }
        let now = self.net.now;
        let detail = format!("no more events; {}", self.stuck_report(now));
        self.rec.violation(now, Property::Termination, detail);
    }

    /// The round bound of termination, checked as it happens: an honest node
    /// still undecided at a target height, in a round above the bound,
    /// ends the run with a violation (instead of waiting for the deadline).
    fn check_rounds_eagerly(&mut self, peers: &[Option<(Height, Round, Step)>]) {
        let mut start_round: BTreeMap<Height, Round> = BTreeMap::new();
        for (h, r) in self.rec.gst_positions.iter().flatten() {
            let e = start_round.entry(*h).or_default();
            *e = (*e).max(*r);
        }
        for n in self.nodes.iter().filter(|n| n.honest()) {
            let Some((h, r, step)) = peers[n.idx] else {
                continue;
            };
            let bound = start_round.get(&h).copied().unwrap_or(0) + self.cfg.max_rounds_after_gst;
            if h <= self.cfg.heights && step != Step::Commit && r > bound {
                let now = self.net.now;
                let detail = format!(
                    "n{} is in round {r} of height {h} after GST, above the bound {bound}; {}",
                    n.idx,
                    self.stuck_report(now)
                );
                self.rec.violation(now, Property::Termination, detail);
                self.quiescent = true;
                return;
            }
        }
    }

    fn stuck_report(&self, now: u64) -> String {
        let positions: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.honest())
            .map(|n| match n.round_state() {
                Some(rs) => {
                    let conflicts = self.rec.conflicts_at(n.idx, rs.height);
                    let note = if conflicts > 0 && rs.height <= self.cfg.heights {
                        format!(" ({conflicts} conflicting votes seen)")
                    } else {
                        String::new()
                    };
                    format!(
                        "n{}@h{}/r{}/{:?}{note}",
                        n.idx, rs.height, rs.round, rs.step
                    )
                }
                None => format!("n{}@?", n.idx),
            })
            .collect();
        format!(
            "target height {} not reached by all honest validators at {now}ms: {}",
            self.cfg.heights,
            positions.join(" ")
        )
    }

    /// Gossip mode: both ends of each link that broke forget each other.
    fn apply_breaks(&mut self) {
        for (a, b) in std::mem::take(&mut self.net.breaks) {
            self.nodes[a].gossip_disconnect(b);
            self.nodes[b].gossip_disconnect(a);
        }
    }

    /// Gossip mode: brings the link a - b up (after its break `conn`, or
    /// any break) if both ends are up; each end then adds the other.
    fn reconnect(&mut self, a: usize, b: usize, conn: Option<u64>) {
        if !(self.nodes[a].up && self.nodes[b].up && self.net.reconnect(a, b, conn)) {
            return;
        }
        let now = self.net.now;
        self.rec
            .trace_line(now, format!("n{a} - n{b} connection (re)established"));
        let mut ctx = Ctx {
            net: &mut self.net,
            world: &mut self.world,
            rec: &mut self.rec,
        };
        self.nodes[a].gossip_connect(&mut ctx, b);
        self.nodes[b].gossip_connect(&mut ctx, a);
    }

    fn dispatch(&mut self, event: Event) {
        let mut ctx = Ctx {
            net: &mut self.net,
            world: &mut self.world,
            rec: &mut self.rec,
        };
        match event {
            Event::Deliver { from, to, msg } => self.nodes[to].deliver(&mut ctx, from, *msg),
            Event::Arrive {
                from,
                to,
                conn,
                msg,
            } => {
                if ctx.net.is_live(from, to, conn) {
                    self.nodes[to].deliver(&mut ctx, from, *msg);
                }
            }
            Event::Reconnect { a, b, conn } => self.reconnect(a, b, Some(conn)),
            Event::GossipTick => {
                for n in self.nodes.iter_mut() {
                    n.gossip_plan(&mut ctx);
                }
                let at = ctx.net.now + gossip::TICK_MS;
                ctx.net.schedule(at, Event::GossipTick);
            }
            Event::Maj23 => {
                for n in self.nodes.iter_mut() {
                    n.gossip_maj23(&mut ctx);
                }
                let at = ctx.net.now + gossip::MAJ23_MS;
                ctx.net.schedule(at, Event::Maj23);
            }
            Event::Timeout {
                node,
                epoch,
                height,
                round,
                step,
            } => {
                let n = &mut self.nodes[node];
                if n.up && n.epoch == epoch {
                    n.input(
                        &mut ctx,
                        Input::Timeout {
                            height,
                            round,
                            step,
                        },
                    );
                }
            }
            Event::StartHeight {
                node,
                epoch,
                height,
            } => {
                // Heights beyond the target are not started: it bounds the
                // work of a run whose target some node cannot reach.
                let n = &mut self.nodes[node];
                if n.up && n.epoch == epoch && height <= self.cfg.heights + 1 {
                    n.start_height(&mut ctx, height);
                }
            }
            Event::TxsAvailable {
                node,
                epoch,
                height,
            } => {
                let n = &mut self.nodes[node];
                if n.up && n.epoch == epoch {
                    n.input(&mut ctx, Input::TxsAvailable { height });
                }
            }
            Event::Gossip => {
                let before = ctx.net.transmissions;
                let peers: Vec<_> = self
                    .nodes
                    .iter()
                    .map(|p| {
                        if p.up {
                            p.round_state().map(|rs| (rs.height, rs.round, rs.step))
                        } else {
                            None
                        }
                    })
                    .collect();
                // Gossip mode: the reactors do this job.
                if !self.cfg.gossip {
                    for n in self.nodes.iter_mut() {
                        if n.up && n.honest() {
                            n.gossip(&mut ctx, &peers);
                        }
                    }
                }
                if ctx.net.after_gst() {
                    self.check_rounds_eagerly(&peers);
                }
                let ctx = Ctx {
                    net: &mut self.net,
                    world: &mut self.world,
                    rec: &mut self.rec,
                };
                // After GST (and after the last re-send of what was sent
                // before GST), nothing pending and nothing to gossip: no
                // event will ever change anything again.
                let interval = self.cfg.network.gossip_interval_ms.max(1);
                let settled = ctx.net.now >= self.cfg.network.gst_ms + 5 * interval;
                if settled && ctx.net.is_idle() && ctx.net.transmissions == before {
                    self.quiescent = true;
                }
                let at = ctx.net.now + self.cfg.network.gossip_interval_ms.max(1);
                ctx.net.schedule(at, Event::Gossip);
            }
            Event::Crash { node } => {
                self.nodes[node].crash(&mut ctx);
                if self.cfg.gossip {
                    for j in (0..self.nodes.len()).filter(|j| *j != node) {
                        ctx.net.break_link(node, j, None);
                    }
                }
            }
            Event::Restart { node } => {
                self.nodes[node].restart(&mut ctx);
                if self.cfg.gossip {
                    for j in (0..self.nodes.len()).filter(|j| *j != node) {
                        self.reconnect(node, j, None);
                    }
                }
            }
            Event::Gst => {
                let now = ctx.net.now;
                ctx.rec
                    .trace_line(now, "GST: from now on no loss, delays <= delta".into());
                let mut max_round: Round = 0;
                for n in &self.nodes {
                    if n.honest() {
                        let pos = n.round_state().map(|rs| (rs.height, rs.round));
                        if let Some((_, r)) = pos {
                            max_round = max_round.max(r);
                        }
                        ctx.rec.gst_positions[n.idx] = pos;
                    }
                }
                self.deadline = now.saturating_add(self.time_bound(max_round));
            }
        }
    }

    /// Simulated time within which, after GST, all target heights must be
    /// decided: per remaining height, the rounds allowed with their growing
    /// timeouts plus message delays, and the commit timeout.
    fn time_bound(&self, start_round: Round) -> u64 {
        let t = &self.cfg.timeouts;
        let delta = self.cfg.network.delta_ms.max(1);
        let gossip = self.cfg.network.gossip_interval_ms.max(1);
        let rounds = start_round + self.cfg.max_rounds_after_gst + 1;
        // Round 0 may first wait for transactions or the interval.
        let wait = match self.cfg.wait_for_txs {
            None => 0,
            Some(w) => {
                let interval = t.create_empty_blocks_interval.as_millis() as u64;
                w.txs_within_ms.unwrap_or(0).max(interval)
            }
        };
        let per_height: u64 = (0..=rounds)
            .map(|r| {
                (t.duration(TimeoutStep::Propose, r)
                    + t.duration(TimeoutStep::Prevote, r)
                    + t.duration(TimeoutStep::Precommit, r))
                .as_millis() as u64
                    + 6 * delta
                    + 2 * gossip
            })
            .sum::<u64>()
            + t.commit.as_millis() as u64
            + wait;
        per_height * self.cfg.heights.max(1)
    }

    fn finish(mut self, seed: u64) -> RunReport {
        let now = self.net.now;
        let safety = self.rec.has_safety_violation();
        if !safety {
            self.rec.check_evidence(now);
            if self.done() {
                self.rec.check_round_bound(
                    now,
                    self.cfg.network.gst_ms,
                    self.cfg.max_rounds_after_gst,
                );
            }
        }
        let mut rounds = Vec::new();
        for h in 1..=self.cfg.heights {
            match self.rec.decisions.get(&h) {
                Some(d) if !d.is_empty() => {
                    rounds.push(d.values().map(|x| x.round).max().unwrap_or_default())
                }
                _ => break,
            }
        }
        let heights_decided = (1..=self.cfg.heights)
            .take_while(|h| {
                self.rec.decisions.get(h).is_some_and(|d| {
                    self.nodes
                        .iter()
                        .filter(|n| n.honest())
                        .all(|n| d.contains_key(&n.idx))
                })
            })
            .count() as u64;
        RunReport {
            seed,
            heights_decided,
            rounds,
            evidence: self.rec.evidence_count,
            violations: self.rec.violations.clone(),
            events: self.events,
            sim_time_ms: now,
            signatures_verified: self.world.verifier.computed(),
            trace: self.rec.take_trace(),
        }
    }
}
