//! Everything the consensus core asks the I/O layer to do.

use std::sync::Arc;
use std::time::Duration;

use crate::types::{Block, Commit, Height, Proposal, Round, Vote};

use super::TimeoutStep;

/// An effect returned by [`super::Consensus::handle`], to be carried out in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// We are the proposer of (height, round) and hold no valid value: build a
    /// block (reap the mempool, PrepareProposal) and answer with
    /// [`super::Input::ProposalValue`].
    RequestProposal {
        /// Height to propose at.
        height: Height,
        /// Round to propose at.
        round: Round,
    },
    /// Sign `proposal` (timestamp it), broadcast it with `block`'s parts, and
    /// feed the signed proposal back as [`super::Input::Proposal`]. (L19)
    Propose {
        /// The unsigned proposal.
        proposal: Proposal,
        /// The proposed block.
        block: Arc<Block>,
    },
    /// Sign `vote` (timestamp it, through the double-sign guard), broadcast it
    /// and feed the signed vote back as [`super::Input::Vote`].
    Vote(Vote),
    /// Fire [`super::Input::Timeout`] after `duration`.
    ScheduleTimeout {
        /// Height of the timeout.
        height: Height,
        /// Round of the timeout.
        round: Round,
        /// Step of the timeout.
        step: TimeoutStep,
        /// How long to wait.
        duration: Duration,
    },
    /// Ask the application whether `block` is acceptable (ProcessProposal) and
    /// answer with [`super::Input::BlockValidated`].
    ValidateBlock {
        /// Height of the block.
        height: Height,
        /// Round whose proposal carried it.
        round: Round,
        /// The block to judge.
        block: Arc<Block>,
    },
    /// `block` is decided at `height` (L49): persist it with `commit`, execute
    /// it, then start the next height.
    Decide {
        /// The decided height.
        height: Height,
        /// The round whose precommits decided it.
        round: Round,
        /// The decided block.
        block: Arc<Block>,
        /// +2/3 precommits for it, in validator-set order.
        commit: Commit,
    },
    /// A validator signed two different votes for one height, round and type.
    /// Both votes carry valid signatures. The evidence module turns this into
    /// DuplicateVoteEvidence with the height's time and powers.
    Equivocation {
        /// The vote seen first.
        first: Box<Vote>,
        /// The conflicting vote.
        second: Box<Vote>,
    },
}
