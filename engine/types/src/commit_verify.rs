//! Verifying a commit against a validator set, with CometBFT's rules
//! (`types.VerifyCommit`): one signature slot per validator in set order,
//! every present signature checked (for the block and for nil), and the
//! signatures for the block holding more than 2/3 of the power.
//!
//! Signatures are checked in one ed25519 batch; if the batch fails, each is
//! checked alone to name the bad one (ed25519-consensus guarantees batch and
//! single verification agree).

use super::{Address, BlockId, Commit, CommitSig, Height, ValidatorSet};

/// Why a commit does not prove its block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// One slot per validator is required.
    #[error("commit has {got} signatures for {expected} validators")]
    WrongSize {
        /// Validators in the set.
        expected: usize,
        /// Signature slots in the commit.
        got: usize,
    },
    /// The commit is for another height.
    #[error("commit is for height {got}, expected {expected}")]
    WrongHeight {
        /// The height being verified.
        expected: Height,
        /// The commit's height.
        got: Height,
    },
    /// The commit is for another block.
    #[error("commit is for another block")]
    WrongBlock,
    /// A signature slot names a validator other than the set's at that index.
    #[error("signature {index} is from {got:?}, but validator {index} is {expected:?}")]
    AddressMismatch {
        /// Slot index.
        index: usize,
        /// The set's validator address.
        expected: Address,
        /// The address in the commit.
        got: Address,
    },
    /// A signature does not verify.
    #[error("signature {index} (validator {address:?}) does not verify")]
    BadSignature {
        /// Slot index.
        index: usize,
        /// The signer.
        address: Address,
    },
    /// Not enough power signed for the block.
    #[error("{got} of {total} voting power signed; more than 2/3 is needed")]
    NotEnoughPower {
        /// Power that signed for the block.
        got: i64,
        /// Total power of the set.
        total: i64,
    },
}

impl ValidatorSet {
    /// Checks that `commit` proves `block_id` at `height` for this set, as
    /// CometBFT's `VerifyCommit` does.
    pub fn verify_commit(
        &self,
        chain_id: &str,
        block_id: &BlockId,
        height: Height,
        commit: &Commit,
    ) -> Result<(), CommitError> {
        if self.validators.len() != commit.signatures.len() {
            return Err(CommitError::WrongSize {
                expected: self.validators.len(),
                got: commit.signatures.len(),
            });
        }
        if commit.height != height {
            return Err(CommitError::WrongHeight {
                expected: height,
                got: commit.height,
            });
        }
        if commit.block_id != *block_id {
            return Err(CommitError::WrongBlock);
        }
        let mut tally: i64 = 0;
        let mut checks = Vec::with_capacity(commit.signatures.len());
        for (index, (sig, val)) in commit.signatures.iter().zip(&self.validators).enumerate() {
            let (address, for_block) = match sig {
                CommitSig::Absent => continue,
                CommitSig::Commit {
                    validator_address, ..
                } => (*validator_address, true),
                CommitSig::Nil {
                    validator_address, ..
                } => (*validator_address, false),
            };
            if address != val.address {
                return Err(CommitError::AddressMismatch {
                    index,
                    expected: val.address,
                    got: address,
                });
            }
            // The slot is present (not Absent), so it yields a vote.
            let Some(vote) = commit.get_vote(index as u32) else {
                continue;
            };
            checks.push((
                index,
                val.pub_key,
                vote.sign_bytes(chain_id),
                vote.signature,
            ));
            if for_block {
                tally = tally.saturating_add(val.voting_power);
            }
        }
        let mut batch = ed25519_consensus::batch::Verifier::new();
        for (_, key, msg, sig) in &checks {
            batch.queue((
                ed25519_consensus::VerificationKeyBytes::from(key.0),
                ed25519_consensus::Signature::from(sig.0),
                &msg[..],
            ));
        }
        if batch.verify(rand_core::OsRng).is_err() {
            for (index, key, msg, sig) in &checks {
                if key.verify(msg, sig).is_err() {
                    return Err(CommitError::BadSignature {
                        index: *index,
                        address: self.validators[*index].address,
                    });
                }
            }
        }
        let total = self.total_voting_power();
        if i128::from(tally) * 3 <= i128::from(total) * 2 {
            return Err(CommitError::NotEnoughPower { got: tally, total });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hash, PartSetHeader, PrivateKey, Time, Validator, Vote, VoteType};

    fn setup(powers: &[i64]) -> (Vec<PrivateKey>, ValidatorSet, BlockId) {
        let keys: Vec<PrivateKey> = (0..powers.len())
            .map(|i| PrivateKey::from_seed([i as u8 + 40; 32]))
            .collect();
        let vs = ValidatorSet::new(
            keys.iter()
                .zip(powers)
                .map(|(k, p)| Validator::new(k.public_key(), *p))
                .collect(),
        )
        .expect("set");
        let id = BlockId {
            hash: Hash([3; 32]),
            part_set_header: PartSetHeader {
                total: 1,
                hash: Hash([4; 32]),
            },
        };
        (keys, vs, id)
    }

    /// A commit where `signers[i]` says how validator i (in set order) voted.
    fn commit(
        keys: &[PrivateKey],
        vs: &ValidatorSet,
        id: BlockId,
        signers: &[Option<bool>],
    ) -> Commit {
        let signatures = vs
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let key = keys
                    .iter()
                    .find(|k| k.public_key().address() == v.address)
                    .expect("key");
                let for_block = match signers[i] {
                    None => return CommitSig::Absent,
                    Some(b) => b,
                };
                let vote = Vote {
                    vote_type: VoteType::Precommit,
                    height: 5,
                    round: 1,
                    block_id: for_block.then_some(id),
                    timestamp: Time {
                        secs: 1_700_000_000,
                        nanos: i as u32,
                    },
                    validator_address: v.address,
                    validator_index: i as u32,
                    signature: Default::default(),
                    extension: vec![],
                    extension_signature: vec![],
                };
                let signature = key.sign(&vote.sign_bytes("c"));
                if for_block {
                    CommitSig::Commit {
                        validator_address: v.address,
                        timestamp: vote.timestamp,
                        signature,
                    }
                } else {
                    CommitSig::Nil {
                        validator_address: v.address,
                        timestamp: vote.timestamp,
                        signature,
                    }
                }
            })
            .collect();
        Commit {
            height: 5,
            round: 1,
            block_id: id,
            signatures,
        }
    }

    #[test]
    fn accepts_more_than_two_thirds_and_checks_nil_signatures_too() {
        let (keys, vs, id) = setup(&[1, 1, 1, 1]);
        let c = commit(
            &keys,
            &vs,
            id,
            &[Some(true), Some(true), Some(true), Some(false)],
        );
        assert_eq!(vs.verify_commit("c", &id, 5, &c), Ok(()));
        let c = commit(&keys, &vs, id, &[Some(true), Some(true), None, Some(false)]);
        assert_eq!(
            vs.verify_commit("c", &id, 5, &c),
            Err(CommitError::NotEnoughPower { got: 2, total: 4 })
        );
        // A corrupted nil signature fails the whole commit, as in CometBFT.
        let mut c = commit(
            &keys,
            &vs,
            id,
            &[Some(true), Some(true), Some(true), Some(false)],
        );
        if let CommitSig::Nil { signature, .. } = &mut c.signatures[3] {
            signature.0[0] ^= 1;
        }
        assert!(matches!(
            vs.verify_commit("c", &id, 5, &c),
            Err(CommitError::BadSignature { index: 3, .. })
        ));
    }

    #[test]
    fn rejects_wrong_shape_height_block_chain_and_address() {
        let (keys, vs, id) = setup(&[5, 3, 1, 1]);
        let good = commit(&keys, &vs, id, &[Some(true), Some(true), None, None]);
        assert_eq!(
            vs.verify_commit("c", &id, 5, &good),
            Ok(()),
            "8 of 10 power"
        );
        assert!(matches!(
            vs.verify_commit("c", &id, 6, &good),
            Err(CommitError::WrongHeight { .. })
        ));
        let other = BlockId {
            hash: Hash([9; 32]),
            ..id
        };
        assert_eq!(
            vs.verify_commit("c", &other, 5, &good),
            Err(CommitError::WrongBlock)
        );
        assert!(matches!(
            vs.verify_commit("other-chain", &id, 5, &good),
            Err(CommitError::BadSignature { .. })
        ));
        let mut short = good.clone();
        short.signatures.pop();
        assert!(matches!(
            vs.verify_commit("c", &id, 5, &short),
            Err(CommitError::WrongSize { .. })
        ));
        let mut swapped = good.clone();
        swapped.signatures.swap(0, 1);
        assert!(matches!(
            vs.verify_commit("c", &id, 5, &swapped),
            Err(CommitError::AddressMismatch { index: 0, .. })
        ));
        let weak = commit(&keys, &vs, id, &[Some(true), None, Some(true), None]);
        assert_eq!(
            vs.verify_commit("c", &id, 5, &weak),
            Err(CommitError::NotEnoughPower { got: 6, total: 10 })
        );
        let just = commit(&keys, &vs, id, &[Some(true), None, Some(true), Some(true)]);
        assert_eq!(
            vs.verify_commit("c", &id, 5, &just),
            Ok(()),
            "7 of 10 is more than 2/3"
        );
    }
}
