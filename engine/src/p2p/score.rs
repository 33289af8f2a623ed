//! Peers' misbehaviour record: every disconnection a reactor asks for
//! (garbage, a forged signature, a protocol violation) is a strike, and a
//! struck peer is banned for a while, longer with each strike, so that it
//! cannot reconnect at once and repeat. A peer that behaves long enough
//! after its ban starts over. Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::NodeId;

/// The longest ban.
pub const MAX_BAN: Duration = Duration::from_secs(600);

/// Good behaviour after a ban ends that clears a peer's strikes.
pub const FORGIVE_AFTER: Duration = Duration::from_secs(600);

/// Peers remembered at most (the oldest finished bans go first).
const MAX_ENTRIES: usize = 1024;

#[derive(Clone, Copy, Debug)]
struct Entry {
    strikes: u32,
    banned_until: Instant,
}

/// Strikes and bans per peer.
#[derive(Debug)]
pub struct ScoreBook {
    base: Duration,
    entries: HashMap<NodeId, Entry>,
}

impl ScoreBook {
    /// A book whose first ban lasts `base` (zero: never ban); each further
    /// strike doubles it, up to [`MAX_BAN`].
    pub fn new(base: Duration) -> Self {
        ScoreBook {
            base,
            entries: HashMap::new(),
        }
    }

    /// Records a strike against `id`; returns the ban it earned.
    pub fn strike(&mut self, id: NodeId, now: Instant) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let strikes = match self.entries.get(&id) {
            Some(e) if now < e.banned_until + FORGIVE_AFTER => e.strikes.saturating_add(1),
            _ => 1,
        };
        let ban = self
            .base
            .saturating_mul(1u32 << (strikes - 1).min(16))
            .min(MAX_BAN);
        if !self.entries.contains_key(&id) && self.entries.len() >= MAX_ENTRIES {
            self.evict(now);
        }
        self.entries.insert(
            id,
            Entry {
                strikes,
                banned_until: now + ban,
            },
        );
        ban
    }

    /// How much longer `id` is banned, if it is.
    pub fn banned_for(&self, id: &NodeId, now: Instant) -> Option<Duration> {
        let e = self.entries.get(id)?;
        (now < e.banned_until).then(|| e.banned_until - now)
    }

    /// Strikes `id` has now (0 once forgiven or never struck).
    pub fn strikes(&self, id: &NodeId, now: Instant) -> u32 {
        match self.entries.get(id) {
            Some(e) if now < e.banned_until + FORGIVE_AFTER => e.strikes,
            _ => 0,
        }
    }

    /// Drops the entry whose ban ended first (the least dangerous to forget).
    fn evict(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| now < e.banned_until + FORGIVE_AFTER);
        if self.entries.len() >= MAX_ENTRIES {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.banned_until)
                .map(|(id, _)| *id)
            {
                self.entries.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u8) -> NodeId {
        NodeId([i; 20])
    }

    #[test]
    fn bans_double_with_each_strike_up_to_the_cap_and_end() {
        let t0 = Instant::now();
        let mut book = ScoreBook::new(Duration::from_secs(10));
        assert_eq!(book.strike(id(1), t0), Duration::from_secs(10));
        assert_eq!(
            book.banned_for(&id(1), t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(book.banned_for(&id(1), t0 + Duration::from_secs(10)), None);
        assert_eq!(book.banned_for(&id(2), t0), None, "others are not banned");
        let t1 = t0 + Duration::from_secs(20);
        assert_eq!(book.strike(id(1), t1), Duration::from_secs(20));
        assert_eq!(book.strikes(&id(1), t1), 2);
        let mut t = t1;
        for _ in 0..10 {
            t += Duration::from_secs(1);
            book.strike(id(1), t);
        }
        assert_eq!(book.banned_for(&id(1), t), Some(MAX_BAN));
    }

    #[test]
    fn good_behaviour_after_a_ban_is_forgiven() {
        let t0 = Instant::now();
        let mut book = ScoreBook::new(Duration::from_secs(10));
        book.strike(id(1), t0);
        book.strike(id(1), t0);
        let later = t0 + Duration::from_secs(20) + FORGIVE_AFTER;
        assert_eq!(book.strikes(&id(1), later), 0);
        assert_eq!(book.strike(id(1), later), Duration::from_secs(10));
    }

    #[test]
    fn a_zero_base_never_bans_and_memory_is_bounded() {
        let t0 = Instant::now();
        let mut off = ScoreBook::new(Duration::ZERO);
        assert_eq!(off.strike(id(1), t0), Duration::ZERO);
        assert_eq!(off.banned_for(&id(1), t0), None);

        let mut book = ScoreBook::new(Duration::from_secs(1));
        for i in 0..(MAX_ENTRIES as u32 + 50) {
            let mut raw = [0u8; 20];
            raw[..4].copy_from_slice(&i.to_le_bytes());
            book.strike(NodeId(raw), t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(book.entries.len() <= MAX_ENTRIES);
    }
}
