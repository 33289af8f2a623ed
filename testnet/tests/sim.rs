//! Runs the simulator's CI matrix (thousands of seeds across 4, 7, 10 and 31
//! validators, equal and skewed powers, every Byzantine strategy, network
//! chaos, partitions and crash-restarts) and requires zero violations.

use testnet::sim::scenarios::{attack_scenarios, ci_matrix, gossip_scenarios, Scenario};
use testnet::sim::{run, run_seeds, NetworkConfig, SimConfig, Strategy, WaitForTxs};

fn run_all(scenarios: &[Scenario]) -> u64 {
    let mut seeds = 0;
    let mut failures = Vec::new();
    for s in scenarios {
        let summary = run_seeds(&s.config, 0..s.seeds, false).expect("valid configuration");
        println!("{}: {summary}", s.name);
        seeds += summary.seeds;
        for (count, seed, v) in summary.by_property.values() {
            failures.push(format!(
                "{} ({}): seed {seed} violates {v} [{count} seeds]",
                s.name, summary.config
            ));
        }
    }
    assert!(failures.is_empty(), "violations:\n{}", failures.join("\n"));
    seeds
}

fn matrix_with(validators: usize) -> Vec<Scenario> {
    ci_matrix()
        .into_iter()
        .filter(|s| s.config.validators == validators)
        .collect()
}

#[test]
fn matrix_4_validators() {
    let seeds = run_all(&matrix_with(4));
    assert!(seeds >= 800, "{seeds}");
}

#[test]
fn matrix_7_validators() {
    run_all(&matrix_with(7));
}

#[test]
fn matrix_10_validators() {
    run_all(&matrix_with(10));
}

#[test]
fn matrix_31_validators() {
    run_all(&matrix_with(31));
}

#[test]
fn matrix_covers_2000_seeds() {
    let total: u64 = ci_matrix().iter().map(|s| s.seeds).sum();
    assert!(total >= 2000, "{total}");
}

/// The configurations that expose the mutants produce no violation with the
/// correct core.
#[test]
fn attack_scenarios_are_clean_with_correct_core() {
    for m in [
        "NoLocking",
        "QuorumTwoF",
        "NoSignatureCheck",
        "DecideOnPrevotes",
    ] {
        run_all(&attack_scenarios(m));
    }
}

#[test]
fn a_seed_reproduces_its_run_exactly() {
    let mut cfg = SimConfig::new(4, 1)
        .strategies(&[Strategy::Equivocator])
        .network(testnet::sim::scenarios::chaos(1));
    cfg.trace = true;
    for seed in [3, 17] {
        let a = run(&cfg, seed).expect("valid");
        let b = run(&cfg, seed).expect("valid");
        assert!(!a.trace.is_empty());
        assert_eq!(a.trace, b.trace);
        assert_eq!(a.events, b.events);
    }
    let a = run(&cfg, 1).expect("valid");
    let b = run(&cfg, 2).expect("valid");
    assert_ne!(a.trace, b.trace);
}

#[test]
fn byzantine_power_must_stay_below_a_third() {
    assert!(run(&SimConfig::new(4, 2), 0).is_err());
    assert!(run(&SimConfig::new(31, 11), 0).is_err());
}

#[test]
fn synchronous_honest_network_decides_in_round_zero() {
    let cfg = SimConfig::new(7, 0).network(NetworkConfig::synchronous());
    let s = run_seeds(&cfg, 0..10, false).expect("valid");
    assert_eq!(s.violating_seeds, 0, "{s}");
    assert_eq!(s.heights_decided, 10 * cfg.heights);
    assert_eq!(s.rounds_max, 0, "{s}");
}

#[test]
fn equivocations_produce_evidence() {
    let cfg = SimConfig::new(4, 1)
        .strategies(&[Strategy::DoubleVote])
        .network(NetworkConfig::synchronous());
    let s = run_seeds(&cfg, 0..10, false).expect("valid");
    assert_eq!(s.violating_seeds, 0, "{s}");
    assert!(s.evidence > 0, "{s}");
}

/// create_empty_blocks = false with no transactions at all: every height
/// after the first waits the whole empty-blocks interval, then decides.
#[test]
fn without_txs_heights_come_every_empty_blocks_interval() {
    let interval = 5_000;
    let cfg = SimConfig::new(4, 0)
        .network(NetworkConfig::synchronous())
        .wait_for_txs(WaitForTxs {
            txs_within_ms: None,
            one_deaf: false,
        })
        .empty_blocks_interval(interval);
    for seed in 0..5 {
        let r = run(&cfg, seed).expect("valid");
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.heights_decided, cfg.heights);
        assert!(
            r.sim_time_ms >= (cfg.heights - 1) * interval,
            "heights 2.. each waited {interval} ms: ended at {} ms",
            r.sim_time_ms
        );
    }
    // With transactions there from the start, nobody waits that long.
    let eager = cfg.wait_for_txs(WaitForTxs {
        txs_within_ms: Some(0),
        one_deaf: false,
    });
    let r = run(&eager, 0).expect("valid");
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.sim_time_ms < interval, "{} ms", r.sim_time_ms);
}

#[test]
fn waiting_for_txs_that_never_come_needs_an_interval() {
    let cfg = SimConfig::new(4, 0).wait_for_txs(WaitForTxs {
        txs_within_ms: None,
        one_deaf: false,
    });
    assert!(run(&cfg, 0).is_err());
}

/// Gossip mode: honest networks (synchronous, and chaotic with partitions
/// and crash-restarts) and one Byzantine validator of 4 reach agreement
/// and termination with every message planned by the nodes' reactors.
#[test]
fn gossip_mode_scenarios_are_clean() {
    let seeds = run_all(&gossip_scenarios());
    assert!(seeds >= 60, "{seeds}");
}

/// Gossip mode really routes through the reactors: a synchronous honest
/// run decides in round 0, its trace carries reactor messages (block
/// parts, HasVote) and none of the direct mode's, and it reproduces.
#[test]
fn gossip_mode_sends_reactor_messages_only() {
    let mut cfg = SimConfig::new(4, 0)
        .heights(2)
        .network(NetworkConfig::synchronous())
        .gossip(true);
    cfg.trace = true;
    let a = run(&cfg, 5).expect("valid");
    assert!(a.violations.is_empty(), "{:?}", a.violations);
    assert_eq!(a.heights_decided, 2);
    assert_eq!(a.rounds, vec![0, 0]);
    let sent = |what: &str| {
        a.trace
            .iter()
            .any(|l| l.contains(" -> n") && l.contains(what))
    };
    assert!(sent("BlockPart"), "parts are gossiped");
    assert!(sent("HasVote"), "HasVote is gossiped");
    assert!(sent("NewRoundStep"), "positions are gossiped");
    assert!(!sent("+block"), "no direct proposal broadcast");
    let b = run(&cfg, 5).expect("valid");
    assert_eq!(a.trace, b.trace);
}

/// Before GST, connections break and reconnect (each reconnection re-adds
/// the peer to both reactors), and the run still terminates.
#[test]
fn gossip_mode_survives_connection_breaks() {
    let mut cfg = SimConfig::new(4, 0)
        .heights(2)
        .network(NetworkConfig {
            loss: 0.8,
            ..testnet::sim::scenarios::chaos(0)
        })
        .gossip(true);
    cfg.trace = true;
    let r = run(&cfg, 1).expect("valid");
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.heights_decided, 2);
    assert!(r.trace.iter().any(|l| l.contains("connection broken")));
    assert!(r
        .trace
        .iter()
        .any(|l| l.contains("connection (re)established")));
}
