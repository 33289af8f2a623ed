//! Verifying a synced block before it is stored and applied, as CometBFT
//! v0.38's block sync reactor does in `poolRoutine`: block `h` is proven by
//! the last commit of block `h + 1`, signed by the validators the state
//! holds for `h`; then `h` is checked against the state like any block.
//!
//! A pure function of the state and the two blocks; which peer to blame is
//! the pool's business ([`BlockPool::invalid`](super::BlockPool::invalid)).

use crate::execution::{
    next_height, validate_block, validate_block_with_verified_last_commit, ExecError,
};
use crate::store::State;
use crate::types::{
    Block, BlockId, Commit, CommitError, CommitSig, ExtendedCommit, Height, Signature, ValidatorSet,
};

/// Which check a synced pair failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The first block is not at the state's next height.
    #[error("block at height {got}, the state expects {expected}")]
    UnexpectedHeight {
        /// The state's next height.
        expected: Height,
        /// The first block's height.
        got: Height,
    },
    /// The second block is not the one right after the first.
    #[error("blocks at heights {first} and {second} are not consecutive")]
    NotConsecutive {
        /// The first block's height.
        first: Height,
        /// The second block's height.
        second: Height,
    },
    /// An extended commit came although vote extensions are disabled at
    /// the height, or none came although they are enabled.
    #[error("extended commit {} at height {height}, where vote extensions are {}",
        if *.enabled { "missing" } else { "present" },
        if *.enabled { "enabled" } else { "disabled" })]
    ExtendedCommitPresence {
        /// The first block's height.
        height: Height,
        /// Whether vote extensions are enabled there.
        enabled: bool,
    },
    /// The second block carries no last commit.
    #[error("the block after height {0} has no last commit")]
    MissingLastCommit(Height),
    /// The second block's last commit does not prove the first block.
    #[error("last commit does not prove the block: {0}")]
    Commit(CommitError),
    /// The extended commit's entries break the extension rules (a
    /// precommit for the block without an extension signature, or data on
    /// another entry).
    #[error("extended commit: {0}")]
    ExtensionData(crate::types::Error),
    /// The extended commit's precommits do not prove the first block.
    #[error("extended commit does not prove the block: {0}")]
    ExtendedCommit(CommitError),
    /// A vote extension's signature does not verify.
    #[error("vote extension signature {index} does not verify")]
    ExtensionSignature {
        /// Index of the validator in the set.
        index: usize,
    },
    /// The first block fails the checks against the state.
    #[error("block does not match the state: {0}")]
    Block(ExecError),
}

/// Verifies `first` (the block at the state's next height) with
/// `second`'s last commit and the extended commit its sender supplied, in
/// CometBFT's order:
///
/// 1. heights: `first` at the state's next height, `second` right after;
/// 2. an extended commit present iff vote extensions are enabled at
///    `first`'s height;
/// 3. `second.last_commit` proves `first`'s block id (hash and 64 KiB part
///    set header) for `state.validators` (every signature checked);
/// 4. if extensions are enabled, the extended commit proves the same block
///    id and every extension signature verifies (CometBFT
///    `VerifyCommitExtended`);
/// 5. `first` passes [`validate_block`] against the state.
///
/// Returns `first`'s block id, under which it is stored and applied. A
/// node syncing block after block uses [`verify_pair_after`] instead, which
/// does not verify `first`'s own last commit a second time.
pub fn verify_pair(
    state: &State,
    first: &Block,
    second: &Block,
    ext_commit: Option<&ExtendedCommit>,
) -> Result<BlockId, VerifyError> {
    verify_pair_after(state, first, second, ext_commit, None).map(|v| v.block_id)
}

/// A last commit whose signatures [`verify_pair_after`] verified: it proves
/// `block_id`. Only verification builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenCommit {
    block_id: BlockId,
    commit: Commit,
}

/// What a pair's verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPair {
    /// `first`'s block id, under which it is stored and applied.
    pub block_id: BlockId,
    /// `second`'s last commit, proven to commit `first`: the next pair's
    /// `first` is `second`, so its last commit needs no second check.
    pub proof: ProvenCommit,
}

/// [`verify_pair`] for the next block of a sync: when `previous` (the
/// proof from verifying the pair before) is the very commit `first`
/// carries as its last commit and proves the state's last block, the
/// signatures of `first`'s last commit are not verified again (CometBFT
/// skips them after the first synced block too). Any other last commit,
/// say from a block re-fetched after a failure, is verified in full.
pub fn verify_pair_after(
    state: &State,
    first: &Block,
    second: &Block,
    ext_commit: Option<&ExtendedCommit>,
    previous: Option<&ProvenCommit>,
) -> Result<VerifiedPair, VerifyError> {
    let height = first.header.height;
    let expected = next_height(state);
    if height != expected {
        return Err(VerifyError::UnexpectedHeight {
            expected,
            got: height,
        });
    }
    if height.checked_add(1) != Some(second.header.height) {
        return Err(VerifyError::NotConsecutive {
            first: height,
            second: second.header.height,
        });
    }
    let block_id = first.block_id();

    let enabled = state.consensus_params.vote_extensions_enabled(height);
    if ext_commit.is_some() != enabled {
        return Err(VerifyError::ExtendedCommitPresence { height, enabled });
    }

    let commit = second
        .last_commit
        .as_ref()
        .ok_or(VerifyError::MissingLastCommit(height))?;
    state
        .validators
        .verify_commit(&state.chain_id, &block_id, height, commit)
        .map_err(VerifyError::Commit)?;

    if let Some(ec) = ext_commit {
        verify_extended(&state.validators, &state.chain_id, &block_id, height, ec)?;
    }

    let last_commit_proven = previous.is_some_and(|p| {
        state.last_block_id == Some(p.block_id) && first.last_commit.as_ref() == Some(&p.commit)
    });
    if last_commit_proven {
        validate_block_with_verified_last_commit(state, first)
    } else {
        validate_block(state, first)
    }
    .map_err(VerifyError::Block)?;
    Ok(VerifiedPair {
        block_id,
        proof: ProvenCommit {
            block_id,
            commit: commit.clone(),
        },
    })
}

/// CometBFT `VerifyCommitExtended`: the extension rules for an enabled
/// height, the commit's own signatures, then each extension signature.
fn verify_extended(
    validators: &ValidatorSet,
    chain_id: &str,
    block_id: &BlockId,
    height: Height,
    ec: &ExtendedCommit,
) -> Result<(), VerifyError> {
    ec.ensure_extensions(true)
        .map_err(VerifyError::ExtensionData)?;
    let commit = ec.to_commit();
    validators
        .verify_commit(chain_id, block_id, height, &commit)
        .map_err(VerifyError::ExtendedCommit)?;
    // verify_commit checked one entry per validator, in set order.
    for (index, (sig, val)) in ec.signatures.iter().zip(&validators.validators).enumerate() {
        if !matches!(sig.commit_sig, CommitSig::Commit { .. }) {
            continue;
        }
        let bad = || VerifyError::ExtensionSignature { index };
        let mut vote = u32::try_from(index)
            .ok()
            .and_then(|i| commit.get_vote(i))
            .ok_or_else(bad)?;
        vote.extension = sig.extension.clone();
        let signature = Signature::from_slice("extension_signature", &sig.extension_signature)
            .map_err(|_| bad())?;
        val.pub_key
            .verify(&vote.extension_sign_bytes(chain_id), &signature)
            .map_err(|_| bad())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::blocksync::testchain::{key, sign, Chain};
    use crate::execution::HeaderField;
    use crate::types::{Address, Hash, PartSetHeader};

    #[test]
    fn a_valid_pair_verifies_at_every_height() {
        let chain = Chain::build(4, 0);
        for i in 0..3 {
            let (st, first, second, ec) = chain.pair(i);
            assert_eq!(
                verify_pair(st, &first, &second, ec.as_ref()),
                Ok(first.block_id()),
                "height {}",
                first.header.height
            );
        }
    }

    #[test]
    fn a_proven_last_commit_is_not_verified_again_and_no_other_is_trusted() {
        let chain = Chain::build(4, 0);
        let (st0, first0, second0, _) = chain.pair(0);
        let proof = verify_pair_after(st0, &first0, &second0, None, None)
            .expect("valid pair")
            .proof;
        let (st1, first1, second1, _) = chain.pair(1);
        // Last validators whose keys verify no signature of the last
        // commit (addresses and powers kept, so the median time still
        // holds): only a skipped check lets the block through.
        let mut blind = st1.clone();
        if let Some(vals) = &mut blind.last_validators {
            for v in &mut vals.validators {
                v.pub_key = key(99).public_key();
            }
        }
        assert!(matches!(
            verify_pair(&blind, &first1, &second1, None),
            Err(VerifyError::Block(ExecError::LastCommit(_)))
        ));
        assert_eq!(
            verify_pair_after(&blind, &first1, &second1, None, Some(&proof)).map(|v| v.block_id),
            Ok(first1.block_id())
        );
        // The proof covers that commit only: a block carrying another last
        // commit (validator 2's slot signed by an outsider), with a second
        // block really committing it, is verified in full and refused.
        let forged = sign(
            &st0.validators,
            1,
            first0.block_id(),
            first0.header.time,
            &[0, 1, 2, 3],
            &|a| {
                if *a == st0.validators.validators[2].address {
                    99
                } else {
                    chain.keys[a]
                }
            },
            false,
        );
        let (first_forged, second_forged) =
            signed_for(&chain, 1, |b| b.last_commit = Some(forged.to_commit()));
        assert!(matches!(
            verify_pair_after(st1, &first_forged, &second_forged, None, Some(&proof)),
            Err(VerifyError::Block(ExecError::LastCommit(
                CommitError::BadSignature { index: 2, .. }
            )))
        ));
    }

    #[test]
    fn a_commit_signed_by_unknown_keys_fails() {
        let chain = Chain::build(3, 0);
        let (st, first, second, _) = chain.pair(1);
        // An outsider signs in validator 2's slot, under its address.
        let forged = sign(
            &st.validators,
            first.header.height,
            first.block_id(),
            first.header.time,
            &[0, 1, 2, 3],
            &|a| {
                if *a == st.validators.validators[2].address {
                    99
                } else {
                    chain.keys[a]
                }
            },
            false,
        );
        let second_forged = Chain::with_commit(&second, forged.to_commit());
        assert!(matches!(
            verify_pair(st, &first, &second_forged, None),
            Err(VerifyError::Commit(CommitError::BadSignature {
                index: 2,
                ..
            }))
        ));
        // A whole impostor set, signing under its own addresses.
        let impostors = ValidatorSet::new(
            (11..=14u8)
                .map(|s| crate::types::Validator::new(key(s).public_key(), 1))
                .collect(),
        )
        .expect("set");
        let impostor_keys: HashMap<Address, u8> = (11..=14u8)
            .map(|s| (key(s).public_key().address(), s))
            .collect();
        let fake = sign(
            &impostors,
            first.header.height,
            first.block_id(),
            first.header.time,
            &[0, 1, 2, 3],
            &|a| impostor_keys[a],
            false,
        );
        let second_fake = Chain::with_commit(&second, fake.to_commit());
        assert!(matches!(
            verify_pair(st, &first, &second_fake, None),
            Err(VerifyError::Commit(CommitError::AddressMismatch {
                index: 0,
                ..
            }))
        ));
    }

    #[test]
    fn a_commit_for_another_block_id_fails() {
        let chain = Chain::build(3, 0);
        let (st, first, second, _) = chain.pair(1);
        // Right hash, but a part set header for other bytes.
        let other = BlockId {
            hash: first.hash(),
            part_set_header: PartSetHeader {
                total: 1,
                hash: Hash([7; 32]),
            },
        };
        let c = sign(
            &st.validators,
            first.header.height,
            other,
            first.header.time,
            &[0, 1, 2, 3],
            &|a| chain.keys[a],
            false,
        );
        let second_other = Chain::with_commit(&second, c.to_commit());
        assert_eq!(
            verify_pair(st, &first, &second_other, None),
            Err(VerifyError::Commit(CommitError::WrongBlock))
        );
        // The real commit, for the first block, does not prove another one.
        let mut changed = first.clone();
        changed.txs.push(b"smuggled".to_vec());
        changed.fill_header();
        assert_eq!(
            verify_pair(st, &changed, &second, None),
            Err(VerifyError::Commit(CommitError::WrongBlock))
        );
    }

    #[test]
    fn a_commit_with_two_thirds_or_less_power_fails() {
        let chain = Chain::build(3, 0);
        let (st, first, second, _) = chain.pair(1);
        let weak = sign(
            &st.validators,
            first.header.height,
            first.block_id(),
            first.header.time,
            &[0, 2],
            &|a| chain.keys[a],
            false,
        );
        let second_weak = Chain::with_commit(&second, weak.to_commit());
        assert_eq!(
            verify_pair(st, &first, &second_weak, None),
            Err(VerifyError::Commit(CommitError::NotEnoughPower {
                got: 2,
                total: 4
            }))
        );
    }

    /// A block whose header disagrees with the state, with a commit the
    /// validators really signed for it: only the state checks catch it.
    fn signed_for(chain: &Chain, i: usize, edit: impl Fn(&mut Block)) -> (Block, Block) {
        let (st, mut first, second, _) = chain.pair(i);
        edit(&mut first);
        first.fill_header();
        let c = sign(
            &st.validators,
            first.header.height,
            first.block_id(),
            first.header.time,
            &[0, 1, 2, 3],
            &|a| chain.keys[a],
            false,
        );
        let second = Chain::with_commit(&second, c.to_commit());
        (first, second)
    }

    #[test]
    fn a_header_not_matching_the_state_fails() {
        let chain = Chain::build(3, 0);
        let st = &chain.states[1];
        let (first, second) = signed_for(&chain, 1, |b| b.header.chain_id = "other-chain".into());
        assert!(matches!(
            verify_pair(st, &first, &second, None),
            Err(VerifyError::Block(ExecError::WrongHeader {
                field: HeaderField::ChainId,
                ..
            }))
        ));
        let (first, second) = signed_for(&chain, 1, |b| {
            b.header.last_block_id = Some(BlockId {
                hash: Hash([1; 32]),
                part_set_header: PartSetHeader {
                    total: 1,
                    hash: Hash([2; 32]),
                },
            })
        });
        assert!(matches!(
            verify_pair(st, &first, &second, None),
            Err(VerifyError::Block(ExecError::WrongHeader {
                field: HeaderField::LastBlockId,
                ..
            }))
        ));
    }

    #[test]
    fn heights_must_be_the_next_and_consecutive() {
        let chain = Chain::build(4, 0);
        let (st, first, second, _) = chain.pair(0);
        assert_eq!(
            verify_pair(st, &second, &chain.blocks[2], None),
            Err(VerifyError::UnexpectedHeight {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(
            verify_pair(st, &first, &chain.blocks[2], None),
            Err(VerifyError::NotConsecutive {
                first: 1,
                second: 3
            })
        );
        let mut no_commit = second;
        no_commit.last_commit = None;
        assert_eq!(
            verify_pair(st, &first, &no_commit, None),
            Err(VerifyError::MissingLastCommit(1))
        );
    }

    #[test]
    fn the_extended_commit_is_required_iff_extensions_are_enabled() {
        // Extensions from height 2: height 1 has none, heights 2.. have.
        let chain = Chain::build(4, 2);
        let (st, first, second, ec) = chain.pair(0);
        assert!(ec.is_none());
        assert_eq!(verify_pair(st, &first, &second, None), Ok(first.block_id()));
        let unexpected = ExtendedCommit::from_commit(
            second
                .last_commit
                .clone()
                .expect("height 2 has a last commit"),
        );
        assert_eq!(
            verify_pair(st, &first, &second, Some(&unexpected)),
            Err(VerifyError::ExtendedCommitPresence {
                height: 1,
                enabled: false
            })
        );

        let (st, first, second, ec) = chain.pair(1);
        let ec = ec.expect("enabled at height 2");
        assert_eq!(
            verify_pair(st, &first, &second, Some(&ec)),
            Ok(first.block_id())
        );
        assert_eq!(
            verify_pair(st, &first, &second, None),
            Err(VerifyError::ExtendedCommitPresence {
                height: 2,
                enabled: true
            })
        );
    }

    #[test]
    fn the_extended_commit_must_prove_the_block_with_valid_extensions() {
        let chain = Chain::build(4, 1);
        let (st, first, second, ec) = chain.pair(1);
        let ec = ec.expect("enabled");

        let mut bad_ext = ec.clone();
        bad_ext.signatures[3].extension = b"tampered".to_vec();
        assert_eq!(
            verify_pair(st, &first, &second, Some(&bad_ext)),
            Err(VerifyError::ExtensionSignature { index: 3 })
        );

        let mut unsigned = ec.clone();
        unsigned.signatures[1].extension_signature.clear();
        assert!(matches!(
            verify_pair(st, &first, &second, Some(&unsigned)),
            Err(VerifyError::ExtensionData(_))
        ));

        // Well-formed and signed, but for the previous block.
        let other = chain.ext_commits[0].clone();
        assert!(matches!(
            verify_pair(st, &first, &second, Some(&other)),
            Err(VerifyError::ExtendedCommit(CommitError::WrongHeight { .. }))
        ));
        let mut wrong_block = ec.clone();
        wrong_block.block_id.part_set_header.hash = Hash([3; 32]);
        assert_eq!(
            verify_pair(st, &first, &second, Some(&wrong_block)),
            Err(VerifyError::ExtendedCommit(CommitError::WrongBlock))
        );

        // A commit signature broken in the extended commit only.
        let mut broken = ec;
        if let CommitSig::Commit { signature, .. } = &mut broken.signatures[0].commit_sig {
            signature.0[0] ^= 1;
        }
        assert!(matches!(
            verify_pair(st, &first, &second, Some(&broken)),
            Err(VerifyError::ExtendedCommit(CommitError::BadSignature {
                index: 0,
                ..
            }))
        ));
    }
}
