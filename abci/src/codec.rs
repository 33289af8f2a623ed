//! Framing of ABCI messages on a byte stream.
//!
//! This module owns the wire format and nothing else: every message is an
//! unsigned varint (protobuf `uvarint`) giving the length of the encoded
//! protobuf that follows, exactly as CometBFT v0.37+ `WriteMessage` /
//! `ReadMessage` (`libs/protoio` delimited writer and reader) frame them.
//! It never interprets what a message means and never touches a socket
//! beyond reading bytes from an [`AsyncRead`].
//!
//! Reading is bounded: a frame whose announced length exceeds the configured
//! maximum is refused with [`CodecError::FrameTooLarge`] before any buffer of
//! that size is allocated, and the buffer of an accepted frame only grows as
//! its bytes actually arrive.
//!
//! When the first bytes of a connection do not form a v0.38 frame, the reader
//! tries to say why: a peer that frames with *signed* zigzag varints (ABCI
//! v0.34, Go's `binary.PutVarint`) is reported as [`CodecError::LegacyFraming`],
//! an HTTP speaker as [`CodecError::NotAbci`].

use bytes::{Buf, BytesMut};
use prost::Message;
use tendermint_proto::v0_38::abci::{request, response, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Error;

/// Default maximum frame size: 128 MiB.
///
/// CometBFT's largest allowed block is 100 MiB (`types.MaxBlockSizeBytes`);
/// a `PrepareProposal` or `FinalizeBlock` carrying such a block also carries
/// the last commit and evidence, so the default leaves room above 100 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 128 * 1024 * 1024;

/// The longest encoding of a `u64` as a varint.
const MAX_VARINT_LEN: usize = 10;

/// How many bytes the reader asks the socket for at a time.
const READ_CHUNK: usize = 64 * 1024;

/// A framing or decoding failure: the peer sent bytes that are not an ABCI
/// v0.38 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The length prefix announces a frame above the configured maximum.
    #[error("peer announced a frame of {len} bytes, above the maximum of {max} bytes")]
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The length prefix is not a valid varint (more than 10 bytes).
    #[error("peer sent a malformed frame length (varint longer than 10 bytes): not ABCI framing")]
    VarintOverflow,
    /// The frame's bytes do not decode as the expected protobuf message.
    #[error("peer sent a frame that is not a valid {what} protobuf message ({reason}): garbage or another protocol")]
    Protobuf {
        /// `"Request"` or `"Response"`.
        what: &'static str,
        /// The protobuf decoder's complaint.
        reason: String,
    },
    /// The message decoded but carries no field this protocol version knows,
    /// typically a request or response of another ABCI version (for example
    /// v0.34's `BeginBlock`).
    #[error("peer sent a {what} of a kind ABCI v0.38 does not define (another ABCI version?)")]
    UnknownMessage {
        /// `"Request"` or `"Response"`.
        what: &'static str,
    },
    /// The peer frames messages with signed zigzag varints, as ABCI v0.34 did.
    #[error(
        "peer frames messages with signed (zigzag) varint lengths as ABCI v0.34 did; \
         this side speaks ABCI v0.38 (unsigned varint lengths)"
    )]
    LegacyFraming,
    /// The peer is recognisably not an ABCI endpoint.
    #[error("peer does not speak ABCI: {0}")]
    NotAbci(&'static str),
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({received} bytes of an incomplete frame received)")]
    Truncated {
        /// Bytes of the incomplete frame that did arrive.
        received: usize,
    },
}

/// A message type that travels in a frame: [`Request`] or [`Response`].
pub trait Envelope: Message + Default {
    /// The message type's name, for errors: `"Request"` or `"Response"`.
    const WHAT: &'static str;
    /// The snake_case name of the variant carried (`"check_tx"`, …), or
    /// `None` when the message carries no variant this version knows.
    fn kind(&self) -> Option<&'static str>;
}

impl Envelope for Request {
    const WHAT: &'static str = "Request";
    fn kind(&self) -> Option<&'static str> {
        self.value.as_ref().map(request_kind)
    }
}

impl Envelope for Response {
    const WHAT: &'static str = "Response";
    fn kind(&self) -> Option<&'static str> {
        self.value.as_ref().map(response_kind)
    }
}

/// The snake_case name of a request variant, as in `types.proto`.
pub fn request_kind(value: &request::Value) -> &'static str {
    use request::Value as V;
    match value {
        V::Echo(_) => "echo",
        V::Flush(_) => "flush",
        V::Info(_) => "info",
        V::InitChain(_) => "init_chain",
        V::Query(_) => "query",
        V::CheckTx(_) => "check_tx",
        V::Commit(_) => "commit",
        V::ListSnapshots(_) => "list_snapshots",
        V::OfferSnapshot(_) => "offer_snapshot",
        V::LoadSnapshotChunk(_) => "load_snapshot_chunk",
        V::ApplySnapshotChunk(_) => "apply_snapshot_chunk",
        V::PrepareProposal(_) => "prepare_proposal",
        V::ProcessProposal(_) => "process_proposal",
        V::ExtendVote(_) => "extend_vote",
        V::VerifyVoteExtension(_) => "verify_vote_extension",
        V::FinalizeBlock(_) => "finalize_block",
    }
}

/// The snake_case name of a response variant, as in `types.proto`; a
/// response answers a request exactly when both names are equal.
pub fn response_kind(value: &response::Value) -> &'static str {
    use response::Value as V;
    match value {
        V::Exception(_) => "exception",
        V::Echo(_) => "echo",
        V::Flush(_) => "flush",
        V::Info(_) => "info",
        V::InitChain(_) => "init_chain",
        V::Query(_) => "query",
        V::CheckTx(_) => "check_tx",
        V::Commit(_) => "commit",
        V::ListSnapshots(_) => "list_snapshots",
        V::OfferSnapshot(_) => "offer_snapshot",
        V::LoadSnapshotChunk(_) => "load_snapshot_chunk",
        V::ApplySnapshotChunk(_) => "apply_snapshot_chunk",
        V::PrepareProposal(_) => "prepare_proposal",
        V::ProcessProposal(_) => "process_proposal",
        V::ExtendVote(_) => "extend_vote",
        V::VerifyVoteExtension(_) => "verify_vote_extension",
        V::FinalizeBlock(_) => "finalize_block",
    }
}

/// Appends `message` to `out` as one frame: uvarint length, then the bytes.
pub fn encode_frame<M: Message>(message: &M, out: &mut Vec<u8>) {
    let len = message.encoded_len();
    out.reserve(len + MAX_VARINT_LEN);
    prost::encoding::encode_varint(len as u64, out);
    // Encoding into a Vec cannot run out of space: it grows.
    message.encode_raw(out);
}

/// Returns `message` as one frame.
pub fn frame<M: Message>(message: &M) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(message, &mut out);
    out
}

/// Parses a uvarint at the start of `buf`: `Ok(None)` when more bytes are
/// needed, else the value and the number of bytes it took.
fn parse_uvarint(buf: &[u8]) -> Result<Option<(u64, usize)>, CodecError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(MAX_VARINT_LEN) {
        // The tenth byte may only contribute the top bit of a u64.
        if i == MAX_VARINT_LEN - 1 && byte > 1 {
            return Err(CodecError::VarintOverflow);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= MAX_VARINT_LEN {
        Err(CodecError::VarintOverflow)
    } else {
        Ok(None)
    }
}

/// Whether `buf`, read from the start of a connection, is a sequence of
/// at least one complete frame with zigzag (signed varint) lengths, each
/// holding a known `M`, possibly followed by an incomplete such frame.
fn looks_like_legacy<M: Envelope>(buf: &[u8], max: usize) -> bool {
    let mut rest = buf;
    let mut frames = 0;
    while !rest.is_empty() {
        let Ok(Some((raw, n))) = parse_uvarint(rest) else {
            return false;
        };
        if raw & 1 == 1 {
            return false; // a negative length
        }
        let Ok(len) = usize::try_from(raw >> 1) else {
            return false;
        };
        if len > max {
            return false;
        }
        if rest.len() - n < len {
            break;
        }
        match M::decode(&rest[n..n + len]) {
            Ok(message) if message.kind().is_some() => {}
            _ => return false,
        }
        frames += 1;
        rest = &rest[n + len..];
    }
    frames > 0
}

/// A recognisable non-ABCI peer, from the first bytes it sent.
fn foreign_protocol(buf: &[u8]) -> Option<CodecError> {
    const HTTP: [&[u8]; 5] = [b"HTTP/", b"GET ", b"POST ", b"PUT ", b"HEAD "];
    if HTTP.iter().any(|p| buf.starts_with(p)) {
        return Some(CodecError::NotAbci("it speaks HTTP (an RPC port?)"));
    }
    if buf.starts_with(b"PRI * HTTP/2") {
        return Some(CodecError::NotAbci(
            "it speaks HTTP/2 (a gRPC ABCI endpoint?)",
        ));
    }
    None
}

/// Reads frames from a byte stream, one message at a time.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_frame_size: usize,
    frames_read: u64,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader over `inner` refusing frames above `max_frame_size` bytes.
    pub fn new(inner: R, max_frame_size: usize) -> Self {
        Self {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
            max_frame_size,
            frames_read: 0,
        }
    }

    /// Whether a whole frame is already buffered, so that the next
    /// [`read`](Self::read) will not wait for the peer.
    pub fn has_buffered_frame(&self) -> bool {
        matches!(parse_uvarint(&self.buf), Ok(Some((len, n)))
            if (self.buf.len() - n) as u64 >= len)
    }

    /// Reads the next message. `Ok(None)` means the peer closed the stream
    /// cleanly between two frames.
    pub async fn read<M: Envelope>(&mut self) -> Result<Option<M>, Error> {
        loop {
            if let Some((len, n)) = parse_uvarint(&self.buf).map_err(|e| self.diagnose::<M>(e))? {
                if len > self.max_frame_size as u64 {
                    return Err(self
                        .diagnose::<M>(CodecError::FrameTooLarge {
                            len,
                            max: self.max_frame_size,
                        })
                        .into());
                }
                // `len <= max_frame_size`, a usize.
                let len = len as usize;
                if self.buf.len() - n >= len {
                    let decoded = M::decode(&self.buf[n..n + len]);
                    let message = match decoded {
                        Ok(message) => message,
                        Err(e) => {
                            let error = CodecError::Protobuf {
                                what: M::WHAT,
                                reason: e.to_string(),
                            };
                            return Err(self.diagnose::<M>(error).into());
                        }
                    };
                    if message.kind().is_none() {
                        let error = CodecError::UnknownMessage { what: M::WHAT };
                        return Err(self.diagnose::<M>(error).into());
                    }
                    self.buf.advance(n + len);
                    self.frames_read += 1;
                    return Ok(Some(message));
                }
                // Grow towards the frame's size only as fast as bytes arrive.
                let missing = len - (self.buf.len() - n);
                self.buf.reserve(missing.min(READ_CHUNK));
            } else {
                self.buf.reserve(READ_CHUNK);
            }
            if self.frames_read == 0 && !self.buf.is_empty() {
                if looks_like_legacy::<M>(&self.buf, self.max_frame_size) {
                    return Err(CodecError::LegacyFraming.into());
                }
                if let Some(foreign) = foreign_protocol(&self.buf) {
                    return Err(foreign.into());
                }
            }
            let read = self.inner.read_buf(&mut self.buf).await?;
            if read == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let error = CodecError::Truncated {
                    received: self.buf.len(),
                };
                return Err(self.diagnose::<M>(error).into());
            }
        }
    }

    /// Replaces a generic complaint about the first frame by a precise one
    /// when the bytes received so far reveal what the peer speaks.
    fn diagnose<M: Envelope>(&self, error: CodecError) -> CodecError {
        if self.frames_read > 0 {
            return error;
        }
        if looks_like_legacy::<M>(&self.buf, self.max_frame_size) {
            return CodecError::LegacyFraming;
        }
        foreign_protocol(&self.buf).unwrap_or(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tendermint_proto::v0_38::abci::{RequestEcho, RequestFlush, ResponseEcho, ResponseFlush};

    fn echo_request(message: &str) -> Request {
        Request {
            value: Some(request::Value::Echo(RequestEcho {
                message: message.into(),
            })),
        }
    }

    fn flush_request() -> Request {
        Request {
            value: Some(request::Value::Flush(RequestFlush {})),
        }
    }

    // Hand-computed from types.proto:
    //   Request.echo is field 1, length-delimited: key (1 << 3) | 2 = 0x0a.
    //   RequestEcho.message is field 1, string: key 0x0a, length 5, "hello".
    //   So the body is 0a 07 0a 05 68 65 6c 6c 6f (9 bytes), framed by the
    //   uvarint 9 (0x09). Go's WriteMessage produces the same bytes.
    const ECHO_HELLO: [u8; 10] = [0x09, 0x0a, 0x07, 0x0a, 0x05, b'h', b'e', b'l', b'l', b'o'];
    //   Request.flush is field 2: key (2 << 3) | 2 = 0x12, empty body 0x00.
    const FLUSH: [u8; 3] = [0x02, 0x12, 0x00];
    //   Response.flush is field 3: key 0x1a.
    const RESPONSE_FLUSH: [u8; 3] = [0x02, 0x1a, 0x00];
    //   Response.echo is field 2: key 0x12.
    const RESPONSE_ECHO_HELLO: [u8; 10] =
        [0x09, 0x12, 0x07, 0x0a, 0x05, b'h', b'e', b'l', b'l', b'o'];

    #[test]
    fn golden_request_frames() {
        assert_eq!(frame(&echo_request("hello")), ECHO_HELLO);
        assert_eq!(frame(&flush_request()), FLUSH);
    }

    #[test]
    fn golden_response_frames() {
        let flush = Response {
            value: Some(response::Value::Flush(ResponseFlush {})),
        };
        let echo = Response {
            value: Some(response::Value::Echo(ResponseEcho {
                message: "hello".into(),
            })),
        };
        assert_eq!(frame(&flush), RESPONSE_FLUSH);
        assert_eq!(frame(&echo), RESPONSE_ECHO_HELLO);
    }

    #[test]
    fn multi_byte_length_prefix() {
        // 300 = 0b1_0010_1100: low 7 bits 0x2c with the continuation bit,
        // then 0x02. The body is 0a, uvarint(297) = a9 02, 0a, uvarint(294) = a6 02, text.
        let message = "x".repeat(294);
        let bytes = frame(&echo_request(&message));
        assert_eq!(&bytes[..7], &[0xac, 0x02, 0x0a, 0xa9, 0x02, 0x0a, 0xa6]);
        assert_eq!(bytes.len(), 2 + 300);
    }

    #[tokio::test]
    async fn reads_back_what_it_writes() {
        let mut bytes = ECHO_HELLO.to_vec();
        bytes.extend_from_slice(&FLUSH);
        let mut reader = FrameReader::new(&bytes[..], DEFAULT_MAX_FRAME_SIZE);
        assert!(reader.read::<Request>().await.ok().flatten() == Some(echo_request("hello")));
        assert!(reader.read::<Request>().await.ok().flatten() == Some(flush_request()));
        assert!(matches!(reader.read::<Request>().await, Ok(None)));
    }

    #[tokio::test]
    async fn refuses_oversized_frame_before_reading_it() {
        // Announces 2^40 bytes and sends none of them.
        let mut bytes = Vec::new();
        prost::encoding::encode_varint(1 << 40, &mut bytes);
        let mut reader = FrameReader::new(&bytes[..], 1024);
        let error = reader.read::<Request>().await;
        assert!(matches!(
            error,
            Err(Error::Decode(CodecError::FrameTooLarge { len, max: 1024 })) if len == 1 << 40
        ));
    }

    #[tokio::test]
    async fn reports_varint_overflow() {
        let bytes = [0xff; 11];
        let mut reader = FrameReader::new(&bytes[..], 1024);
        let error = reader.read::<Request>().await;
        assert!(matches!(
            error,
            Err(Error::Decode(CodecError::VarintOverflow))
        ));
    }

    #[tokio::test]
    async fn recognises_v034_zigzag_framing() {
        // Go v0.34's binary.PutVarint(9) is zigzag 18 = 0x12.
        let mut bytes = vec![0x12];
        bytes.extend_from_slice(&RESPONSE_ECHO_HELLO[1..]);
        bytes.extend_from_slice(&[0x04, 0x1a, 0x00]);
        let mut reader = FrameReader::new(&bytes[..], 1024);
        let error = reader.read::<Response>().await;
        assert!(
            matches!(error, Err(Error::Decode(CodecError::LegacyFraming))),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn recognises_http() {
        let bytes = b"HTTP/1.1 400 Bad Request\r\n\r\n";
        let mut reader = FrameReader::new(&bytes[..], 1 << 20);
        let error = reader.read::<Response>().await;
        assert!(
            matches!(error, Err(Error::Decode(CodecError::NotAbci(_)))),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn reports_truncated_frame() {
        let bytes = &ECHO_HELLO[..6];
        let mut reader = FrameReader::new(bytes, 1024);
        let error = reader.read::<Request>().await;
        assert!(matches!(
            error,
            Err(Error::Decode(CodecError::Truncated { received: 6 }))
        ));
    }

    #[tokio::test]
    async fn reports_unknown_message_kind() {
        // Field 7 was v0.34's Request.begin_block; v0.38 reserves it.
        let bytes = [0x02, 0x3a, 0x00];
        let mut reader = FrameReader::new(&bytes[..], 1024);
        let error = reader.read::<Request>().await;
        assert!(matches!(
            error,
            Err(Error::Decode(CodecError::UnknownMessage {
                what: "Request"
            }))
        ));
    }
}
