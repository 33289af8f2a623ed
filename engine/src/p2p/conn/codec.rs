//! The MConnection packet format and its streaming decoder.
//!
//! The plaintext stream inside a SecretConnection is a sequence of
//! `uvarint(len) ‖ tendermint.p2p.Packet` (CometBFT's `libs/protoio`
//! framing). A packet is a ping, a pong, or a `PacketMsg{channel_id, eof,
//! data}` carrying at most `max_packet_payload` bytes of one channel
//! message; the last packet of a message has `eof` set.
//!
//! This module is pure: no I/O, no clock. It never trusts the peer: the
//! decoder refuses a length prefix above [`PacketCodec::max_packet_size`]
//! before buffering anything, refuses unknown channels, and refuses a
//! message that would grow past its channel's receive capacity, so what it
//! holds is bounded by one packet plus one partial message per channel.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use tendermint_proto::v0_38::p2p::{packet::Sum, Packet, PacketMsg};

use super::{normalize, ChannelDescriptor, ConnError};

/// A ping on the wire: `uvarint(2) ‖ Packet{packet_ping (field 1): {}}`.
pub const PING: [u8; 3] = [0x02, 0x0a, 0x00];
/// A pong on the wire: `uvarint(2) ‖ Packet{packet_pong (field 2): {}}`.
pub const PONG: [u8; 3] = [0x02, 0x12, 0x00];

/// Protobuf keys (`field << 3 | wire type`) of the fields we write by hand.
const KEY_PACKET_MSG: u8 = 3 << 3 | 2; // Packet.packet_msg, length-delimited
const KEY_CHANNEL_ID: u8 = 1 << 3; // PacketMsg.channel_id, varint
const KEY_EOF: u8 = 2 << 3; // PacketMsg.eof, varint
const KEY_DATA: u8 = 3 << 3 | 2; // PacketMsg.data, length-delimited

/// The longest length prefix `binary.ReadUvarint` accepts.
const MAX_UVARINT_LEN: u32 = 10;

/// Splits channel messages into packets and encodes them.
///
/// Packets are written by hand rather than through prost so that no data
/// is copied into an intermediate `Vec`; tests prove the bytes equal
/// prost's encoding of the same `tendermint.p2p.Packet`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketCodec {
    max_payload: usize,
}

impl PacketCodec {
    /// A codec that puts at most `max_payload` data bytes in a packet
    /// (CometBFT's `max_packet_msg_payload_size`, 1024 by default). A
    /// payload of 0 is treated as 1, since no message could be split.
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_payload: max_payload.max(1),
        }
    }

    /// The most data bytes one packet carries.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The largest packet (without its length prefix) a peer may send: the
    /// encoded size of `Packet{PacketMsg{channel_id: 1, eof: true, data:
    /// max_payload bytes}}`, as CometBFT's `maxPacketMsgSize` computes it
    /// (1034 for a payload of 1024).
    pub fn max_packet_size(&self) -> usize {
        packet_len(1, true, self.max_payload)
    }

    /// Appends one packet of channel `channel` carrying `chunk` to `buf`
    /// and returns how many bytes were written, prefix included. The caller
    /// keeps `chunk` at most [`max_payload`](Self::max_payload) long.
    pub fn encode_packet(&self, buf: &mut BytesMut, channel: u8, chunk: &[u8], eof: bool) -> usize {
        let body = msg_body_len(channel, eof, chunk.len());
        let packet = 1 + uvarint_len(body as u64) + body;
        let start = buf.len();
        buf.reserve(uvarint_len(packet as u64) + packet);
        put_uvarint(buf, packet as u64);
        buf.put_u8(KEY_PACKET_MSG);
        put_uvarint(buf, body as u64);
        // proto3 leaves out fields holding their default value, as gogoproto does.
        if channel != 0 {
            buf.put_u8(KEY_CHANNEL_ID);
            put_uvarint(buf, u64::from(channel));
        }
        if eof {
            buf.put_u8(KEY_EOF);
            buf.put_u8(1);
        }
        if !chunk.is_empty() {
            buf.put_u8(KEY_DATA);
            put_uvarint(buf, chunk.len() as u64);
            buf.put_slice(chunk);
        }
        buf.len() - start
    }

    /// Appends every packet of one message on `channel` to `buf`: chunks of
    /// `max_payload` bytes, `eof` on the last; an empty message is a single
    /// packet with `eof` and no data. Returns the bytes written.
    pub fn encode_message(&self, buf: &mut BytesMut, channel: u8, msg: &[u8]) -> usize {
        if msg.is_empty() {
            return self.encode_packet(buf, channel, &[], true);
        }
        let mut written = 0;
        let mut chunks = msg.chunks(self.max_payload).peekable();
        while let Some(chunk) = chunks.next() {
            written += self.encode_packet(buf, channel, chunk, chunks.peek().is_none());
        }
        written
    }
}

/// Encoded length of a `PacketMsg` body.
fn msg_body_len(channel: u8, eof: bool, data_len: usize) -> usize {
    let mut len = 0;
    if channel != 0 {
        len += 1 + uvarint_len(u64::from(channel));
    }
    if eof {
        len += 2;
    }
    if data_len != 0 {
        len += 1 + uvarint_len(data_len as u64) + data_len;
    }
    len
}

/// Encoded length of a `Packet` wrapping a `PacketMsg`, without the prefix.
fn packet_len(channel: u8, eof: bool, data_len: usize) -> usize {
    let body = msg_body_len(channel, eof, data_len);
    1 + uvarint_len(body as u64) + body
}

fn uvarint_len(value: u64) -> usize {
    // Each byte carries 7 bits; 0 still takes one byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_uvarint(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// What the decoder hands over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer pinged; it expects a pong.
    Ping,
    /// The peer answered our ping.
    Pong,
    /// A complete message on one channel.
    Message {
        /// The channel it arrived on.
        channel: u8,
        /// The reassembled message.
        data: Bytes,
    },
}

/// Where the decoder is within the next packet.
#[derive(Debug)]
enum State {
    /// Reading the uvarint length prefix: the bits so far and their shift.
    Length { value: u64, shift: u32 },
    /// Reading a body of `len` bytes; `partial` holds what arrived of it in
    /// earlier chunks (empty while a body can be decoded in place).
    Body { len: usize, partial: Vec<u8> },
}

/// A message being reassembled on one channel.
#[derive(Debug)]
struct Reassembly {
    capacity: usize,
    received: Vec<u8>,
}

/// Turns the peer's byte stream, cut anywhere, into pings, pongs and whole
/// channel messages.
///
#[derive(Debug)]
pub struct Decoder {
    max_packet: usize,
    /// Indexed by channel id; `None` for channels not open on this connection.
    channels: Vec<Option<Reassembly>>,
    state: State,
    /// The first error; every later call returns it again.
    failed: Option<ConnError>,
}

impl Decoder {
    /// A decoder accepting packets of up to the size a peer with payload
    /// `max_payload` sends, on `channels` only (the first descriptor of a
    /// duplicated id wins).
    pub fn new(channels: &[ChannelDescriptor], max_payload: usize) -> Self {
        let mut table: Vec<Option<Reassembly>> = (0..=u8::MAX).map(|_| None).collect();
        for desc in normalize(channels.to_vec()) {
            table[usize::from(desc.id)] = Some(Reassembly {
                capacity: desc.recv_message_capacity,
                received: Vec::new(),
            });
        }
        Self {
            max_packet: PacketCodec::new(max_payload).max_packet_size(),
            channels: table,
            state: State::Length { value: 0, shift: 0 },
            failed: None,
        }
    }

    /// Consumes bytes from the front of `input` until one event is complete
    /// (returned, with `input` left at the first byte after it) or `input`
    /// is used up (`Ok(None)`; the partial packet is kept for the next
    /// call). Call again with the rest of the input until it returns `None`.
    ///
    /// An error is final: the stream is out of sync, the connection must
    /// end, and every later call returns the same error.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Event>, ConnError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.step(input);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    fn step(&mut self, input: &mut &[u8]) -> Result<Option<Event>, ConnError> {
        loop {
            match &mut self.state {
                State::Length { value, shift } => {
                    let Some((&byte, rest)) = input.split_first() else {
                        return Ok(None);
                    };
                    *input = rest;
                    // As Go's binary.ReadUvarint: at most 10 bytes, and the
                    // 10th may only carry the 64th bit.
                    if *shift / 7 == MAX_UVARINT_LEN - 1 && byte > 1 {
                        return Err(ConnError::InvalidLength);
                    }
                    *value |= u64::from(byte & 0x7f) << *shift;
                    if byte & 0x80 != 0 {
                        *shift += 7;
                        continue;
                    }
                    let len = *value;
                    if len > self.max_packet as u64 {
                        return Err(ConnError::PacketTooLarge {
                            len,
                            max: self.max_packet,
                        });
                    }
                    // Fits in usize: it is at most max_packet.
                    self.state = State::Body {
                        len: len as usize,
                        partial: Vec::new(),
                    };
                }
                State::Body { len, partial } => {
                    let len = *len;
                    let event = if partial.is_empty() && input.len() >= len {
                        // The whole body is in this chunk: decode it in place.
                        let (body, rest) = input.split_at(len);
                        *input = rest;
                        self.state = State::Length { value: 0, shift: 0 };
                        self.packet(body)?
                    } else {
                        let take = (len - partial.len()).min(input.len());
                        partial.reserve_exact(len - partial.len());
                        partial.extend_from_slice(&input[..take]);
                        *input = &input[take..];
                        if partial.len() < len {
                            return Ok(None);
                        }
                        let body = std::mem::take(partial);
                        self.state = State::Length { value: 0, shift: 0 };
                        self.packet(&body)?
                    };
                    if event.is_some() {
                        return Ok(event);
                    }
                }
            }
        }
    }

    /// Decodes all of `chunk`, collecting the events. A convenience over
    /// [`decode`](Self::decode) for callers that need no backpressure.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, ConnError> {
        let mut input = chunk;
        let mut events = Vec::new();
        while let Some(event) = self.decode(&mut input)? {
            events.push(event);
        }
        Ok(events)
    }

    /// Bytes held for incomplete packets and messages. Never more than one
    /// packet plus each open channel's receive capacity.
    pub fn buffered(&self) -> usize {
        let partial = match &self.state {
            State::Length { .. } => 0,
            State::Body { partial, .. } => partial.len(),
        };
        let messages: usize = self
            .channels
            .iter()
            .flatten()
            .map(|r| r.received.len())
            .sum();
        partial + messages
    }

    /// Handles one complete packet body.
    fn packet(&mut self, body: &[u8]) -> Result<Option<Event>, ConnError> {
        match Packet::decode(body)?.sum {
            Some(Sum::PacketPing(_)) => Ok(Some(Event::Ping)),
            Some(Sum::PacketPong(_)) => Ok(Some(Event::Pong)),
            Some(Sum::PacketMsg(msg)) => self.reassemble(msg),
            None => Err(ConnError::UnknownPacket),
        }
    }

    fn reassemble(&mut self, msg: PacketMsg) -> Result<Option<Event>, ConnError> {
        let unknown = ConnError::UnknownChannel(msg.channel_id);
        let channel = u8::try_from(msg.channel_id).map_err(|_| unknown.clone())?;
        let slot = self.channels[usize::from(channel)]
            .as_mut()
            .ok_or(unknown)?;
        let size = slot.received.len() + msg.data.len();
        if size > slot.capacity {
            return Err(ConnError::MessageTooLarge {
                channel,
                size,
                capacity: slot.capacity,
            });
        }
        if slot.received.is_empty() {
            if msg.eof {
                // A message in one packet: hand over the decoded buffer itself.
                return Ok(Some(Event::Message {
                    channel,
                    data: Bytes::from(msg.data),
                }));
            }
            slot.received = msg.data;
        } else {
            slot.received.extend_from_slice(&msg.data);
        }
        if !msg.eof {
            return Ok(None);
        }
        let data = Bytes::from(std::mem::take(&mut slot.received));
        Ok(Some(Event::Message { channel, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tendermint_proto::v0_38::p2p::{PacketPing, PacketPong};

    fn desc(id: u8, recv_message_capacity: usize) -> ChannelDescriptor {
        ChannelDescriptor {
            id,
            priority: 1,
            send_queue_capacity: 1,
            recv_message_capacity,
        }
    }

    /// Channels used by most tests: 0x00 (id omitted on the wire), 0x20,
    /// 0x21 (a 1 MiB capacity) and a small 0x30.
    fn channels() -> Vec<ChannelDescriptor> {
        vec![
            desc(0x00, 4096),
            desc(0x20, 1 << 20),
            desc(0x21, 1 << 20),
            desc(0x30, 100),
        ]
    }

    fn prost_packet(sum: Sum) -> Vec<u8> {
        Packet { sum: Some(sum) }.encode_length_delimited_to_vec()
    }

    fn prost_msg(channel_id: i32, eof: bool, data: &[u8]) -> Vec<u8> {
        prost_packet(Sum::PacketMsg(PacketMsg {
            channel_id,
            eof,
            data: data.to_vec(),
        }))
    }

    fn encode(channel: u8, msg: &[u8]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        PacketCodec::new(1024).encode_message(&mut buf, channel, msg);
        buf.to_vec()
    }

    fn msg(channel: u8, data: &[u8]) -> Event {
        Event::Message {
            channel,
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn ping_and_pong_golden_bytes() {
        // Packet{packet_ping = 1: PacketPing{}}: key (1 << 3 | 2) = 0x0a, an
        // empty submessage has length 0x00; the Packet is 2 bytes, so the
        // uvarint prefix is 0x02. Pong is the same with field 2: key 0x12.
        assert_eq!(PING, [0x02, 0x0a, 0x00]);
        assert_eq!(PONG, [0x02, 0x12, 0x00]);
        assert_eq!(prost_packet(Sum::PacketPing(PacketPing {})), PING);
        assert_eq!(prost_packet(Sum::PacketPong(PacketPong {})), PONG);
    }

    #[test]
    fn packet_msg_golden_bytes() {
        // PacketMsg{channel_id = 1: 0x20, eof = 2: true, data = 3: "ab"}:
        //   08 20       key (1 << 3 | 0), varint 0x20
        //   10 01       key (2 << 3 | 0), true
        //   1a 02 61 62 key (3 << 3 | 2), length 2, "ab"
        // = 8 bytes; Packet{packet_msg = 3: that}: 1a 08 ‖ body = 10 bytes;
        // prefix uvarint(10) = 0a.
        let golden = [
            0x0a, 0x1a, 0x08, 0x08, 0x20, 0x10, 0x01, 0x1a, 0x02, 0x61, 0x62,
        ];
        assert_eq!(encode(0x20, b"ab"), golden);
        assert_eq!(prost_msg(0x20, true, b"ab"), golden);
        assert_eq!(
            Decoder::new(&channels(), 1024)
                .push(&golden)
                .expect("decodes"),
            [msg(0x20, b"ab")]
        );
    }

    #[test]
    fn empty_message_is_one_packet_with_eof_and_no_data() {
        // Body 08 20 10 01 (data omitted as proto3 does), wrapped 1a 04,
        // prefix 06.
        let golden = [0x06, 0x1a, 0x04, 0x08, 0x20, 0x10, 0x01];
        assert_eq!(encode(0x20, b""), golden);
        assert_eq!(prost_msg(0x20, true, b""), golden);
        assert_eq!(
            Decoder::new(&channels(), 1024)
                .push(&golden)
                .expect("decodes"),
            [msg(0x20, b"")]
        );
    }

    #[test]
    fn max_packet_size_is_cometbfts_1034() {
        // Go: len(Marshal(Packet{PacketMsg{ChannelID: 1, EOF: true, Data: 1024 B}})).
        assert_eq!(PacketCodec::new(1024).max_packet_size(), 1034);
        for payload in [1, 2, 127, 128, 1000, 1024, 16383, 16384, 70000] {
            let data = vec![7; payload];
            let full = Packet {
                sum: Some(Sum::PacketMsg(PacketMsg {
                    channel_id: 1,
                    eof: true,
                    data,
                })),
            };
            assert_eq!(
                PacketCodec::new(payload).max_packet_size(),
                full.encoded_len(),
                "{payload}"
            );
        }
    }

    #[test]
    fn a_long_message_splits_into_full_packets_with_eof_on_the_last() {
        let message: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let mut expected = prost_msg(0x21, false, &message[..1024]);
        expected.extend(prost_msg(0x21, false, &message[1024..2048]));
        expected.extend(prost_msg(0x21, true, &message[2048..]));
        assert_eq!(encode(0x21, &message), expected);
    }

    #[test]
    fn a_full_packet_on_the_highest_one_byte_channel_fits_the_limit() {
        // Channel ids below 0x80 take one varint byte, as Go's channel 1 does.
        let full = encode(0x7f, &[1; 1024]);
        assert_eq!(full.len(), 2 + 1034);
        let events = Decoder::new(&[desc(0x7f, 1024)], 1024)
            .push(&full)
            .expect("decodes");
        assert_eq!(events, [msg(0x7f, &[1; 1024])]);
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let mut stream = encode(0x20, b"hello");
        stream.extend(PING);
        stream.extend(encode(0x21, &[9; 3000]));
        stream.extend(PONG);
        stream.extend(encode(0x00, b"pex"));
        let whole = Decoder::new(&channels(), 1024)
            .push(&stream)
            .expect("decodes");
        let mut dec = Decoder::new(&channels(), 1024);
        let mut bytewise = Vec::new();
        for byte in &stream {
            bytewise.extend(dec.push(std::slice::from_ref(byte)).expect("decodes"));
        }
        assert_eq!(whole, bytewise);
        assert_eq!(
            whole,
            [
                msg(0x20, b"hello"),
                Event::Ping,
                msg(0x21, &[9; 3000]),
                Event::Pong,
                msg(0x00, b"pex")
            ]
        );
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn decode_stops_after_each_event_and_leaves_the_rest() {
        let mut stream = PING.to_vec();
        stream.extend(encode(0x20, b"x"));
        let mut dec = Decoder::new(&channels(), 1024);
        let mut input = &stream[..];
        assert_eq!(dec.decode(&mut input).expect("decodes"), Some(Event::Ping));
        assert_eq!(input, &encode(0x20, b"x")[..]);
        assert_eq!(
            dec.decode(&mut input).expect("decodes"),
            Some(msg(0x20, b"x"))
        );
        assert!(input.is_empty());
        assert_eq!(dec.decode(&mut input).expect("decodes"), None);
    }

    #[test]
    fn length_prefix_above_the_maximum_is_refused_before_buffering() {
        // uvarint(1035) = 8b 08.
        let mut dec = Decoder::new(&channels(), 1024);
        assert_eq!(
            dec.push(&[0x8b, 0x08]),
            Err(ConnError::PacketTooLarge {
                len: 1035,
                max: 1034
            })
        );
        // Exactly the maximum is accepted (and waits for its body).
        let mut dec = Decoder::new(&channels(), 1024);
        assert_eq!(dec.push(&[0x8a, 0x08]), Ok(vec![]));
        // A huge announced length is refused with nothing buffered.
        let mut dec = Decoder::new(&channels(), 1024);
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            dec.push(&huge),
            Err(ConnError::PacketTooLarge {
                len: u64::MAX,
                max: 1034
            })
        );
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn overlong_or_overflowing_uvarint_is_refused() {
        let mut dec = Decoder::new(&channels(), 1024);
        assert_eq!(dec.push(&[0x80; 10]), Err(ConnError::InvalidLength));
        let mut dec = Decoder::new(&channels(), 1024);
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(dec.push(&overflow), Err(ConnError::InvalidLength));
        // A non-minimal encoding of a small length is fine, as in Go.
        let mut dec = Decoder::new(&channels(), 1024);
        assert_eq!(dec.push(&[0x82, 0x00, 0x0a, 0x00]), Ok(vec![Event::Ping]));
    }

    #[test]
    fn message_beyond_its_channel_capacity_is_refused() {
        // 0x30 takes 100 bytes: exactly 100 passes, 101 fails on the packet
        // that crosses the limit.
        let mut dec = Decoder::new(&channels(), 1024);
        assert_eq!(
            dec.push(&encode(0x30, &[1; 100])).expect("decodes"),
            [msg(0x30, &[1; 100])]
        );
        let mut dec = Decoder::new(&channels(), 60);
        let mut buf = BytesMut::new();
        PacketCodec::new(60).encode_message(&mut buf, 0x30, &[1; 101]);
        assert_eq!(
            dec.push(&buf),
            Err(ConnError::MessageTooLarge {
                channel: 0x30,
                size: 101,
                capacity: 100
            })
        );
        // A 1 MiB channel takes exactly 1 MiB.
        let big = vec![3; 1 << 20];
        let mut dec = Decoder::new(&channels(), 1024);
        assert_eq!(
            dec.push(&encode(0x21, &big)).expect("decodes"),
            [msg(0x21, &big)]
        );
        let mut dec = Decoder::new(&channels(), 1024);
        assert!(matches!(
            dec.push(&encode(0x21, &[3; (1 << 20) + 1])),
            Err(ConnError::MessageTooLarge { channel: 0x21, .. })
        ));
    }

    #[test]
    fn unknown_channels_are_refused() {
        let mut dec = Decoder::new(&channels(), 1024);
        assert_eq!(
            dec.push(&encode(0x99, b"x")),
            Err(ConnError::UnknownChannel(0x99))
        );
        for id in [-1, 256, i32::MAX, i32::MIN] {
            let mut dec = Decoder::new(&channels(), 1024);
            assert_eq!(
                dec.push(&prost_msg(id, true, b"x")),
                Err(ConnError::UnknownChannel(id))
            );
        }
    }

    #[test]
    fn packets_that_are_not_ping_pong_or_msg_are_refused() {
        // An empty Packet (length 0), and one holding only an unknown field 4.
        let mut dec = Decoder::new(&channels(), 1024);
        assert_eq!(dec.push(&[0x00]), Err(ConnError::UnknownPacket));
        let mut dec = Decoder::new(&channels(), 1024);
        assert_eq!(dec.push(&[0x02, 0x22, 0x00]), Err(ConnError::UnknownPacket));
        // Truncated protobuf inside a complete frame.
        let mut dec = Decoder::new(&channels(), 1024);
        assert!(matches!(
            dec.push(&[0x03, 0x1a, 0x05, 0x08]),
            Err(ConnError::Decode(_))
        ));
    }

    #[test]
    fn interleaved_channels_reassemble_separately() {
        let codec = PacketCodec::new(4);
        let mut buf = BytesMut::new();
        codec.encode_packet(&mut buf, 0x20, b"abcd", false);
        codec.encode_packet(&mut buf, 0x21, b"wxyz", false);
        buf.put_slice(&PING);
        codec.encode_packet(&mut buf, 0x20, b"ef", true);
        codec.encode_packet(&mut buf, 0x21, b"!", true);
        let mut dec = Decoder::new(&channels(), 4);
        let events = dec.push(&buf).expect("decodes");
        assert_eq!(
            events,
            [Event::Ping, msg(0x20, b"abcdef"), msg(0x21, b"wxyz!")]
        );
    }

    /// A message on one of [`channels`], within its capacity.
    fn channel_message() -> impl Strategy<Value = (u8, Vec<u8>)> {
        prop_oneof![
            (
                Just(0x00u8),
                proptest::collection::vec(any::<u8>(), 0..3000)
            ),
            (
                Just(0x20u8),
                proptest::collection::vec(any::<u8>(), 0..3000)
            ),
            (
                Just(0x21u8),
                proptest::collection::vec(any::<u8>(), 0..5000)
            ),
            (
                Just(0x30u8),
                proptest::collection::vec(any::<u8>(), 0..=100)
            ),
        ]
    }

    /// Cuts `stream` at the given points (taken modulo its length).
    fn chunks(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        points
            .windows(2)
            .map(|w| stream[w[0]..w[1]].to_vec())
            .collect()
    }

    proptest! {
        #[test]
        fn hand_encoding_equals_prost(channel in any::<u8>(), eof in any::<bool>(),
                                      data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut buf = BytesMut::new();
            let n = PacketCodec::new(2000).encode_packet(&mut buf, channel, &data, eof);
            prop_assert_eq!(n, buf.len());
            prop_assert_eq!(buf.to_vec(), prost_msg(i32::from(channel), eof, &data));
        }

        #[test]
        fn uvarint_matches_prost(value in any::<u64>()) {
            let mut buf = BytesMut::new();
            put_uvarint(&mut buf, value);
            prop_assert_eq!(buf.len(), uvarint_len(value));
            prop_assert_eq!(prost::decode_length_delimiter(&buf[..]).map(|v| v as u64), Ok(value));
        }

        /// decode(encode(x)) == x with packets of different channels
        /// interleaved at random, pings and pongs mixed in, and the byte
        /// stream cut at random points.
        #[test]
        fn round_trip_interleaved_and_chunked(
            messages in proptest::collection::vec(channel_message(), 0..12),
            payload in 1usize..1100,
            picks in proptest::collection::vec(any::<u16>(), 0..400),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let codec = PacketCodec::new(payload);
            // Per channel, the queue of packets (own encoding of each message).
            let mut lanes: Vec<(u8, std::collections::VecDeque<Vec<u8>>)> = Vec::new();
            for (channel, data) in &messages {
                let mut packets = Vec::new();
                let mut chunks = data.chunks(payload).peekable();
                if data.is_empty() {
                    let mut buf = BytesMut::new();
                    codec.encode_packet(&mut buf, *channel, &[], true);
                    packets.push(buf.to_vec());
                }
                while let Some(chunk) = chunks.next() {
                    let mut buf = BytesMut::new();
                    codec.encode_packet(&mut buf, *channel, chunk, chunks.peek().is_none());
                    packets.push(buf.to_vec());
                }
                match lanes.iter_mut().find(|(c, _)| c == channel) {
                    Some((_, q)) => q.extend(packets),
                    None => lanes.push((*channel, packets.into())),
                }
            }
            // Merge the lanes in a random order that keeps each lane's order.
            let mut stream = Vec::new();
            let mut picks = picks.into_iter();
            let (mut pings, mut pongs) = (0, 0);
            loop {
                let open: Vec<usize> = (0..lanes.len()).filter(|&i| !lanes[i].1.is_empty()).collect();
                if open.is_empty() {
                    break;
                }
                let pick = picks.next().unwrap_or(0);
                match pick % 13 {
                    11 => { stream.extend(PING); pings += 1; }
                    12 => { stream.extend(PONG); pongs += 1; }
                    _ => {}
                }
                let lane = open[usize::from(pick) % open.len()];
                let packet = lanes[lane].1.pop_front().expect("lane is open");
                stream.extend(packet);
            }
            let mut dec = Decoder::new(&channels(), payload);
            let mut events = Vec::new();
            for chunk in chunks(&stream, &cuts) {
                events.extend(dec.push(&chunk).expect("own encoding decodes"));
            }
            prop_assert_eq!(dec.buffered(), 0);
            prop_assert_eq!(events.iter().filter(|e| **e == Event::Ping).count(), pings);
            prop_assert_eq!(events.iter().filter(|e| **e == Event::Pong).count(), pongs);
            for channel in [0x00, 0x20, 0x21, 0x30] {
                let sent: Vec<&[u8]> = messages.iter()
                    .filter(|(c, _)| *c == channel).map(|(_, d)| &d[..]).collect();
                let got: Vec<&[u8]> = events.iter().filter_map(|e| match e {
                    Event::Message { channel: c, data } if *c == channel => Some(&data[..]),
                    _ => None,
                }).collect();
                prop_assert_eq!(sent, got);
            }
        }

        /// Random bytes never panic the decoder and never make it hold more
        /// than one packet plus each channel's capacity.
        #[test]
        fn garbage_never_panics_and_stays_bounded(
            garbage in proptest::collection::vec(any::<u8>(), 0..4000),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let mut dec = Decoder::new(&channels(), 1024);
            let bound = 1034 + 4096 + 2 * (1 << 20) + 100;
            for chunk in chunks(&garbage, &cuts) {
                let result = dec.push(&chunk);
                prop_assert!(dec.buffered() <= bound);
                if result.is_err() {
                    break;
                }
            }
        }

        /// Well-formed packets with random fields (unknown channels, huge
        /// messages, bad flags) give typed errors, never panics.
        #[test]
        fn random_packets_give_typed_results(
            packets in proptest::collection::vec(
                (any::<i32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..1100)), 0..20),
        ) {
            let mut dec = Decoder::new(&channels(), 1024);
            for (channel_id, eof, data) in packets {
                let packet = Packet { sum: Some(Sum::PacketMsg(PacketMsg { channel_id, eof, data })) };
                let result = dec.push(&packet.encode_length_delimited_to_vec());
                match &result {
                    Ok(_) => {}
                    Err(ConnError::UnknownChannel(c)) => prop_assert_eq!(*c, channel_id),
                    Err(ConnError::PacketTooLarge { len, max }) => {
                        prop_assert_eq!(*len, packet.encoded_len() as u64);
                        prop_assert!(*len > *max as u64);
                    }
                    Err(ConnError::MessageTooLarge { channel, .. }) => {
                        prop_assert_eq!(i32::from(*channel), channel_id)
                    }
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
                if result.is_err() {
                    // The decoder stays failed with the same error.
                    prop_assert_eq!(dec.push(&PING), result.map(|_| vec![]));
                    break;
                }
            }
        }
    }
}
