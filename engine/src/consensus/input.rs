//! Everything that can happen to the consensus core. Each input is a fact the
//! I/O layer observed; the core never asks the world anything directly.

use std::sync::Arc;

use crate::types::{Block, BlockId, Height, Proposal, Round, ValidatorSet, Vote};

use super::TimeoutStep;

/// An input to [`super::Consensus::handle`].
#[derive(Clone, Debug)]
pub enum Input {
    /// Begin `height` at round 0 with the validator set of that height (its
    /// proposer priorities positioned at round 0, as CometBFT keeps them).
    /// Messages for this height buffered earlier are processed now.
    StartHeight {
        /// The new height; must be above the current one.
        height: Height,
        /// Validators of `height`.
        validators: ValidatorSet,
        /// Round 0 waits in [`super::Step::NewRound`] for
        /// [`Input::TxsAvailable`] (or the `create_empty_blocks_interval`
        /// timeout) before proposing. The I/O layer sets it when
        /// `create_empty_blocks = false` or an interval is configured and
        /// the height needs no proof block (CometBFT's `WaitForTxs() &&
        /// !needProofBlock(height)`): the core cannot see the mempool or the
        /// app hash, and recording the decision here keeps WAL replay exact.
        wait_for_txs: bool,
    },
    /// The mempool holds transactions for `height`: a round 0 waiting for
    /// them proposes now. A no-op at any other height or step.
    TxsAvailable {
        /// The height the transactions are for.
        height: Height,
    },
    /// A signed proposal, from a peer or our own signed proposal fed back.
    Proposal(Proposal),
    /// A complete block: all parts of `block_id`'s part set arrived and the I/O
    /// layer checked that `block` hashes to `block_id` (hash and part set header).
    Block {
        /// The identity the block was verified against.
        block_id: BlockId,
        /// The block.
        block: Arc<Block>,
    },
    /// A signed prevote or precommit, from a peer or our own signed vote fed back.
    Vote(Vote),
    /// Signed votes of one height, round and type for one value, from
    /// validators holding more than 2/3 of the power: proof that the value
    /// has a quorum there. Unlike single votes, these count for their value
    /// even when a validator among them sent us a different vote first. This
    /// is how a node learns a quorum that includes an equivocator's "other"
    /// vote (the gossip layer sends it to peers that lag behind: a decided
    /// block's commit, or the proof-of-lock of a proposal).
    Certificate(Vec<Vote>),
    /// A timeout scheduled by [`super::Output::ScheduleTimeout`] fired.
    Timeout {
        /// Height it was scheduled for.
        height: Height,
        /// Round it was scheduled for.
        round: Round,
        /// Which step's timeout.
        step: TimeoutStep,
    },
    /// The application produced our proposal block (PrepareProposal), answering
    /// [`super::Output::RequestProposal`].
    ProposalValue {
        /// Height requested.
        height: Height,
        /// Round requested.
        round: Round,
        /// The block to propose.
        block: Arc<Block>,
    },
    /// The application judged a proposed block (ProcessProposal), answering
    /// [`super::Output::ValidateBlock`].
    BlockValidated {
        /// Height of the block.
        height: Height,
        /// The block judged.
        block_id: BlockId,
        /// ACCEPT (true) or REJECT (false).
        valid: bool,
    },
}
