//! Committing a decided block: the one path every block takes into the
//! store and the application, whether consensus decided it or block sync
//! fetched and verified it.
//!
//! It stores the block with the commit that proves it, runs FinalizeBlock
//! and Commit, publishes the new state, updates the mempool and tells
//! `broadcast_tx_commit` waiters. What only consensus does after a
//! decision (the WAL's end-of-height marker, the mempool recheck, the next
//! height's timer) stays with the driver.

use abci::proto::ResponseFinalizeBlock;

use super::{NodeError, Shared, TxEvent};
use crate::block_exec;
use crate::store::State;
use crate::types::{sha256, Block, BlockId, Commit, ExtendedCommit, Height};
use crate::vote_ext::VoteExtensionError;

/// The precommits that commit a block, in the form the store keeps for its
/// height: with their vote extensions when extensions are enabled there
/// (the next proposer hands them to the application), plain otherwise.
#[derive(Clone, Copy, Debug)]
pub(super) enum CommitProof<'a> {
    /// Vote extensions are disabled at the block's height.
    Plain(&'a Commit),
    /// Vote extensions are enabled at the block's height.
    Extended(&'a ExtendedCommit),
}

/// Refuses a plain commit for a height where vote extensions are enabled:
/// the next proposer would find no extensions to hand the application.
fn check_proof_form(
    proof: CommitProof<'_>,
    height: Height,
    enabled: bool,
) -> Result<(), NodeError> {
    match (proof, enabled) {
        (CommitProof::Plain(_), true) => {
            Err(VoteExtensionError::MissingExtendedCommit { height }.into())
        }
        _ => Ok(()),
    }
}

impl Shared {
    /// Commits `block` (the state's next height, with id `block_id`)
    /// proven by `proof`: saves block and commit in one store transaction,
    /// applies it (FinalizeBlock, state transition, Commit, state saved),
    /// publishes the new state, removes its transactions from the mempool
    /// and sends their results to `broadcast_tx_commit` waiters. Returns
    /// the new state and the application's FinalizeBlock answer.
    ///
    /// The caller has checked the block and its proof; the store refuses a
    /// block that is not the next one or a commit for another block.
    pub(super) async fn commit_block(
        &self,
        block: &Block,
        block_id: &BlockId,
        proof: CommitProof<'_>,
    ) -> Result<(State, ResponseFinalizeBlock), NodeError> {
        let height = block.header.height;
        let state = self.state();
        let enabled = state.consensus_params.vote_extensions_enabled(height);
        check_proof_form(proof, height, enabled)?;
        match proof {
            CommitProof::Plain(commit) => self.store.save_block(block, block_id, commit)?,
            CommitProof::Extended(extended) if enabled => self
                .store
                .save_block_with_extended_commit(block, block_id, extended)?,
            // Extensions are disabled here: the same precommits, without
            // the extension fields (which must be empty at such a height).
            CommitProof::Extended(extended) => {
                self.store
                    .save_block(block, block_id, &extended.to_commit())?
            }
        }
        let (next, resp) =
            block_exec::apply_block(&self.app(), &self.store, &state, block, block_id).await?;
        self.set_state(next.clone());
        let committed: Vec<(Vec<u8>, u32)> = block
            .txs
            .iter()
            .zip(&resp.tx_results)
            .map(|(tx, r)| (tx.clone(), r.code))
            .collect();
        self.with_mempool(|m| m.update(height, &committed));
        for (tx, result) in block.txs.iter().zip(&resp.tx_results) {
            let _ = self.events.send(TxEvent {
                hash: sha256(tx),
                height,
                result: result.clone(),
            });
        }
        Ok((next, resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{CommitSig, PartSetHeader, Time};

    fn commit(height: Height) -> Commit {
        Commit {
            height,
            round: 0,
            block_id: BlockId {
                hash: crate::types::Hash([1; 32]),
                part_set_header: PartSetHeader {
                    total: 1,
                    hash: crate::types::Hash([2; 32]),
                },
            },
            signatures: vec![CommitSig::Commit {
                validator_address: crate::types::Address([3; 20]),
                timestamp: Time { secs: 1, nanos: 0 },
                signature: crate::types::Signature([0; 64]),
            }],
        }
    }

    #[test]
    fn a_plain_commit_is_refused_where_extensions_are_enabled() {
        let plain = commit(5);
        let extended = ExtendedCommit::from_commit(plain.clone());
        assert!(check_proof_form(CommitProof::Plain(&plain), 5, false).is_ok());
        assert!(check_proof_form(CommitProof::Extended(&extended), 5, true).is_ok());
        assert!(check_proof_form(CommitProof::Extended(&extended), 5, false).is_ok());
        assert!(matches!(
            check_proof_form(CommitProof::Plain(&plain), 5, true),
            Err(NodeError::VoteExtension(
                VoteExtensionError::MissingExtendedCommit { height: 5 }
            ))
        ));
    }
}
