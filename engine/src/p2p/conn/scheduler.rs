//! Which channel's packet goes out next.
//!
//! CometBFT's rule (`selectChannelToGossipOn`): among channels with data
//! pending, the one with the least `recently_sent / priority`, where
//! `recently_sent` counts the bytes a channel wrote and decays ×0.8 every
//! 2 s. A channel works through one message at a time, so messages of one
//! channel stay in order while packets of different channels interleave.
//!
//! Pure: time comes in as the elapsed time since the connection started.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::{normalize, ChannelDescriptor, PacketCodec};

/// How often `recently_sent` decays (CometBFT's `updateStats`).
pub const DECAY_PERIOD: Duration = Duration::from_secs(2);

/// After this many decays any `u64` is 0 (0.8^200 · 2^64 < 1).
const DECAYS_TO_ZERO: u64 = 200;

#[derive(Debug)]
struct Lane {
    id: u8,
    priority: u32,
    /// Encoded bytes written, prefixes included, decayed over time.
    recently_sent: u64,
    /// What is left to send of the current message; `Some(empty)` for an
    /// empty message, which still takes one packet.
    sending: Option<Bytes>,
}

/// Picks the next packet to send among the connection's channels
/// ("lanes", in descriptor order).
#[derive(Debug)]
pub struct Scheduler {
    lanes: Vec<Lane>,
    /// Decay periods already applied.
    decays: u64,
}

impl Scheduler {
    /// One lane per channel, in descriptor order (duplicated ids keep the
    /// first; a priority of 0 counts as 1).
    pub fn new(channels: &[ChannelDescriptor]) -> Self {
        let lanes = normalize(channels.to_vec())
            .into_iter()
            .map(|d| Lane {
                id: d.id,
                priority: d.priority,
                recently_sent: 0,
                sending: None,
            })
            .collect();
        Self { lanes, decays: 0 }
    }

    /// How many lanes there are.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The channel id of `lane`.
    pub fn lane_id(&self, lane: usize) -> u8 {
        self.lanes[lane].id
    }

    /// The lane of channel `id`, if it is open.
    pub fn lane_of(&self, id: u8) -> Option<usize> {
        self.lanes.iter().position(|l| l.id == id)
    }

    /// Whether `lane` has no message in progress and can take the next one.
    pub fn is_free(&self, lane: usize) -> bool {
        self.lanes[lane].sending.is_none()
    }

    /// Gives `lane` its next message; hands it back if the lane is still
    /// sending the previous one.
    pub fn load(&mut self, lane: usize, msg: Bytes) -> Result<(), Bytes> {
        let slot = &mut self.lanes[lane].sending;
        if slot.is_some() {
            return Err(msg);
        }
        *slot = Some(msg);
        Ok(())
    }

    /// Whether any lane has data to send.
    pub fn has_pending(&self) -> bool {
        self.lanes.iter().any(|l| l.sending.is_some())
    }

    /// The decayed byte count of `lane`.
    pub fn recently_sent(&self, lane: usize) -> u64 {
        self.lanes[lane].recently_sent
    }

    /// Applies the ×0.8 decay once for every [`DECAY_PERIOD`] boundary
    /// passed between the last call and `elapsed` (time since the start).
    pub fn decay_to(&mut self, elapsed: Duration) {
        let periods =
            u64::try_from(elapsed.as_nanos() / DECAY_PERIOD.as_nanos()).unwrap_or(u64::MAX);
        let due = periods.saturating_sub(self.decays);
        self.decays = self.decays.max(periods);
        for lane in &mut self.lanes {
            if due >= DECAYS_TO_ZERO {
                lane.recently_sent = 0;
                continue;
            }
            for _ in 0..due {
                // floor(0.8 · x), exact in integers.
                lane.recently_sent = (u128::from(lane.recently_sent) * 4 / 5) as u64;
            }
        }
    }

    /// The lane that sends next: least `recently_sent / priority` among
    /// lanes with data; on a tie, the earliest lane.
    pub fn pick(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            if lane.sending.is_none() {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    let b = &self.lanes[b];
                    // a.sent / a.prio < b.sent / b.prio, without division.
                    u128::from(lane.recently_sent) * u128::from(b.priority)
                        < u128::from(b.recently_sent) * u128::from(lane.priority)
                }
            };
            if better {
                best = Some(i);
            }
        }
        best
    }

    /// Encodes the next packet of the lane [`pick`](Self::pick) chooses into
    /// `buf`, charges its bytes to that lane, and returns the lane; `None`
    /// if nothing is pending. The lane is free again after its last packet.
    pub fn next_packet(&mut self, codec: &PacketCodec, buf: &mut BytesMut) -> Option<usize> {
        let index = self.pick()?;
        let lane = &mut self.lanes[index];
        let msg = lane.sending.as_mut()?;
        let eof = msg.len() <= codec.max_payload();
        let chunk = msg.split_to(msg.len().min(codec.max_payload()));
        let written = codec.encode_packet(buf, lane.id, &chunk, eof);
        if eof {
            lane.sending = None;
        }
        lane.recently_sent = lane.recently_sent.saturating_add(written as u64);
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{Decoder, Event};
    use super::*;

    fn desc(id: u8, priority: u32) -> ChannelDescriptor {
        ChannelDescriptor {
            id,
            priority,
            send_queue_capacity: 1,
            recv_message_capacity: 1 << 20,
        }
    }

    #[test]
    fn nothing_pending_picks_nothing() {
        let mut s = Scheduler::new(&[desc(0x20, 1)]);
        assert_eq!(s.pick(), None);
        assert_eq!(
            s.next_packet(&PacketCodec::new(1024), &mut BytesMut::new()),
            None
        );
        assert!(!s.has_pending());
    }

    #[test]
    fn least_sent_per_priority_goes_first_and_ties_go_to_the_earlier_lane() {
        let codec = PacketCodec::new(10);
        let mut s = Scheduler::new(&[desc(1, 1), desc(2, 3)]);
        s.load(0, Bytes::from_static(&[0; 100]))
            .expect("lane is free");
        s.load(1, Bytes::from_static(&[0; 100]))
            .expect("lane is free");
        // Both at 0: lane 0 (earlier) wins the tie.
        assert_eq!(s.pick(), Some(0));
        let mut buf = BytesMut::new();
        assert_eq!(s.next_packet(&codec, &mut buf), Some(0));
        let packet = s.recently_sent(0);
        assert_eq!(packet, buf.len() as u64);
        // Lane 1 has sent nothing: it goes next, and keeps going until
        // sent/3 is no longer below lane 0's sent/1.
        let mut order = Vec::new();
        for _ in 0..4 {
            order.push(s.next_packet(&codec, &mut buf).expect("data pending"));
        }
        assert_eq!(order, [1, 1, 1, 0]);
    }

    #[test]
    fn bandwidth_is_shared_by_priority() {
        // Two lanes always full: the share of packets follows 10:1.
        let codec = PacketCodec::new(100);
        let mut s = Scheduler::new(&[desc(1, 1), desc(2, 10)]);
        let mut counts = [0usize; 2];
        let mut buf = BytesMut::new();
        for _ in 0..1100 {
            for lane in 0..2 {
                if s.is_free(lane) {
                    s.load(lane, Bytes::from(vec![1; 1000]))
                        .expect("lane is free");
                }
            }
            counts[s.next_packet(&codec, &mut buf).expect("data pending")] += 1;
        }
        assert_eq!(counts[0] + counts[1], 1100);
        assert!((99..=101).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn decay_multiplies_by_four_fifths_every_two_seconds() {
        let codec = PacketCodec::new(1024);
        let mut s = Scheduler::new(&[desc(1, 1)]);
        s.load(0, Bytes::from(vec![0; 1000])).expect("lane is free");
        s.next_packet(&codec, &mut BytesMut::new())
            .expect("data pending");
        let sent = s.recently_sent(0);
        s.decay_to(Duration::from_millis(1999));
        assert_eq!(s.recently_sent(0), sent);
        s.decay_to(Duration::from_secs(2));
        assert_eq!(s.recently_sent(0), sent * 4 / 5);
        // Going back in time or staying in the same period does nothing.
        s.decay_to(Duration::from_secs(3));
        s.decay_to(Duration::from_secs(1));
        assert_eq!(s.recently_sent(0), sent * 4 / 5);
        // Two more periods at once.
        s.decay_to(Duration::from_secs(6));
        assert_eq!(s.recently_sent(0), sent * 4 / 5 * 4 / 5 * 4 / 5);
        s.decay_to(Duration::from_secs(3600));
        assert_eq!(s.recently_sent(0), 0);
    }

    #[test]
    fn a_lane_is_busy_until_its_last_packet() {
        let codec = PacketCodec::new(4);
        let mut s = Scheduler::new(&[desc(7, 1)]);
        s.load(0, Bytes::from_static(b"abcdefghij"))
            .expect("lane is free");
        assert_eq!(
            s.load(0, Bytes::from_static(b"next")),
            Err(Bytes::from_static(b"next"))
        );
        let mut buf = BytesMut::new();
        s.next_packet(&codec, &mut buf);
        s.next_packet(&codec, &mut buf);
        assert!(!s.is_free(0));
        s.next_packet(&codec, &mut buf);
        assert!(s.is_free(0));
        let events = Decoder::new(&[desc(7, 1)], 4).push(&buf).expect("decodes");
        assert_eq!(
            events,
            [Event::Message {
                channel: 7,
                data: Bytes::from_static(b"abcdefghij")
            }]
        );
    }

    #[test]
    fn an_empty_message_takes_one_packet() {
        let codec = PacketCodec::new(1024);
        let mut s = Scheduler::new(&[desc(0x20, 1)]);
        s.load(0, Bytes::new()).expect("lane is free");
        let mut buf = BytesMut::new();
        assert_eq!(s.next_packet(&codec, &mut buf), Some(0));
        assert_eq!(&buf[..], [0x06, 0x1a, 0x04, 0x08, 0x20, 0x10, 0x01]);
        assert!(s.is_free(0));
        assert_eq!(s.next_packet(&codec, &mut buf), None);
    }

    #[test]
    fn packets_of_equal_lanes_interleave_and_each_message_stays_whole() {
        let codec = PacketCodec::new(8);
        let chans = [desc(0x20, 5), desc(0x21, 5)];
        let mut s = Scheduler::new(&chans);
        s.load(0, Bytes::from(vec![b'a'; 40]))
            .expect("lane is free");
        s.load(1, Bytes::from(vec![b'b'; 40]))
            .expect("lane is free");
        let mut buf = BytesMut::new();
        let mut order = Vec::new();
        while let Some(lane) = s.next_packet(&codec, &mut buf) {
            order.push(lane);
        }
        assert_eq!(order, [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
        let events = Decoder::new(&chans, 8).push(&buf).expect("decodes");
        assert_eq!(
            events,
            [
                Event::Message {
                    channel: 0x20,
                    data: Bytes::from(vec![b'a'; 40])
                },
                Event::Message {
                    channel: 0x21,
                    data: Bytes::from(vec![b'b'; 40])
                },
            ]
        );
    }

    #[test]
    fn duplicates_and_zero_priority_are_normalized() {
        let s = Scheduler::new(&[desc(1, 0), desc(2, 4), desc(1, 9)]);
        assert_eq!(s.lanes(), 2);
        assert_eq!((s.lane_id(0), s.lane_id(1)), (1, 2));
        assert_eq!(s.lane_of(2), Some(1));
        assert_eq!(s.lane_of(3), None);
    }
}
