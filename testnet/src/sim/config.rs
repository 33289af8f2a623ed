//! What one simulated run looks like: validators, powers, Byzantine
//! strategies, network conditions and the properties' bounds.

use std::fmt;
use std::str::FromStr;

use engine::consensus::Timeouts;

/// How voting power is distributed among validators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Powers {
    /// Every validator has power 1.
    Equal,
    /// Fibonacci-like powers 1, 1, 2, 3, 5, 8, 13 repeated.
    Skewed,
}

impl Powers {
    /// The voting power of each of `n` validators, by node index.
    pub fn of(self, n: usize) -> Vec<i64> {
        const SKEW: [i64; 7] = [1, 1, 2, 3, 5, 8, 13];
        (0..n)
            .map(|i| match self {
                Powers::Equal => 1,
                Powers::Skewed => SKEW[i % SKEW.len()],
            })
            .collect()
    }

    /// The largest number of validators whose total power stays below 1/3 of
    /// the total (the smallest-power ones taken first).
    pub fn max_byzantine(self, n: usize) -> usize {
        let mut powers = self.of(n);
        let total: i64 = powers.iter().sum();
        powers.sort_unstable();
        let mut sum = 0;
        let mut count = 0;
        for p in powers {
            if 3 * (sum + p) >= total {
                break;
            }
            sum += p;
            count += 1;
        }
        count
    }
}

impl fmt::Display for Powers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Powers::Equal => "equal",
            Powers::Skewed => "skewed",
        })
    }
}

impl FromStr for Powers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "equal" => Ok(Powers::Equal),
            "skewed" => Ok(Powers::Skewed),
            _ => Err(format!("unknown powers {s:?} (equal|skewed)")),
        }
    }
}

/// The behaviour of one Byzantine validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strategy {
    /// Sends nothing at all.
    Silent,
    /// As proposer, sends different proposals (different blocks) to the two
    /// halves of the honest validators; votes honestly otherwise.
    EquivocatingProposer,
    /// Sends conflicting prevotes and precommits to the two halves.
    DoubleVote,
    /// Equivocating proposer and double votes together, coordinated with the
    /// other Byzantine validators (the classic split-brain attack).
    Equivocator,
    /// Prevotes and precommits for the latest proposal seen, ignoring locks,
    /// and re-proposes fresh blocks instead of its valid value.
    Amnesia,
    /// As proposer, proposes blocks the application rejects.
    InvalidBlock,
    /// Forges votes and proposals in other validators' names with random
    /// signature bytes, and corrupts its own signatures.
    ForgedSignatures,
    /// Sends messages signed for another chain and votes for other heights.
    WrongChain,
    /// Floods correctly signed votes for far-future rounds and heights.
    Flood,
    /// Attacks locking: prevotes the latest proposal to everyone, precommits
    /// it to side A and nil to side B (so that some honest validators decide
    /// while others only lock), and proposes fresh blocks instead of its
    /// valid value.
    LockBreaker,
}

impl Strategy {
    /// Every strategy, in a fixed order.
    pub const ALL: [Strategy; 10] = [
        Strategy::Silent,
        Strategy::EquivocatingProposer,
        Strategy::DoubleVote,
        Strategy::Equivocator,
        Strategy::Amnesia,
        Strategy::InvalidBlock,
        Strategy::ForgedSignatures,
        Strategy::WrongChain,
        Strategy::Flood,
        Strategy::LockBreaker,
    ];

    /// The strategy's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Silent => "silent",
            Strategy::EquivocatingProposer => "equivocating-proposer",
            Strategy::DoubleVote => "double-vote",
            Strategy::Equivocator => "equivocator",
            Strategy::Amnesia => "amnesia",
            Strategy::InvalidBlock => "invalid-block",
            Strategy::ForgedSignatures => "forged-signatures",
            Strategy::WrongChain => "wrong-chain",
            Strategy::Flood => "flood",
            Strategy::LockBreaker => "lock-breaker",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .iter()
            .copied()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Strategy::ALL.iter().map(|s| s.name()).collect();
                format!("unknown strategy {s:?} ({})", names.join("|"))
            })
    }
}

/// Network conditions. Times are simulated milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Global stabilization time: from then on every message between honest
    /// nodes arrives within `delta_ms`, none is lost.
    pub gst_ms: u64,
    /// The delay bound after GST (delays are uniform in 1..=delta_ms).
    pub delta_ms: u64,
    /// Largest delay before GST (uniform in 1..=pre_gst_max_delay_ms).
    pub pre_gst_max_delay_ms: u64,
    /// Probability that a message sent before GST is lost.
    pub loss: f64,
    /// Probability that a message sent before GST is delivered twice.
    pub duplicate: f64,
    /// Whether a random partition (two sides) is in force for a random
    /// interval that heals at or before GST.
    pub partition: bool,
    /// How many honest validators crash (at a random time before GST) and
    /// restart from their persisted state (at or before GST).
    pub crashes: usize,
    /// Period of the gossip routine that re-sends what a lagging peer misses.
    pub gossip_interval_ms: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            gst_ms: 8_000,
            delta_ms: 200,
            pre_gst_max_delay_ms: 2_500,
            loss: 0.15,
            duplicate: 0.05,
            partition: false,
            crashes: 0,
            gossip_interval_ms: 1_000,
        }
    }
}

impl NetworkConfig {
    /// A synchronous network from the start: GST at 0, no loss.
    pub fn synchronous() -> Self {
        NetworkConfig {
            gst_ms: 0,
            loss: 0.0,
            duplicate: 0.0,
            ..NetworkConfig::default()
        }
    }
}

/// Round 0 waits for transactions (`create_empty_blocks = false`) at every
/// height above the first (height 1 is the initial height, a proof block;
/// the simulated app hash never changes, so no other height needs one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitForTxs {
    /// Each node hears that transactions are available
    /// (`Input::TxsAvailable`) at a uniformly random time within this many
    /// ms after it starts a height, and again after a restart (its mempool
    /// refills by gossip). `None`: never, only
    /// `timeouts.create_empty_blocks_interval` ends the wait.
    pub txs_within_ms: Option<u64>,
    /// At each height one honest node never hears of them (say its mempool
    /// refuses them): only what the others do may release it.
    pub one_deaf: bool,
}

/// Everything that defines a family of runs; a run is this plus a seed.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of validators.
    pub validators: usize,
    /// Voting power distribution.
    pub powers: Powers,
    /// Number of Byzantine validators (their total power must stay < 1/3).
    pub byzantine: usize,
    /// Strategies assigned to the Byzantine validators in turn; empty means
    /// each one draws a strategy from the seed.
    pub strategies: Vec<Strategy>,
    /// Heights every honest validator must decide.
    pub heights: u64,
    /// Network conditions.
    pub network: NetworkConfig,
    /// Termination bound: an honest validator decides each height within this
    /// many rounds above the round it was in at GST (rounds counted from 0 for
    /// heights it starts after GST).
    pub max_rounds_after_gst: u32,
    /// Consensus step timeouts (and create_empty_blocks_interval).
    pub timeouts: Timeouts,
    /// Round 0 waits for transactions; `None`: never (empty blocks).
    pub wait_for_txs: Option<WaitForTxs>,
    /// Passed to the core's `Config::future_rounds_per_validator`.
    pub future_rounds_per_validator: usize,
    /// Gossip mode: messages travel through each node's consensus reactor
    /// over FIFO connections that break and reconnect before GST, instead
    /// of being broadcast directly (see `sim::gossip`).
    pub gossip: bool,
    /// Record a message trace in the report.
    pub trace: bool,
    /// The deliberate bug the honest validators run with.
    #[cfg(feature = "mutants")]
    pub mutant: Option<engine::consensus::mutants::Mutant>,
}

impl SimConfig {
    /// `validators` validators, `byzantine` of them Byzantine with random
    /// strategies, default network (chaos before GST), 4 heights.
    pub fn new(validators: usize, byzantine: usize) -> Self {
        SimConfig {
            validators,
            powers: Powers::Equal,
            byzantine,
            strategies: Vec::new(),
            heights: 4,
            network: NetworkConfig::default(),
            max_rounds_after_gst: 10,
            timeouts: Timeouts::default(),
            wait_for_txs: None,
            future_rounds_per_validator: 2,
            gossip: false,
            trace: false,
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }

    /// Sets the power distribution.
    pub fn powers(mut self, powers: Powers) -> Self {
        self.powers = powers;
        self
    }

    /// Sets the Byzantine strategies (assigned in turn).
    pub fn strategies(mut self, strategies: &[Strategy]) -> Self {
        self.strategies = strategies.to_vec();
        self
    }

    /// Sets the number of heights to decide.
    pub fn heights(mut self, heights: u64) -> Self {
        self.heights = heights;
        self
    }

    /// Sets the network conditions.
    pub fn network(mut self, network: NetworkConfig) -> Self {
        self.network = network;
        self
    }

    /// Routes messages through the nodes' gossip reactors.
    pub fn gossip(mut self, on: bool) -> Self {
        self.gossip = on;
        self
    }

    /// Makes round 0 wait for transactions.
    pub fn wait_for_txs(mut self, wait: WaitForTxs) -> Self {
        self.wait_for_txs = Some(wait);
        self
    }

    /// Sets create_empty_blocks_interval, in simulated milliseconds.
    pub fn empty_blocks_interval(mut self, ms: u64) -> Self {
        self.timeouts.create_empty_blocks_interval = std::time::Duration::from_millis(ms);
        self
    }

    /// A short human-readable description, used in summaries.
    pub fn describe(&self) -> String {
        let strategies = if self.strategies.is_empty() {
            "mixed".to_string()
        } else {
            let names: Vec<_> = self.strategies.iter().map(|s| s.name()).collect();
            names.join("+")
        };
        #[allow(unused_mut)]
        let mut s = format!(
            "validators={} byzantine={} powers={} strategies={} heights={} gst={}ms loss={} partition={} crashes={}",
            self.validators,
            self.byzantine,
            self.powers,
            strategies,
            self.heights,
            self.network.gst_ms,
            self.network.loss,
            self.network.partition,
            self.network.crashes
        );
        if self.gossip {
            s.push_str(" mode=gossip");
        }
        if let Some(w) = self.wait_for_txs {
            let within = w
                .txs_within_ms
                .map_or("never".to_string(), |ms| format!("{ms}ms"));
            s.push_str(&format!(" wait_for_txs(within={within}"));
            if w.one_deaf {
                s.push_str(" one_deaf");
            }
            let interval = self.timeouts.create_empty_blocks_interval;
            if !interval.is_zero() {
                s.push_str(&format!(" interval={}ms", interval.as_millis()));
            }
            s.push(')');
        }
        #[cfg(feature = "mutants")]
        if let Some(m) = self.mutant {
            s.push_str(&format!(" mutant={m:?}"));
        }
        s
    }
}
