//! The engine's side of one ABCI connection.
//!
//! A [`Client`] owns one socket to the application and two tasks: a writer
//! that drains a queue of encoded requests into a buffered socket writer, and
//! a reader that matches each response, in order, to the oldest request still
//! waiting. Like CometBFT's socket client, requests sit in the buffer until a
//! `RequestFlush` is queued; only then are they written out (Go ABCI servers
//! likewise only flush their replies when they get a Flush).
//!
//! * [`Client::call`] and the typed methods ([`Client::check_tx`], …) send one
//!   request followed by a Flush and await its response.
//! * [`Client::send`] queues a request without flushing and returns a
//!   [`PendingResponse`]; any number may be in flight, and they are answered
//!   in the order sent. [`Client::flush`] pushes them out and waits until all
//!   are answered. This is the mempool connection's CheckTx stream.
//!
//! Every response is checked against its request's kind. Anything the
//! application does wrong (garbage, a response of the wrong kind, an
//! exception, closing the socket) fails the connection with a typed
//! [`Error`], handed to every request waiting on it and to every later one;
//! the engine decides what to do (CometBFT stops the node). Nothing the
//! application sends can make this module panic.
//!
//! The engine opens one client per ABCI connection (consensus, mempool,
//! query, snapshot). A `Client` is cheap to clone; clones share the
//! connection, which closes when the last clone is dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tendermint_proto::v0_38::abci::{
    request, response, Request, RequestApplySnapshotChunk, RequestCheckTx, RequestCommit,
    RequestEcho, RequestExtendVote, RequestFinalizeBlock, RequestFlush, RequestInfo,
    RequestInitChain, RequestListSnapshots, RequestLoadSnapshotChunk, RequestOfferSnapshot,
    RequestPrepareProposal, RequestProcessProposal, RequestQuery, RequestVerifyVoteExtension,
    Response, ResponseApplySnapshotChunk, ResponseCheckTx, ResponseCommit, ResponseEcho,
    ResponseExtendVote, ResponseFinalizeBlock, ResponseInfo, ResponseInitChain,
    ResponseListSnapshots, ResponseLoadSnapshotChunk, ResponseOfferSnapshot,
    ResponsePrepareProposal, ResponseProcessProposal, ResponseQuery, ResponseVerifyVoteExtension,
};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::codec::{self, request_kind, response_kind, FrameReader, DEFAULT_MAX_FRAME_SIZE};
use crate::transport::{self, ReadHalf, WriteHalf};
use crate::{Addr, Error, Result};

/// Requests queued for the writer task before [`Client::send`] waits.
const QUEUE_SIZE: usize = 1024;
/// The socket writer's buffer.
const WRITE_BUFFER: usize = 64 * 1024;

/// Settings of one client connection.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long a request may wait for its response, from the moment it is
    /// queued; `None` waits forever, as CometBFT does. A timed-out request's
    /// late response is still consumed in order, so the connection stays
    /// usable.
    pub request_timeout: Option<Duration>,
    /// How long dialing may take; `None` leaves it to the operating system.
    pub connect_timeout: Option<Duration>,
    /// The largest response frame accepted, in bytes.
    pub max_frame_size: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: None,
            connect_timeout: Some(Duration::from_secs(10)),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

/// A request waiting for its response.
struct Waiter {
    kind: &'static str,
    /// `None` for the Flush requests the client adds by itself.
    reply: Option<oneshot::Sender<Result<Response>>>,
}

/// What the reader task and the callers share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Requests sent and not yet answered, oldest first.
    waiting: VecDeque<Waiter>,
    /// Set once the connection has failed; every later call gets it.
    failed: Option<Error>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails the connection: every waiting request and every later one gets
    /// `error` (the first failure wins).
    fn fail(&self, error: Error) {
        let mut state = self.lock();
        let error = state.failed.get_or_insert(error).clone();
        for waiter in state.waiting.drain(..) {
            if let Some(reply) = waiter.reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// One encoded request for the writer task.
struct Outgoing {
    frame: Vec<u8>,
    flush: bool,
}

/// Aborts the connection's tasks when the last [`Client`] clone is dropped.
struct Tasks {
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// One ABCI connection from the engine to the application; see the module
/// docs.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Outgoing>,
    config: ClientConfig,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The response to a request sent with [`Client::send`], to be awaited with
/// [`PendingResponse::wait`] once a flush has pushed the request out.
#[derive(Debug)]
#[must_use = "a pending response does nothing unless waited for"]
pub struct PendingResponse {
    kind: &'static str,
    reply: oneshot::Receiver<Result<Response>>,
    deadline: Option<(tokio::time::Instant, Duration)>,
}

impl PendingResponse {
    /// The kind of the request (`"check_tx"`, …).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Waits for the response. It only comes after a Flush (from
    /// [`Client::flush`] or any [`Client::call`]) has pushed the request out.
    pub async fn wait(self) -> Result<Response> {
        let closed = || Error::Closed {
            reason: "the client was dropped".into(),
        };
        match self.deadline {
            None => self.reply.await.unwrap_or_else(|_| Err(closed())),
            Some((deadline, after)) => match tokio::time::timeout_at(deadline, self.reply).await {
                Ok(reply) => reply.unwrap_or_else(|_| Err(closed())),
                Err(_) => Err(Error::Timeout {
                    request: self.kind,
                    after,
                }),
            },
        }
    }
}

impl Client {
    /// Connects to `address` (`tcp://host:port`, `unix:///path` or
    /// `host:port`) with the default [`ClientConfig`].
    pub async fn connect(address: &str) -> Result<Self> {
        Self::connect_with(&Addr::parse(address)?, ClientConfig::default()).await
    }

    /// Connects to `addr` with `config`.
    pub async fn connect_with(addr: &Addr, config: ClientConfig) -> Result<Self> {
        let connecting = transport::connect(addr);
        let (read, write) = match config.connect_timeout {
            None => connecting.await?,
            Some(after) => match tokio::time::timeout(after, connecting).await {
                Ok(connected) => connected?,
                Err(_) => {
                    return Err(Error::Io(Arc::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connecting to {addr} took longer than {after:?}"),
                    ))))
                }
            },
        };
        Ok(Self::start(read, write, config))
    }

    fn start(read: ReadHalf, write: WriteHalf, config: ClientConfig) -> Self {
        let shared = Arc::new(Shared::default());
        let (queue, outgoing) = mpsc::channel(QUEUE_SIZE);
        let reader = FrameReader::new(read, config.max_frame_size);
        let reader = tokio::spawn(read_responses(reader, shared.clone()));
        let writer = tokio::spawn(write_requests(write, outgoing, shared.clone()));
        Self {
            shared,
            queue,
            config,
            _tasks: Arc::new(Tasks { reader, writer }),
        }
    }

    /// The settings this client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The error that failed the connection, if it has failed.
    pub fn error(&self) -> Option<Error> {
        self.shared.lock().failed.clone()
    }

    /// Queues `request` and `flush` behind it, returning the receiver of its
    /// response (or `None` for the client's own Flush requests).
    async fn enqueue(&self, request: &Request, own_flush: bool) -> Result<PendingResponse> {
        let kind = request
            .value
            .as_ref()
            .map(request_kind)
            .ok_or(Error::EmptyRequest)?;
        let frame = codec::frame(request);
        let deadline = self
            .config
            .request_timeout
            .map(|after| (tokio::time::Instant::now() + after, after));
        let closed = || Error::Closed {
            reason: "the connection's writer has stopped".into(),
        };
        // Reserve room first so that nothing below waits: the order in which
        // waiters are recorded is then exactly the order of the frames.
        let permit = self.queue.reserve().await.map_err(|_| closed())?;
        let (reply, receiver) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if let Some(error) = &state.failed {
                return Err(error.clone());
            }
            state.waiting.push_back(Waiter {
                kind,
                reply: (!own_flush).then_some(reply),
            });
            permit.send(Outgoing {
                frame,
                flush: kind == "flush",
            });
        }
        Ok(PendingResponse {
            kind,
            reply: receiver,
            deadline,
        })
    }

    /// Queues `request` without flushing. The response arrives after a
    /// flush; responses come back in the order requests were sent.
    pub async fn send(&self, request: Request) -> Result<PendingResponse> {
        self.enqueue(&request, false).await
    }

    /// Writes out every queued request followed by a Flush, and waits for
    /// the Flush's answer, so that every earlier request has been answered
    /// when it returns.
    pub async fn flush(&self) -> Result<()> {
        let flush = Request {
            value: Some(request::Value::Flush(RequestFlush {})),
        };
        self.send(flush).await?.wait().await.map(drop)
    }

    /// Sends `request` and a Flush, and waits for the response, which is
    /// checked to be of the request's kind.
    pub async fn call(&self, request: Request) -> Result<Response> {
        let pending = self.send(request).await?;
        let flush = Request {
            value: Some(request::Value::Flush(RequestFlush {})),
        };
        // A Flush answers nobody; the reader checks and drops its response.
        let _ = self.enqueue(&flush, true).await?;
        pending.wait().await
    }

    /// Sends an echo and returns the application's echo.
    pub async fn echo(&self, message: impl Into<String>) -> Result<ResponseEcho> {
        let request = RequestEcho {
            message: message.into(),
        };
        match self.call(wrap(request::Value::Echo(request))).await?.value {
            Some(response::Value::Echo(echo)) => Ok(echo),
            other => Err(unexpected("echo", other)),
        }
    }

    /// Commits the finalized block's state; the consensus connection's last
    /// call for a height.
    pub async fn commit(&self) -> Result<ResponseCommit> {
        match self
            .call(wrap(request::Value::Commit(RequestCommit {})))
            .await?
            .value
        {
            Some(response::Value::Commit(commit)) => Ok(commit),
            other => Err(unexpected("commit", other)),
        }
    }
}

fn wrap(value: request::Value) -> Request {
    Request { value: Some(value) }
}

fn unexpected(expected: &'static str, got: Option<response::Value>) -> Error {
    Error::UnexpectedResponse {
        expected,
        got: got.as_ref().map_or("none", response_kind),
    }
}

/// Defines a typed method for each request taking its request message.
macro_rules! typed_calls {
    ($($(#[$doc:meta])* $method:ident($variant:ident, $request:ty) -> $response:ty;)*) => {
        impl Client {
            $(
                $(#[$doc])*
                pub async fn $method(&self, request: $request) -> Result<$response> {
                    match self.call(wrap(request::Value::$variant(request))).await?.value {
                        Some(response::Value::$variant(response)) => Ok(response),
                        other => Err(unexpected(stringify!($method), other)),
                    }
                }
            )*
        }
    };
}

typed_calls! {
    /// Asks for the application's last height and app hash (query connection).
    info(Info, RequestInfo) -> ResponseInfo;
    /// Hands the genesis to the application (consensus connection, once).
    init_chain(InitChain, RequestInitChain) -> ResponseInitChain;
    /// Queries the application's state (query connection).
    query(Query, RequestQuery) -> ResponseQuery;
    /// Checks one transaction for the mempool (mempool connection). To keep
    /// many in flight, use [`Client::send`] and [`Client::flush`].
    check_tx(CheckTx, RequestCheckTx) -> ResponseCheckTx;
    /// Lists the application's snapshots (snapshot connection).
    list_snapshots(ListSnapshots, RequestListSnapshots) -> ResponseListSnapshots;
    /// Offers a snapshot to restore from (snapshot connection).
    offer_snapshot(OfferSnapshot, RequestOfferSnapshot) -> ResponseOfferSnapshot;
    /// Loads one chunk of a snapshot (snapshot connection).
    load_snapshot_chunk(LoadSnapshotChunk, RequestLoadSnapshotChunk) -> ResponseLoadSnapshotChunk;
    /// Applies one chunk of a snapshot (snapshot connection).
    apply_snapshot_chunk(ApplySnapshotChunk, RequestApplySnapshotChunk) -> ResponseApplySnapshotChunk;
    /// Lets the proposer's application shape its block (consensus connection).
    prepare_proposal(PrepareProposal, RequestPrepareProposal) -> ResponsePrepareProposal;
    /// Asks the application to accept or reject a proposal (consensus connection).
    process_proposal(ProcessProposal, RequestProcessProposal) -> ResponseProcessProposal;
    /// Asks for a vote extension for a precommit (consensus connection).
    extend_vote(ExtendVote, RequestExtendVote) -> ResponseExtendVote;
    /// Asks the application to verify another validator's vote extension (consensus connection).
    verify_vote_extension(VerifyVoteExtension, RequestVerifyVoteExtension) -> ResponseVerifyVoteExtension;
    /// Delivers a decided block (consensus connection).
    finalize_block(FinalizeBlock, RequestFinalizeBlock) -> ResponseFinalizeBlock;
}

/// The writer task: frames go into the buffer, and the buffer goes to the
/// socket when a Flush is written.
async fn write_requests(
    write: WriteHalf,
    mut outgoing: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, write);
    while let Some(Outgoing { frame, flush }) = outgoing.recv().await {
        let mut written = writer.write_all(&frame).await;
        if flush && written.is_ok() {
            written = writer.flush().await;
        }
        if let Err(error) = written {
            tracing::warn!(%error, "ABCI client: writing to the application failed");
            shared.fail(error.into());
            return;
        }
    }
    // Every client handle is gone: say goodbye properly.
    let _ = writer.shutdown().await;
}

/// The reader task: each response goes to the oldest waiting request.
async fn read_responses(mut reader: FrameReader<ReadHalf>, shared: Arc<Shared>) {
    let error = loop {
        let response: Response = match reader.read().await {
            Ok(Some(response)) => response,
            Ok(None) => {
                break Error::Closed {
                    reason: "the application closed the connection".into(),
                }
            }
            Err(error) => break error,
        };
        let got = response.value.as_ref().map_or("none", response_kind);
        let mut state = shared.lock();
        let Some(waiter) = state.waiting.pop_front() else {
            break Error::UnexpectedResponse {
                expected: "none (no request in flight)",
                got,
            };
        };
        let outcome = match response.value {
            Some(response::Value::Exception(exception)) => Err(Error::Exception(exception.error)),
            _ if got != waiter.kind => Err(Error::UnexpectedResponse {
                expected: waiter.kind,
                got,
            }),
            _ => Ok(response),
        };
        match outcome {
            Ok(response) => {
                if let Some(reply) = waiter.reply {
                    // The caller may have timed out and gone: that is fine.
                    let _ = reply.send(Ok(response));
                }
            }
            Err(error) => {
                // The stream is out of step with the requests (or the
                // application gave up): this connection is done.
                state.waiting.push_front(waiter);
                break error;
            }
        }
    };
    tracing::warn!(%error, "ABCI client: connection failed");
    shared.fail(error);
}
