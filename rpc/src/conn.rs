//! Accepting and driving connections the way CometBFT's RPC server does:
//! at most `max_open_connections` at once (further clients wait in the
//! listen backlog, as with Go's `netutil.LimitListener`, rather than being
//! refused), a read timeout for each request's head and body, a write
//! timeout for each response, a header size limit, and request-targets
//! read as Go reads them ([`crate::target`]).
//!
//! Owns the accept loop and the per-connection I/O; everything about
//! requests and responses stays in [`crate::server`]. It must never read
//! or change a request body.
//!
//! How the timeouts map onto Go's `http.Server` (CometBFT sets
//! `ReadTimeout = ReadHeaderTimeout = 10s`, `WriteTimeout = 10s`, raised by
//! the node above `timeout_broadcast_tx_commit`):
//! - head: hyper's header timeout, which runs from the moment the server
//!   waits for a request (connection open, or end of the previous
//!   response) until the head is in. Go gives an idle keep-alive
//!   connection `read_timeout` to start a request and then `read_timeout`
//!   again for it; here both share one `read_timeout`.
//! - body: the handlers read it within `read_timeout`
//!   ([`crate::server`]).
//! - response: a write that is still blocked `write_timeout` after the
//!   request's head was read fails and closes the connection, as Go's
//!   write deadline does. Unlike Go, a handler that takes longer is not
//!   cut off: a response that goes out without blocking is never failed.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::target::TargetEscaper;

/// hyper's smallest read-buffer limit (it panics below it).
const MIN_BUF: usize = 8192;

/// Go's `http.DefaultMaxHeaderBytes`, used when `max_header_bytes` is 0.
pub(crate) const DEFAULT_MAX_HEADER_BYTES: usize = 1 << 20;

/// Connection-level limits, taken from [`crate::RpcConfig`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Connections served at once; 0: unlimited.
    pub max_open_connections: usize,
    /// Largest head accepted, in bytes (never 0).
    pub max_header_bytes: usize,
    /// For each request's head and body; `None`: no limit.
    pub read_timeout: Option<Duration>,
    /// For each response while blocked; `None`: no limit.
    pub write_timeout: Option<Duration>,
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the
/// connections finish the request they are in and waits for them.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF));
    let http = Arc::new(http);
    // Semaphore::new panics above MAX_PERMITS; no real limit is that high.
    let slots = (limits.max_open_connections > 0).then(|| {
        Arc::new(Semaphore::new(
            limits.max_open_connections.min(Semaphore::MAX_PERMITS),
        ))
    });
    let (stop_tx, _) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Take a slot before accepting, so that clients beyond the limit
        // stay in the kernel's backlog until a connection closes.
        let slot = match &slots {
            Some(slots) => tokio::select! {
                // The semaphore is never closed.
                permit = slots.clone().acquire_owned() => permit.ok(),
                () = &mut shutdown => break,
            },
            None => None,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let stop = stop_tx.subscribe();
        tokio::spawn(connection(
            stream,
            app.clone(),
            http.clone(),
            limits,
            stop,
            slot,
        ));
    }
    drop(listener);
    // Every connection holds a receiver until it is done.
    let _ = stop_tx.send(());
    stop_tx.closed().await;
}

/// As hyper 0.14 and axum: a connection that failed before we accepted it
/// is not our problem; anything else (out of file descriptors) is waited
/// out, since closing connections will free some.
async fn accept_failed(e: io::Error) {
    if !matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn connection(
    stream: TcpStream,
    app: Router,
    http: Arc<http1::Builder>,
    limits: Limits,
    mut stop: watch::Receiver<()>,
    // Held until the connection ends, freeing its place.
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    // Go sets TCP_NODELAY on every connection; pipelined responses would
    // otherwise wait on Nagle.
    let _ = stream.set_nodelay(true);
    let deadline = Arc::new(WriteDeadline::default());
    let io = ConnIo::new(stream, limits.max_header_bytes, deadline.clone());
    let app = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        if let Some(t) = limits.write_timeout {
            deadline.set(Some(Instant::now() + t));
        }
        let deadline = deadline.clone();
        let response = hyper::service::Service::call(&app, req.map(Body::new));
        async move {
            let response = response.await?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                // The connection now belongs to whoever took the upgrade.
                deadline.set(None);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            // Errors are the client's (bad request, timeout, reset).
            _ = conn.as_mut() => break,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// When a blocked write of the current response gives up; shared between
/// the service (which sets it per request) and the connection's I/O.
#[derive(Default, Debug)]
struct WriteDeadline(Mutex<Option<Instant>>);

impl WriteDeadline {
    fn set(&self, at: Option<Instant>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's socket as hyper sees it: reads go through a
/// [`TargetEscaper`], writes fail once blocked past the write deadline.
struct ConnIo {
    inner: TcpStream,
    escaper: TargetEscaper,
    /// Escaped bytes not yet handed to hyper, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
    scratch: Vec<u8>,
    deadline: Arc<WriteDeadline>,
    timer: Option<Pin<Box<Sleep>>>,
}

/// Bytes read from the socket at a time while request lines may need
/// escaping (bodies go straight into hyper's buffer).
const SCRATCH: usize = 8192;

impl ConnIo {
    fn new(inner: TcpStream, max_head: usize, deadline: Arc<WriteDeadline>) -> Self {
        ConnIo {
            inner,
            escaper: TargetEscaper::new(max_head),
            pending: Vec::new(),
            pending_at: 0,
            scratch: Vec::new(),
            deadline,
            timer: None,
        }
    }

    fn drain_pending(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.pending.len() - self.pending_at);
        buf.put_slice(&self.pending[self.pending_at..self.pending_at + n]);
        self.pending_at += n;
        if self.pending_at == self.pending.len() {
            self.pending.clear();
            self.pending_at = 0;
        }
    }

    /// Called when a write is blocked: fails it once the deadline passes.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(at) = self.deadline.get() else {
            return Poll::Pending;
        };
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "rpc write timeout: the client does not read its response",
        ))
    }

    fn guard<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.poll_deadline(cx).map(Err),
            ready => ready,
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.pending_at < this.pending.len() {
            this.drain_pending(buf);
            return Poll::Ready(Ok(()));
        }
        let untouched = this.escaper.untouched_ahead();
        if untouched > 0 {
            // Body bytes: straight into the caller's buffer.
            let want = buf
                .remaining()
                .min(usize::try_from(untouched).unwrap_or(usize::MAX));
            let mut direct = ReadBuf::new(buf.initialize_unfilled_to(want));
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut direct))?;
            let n = direct.filled().len();
            this.escaper.skip(n);
            buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        this.scratch.resize(SCRATCH, 0);
        let mut raw = ReadBuf::new(&mut this.scratch);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw))?;
        let got = raw.filled();
        if got.is_empty() {
            // End of stream.
            return Poll::Ready(Ok(()));
        }
        this.escaper.feed(got, &mut this.pending);
        this.drain_pending(buf);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        this.guard(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.guard(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.guard(cx, r)
    }
}
