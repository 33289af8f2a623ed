//! What two nodes tell each other right after the encrypted handshake:
//! CometBFT's `DefaultNodeInfo` (protocol versions, ID, listen address,
//! chain, channels, moniker), and the rules that decide whether to keep
//! talking.
//!
//! Owns the domain type, its proto conversion, [`NodeInfo::validate`] and
//! [`NodeInfo::compatible_with`] (exactly CometBFT v0.38's rules,
//! `p2p/node_info.go`), and the blocking exchange over the encrypted stream.
//! Never looks at sockets or timeouts: the transport does.

use std::io::{Read, Write};

use prost::Message;
use tendermint_proto::v0_38::p2p as pb;

use super::{split_host_port, NodeId, P2pError};

/// Largest node info message accepted, in bytes (CometBFT's `maxNodeInfoSize`).
pub const MAX_NODE_INFO_SIZE: usize = 10240;

/// Most channels a node may advertise (CometBFT's `maxNumChannels`).
pub const MAX_CHANNELS: usize = 16;

/// The protocol versions a node speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtocolVersion {
    /// P2P protocol (8 in CometBFT v0.38); not compared between peers.
    pub p2p: u64,
    /// Block protocol (11); peers must agree.
    pub block: u64,
    /// The application's version; informational.
    pub app: u64,
}

impl ProtocolVersion {
    /// The versions this engine speaks, with the application's `app`.
    pub fn ours(app: u64) -> Self {
        ProtocolVersion {
            p2p: crate::block_exec::P2P_PROTOCOL,
            block: crate::types::BLOCK_PROTOCOL,
            app,
        }
    }
}

/// A node's self-description, as exchanged in the handshake. Only `id` is
/// authenticated (the transport checks it against the key); everything else
/// is what the peer claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Protocol versions.
    pub protocol_version: ProtocolVersion,
    /// The node's ID.
    pub id: NodeId,
    /// Where it accepts connections (`external_address` or `p2p.laddr`).
    pub listen_addr: String,
    /// The chain ID.
    pub network: String,
    /// Software version, free ASCII text.
    pub version: String,
    /// Channel IDs the node serves.
    pub channels: Vec<u8>,
    /// Human-readable name.
    pub moniker: String,
    /// `"on"` or `"off"`: whether the node indexes transactions.
    pub tx_index: String,
    /// The node's RPC listen address.
    pub rpc_address: String,
}

/// Node info that breaks CometBFT's validation rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidNodeInfo {
    /// `default_node_id` is not 40 hex characters.
    #[error("default_node_id `{id}` is not a node ID: {reason}")]
    NodeId {
        /// The text sent.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// `listen_addr` is not `host:port`.
    #[error("listen_addr `{addr}`: {reason}")]
    ListenAddr {
        /// The text sent.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// `version` is not printable ASCII.
    #[error("version {0:?} must be printable ASCII text")]
    Version(String),
    /// More than [`MAX_CHANNELS`] channels.
    #[error("{0} channels advertised, at most {MAX_CHANNELS} allowed")]
    TooManyChannels(usize),
    /// A channel listed twice.
    #[error("channel {0:#04x} is listed twice")]
    DuplicateChannel(u8),
    /// `moniker` is empty or not printable ASCII.
    #[error("moniker {0:?} must be non-empty printable ASCII text")]
    Moniker(String),
    /// `other.tx_index` is not "", "on" or "off".
    #[error("tx_index {0:?} must be \"on\", \"off\" or empty")]
    TxIndex(String),
    /// `other.rpc_address` is not printable ASCII.
    #[error("rpc_address {0:?} must be printable ASCII text")]
    RpcAddress(String),
}

/// Why a valid peer is still not one to talk to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Incompatible {
    /// Different block protocol versions.
    #[error("peer speaks block protocol {theirs}, we speak {ours}")]
    BlockVersion {
        /// Ours.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// Different chains.
    #[error("peer is on chain `{theirs}`, we are on `{ours}`")]
    Network {
        /// Our chain ID.
        ours: String,
        /// The peer's chain ID.
        theirs: String,
    },
    /// No channel served by both.
    #[error("no channel in common (ours: {}, the peer's: {})", hex::encode(.ours), hex::encode(.theirs))]
    NoCommonChannel {
        /// Our channels.
        ours: Vec<u8>,
        /// The peer's channels.
        theirs: Vec<u8>,
    },
}

/// CometBFT's `IsASCIIText`: non-empty, bytes 32..=126 only.
fn is_ascii_text(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (32..=126).contains(&b))
}

/// Printable ASCII with something besides spaces (`IsASCIIText` and a
/// non-empty `ASCIITrim`).
fn is_nonblank_ascii_text(s: &str) -> bool {
    is_ascii_text(s) && s.bytes().any(|b| b != b' ')
}

impl NodeInfo {
    /// Our node info before the switch fills in `channels` and
    /// `listen_addr`: our protocol versions, CometBFT's version string (the
    /// one our RPC reports), transaction indexing on, no RPC address.
    pub fn ours(id: NodeId, chain_id: &str, moniker: &str, app_version: u64) -> Self {
        NodeInfo {
            protocol_version: ProtocolVersion::ours(app_version),
            id,
            listen_addr: String::new(),
            network: chain_id.to_string(),
            version: crate::config::COMETBFT_VERSION.to_string(),
            channels: Vec::new(),
            moniker: moniker.to_string(),
            tx_index: "on".into(),
            rpc_address: String::new(),
        }
    }

    /// Checks CometBFT's `DefaultNodeInfo.Validate` rules. Unlike CometBFT
    /// we do not resolve a host name in `listen_addr`; a name is accepted as
    /// long as it is syntactically one.
    pub fn validate(&self) -> Result<(), InvalidNodeInfo> {
        // CometBFT strips any `scheme://` before parsing the address.
        let addr = self
            .listen_addr
            .split_once("://")
            .map_or(self.listen_addr.as_str(), |(_, rest)| rest);
        split_host_port(addr).map_err(|reason| InvalidNodeInfo::ListenAddr {
            addr: self.listen_addr.clone(),
            reason,
        })?;
        if !self.version.is_empty() && !is_nonblank_ascii_text(&self.version) {
            return Err(InvalidNodeInfo::Version(self.version.clone()));
        }
        if self.channels.len() > MAX_CHANNELS {
            return Err(InvalidNodeInfo::TooManyChannels(self.channels.len()));
        }
        let mut seen = [false; 256];
        for &ch in &self.channels {
            if std::mem::replace(&mut seen[ch as usize], true) {
                return Err(InvalidNodeInfo::DuplicateChannel(ch));
            }
        }
        if !is_nonblank_ascii_text(&self.moniker) {
            return Err(InvalidNodeInfo::Moniker(self.moniker.clone()));
        }
        if !matches!(self.tx_index.as_str(), "" | "on" | "off") {
            return Err(InvalidNodeInfo::TxIndex(self.tx_index.clone()));
        }
        if !self.rpc_address.is_empty() && !is_nonblank_ascii_text(&self.rpc_address) {
            return Err(InvalidNodeInfo::RpcAddress(self.rpc_address.clone()));
        }
        Ok(())
    }

    /// CometBFT's `CompatibleWith`, seen from `self` (ours): the same block
    /// protocol, the same chain, and at least one channel in common (unless
    /// we advertise none). The P2P version and the software version are not
    /// compared.
    pub fn compatible_with(&self, other: &NodeInfo) -> Result<(), Incompatible> {
        if self.protocol_version.block != other.protocol_version.block {
            return Err(Incompatible::BlockVersion {
                ours: self.protocol_version.block,
                theirs: other.protocol_version.block,
            });
        }
        if self.network != other.network {
            return Err(Incompatible::Network {
                ours: self.network.clone(),
                theirs: other.network.clone(),
            });
        }
        if !self.channels.is_empty() && !self.channels.iter().any(|c| other.has_channel(*c)) {
            return Err(Incompatible::NoCommonChannel {
                ours: self.channels.clone(),
                theirs: other.channels.clone(),
            });
        }
        Ok(())
    }

    /// Whether the node serves channel `ch`; CometBFT sends nothing on a
    /// channel the peer does not list.
    pub fn has_channel(&self, ch: u8) -> bool {
        self.channels.contains(&ch)
    }

    /// The uvarint-length-delimited proto bytes sent in the handshake.
    pub fn encode_delimited(&self) -> Vec<u8> {
        pb::DefaultNodeInfo::from(self).encode_length_delimited_to_vec()
    }
}

impl From<&NodeInfo> for pb::DefaultNodeInfo {
    fn from(n: &NodeInfo) -> Self {
        // gogoproto's non-nullable `protocol_version` and `other` are always
        // on the wire in CometBFT's encoding, so they are always `Some` here.
        pb::DefaultNodeInfo {
            protocol_version: Some(pb::ProtocolVersion {
                p2p: n.protocol_version.p2p,
                block: n.protocol_version.block,
                app: n.protocol_version.app,
            }),
            default_node_id: n.id.to_string(),
            listen_addr: n.listen_addr.clone(),
            network: n.network.clone(),
            version: n.version.clone(),
            channels: n.channels.clone(),
            moniker: n.moniker.clone(),
            other: Some(pb::DefaultNodeInfoOther {
                tx_index: n.tx_index.clone(),
                rpc_address: n.rpc_address.clone(),
            }),
        }
    }
}

impl TryFrom<pb::DefaultNodeInfo> for NodeInfo {
    type Error = InvalidNodeInfo;

    /// Missing `protocol_version` or `other` read as zero values, as Go's
    /// decoder leaves them.
    fn try_from(p: pb::DefaultNodeInfo) -> Result<Self, InvalidNodeInfo> {
        let id = p
            .default_node_id
            .parse::<NodeId>()
            .map_err(|e| InvalidNodeInfo::NodeId {
                id: p.default_node_id.clone(),
                reason: match e {
                    P2pError::InvalidNodeId { reason, .. } => reason,
                    other => other.to_string(),
                },
            })?;
        let version = p.protocol_version.unwrap_or_default();
        let other = p.other.unwrap_or_default();
        Ok(NodeInfo {
            protocol_version: ProtocolVersion {
                p2p: version.p2p,
                block: version.block,
                app: version.app,
            },
            id,
            listen_addr: p.listen_addr,
            network: p.network,
            version: p.version,
            channels: p.channels,
            moniker: p.moniker,
            tx_index: other.tx_index,
            rpc_address: other.rpc_address,
        })
    }
}

/// Sends `ours` and reads the peer's node info at the same time (as
/// CometBFT does, so neither side can block the other), over the plaintext
/// side of an encrypted connection. Blocking; the caller bounds it in time
/// by shutting the socket down.
pub fn exchange<R: Read, W: Write + Send>(
    reader: &mut R,
    writer: &mut W,
    ours: &NodeInfo,
) -> Result<NodeInfo, P2pError> {
    let bytes = ours.encode_delimited();
    let (wrote, theirs) = std::thread::scope(|scope| {
        let sending = scope.spawn(move || writer.write_all(&bytes).and_then(|()| writer.flush()));
        let theirs = read_node_info(reader);
        (sending.join(), theirs)
    });
    match wrote {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(P2pError::NodeInfoExchange(format!("sending ours: {e}"))),
        Err(_) => return Err(P2pError::NodeInfoExchange("sending ours panicked".into())),
    }
    theirs
}

/// Reads one uvarint-delimited `DefaultNodeInfo` of at most
/// [`MAX_NODE_INFO_SIZE`] bytes and decodes it (not yet validated).
pub fn read_node_info<R: Read>(reader: &mut R) -> Result<NodeInfo, P2pError> {
    let fail = |m: String| P2pError::NodeInfoExchange(m);
    let len = read_uvarint(reader).map_err(|e| fail(format!("reading the length: {e}")))?;
    if len > MAX_NODE_INFO_SIZE as u64 {
        return Err(fail(format!(
            "node info of {len} bytes exceeds the maximum of {MAX_NODE_INFO_SIZE}"
        )));
    }
    // Bounded by the check above.
    let mut body = vec![0u8; len as usize];
    reader
        .read_exact(&mut body)
        .map_err(|e| fail(format!("reading {len} bytes: {e}")))?;
    let proto = pb::DefaultNodeInfo::decode(body.as_slice())
        .map_err(|e| fail(format!("not a DefaultNodeInfo: {e}")))?;
    Ok(NodeInfo::try_from(proto)?)
}

/// A protobuf uvarint, read byte by byte so nothing past it is consumed.
fn read_uvarint<R: Read>(reader: &mut R) -> std::io::Result<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8];
        reader.read_exact(&mut byte)?;
        let low = u64::from(byte[0] & 0x7f);
        if i == 9 && byte[0] > 1 {
            break;
        }
        value |= low << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "length varint overflows 64 bits",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> NodeInfo {
        NodeInfo {
            protocol_version: ProtocolVersion {
                p2p: 8,
                block: 11,
                app: 1,
            },
            id: "0123456789abcdef0123456789abcdef01234567"
                .parse()
                .expect("valid id"),
            listen_addr: "tcp://0.0.0.0:26656".into(),
            network: "test-chain".into(),
            version: "0.38.25".into(),
            channels: vec![0x40, 0x20],
            moniker: "n0".into(),
            tx_index: "on".into(),
            rpc_address: "tcp://127.0.0.1:26657".into(),
        }
    }

    /// The delimited encoding of `sample()`, assembled field by field from
    /// `proto/tendermint/p2p/types.proto` (each field is `tag = number << 3 |
    /// wire type`, wire type 0 for varints and 2 for length-delimited):
    /// body = 8 + 42 + 21 + 12 + 9 + 4 + 4 + 29 = 129 bytes, whose uvarint
    /// prefix is `81 01`.
    fn golden() -> Vec<u8> {
        let mut g = vec![0x81, 0x01];
        // 1: protocol_version {1: p2p 8, 2: block 11, 3: app 1}
        g.extend([0x0a, 0x06, 0x08, 0x08, 0x10, 0x0b, 0x18, 0x01]);
        // 2: default_node_id, 40 characters
        g.extend([0x12, 0x28]);
        g.extend(b"0123456789abcdef0123456789abcdef01234567");
        // 3: listen_addr, 19 characters
        g.extend([0x1a, 0x13]);
        g.extend(b"tcp://0.0.0.0:26656");
        // 4: network, 10 characters
        g.extend([0x22, 0x0a]);
        g.extend(b"test-chain");
        // 5: version, 7 characters
        g.extend([0x2a, 0x07]);
        g.extend(b"0.38.25");
        // 6: channels, 2 bytes
        g.extend([0x32, 0x02, 0x40, 0x20]);
        // 7: moniker
        g.extend([0x3a, 0x02]);
        g.extend(b"n0");
        // 8: other {1: tx_index "on" (4 bytes), 2: rpc_address (2 + 21)} = 27
        g.extend([0x42, 0x1b, 0x0a, 0x02]);
        g.extend(b"on");
        g.extend([0x12, 0x15]);
        g.extend(b"tcp://127.0.0.1:26657");
        g
    }

    #[test]
    fn encoding_matches_golden_bytes() {
        let bytes = sample().encode_delimited();
        assert_eq!(bytes.len(), 131);
        assert_eq!(hex::encode(&bytes), hex::encode(golden()));
    }

    #[test]
    fn empty_versions_are_still_on_the_wire() {
        // Go always writes the non-nullable sub-messages, even when empty.
        let mut n = sample();
        n.protocol_version = ProtocolVersion::default();
        n.tx_index.clear();
        n.rpc_address.clear();
        let bytes = pb::DefaultNodeInfo::from(&n).encode_to_vec();
        assert_eq!(&bytes[..2], &[0x0a, 0x00]);
        assert_eq!(&bytes[bytes.len() - 2..], &[0x42, 0x00]);
    }

    #[test]
    fn round_trips_through_the_exchange_reader() {
        let n = sample();
        let bytes = n.encode_delimited();
        let mut with_more = bytes.clone();
        with_more.extend([9, 9, 9]);
        let mut r = std::io::Cursor::new(with_more);
        assert_eq!(read_node_info(&mut r).expect("decodes"), n);
        // Nothing past the message is consumed.
        assert_eq!(r.position() as usize, bytes.len());
    }

    #[test]
    fn missing_sub_messages_decode_as_zero() {
        let mut p = pb::DefaultNodeInfo::from(&sample());
        p.protocol_version = None;
        p.other = None;
        let n = NodeInfo::try_from(p).expect("decodes");
        assert_eq!(n.protocol_version, ProtocolVersion::default());
        assert_eq!(n.tx_index, "");
    }

    #[test]
    fn read_refuses_oversized_and_garbage() {
        // 10241 as a uvarint: 0x81 0x50.
        let mut r = std::io::Cursor::new(vec![0x81, 0x50, 0, 0]);
        let e = read_node_info(&mut r).expect_err("refused").to_string();
        assert!(
            e.contains("10241 bytes exceeds the maximum of 10240"),
            "{e}"
        );
        let mut r = std::io::Cursor::new(vec![0xff; 11]);
        let e = read_node_info(&mut r).expect_err("refused").to_string();
        assert!(e.contains("overflows"), "{e}");
        let mut r = std::io::Cursor::new(vec![0x02, 0xff, 0xff]);
        let e = read_node_info(&mut r).expect_err("refused").to_string();
        assert!(e.contains("not a DefaultNodeInfo"), "{e}");
        let mut p = pb::DefaultNodeInfo::from(&sample());
        p.default_node_id = "xyz".into();
        let mut r = std::io::Cursor::new(p.encode_length_delimited_to_vec());
        let e = read_node_info(&mut r).expect_err("refused");
        assert!(
            matches!(e, P2pError::InvalidNodeInfo(InvalidNodeInfo::NodeId { .. })),
            "{e}"
        );
    }

    #[test]
    fn validate_accepts_the_sample_and_cometbft_shapes() {
        sample().validate().expect("valid");
        let mut n = sample();
        n.listen_addr = "0.0.0.0:26656".into();
        n.version = String::new();
        n.tx_index = String::new();
        n.rpc_address = String::new();
        n.channels = (0..16).collect();
        n.validate().expect("valid");
    }

    #[test]
    fn validate_refuses_each_broken_field() {
        type Breaker = fn(&mut NodeInfo);
        let cases: Vec<(Breaker, &str)> = vec![
            (|n| n.listen_addr = "nowhere".into(), "listen_addr"),
            (|n| n.listen_addr = "tcp://:26656".into(), "host is empty"),
            (|n| n.listen_addr = "1.2.3.4:99999".into(), "65535"),
            (|n| n.version = "   ".into(), "version"),
            (|n| n.version = "v\t1".into(), "version"),
            (|n| n.channels = (0..17).collect(), "17 channels"),
            (
                |n| n.channels = vec![0x20, 0x21, 0x20],
                "0x20 is listed twice",
            ),
            (|n| n.moniker = String::new(), "moniker"),
            (|n| n.moniker = " ".into(), "moniker"),
            (|n| n.moniker = "naïve".into(), "moniker"),
            (|n| n.tx_index = "yes".into(), "tx_index"),
            (|n| n.rpc_address = "\u{7f}".into(), "rpc_address"),
        ];
        for (break_it, want) in cases {
            let mut n = sample();
            break_it(&mut n);
            let e = n.validate().expect_err("refused").to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn compatible_requires_block_version_network_and_a_common_channel() {
        let ours = sample();
        let mut theirs = sample();
        theirs.protocol_version.p2p = 7;
        theirs.protocol_version.app = 99;
        theirs.version = "other".into();
        theirs.channels = vec![0x20, 0x99];
        ours.compatible_with(&theirs).expect("compatible");

        let mut other_chain = sample();
        other_chain.network = "other-chain".into();
        assert_eq!(
            ours.compatible_with(&other_chain),
            Err(Incompatible::Network {
                ours: "test-chain".into(),
                theirs: "other-chain".into()
            })
        );

        let mut old_block = sample();
        old_block.protocol_version.block = 10;
        let e = ours.compatible_with(&old_block).expect_err("refused");
        assert_eq!(
            e,
            Incompatible::BlockVersion {
                ours: 11,
                theirs: 10
            }
        );
        assert_eq!(e.to_string(), "peer speaks block protocol 10, we speak 11");

        let mut disjoint = sample();
        disjoint.channels = vec![0x30];
        let e = ours.compatible_with(&disjoint).expect_err("refused");
        assert!(matches!(e, Incompatible::NoCommonChannel { .. }));
        assert_eq!(
            e.to_string(),
            "no channel in common (ours: 4020, the peer's: 30)"
        );

        // With no channels of our own, any channels do (CometBFT's test mode).
        let mut none = sample();
        none.channels.clear();
        none.compatible_with(&disjoint).expect("compatible");
    }
}
