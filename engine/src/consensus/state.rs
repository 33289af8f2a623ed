//! The state machine of one node: Algorithm 1 of "The latest gossip on BFT
//! consensus", one height at a time.
//!
//! Every input first updates the facts the core knows (proposals, blocks,
//! validity, votes); then [`Consensus::apply_rules`] evaluates the upon-rules
//! of the paper against those facts until none fires. Rules that fire "for the
//! first time" keep a flag per round. The core never performs I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::votes::{AddOutcome, Thresholds, VoteKeeper};
use super::{Config, Input, InputError, Output, SignatureVerifier, TimeoutStep};
use crate::types::{
    Address, Block, BlockId, Commit, CommitSig, Height, Proposal, Round, Signature, Time,
    ValidatorSet, Vote, VoteType,
};

/// Votes for the next height kept per validator of the current set. They
/// are authenticated with the signer's current key (an address is a hash of
/// the key, so the key cannot differ at the next height).
const FUTURE_VOTES_PER_VALIDATOR: usize = 16;
/// Votes for the next height from signers outside the current set: these
/// cannot be authenticated yet, so only a few are kept; the rest are
/// re-gossiped by peers once we reach that height, as in CometBFT.
const FUTURE_VOTES_UNKNOWN_SIGNERS: usize = 64;
/// Votes are accepted for rounds at most this far above the current one.
/// Rounds grow only through timeouts that lengthen each round (CometBFT's
/// deltas), so honest validators drift this far apart only after months
/// without a decision; the cap keeps a Byzantine coalition from making
/// proposer selection (linear in the round) unbounded.
pub const MAX_ROUNDS_AHEAD: Round = 10_000;
/// Proposals (and the blocks they name) kept for the next height. They are
/// authenticated against the proposer the current set predicts for that
/// height, which is exact unless validator updates take effect then; a
/// proposal that does not verify is left to re-gossip.
const FUTURE_PROPOSALS: usize = 4;
/// Proposals are kept for rounds at most this far above the current one.
const FUTURE_PROPOSAL_ROUNDS: Round = 16;

/// The step within a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// No height started yet.
    Unstarted,
    /// Round 0 waits for transactions before entering Propose
    /// (`create_empty_blocks = false` or an interval; CometBFT's
    /// RoundStepNewRound). No timeoutPropose runs and the proposer has not
    /// asked for a value. The wait ends with [`Input::TxsAvailable`], the
    /// [`TimeoutStep::NewRound`] timeout, or votes of more than 1/3 of the
    /// power in round 0; a complete valid proposal is prevoted right away,
    /// and decisions and round skips work as in every step.
    NewRound,
    /// Waiting for the round's proposal.
    Propose,
    /// Prevoted; waiting for +2/3 prevotes.
    Prevote,
    /// Precommitted; waiting for +2/3 precommits.
    Precommit,
    /// The height is decided; waiting for `StartHeight`.
    Commit,
}

/// A snapshot of the core's position, for RPC (`consensus_state`) and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundState {
    /// Current height (0 before the first `StartHeight`).
    pub height: Height,
    /// Current round.
    pub round: Round,
    /// Current step.
    pub step: Step,
    /// lockedRound and lockedValue.
    pub locked: Option<(Round, BlockId)>,
    /// validRound and validValue.
    pub valid: Option<(Round, BlockId)>,
    /// The decided round and value of this height, once decided.
    pub decision: Option<(Round, BlockId)>,
}

/// What the application said about a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Validity {
    /// ProcessProposal was requested; no answer yet.
    Pending,
    /// Accepted (or our own proposal).
    Valid,
    /// Rejected.
    Invalid,
}

/// "For the first time" flags of the current round.
#[derive(Clone, Copy, Debug, Default)]
struct RoundFlags {
    /// L34 fired.
    prevote_timeout_scheduled: bool,
    /// L47 fired.
    precommit_timeout_scheduled: bool,
    /// L36 fired.
    polka_seen: bool,
}

/// The consensus core of one node.
pub struct Consensus {
    config: Config,
    verifier: Arc<dyn SignatureVerifier>,

    height: Height,
    round: Round,
    step: Step,
    validators: Option<ValidatorSet>,
    /// Proposer of round r at index r, extended on demand by one proposer
    /// priority increment per round, as CometBFT does when rounds advance.
    proposers: Vec<Address>,
    /// The set positioned at the last round in `proposers`.
    proposer_cursor: Option<ValidatorSet>,

    locked: Option<(Round, BlockId)>,
    valid: Option<(Round, BlockId)>,
    decision: Option<(Round, BlockId)>,
    flags: RoundFlags,

    /// The first proposal received for each round.
    proposals: BTreeMap<Round, Proposal>,
    /// Complete blocks of this height that a proposal or votes of more than
    /// 1/3 of the power reference (so a minority cannot make us hold blocks).
    blocks: BTreeMap<BlockId, Arc<Block>>,
    /// Application verdicts per block.
    validity: BTreeMap<BlockId, Validity>,
    votes: VoteKeeper,

    /// Votes for height + 1, in arrival order.
    future: Vec<Vote>,
    /// Proposals for height + 1, and the blocks they name.
    future_proposals: Vec<Proposal>,
    future_blocks: Vec<(BlockId, Arc<Block>)>,
}

impl Consensus {
    /// A core that waits for [`Input::StartHeight`].
    pub fn new(config: Config, verifier: Arc<dyn SignatureVerifier>) -> Self {
        Consensus {
            config,
            verifier,
            height: 0,
            round: 0,
            step: Step::Unstarted,
            validators: None,
            proposers: Vec::new(),
            proposer_cursor: None,
            locked: None,
            valid: None,
            decision: None,
            flags: RoundFlags::default(),
            proposals: BTreeMap::new(),
            blocks: BTreeMap::new(),
            validity: BTreeMap::new(),
            votes: VoteKeeper::new(Thresholds::new(1)),
            future: Vec::new(),
            future_proposals: Vec::new(),
            future_blocks: Vec::new(),
        }
    }

    /// The core's position.
    pub fn round_state(&self) -> RoundState {
        RoundState {
            height: self.height,
            round: self.round,
            step: self.step,
            locked: self.locked,
            valid: self.valid,
            decision: self.decision,
        }
    }

    /// The validator set of the current height, once started.
    pub fn validators(&self) -> Option<&ValidatorSet> {
        self.validators.as_ref()
    }

    /// The votes of the current height.
    pub fn votes(&self) -> &VoteKeeper {
        &self.votes
    }

    /// A complete block of the current height held by the core, by id (the
    /// I/O layer reads the block it precommits for to extend the vote).
    pub fn block(&self, id: &BlockId) -> Option<&Arc<Block>> {
        self.blocks.get(id)
    }

    /// Blocks of the current height the core would accept but does not
    /// hold: those a proposal names or that more than 1/3 of the power
    /// voted for (the rule that decides which blocks are kept). The gossip
    /// layer assembles parts for these ids only.
    pub fn wanted_blocks(&self) -> Vec<BlockId> {
        let t = self.votes.thresholds();
        let mut ids: Vec<BlockId> = self.proposals.values().map(|p| p.block_id).collect();
        for (_, rv) in self.votes.rounds() {
            for set in [&rv.prevotes, &rv.precommits] {
                for v in set.votes().values() {
                    if let Some(id) = v.block_id {
                        if !ids.contains(&id) && t.is_one_third_plus(set.weight_for(&Some(id))) {
                            ids.push(id);
                        }
                    }
                }
            }
        }
        ids.retain(|id| !self.blocks.contains_key(id));
        ids
    }

    /// The proposer of `round` at the current height, once the core has
    /// reached that round (for status displays; never computes).
    pub fn known_proposer(&self, round: Round) -> Option<Address> {
        self.proposers.get(round as usize).copied()
    }

    /// The proposal of `round` at the current height, if received.
    pub fn proposal(&self, round: Round) -> Option<&Proposal> {
        self.proposals.get(&round)
    }

    /// Applies one input. On `Err` the input was rejected and nothing changed.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, InputError> {
        let mut out = Vec::new();
        match input {
            Input::StartHeight {
                height,
                validators,
                wait_for_txs,
            } => self.start_height(height, validators, wait_for_txs, &mut out)?,
            Input::TxsAvailable { height } => self.on_txs_available(height, &mut out),
            Input::Proposal(p) => self.on_proposal(p, &mut out)?,
            Input::Block { block_id, block } => self.on_block(block_id, block, &mut out)?,
            Input::Vote(v) => self.on_vote(v, &mut out)?,
            Input::Certificate(votes) => self.on_certificate(votes, &mut out)?,
            Input::Timeout {
                height,
                round,
                step,
            } => self.on_timeout(height, round, step, &mut out)?,
            Input::ProposalValue {
                height,
                round,
                block,
            } => self.on_proposal_value(height, round, block, &mut out)?,
            Input::BlockValidated {
                height,
                block_id,
                valid,
            } => self.on_validated(height, block_id, valid, &mut out)?,
        }
        Ok(out)
    }

    // ----- inputs --------------------------------------------------------

    fn start_height(
        &mut self,
        height: Height,
        validators: ValidatorSet,
        wait_for_txs: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), InputError> {
        let started = self.step != Step::Unstarted;
        if height == 0 || (started && height <= self.height) || validators.is_empty() {
            return Err(InputError::InvalidStart(height));
        }
        let follows = started && Some(height) == self.height.checked_add(1);
        let thresholds = Thresholds::new(validators.total_voting_power());
        #[cfg(feature = "mutants")]
        let thresholds = if self.config.mutant == Some(super::mutants::Mutant::QuorumTwoF) {
            thresholds.with_two_f_quorum()
        } else {
            thresholds
        };
        self.height = height;
        self.round = 0;
        self.step = Step::Propose;
        self.proposers = vec![validators.proposer().address];
        self.proposer_cursor = Some(validators.clone());
        self.validators = Some(validators);
        self.locked = None;
        self.valid = None;
        self.decision = None;
        self.flags = RoundFlags::default();
        self.proposals.clear();
        self.blocks.clear();
        self.validity.clear();
        self.votes = VoteKeeper::new(thresholds);
        let buffered = std::mem::take(&mut self.future);
        let proposals = std::mem::take(&mut self.future_proposals);
        let blocks = std::mem::take(&mut self.future_blocks);

        if wait_for_txs {
            self.wait_for_txs(out);
        } else {
            self.start_round(0, out); // L10-L21 via StartRound(0)
        }

        // Votes that arrived early are checked again, now against this
        // height's validator set; rejected ones are dropped silently.
        if follows {
            for p in proposals {
                let _ = self.on_proposal(p, out);
            }
            for (id, b) in blocks {
                let _ = self.on_block(id, b, out);
            }
            for v in buffered {
                let _ = self.on_vote(v, out);
            }
        }
        Ok(())
    }

    /// Transactions arrived for `height`: a waiting round 0 proposes. Stale
    /// or early notices change nothing (the mempool notifies once per
    /// height and the I/O layer checks it again when a height starts).
    fn on_txs_available(&mut self, height: Height, out: &mut Vec<Output>) {
        if height == self.height && self.step == Step::NewRound {
            self.enter_propose(out);
            self.apply_rules(out);
        }
    }

    fn on_proposal(&mut self, p: Proposal, out: &mut Vec<Output>) -> Result<(), InputError> {
        if self.is_next_height(p.height) {
            return self.buffer_next_height_proposal(p);
        }
        self.check_current_height(p.height)?;
        if let Some(pol) = p.pol_round {
            if pol >= p.round {
                return Err(InputError::InvalidPolRound {
                    round: p.round,
                    pol_round: pol,
                });
            }
        }
        if p.round > self.round.saturating_add(FUTURE_PROPOSAL_ROUNDS) {
            return Err(InputError::RoundTooFarAhead {
                got: p.round,
                current: self.round,
            });
        }
        let proposer = self.proposer(p.round);
        let (_, validator) = self
            .validators()
            .and_then(|vs| vs.get_by_address(&proposer))
            .ok_or(InputError::UnknownValidator(proposer))?;
        let key = validator.pub_key;
        if self.proposals.get(&p.round) == Some(&p) {
            return Ok(());
        }
        if !self.signature_ok(&key, &p.sign_bytes(&self.config.chain_id), &p.signature) {
            return Err(InputError::InvalidSignature(proposer));
        }
        if self.proposals.contains_key(&p.round) {
            // A second, different proposal for the round: the first one stands,
            // as in CometBFT. (Proposer equivocation is not slashable evidence.)
            return Ok(());
        }
        self.proposals.insert(p.round, p);
        self.request_validations(out);
        self.apply_rules(out);
        Ok(())
    }

    fn on_block(
        &mut self,
        block_id: BlockId,
        block: Arc<Block>,
        out: &mut Vec<Output>,
    ) -> Result<(), InputError> {
        if self.is_next_height(block.header.height) {
            let named = self.future_proposals.iter().any(|p| p.block_id == block_id);
            if !named {
                return Err(InputError::UnexpectedBlock);
            }
            if !self.future_blocks.iter().any(|(id, _)| *id == block_id) {
                self.future_blocks.push((block_id, block));
            }
            return Ok(());
        }
        self.check_current_height(block.header.height)?;
        if block.header.chain_id != self.config.chain_id {
            return Err(InputError::UnexpectedBlock);
        }
        if self.blocks.contains_key(&block_id) {
            return Ok(());
        }
        // Only blocks we have a use for: anyone can build a block that hashes
        // correctly, so an unreferenced one is refused rather than stored.
        // The gossip layer offers it again once a proposal or votes name it.
        if !self.is_referenced(&block_id) {
            return Err(InputError::UnexpectedBlock);
        }
        self.blocks.insert(block_id, block);
        self.request_validations(out);
        self.apply_rules(out);
        Ok(())
    }

    fn on_vote(&mut self, v: Vote, out: &mut Vec<Output>) -> Result<(), InputError> {
        if self.buffer_next_height_vote(&v)? {
            return Ok(());
        }
        let (index, validator) = self
            .validators()
            .and_then(|vs| vs.get_by_address(&v.validator_address))
            .ok_or(InputError::UnknownValidator(v.validator_address))?;
        if index != v.validator_index {
            return Err(InputError::WrongValidatorIndex {
                index: v.validator_index,
                address: v.validator_address,
            });
        }
        let (power, key) = (validator.voting_power, validator.pub_key);
        if v.round > self.round.saturating_add(MAX_ROUNDS_AHEAD) {
            return Err(InputError::RoundTooFarAhead {
                got: v.round,
                current: self.round,
            });
        }
        // A re-sent vote changes nothing: skip the signature check.
        let counted = self
            .votes
            .round(v.round)
            .and_then(|rv| rv.of(v.vote_type).get(index));
        if counted.is_some_and(|c| c.block_id == v.block_id) {
            return Ok(());
        }
        if !self.signature_ok(&key, &v.sign_bytes(&self.config.chain_id), &v.signature) {
            return Err(InputError::InvalidSignature(v.validator_address));
        }
        // Bound memory: each validator keeps votes in at most a few rounds
        // beyond round + 1, the highest ones (an honest validator only moves
        // up, and L55 needs where validators are now, not where they were).
        let near = self.round.saturating_add(1);
        if v.round > near && !self.votes.has_voted_in(v.round, index) {
            let far = self.votes.rounds_voted_above(near, index);
            if far.len() >= self.config.future_rounds_per_validator {
                match far.first() {
                    Some(lowest) if *lowest < v.round => self.votes.forget(*lowest, index, power),
                    _ => {
                        return Err(InputError::RoundTooFarAhead {
                            got: v.round,
                            current: self.round,
                        })
                    }
                }
            }
        }
        match self.votes.add(v.clone(), power) {
            AddOutcome::Duplicate | AddOutcome::AlreadyReported => {}
            AddOutcome::Conflict(first) => out.push(Output::Equivocation {
                first,
                second: Box::new(v),
            }),
            AddOutcome::Added => {
                self.request_validations(out);
                self.apply_rules(out);
            }
        }
        Ok(())
    }

    fn on_certificate(
        &mut self,
        votes: Vec<Vote>,
        out: &mut Vec<Output>,
    ) -> Result<(), InputError> {
        let Some(first) = votes.first() else {
            return Err(InputError::InvalidCertificate("no votes"));
        };
        let (height, round, vote_type, value) =
            (first.height, first.round, first.vote_type, first.block_id);
        self.check_current_height(height)?;
        if round > self.round.saturating_add(MAX_ROUNDS_AHEAD) {
            return Err(InputError::RoundTooFarAhead {
                got: round,
                current: self.round,
            });
        }
        if votes.iter().any(|v| {
            (v.height, v.round, v.vote_type, v.block_id) != (height, round, vote_type, value)
        }) {
            return Err(InputError::InvalidCertificate("votes of different kinds"));
        }
        let Some(validators) = self.validators.as_ref() else {
            return Err(InputError::NotStarted);
        };
        let mut signers = std::collections::BTreeSet::new();
        let mut checked = Vec::with_capacity(votes.len());
        let mut power: i64 = 0;
        for v in votes {
            let (index, validator) = validators
                .get_by_address(&v.validator_address)
                .ok_or(InputError::UnknownValidator(v.validator_address))?;
            if index != v.validator_index {
                return Err(InputError::WrongValidatorIndex {
                    index: v.validator_index,
                    address: v.validator_address,
                });
            }
            if !signers.insert(index) {
                return Err(InputError::InvalidCertificate("a validator signs twice"));
            }
            // A vote already counted exactly as it is needs no second check.
            let counted = self
                .votes
                .round(round)
                .and_then(|rv| rv.of(vote_type).get(index))
                .is_some_and(|c| *c == v);
            if !counted
                && !self.signature_ok(
                    &validator.pub_key,
                    &v.sign_bytes(&self.config.chain_id),
                    &v.signature,
                )
            {
                return Err(InputError::InvalidSignature(v.validator_address));
            }
            power = power.saturating_add(validator.voting_power);
            checked.push((v, validator.voting_power));
        }
        if !self.votes.thresholds().is_quorum(power) {
            return Err(InputError::InvalidCertificate(
                "not more than 2/3 of the power",
            ));
        }
        // Each vote also counts on its own (and exposes equivocation).
        for (v, p) in &checked {
            if let AddOutcome::Conflict(first) = self.votes.add(v.clone(), *p) {
                out.push(Output::Equivocation {
                    first,
                    second: Box::new(v.clone()),
                });
            }
        }
        self.votes.certify(round, vote_type, checked);
        self.request_validations(out);
        self.apply_rules(out);
        Ok(())
    }

    fn on_timeout(
        &mut self,
        height: Height,
        round: Round,
        step: TimeoutStep,
        out: &mut Vec<Output>,
    ) -> Result<(), InputError> {
        if height != self.height || round != self.round {
            return Ok(()); // stale: the round or height has moved on
        }
        match (step, self.step) {
            // L57: OnTimeoutPropose while still in the propose step.
            (TimeoutStep::Propose, Step::Propose) => {
                self.prevote(None, out);
            }
            // L61: OnTimeoutPrevote while in the prevote step.
            (TimeoutStep::Prevote, Step::Prevote) => {
                self.precommit(None, out);
            }
            // create_empty_blocks_interval elapsed: round 0 proposes anyway.
            (TimeoutStep::NewRound, Step::NewRound) => self.enter_propose(out),
            // L65: OnTimeoutPrecommit in any step of the round.
            (TimeoutStep::Precommit, s) if s != Step::Commit => match round.checked_add(1) {
                Some(next) => self.start_round(next, out),
                None => return Ok(()), // the last round: nowhere to go
            },
            _ => return Ok(()),
        }
        self.apply_rules(out);
        Ok(())
    }

    fn on_proposal_value(
        &mut self,
        height: Height,
        round: Round,
        block: Arc<Block>,
        out: &mut Vec<Output>,
    ) -> Result<(), InputError> {
        // Only useful while we still wait to propose in that round.
        if height != self.height
            || round != self.round
            || self.step != Step::Propose
            || self.proposals.contains_key(&round)
        {
            return Ok(());
        }
        let proposer = self.proposer(round);
        if !self.is_me(&proposer) {
            return Ok(());
        }
        let block_id = block.block_id();
        self.validity.insert(block_id, Validity::Valid);
        self.blocks.insert(block_id, block.clone());
        out.push(Output::Propose {
            proposal: Proposal {
                height,
                round,
                pol_round: None,
                block_id,
                timestamp: Time::default(),
                signature: Signature::default(),
            },
            block,
        });
        Ok(())
    }

    fn on_validated(
        &mut self,
        height: Height,
        block_id: BlockId,
        valid: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), InputError> {
        if height != self.height {
            return Ok(());
        }
        if self.validity.get(&block_id) == Some(&Validity::Pending) {
            let verdict = if valid {
                Validity::Valid
            } else {
                Validity::Invalid
            };
            self.validity.insert(block_id, verdict);
            self.apply_rules(out);
        }
        Ok(())
    }

    // ----- the rules -----------------------------------------------------

    /// Evaluates the upon-rules until none fires.
    fn apply_rules(&mut self, out: &mut Vec<Output>) {
        loop {
            if self.step == Step::Commit || self.step == Step::Unstarted {
                return;
            }
            if self.try_decide(out) {
                return;
            }
            if self.try_skip_round(out) {
                continue;
            }
            // CometBFT prevotes a complete proposal also while round 0 waits
            // for transactions (handleCompleteProposal, Step <= Propose).
            if matches!(self.step, Step::NewRound | Step::Propose)
                && self.try_prevote_on_proposal(out)
            {
                continue;
            }
            if self.step == Step::NewRound && self.try_join_round_zero(out) {
                continue;
            }
            if self.step >= Step::Prevote && self.try_polka(out) {
                continue;
            }
            if self.step == Step::Prevote && self.try_precommit_nil(out) {
                continue;
            }
            self.schedule_vote_timeouts(out);
            return;
        }
    }

    /// L49: PROPOSAL(h, r, v, *) and 2f+1 PRECOMMIT(h, r, id(v)) in any round
    /// r decide v. We accept v's block from any source with v's id: a quorum
    /// of precommits implies an honest validator already validated it.
    fn try_decide(&mut self, out: &mut Vec<Output>) -> bool {
        #[cfg(feature = "mutants")]
        let decide_on = if self.config.mutant == Some(super::mutants::Mutant::DecideOnPrevotes) {
            VoteType::Prevote
        } else {
            VoteType::Precommit
        };
        #[cfg(not(feature = "mutants"))]
        let decide_on = VoteType::Precommit;
        let found = self.quorum_with_block(decide_on);
        let Some((round, id)) = found else {
            return false;
        };
        let Some(block) = self.blocks.get(&id).cloned() else {
            return false;
        };
        let commit = self.make_commit(round, id);
        self.decision = Some((round, id));
        self.step = Step::Commit;
        out.push(Output::Decide {
            height: self.height,
            round,
            block,
            commit,
        });
        true
    }

    /// L55: f+1 validators sent messages of a higher round: go there.
    fn try_skip_round(&mut self, out: &mut Vec<Output>) -> bool {
        let t = *self.votes.thresholds();
        let target = self
            .votes
            .rounds()
            .filter(|(r, rv)| **r > self.round && t.is_one_third_plus(rv.sender_weight()))
            .map(|(r, _)| *r)
            .last();
        match target {
            Some(r) => {
                self.start_round(r, out);
                true
            }
            None => false,
        }
    }

    /// Ends a round 0 wait for transactions once validators with more than
    /// 1/3 of the power (so at least one honest one) voted in it: the height
    /// is under way, and a validator without transactions of its own (its
    /// mempool refused them, or it restarted with an empty one) must not be
    /// what keeps the others from a quorum. Not in CometBFT, which waits
    /// for its own transactions or a complete proposal; waiting delays only
    /// the start of Propose, so ending it early is always safe.
    fn try_join_round_zero(&mut self, out: &mut Vec<Output>) -> bool {
        let t = *self.votes.thresholds();
        let joined = self
            .votes
            .round(self.round)
            .is_some_and(|rv| t.is_one_third_plus(rv.sender_weight()));
        if joined {
            self.enter_propose(out);
        }
        joined
    }

    /// L22 and L28: prevote on the current round's proposal.
    fn try_prevote_on_proposal(&mut self, out: &mut Vec<Output>) -> bool {
        let Some(p) = self.proposals.get(&self.round) else {
            return false;
        };
        let id = p.block_id;
        let pol = p.pol_round;
        let validity = match self.validity.get(&id) {
            Some(Validity::Valid) => true,
            Some(Validity::Invalid) => false,
            // valid(v) cannot be evaluated yet: wait (timeoutPropose bounds it).
            Some(Validity::Pending) | None => return false,
        };
        let lock_allows = match pol {
            // L22: lockedRound = -1 or lockedValue = v.
            None => match self.locked {
                None => true,
                Some((_, locked)) => locked == id,
            },
            // L28: needs 2f+1 PREVOTE(h, vr, id(v)); lockedRound <= vr or lockedValue = v.
            Some(vr) => {
                if !self.has_prevote_quorum_for(vr, id) {
                    return false;
                }
                match self.locked {
                    None => true,
                    Some((lr, locked)) => lr <= vr || locked == id,
                }
            }
        };
        #[cfg(feature = "mutants")]
        let lock_allows =
            lock_allows || self.config.mutant == Some(super::mutants::Mutant::NoLocking);
        if validity && lock_allows {
            self.prevote(Some(id), out);
        } else {
            self.prevote(None, out);
        }
        true
    }

    /// L36: PROPOSAL(h, round_p, v, *) and 2f+1 PREVOTE(h, round_p, id(v)),
    /// valid(v), step >= prevote, for the first time.
    ///
    /// The polka names v; the PROPOSAL for it need not be the one we received
    /// first: more than 1/3 honest prevotes for v in round_p (implied by the
    /// quorum) were cast only on a PROPOSAL(h, round_p, v) from the proposer
    /// (L22, L28). This keeps the rule working when a Byzantine proposer sends
    /// different proposals to different validators, as CometBFT does by
    /// fetching the block behind a polka.
    fn try_polka(&mut self, out: &mut Vec<Output>) -> bool {
        if self.flags.polka_seen {
            return false;
        }
        let t = *self.votes.thresholds();
        let Some(Some(id)) = self
            .votes
            .round(self.round)
            .and_then(|rv| rv.prevotes.quorum_value(&t))
        else {
            return false;
        };
        if self.validity.get(&id) != Some(&Validity::Valid) {
            return false;
        }
        self.flags.polka_seen = true;
        if self.step == Step::Prevote {
            #[cfg(feature = "mutants")]
            let lock = self.config.mutant != Some(super::mutants::Mutant::NoLocking);
            #[cfg(not(feature = "mutants"))]
            let lock = true;
            if lock {
                self.locked = Some((self.round, id));
            }
            self.precommit(Some(id), out);
        }
        self.valid = Some((self.round, id));
        true
    }

    /// L44: 2f+1 PREVOTE(h, round_p, nil) while in the prevote step.
    fn try_precommit_nil(&mut self, out: &mut Vec<Output>) -> bool {
        let t = *self.votes.thresholds();
        let nil_quorum = self
            .votes
            .round(self.round)
            .is_some_and(|rv| t.is_quorum(rv.prevotes.weight_for(&None)));
        if nil_quorum {
            self.precommit(None, out);
        }
        nil_quorum
    }

    /// L34 and L47: schedule the prevote / precommit timeouts once per round
    /// when 2f+1 votes of any value arrived.
    fn schedule_vote_timeouts(&mut self, out: &mut Vec<Output>) {
        let t = *self.votes.thresholds();
        let Some(rv) = self.votes.round(self.round) else {
            return;
        };
        let prevotes_any = t.is_quorum(rv.prevotes.weight_any());
        let precommits_any = t.is_quorum(rv.precommits.weight_any());
        if self.step == Step::Prevote && !self.flags.prevote_timeout_scheduled && prevotes_any {
            self.flags.prevote_timeout_scheduled = true; // L34
            self.schedule(TimeoutStep::Prevote, out);
        }
        if !self.flags.precommit_timeout_scheduled && precommits_any {
            self.flags.precommit_timeout_scheduled = true; // L47
            self.schedule(TimeoutStep::Precommit, out);
        }
    }

    // ----- actions -------------------------------------------------------

    /// StartRound(round), L11-L21.
    fn start_round(&mut self, round: Round, out: &mut Vec<Output>) {
        self.round = round;
        self.flags = RoundFlags::default();
        self.enter_propose(out);
    }

    /// Round 0 of a new height waits for transactions instead of proposing
    /// (CometBFT's enterNewRound with waitForTxs), bounded by
    /// create_empty_blocks_interval when one is set.
    fn wait_for_txs(&mut self, out: &mut Vec<Output>) {
        self.round = 0;
        self.step = Step::NewRound;
        self.flags = RoundFlags::default();
        if !self.config.timeouts.create_empty_blocks_interval.is_zero() {
            self.schedule(TimeoutStep::NewRound, out);
        }
    }

    /// The body of StartRound (L11-L21) for the current round: propose or
    /// ask for a value if we are the proposer, and start timeoutPropose.
    fn enter_propose(&mut self, out: &mut Vec<Output>) {
        let round = self.round;
        self.step = Step::Propose;
        let proposer = self.proposer(round);
        if self.is_me(&proposer) {
            match self
                .valid
                .and_then(|(vr, id)| self.blocks.get(&id).map(|b| (vr, id, b)))
            {
                // L15-L16: re-propose validValue with its POL round.
                Some((vr, id, block)) => out.push(Output::Propose {
                    proposal: Proposal {
                        height: self.height,
                        round,
                        pol_round: Some(vr),
                        block_id: id,
                        timestamp: Time::default(),
                        signature: Signature::default(),
                    },
                    block: block.clone(),
                }),
                // L18: getValue().
                None => out.push(Output::RequestProposal {
                    height: self.height,
                    round,
                }),
            }
        }
        // L21. CometBFT schedules timeoutPropose for the proposer too, which
        // bounds a slow PrepareProposal.
        self.schedule(TimeoutStep::Propose, out);
    }

    fn prevote(&mut self, value: Option<BlockId>, out: &mut Vec<Output>) {
        self.step = Step::Prevote;
        self.emit_vote(VoteType::Prevote, value, out);
    }

    fn precommit(&mut self, value: Option<BlockId>, out: &mut Vec<Output>) {
        self.step = Step::Precommit;
        self.emit_vote(VoteType::Precommit, value, out);
    }

    fn emit_vote(&mut self, vote_type: VoteType, block_id: Option<BlockId>, out: &mut Vec<Output>) {
        let Some(address) = self.config.address else {
            return;
        };
        let Some((index, _)) = self.validators().and_then(|vs| vs.get_by_address(&address)) else {
            return; // not a validator at this height
        };
        out.push(Output::Vote(Vote {
            vote_type,
            height: self.height,
            round: self.round,
            block_id,
            timestamp: Time::default(),
            validator_address: address,
            validator_index: index,
            signature: Signature::default(),
            extension: Vec::new(),
            extension_signature: Vec::new(),
        }));
    }

    fn schedule(&self, step: TimeoutStep, out: &mut Vec<Output>) {
        out.push(Output::ScheduleTimeout {
            height: self.height,
            round: self.round,
            step,
            duration: self.config.timeouts.duration(step, self.round),
        });
    }

    /// Asks the application about every complete block that a proposal of
    /// this height carries, or that has a polka in some round, and that has
    /// not been judged yet.
    fn request_validations(&mut self, out: &mut Vec<Output>) {
        let t = *self.votes.thresholds();
        let proposed = self.proposals.iter().map(|(r, p)| (*r, p.block_id));
        let polkas = self
            .votes
            .rounds()
            .filter_map(|(r, rv)| match rv.prevotes.quorum_value(&t) {
                Some(Some(id)) => Some((*r, id)),
                _ => None,
            });
        let wanted: Vec<(Round, BlockId)> = proposed.chain(polkas).collect();
        for (round, id) in wanted {
            if self.validity.contains_key(&id) {
                continue;
            }
            if let Some(block) = self.blocks.get(&id) {
                self.validity.insert(id, Validity::Pending);
                out.push(Output::ValidateBlock {
                    height: self.height,
                    round,
                    block: block.clone(),
                });
            }
        }
    }

    // ----- helpers -------------------------------------------------------

    /// Accepts only messages of the current height.
    fn check_current_height(&self, h: Height) -> Result<(), InputError> {
        if self.step == Step::Unstarted {
            return Err(InputError::NotStarted);
        }
        if h != self.height {
            return Err(InputError::WrongHeight {
                got: h,
                current: self.height,
            });
        }
        Ok(())
    }

    fn is_next_height(&self, h: Height) -> bool {
        self.step != Step::Unstarted && Some(h) == self.height.checked_add(1)
    }

    /// Keeps a proposal for the next height if it is signed by the proposer
    /// the current validator set predicts for its round there.
    fn buffer_next_height_proposal(&mut self, p: Proposal) -> Result<(), InputError> {
        if self.future_proposals.contains(&p) {
            return Ok(());
        }
        if self.future_proposals.len() >= FUTURE_PROPOSALS {
            return Err(InputError::BufferFull);
        }
        if p.round > FUTURE_PROPOSAL_ROUNDS {
            return Err(InputError::RoundTooFarAhead {
                got: p.round,
                current: 0,
            });
        }
        let Some(vs) = self.validators.as_ref() else {
            return Err(InputError::NotStarted);
        };
        let mut next = vs.copy_increment_proposer_priority(1);
        if p.round > 0 {
            next.increment_proposer_priority(p.round);
        }
        let proposer = next.proposer();
        let (address, key) = (proposer.address, proposer.pub_key);
        if !self.signature_ok(&key, &p.sign_bytes(&self.config.chain_id), &p.signature) {
            return Err(InputError::InvalidSignature(address));
        }
        self.future_proposals.push(p);
        Ok(())
    }

    /// Returns `Ok(false)` for a vote of the current height, to process now;
    /// `Ok(true)` when a vote for the next height was kept for later.
    fn buffer_next_height_vote(&mut self, v: &Vote) -> Result<bool, InputError> {
        if self.step == Step::Unstarted {
            return Err(InputError::NotStarted);
        }
        if v.height == self.height {
            return Ok(false);
        }
        if Some(v.height) != self.height.checked_add(1) {
            return Err(InputError::WrongHeight {
                got: v.height,
                current: self.height,
            });
        }
        if self.future.contains(v) {
            return Ok(true);
        }
        let known = self
            .validators()
            .and_then(|vs| vs.get_by_address(&v.validator_address))
            .map(|(_, val)| val.pub_key);
        let (kept, cap) = match known {
            Some(key) => {
                if !self.signature_ok(&key, &v.sign_bytes(&self.config.chain_id), &v.signature) {
                    return Err(InputError::InvalidSignature(v.validator_address));
                }
                let kept = self
                    .future
                    .iter()
                    .filter(|f| f.validator_address == v.validator_address)
                    .count();
                (kept, FUTURE_VOTES_PER_VALIDATOR)
            }
            None => {
                let vs = self.validators();
                let kept = self
                    .future
                    .iter()
                    .filter(|f| {
                        vs.is_some_and(|vs| vs.get_by_address(&f.validator_address).is_none())
                    })
                    .count();
                (kept, FUTURE_VOTES_UNKNOWN_SIGNERS)
            }
        };
        if kept >= cap {
            return Err(InputError::BufferFull);
        }
        self.future.push(v.clone());
        Ok(true)
    }

    fn signature_ok(&self, key: &crate::types::PublicKey, msg: &[u8], sig: &Signature) -> bool {
        #[cfg(feature = "mutants")]
        if self.config.mutant == Some(super::mutants::Mutant::NoSignatureCheck) {
            return true;
        }
        self.verifier.verify(key, msg, sig)
    }

    /// The earliest round in which votes of `vote_type` for one block reach a
    /// quorum and that block is complete.
    fn quorum_with_block(&self, vote_type: VoteType) -> Option<(Round, BlockId)> {
        let t = self.votes.thresholds();
        self.votes
            .rounds()
            .find_map(|(round, rv)| match rv.of(vote_type).quorum_value(t) {
                Some(Some(id)) if self.blocks.contains_key(&id) => Some((*round, id)),
                _ => None,
            })
    }

    fn has_prevote_quorum_for(&self, round: Round, id: BlockId) -> bool {
        let t = self.votes.thresholds();
        self.votes
            .round(round)
            .is_some_and(|rv| t.is_quorum(rv.prevotes.weight_for(&Some(id))))
    }

    /// A block is worth holding when a proposal carries it or votes of more
    /// than 1/3 of the power (so at least one honest validator) name it.
    fn is_referenced(&self, id: &BlockId) -> bool {
        let t = self.votes.thresholds();
        self.proposals.values().any(|p| p.block_id == *id)
            || self.votes.rounds().any(|(_, rv)| {
                t.is_one_third_plus(rv.prevotes.weight_for(&Some(*id)))
                    || t.is_one_third_plus(rv.precommits.weight_for(&Some(*id)))
            })
    }

    fn is_me(&self, address: &Address) -> bool {
        self.config.address.as_ref() == Some(address)
    }

    /// The proposer of `round` at the current height.
    fn proposer(&mut self, round: Round) -> Address {
        let want = round as usize;
        while self.proposers.len() <= want {
            let Some(cursor) = self.proposer_cursor.as_mut() else {
                return Address::default();
            };
            cursor.increment_proposer_priority(1);
            self.proposers.push(cursor.proposer().address);
        }
        self.proposers[want]
    }

    /// The commit for `id` from the precommits of `round`, one entry per
    /// validator in set order; precommits for other blocks count as absent.
    fn make_commit(&self, round: Round, id: BlockId) -> Commit {
        let n = self.validators().map_or(0, |vs| vs.len());
        let precommits = self.votes.round(round).map(|rv| &rv.precommits);
        let signatures = (0..n as u32)
            .map(|i| {
                let for_block = precommits.and_then(|p| p.vote_for(i, &Some(id)));
                for_block.or_else(|| precommits.and_then(|p| p.get(i)))
            })
            .map(|vote| match vote {
                Some(v) if v.block_id == Some(id) => CommitSig::Commit {
                    validator_address: v.validator_address,
                    timestamp: v.timestamp,
                    signature: v.signature,
                },
                Some(v) if v.block_id.is_none() => CommitSig::Nil {
                    validator_address: v.validator_address,
                    timestamp: v.timestamp,
                    signature: v.signature,
                },
                _ => CommitSig::Absent,
            })
            .collect();
        Commit {
            height: self.height,
            round,
            block_id: id,
            signatures,
        }
    }
}
