//! `testnet start`: runs every node of a network directory as child
//! processes (`engine start --home DIR/nodeI`, and its external app), shows
//! their heights live, reports a node that dies (with the end of its log)
//! while the others keep running, and stops them all on Ctrl-C or SIGTERM.
//!
//! The supervisor is synchronous: a stop request arrives on a channel (from
//! [`stop_signals`], or from a test), children are polled, never awaited.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::process::{stop_all, Proc};
use super::{rpc, Error, Network, NodeSpec};

/// How `start` runs.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// The `engine` binary.
    pub engine: PathBuf,
    /// Redraw one status line in place (stdout is a terminal); otherwise
    /// print a status line every `print_every`.
    pub live: bool,
    /// Period of the status line when not `live`.
    pub print_every: Duration,
    /// Width the live status line is cut to.
    pub width: usize,
    /// Time children get to exit after SIGTERM before SIGKILL.
    pub grace: Duration,
    /// Time an external app gets to accept connections before its engine
    /// starts.
    pub app_ready_timeout: Duration,
    /// Lines of a dead node's log to show.
    pub log_lines: usize,
}

impl StartOptions {
    /// The defaults: not live, a status line every 3 s, 10 s grace.
    pub fn new(engine: PathBuf) -> Self {
        StartOptions {
            engine,
            live: false,
            print_every: Duration::from_secs(3),
            width: 80,
            grace: Duration::from_secs(10),
            app_ready_timeout: Duration::from_secs(30),
            log_lines: 15,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Processes that exited while the network ran (e.g. `node1 engine`).
    pub died: Vec<String>,
    /// Processes that ignored SIGTERM and were killed at the end.
    pub killed: Vec<String>,
}

impl Outcome {
    /// True when every process ran until it was asked to stop.
    pub fn clean(&self) -> bool {
        self.died.is_empty()
    }
}

/// The `engine` binary: `explicit` if given (it must exist), else the one
/// next to this executable (the same cargo target directory), else the
/// first `engine` on `PATH`.
pub fn find_engine(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Error::EngineNotFound(format!(
                "--engine {}: no such file",
                p.display()
            )))
        };
    }
    let name = format!("engine{}", std::env::consts::EXE_SUFFIX);
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(&name)));
    if let Some(s) = sibling.as_ref().filter(|s| s.is_file()) {
        return Ok(s.clone());
    }
    if let Some(found) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
    {
        return Ok(found);
    }
    Err(Error::EngineNotFound(format!(
        "cannot find the `engine` binary: not next to testnet{} nor on PATH; \
         build it with `cargo build -p engine` or pass --engine PATH",
        sibling
            .and_then(|s| s.parent().map(|d| format!(" (in {})", d.display())))
            .unwrap_or_default()
    )))
}

/// A stop request on each SIGINT (Ctrl-C), SIGTERM or SIGHUP (the
/// terminal closed: the children, in their own process groups, would not
/// get it), from a background thread. Install it before starting children,
/// so that an early signal is not lost.
pub fn stop_signals() -> Result<Receiver<()>, Error> {
    let io = Error::Signals;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io)?;
    let (tx, rx) = std::sync::mpsc::channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // Registered here, before returning.
        let (mut int, mut term, mut hup) = rt
            .block_on(async {
                Ok((
                    signal(SignalKind::interrupt())?,
                    signal(SignalKind::terminate())?,
                    signal(SignalKind::hangup())?,
                ))
            })
            .map_err(io)?;
        std::thread::spawn(move || {
            rt.block_on(async move {
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                        _ = hup.recv() => {}
                    }
                    if tx.send(()).is_err() {
                        return;
                    }
                }
            })
        });
    }
    #[cfg(not(unix))]
    std::thread::spawn(move || {
        rt.block_on(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if tx.send(()).is_err() {
                    return;
                }
            }
        })
    });
    Ok(rx)
}

/// Where a node's round comes from, learned at the first poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoundRoute {
    Unknown,
    Route(&'static str),
    Missing,
}

/// One node under supervision.
struct Running<'a> {
    spec: &'a NodeSpec,
    app: Option<Proc>,
    engine: Option<Proc>,
    round_route: RoundRoute,
}

impl Running<'_> {
    fn procs_mut(&mut self) -> impl Iterator<Item = &mut Proc> {
        self.app.iter_mut().chain(self.engine.iter_mut())
    }

    fn alive(&self) -> bool {
        self.engine.as_ref().is_some_and(Proc::alive)
    }
}

/// One node's cell of the status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Its RPC answered: latest height, and the round where available.
    Height {
        /// Latest committed height.
        height: u64,
        /// Current consensus round, if the node serves it.
        round: Option<u32>,
    },
    /// Running, but its RPC does not answer (yet).
    NoAnswer,
    /// Its process exited.
    Dead,
}

/// The status line: elapsed time, then `name height[ rR]` per node,
/// `?` for a node not answering and `dead` for one that exited; cut to
/// `width` characters.
pub fn status_line(elapsed: Duration, cells: &[(&str, Cell)], width: usize) -> String {
    let parts: Vec<String> = cells
        .iter()
        .map(|(name, cell)| match cell {
            Cell::Height {
                height,
                round: Some(r),
            } => format!("{name} {height} r{r}"),
            Cell::Height {
                height,
                round: None,
            } => format!("{name} {height}"),
            Cell::NoAnswer => format!("{name} ?"),
            Cell::Dead => format!("{name} dead"),
        })
        .collect();
    let line = format!("[{:>4}s] height: {}", elapsed.as_secs(), parts.join(" | "));
    if line.chars().count() <= width {
        line
    } else {
        let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Output: events on their own lines, and the status line either redrawn
/// in place or printed periodically.
struct Screen<'a> {
    out: &'a mut dyn Write,
    live: bool,
    showing: bool,
    last_print: Option<Instant>,
}

impl Screen<'_> {
    fn event(&mut self, text: &str) {
        if self.showing {
            let _ = write!(self.out, "\r\x1b[2K");
            self.showing = false;
        }
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    fn status(&mut self, line: &str, every: Duration) {
        if self.live {
            let _ = write!(self.out, "\r\x1b[2K{line}");
            self.showing = true;
        } else if self.last_print.is_none_or(|t| t.elapsed() >= every) {
            let _ = writeln!(self.out, "{line}");
            self.last_print = Some(Instant::now());
        }
        let _ = self.out.flush();
    }
}

/// Runs `net` until a message (or hang-up) on `stop`, or until every node
/// has died; then stops what still runs. Errors only when a process cannot
/// be started at all (whatever started is stopped first).
pub fn run(
    net: &Network,
    opts: &StartOptions,
    stop: &Receiver<()>,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let mut screen = Screen {
        out,
        live: opts.live,
        showing: false,
        last_print: None,
    };
    let mut nodes: Vec<Running> = net
        .nodes
        .iter()
        .map(|spec| Running {
            spec,
            app: None,
            engine: None,
            round_route: RoundRoute::Unknown,
        })
        .collect();
    let mut outcome = Outcome::default();
    let marker = format!("testnet start at {}", engine::node::now().to_rfc3339());

    let launched = launch(&mut nodes, opts, stop, &marker, &mut screen, &mut outcome);
    let stopped_early = match launched {
        Ok(stopped) => stopped,
        Err(e) => {
            shutdown(&mut nodes, opts, None, &mut screen);
            return Err(e);
        }
    };

    let started = Instant::now();
    let mut next_poll = Instant::now();
    let mut stopping = stopped_early;
    while !stopping {
        match stop.recv_timeout(Duration::from_millis(200)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        reap(&mut nodes, opts, &mut screen, &mut outcome);
        if !nodes.iter().any(Running::alive) {
            screen.event("every node has exited");
            stopping = true;
        } else if Instant::now() >= next_poll {
            next_poll = Instant::now() + Duration::from_secs(1);
            let cells = poll(&mut nodes);
            let named: Vec<(&str, Cell)> = nodes
                .iter()
                .map(|n| n.spec.name.as_str())
                .zip(cells)
                .collect();
            screen.status(
                &status_line(started.elapsed(), &named, opts.width),
                opts.print_every,
            );
        }
    }
    // A second stop request during the grace period means "now".
    outcome.killed = shutdown(&mut nodes, opts, Some(stop), &mut screen);
    if outcome.died.is_empty() {
        screen.event("all nodes stopped");
    } else {
        screen.event(&format!(
            "all nodes stopped; exited while running: {}",
            outcome.died.join(", ")
        ));
    }
    Ok(outcome)
}

/// Starts the apps, waits for them to listen, then starts the engines.
/// Returns true when a stop request arrived meanwhile.
fn launch(
    nodes: &mut [Running],
    opts: &StartOptions,
    stop: &Receiver<()>,
    marker: &str,
    screen: &mut Screen,
    outcome: &mut Outcome,
) -> Result<bool, Error> {
    for n in nodes.iter_mut() {
        if let Some((command, port)) = &n.spec.app {
            let mut cmd = Command::new("sh");
            // In this process's directory, so that relative paths in the
            // command mean what they meant to whoever typed it.
            cmd.arg("-c").arg(command);
            let p = Proc::spawn(
                format!("{} app", n.spec.name),
                cmd,
                &n.spec.home.join("app.log"),
                marker,
            )?;
            screen.event(&format!(
                "{}: app pid {}, port {port}, log {}",
                n.spec.name,
                p.pid(),
                p.log.display()
            ));
            n.app = Some(p);
        }
    }
    for n in nodes.iter_mut() {
        let Some(app) = n.app.as_mut() else {
            continue;
        };
        let port = n.spec.app.as_ref().map_or(0, |(_, port)| *port);
        let deadline = Instant::now() + opts.app_ready_timeout;
        loop {
            if stop.try_recv().is_ok() {
                return Ok(true);
            }
            if let Some(status) = app.poll() {
                report_death(app, status, opts, screen, outcome);
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                screen.event(&format!(
                    "{}: app does not accept connections on port {port} after {}s; \
                     starting its engine anyway",
                    n.spec.name,
                    opts.app_ready_timeout.as_secs()
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for n in nodes.iter_mut() {
        if n.app.as_ref().is_some_and(|a| !a.alive()) {
            screen.event(&format!("{}: not starting its engine", n.spec.name));
            continue;
        }
        let mut cmd = Command::new(&opts.engine);
        cmd.arg("start")
            .arg("--home")
            .arg(&n.spec.home)
            .env_remove("CMTHOME");
        let p = Proc::spawn(
            format!("{} engine", n.spec.name),
            cmd,
            &n.spec.home.join("engine.log"),
            marker,
        )?;
        let role = if n.spec.validator {
            "validator"
        } else {
            "full node"
        };
        screen.event(&format!(
            "{}: {role}, engine pid {}, rpc http://{}, log {}",
            n.spec.name,
            p.pid(),
            n.spec.rpc,
            p.log.display()
        ));
        n.engine = Some(p);
    }
    Ok(false)
}

/// Reaps exited children and reports each as dead.
fn reap(nodes: &mut [Running], opts: &StartOptions, screen: &mut Screen, outcome: &mut Outcome) {
    for n in nodes.iter_mut() {
        for p in n.procs_mut() {
            if let Some(status) = p.poll() {
                report_death(p, status, opts, screen, outcome);
            }
        }
    }
}

fn report_death(
    p: &Proc,
    status: std::process::ExitStatus,
    opts: &StartOptions,
    screen: &mut Screen,
    outcome: &mut Outcome,
) {
    let mut text = format!(
        "{} (pid {}) exited ({status}); the other nodes keep running. Last lines of {}:",
        p.label,
        p.pid(),
        p.log.display()
    );
    for line in p.log_tail(opts.log_lines) {
        text.push_str("\n  | ");
        text.push_str(&line);
    }
    screen.event(&text);
    outcome.died.push(p.label.clone());
}

/// Each node's cell, from its RPC (all nodes at once, each call bounded).
fn poll(nodes: &mut [Running]) -> Vec<Cell> {
    const TIMEOUT: Duration = Duration::from_millis(700);
    std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter_mut()
            .map(|n| {
                scope.spawn(move || {
                    if !n.alive() {
                        return Cell::Dead;
                    }
                    let addr = n.spec.rpc;
                    let Some(info) = rpc::get(addr, "/status", TIMEOUT)
                        .ok()
                        .and_then(|s| rpc::sync_info(&s))
                    else {
                        return Cell::NoAnswer;
                    };
                    if n.round_route == RoundRoute::Unknown {
                        n.round_route = ["/consensus_state", "/dump_consensus_state"]
                            .into_iter()
                            .find(|r| {
                                !matches!(rpc::get(addr, r, TIMEOUT), Err(rpc::CallError::NoRoute))
                            })
                            .map_or(RoundRoute::Missing, RoundRoute::Route);
                    }
                    let round = match n.round_route {
                        RoundRoute::Route(r) => {
                            rpc::get(addr, r, TIMEOUT).ok().and_then(|v| rpc::round(&v))
                        }
                        _ => None,
                    };
                    Cell::Height {
                        height: info.height,
                        round,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Cell::NoAnswer))
            .collect()
    })
}

/// Stops the engines, then the apps they were using. Returns the labels
/// of processes that had to be killed.
fn shutdown(
    nodes: &mut [Running],
    opts: &StartOptions,
    hurry: Option<&Receiver<()>>,
    screen: &mut Screen,
) -> Vec<String> {
    let running = nodes
        .iter()
        .flat_map(|n| n.app.iter().chain(n.engine.iter()))
        .filter(|p| p.alive())
        .count();
    if running > 0 {
        screen.event(&format!(
            "stopping {running} process{} (SIGTERM)…",
            if running == 1 { "" } else { "es" }
        ));
    }
    let mut killed = {
        let mut engines: Vec<&mut Proc> =
            nodes.iter_mut().filter_map(|n| n.engine.as_mut()).collect();
        stop_all(&mut engines, opts.grace, hurry)
    };
    let mut apps: Vec<&mut Proc> = nodes.iter_mut().filter_map(|n| n.app.as_mut()).collect();
    killed.extend(stop_all(&mut apps, opts.grace, hurry));
    for label in &killed {
        screen.event(&format!(
            "{label} did not stop within {}s of SIGTERM; killed",
            opts.grace.as_secs()
        ));
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_shows_heights_rounds_and_dead_nodes() {
        let cells = [
            (
                "node0",
                Cell::Height {
                    height: 12,
                    round: None,
                },
            ),
            (
                "node1",
                Cell::Height {
                    height: 11,
                    round: Some(2),
                },
            ),
            ("node2", Cell::NoAnswer),
            ("node3", Cell::Dead),
        ];
        assert_eq!(
            status_line(Duration::from_secs(7), &cells, 200),
            "[   7s] height: node0 12 | node1 11 r2 | node2 ? | node3 dead"
        );
        let cut = status_line(Duration::from_secs(7), &cells, 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn an_explicit_engine_path_must_exist() {
        let err = find_engine(Some(Path::new("/nonexistent/engine"))).expect_err("missing");
        assert!(
            err.to_string().contains("--engine /nonexistent/engine"),
            "{err}"
        );
    }

    #[test]
    fn live_output_redraws_and_periodic_output_prints_lines() {
        let mut buf = Vec::new();
        let mut s = Screen {
            out: &mut buf,
            live: true,
            showing: false,
            last_print: None,
        };
        s.status("a", Duration::ZERO);
        s.status("b", Duration::ZERO);
        s.event("died");
        assert_eq!(
            String::from_utf8(buf).expect("utf8"),
            "\r\x1b[2Ka\r\x1b[2Kb\r\x1b[2Kdied\n"
        );

        let mut buf = Vec::new();
        let mut s = Screen {
            out: &mut buf,
            live: false,
            showing: false,
            last_print: None,
        };
        s.status("a", Duration::from_secs(60));
        s.status("b", Duration::from_secs(60));
        assert_eq!(
            String::from_utf8(buf).expect("utf8"),
            "a\n",
            "one line per period"
        );
    }
}
