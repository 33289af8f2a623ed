//! The `testnet` command: simulate networks of engine validators, and
//! generate, start and inspect local testnets of real `engine` processes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use testnet::net::{self, AppSpec};
use testnet::sim::{
    self, scenarios, NetworkConfig, Powers, SimConfig, Strategy, Summary, WaitForTxs,
};

/// Local networks of engine validators.
#[derive(Parser, Debug)]
#[command(name = "testnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the deterministic Byzantine network simulator over many seeds and
    /// check agreement, validity, termination and evidence on each.
    Sim(SimArgs),
    /// Generate the homes of a local network (like `cometbft testnet`):
    /// validators sharing one genesis, then full nodes, all peered on
    /// 127.0.0.1.
    #[command(after_help = PORTS_HELP)]
    Init(InitArgs),
    /// Run every node of a network made by `init` until Ctrl-C or SIGTERM,
    /// showing each node's height; logs go to DIR/nodeI/engine.log (and
    /// app.log). Exits non-zero if a node died while running.
    #[command(after_help = PORTS_HELP)]
    Start(StartArgs),
    /// Show each node's height, last block hash, peers and reachability,
    /// and whether the nodes agree on the block at the lowest common
    /// height. Exits non-zero if they disagree or none is reachable.
    Status(StatusArgs),
    /// Generate and run a network of validators on loopback, then report
    /// heights per second and consensus gossip (messages and bytes) per
    /// node and height. Replaces the testnet in --dir.
    Bench(BenchArgs),
}

const PORTS_HELP: &str = "\
Ports: node i listens for peers on P+10*i, serves RPC on P+10*i+7 and, with an
external app, expects the app on P+10*i+8, where P is --base-port (26600 by
default: node0 serves RPC on 26607, node1 on 26617, node2 on 26627, ...).";

/// Arguments of `testnet init`.
#[derive(Args, Debug)]
struct InitArgs {
    /// Number of validators (node0 .. node{N-1}), each with power 10.
    #[arg(long)]
    validators: usize,
    /// Number of full nodes (after the validators; not in the genesis).
    #[arg(long, default_value_t = 0)]
    full_nodes: usize,
    /// The network directory; must not exist or be empty (see --force).
    #[arg(long)]
    dir: PathBuf,
    /// The application: "kvstore" (built in), or a shell command that
    /// serves ABCI on {port}, e.g. "my-app --addr tcp://127.0.0.1:{port}";
    /// `start` runs one per node through `sh -c`, with {port} replaced by
    /// the node's app port and {home} by its home directory.
    #[arg(long, default_value = "kvstore")]
    app: String,
    /// node0's first port (see Ports below).
    #[arg(long, default_value_t = net::DEFAULT_BASE_PORT)]
    base_port: u16,
    /// Chain ID (default: chain-<6 random characters>).
    #[arg(long)]
    chain_id: Option<String>,
    /// Replace a testnet already in --dir (a directory holding anything
    /// else is never deleted).
    #[arg(long)]
    force: bool,
}

/// Arguments of `testnet start`.
#[derive(Args, Debug)]
struct StartArgs {
    /// The network directory made by `testnet init`.
    dir: PathBuf,
    /// The engine binary (default: next to this testnet binary, else on
    /// PATH).
    #[arg(long)]
    engine: Option<PathBuf>,
    /// Seconds each process gets to exit after SIGTERM before SIGKILL.
    #[arg(long, default_value_t = 10)]
    grace: u64,
}

/// Arguments of `testnet status`.
#[derive(Args, Debug)]
struct StatusArgs {
    /// The network directory made by `testnet init`.
    dir: PathBuf,
    /// Seconds to wait for each node's answer.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
}

/// Arguments of `testnet bench`.
#[derive(Args, Debug)]
struct BenchArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Where to write the network (replaced if it holds a testnet).
    #[arg(long, default_value = "bench-net")]
    dir: PathBuf,
    /// timeout_commit of every node, in milliseconds.
    #[arg(long, default_value_t = 0)]
    timeout_commit_ms: u64,
    /// Seconds measured after warm-up.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// node0's first port.
    #[arg(long, default_value_t = net::DEFAULT_BASE_PORT)]
    base_port: u16,
    /// The engine binary (default: next to this testnet binary, else on
    /// PATH). Build it with --release for meaningful numbers.
    #[arg(long)]
    engine: Option<PathBuf>,
}

/// Arguments of `testnet sim`.
#[derive(Args, Debug)]
struct SimArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Number of Byzantine validators (their power must stay below 1/3).
    #[arg(long, default_value_t = 0)]
    byzantine: usize,
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed of the range.
    #[arg(long, default_value_t = 0)]
    start_seed: u64,
    /// Run only this seed (e.g. to reproduce a failure).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the message trace of the run (with --seed).
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Heights every honest validator must decide.
    #[arg(long, default_value_t = 4)]
    heights: u64,
    /// Voting powers: equal or skewed.
    #[arg(long, default_value = "equal")]
    powers: Powers,
    /// Byzantine strategies, comma-separated, assigned in turn (default: each
    /// Byzantine validator draws one from the seed). One of: silent,
    /// equivocating-proposer, double-vote, equivocator, amnesia,
    /// invalid-block, forged-signatures, wrong-chain, flood, lock-breaker.
    #[arg(long, value_delimiter = ',')]
    strategy: Vec<Strategy>,
    /// Global stabilization time in simulated milliseconds.
    #[arg(long, default_value_t = 8000)]
    gst: u64,
    /// Message loss probability before GST.
    #[arg(long, default_value_t = 0.15)]
    loss: f64,
    /// Largest message delay before GST, in simulated milliseconds.
    #[arg(long, default_value_t = 2500)]
    max_delay: u64,
    /// Add a random partition that heals by GST.
    #[arg(long)]
    partition: bool,
    /// Honest validators that crash and restart before GST.
    #[arg(long, default_value_t = 0)]
    crashes: usize,
    /// Synchronous network (GST at 0, no loss).
    #[arg(long)]
    sync: bool,
    /// Round 0 waits for transactions above height 1
    /// (create_empty_blocks = false).
    #[arg(long)]
    wait_for_txs: bool,
    /// With --wait-for-txs: each node hears of transactions within this
    /// many simulated milliseconds of starting a height (default: never).
    #[arg(long, requires = "wait_for_txs")]
    txs_within: Option<u64>,
    /// With --wait-for-txs: at each height one honest node never hears of
    /// transactions.
    #[arg(long, requires = "wait_for_txs")]
    deaf: bool,
    /// create_empty_blocks_interval in simulated milliseconds (0: none).
    #[arg(long, default_value_t = 0)]
    empty_blocks_interval: u64,
    /// Gossip mode: messages travel through each node's consensus reactor
    /// (proposal, parts, votes, HasVote, VoteSetMaj23/Bits) over connections
    /// that break and reconnect before GST, instead of direct broadcast.
    #[arg(long)]
    gossip: bool,
    /// Run CI's scenario matrix instead of one configuration.
    #[arg(long)]
    matrix: bool,
    /// Print one JSON object per configuration.
    #[arg(long)]
    json: bool,
    /// Run the honest validators with a deliberately broken core
    /// (NoLocking, QuorumTwoF, NoSignatureCheck, DecideOnPrevotes).
    #[cfg(feature = "mutants")]
    #[arg(long)]
    mutant: Option<String>,
}

#[cfg(feature = "mutants")]
fn parse_mutant(name: &str) -> Result<engine::consensus::mutants::Mutant, String> {
    use engine::consensus::mutants::Mutant;
    match name {
        "NoLocking" => Ok(Mutant::NoLocking),
        "QuorumTwoF" => Ok(Mutant::QuorumTwoF),
        "NoSignatureCheck" => Ok(Mutant::NoSignatureCheck),
        "DecideOnPrevotes" => Ok(Mutant::DecideOnPrevotes),
        other => Err(format!("unknown mutant {other:?}")),
    }
}

impl SimArgs {
    fn config(&self) -> Result<SimConfig, String> {
        let network = if self.sync {
            NetworkConfig::synchronous()
        } else {
            NetworkConfig {
                gst_ms: self.gst,
                loss: self.loss,
                pre_gst_max_delay_ms: self.max_delay,
                partition: self.partition,
                crashes: self.crashes,
                ..NetworkConfig::default()
            }
        };
        let mut cfg = SimConfig::new(self.validators, self.byzantine)
            .powers(self.powers)
            .strategies(&self.strategy)
            .heights(self.heights)
            .network(network)
            .empty_blocks_interval(self.empty_blocks_interval)
            .gossip(self.gossip);
        if self.wait_for_txs {
            cfg = cfg.wait_for_txs(WaitForTxs {
                txs_within_ms: self.txs_within,
                one_deaf: self.deaf,
            });
        }
        #[cfg(feature = "mutants")]
        if let Some(m) = &self.mutant {
            cfg.mutant = Some(parse_mutant(m)?);
        }
        Ok(cfg)
    }
}

/// The `testnet sim` flags that reproduce `seed` of `cfg` with its trace.
fn reproduce_command(cfg: &SimConfig, seed: u64) -> String {
    let mut c = format!(
        "testnet sim --validators {} --byzantine {} --powers {} --heights {}",
        cfg.validators, cfg.byzantine, cfg.powers, cfg.heights
    );
    if !cfg.strategies.is_empty() {
        let names: Vec<_> = cfg.strategies.iter().map(|s| s.name()).collect();
        c.push_str(&format!(" --strategy {}", names.join(",")));
    }
    let n = &cfg.network;
    if *n == NetworkConfig::synchronous() {
        c.push_str(" --sync");
    } else {
        c.push_str(&format!(
            " --gst {} --loss {} --max-delay {}",
            n.gst_ms, n.loss, n.pre_gst_max_delay_ms
        ));
        if n.partition {
            c.push_str(" --partition");
        }
        if n.crashes > 0 {
            c.push_str(&format!(" --crashes {}", n.crashes));
        }
    }
    if cfg.gossip {
        c.push_str(" --gossip");
    }
    if let Some(w) = cfg.wait_for_txs {
        c.push_str(" --wait-for-txs");
        if let Some(ms) = w.txs_within_ms {
            c.push_str(&format!(" --txs-within {ms}"));
        }
        if w.one_deaf {
            c.push_str(" --deaf");
        }
    }
    let interval = cfg.timeouts.create_empty_blocks_interval;
    if !interval.is_zero() {
        c.push_str(&format!(
            " --empty-blocks-interval {}",
            interval.as_millis()
        ));
    }
    #[cfg(feature = "mutants")]
    if let Some(m) = cfg.mutant {
        c.push_str(&format!(" --mutant {m:?}"));
    }
    c.push_str(&format!(" --seed {seed} --trace"));
    c
}

fn print_summary(s: &Summary, json: bool) {
    if json {
        println!("{}", s.to_json());
    } else {
        println!("{s}");
    }
}

fn run_sim(args: &SimArgs) -> Result<bool, String> {
    if args.gossip && !args.json {
        println!("mode: gossip (messages through each node's consensus reactor)");
    }
    if let Some(seed) = args.seed {
        let mut cfg = args.config()?;
        cfg.trace = args.trace;
        let report = sim::run(&cfg, seed)?;
        for line in &report.trace {
            println!("{line}");
        }
        let s = sim::run_seeds(
            &SimConfig {
                trace: false,
                ..cfg.clone()
            },
            seed..seed + 1,
            false,
        )?;
        print_summary(&s, args.json);
        for v in &report.violations {
            eprintln!("VIOLATION seed {seed}: {v}");
        }
        return Ok(report.violations.is_empty());
    }
    let configs: Vec<(SimConfig, u64)> = if args.matrix {
        scenarios::ci_matrix()
            .into_iter()
            .map(|s| (s.config, s.seeds))
            .collect()
    } else {
        vec![(args.config()?, args.seeds)]
    };
    let mut ok = true;
    for (cfg, seeds) in configs {
        let s = sim::run_seeds(&cfg, args.start_seed..args.start_seed + seeds, false)?;
        print_summary(&s, args.json);
        if let Some((seed, v)) = &s.first_violation {
            ok = false;
            eprintln!(
                "VIOLATION of {} with seed {seed} ({}): {}\n  reproduce: {}",
                v.property,
                s.config,
                v.detail,
                reproduce_command(&cfg, *seed)
            );
        }
    }
    Ok(ok)
}

fn run_init(args: InitArgs) -> Result<bool, net::Error> {
    let opts = net::init::InitOptions {
        dir: args.dir,
        validators: args.validators,
        full_nodes: args.full_nodes,
        app: AppSpec::parse(&args.app)?,
        base_port: args.base_port,
        chain_id: args.chain_id,
        force: args.force,
    };
    let network = net::init::init(&opts, engine::node::now())?;
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    println!(
        "initialized {} and {} in {} (chain {})",
        plural(opts.validators, "validator"),
        plural(opts.full_nodes, "full node"),
        network.dir.display(),
        network.chain_id
    );
    for n in &network.nodes {
        let role = if n.validator {
            "validator"
        } else {
            "full node"
        };
        println!("  {:<7} {role:<9}  rpc http://{}", n.name, n.rpc);
    }
    println!("run it with: testnet start {}", network.dir.display());
    Ok(true)
}

fn run_start(args: StartArgs) -> Result<bool, net::Error> {
    let network = net::Network::load(&args.dir)?;
    let engine = net::start::find_engine(args.engine.as_deref())?;
    let stop = net::start::stop_signals()?;
    let mut opts = net::start::StartOptions::new(engine);
    opts.live = std::io::stdout().is_terminal();
    opts.grace = Duration::from_secs(args.grace);
    if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        opts.width = w;
    }
    let outcome = net::start::run(&network, &opts, &stop, &mut std::io::stdout())?;
    Ok(outcome.clean())
}

fn run_bench(args: BenchArgs) -> Result<bool, net::Error> {
    let engine = net::start::find_engine(args.engine.as_deref())?;
    let opts = net::bench::BenchOptions {
        dir: args.dir.clone(),
        validators: args.validators,
        base_port: args.base_port,
        timeout_commit: Duration::from_millis(args.timeout_commit_ms),
        window: Duration::from_secs(args.seconds),
        engine: engine.clone(),
    };
    let report = net::bench::run(&opts, engine::node::now())?;
    println!(
        "testnet bench --validators {} --timeout-commit-ms {} --seconds {} (engine {})",
        args.validators,
        args.timeout_commit_ms,
        args.seconds,
        engine.display()
    );
    println!("{report}");
    Ok(true)
}

fn run_status(args: StatusArgs) -> Result<bool, net::Error> {
    let network = net::Network::load(&args.dir)?;
    let report = net::status::check(&network, Duration::from_secs(args.timeout));
    print!("{}", report.render());
    Ok(report.ok())
}

/// Exit status: 0 when all went well, 1 for a failed check (a violation, a
/// node that died, nodes that disagree), 2 when the command could not run.
fn exit(result: Result<bool, impl std::fmt::Display>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => exit(run_sim(&args)),
        Command::Init(args) => exit(run_init(args)),
        Command::Start(args) => exit(run_start(args)),
        Command::Status(args) => exit(run_status(args)),
        Command::Bench(args) => exit(run_bench(args)),
    }
}
