//! Helpers shared by the testnet crate's end-to-end tests: the binaries
//! (built into this profile's directory), free port ranges, `testnet init`,
//! signals and RPC polling.
#![allow(dead_code)] // Each test file uses its own subset.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn testnet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_testnet"));
    c.env_remove("CMTHOME");
    c
}

/// target/<profile>, where this test's binaries live.
pub fn profile_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_testnet"))
        .parent()
        .expect("target/<profile>")
        .to_path_buf()
}

/// Builds `package`'s binary `bin` into this profile's directory (once per
/// test run; a no-op when it is up to date), so that `testnet start` finds
/// the engine next to itself as it does in a real target directory.
pub fn built(package: &str, bin: &str) -> PathBuf {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin]);
    if profile_dir().ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "cargo build -p {package} --bin {bin}");
    profile_dir().join(bin)
}

pub fn engine_binary() -> &'static Path {
    static ENGINE: OnceLock<PathBuf> = OnceLock::new();
    ENGINE.get_or_init(|| built("engine", "engine"))
}

pub fn kvstore_binary() -> &'static Path {
    static KVSTORE: OnceLock<PathBuf> = OnceLock::new();
    KVSTORE.get_or_init(|| built("kvstore", "kvstore"))
}

/// A base port whose whole range (10 ports per node) is free now.
pub fn base_port(nodes: u16) -> u16 {
    static NEXT: Mutex<u16> = Mutex::new(0);
    let mut next = NEXT.lock().expect("lock");
    if *next == 0 {
        *next = 20_000 + (std::process::id() % 2_000) as u16 * 10;
    }
    loop {
        let base = *next;
        *next += 10 * nodes + 10;
        if (base..base + 10 * nodes).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}

pub fn init(dir: &Path, args: &[&str]) -> Output {
    testnet()
        .arg("init")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("testnet init runs")
}

pub fn init_ok(dir: &Path, args: &[&str]) {
    let out = init(dir, args);
    assert!(out.status.success(), "{out:?}");
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `engine <verb> --home HOME`'s stdout.
pub fn engine_says(verb: &str, home: &Path) -> String {
    let out = Command::new(engine_binary())
        .arg(verb)
        .arg("--home")
        .arg(home)
        .env_remove("CMTHOME")
        .output()
        .expect("engine runs");
    assert!(out.status.success(), "engine {verb}: {out:?}");
    text(&out.stdout).trim().to_string()
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether any live process is in process group `pgid` (`start` puts each
/// child in its own group, so this covers what the child started).
pub fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            return false;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name: state, ppid, pgrp, ...
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        fields.len() > 2 && fields[2] == pgid.to_string() && alive(pid)
    })
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -s {sig} {pid}");
}

/// The latest height node `rpc_port` reports, if it answers.
pub fn height(rpc_port: u16) -> Option<u64> {
    let addr = ([127, 0, 0, 1], rpc_port).into();
    let status = testnet::net::rpc::get(addr, "/status", Duration::from_secs(2)).ok()?;
    testnet::net::rpc::sync_info(&status).map(|s| s.height)
}

pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
