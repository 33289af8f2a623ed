//! Block parts: a block's protobuf encoding split into 64 KiB chunks with a
//! merkle proof each, so peers can gossip and check it piece by piece
//! (CometBFT types/part_set.go).

use std::collections::BTreeMap;

use tendermint_proto::v0_38::types as pb;

use super::{merkle_proofs_from_byte_slices, Error, PartSetHeader, Proof};

/// Size of every block part but the last (CometBFT `BlockPartSizeBytes`).
pub const BLOCK_PART_SIZE: usize = 65536;

/// Most parts a block may have: `MaxBlockSizeBytes / BlockPartSizeBytes + 1`.
pub const MAX_BLOCK_PARTS_COUNT: u32 =
    (super::MAX_BLOCK_SIZE_BYTES / BLOCK_PART_SIZE as i64) as u32 + 1;

/// One chunk of a block with its merkle proof against the part set hash.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Part {
    /// Position of the chunk.
    pub index: u32,
    /// The chunk.
    pub bytes: Vec<u8>,
    /// Proof of the chunk under the part set header's hash.
    pub proof: Proof,
}

impl From<Part> for pb::Part {
    fn from(p: Part) -> Self {
        pb::Part {
            index: p.index,
            bytes: p.bytes,
            // Non-nullable in gogoproto: always written.
            proof: Some(p.proof.into()),
        }
    }
}

impl TryFrom<pb::Part> for Part {
    type Error = Error;

    /// CometBFT `PartFromProto` + `Part.ValidateBasic`: at most
    /// [`BLOCK_PART_SIZE`] bytes, exactly that many unless it is the last
    /// part, index equal to the proof's index, and a well-formed proof.
    fn try_from(p: pb::Part) -> Result<Self, Error> {
        let proof = Proof::try_from(p.proof.unwrap_or_default())?;
        if p.bytes.len() > BLOCK_PART_SIZE {
            return Err(Error::field("part.bytes", "larger than a block part"));
        }
        if u64::from(p.index) < proof.total.saturating_sub(1) && p.bytes.len() != BLOCK_PART_SIZE {
            return Err(Error::field("part.bytes", "inner part of the wrong size"));
        }
        if u64::from(p.index) != proof.index {
            return Err(Error::field("part.index", "differs from the proof's index"));
        }
        Ok(Part {
            index: p.index,
            bytes: p.bytes,
            proof,
        })
    }
}

/// A block's parts, complete (built from the data) or being collected (built
/// from a header received from a peer).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PartSet {
    /// Number of parts and their merkle root.
    pub header: PartSetHeader,
    /// Parts received so far, by index. A map rather than a vector sized by
    /// `header.total`, so that a header from a peer cannot force a large
    /// allocation before any part arrives.
    parts: BTreeMap<u32, Part>,
    /// Sum of the received parts' sizes.
    byte_size: usize,
}

impl PartSet {
    /// Splits `data` into parts of `part_size` bytes (the last may be shorter)
    /// with their proofs (CometBFT `NewPartSetFromData`). Empty data yields
    /// zero parts under the empty merkle root. A `part_size` of 0 is treated
    /// as 1 (CometBFT requires it to be positive).
    pub fn from_data(data: &[u8], part_size: usize) -> Self {
        let chunks: Vec<&[u8]> = data.chunks(part_size.max(1)).collect();
        let (root, proofs) = merkle_proofs_from_byte_slices(&chunks);
        let parts: BTreeMap<u32, Part> = chunks
            .iter()
            .zip(proofs)
            .enumerate()
            .map(|(i, (chunk, proof))| {
                // Block data is bounded (100 MiB), so indices fit in u32.
                let index = i as u32;
                (
                    index,
                    Part {
                        index,
                        bytes: chunk.to_vec(),
                        proof,
                    },
                )
            })
            .collect();
        PartSet {
            header: PartSetHeader {
                total: parts.len() as u32,
                hash: root,
            },
            parts,
            byte_size: data.len(),
        }
    }

    /// An empty part set expecting the parts described by `header`.
    pub fn from_header(header: PartSetHeader) -> Self {
        PartSet {
            header,
            parts: BTreeMap::new(),
            byte_size: 0,
        }
    }

    /// Adds a part received from a peer (CometBFT `AddPart`). `Ok(true)` when
    /// added, `Ok(false)` for a part already held. Errors: index out of range,
    /// index differing from the proof's, a proof for a different number of
    /// parts, or a proof that does not verify against the header hash.
    pub fn add_part(&mut self, part: Part) -> Result<bool, Error> {
        if part.index >= self.header.total {
            return Err(Error::field("part.index", "out of range"));
        }
        if self.parts.contains_key(&part.index) {
            return Ok(false);
        }
        if part.proof.total != u64::from(self.header.total) {
            return Err(Error::field(
                "part.proof",
                "total differs from the part set",
            ));
        }
        if part.proof.index != u64::from(part.index) {
            return Err(Error::field("part.proof", "index differs from the part's"));
        }
        part.proof.verify(&self.header.hash, &part.bytes)?;
        self.byte_size += part.bytes.len();
        self.parts.insert(part.index, part);
        Ok(true)
    }

    /// Whether every part is present.
    pub fn is_complete(&self) -> bool {
        self.parts.len() == self.header.total as usize
    }

    /// The reassembled data, once complete.
    pub fn data(&self) -> Option<Vec<u8>> {
        if !self.is_complete() {
            return None;
        }
        let mut out = Vec::with_capacity(self.byte_size);
        for p in self.parts.values() {
            out.extend_from_slice(&p.bytes);
        }
        Some(out)
    }

    /// The part at `index`, if held.
    pub fn get_part(&self, index: u32) -> Option<&Part> {
        self.parts.get(&index)
    }

    /// Whether the part at `index` is held.
    pub fn has_part(&self, index: u32) -> bool {
        self.parts.contains_key(&index)
    }

    /// Number of parts held.
    pub fn count(&self) -> u32 {
        // At most header.total parts are ever held.
        self.parts.len() as u32
    }

    /// Total size in bytes of the parts held.
    pub fn byte_size(&self) -> usize {
        self.byte_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sha256, Hash};

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Mirrors CometBFT TestBasicPartSet: split, rebuild from the header, and
    /// compare the reassembled bytes.
    #[test]
    fn split_and_reassemble() {
        for len in [
            0,
            1,
            1000,
            BLOCK_PART_SIZE,
            BLOCK_PART_SIZE + 1,
            3 * BLOCK_PART_SIZE + 7,
        ] {
            let d = data(len);
            let full = PartSet::from_data(&d, BLOCK_PART_SIZE);
            assert_eq!(full.header.total as usize, len.div_ceil(BLOCK_PART_SIZE));
            assert!(full.is_complete());
            assert_eq!(full.data(), Some(d.clone()));
            let mut partial = PartSet::from_header(full.header);
            assert_eq!(partial.is_complete(), len == 0);
            for i in (0..full.header.total).rev() {
                let part = full.get_part(i).expect("complete").clone();
                assert!(!partial.is_complete());
                assert_eq!(partial.data(), None);
                assert_eq!(partial.add_part(part.clone()), Ok(true));
                assert_eq!(partial.add_part(part), Ok(false));
            }
            assert_eq!(partial.data(), Some(d));
            assert_eq!(partial, full);
        }
    }

    #[test]
    fn empty_data_has_empty_root() {
        let ps = PartSet::from_data(&[], BLOCK_PART_SIZE);
        assert_eq!(ps.header.total, 0);
        assert_eq!(ps.header.hash, sha256(&[]));
        assert_eq!(ps.data(), Some(Vec::new()));
    }

    /// Mirrors CometBFT TestWrongProof and AddPart's error cases.
    #[test]
    fn rejects_bad_parts() {
        let d = data(3 * 100 + 5);
        let full = PartSet::from_data(&d, 100);
        let mut ps = PartSet::from_header(full.header);
        let good = full.get_part(1).expect("exists").clone();

        let mut tampered = good.clone();
        tampered.bytes[0] ^= 1;
        assert!(ps.add_part(tampered).is_err());
        let mut bad_aunt = good.clone();
        bad_aunt.proof.aunts[0] = Hash([0; 32]);
        assert!(ps.add_part(bad_aunt).is_err());
        let mut out_of_range = good.clone();
        out_of_range.index = 4;
        assert!(ps.add_part(out_of_range).is_err());
        let mut wrong_total = good.clone();
        wrong_total.proof.total = 5;
        assert!(ps.add_part(wrong_total).is_err());
        // A valid part placed at another index.
        let mut moved = full.get_part(2).expect("exists").clone();
        moved.index = 1;
        assert!(ps.add_part(moved).is_err());
        assert_eq!(ps.count(), 0);
        assert_eq!(ps.add_part(good), Ok(true));
        assert_eq!(ps.count(), 1);
        assert!(ps.has_part(1));
        // A set from a different root rejects all parts.
        let mut other = PartSet::from_header(PartSetHeader {
            total: full.header.total,
            hash: sha256(b"other"),
        });
        assert!(other
            .add_part(full.get_part(0).expect("exists").clone())
            .is_err());
    }

    /// Mirrors CometBFT TestPart_ValidateBasic.
    #[test]
    fn part_proto_validation() {
        let d = data(2 * BLOCK_PART_SIZE + 5);
        let full = PartSet::from_data(&d, BLOCK_PART_SIZE);
        let raw = pb::Part::from(full.get_part(0).expect("exists").clone());
        assert_eq!(
            Part::try_from(raw.clone()).as_ref(),
            Ok(full.get_part(0).expect("exists"))
        );
        let mut too_big = raw.clone();
        too_big.bytes.push(0);
        assert!(Part::try_from(too_big).is_err());
        let mut short_inner = raw.clone();
        short_inner.bytes.pop();
        assert!(Part::try_from(short_inner).is_err());
        let mut index = raw.clone();
        index.index = 1;
        assert!(Part::try_from(index).is_err());
        let mut no_proof = raw;
        no_proof.proof = None;
        assert!(Part::try_from(no_proof).is_err());
        // The last part may be short.
        let last = pb::Part::from(full.get_part(2).expect("exists").clone());
        assert!(Part::try_from(last).is_ok());
    }

    #[test]
    fn max_parts_count_matches_cometbft() {
        assert_eq!(MAX_BLOCK_PARTS_COUNT, 1601);
    }
}
