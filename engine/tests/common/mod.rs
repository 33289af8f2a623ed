//! What the end-to-end tests share: real `engine` and app processes, free
//! ports, and plain-HTTP RPC calls (no client library between the test and
//! the bytes the node serves).

#![allow(dead_code)] // Each test binary uses a different part.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) when the test ends, pass or fail.
pub struct Process(pub Child);

impl Process {
    /// kill -9 and reap.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The node's log file (stderr, appended across restarts).
pub fn log_path(home: &Path) -> PathBuf {
    home.with_extension("log")
}

/// The node's log so far.
pub fn log(home: &Path) -> String {
    std::fs::read_to_string(log_path(home)).unwrap_or_default()
}

/// `engine VERB... --home HOME`'s trimmed stdout (e.g. `show-node-id`).
pub fn engine_says(home: &Path, verb: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(verb)
        .arg("--home")
        .arg(home)
        .env_remove("CMTHOME")
        .output()
        .expect("engine runs");
    assert!(out.status.success(), "engine {verb:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `engine start --home HOME --rpc.laddr tcp://127.0.0.1:PORT EXTRA...`;
/// p2p listens on a port the OS picks unless EXTRA names `--p2p.laddr`.
pub fn start_node(home: &Path, port: u16, extra: &[&str]) -> Process {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(home))
        .expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["start", "--home"])
        .arg(home)
        .args(["--rpc.laddr", &format!("tcp://127.0.0.1:{port}")])
        .args(if extra.contains(&"--p2p.laddr") {
            &[][..]
        } else {
            &["--p2p.laddr", "tcp://127.0.0.1:0"][..]
        })
        .args(extra)
        .env_remove("CMTHOME")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("engine starts");
    Process(child)
}

/// GET `path` from the RPC and parse the JSON body.
pub fn get(port: u16, path: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let body = raw.split_once("\r\n\r\n")?.1;
    // Chunked or plain: the JSON object spans the first '{' to the last '}'.
    let json = &body[body.find('{')?..=body.rfind('}')?];
    serde_json::from_str(json).ok()
}

/// The latest block height from `/status`.
pub fn height(port: u16) -> Option<u64> {
    get(port, "/status")?["result"]["sync_info"]["latest_block_height"]
        .as_str()?
        .parse()
        .ok()
}

/// Waits (up to a minute) until the node reports at least `at_least`.
pub fn wait_for_height(port: u16, at_least: u64, home: &Path) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(h) = height(port).filter(|h| *h >= at_least) {
            return h;
        }
        if Instant::now() > deadline {
            panic!(
                "no height {at_least} within a minute; node log:\n{}",
                log(home)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (up to a minute) until `cond` holds, or panics with `what` and the log.
pub fn wait_until(what: &str, home: &Path, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        if Instant::now() > deadline {
            panic!("{what}: not within a minute; node log:\n{}", log(home));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The kvstore's value for `key` (base64, as the RPC renders it).
pub fn query(port: u16, key: &str) -> Option<String> {
    let r = get(port, &format!("/abci_query?data=%22{key}%22"))?;
    r["result"]["response"]["value"].as_str().map(String::from)
}

/// `broadcast_tx_commit` of `tx`: the height it was committed at, if the
/// node acknowledged it with code 0 for both CheckTx and FinalizeBlock.
pub fn commit_tx(port: u16, tx: &str) -> Option<u64> {
    let r = get(port, &format!("/broadcast_tx_commit?tx=%22{tx}%22"))?;
    let result = &r["result"];
    if result["check_tx"]["code"] != 0 || result["tx_result"]["code"] != 0 {
        return None;
    }
    result["height"].as_str()?.parse().ok().filter(|h| *h > 0)
}

/// The Python kvstore as a separate process, once it listens.
pub fn python_app(addr: &str) -> Process {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kvstore-py/kvstore.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args(["--addr", addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs (CI machines have Python 3.11)");
    // Wait for its "listening" line.
    if let Some(out) = child.stdout.as_mut() {
        let mut byte = [0u8; 1];
        let mut line = Vec::new();
        while out.read(&mut byte).map(|n| n == 1).unwrap_or(false) && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        assert!(
            String::from_utf8_lossy(&line).contains("listening"),
            "{}",
            String::from_utf8_lossy(&line)
        );
    }
    Process(child)
}

/// The Rust kvstore example's binary, built by `cargo test --workspace`
/// (its package has tests); built here when only this package is tested.
pub fn kvstore_binary() -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/kvstore
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("kvstore");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "kvstore", "--bin", "kvstore"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build -p kvstore");
    }
    bin
}

/// The Rust kvstore (`cargo run -p kvstore -- --addr tcp://127.0.0.1:PORT`)
/// as a separate process, once it accepts connections.
pub fn rust_app(port: u16) -> Process {
    let child = Command::new(kvstore_binary())
        .args(["--addr", &format!("tcp://127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kvstore starts");
    let process = Process(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "kvstore did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    process
}

/// `engine init --home HOME`, then sets each `key = value` of config.toml
/// (keys unique across sections, e.g. `timeout_commit`; values as TOML).
pub fn init_home(home: &Path, settings: &[(&str, &str)]) {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["init", "--home"])
        .arg(home)
        .env_remove("CMTHOME")
        .output()
        .expect("engine init runs");
    assert!(out.status.success(), "{out:?}");
    let path = home.join("config/config.toml");
    let mut text = std::fs::read_to_string(&path).expect("config.toml");
    for (key, value) in settings {
        let prefix = format!("{key} = ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("config.toml has no `{key}`"))
            .to_string();
        text = text.replacen(&line, &format!("{prefix}{value}"), 1);
    }
    std::fs::write(&path, text).expect("config.toml written");
}

/// Serves `app` over ABCI on a free TCP port from a thread of the test
/// process (a real socket; the app's code is the test's); returns its
/// address once it listens.
pub fn serve_in_thread<A: abci::server::Application>(app: std::sync::Arc<A>) -> String {
    let proxy = format!("tcp://127.0.0.1:{}", free_port());
    let addr = abci::Addr::parse(&proxy).expect("addr");
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let server = abci::server::Server::bind(&addr, app, Default::default())
                .await
                .expect("bind");
            let _ = ready_tx.send(());
            let _ = server.run().await;
        });
    });
    ready.recv().expect("the app listens");
    proxy
}

type Hook<T> = Box<dyn Fn(&mut T) + Send + Sync>;
type CheckTxHook =
    Box<dyn Fn(&abci::proto::RequestCheckTx, &mut abci::proto::ResponseCheckTx) + Send + Sync>;

/// The Rust kvstore with hooks that bend one call, for tests of how the
/// engine copes with apps that are not perfect. A hook edits the request
/// before the kvstore sees it (`*_request`) or the response after
/// (`*_response`).
#[derive(Default)]
pub struct HookedKvStore {
    /// The app itself.
    pub inner: kvstore::KvStore,
    /// Edits each CheckTx response (it sees the request too).
    pub check_tx: Option<CheckTxHook>,
    /// Edits each PrepareProposal request.
    pub prepare_request: Option<Hook<abci::proto::RequestPrepareProposal>>,
    /// Edits each FinalizeBlock response.
    pub finalize_response: Option<Hook<abci::proto::ResponseFinalizeBlock>>,
    /// A recheck of a tx starting with this prefix waits for a permit of
    /// the semaphore (taken for good) before answering.
    pub recheck_gate: Option<(Vec<u8>, std::sync::Arc<tokio::sync::Semaphore>)>,
}

impl abci::server::Application for HookedKvStore {
    async fn info(&self, r: abci::proto::RequestInfo) -> abci::proto::ResponseInfo {
        self.inner.info(r).await
    }
    async fn query(&self, r: abci::proto::RequestQuery) -> abci::proto::ResponseQuery {
        self.inner.query(r).await
    }
    async fn check_tx(&self, r: abci::proto::RequestCheckTx) -> abci::proto::ResponseCheckTx {
        if let Some((prefix, gate)) = &self.recheck_gate {
            if r.r#type == abci::proto::CheckTxType::Recheck as i32 && r.tx.starts_with(prefix) {
                if let Ok(permit) = gate.acquire().await {
                    permit.forget();
                }
            }
        }
        let hook = self.check_tx.as_ref();
        let req = hook.map(|_| r.clone());
        let mut resp = self.inner.check_tx(r).await;
        if let (Some(hook), Some(req)) = (hook, req) {
            hook(&req, &mut resp);
        }
        resp
    }
    async fn init_chain(&self, r: abci::proto::RequestInitChain) -> abci::proto::ResponseInitChain {
        self.inner.init_chain(r).await
    }
    async fn prepare_proposal(
        &self,
        mut r: abci::proto::RequestPrepareProposal,
    ) -> abci::proto::ResponsePrepareProposal {
        if let Some(hook) = &self.prepare_request {
            hook(&mut r);
        }
        self.inner.prepare_proposal(r).await
    }
    async fn process_proposal(
        &self,
        r: abci::proto::RequestProcessProposal,
    ) -> abci::proto::ResponseProcessProposal {
        self.inner.process_proposal(r).await
    }
    async fn finalize_block(
        &self,
        r: abci::proto::RequestFinalizeBlock,
    ) -> abci::proto::ResponseFinalizeBlock {
        let mut resp = self.inner.finalize_block(r).await;
        if let Some(hook) = &self.finalize_response {
            hook(&mut resp);
        }
        resp
    }
    async fn commit(&self, r: abci::proto::RequestCommit) -> abci::proto::ResponseCommit {
        self.inner.commit(r).await
    }
}
