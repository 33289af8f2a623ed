//! RFC 6962 merkle trees as CometBFT builds them (`crypto/merkle`): leaves are
//! `SHA256(0x00 || item)`, inner nodes `SHA256(0x01 || left || right)`, the
//! empty tree hashes to `SHA256("")`, and a tree of `n > 1` items splits at the
//! largest power of two strictly below `n`.

use sha2::{Digest, Sha256};
use tendermint_proto::v0_38::crypto as pb_crypto;

use super::{sha256, Error, Hash};

/// Maximum number of aunts a proof received from outside may carry
/// (CometBFT `merkle.MaxAunts`).
pub const MAX_AUNTS: usize = 100;

/// `SHA256("")`, the root of an empty tree.
pub(crate) fn empty_hash() -> Hash {
    sha256(&[])
}

/// `SHA256(0x00 || leaf)`.
pub(crate) fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    Hash(h.finalize().into())
}

/// `SHA256(0x01 || left || right)`.
pub(crate) fn inner_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The largest power of two strictly less than `n`. Requires `n >= 2`.
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    // For n >= 2, next_power_of_two(n) / 2 is the largest power of two < n
    // when n is not itself a power of two, and n / 2 when it is.
    n.next_power_of_two() / 2
}

/// The merkle root of `items`, in order (CometBFT `merkle.HashFromByteSlices`).
pub fn merkle_hash_from_byte_slices<T: AsRef<[u8]>>(items: &[T]) -> Hash {
    match items.len() {
        0 => empty_hash(),
        1 => leaf_hash(items[0].as_ref()),
        n => {
            let k = split_point(n);
            let left = merkle_hash_from_byte_slices(&items[..k]);
            let right = merkle_hash_from_byte_slices(&items[k..]);
            inner_hash(&left, &right)
        }
    }
}

/// A proof that a leaf is the `index`-th of `total` items under a root.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Proof {
    /// Number of items in the tree.
    pub total: u64,
    /// Index of the proven item.
    pub index: u64,
    /// Leaf hash of the proven item.
    pub leaf_hash: Hash,
    /// Sibling hashes from the leaf's sibling up to a child of the root.
    pub aunts: Vec<Hash>,
}

/// The root of `items` and one proof per item (CometBFT
/// `merkle.ProofsFromByteSlices`).
pub fn merkle_proofs_from_byte_slices<T: AsRef<[u8]>>(items: &[T]) -> (Hash, Vec<Proof>) {
    let (root, trails) = trails(items);
    let total = items.len() as u64;
    let proofs = trails
        .into_iter()
        .enumerate()
        .map(|(i, (leaf_hash, aunts))| Proof {
            total,
            index: i as u64,
            leaf_hash,
            aunts,
        })
        .collect();
    (root, proofs)
}

/// Root of `items` and, per item, its leaf hash and aunts ordered bottom-up.
fn trails<T: AsRef<[u8]>>(items: &[T]) -> (Hash, Vec<(Hash, Vec<Hash>)>) {
    match items.len() {
        0 => (empty_hash(), Vec::new()),
        1 => {
            let leaf = leaf_hash(items[0].as_ref());
            (leaf, vec![(leaf, Vec::new())])
        }
        n => {
            let k = split_point(n);
            let (left_root, mut left) = trails(&items[..k]);
            let (right_root, right) = trails(&items[k..]);
            // Recursion returns deeper aunts first, so pushing this level's
            // sibling last keeps every aunt list ordered leaf-to-root.
            for (_, aunts) in left.iter_mut() {
                aunts.push(right_root);
            }
            left.extend(right.into_iter().map(|(leaf, mut aunts)| {
                aunts.push(left_root);
                (leaf, aunts)
            }));
            (inner_hash(&left_root, &right_root), left)
        }
    }
}

impl Proof {
    /// Checks that `leaf` is the `index`-th item of a tree with root `root`
    /// (CometBFT `Proof.Verify`).
    pub fn verify(&self, root: &Hash, leaf: &[u8]) -> Result<(), Error> {
        if leaf_hash(leaf) != self.leaf_hash {
            return Err(Error::field("proof", "leaf hash does not match the leaf"));
        }
        let computed = self.compute_root_hash()?;
        if &computed != root {
            return Err(Error::field("proof", "computed root does not match"));
        }
        Ok(())
    }

    /// The root implied by the leaf hash and aunts, or an error when index,
    /// total and the number of aunts do not fit together.
    pub fn compute_root_hash(&self) -> Result<Hash, Error> {
        root_from_aunts(self.index, self.total, self.leaf_hash, &self.aunts)
            .ok_or_else(|| Error::field("proof", "index, total and aunts are inconsistent"))
    }
}

/// CometBFT `computeHashFromAunts`; `None` where Go returns an error. Each
/// level consumes one aunt, so recursion depth is bounded by `aunts.len()`.
fn root_from_aunts(index: u64, total: u64, leaf: Hash, aunts: &[Hash]) -> Option<Hash> {
    if total == 0 || index >= total {
        return None;
    }
    if total == 1 {
        return aunts.is_empty().then_some(leaf);
    }
    let (last, rest) = aunts.split_last()?;
    // total >= 2: the largest power of two strictly below `total`. Totals
    // above 2^63 have no next power of two in u64; their split point is 2^63.
    let k = total.checked_next_power_of_two().map_or(1 << 63, |p| p / 2);
    if index < k {
        let left = root_from_aunts(index, k, leaf, rest)?;
        Some(inner_hash(&left, last))
    } else {
        let right = root_from_aunts(index - k, total - k, leaf, rest)?;
        Some(inner_hash(last, &right))
    }
}

impl From<Proof> for pb_crypto::Proof {
    fn from(p: Proof) -> Self {
        pb_crypto::Proof {
            total: i64::try_from(p.total).unwrap_or(i64::MAX),
            index: i64::try_from(p.index).unwrap_or(i64::MAX),
            leaf_hash: p.leaf_hash.0.to_vec(),
            aunts: p.aunts.iter().map(|a| a.0.to_vec()).collect(),
        }
    }
}

impl TryFrom<pb_crypto::Proof> for Proof {
    type Error = Error;

    /// Validates as CometBFT `ProofFromProto`/`ValidateBasic`: non-negative
    /// total and index, 32-byte leaf hash, at most [`MAX_AUNTS`] 32-byte aunts.
    fn try_from(p: pb_crypto::Proof) -> Result<Self, Error> {
        let total = u64::try_from(p.total).map_err(|_| Error::field("proof.total", "negative"))?;
        let index = u64::try_from(p.index).map_err(|_| Error::field("proof.index", "negative"))?;
        if p.aunts.len() > MAX_AUNTS {
            return Err(Error::field(
                "proof.aunts",
                format!("more than {MAX_AUNTS} aunts"),
            ));
        }
        let aunts = p
            .aunts
            .iter()
            .map(|a| Hash::from_slice("proof.aunts", a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Proof {
            total,
            index,
            leaf_hash: Hash::from_slice("proof.leaf_hash", &p.leaf_hash)?,
            aunts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> String {
        s.to_string()
    }

    /// CometBFT crypto/merkle/tree_test.go TestHashFromByteSlices.
    #[test]
    fn golden_hash_from_byte_slices() {
        let cases: Vec<(Vec<Vec<u8>>, String)> = vec![
            (
                vec![],
                h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ),
            (
                vec![vec![1, 2, 3]],
                h("054edec1d0211f624fed0cbca9d4f9400b0e491c43742af2c5b0abebf0c990d8"),
            ),
            (
                vec![vec![]],
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            ),
            (
                vec![vec![1, 2, 3], vec![4, 5, 6]],
                h("82e6cfce00453804379b53962939eaa7906b39904be0813fcadd31b100773c4b"),
            ),
            (
                vec![vec![1, 2], vec![3, 4], vec![5, 6], vec![7, 8], vec![9, 10]],
                h("f326493eceab4f2d9ffbc78c59432a0a005d6ea98392045c74df5d14a113be18"),
            ),
        ];
        for (items, want) in cases {
            assert_eq!(hex::encode(merkle_hash_from_byte_slices(&items).0), want);
            let (root, proofs) = merkle_proofs_from_byte_slices(&items);
            assert_eq!(hex::encode(root.0), want);
            assert_eq!(proofs.len(), items.len());
        }
    }

    /// CometBFT crypto/merkle/rfc6962_test.go TestRFC6962Hasher.
    #[test]
    fn golden_rfc6962_hasher() {
        assert_eq!(
            hex::encode(leaf_hash(b"L123456").0),
            "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
        );
        assert_eq!(
            hex::encode(leaf_hash(b"").0),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex::encode(empty_hash().0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // innerHash("N123", "N456"): Go hashes raw bytes; reproduce with the
        // same byte string fed to SHA-256 directly.
        let mut m = vec![1u8];
        m.extend_from_slice(b"N123");
        m.extend_from_slice(b"N456");
        assert_eq!(
            hex::encode(sha256(&m).0),
            "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
        );
    }

    /// CometBFT tree_test.go Test_getSplitPoint.
    #[test]
    fn golden_split_point() {
        for (n, want) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (10, 8),
            (20, 16),
            (100, 64),
            (255, 128),
            (256, 128),
            (257, 256),
        ] {
            assert_eq!(split_point(n), want, "n = {n}");
        }
    }

    /// Mirrors CometBFT TestProof: every proof verifies, and tampering with
    /// the trail, index, total, leaf or root makes it fail.
    #[test]
    fn proofs_verify_and_reject_tampering() {
        for total in [1usize, 2, 3, 5, 8, 13, 100] {
            let items: Vec<Vec<u8>> = (0..total).map(|i| vec![i as u8; 1 + i % 7]).collect();
            let (root, proofs) = merkle_proofs_from_byte_slices(&items);
            assert_eq!(root, merkle_hash_from_byte_slices(&items));
            for (i, proof) in proofs.iter().enumerate() {
                assert_eq!(proof.index, i as u64);
                assert_eq!(proof.total, total as u64);
                assert_eq!(proof.verify(&root, &items[i]), Ok(()));
                assert!(proof.verify(&root, b"other").is_err());
                assert!(proof.verify(&sha256(b"x"), &items[i]).is_err());

                let mut longer = proof.clone();
                longer.aunts.push(root);
                assert!(longer.verify(&root, &items[i]).is_err());
                if !proof.aunts.is_empty() {
                    let mut shorter = proof.clone();
                    shorter.aunts.pop();
                    assert!(shorter.verify(&root, &items[i]).is_err());
                }
                let mut wrong_index = proof.clone();
                wrong_index.index = (i as u64 + 1) % total as u64;
                if total > 1 {
                    assert!(wrong_index.verify(&root, &items[i]).is_err());
                }
                let mut wrong_total = proof.clone();
                wrong_total.total = 0;
                assert!(wrong_total.verify(&root, &items[i]).is_err());
            }
        }
    }

    #[test]
    fn proof_proto_validation() {
        let (_, proofs) = merkle_proofs_from_byte_slices(&[b"a", b"b", b"c"]);
        let p = proofs[2].clone();
        let raw = pb_crypto::Proof::from(p.clone());
        assert_eq!(Proof::try_from(raw.clone()), Ok(p));
        let mut neg = raw.clone();
        neg.total = -1;
        assert!(Proof::try_from(neg).is_err());
        let mut neg = raw.clone();
        neg.index = -1;
        assert!(Proof::try_from(neg).is_err());
        let mut short = raw.clone();
        short.leaf_hash.pop();
        assert!(Proof::try_from(short).is_err());
        let mut bad_aunt = raw.clone();
        bad_aunt.aunts[0].push(0);
        assert!(Proof::try_from(bad_aunt).is_err());
        let mut many = raw;
        many.aunts = vec![vec![0; 32]; MAX_AUNTS + 1];
        assert!(Proof::try_from(many).is_err());
    }
}
