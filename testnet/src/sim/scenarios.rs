//! The configurations CI runs, shared by the tests and the command line.

use super::config::{NetworkConfig, Powers, SimConfig, Strategy, WaitForTxs};

/// A configuration and how many seeds of it to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Short name for reports.
    pub name: String,
    /// The configuration.
    pub config: SimConfig,
    /// Seeds 0..seeds are run.
    pub seeds: u64,
}

fn scenario(name: impl Into<String>, config: SimConfig, seeds: u64) -> Scenario {
    Scenario {
        name: name.into(),
        config,
        seeds,
    }
}

/// Pre-GST chaos with a healing partition and `crashes` crash-restarts.
pub fn chaos(crashes: usize) -> NetworkConfig {
    NetworkConfig {
        partition: true,
        crashes,
        ..NetworkConfig::default()
    }
}

/// create_empty_blocks = false: each node hears of transactions within 3 s
/// of starting a height, except one honest node per height that never does.
pub fn txs_at_different_times() -> WaitForTxs {
    WaitForTxs {
        txs_within_ms: Some(3_000),
        one_deaf: true,
    }
}

/// The matrix of correctness runs: 4, 7, 10 and 31 validators, equal and
/// skewed powers, up to f Byzantine validators with every strategy, network
/// chaos, partitions and crashes, and round 0 waiting for transactions that
/// reach the nodes at different times (or never, with an empty-blocks
/// interval). Every run must be free of violations.
pub fn ci_matrix() -> Vec<Scenario> {
    use Strategy::*;
    let sync = NetworkConfig::synchronous;
    let mut v = vec![
        scenario(
            "4 honest, synchronous",
            SimConfig::new(4, 0).network(sync()),
            100,
        ),
        scenario(
            "4 honest, chaos, 2 crashes",
            SimConfig::new(4, 0).network(chaos(2)),
            150,
        ),
    ];
    for s in Strategy::ALL {
        v.push(scenario(
            format!("4 with 1 {s}, chaos, 1 crash"),
            SimConfig::new(4, 1).strategies(&[s]).network(chaos(1)),
            60,
        ));
    }
    v.extend([
        // Without the round-0 join on +1/3 votes, the deaf node strands the
        // others when the Byzantine one is silent.
        scenario(
            "4 with 1 silent, waiting for txs with a deaf node, synchronous",
            SimConfig::new(4, 1)
                .strategies(&[Silent])
                .wait_for_txs(txs_at_different_times())
                .network(sync()),
            50,
        ),
        scenario(
            "4 with 1 mixed, waiting for txs with a deaf node, chaos, 1 crash",
            SimConfig::new(4, 1)
                .wait_for_txs(txs_at_different_times())
                .network(chaos(1)),
            100,
        ),
        scenario(
            "4 honest, no txs, 2 s empty-blocks interval, chaos, 1 crash",
            SimConfig::new(4, 0)
                .wait_for_txs(WaitForTxs {
                    txs_within_ms: None,
                    one_deaf: false,
                })
                .empty_blocks_interval(2_000)
                .network(chaos(1)),
            50,
        ),
        scenario(
            "7 with 2 mixed, waiting for txs with a deaf node, chaos, 2 crashes",
            SimConfig::new(7, 2)
                .wait_for_txs(txs_at_different_times())
                .network(chaos(2)),
            60,
        ),
        scenario(
            "4 skewed with 2 mixed, chaos, 1 crash",
            SimConfig::new(4, 2)
                .powers(Powers::Skewed)
                .network(chaos(1)),
            150,
        ),
        scenario(
            "7 with 2 mixed, chaos, 2 crashes",
            SimConfig::new(7, 2).network(chaos(2)),
            250,
        ),
        scenario(
            "7 with 2 silent/amnesia, chaos, 2 crashes",
            SimConfig::new(7, 2)
                .strategies(&[Silent, Amnesia])
                .network(chaos(2)),
            200,
        ),
        scenario(
            "7 with 2 equivocators, synchronous",
            SimConfig::new(7, 2)
                .strategies(&[Equivocator])
                .network(sync()),
            50,
        ),
        scenario(
            "7 skewed with 4 mixed, chaos, 1 crash",
            SimConfig::new(7, 4)
                .powers(Powers::Skewed)
                .network(chaos(1)),
            100,
        ),
        scenario(
            "10 with 3 mixed, chaos, 2 crashes",
            SimConfig::new(10, 3).heights(3).network(chaos(2)),
            150,
        ),
        scenario(
            "10 with 3 proposer attacks and forgers, chaos, 2 crashes",
            SimConfig::new(10, 3)
                .heights(3)
                .strategies(&[EquivocatingProposer, InvalidBlock, ForgedSignatures])
                .network(chaos(2)),
            120,
        ),
        scenario(
            "10 skewed with 3 mixed, chaos",
            SimConfig::new(10, 3)
                .heights(3)
                .powers(Powers::Skewed)
                .network(chaos(0)),
            80,
        ),
        scenario(
            "31 with 10 mixed, chaos, 3 crashes",
            SimConfig::new(31, 10).heights(3).network(chaos(3)),
            25,
        ),
        scenario(
            "31 with 10 silent/amnesia/invalid/forgers, chaos, 2 crashes",
            SimConfig::new(31, 10)
                .heights(3)
                .strategies(&[Silent, Amnesia, InvalidBlock, ForgedSignatures])
                .network(chaos(2)),
            20,
        ),
        scenario(
            "31 skewed with 6 mixed, chaos, 1 crash",
            SimConfig::new(31, 6)
                .heights(3)
                .powers(Powers::Skewed)
                .network(chaos(1)),
            25,
        ),
    ]);
    v
}

/// The configurations that expose each deliberately broken core, by the
/// mutant's name (`NoLocking`, `QuorumTwoF`, `NoSignatureCheck`,
/// `DecideOnPrevotes`). With a correct core they must produce no violation.
pub fn attack_scenarios(mutant: &str) -> Vec<Scenario> {
    match mutant {
        "NoSignatureCheck" => vec![
            scenario(
                "4 with 1 forger, synchronous",
                SimConfig::new(4, 1)
                    .strategies(&[Strategy::ForgedSignatures])
                    .network(NetworkConfig::synchronous()),
                20,
            ),
            scenario(
                "7 with 2 forgers, chaos",
                SimConfig::new(7, 2)
                    .strategies(&[Strategy::ForgedSignatures])
                    .network(chaos(0)),
                20,
            ),
        ],
        "QuorumTwoF" => vec![
            scenario(
                "4 with 1 equivocator, synchronous",
                SimConfig::new(4, 1)
                    .strategies(&[Strategy::Equivocator])
                    .network(NetworkConfig::synchronous()),
                100,
            ),
            scenario(
                "7 with 2 lock breakers, synchronous",
                SimConfig::new(7, 2)
                    .strategies(&[Strategy::LockBreaker])
                    .network(NetworkConfig::synchronous()),
                100,
            ),
        ],
        "DecideOnPrevotes" => vec![
            scenario(
                "4 with 1 lock breaker, chaos",
                SimConfig::new(4, 1)
                    .strategies(&[Strategy::LockBreaker])
                    .network(chaos(0)),
                200,
            ),
            scenario(
                "7 with 2 lock breakers, synchronous",
                SimConfig::new(7, 2)
                    .strategies(&[Strategy::LockBreaker])
                    .network(NetworkConfig::synchronous()),
                200,
            ),
            scenario(
                "4 with 1 equivocator, chaos",
                SimConfig::new(4, 1)
                    .strategies(&[Strategy::Equivocator])
                    .network(chaos(0)),
                200,
            ),
        ],
        _ => vec![
            scenario(
                "4 with 1 lock breaker, synchronous",
                SimConfig::new(4, 1)
                    .strategies(&[Strategy::LockBreaker])
                    .network(NetworkConfig::synchronous()),
                200,
            ),
            scenario(
                "7 with 2 lock breakers, synchronous",
                SimConfig::new(7, 2)
                    .strategies(&[Strategy::LockBreaker])
                    .network(NetworkConfig::synchronous()),
                200,
            ),
            scenario(
                "4 with 1 equivocator, chaos",
                SimConfig::new(4, 1)
                    .strategies(&[Strategy::Equivocator])
                    .network(chaos(0)),
                200,
            ),
        ],
    }
}

/// Gossip-mode runs (messages through the nodes' consensus reactors, over
/// connections that break before GST): honest networks synchronous and
/// chaotic with crashes, and one Byzantine validator of 4 for the
/// strategies that send through direct messages. Few seeds and heights:
/// CI runs them in debug builds.
pub fn gossip_scenarios() -> Vec<Scenario> {
    use Strategy::*;
    let sync = NetworkConfig::synchronous;
    let mut v = vec![
        scenario(
            "gossip: 4 honest, synchronous",
            SimConfig::new(4, 0).heights(3).network(sync()).gossip(true),
            10,
        ),
        scenario(
            "gossip: 4 honest, chaos, 2 crashes",
            SimConfig::new(4, 0)
                .heights(3)
                .network(chaos(2))
                .gossip(true),
            10,
        ),
        scenario(
            "gossip: 7 skewed honest, chaos, 1 crash",
            SimConfig::new(7, 0)
                .powers(Powers::Skewed)
                .heights(2)
                .network(chaos(1))
                .gossip(true),
            5,
        ),
    ];
    for s in [
        Silent,
        Equivocator,
        DoubleVote,
        ForgedSignatures,
        LockBreaker,
    ] {
        v.push(scenario(
            format!("gossip: 4 with 1 {s}, chaos, 1 crash"),
            SimConfig::new(4, 1)
                .strategies(&[s])
                .heights(3)
                .network(chaos(1))
                .gossip(true),
            8,
        ));
    }
    v
}
