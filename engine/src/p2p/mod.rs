//! Peer-to-peer networking, wire-compatible with CometBFT v0.38.
//!
//! A connection is built in layers, each in its own module:
//!
//! 1. [`secret`]: CometBFT's SecretConnection (authenticated encryption,
//!    from the `tendermint-p2p` crate), bridged to two byte channels.
//! 2. [`node_info`]: the `DefaultNodeInfo` exchange and the compatibility
//!    rules that decide whether we talk to a peer at all.
//! 3. [`transport`]: listen, dial and upgrade a TCP stream through 1 and 2,
//!    refusing with a typed reason.
//! 4. [`conn`]: the MConnection (packets, channels, ping/pong) on top of the
//!    plaintext byte stream.
//! 5. [`switch`] and [`peer`]: the set of connected peers, the dialling of
//!    persistent peers, and the routing of channel messages to reactors.
//!
//! This module owns the names every layer shares: node IDs, peer addresses,
//! channel IDs and the error type. It never decides what a message means;
//! reactors do.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

pub mod conn;
pub mod node_info;
pub mod peer;
pub mod score;
pub mod secret;
pub mod switch;
pub mod transport;

use crate::types::PublicKey;

/// Consensus reactor: round-step announcements (`NewRoundStep`, `HasVote`, ...).
pub const STATE_CHANNEL: u8 = 0x20;
/// Consensus reactor: proposals and block parts.
pub const DATA_CHANNEL: u8 = 0x21;
/// Consensus reactor: votes.
pub const VOTE_CHANNEL: u8 = 0x22;
/// Consensus reactor: `VoteSetBits` answers to `VoteSetMaj23`.
pub const VOTE_SET_BITS_CHANNEL: u8 = 0x23;
/// Mempool reactor: transactions.
pub const MEMPOOL_CHANNEL: u8 = 0x30;
/// Evidence reactor: evidence lists.
pub const EVIDENCE_CHANNEL: u8 = 0x38;
/// Block sync reactor: status and block requests and responses.
pub const BLOCKSYNC_CHANNEL: u8 = 0x40;

/// A node's identity on the network: the first 20 bytes of SHA-256 of its
/// ed25519 public key, written as 40 lower-case hex characters (CometBFT's
/// `p2p.ID`; the same value as [`crate::genesis::NodeKey::id`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// The ID of the node whose key is `key`.
    pub fn from_public_key(key: &PublicKey) -> Self {
        NodeId(key.address().0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for NodeId {
    type Err = P2pError;

    /// Parses 40 hex characters (either case, as CometBFT accepts).
    fn from_str(s: &str) -> Result<Self, P2pError> {
        let bad = |reason: &str| P2pError::InvalidNodeId {
            id: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() != 40 {
            return Err(bad(&format!("must be 40 hex characters, got {}", s.len())));
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad("not hex"))?;
        Ok(NodeId(out))
    }
}

/// A peer to dial: `ID@host:port`, as in `persistent_peers`. The host is an
/// IP address or a name resolved when dialling.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    /// The ID the peer must authenticate as.
    pub id: NodeId,
    /// IP address or DNS name (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl PeerAddr {
    /// `host:port` for dialling (IPv6 in brackets).
    pub fn socket_addr_string(&self) -> String {
        host_port(&self.host, self.port)
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, host_port(&self.host, self.port))
    }
}

impl FromStr for PeerAddr {
    type Err = P2pError;

    /// Parses `ID@host:port` with an optional `tcp://` prefix.
    fn from_str(s: &str) -> Result<Self, P2pError> {
        let bad = |reason: String| P2pError::InvalidPeerAddr {
            addr: s.to_string(),
            reason,
        };
        let rest = strip_scheme(s).map_err(bad)?;
        let (id, hostport) = rest
            .split_once('@')
            .ok_or_else(|| bad("missing the node ID; expected ID@host:port".into()))?;
        let id = id.parse::<NodeId>().map_err(|e| bad(e.to_string()))?;
        let (host, port) = split_host_port(hostport).map_err(bad)?;
        Ok(PeerAddr { id, host, port })
    }
}

/// Parses a comma-separated list of `ID@host:port` (blanks ignored), the
/// form of `persistent_peers`.
pub fn parse_peer_list(list: &str) -> Result<Vec<PeerAddr>, P2pError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// Parses a comma-separated list of node IDs (blanks ignored), the form of
/// `unconditional_peer_ids`.
pub fn parse_id_list(list: &str) -> Result<Vec<NodeId>, P2pError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// `s` without its `tcp://` prefix; any other scheme is an error.
fn strip_scheme(s: &str) -> Result<&str, String> {
    match s.split_once("://") {
        None => Ok(s),
        Some(("tcp", rest)) => Ok(rest),
        Some((scheme, _)) => Err(format!(
            "unsupported protocol `{scheme}://`; only tcp:// is supported"
        )),
    }
}

/// Splits `host:port` or `[v6]:port`; the host must be non-empty and the
/// port a number up to 65535.
pub(crate) fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed `[` in an IPv6 address".to_string())?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| "missing `:port` after the IPv6 address".to_string())?;
        (host, port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| "missing `:port`; expected host:port".to_string())?;
        if host.contains(':') {
            return Err("an IPv6 address must be written in brackets, [addr]:port".into());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '@' || c == '/')
    {
        return Err(format!("`{host}` is not a host name or IP address"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) || port.is_empty() {
        return Err(format!("port `{port}` is not a number"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("port `{port}` is larger than 65535"))?;
    Ok((host.to_string(), port))
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Why a peer connection could not be made, was refused, or failed. Each
/// variant reads as the end of a log line: "peer refused: {error}".
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// A node ID that is not 40 hex characters.
    #[error("invalid node ID `{id}`: {reason}")]
    InvalidNodeId {
        /// The text given.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A peer address that is not `ID@host:port`.
    #[error("invalid peer address `{addr}`: {reason}")]
    InvalidPeerAddr {
        /// The text given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bad configuration value.
    #[error("[p2p] {key}: {reason}")]
    Config {
        /// The config.toml key.
        key: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation, e.g. "dial 1.2.3.4:26656".
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connect did not finish within `dial_timeout`.
    #[error("dial {addr}: no connection within {timeout:?}")]
    DialTimeout {
        /// The address dialled.
        addr: String,
        /// The configured dial timeout.
        timeout: Duration,
    },
    /// The SecretConnection handshake failed (bad key exchange, bad
    /// signature, or a malformed message).
    #[error("secret connection handshake failed: {0}")]
    Handshake(String),
    /// The handshake and node info exchange did not finish in time.
    #[error("handshake did not finish within {0:?}")]
    HandshakeTimeout(Duration),
    /// An outbound peer authenticated with a key other than the dialled ID's.
    #[error("dialled {expected} but the peer authenticated as {actual}")]
    WrongPeerId {
        /// The ID in the address we dialled.
        expected: NodeId,
        /// The ID of the key the peer proved.
        actual: NodeId,
    },
    /// The node info exchange failed (I/O, too large, or not decodable).
    #[error("node info exchange failed: {0}")]
    NodeInfoExchange(String),
    /// The peer's node info breaks CometBFT's validation rules.
    #[error("peer's node info is invalid: {0}")]
    InvalidNodeInfo(#[from] node_info::InvalidNodeInfo),
    /// The node info names another node than the authenticated key.
    #[error("peer authenticated as {authenticated} but its node info says {claimed}")]
    NodeInfoIdMismatch {
        /// The ID of the key the peer proved.
        authenticated: NodeId,
        /// The ID in its node info.
        claimed: NodeId,
    },
    /// We connected to ourselves (our own address in `persistent_peers`).
    #[error("connected to ourselves ({0})")]
    SelfConnection(NodeId),
    /// The peer is on another chain or block protocol, or shares no channel.
    #[error("incompatible peer: {0}")]
    Incompatible(#[from] node_info::Incompatible),
    /// A peer with this ID is already connected; the first connection stays.
    #[error("peer {0} is already connected")]
    DuplicatePeer(NodeId),
    /// The peer misbehaved recently (see [`score`]).
    #[error("peer {id} is banned for {left:?} more for misbehaving")]
    Banned {
        /// The peer.
        id: NodeId,
        /// What is left of its ban.
        left: Duration,
    },
    /// Another peer from the same IP is connected.
    #[error("a peer from {0} is already connected and allow_duplicate_ip is false")]
    DuplicateIp(IpAddr),
    /// `max_num_inbound_peers` is reached.
    #[error("already {0} inbound peers (max_num_inbound_peers)")]
    TooManyInboundPeers(usize),
    /// No connected peer has this ID.
    #[error("peer {0} is not connected")]
    NotConnected(NodeId),
    /// The peer did not advertise the channel, so it must not be sent on.
    #[error("peer {peer} does not serve channel {channel:#04x}")]
    ChannelNotServed {
        /// The peer.
        peer: NodeId,
        /// The channel.
        channel: u8,
    },
    /// Two reactors claimed the same channel.
    #[error("channel {0:#04x} is registered twice")]
    ChannelTaken(u8),
    /// The peer's MConnection failed.
    #[error("connection to {peer}: {source}")]
    Conn {
        /// The peer.
        peer: NodeId,
        /// What failed.
        #[source]
        source: conn::ConnError,
    },
    /// The switch has stopped.
    #[error("the p2p switch has stopped")]
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::NodeKey;
    use crate::types::PrivateKey;

    const ID: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn node_id_matches_node_key_id() {
        let key = NodeKey(PrivateKey::from_seed([3; 32]));
        let id = NodeId::from_public_key(&key.0.public_key());
        assert_eq!(id.to_string(), key.id());
        assert_eq!(key.id().parse::<NodeId>().expect("parses"), id);
    }

    #[test]
    fn node_id_round_trips_lower_case_and_accepts_upper_case() {
        let id: NodeId = ID.parse().expect("parses");
        assert_eq!(id.to_string(), ID);
        assert_eq!(ID.to_uppercase().parse::<NodeId>().expect("parses"), id);
        assert_eq!(format!("{id:?}"), ID);
    }

    #[test]
    fn node_id_errors_say_what_is_wrong() {
        let e = "".parse::<NodeId>().expect_err("refused").to_string();
        assert!(e.contains("empty"), "{e}");
        let e = "abcd".parse::<NodeId>().expect_err("refused").to_string();
        assert!(e.contains("40 hex characters, got 4"), "{e}");
        let e = "z"
            .repeat(40)
            .parse::<NodeId>()
            .expect_err("refused")
            .to_string();
        assert!(e.contains("not hex"), "{e}");
    }

    #[test]
    fn peer_addr_parses_with_and_without_scheme() {
        let a: PeerAddr = format!("{ID}@127.0.0.1:26656").parse().expect("parses");
        assert_eq!(a.id.to_string(), ID);
        assert_eq!(a.host, "127.0.0.1");
        assert_eq!(a.port, 26656);
        assert_eq!(a.to_string(), format!("{ID}@127.0.0.1:26656"));
        let b: PeerAddr = format!("tcp://{ID}@127.0.0.1:26656")
            .parse()
            .expect("parses");
        assert_eq!(a, b);
        let c: PeerAddr = format!("{ID}@node-1.example:1").parse().expect("parses");
        assert_eq!((c.host.as_str(), c.port), ("node-1.example", 1));
        let d: PeerAddr = format!("{ID}@[::1]:26656").parse().expect("parses");
        assert_eq!(d.host, "::1");
        assert_eq!(d.to_string(), format!("{ID}@[::1]:26656"));
        assert_eq!(d.socket_addr_string(), "[::1]:26656");
    }

    #[test]
    fn peer_addr_errors_are_clear() {
        let cases = [
            ("127.0.0.1:26656".to_string(), "missing the node ID"),
            (
                format!("udp://{ID}@1.2.3.4:1"),
                "unsupported protocol `udp://`",
            ),
            ("abc@1.2.3.4:1".to_string(), "40 hex characters"),
            (format!("{ID}@1.2.3.4"), "missing `:port`"),
            (format!("{ID}@:26656"), "host is empty"),
            (format!("{ID}@1.2.3.4:port"), "port `port` is not a number"),
            (format!("{ID}@1.2.3.4:70000"), "larger than 65535"),
            (format!("{ID}@::1:5"), "brackets"),
            (format!("{ID}@[::1"), "unclosed"),
        ];
        for (text, want) in cases {
            let e = text.parse::<PeerAddr>().expect_err("refused").to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains(&text), "error names the input: {e}");
        }
    }

    #[test]
    fn peer_lists_skip_blanks_and_fail_on_any_bad_entry() {
        let list = format!(" {ID}@a:1, ,{ID}@b:2,");
        let peers = parse_peer_list(&list).expect("parses");
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[1].host, "b");
        assert!(parse_peer_list("").expect("empty is fine").is_empty());
        assert!(parse_peer_list(&format!("{ID}@a:1,oops")).is_err());
        assert_eq!(parse_id_list(&format!("{ID}, ")).expect("parses").len(), 1);
    }
}
