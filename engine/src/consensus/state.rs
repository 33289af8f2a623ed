//! The state machine of one node: Algorithm 1 of "The latest gossip on BFT
//! consensus", one height at a time.
//!
//! Every input first updates the facts the core knows (proposals, blocks,
//! validity, votes); then [`Consensus::apply_rules`] evaluates the upon-rules
//! of the paper against those facts until none fires. Rules that fire "for the
//! first time" keep a flag per round. The core never performs I/O.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::votes::{AddOutcome, Thresholds, VoteKeeper};
use super::{Config, Input, InputError, Output, SignatureVerifier, TimeoutStep};
use crate::types::{
    Address, Block, BlockId, Commit, CommitSig, Height, Proposal, Round, Signature, Time,
    ValidatorSet, Vote, VoteType,
};

/// Caps on buffered messages for the next height. They cannot be
/// authenticated before that height's validator set is known, so the caps
/// bound memory; honest messages that overflow are re-gossiped by peers.
const FUTURE_VOTES_PER_VALIDATOR: usize = 16;
/// Buffered proposals for the next height.
const FUTURE_PROPOSALS: usize = 16;
/// Buffered complete blocks for the next height.
const FUTURE_BLOCKS: usize = 4;
/// Cap on buffered messages for the next height overall.
const FUTURE_MESSAGES_TOTAL: usize = 4096;
/// Cap on complete blocks kept for the height that no proposal or vote
/// references yet (parts may complete before the proposal arrives).
const UNREFERENCED_BLOCKS: usize = 16;
/// Proposals are kept for rounds at most this far above the current one.
const FUTURE_PROPOSAL_ROUNDS: Round = 16;

/// The step within a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// No height started yet.
    Unstarted,
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
    /// We asked for, or sent, our proposal.
    proposed: bool,
}

/// A message for the next height, held until it starts.
#[derive(Clone, Debug)]
enum Buffered {
    Proposal(Proposal),
    Vote(Vote),
    Block(BlockId, Arc<Block>),
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
    /// Complete blocks of this height.
    blocks: BTreeMap<BlockId, Arc<Block>>,
    /// Blocks no proposal or vote referenced when they arrived, oldest first.
    unreferenced: VecDeque<BlockId>,
    /// Application verdicts per block.
    validity: BTreeMap<BlockId, Validity>,
    votes: VoteKeeper,

    /// Messages for height + 1.
    future: Vec<Buffered>,
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
            unreferenced: VecDeque::new(),
            validity: BTreeMap::new(),
            votes: VoteKeeper::new(Thresholds::new(1)),
            future: Vec::new(),
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

    /// Applies one input. On `Err` the input was rejected and nothing changed.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, InputError> {
        let mut out = Vec::new();
        match input {
            Input::StartHeight { height, validators } => {
                self.start_height(height, validators, &mut out)?
            }
            Input::Proposal(p) => self.on_proposal(p, &mut out)?,
            Input::Block { block_id, block } => self.on_block(block_id, block, &mut out)?,
            Input::Vote(v) => self.on_vote(v, &mut out)?,
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
        out: &mut Vec<Output>,
    ) -> Result<(), InputError> {
        let started = self.step != Step::Unstarted;
        if height == 0 || (started && height <= self.height) || validators.is_empty() {
            return Err(InputError::InvalidStart(height));
        }
        let follows = started && height == self.height + 1;
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
        self.unreferenced.clear();
        self.validity.clear();
        self.votes = VoteKeeper::new(thresholds);
        let buffered = std::mem::take(&mut self.future);

        self.start_round(0, out); // L10-L21 via StartRound(0)

        // Messages that arrived early are authenticated only now, against
        // this height's validator set; rejected ones are dropped silently.
        if follows {
            for msg in buffered {
                let _ = match msg {
                    Buffered::Proposal(p) => self.on_proposal(p, out),
                    Buffered::Vote(v) => self.on_vote(v, out),
                    Buffered::Block(id, b) => self.on_block(id, b, out),
                };
            }
        }
        Ok(())
    }

    fn on_proposal(&mut self, p: Proposal, out: &mut Vec<Output>) -> Result<(), InputError> {
        if self.check_height(p.height, || Buffered::Proposal(p.clone()))? {
            return Ok(());
        }
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
        self.unreferenced.retain(|b| *b != p.block_id);
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
        let h = block.header.height;
        if self.check_height(h, || Buffered::Block(block_id, block.clone()))? {
            return Ok(());
        }
        if block.header.chain_id != self.config.chain_id {
            return Err(InputError::UnexpectedBlock);
        }
        if self.blocks.contains_key(&block_id) {
            return Ok(());
        }
        if !self.is_referenced(&block_id) {
            if self.unreferenced.len() >= UNREFERENCED_BLOCKS {
                if let Some(old) = self.unreferenced.pop_front() {
                    self.blocks.remove(&old);
                }
            }
            self.unreferenced.push_back(block_id);
        }
        self.blocks.insert(block_id, block);
        self.request_validations(out);
        self.apply_rules(out);
        Ok(())
    }

    fn on_vote(&mut self, v: Vote, out: &mut Vec<Output>) -> Result<(), InputError> {
        if self.check_height(v.height, || Buffered::Vote(v.clone()))? {
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
        // Bound memory: a validator may hold votes in a few rounds ahead of
        // ours; further rounds are refused until we catch up.
        if v.round > self.round.saturating_add(1)
            && !self.votes.has_voted_in(v.round, index)
            && self.votes.rounds_voted_above(self.round, index)
                >= self.config.future_rounds_per_validator
        {
            return Err(InputError::RoundTooFarAhead {
                got: v.round,
                current: self.round,
            });
        }
        if !self.signature_ok(&key, &v.sign_bytes(&self.config.chain_id), &v.signature) {
            return Err(InputError::InvalidSignature(v.validator_address));
        }
        match self.votes.add(v.clone(), power) {
            AddOutcome::Duplicate => {}
            AddOutcome::Conflict(first) => out.push(Output::Equivocation {
                first,
                second: Box::new(v),
            }),
            AddOutcome::Added => {
                if let Some(id) = v.block_id {
                    self.unreferenced.retain(|b| *b != id);
                }
                self.request_validations(out);
                self.apply_rules(out);
            }
        }
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
            // L65: OnTimeoutPrecommit in any step of the round.
            (TimeoutStep::Precommit, s) if s != Step::Commit => {
                self.start_round(round.saturating_add(1), out);
            }
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
        let proposer = self.proposer(round);
        if height != self.height
            || round != self.round
            || self.step != Step::Propose
            || !self.is_me(&proposer)
            || self.proposals.contains_key(&round)
        {
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
            if self.step == Step::Propose && self.try_prevote_on_proposal(out) {
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
    fn try_polka(&mut self, out: &mut Vec<Output>) -> bool {
        if self.flags.polka_seen {
            return false;
        }
        let Some(p) = self.proposals.get(&self.round) else {
            return false;
        };
        let id = p.block_id;
        if !self.has_prevote_quorum_for(self.round, id)
            || self.validity.get(&id) != Some(&Validity::Valid)
        {
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
        self.step = Step::Propose;
        self.flags = RoundFlags::default();
        let proposer = self.proposer(round);
        if self.is_me(&proposer) {
            self.flags.proposed = true;
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

    /// Asks the application about every block that a proposal of this height
    /// carries and that has not been judged yet.
    fn request_validations(&mut self, out: &mut Vec<Output>) {
        for (round, p) in &self.proposals {
            let id = p.block_id;
            if self.validity.contains_key(&id) {
                continue;
            }
            if let Some(block) = self.blocks.get(&id) {
                self.validity.insert(id, Validity::Pending);
                self.unreferenced.retain(|b| *b != id);
                out.push(Output::ValidateBlock {
                    height: self.height,
                    round: *round,
                    block: block.clone(),
                });
            }
        }
    }

    // ----- helpers -------------------------------------------------------

    /// Decides what to do with a message of height `h`: `Ok(false)` to process
    /// it now, `Ok(true)` if it was buffered for the next height.
    fn check_height(
        &mut self,
        h: Height,
        buffered: impl FnOnce() -> Buffered,
    ) -> Result<bool, InputError> {
        if self.step == Step::Unstarted {
            return Err(InputError::NotStarted);
        }
        if h == self.height {
            return Ok(false);
        }
        if h == self.height + 1 {
            let msg = buffered();
            let same_kind = self
                .future
                .iter()
                .filter(|m| match (m, &msg) {
                    (Buffered::Vote(a), Buffered::Vote(b)) => {
                        a.validator_address == b.validator_address
                    }
                    (Buffered::Proposal(_), Buffered::Proposal(_)) => true,
                    (Buffered::Block(..), Buffered::Block(..)) => true,
                    _ => false,
                })
                .count();
            let cap = match msg {
                Buffered::Vote(_) => FUTURE_VOTES_PER_VALIDATOR,
                Buffered::Proposal(_) => FUTURE_PROPOSALS,
                Buffered::Block(..) => FUTURE_BLOCKS,
            };
            if same_kind >= cap || self.future.len() >= FUTURE_MESSAGES_TOTAL {
                return Err(InputError::BufferFull);
            }
            self.future.push(msg);
            return Ok(true);
        }
        Err(InputError::WrongHeight {
            got: h,
            current: self.height,
        })
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

    fn is_referenced(&self, id: &BlockId) -> bool {
        self.proposals.values().any(|p| p.block_id == *id)
            || self.votes.rounds().any(|(_, rv)| {
                rv.prevotes.weight_for(&Some(*id)) > 0 || rv.precommits.weight_for(&Some(*id)) > 0
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
        let precommits = self.votes.round(round).map(|rv| rv.precommits.votes());
        let signatures = (0..n as u32)
            .map(|i| match precommits.and_then(|p| p.get(&i)) {
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
