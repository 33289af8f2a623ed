//! The node's four connections to the application (consensus, mempool,
//! query, snapshot), as CometBFT's proxy opens them: either the built-in
//! kvstore run in-process (`proxy_app = "kvstore"`) or any ABCI app over a
//! socket (`tcp://` or `unix://`).
//!
//! Owns connecting, and turning each call into a typed result whose error
//! names the connection and what the application did wrong. Never retries on
//! its own: the node decides whether to halt, wait or reconnect.

use std::sync::Arc;
use std::time::Duration;

use abci::proto::{request, response};
use abci::proto::{
    RequestCheckTx, RequestCommit, RequestExtendVote, RequestFinalizeBlock, RequestInfo,
    RequestInitChain, RequestPrepareProposal, RequestProcessProposal, RequestQuery,
    RequestVerifyVoteExtension, ResponseCheckTx, ResponseCommit, ResponseExtendVote,
    ResponseFinalizeBlock, ResponseInfo, ResponseInitChain, ResponsePrepareProposal,
    ResponseProcessProposal, ResponseQuery, ResponseVerifyVoteExtension,
};

use crate::config::BUILTIN_KVSTORE;

/// Which of the four connections a call went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Block execution.
    Consensus,
    /// CheckTx.
    Mempool,
    /// Info and Query.
    Query,
    /// State sync snapshots.
    Snapshot,
}

/// A failed call to the application.
#[derive(Debug, Clone, thiserror::Error)]
#[error("application ({connection:?} connection at {address}): {source}")]
pub struct AppError {
    /// The connection.
    pub connection: Connection,
    /// The application's address (or "kvstore").
    pub address: String,
    /// What went wrong.
    #[source]
    pub source: abci::Error,
}

/// One connection to the application.
#[derive(Clone)]
pub enum AppConn {
    /// The built-in kvstore, called directly.
    InProcess(Arc<kvstore::KvStore>),
    /// An external application over the ABCI socket protocol.
    Socket(abci::Client),
}

impl AppConn {
    async fn call_raw(&self, req: request::Value) -> Result<response::Value, abci::Error> {
        match self {
            AppConn::InProcess(app) => Ok(abci::server::dispatch(app.as_ref(), req).await),
            AppConn::Socket(client) => {
                let resp = client
                    .call(abci::proto::Request { value: Some(req) })
                    .await?;
                resp.value.ok_or(abci::Error::UnexpectedResponse {
                    expected: "a response",
                    got: "none",
                })
            }
        }
    }
}

/// The four connections.
#[derive(Clone)]
pub struct AppConns {
    address: String,
    consensus: AppConn,
    mempool: AppConn,
    query: AppConn,
    snapshot: AppConn,
}

/// Settings of the socket connections.
#[derive(Clone, Debug)]
pub struct AppConnConfig {
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed per consensus request (None: as long as the app takes,
    /// as CometBFT does: a slow block is not a failed one).
    pub request_timeout: Option<Duration>,
    /// Time allowed per request on the mempool, query and snapshot
    /// connections. CometBFT waits forever there too, so one stuck CheckTx
    /// or Query hangs every RPC client behind it; we answer them with a
    /// timeout error instead (the late response is consumed in order, so
    /// the connection stays usable).
    pub service_timeout: Option<Duration>,
}

impl Default for AppConnConfig {
    fn default() -> Self {
        AppConnConfig {
            connect_timeout: Duration::from_secs(3),
            request_timeout: None,
            service_timeout: Some(Duration::from_secs(10)),
        }
    }
}

macro_rules! typed {
    ($($(#[$doc:meta])* $name:ident($conn:ident, $variant:ident, $req:ty) -> $resp:ty;)*) => {
        impl AppConns {
            $(
                $(#[$doc])*
                pub async fn $name(&self, req: $req) -> Result<$resp, AppError> {
                    let conn = Connection::$conn;
                    match self.conn(conn).call_raw(request::Value::$variant(req)).await {
                        Ok(response::Value::$variant(r)) => Ok(r),
                        Ok(response::Value::Exception(e)) => Err(self.err(conn, abci::Error::Exception(e.error))),
                        Ok(other) => Err(self.err(conn, abci::Error::UnexpectedResponse {
                            expected: stringify!($name),
                            got: abci::codec::response_kind(&other),
                        })),
                        Err(e) => Err(self.err(conn, e)),
                    }
                }
            )*
        }
    };
}

typed! {
    /// Info (query connection): the app's last height and app hash.
    info(Query, Info, RequestInfo) -> ResponseInfo;
    /// Query (query connection).
    query(Query, Query, RequestQuery) -> ResponseQuery;
    /// CheckTx (mempool connection).
    check_tx(Mempool, CheckTx, RequestCheckTx) -> ResponseCheckTx;
    /// InitChain (consensus connection).
    init_chain(Consensus, InitChain, RequestInitChain) -> ResponseInitChain;
    /// PrepareProposal (consensus connection).
    prepare_proposal(Consensus, PrepareProposal, RequestPrepareProposal) -> ResponsePrepareProposal;
    /// ProcessProposal (consensus connection).
    process_proposal(Consensus, ProcessProposal, RequestProcessProposal) -> ResponseProcessProposal;
    /// ExtendVote (consensus connection).
    extend_vote(Consensus, ExtendVote, RequestExtendVote) -> ResponseExtendVote;
    /// VerifyVoteExtension (consensus connection).
    verify_vote_extension(Consensus, VerifyVoteExtension, RequestVerifyVoteExtension) -> ResponseVerifyVoteExtension;
    /// FinalizeBlock (consensus connection).
    finalize_block(Consensus, FinalizeBlock, RequestFinalizeBlock) -> ResponseFinalizeBlock;
    /// Commit (consensus connection).
    commit(Consensus, Commit, RequestCommit) -> ResponseCommit;
}

impl AppConns {
    /// Connects to `proxy_app`: "kvstore" runs the built-in app in-process;
    /// anything else is an ABCI socket address, connected to four times.
    pub async fn connect(proxy_app: &str, config: &AppConnConfig) -> Result<AppConns, AppError> {
        if proxy_app == BUILTIN_KVSTORE {
            let app = AppConn::InProcess(Arc::new(kvstore::KvStore::new()));
            return Ok(AppConns {
                address: proxy_app.into(),
                consensus: app.clone(),
                mempool: app.clone(),
                query: app.clone(),
                snapshot: app,
            });
        }
        let err = |connection, source| AppError {
            connection,
            address: proxy_app.into(),
            source,
        };
        let addr = abci::Addr::parse(proxy_app).map_err(|e| err(Connection::Consensus, e))?;
        let connect = |c: Connection| {
            let client_config = abci::ClientConfig {
                connect_timeout: Some(config.connect_timeout),
                request_timeout: match c {
                    Connection::Consensus => config.request_timeout,
                    _ => config.service_timeout,
                },
                ..abci::ClientConfig::default()
            };
            let addr = addr.clone();
            async move {
                abci::Client::connect_with(&addr, client_config)
                    .await
                    .map(AppConn::Socket)
                    .map_err(|e| err(c, e))
            }
        };
        Ok(AppConns {
            address: proxy_app.into(),
            consensus: connect(Connection::Consensus).await?,
            mempool: connect(Connection::Mempool).await?,
            query: connect(Connection::Query).await?,
            snapshot: connect(Connection::Snapshot).await?,
        })
    }

    /// The first failed connection's error, if any connection has failed
    /// (the app closed it, sent garbage, raised an exception). Lets the node
    /// notice a dead app even while consensus is not calling it.
    pub fn failure(&self) -> Option<AppError> {
        [
            Connection::Consensus,
            Connection::Mempool,
            Connection::Query,
            Connection::Snapshot,
        ]
        .into_iter()
        .find_map(|c| match self.conn(c) {
            AppConn::Socket(client) => client.error().map(|e| self.err(c, e)),
            AppConn::InProcess(_) => None,
        })
    }

    /// The application's address as configured.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn conn(&self, c: Connection) -> &AppConn {
        match c {
            Connection::Consensus => &self.consensus,
            Connection::Mempool => &self.mempool,
            Connection::Query => &self.query,
            Connection::Snapshot => &self.snapshot,
        }
    }

    fn err(&self, connection: Connection, source: abci::Error) -> AppError {
        AppError {
            connection,
            address: self.address.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_builtin_kvstore_answers_in_process() {
        let app = AppConns::connect(BUILTIN_KVSTORE, &AppConnConfig::default())
            .await
            .expect("in-process");
        let info = app.info(RequestInfo::default()).await.expect("info");
        assert_eq!(info.last_block_height, 0);
        let check = app
            .check_tx(RequestCheckTx {
                tx: b"k1=v1".to_vec().into(),
                ..Default::default()
            })
            .await
            .expect("check_tx");
        assert_eq!(check.code, 0);
    }

    #[tokio::test]
    async fn a_missing_app_is_named_in_the_error() {
        let cfg = AppConnConfig {
            connect_timeout: Duration::from_millis(200),
            ..AppConnConfig::default()
        };
        let e = match AppConns::connect("tcp://127.0.0.1:1", &cfg).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("nothing listens on port 1"),
        };
        assert!(e.contains("tcp://127.0.0.1:1"), "{e}");
        assert!(e.contains("Consensus"), "{e}");
    }

    /// An app that never answers CheckTx.
    struct Stuck;

    impl abci::server::Application for Stuck {
        async fn check_tx(&self, _: RequestCheckTx) -> ResponseCheckTx {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_stuck_mempool_connection_gets_a_timeout_naming_check_tx() {
        let addr = abci::Addr::parse("tcp://127.0.0.1:0").expect("addr");
        let server = abci::server::Server::bind(&addr, Arc::new(Stuck), Default::default())
            .await
            .expect("bind");
        let proxy = server.local_addr().expect("addr").to_string();
        tokio::spawn(server.run());
        let cfg = AppConnConfig {
            service_timeout: Some(Duration::from_millis(300)),
            ..AppConnConfig::default()
        };
        let app = AppConns::connect(&proxy, &cfg).await.expect("connects");
        let e = app
            .check_tx(RequestCheckTx::default())
            .await
            .expect_err("no answer comes")
            .to_string();
        assert!(e.contains("Mempool") && e.contains("check_tx"), "{e}");
        assert!(e.contains(&proxy), "{e}");
        // The other connections are not held up by it.
        app.info(RequestInfo::default())
            .await
            .expect("info answers");
    }
}
