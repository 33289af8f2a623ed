//! The application's side: the [`Application`] trait and a socket
//! [`Server`] that feeds it.
//!
//! The server accepts any number of connections (CometBFT opens four) and
//! serves each in its own task: requests of one connection are answered one
//! at a time, in order; connections run concurrently. Replies are buffered
//! and written out when a `RequestFlush` is answered (what CometBFT's client
//! expects) and also whenever no further request is already waiting in the
//! input buffer, so that clients which never send Flush are served too.
//!
//! A connection that sends a malformed frame, an oversized frame or a
//! request this protocol version does not know is logged and closed (the
//! last after a `ResponseException`, as CometBFT's server does); the other
//! connections are unaffected. A panicking application method closes only
//! its connection, like CometBFT's server recovering from a panic.
//!
//! Ownership: the application is shared by all connections as an
//! `Arc<A>`, and its methods take `&self`; an application keeps its state
//! behind its own locks (CometBFT's Go server instead serialises every call
//! of every connection behind one mutex).

use std::future::Future;
use std::sync::Arc;

use tendermint_proto::v0_38::abci::{
    request, response, response_process_proposal, response_verify_vote_extension, ExecTxResult,
    Request, RequestApplySnapshotChunk, RequestCheckTx, RequestCommit, RequestExtendVote,
    RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestListSnapshots,
    RequestLoadSnapshotChunk, RequestOfferSnapshot, RequestPrepareProposal, RequestProcessProposal,
    RequestQuery, RequestVerifyVoteExtension, Response, ResponseApplySnapshotChunk,
    ResponseCheckTx, ResponseCommit, ResponseEcho, ResponseException, ResponseExtendVote,
    ResponseFinalizeBlock, ResponseFlush, ResponseInfo, ResponseInitChain, ResponseListSnapshots,
    ResponseLoadSnapshotChunk, ResponseOfferSnapshot, ResponsePrepareProposal,
    ResponseProcessProposal, ResponseQuery, ResponseVerifyVoteExtension,
};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::task::JoinSet;

use crate::codec::{self, CodecError, FrameReader, DEFAULT_MAX_FRAME_SIZE};
use crate::transport::{Listener, ReadHalf, WriteHalf};
use crate::{Addr, Error, Result};

/// The socket writer's buffer.
const WRITE_BUFFER: usize = 64 * 1024;

/// An ABCI v0.38 application.
///
/// Every method has a default that answers like CometBFT's
/// `BaseApplication`, so an application implements only what it needs.
/// Echo and Flush are answered by the server itself. Methods return futures
/// that must be `Send`; implementations may simply write `async fn`.
pub trait Application: Send + Sync + 'static {
    /// Information about the application: last height and app hash, used by
    /// the engine's handshake. Default: all fields empty.
    fn info(&self, request: RequestInfo) -> impl Future<Output = ResponseInfo> + Send {
        let _ = request;
        async { ResponseInfo::default() }
    }

    /// Queries the application's state. Default: empty, code 0.
    fn query(&self, request: RequestQuery) -> impl Future<Output = ResponseQuery> + Send {
        let _ = request;
        async { ResponseQuery::default() }
    }

    /// Validates a transaction for the mempool. Default: accept (code 0).
    fn check_tx(&self, request: RequestCheckTx) -> impl Future<Output = ResponseCheckTx> + Send {
        let _ = request;
        async { ResponseCheckTx::default() }
    }

    /// Receives the genesis validators and parameters. Default: empty.
    fn init_chain(
        &self,
        request: RequestInitChain,
    ) -> impl Future<Output = ResponseInitChain> + Send {
        let _ = request;
        async { ResponseInitChain::default() }
    }

    /// Shapes the block this node proposes. Default: the given transactions,
    /// in order, while their total size stays within `max_tx_bytes`.
    fn prepare_proposal(
        &self,
        request: RequestPrepareProposal,
    ) -> impl Future<Output = ResponsePrepareProposal> + Send {
        async move {
            let mut total: i64 = 0;
            let txs = request
                .txs
                .into_iter()
                .take_while(|tx| {
                    total = total.saturating_add(i64::try_from(tx.len()).unwrap_or(i64::MAX));
                    total <= request.max_tx_bytes
                })
                .collect();
            ResponsePrepareProposal { txs }
        }
    }

    /// Accepts or rejects a proposed block. Default: accept.
    fn process_proposal(
        &self,
        request: RequestProcessProposal,
    ) -> impl Future<Output = ResponseProcessProposal> + Send {
        let _ = request;
        async {
            ResponseProcessProposal {
                status: response_process_proposal::ProposalStatus::Accept.into(),
            }
        }
    }

    /// Produces this validator's vote extension. Default: none.
    fn extend_vote(
        &self,
        request: RequestExtendVote,
    ) -> impl Future<Output = ResponseExtendVote> + Send {
        let _ = request;
        async { ResponseExtendVote::default() }
    }

    /// Verifies another validator's vote extension. Default: accept.
    fn verify_vote_extension(
        &self,
        request: RequestVerifyVoteExtension,
    ) -> impl Future<Output = ResponseVerifyVoteExtension> + Send {
        let _ = request;
        async {
            ResponseVerifyVoteExtension {
                status: response_verify_vote_extension::VerifyStatus::Accept.into(),
            }
        }
    }

    /// Executes a decided block. Default: one successful result per
    /// transaction, nothing else.
    fn finalize_block(
        &self,
        request: RequestFinalizeBlock,
    ) -> impl Future<Output = ResponseFinalizeBlock> + Send {
        async move {
            ResponseFinalizeBlock {
                tx_results: vec![ExecTxResult::default(); request.txs.len()],
                ..Default::default()
            }
        }
    }

    /// Persists the state produced by the last `finalize_block`. Default:
    /// empty.
    fn commit(&self, request: RequestCommit) -> impl Future<Output = ResponseCommit> + Send {
        let _ = request;
        async { ResponseCommit::default() }
    }

    /// Lists the snapshots this application offers. Default: none.
    fn list_snapshots(
        &self,
        request: RequestListSnapshots,
    ) -> impl Future<Output = ResponseListSnapshots> + Send {
        let _ = request;
        async { ResponseListSnapshots::default() }
    }

    /// Considers restoring from an offered snapshot. Default: result
    /// `UNKNOWN`.
    fn offer_snapshot(
        &self,
        request: RequestOfferSnapshot,
    ) -> impl Future<Output = ResponseOfferSnapshot> + Send {
        let _ = request;
        async { ResponseOfferSnapshot::default() }
    }

    /// Loads a chunk of one of this application's snapshots. Default: empty.
    fn load_snapshot_chunk(
        &self,
        request: RequestLoadSnapshotChunk,
    ) -> impl Future<Output = ResponseLoadSnapshotChunk> + Send {
        let _ = request;
        async { ResponseLoadSnapshotChunk::default() }
    }

    /// Applies a chunk of the snapshot being restored. Default: result
    /// `UNKNOWN`.
    fn apply_snapshot_chunk(
        &self,
        request: RequestApplySnapshotChunk,
    ) -> impl Future<Output = ResponseApplySnapshotChunk> + Send {
        let _ = request;
        async { ResponseApplySnapshotChunk::default() }
    }
}

/// Calls the application method that answers `request`.
pub async fn dispatch<A: Application + ?Sized>(
    app: &A,
    request: request::Value,
) -> response::Value {
    use request::Value as Q;
    use response::Value as R;
    match request {
        Q::Echo(echo) => R::Echo(ResponseEcho {
            message: echo.message,
        }),
        Q::Flush(_) => R::Flush(ResponseFlush {}),
        Q::Info(r) => R::Info(app.info(r).await),
        Q::InitChain(r) => R::InitChain(app.init_chain(r).await),
        Q::Query(r) => R::Query(app.query(r).await),
        Q::CheckTx(r) => R::CheckTx(app.check_tx(r).await),
        Q::Commit(r) => R::Commit(app.commit(r).await),
        Q::ListSnapshots(r) => R::ListSnapshots(app.list_snapshots(r).await),
        Q::OfferSnapshot(r) => R::OfferSnapshot(app.offer_snapshot(r).await),
        Q::LoadSnapshotChunk(r) => R::LoadSnapshotChunk(app.load_snapshot_chunk(r).await),
        Q::ApplySnapshotChunk(r) => R::ApplySnapshotChunk(app.apply_snapshot_chunk(r).await),
        Q::PrepareProposal(r) => R::PrepareProposal(app.prepare_proposal(r).await),
        Q::ProcessProposal(r) => R::ProcessProposal(app.process_proposal(r).await),
        Q::ExtendVote(r) => R::ExtendVote(app.extend_vote(r).await),
        Q::VerifyVoteExtension(r) => R::VerifyVoteExtension(app.verify_vote_extension(r).await),
        Q::FinalizeBlock(r) => R::FinalizeBlock(app.finalize_block(r).await),
    }
}

/// Settings of a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The largest request frame accepted, in bytes; a connection sending a
    /// larger one is closed.
    pub max_frame_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

/// A bound ABCI socket server for one application.
#[derive(Debug)]
pub struct Server<A> {
    listener: Listener,
    app: Arc<A>,
    config: ServerConfig,
}

/// Binds `address` and serves `app` on it until an error stops accepting.
pub async fn serve<A: Application>(address: &str, app: Arc<A>) -> Result<()> {
    Server::bind(&Addr::parse(address)?, app, ServerConfig::default())
        .await?
        .run()
        .await
}

impl<A: Application> Server<A> {
    /// Binds `addr`. TCP port 0 picks a free port (see
    /// [`local_addr`](Self::local_addr)); a stale Unix socket file is
    /// replaced, and removed again when the server stops.
    pub async fn bind(addr: &Addr, app: Arc<A>, config: ServerConfig) -> Result<Self> {
        let listener = Listener::bind(addr).await?;
        Ok(Self {
            listener,
            app,
            config,
        })
    }

    /// The address bound, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> Result<Addr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves connections forever.
    pub async fn run(self) -> Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves connections until `shutdown` completes, then closes the
    /// listener and every connection.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, "ABCI server listening");
        }
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((read, write, peer)) => {
                        tracing::debug!(%peer, "ABCI server: accepted a connection");
                        let app = self.app.clone();
                        let max = self.config.max_frame_size;
                        connections.spawn(async move {
                            match serve_connection(&*app, read, write, max).await {
                                Ok(()) => tracing::debug!(%peer, "ABCI connection closed by the client"),
                                Err(error) => tracing::warn!(%peer, %error, "ABCI connection closed"),
                            }
                        });
                    }
                    Err(error) => {
                        // Out of descriptors and the like: back off a little.
                        tracing::error!(%error, "ABCI server: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                Some(finished) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(error) = finished {
                        if error.is_panic() {
                            tracing::error!("ABCI server: the application panicked; its connection is closed");
                        }
                    }
                }
            }
        }
        connections.shutdown().await;
        Ok(())
    }
}

/// Serves one connection until the client closes it or breaks the protocol.
async fn serve_connection<A: Application>(
    app: &A,
    read: ReadHalf,
    write: WriteHalf,
    max_frame_size: usize,
) -> Result<()> {
    let mut reader = FrameReader::new(read, max_frame_size);
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, write);
    let mut frame = Vec::new();
    loop {
        if !reader.has_buffered_frame() {
            writer.flush().await?;
        }
        let request = match reader.read::<Request>().await {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(error @ Error::Decode(CodecError::UnknownMessage { .. })) => {
                // What CometBFT's server does with a request it does not know.
                let refusal = exception("unknown request: not an ABCI v0.38 request".into());
                frame.clear();
                codec::encode_frame(&refusal, &mut frame);
                writer.write_all(&frame).await?;
                writer.flush().await?;
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        // `read` only yields requests of a known kind.
        let Some(value) = request.value else {
            return Err(Error::EmptyRequest);
        };
        let is_flush = matches!(value, request::Value::Flush(_));
        let answer = dispatch(app, value).await;
        frame.clear();
        codec::encode_frame(
            &Response {
                value: Some(answer),
            },
            &mut frame,
        );
        writer.write_all(&frame).await?;
        if is_flush {
            writer.flush().await?;
        }
    }
}

/// A `ResponseException`, for refusing a request before closing.
fn exception(error: String) -> Response {
    Response {
        value: Some(response::Value::Exception(ResponseException { error })),
    }
}
