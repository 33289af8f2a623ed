//! CometBFT's `BitArray` (libs/bits): which validators' votes, or which
//! block parts, someone has. Gossip exchanges these in `NewValidBlock`,
//! `ProposalPOL` and `VoteSetBits`, and keeps one per peer and kind.
//!
//! Bit `i` is `elems[i / 64] >> (i % 64) & 1`, as Go lays it out, so the
//! proto form is byte-compatible.

use rand_core::RngCore;
use tendermint_proto::v0_38::libs::bits::BitArray as PbBitArray;

/// The most bits a peer may send us: CometBFT's `MaxVotesCount` (10,000),
/// which also bounds part counts well above any block we accept.
pub const MAX_BITS: usize = 10_000;

/// A fixed-size set of bits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitArray {
    bits: usize,
    elems: Vec<u64>,
}

/// A bit array from a peer that is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitsError {
    /// Negative or above [`MAX_BITS`].
    #[error("bit array of {0} bits (at most {MAX_BITS})")]
    Size(i64),
    /// The words do not match the size.
    #[error("bit array of {bits} bits has {elems} words (expected {expected})")]
    Words {
        /// Declared size.
        bits: usize,
        /// Words sent.
        elems: usize,
        /// Words the size needs.
        expected: usize,
    },
}

impl BitArray {
    /// `bits` bits, all clear.
    pub fn new(bits: usize) -> Self {
        BitArray {
            bits,
            elems: vec![0; bits.div_ceil(64)],
        }
    }

    /// The number of bits.
    pub fn len(&self) -> usize {
        self.bits
    }

    /// True when it has no bits at all.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// Bit `i` (false beyond the end).
    pub fn get(&self, i: usize) -> bool {
        i < self.bits && self.elems[i / 64] >> (i % 64) & 1 == 1
    }

    /// Sets bit `i`; false (and no change) beyond the end, as in Go.
    pub fn set(&mut self, i: usize, value: bool) -> bool {
        if i >= self.bits {
            return false;
        }
        let mask = 1u64 << (i % 64);
        if value {
            self.elems[i / 64] |= mask;
        } else {
            self.elems[i / 64] &= !mask;
        }
        true
    }

    /// How many bits are set.
    pub fn count(&self) -> usize {
        self.elems.iter().map(|e| e.count_ones() as usize).sum()
    }

    /// The set bits, in order.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.bits).filter(|i| self.get(*i))
    }

    /// Bits set here and not in `other` (Go's `Sub`: `other` may be
    /// shorter or longer; bits beyond it count as clear).
    pub fn sub(&self, other: &BitArray) -> BitArray {
        let mut out = self.clone();
        for (i, e) in out.elems.iter_mut().enumerate() {
            if let Some(o) = other.elems.get(i) {
                *e &= !o;
            }
        }
        out.clear_tail();
        out
    }

    /// Bits set in either (the size is the larger of the two).
    pub fn or(&self, other: &BitArray) -> BitArray {
        let (mut out, small) = if self.bits >= other.bits {
            (self.clone(), other)
        } else {
            (other.clone(), self)
        };
        for (i, e) in small.elems.iter().enumerate() {
            out.elems[i] |= e;
        }
        out
    }

    /// One set bit chosen uniformly at random, as Go's `PickRandom`
    /// (gossip sends a random missing part or vote so that peers fetching
    /// from several nodes do not all get the same one first).
    pub fn pick_random(&self, rng: &mut impl RngCore) -> Option<usize> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let k = (rng.next_u64() % n as u64) as usize;
        self.ones().nth(k)
    }

    /// Zeroes bits past the end in the last word, keeping `count` exact.
    fn clear_tail(&mut self) {
        let rem = self.bits % 64;
        if rem != 0 {
            if let Some(last) = self.elems.last_mut() {
                *last &= (1u64 << rem) - 1;
            }
        }
    }
}

impl From<&BitArray> for PbBitArray {
    fn from(b: &BitArray) -> Self {
        PbBitArray {
            bits: b.bits as i64,
            elems: b.elems.clone(),
        }
    }
}

impl TryFrom<PbBitArray> for BitArray {
    type Error = BitsError;

    fn try_from(pb: PbBitArray) -> Result<Self, BitsError> {
        if pb.bits < 0 || pb.bits as u64 > MAX_BITS as u64 {
            return Err(BitsError::Size(pb.bits));
        }
        let bits = pb.bits as usize;
        let expected = bits.div_ceil(64);
        if pb.elems.len() != expected {
            return Err(BitsError::Words {
                bits,
                elems: pb.elems.len(),
                expected,
            });
        }
        let mut out = BitArray {
            bits,
            elems: pb.elems,
        };
        out.clear_tail();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn layout_is_go_s() {
        let mut b = BitArray::new(70);
        b.set(0, true);
        b.set(65, true);
        let pb = PbBitArray::from(&b);
        assert_eq!(pb.bits, 70);
        assert_eq!(pb.elems, vec![1, 1 << 1]);
        assert!(!b.set(70, true), "beyond the end");
        assert_eq!(BitArray::try_from(pb), Ok(b));
    }

    #[test]
    fn malformed_arrays_are_refused() {
        let bad = |bits, elems: Vec<u64>| BitArray::try_from(PbBitArray { bits, elems });
        assert_eq!(bad(-1, vec![]), Err(BitsError::Size(-1)));
        assert_eq!(bad(10_001, vec![0; 157]), Err(BitsError::Size(10_001)));
        assert!(matches!(bad(65, vec![0]), Err(BitsError::Words { .. })));
        // Stray bits past the end are dropped, not counted.
        assert_eq!(bad(3, vec![u64::MAX]).map(|b| b.count()), Ok(3));
    }

    proptest! {
        #[test]
        fn sub_or_and_pick_agree_with_sets(
            n in 0usize..200,
            a in proptest::collection::vec(any::<bool>(), 200),
            b in proptest::collection::vec(any::<bool>(), 200),
            m in 0usize..200,
            seed in any::<u64>(),
        ) {
            let mut x = BitArray::new(n);
            let mut y = BitArray::new(m);
            for (i, v) in a.iter().take(n).enumerate() { x.set(i, *v); }
            for (i, v) in b.iter().take(m).enumerate() { y.set(i, *v); }
            let d = x.sub(&y);
            for i in 0..n.max(m) {
                prop_assert_eq!(d.get(i), x.get(i) && !y.get(i));
                prop_assert_eq!(x.or(&y).get(i), x.get(i) || y.get(i));
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            match d.pick_random(&mut rng) {
                Some(i) => prop_assert!(d.get(i)),
                None => prop_assert_eq!(d.count(), 0),
            }
        }
    }
}
