//! Turning a TCP stream into an authenticated, compatible peer connection,
//! as CometBFT's `MultiplexTransport.upgrade` does:
//!
//! 1. SecretConnection handshake (the peer proves its key);
//! 2. outbound: the key's ID must be the ID we dialled;
//! 3. node info exchange;
//! 4. the node info is valid, names the authenticated ID, is not ours, and
//!    is compatible with ours (same block protocol, same chain, a common
//!    channel).
//!
//! Steps 1–4 share one deadline, `handshake_timeout` (CometBFT gives each
//! of the two exchanges its own). Owns listening, dialling and upgrading;
//! every refusal is a [`P2pError`] naming the reason. Never decides whether
//! a peer is wanted (duplicates, limits): the switch does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tendermint_proto::v0_38::p2p as pb;
use tokio::net::{TcpListener, TcpStream};

use super::node_info::{self, NodeInfo};
use super::peer::Direction;
use super::secret::{self, PlainStream};
use super::{NodeId, P2pError, PeerAddr};
use crate::types::PrivateKey;

/// Time limits for making a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Limit for the whole upgrade (handshake and node info exchange).
    pub handshake_timeout: Duration,
    /// Limit for the TCP connect of a dial.
    pub dial_timeout: Duration,
}

impl Default for TransportConfig {
    /// CometBFT's defaults: 20 s and 3 s.
    fn default() -> Self {
        TransportConfig {
            handshake_timeout: Duration::from_secs(20),
            dial_timeout: Duration::from_secs(3),
        }
    }
}

/// An upgraded connection, ready for the MConnection.
pub struct Connection {
    /// The peer's node info: validated, authenticated and compatible.
    pub node_info: NodeInfo,
    /// The TCP address at the other end.
    pub remote_addr: SocketAddr,
    /// Who dialled.
    pub direction: Direction,
    /// The plaintext byte stream; dropping it closes the connection.
    pub stream: PlainStream,
}

/// Our side of every connection: our key and node info. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    key: Arc<PrivateKey>,
    info: Arc<NodeInfo>,
    config: TransportConfig,
}

impl Transport {
    /// A transport for the node with `key`, announcing `info`. Refuses node
    /// info that peers would refuse, or whose ID is not the key's.
    pub fn new(
        key: &PrivateKey,
        info: NodeInfo,
        config: TransportConfig,
    ) -> Result<Self, P2pError> {
        let id = NodeId::from_public_key(&key.public_key());
        if info.id != id {
            return Err(P2pError::NodeInfoIdMismatch {
                authenticated: id,
                claimed: info.id,
            });
        }
        info.validate()?;
        let size = prost::Message::encoded_len(&pb::DefaultNodeInfo::from(&info));
        if size > node_info::MAX_NODE_INFO_SIZE {
            return Err(P2pError::NodeInfoExchange(format!(
                "our node info is {size} bytes, more than peers accept ({})",
                node_info::MAX_NODE_INFO_SIZE
            )));
        }
        Ok(Transport {
            key: Arc::new(PrivateKey(key.0.clone())),
            info: Arc::new(info),
            config,
        })
    }

    /// Our node info.
    pub fn node_info(&self) -> &NodeInfo {
        &self.info
    }

    /// Our ID.
    pub fn id(&self) -> NodeId {
        self.info.id
    }

    /// Connects to `addr` within `dial_timeout` and upgrades the connection,
    /// requiring the peer to prove `addr.id`.
    pub async fn dial(&self, addr: &PeerAddr) -> Result<Connection, P2pError> {
        let target = addr.socket_addr_string();
        let timeout = self.config.dial_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(&target)).await {
            Err(_) => {
                return Err(P2pError::DialTimeout {
                    addr: target,
                    timeout,
                })
            }
            Ok(Err(source)) => {
                return Err(P2pError::Io {
                    what: format!("dial {target}"),
                    source,
                })
            }
            Ok(Ok(stream)) => stream,
        };
        self.upgrade(stream, Some(addr.id)).await
    }

    /// Upgrades an accepted (`dialled = None`) or dialled stream. The work
    /// runs on a blocking thread; if it is not done within
    /// `handshake_timeout` the socket is shut down, which ends it.
    pub async fn upgrade(
        &self,
        stream: TcpStream,
        dialled: Option<NodeId>,
    ) -> Result<Connection, P2pError> {
        let io = |what: &'static str| {
            move |source| P2pError::Io {
                what: what.into(),
                source,
            }
        };
        let remote_addr = stream.peer_addr().map_err(io("reading the peer address"))?;
        let stream = stream.into_std().map_err(io("preparing the socket"))?;
        stream
            .set_nonblocking(false)
            .map_err(io("preparing the socket"))?;
        // Small consensus messages must not wait for Nagle's algorithm.
        stream
            .set_nodelay(true)
            .map_err(io("preparing the socket"))?;
        let killer = stream.try_clone().map_err(io("preparing the socket"))?;
        let transport = self.clone();
        let work = tokio::task::spawn_blocking(move || transport.upgrade_blocking(stream, dialled));
        let timeout = self.config.handshake_timeout;
        let result = match tokio::time::timeout(timeout, work).await {
            Err(_) => Err(P2pError::HandshakeTimeout(timeout)),
            Ok(Err(join)) => Err(P2pError::Handshake(format!(
                "handshake thread failed: {join}"
            ))),
            Ok(Ok(result)) => result,
        };
        match result {
            Ok((node_info, stream)) => Ok(Connection {
                node_info,
                remote_addr,
                direction: match dialled {
                    Some(_) => Direction::Outbound,
                    None => Direction::Inbound,
                },
                stream,
            }),
            Err(e) => {
                // Wakes a blocked handshake thread, and tells the peer.
                let _ = killer.shutdown(std::net::Shutdown::Both);
                Err(e)
            }
        }
    }

    fn upgrade_blocking(
        &self,
        stream: std::net::TcpStream,
        dialled: Option<NodeId>,
    ) -> Result<(NodeInfo, PlainStream), P2pError> {
        let socket = stream.try_clone().map_err(|source| P2pError::Io {
            what: "preparing the socket".into(),
            source,
        })?;
        let (mut reader, mut writer, remote_key) = secret::handshake(stream, &self.key)?;
        let authenticated = NodeId::from_public_key(&remote_key);
        if let Some(expected) = dialled {
            if authenticated != expected {
                return Err(P2pError::WrongPeerId {
                    expected,
                    actual: authenticated,
                });
            }
        }
        let theirs = node_info::exchange(&mut reader, &mut writer, &self.info)?;
        theirs.validate()?;
        if theirs.id != authenticated {
            return Err(P2pError::NodeInfoIdMismatch {
                authenticated,
                claimed: theirs.id,
            });
        }
        if theirs.id == self.info.id {
            return Err(P2pError::SelfConnection(theirs.id));
        }
        self.info.compatible_with(&theirs)?;
        let label = theirs.id.to_string();
        let plain = secret::bridge(reader, writer, &socket, &label[..8])?;
        Ok((theirs, plain))
    }
}

/// Binds `laddr` (`tcp://host:port` or `host:port`; port 0 picks one).
pub async fn listen(laddr: &str) -> Result<TcpListener, P2pError> {
    let addr = strip_tcp(laddr)?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| P2pError::Io {
            what: format!("listen on {addr}"),
            source,
        })
}

/// `laddr` without `tcp://`; other schemes are refused.
pub(crate) fn strip_tcp(laddr: &str) -> Result<&str, P2pError> {
    match laddr.split_once("://") {
        None => Ok(laddr),
        Some(("tcp", rest)) => Ok(rest),
        Some(_) => Err(P2pError::Config {
            key: "laddr",
            reason: format!("`{laddr}`: only tcp://host:port is supported"),
        }),
    }
}
