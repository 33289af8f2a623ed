//! Messages on the simulated wire and their one-line summaries.

use std::sync::Arc;

use engine::gossip::message::ConsensusMessage;
use engine::types::{Address, Block, BlockId, Height, Proposal, Round, Vote, VoteType};

/// A message between simulated nodes.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A signed proposal with its block (CometBFT sends the block as parts
    /// next to the proposal; the receiver feeds the block to its core only if
    /// it hashes to the proposal's block id).
    Proposal {
        /// The signed proposal.
        proposal: Proposal,
        /// The block sent along, possibly not the one the proposal names.
        block: Arc<Block>,
    },
    /// A signed prevote or precommit.
    Vote(Vote),
    /// A quorum of votes for one value in one round and type, fed to the
    /// core as `Input::Certificate` (proof-of-lock or precommit quorum for a
    /// peer stuck in that round).
    Certificate(Vec<Vote>),
    /// Catch-up for a peer at a lower height: the precommits of a decided
    /// block (fed as one certificate) and the block itself, in this order.
    Catchup {
        /// The precommits.
        votes: Vec<Vote>,
        /// The decided block's id.
        block_id: BlockId,
        /// The decided block.
        block: Arc<Block>,
    },
    /// Gossip mode: a message of the consensus reactor.
    Consensus(ConsensusMessage),
}

/// Identifies a message for gossip de-duplication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct MsgKey {
    pub kind: u8,
    pub height: Height,
    pub round: Round,
    pub validator: Address,
    pub block_id: Option<BlockId>,
}

impl MsgKey {
    pub(crate) fn vote(v: &Vote) -> Self {
        MsgKey {
            kind: match v.vote_type {
                VoteType::Prevote => 1,
                VoteType::Precommit => 2,
            },
            height: v.height,
            round: v.round,
            validator: v.validator_address,
            block_id: v.block_id,
        }
    }

    pub(crate) fn proposal(p: &Proposal) -> Self {
        MsgKey {
            kind: 0,
            height: p.height,
            round: p.round,
            validator: Address::default(),
            block_id: Some(p.block_id),
        }
    }

    pub(crate) fn certificate(votes: &[Vote]) -> Self {
        let first = votes.first();
        MsgKey {
            kind: 4 + first.map_or(0, |v| (v.vote_type == VoteType::Precommit) as u8),
            height: first.map_or(0, |v| v.height),
            round: first.map_or(0, |v| v.round),
            validator: Address::default(),
            block_id: first.and_then(|v| v.block_id),
        }
    }

    pub(crate) fn catchup(height: Height) -> Self {
        MsgKey {
            kind: 3,
            height,
            round: 0,
            validator: Address::default(),
            block_id: None,
        }
    }
}

/// A short block id for traces.
pub fn short_id(id: &Option<BlockId>) -> String {
    match id {
        Some(b) => format!("{:?}", b.hash),
        None => "nil".to_string(),
    }
}

/// One-line summary of a vote; `name` maps an address to a node name.
pub fn vote_summary(v: &Vote, name: &dyn Fn(&Address) -> String) -> String {
    let t = match v.vote_type {
        VoteType::Prevote => "Prevote",
        VoteType::Precommit => "Precommit",
    };
    format!(
        "{t} h{} r{} by {} {} sig {:?}",
        v.height,
        v.round,
        name(&v.validator_address),
        short_id(&v.block_id),
        v.signature
    )
}

/// One-line summary of a proposal.
pub fn proposal_summary(p: &Proposal) -> String {
    format!(
        "Proposal h{} r{} pol {:?} {} sig {:?}",
        p.height,
        p.round,
        p.pol_round,
        short_id(&Some(p.block_id)),
        p.signature
    )
}

impl Msg {
    /// One-line summary; `name` maps an address to a node name.
    pub fn summary(&self, name: &dyn Fn(&Address) -> String) -> String {
        match self {
            Msg::Proposal { proposal, block } => format!(
                "{} +block h{} {} txs",
                proposal_summary(proposal),
                block.header.height,
                block.txs.len()
            ),
            Msg::Vote(v) => vote_summary(v, name),
            Msg::Certificate(votes) => certificate_summary(votes),
            Msg::Catchup {
                votes, block_id, ..
            } => format!(
                "Catchup h{} {} with {} precommits",
                votes.first().map(|v| v.height).unwrap_or_default(),
                short_id(&Some(*block_id)),
                votes.len()
            ),
            Msg::Consensus(m) => super::gossip::summary(m, name),
        }
    }
}

/// A short certificate summary for traces.
pub fn certificate_summary(votes: &[Vote]) -> String {
    match votes.first() {
        Some(v) => format!(
            "Certificate {:?} h{} r{} {} by {} validators",
            v.vote_type,
            v.height,
            v.round,
            short_id(&v.block_id),
            votes.len()
        ),
        None => "Certificate (empty)".to_string(),
    }
}
