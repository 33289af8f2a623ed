//! Child processes of `testnet start`: each in its own process group (so a
//! terminal's Ctrl-C reaches only `testnet`, which then stops the children
//! in order, and so a shell-wrapped app is signalled with everything it
//! started), output appended to a log file, stopped with SIGTERM then
//! SIGKILL.
//!
//! Signals are sent with the system's `kill` command: the standard library
//! can only SIGKILL, and the workspace forbids `unsafe` (so no libc calls).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::{io_err, Error};

/// A supervised child process.
pub(crate) struct Proc {
    /// What it is, e.g. `node0 engine`.
    pub label: String,
    /// Its log file.
    pub log: PathBuf,
    child: Child,
    /// Set once the process has exited and been reaped.
    pub exit: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` in a new process group, stdin closed, stdout and stderr
    /// appended to `log` after a line marking this start.
    pub fn spawn(label: String, mut cmd: Command, log: &Path, marker: &str) -> Result<Proc, Error> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io_err(log))?;
        writeln!(file, "===== {marker} =====").map_err(io_err(log))?;
        let err_file = file.try_clone().map_err(io_err(log))?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err_file);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            what: format!("{label} ({:?})", cmd.get_program()),
            source,
        })?;
        Ok(Proc {
            label,
            log: log.to_path_buf(),
            child,
            exit: None,
        })
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has not exited yet (as of the last [`Proc::poll`]).
    pub fn alive(&self) -> bool {
        self.exit.is_none()
    }

    /// Reaps the process if it exited; returns its status the first time
    /// only.
    pub fn poll(&mut self) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return None;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                Some(status)
            }
            Ok(None) => None,
            // try_wait fails only if the child was already reaped, which
            // only this type does; count it as gone.
            Err(_) => {
                self.exit = Some(ExitStatus::default());
                self.exit
            }
        }
    }

    /// Sends `signal` (`TERM`, `KILL`) to the process's group; falls back
    /// to the standard library's kill (SIGKILL, this process only) when the
    /// `kill` command is unavailable.
    pub fn signal(&mut self, signal: &str) {
        if !self.alive() {
            return;
        }
        let group = format!("-{}", self.pid());
        let sent = Command::new("kill")
            .args(["-s", signal, "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !sent {
            let _ = self.child.kill();
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> Vec<String> {
        read_tail(&self.log, 64 * 1024)
            .map(|text| tail_lines(&text, lines))
            .unwrap_or_default()
    }
}

/// Stops `procs`: SIGTERM to each, then waits up to `grace` for all to
/// exit, then SIGKILL to the rest; a message on `hurry` (a second Ctrl-C)
/// cuts the grace period short. Returns the labels of those that had to be
/// killed.
pub(crate) fn stop_all(
    procs: &mut [&mut Proc],
    grace: Duration,
    hurry: Option<&Receiver<()>>,
) -> Vec<String> {
    for p in procs.iter_mut() {
        p.poll();
        p.signal("TERM");
    }
    let deadline = Instant::now() + grace;
    loop {
        for p in procs.iter_mut() {
            p.poll();
        }
        if procs.iter().all(|p| !p.alive()) {
            return Vec::new();
        }
        let hurried = hurry.is_some_and(|h| h.try_recv().is_ok());
        if hurried || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut killed = Vec::new();
    for p in procs.iter_mut().filter(|p| p.alive()) {
        p.signal("KILL");
        // After SIGKILL the wait is immediate.
        if let Ok(status) = p.child.wait() {
            p.exit = Some(status);
        }
        killed.push(p.label.clone());
    }
    killed
}

/// Up to the last `max` bytes of `path`, as text.
fn read_tail(path: &Path, max: u64) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    f.take(max).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `n` non-empty lines of `text`.
pub(crate) fn tail_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_non_empty_lines() {
        assert_eq!(tail_lines("a\nb\n\nc\n", 2), vec!["b", "c"]);
        assert_eq!(tail_lines("a\n", 5), vec!["a"]);
        assert!(tail_lines("", 3).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn stops_a_process_group_with_sigterm_and_logs_its_output() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join("x.log");
        // A shell that starts a grandchild: the group signal reaches both.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hello; sleep 30 & wait"]);
        let mut p = Proc::spawn("x".into(), cmd, &log, "start").expect("spawn");
        std::thread::sleep(Duration::from_millis(200));
        assert!(p.poll().is_none() && p.alive());
        let killed = stop_all(&mut [&mut p], Duration::from_secs(5), None);
        assert!(killed.is_empty(), "SIGTERM was enough");
        assert!(!p.alive());
        assert_eq!(p.log_tail(5), vec!["===== start =====", "hello"]);
    }

    #[cfg(unix)]
    #[test]
    fn kills_what_ignores_sigterm_after_the_grace_period() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ]);
        let log = tmp.path().join("y.log");
        let mut p = Proc::spawn("y".into(), cmd, &log, "start").expect("spawn");
        // Wait until the trap is installed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !p.log_tail(2).iter().any(|l| l == "ready") {
            assert!(Instant::now() < deadline, "sh did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = stop_all(&mut [&mut p], Duration::from_millis(300), None);
        assert_eq!(killed, vec!["y"]);
        assert!(!p.alive());
    }
}
