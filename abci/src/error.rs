//! The one error type of this crate.
//!
//! Every failure an application or a peer can cause is a variant here; none
//! of them is a panic. Errors are `Clone` so that one connection failure can
//! be handed to every request that was waiting on that connection.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::CodecError;

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking ABCI.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The address is neither `tcp://host:port`, `unix:///path` nor `host:port`.
    #[error("invalid ABCI address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The socket failed.
    #[error("ABCI connection i/o error: {0}")]
    Io(#[source] Arc<io::Error>),
    /// The connection is closed; `reason` says by whom or after what.
    #[error("ABCI connection closed: {reason}")]
    Closed {
        /// Why the connection is closed.
        reason: String,
    },
    /// The peer sent bytes that are not ABCI v0.38 (garbage, another
    /// protocol version, an oversized frame).
    #[error("ABCI decode error: {0}")]
    Decode(#[from] CodecError),
    /// The application answered a request with a response of another kind.
    #[error("application answered a {expected} request with a {got} response")]
    UnexpectedResponse {
        /// The kind of the request (`"check_tx"`, …).
        expected: &'static str,
        /// The kind of response that arrived (`"commit"`, …, or `"none"` when
        /// no request was waiting).
        got: &'static str,
    },
    /// The application answered with `ResponseException`; the connection is
    /// closed after it, as CometBFT's server does.
    #[error("application raised an exception: {0}")]
    Exception(String),
    /// No response arrived within the configured request timeout.
    #[error("no {request} response within {after:?}")]
    Timeout {
        /// The kind of the request.
        request: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// The request carries no value, so there is nothing to send.
    #[error("a Request without a value cannot be sent")]
    EmptyRequest,
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        Error::Io(Arc::new(error))
    }
}
