//! The consensus driver: the single place where the core's outputs become
//! I/O (signing through the double-sign guard, the WAL, timers,
//! PrepareProposal/ProcessProposal, ExtendVote, block execution on a
//! decision), and the gate every input from outside passes: votes of
//! other validators are admitted (vote-extension checks, VerifyVoteExtension)
//! before the WAL or the core sees them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use abci::proto::{ExtendedCommitInfo, RequestPrepareProposal, RequestProcessProposal};
use tokio::sync::{mpsc, watch};

use super::{now, NodeError, Shared};
use crate::block_exec;
use crate::consensus::{self, Consensus, Ed25519Verifier, Input, Output, Step};
use crate::execution;
use crate::gossip::reactor::OurEvent;
use crate::gossip::teller::{self, wire_step_of, Teller};
use crate::privval::FilePV;
use crate::store::State;
use crate::types::{Block, BlockId, ExtendedCommit, Height, Vote, VoteType};
use crate::vote_ext::{self, VoteExtensionError};
use crate::wal::{Durability, Wal, WalMessage};

/// The consensus driver: the single place where core outputs become I/O.
pub(super) struct Driver {
    shared: Arc<Shared>,
    core: Consensus,
    pv: FilePV,
    timeouts: consensus::Timeouts,
    inputs: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    /// Rings when the mempool reports transactions (see `Shared`).
    txs_available: watch::Receiver<()>,
    /// The configuration asks round 0 to wait for transactions
    /// (create_empty_blocks = false, or an interval).
    wait_for_txs: bool,
    /// What the core accepted and where it stands, for gossip.
    gossip: mpsc::UnboundedSender<OurEvent>,
    /// Turns what the core accepted into gossip's events.
    teller: Teller,
    /// When the current height started (for `consensus_state`).
    height_started: crate::types::Time,
    /// Equivocators' votes the core did not count, for certificates.
    conflicts: consensus::ConflictPool,
    /// Certificates found while telling gossip, for the input queue.
    certificates: Vec<Input>,
}

/// What the driver borrows from the node for its lifetime: queues that
/// outlive any one driver.
pub(super) struct Links {
    /// What the consensus reactor received, and from which peer.
    pub(super) peers: mpsc::Receiver<(crate::p2p::NodeId, Input)>,
    /// `consensus_state` requests from the RPC.
    pub(super) round_state: mpsc::Receiver<RoundStateRequest>,
}

/// A request for the consensus position, answered by the driver.
pub(super) type RoundStateRequest = tokio::sync::oneshot::Sender<rpc::backend::ConsensusState>;

impl Driver {
    pub(super) fn new(
        shared: Arc<Shared>,
        pv: FilePV,
        timeouts: consensus::Timeouts,
        gossip: mpsc::UnboundedSender<OurEvent>,
    ) -> Self {
        let mut cfg = consensus::Config::new(shared.chain_id.clone(), Some(pv.address()));
        cfg.timeouts = timeouts;
        let core = Consensus::new(cfg, Arc::new(Ed25519Verifier));
        let (inputs, rx) = mpsc::unbounded_channel();
        let txs_available = shared.txs_available.subscribe();
        let wait_for_txs = shared.home.config.consensus.wait_for_txs();
        Driver {
            shared,
            core,
            pv,
            timeouts,
            inputs,
            rx,
            txs_available,
            wait_for_txs,
            gossip,
            teller: Teller::default(),
            height_started: now(),
            conflicts: consensus::ConflictPool::default(),
            certificates: Vec::new(),
        }
    }

    /// The core's position and votes as `consensus_state` shows them.
    fn consensus_state(&self) -> rpc::backend::ConsensusState {
        let rs = self.core.round_state();
        let validators = self.core.validators();
        let n = validators.map_or(0, |v| v.len());
        let total = validators.map_or(0, |v| v.total_voting_power);
        let power = |i: u32| {
            validators
                .and_then(|v| v.validators.get(i as usize))
                .map_or(0, |v| v.voting_power)
        };
        let render = |set: &consensus::VoteSet| {
            let mut entries = Vec::with_capacity(n);
            let mut bits = String::with_capacity(n);
            let mut voted = 0i64;
            for i in 0..n as u32 {
                match set.get(i) {
                    Some(v) => {
                        voted += power(i);
                        bits.push('x');
                        entries.push(vote_text(v));
                    }
                    None => {
                        bits.push('_');
                        entries.push("nil-Vote".to_string());
                    }
                }
            }
            let fraction = if total > 0 {
                voted as f64 / total as f64
            } else {
                0.0
            };
            (
                entries,
                format!("BA{{{n}:{bits}}} {voted}/{total} = {fraction:.2}"),
            )
        };
        let votes = self
            .core
            .votes()
            .rounds()
            .map(|(round, rv)| {
                let (prevotes, prevotes_bit_array) = render(&rv.prevotes);
                let (precommits, precommits_bit_array) = render(&rv.precommits);
                rpc::backend::RoundVotes {
                    round: *round,
                    prevotes,
                    prevotes_bit_array,
                    precommits,
                    precommits_bit_array,
                }
            })
            .collect();
        let proposer = self.core.known_proposer(rs.round).map(|address| {
            let index = validators
                .and_then(|v| v.validators.iter().position(|x| x.address == address))
                .unwrap_or(0);
            (address, index as u32)
        });
        rpc::backend::ConsensusState {
            height: rs.height,
            round: rs.round,
            step: wire_step_of(rs.step),
            start_time: self.height_started,
            proposal_block_hash: self.core.proposal(rs.round).map(|p| p.block_id.hash),
            locked_block_hash: rs.locked.map(|(_, id)| id.hash),
            valid_block_hash: rs.valid.map(|(_, id)| id.hash),
            proposer,
            votes,
        }
    }

    fn holds(&self, v: &Vote) -> bool {
        teller::holds(&self.core, v)
    }

    fn tell(&self, event: OurEvent) {
        // Gossip stops only with the node.
        let _ = self.gossip.send(event);
    }

    /// Tells gossip everything the core holds at its height (after a WAL
    /// replay; a new height goes through [`Driver::tell_accepted`]).
    fn tell_all(&mut self) {
        for event in self.teller.all(&self.core) {
            self.tell(event);
        }
    }

    /// Tells gossip what an accepted input changed (see [`Teller`]), and
    /// notes what the driver itself needs: when a height started, and a
    /// quorum an equivocator's refused vote completes.
    fn tell_accepted(&mut self, input: &Input) {
        match input {
            Input::StartHeight { .. } => self.height_started = now(),
            Input::Vote(v) => {
                if let Some(certificate) = self.conflicts.on_counted(v, &self.core) {
                    self.certificates.push(certificate);
                }
            }
            _ => {}
        }
        for event in self.teller.accepted(&self.core, input) {
            self.tell(event);
        }
    }

    /// Runs consensus until `stop` or an error; `peers` carries what the
    /// consensus reactor received and the RPC's questions (they outlive
    /// drivers, so they are lent).
    pub(super) async fn run(
        mut self,
        wal: &mut Wal,
        links: &mut Links,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let state = self.shared.state();
        let height = execution::next_height(&state);
        // Replay what this height already saw; its outputs were carried out
        // before the crash, so they are not repeated. Then restart the
        // round's timers.
        let replay = replay_after(wal, state.last_block_height)?;
        let mut started = false;
        for m in &replay {
            if let WalMessage::Input(input) = &m.msg {
                started |= matches!(input, Input::StartHeight { height: h, .. } if *h == height);
                if started {
                    let _ = self.core.handle(input.clone());
                }
            }
        }
        let mut health = tokio::time::interval(Duration::from_millis(500));
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut queue = VecDeque::new();
        if started {
            self.tell_all();
            let rs = self.core.round_state();
            tracing::info!(
                height,
                round = rs.round,
                inputs = replay.len(),
                "replayed the WAL: resuming the height where it was"
            );
            if rs.step == Step::NewRound {
                // Round 0 still waits for transactions: only its interval
                // comes back (the step timeouts would end the wait).
                let after = self.timeouts.create_empty_blocks_interval;
                if !after.is_zero() {
                    self.schedule(rs.height, 0, consensus::TimeoutStep::NewRound, after);
                }
            } else {
                for step in [
                    consensus::TimeoutStep::Propose,
                    consensus::TimeoutStep::Prevote,
                    consensus::TimeoutStep::Precommit,
                ] {
                    self.schedule(
                        rs.height,
                        rs.round,
                        step,
                        self.timeouts.duration(step, rs.round),
                    );
                }
            }
            if rs.step == Step::NewRound && !self.wait_for_txs {
                // The node restarted with create_empty_blocks on and no
                // interval: nothing else would end the wait.
                queue.push_back(Input::TxsAvailable { height: rs.height });
            } else {
                // The mempool outlives a driver restarted for a failed app:
                // txs it reported before this driver subscribed still count.
                queue.extend(self.txs_release());
            }
        } else {
            tracing::info!(
                height,
                "replayed the WAL: nothing recorded for this height, starting it"
            );
            queue.push_back(Input::StartHeight {
                height,
                validators: state.validators.clone(),
                wait_for_txs: self.waits_for_txs(&state, height)?,
            });
        }
        // Cleared if the mempool's sender is gone (it lives in `Shared`,
        // which this driver holds, so only in theory): a closed watch would
        // otherwise be ready forever.
        let mut txs_open = true;
        loop {
            // The peer an input came from, to drop it if it misbehaved.
            let mut from = None;
            let input = match queue.pop_front() {
                Some(i) => i,
                None => {
                    let received = tokio::select! {
                        i = self.rx.recv() => match i { Some(i) => i, None => return Ok(()) },
                        i = links.peers.recv() => match i {
                            Some((peer, i)) => {
                                from = Some(peer);
                                i
                            }
                            None => return Err(NodeError::TaskStopped("consensus reactor")),
                        },
                        Some(reply) = links.round_state.recv() => {
                            let _ = reply.send(self.consensus_state());
                            continue;
                        }
                        r = self.txs_available.changed(), if txs_open => match r {
                            Ok(()) => match self.txs_release() {
                                Some(i) => i,
                                None => continue,
                            },
                            Err(_) => {
                                txs_open = false;
                                continue;
                            }
                        },
                        _ = stop.changed() => return Ok(()),
                        _ = health.tick() => {
                            // Any connection failing (the mempool one while
                            // the RPC used it, say) is the app's failure:
                            // stop now rather than at the next block.
                            if let Some(e) = self.shared.app().failure() {
                                return Err(e.into());
                            }
                            continue;
                        }
                    };
                    // A vote the core already holds (gossip delivers many
                    // twice) changes nothing: skip the gate and the WAL.
                    if let Input::Vote(v) = &received {
                        if self.holds(v) {
                            continue;
                        }
                    }
                    match self.admit(received).await? {
                        Some(i) => i,
                        None => continue,
                    }
                }
            };
            let starts = matches!(input, Input::StartHeight { .. });
            let own = match &input {
                Input::Vote(v) => Some(v.validator_address) == Some(self.pv.address()),
                Input::Proposal(_) | Input::StartHeight { .. } => true,
                _ => false,
            };
            let durability = if own {
                Durability::Sync
            } else {
                Durability::Buffered
            };
            wal.append(now(), &WalMessage::Input(input.clone()), durability)?;
            tracing::trace!(?input, "consensus input");
            let outputs = match self.core.handle(input.clone()) {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(error = %e, "input refused");
                    if let (Some(peer), true) = (from, is_forgery(&e)) {
                        let _ = self
                            .shared
                            .switch
                            .stop_peer(peer, format!("sent an invalid consensus message: {e}"));
                    }
                    continue;
                }
            };
            self.tell_accepted(&input);
            queue.extend(self.certificates.drain(..));
            for output in outputs {
                self.carry_out(output, &mut queue, wal).await?;
            }
            // Transactions already in the mempool when a height starts to
            // wait release it at once; any reported later ring the watch.
            if starts {
                queue.extend(self.txs_release());
            }
        }
    }

    /// The gate for inputs from outside the driver (timers, and the gossip
    /// layer, which feeds peers' votes into the same channel): each vote,
    /// alone or in a certificate, must pass [`Driver::admit_vote`] before
    /// the WAL or the core sees it; refused votes are dropped (a
    /// certificate keeps its admitted votes). Our own votes come back
    /// through the local queue, already signed, and skip this.
    async fn admit(&self, input: Input) -> Result<Option<Input>, NodeError> {
        match input {
            Input::Vote(vote) => Ok(self.admit_vote(&vote).await?.then_some(Input::Vote(vote))),
            Input::Certificate(votes) => {
                let mut kept = Vec::with_capacity(votes.len());
                for vote in votes {
                    if self.admit_vote(&vote).await? {
                        kept.push(vote);
                    }
                }
                Ok((!kept.is_empty()).then_some(Input::Certificate(kept)))
            }
            other => Ok(Some(other)),
        }
    }

    /// Whether a vote received from another node may enter the core
    /// (CometBFT `addVote`'s extension rules, see
    /// [`vote_ext::check_received_vote`]): with extensions enabled, a
    /// precommit for a block needs a valid extension signature and the
    /// application's ACCEPT from VerifyVoteExtension; with them disabled,
    /// no vote may carry extension data. An application that fails to
    /// answer stops consensus like any application failure.
    pub(super) async fn admit_vote(&self, vote: &Vote) -> Result<bool, NodeError> {
        let own = Some(self.pv.address());
        let checked = self
            .shared
            .with_state(|s| vote_ext::check_received_vote(s, own, vote));
        let verdict = match checked {
            Ok(None) => Ok(()),
            Ok(Some(request)) => vote_ext::verify_with_app(&self.shared.app(), request).await?,
            Err(refused) => Err(refused),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(reason) => {
                tracing::debug!(height = vote.height, round = vote.round, validator = ?vote.validator_address, %reason, "vote refused");
                Ok(false)
            }
        }
    }

    /// Our application's extension for our precommit for `id`
    /// (ExtendVote, with the facts ProcessProposal had for the block).
    async fn extend_vote(&self, id: &BlockId) -> Result<Vec<u8>, NodeError> {
        // The core precommits only for a block it holds (L36 needs it).
        let block = self
            .core
            .block(id)
            .cloned()
            .ok_or(VoteExtensionError::UnknownBlock(*id))?;
        let request = self
            .shared
            .with_state(|s| vote_ext::extend_vote_request(&block, id, s.last_validators.as_ref()));
        let resp = self.shared.app().extend_vote(request).await?;
        let len = resp.vote_extension.len();
        if len > crate::types::MAX_VOTE_EXTENSION_SIZE {
            return Err(VoteExtensionError::OwnExtensionTooLarge { len }.into());
        }
        Ok(resp.vote_extension.to_vec())
    }

    /// `Input::TxsAvailable` for the current height when round 0 waits for
    /// transactions and the mempool has reported some for this height.
    fn txs_release(&self) -> Option<Input> {
        let rs = self.core.round_state();
        if rs.step != Step::NewRound {
            return None;
        }
        let ready = self.shared.with_mempool(|m| m.txs_available_for()) == Some(rs.height);
        ready.then_some(Input::TxsAvailable { height: rs.height })
    }

    /// Whether round 0 of `height` waits for transactions: the
    /// configuration asks for it and the height needs no proof block
    /// ([`execution::needs_proof_block`]). `state` is the state after
    /// `height - 1`.
    fn waits_for_txs(&self, state: &State, height: Height) -> Result<bool, NodeError> {
        if !self.wait_for_txs {
            return Ok(false);
        }
        let last = match height.checked_sub(1) {
            Some(h) if height > state.initial_height => self.shared.store.load_block_meta(h)?,
            _ => None,
        };
        let last_app_hash = last.as_ref().map(|m| m.header.app_hash.as_slice());
        Ok(!execution::needs_proof_block(state, height, last_app_hash))
    }

    fn schedule(&self, height: Height, round: u32, step: consensus::TimeoutStep, after: Duration) {
        let tx = self.inputs.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(Input::Timeout {
                height,
                round,
                step,
            });
        });
    }

    async fn carry_out(
        &mut self,
        output: Output,
        queue: &mut VecDeque<Input>,
        wal: &mut Wal,
    ) -> Result<(), NodeError> {
        let chain_id = self.shared.chain_id.clone();
        match output {
            Output::ScheduleTimeout {
                height,
                round,
                step,
                duration,
            } => self.schedule(height, round, step, duration),
            Output::RequestProposal { height, round } => {
                let block = self.build_block(height).await?;
                queue.push_back(Input::ProposalValue {
                    height,
                    round,
                    block: Arc::new(block),
                });
            }
            Output::Propose {
                mut proposal,
                block,
            } => {
                // Our parts first, so the proposal's event finds them.
                self.tell(OurEvent::Block(block));
                proposal.timestamp = now();
                self.pv.sign_proposal(&chain_id, &mut proposal)?;
                queue.push_back(Input::Proposal(proposal));
            }
            Output::Vote(mut vote) => {
                // CometBFT's vote time: now, but after the block's time.
                let floor = self.shared.last_block_time().add_nanos(1_000_000);
                let t = now();
                vote.timestamp = if t > floor { t } else { floor };
                // With extensions enabled a precommit for a block carries
                // our application's extension, and the signer signs it
                // (even when empty); nil precommits and prevotes carry none.
                let extend = vote.vote_type == VoteType::Precommit
                    && self.shared.vote_extensions_enabled(vote.height);
                if let (true, Some(id)) = (extend, vote.block_id) {
                    vote.extension = self.extend_vote(&id).await?;
                }
                self.pv.sign_vote(&chain_id, &mut vote, extend)?;
                queue.push_back(Input::Vote(vote));
            }
            Output::ValidateBlock { height, block, .. } => {
                // Encoding and hashing a block is the costly part: once.
                let block_id = block.block_id();
                let valid = self.validate(&block, &block_id).await?;
                queue.push_back(Input::BlockValidated {
                    height,
                    block_id,
                    valid,
                });
            }
            Output::Decide {
                height,
                round,
                block,
                commit,
            } => {
                self.tell(OurEvent::Block(block.clone()));
                self.tell(OurEvent::Decided {
                    round: i32::try_from(round).unwrap_or(i32::MAX),
                    block_id: commit.block_id,
                });
                self.decide(height, round, &block, &commit, wal).await?;
            }
            Output::Equivocation { first, second } => {
                tracing::warn!(validator = ?first.validator_address, height = first.height, round = first.round, a = ?first.block_id, b = ?second.block_id, "equivocation observed");
                // The refused vote may complete a quorum our peers counted.
                if let Some(certificate) = self.conflicts.add(*second, &self.core) {
                    tracing::info!(
                        height = first.height,
                        round = first.round,
                        "a quorum including an equivocator's other vote is proven"
                    );
                    queue.push_back(certificate);
                }
            }
        }
        Ok(())
    }

    async fn build_block(&self, height: Height) -> Result<Block, NodeError> {
        let state = self.shared.state();
        let last_commit = if height > state.initial_height {
            self.shared.store.load_seen_commit(height - 1)?
        } else {
            None
        };
        let params = &state.consensus_params;
        let max_bytes = if params.block.max_bytes < 0 {
            crate::types::MAX_BLOCK_SIZE_BYTES
        } else {
            params.block.max_bytes
        };
        // CometBFT's MaxDataBytes: block bytes minus header, commit and
        // protobuf overhead.
        let vals = state.validators.len() as i64;
        let max_data = max_bytes - 11 - 626 - (94 + 109 * vals);
        let txs: Vec<Vec<u8>> = self
            .shared
            .with_mempool(|m| m.reap(max_data, params.block.max_gas))
            .iter()
            .map(|t| t.to_vec())
            .collect();
        let time = execution::block_time(&state, last_commit.as_ref());
        // The previous height's votes, with their extensions when they
        // were enabled there (from the store, so a restart keeps them).
        let local_last_commit = match (&last_commit, &state.last_validators) {
            (Some(c), Some(vs)) => {
                let enabled = params.vote_extensions_enabled(c.height);
                let ec = if enabled {
                    self.shared
                        .store
                        .load_block_extended_commit(c.height)?
                        .ok_or(VoteExtensionError::MissingExtendedCommit { height: c.height })?
                } else {
                    ExtendedCommit::from_commit(c.clone())
                };
                vote_ext::extended_commit_info(&ec, vs, enabled)?
            }
            _ => ExtendedCommitInfo::default(),
        };
        let resp = self
            .shared
            .app()
            .prepare_proposal(RequestPrepareProposal {
                max_tx_bytes: max_data,
                txs: txs.into_iter().map(Into::into).collect(),
                local_last_commit: Some(local_last_commit),
                misbehavior: vec![],
                height: height as i64,
                time: Some(time.into()),
                next_validators_hash: state.next_validators.hash().0.to_vec().into(),
                proposer_address: self.pv.address().0.to_vec().into(),
            })
            .await?;
        let txs = resp.txs.into_iter().map(|t| t.to_vec()).collect();
        Ok(execution::make_block(
            &state,
            height,
            txs,
            last_commit,
            vec![],
            self.pv.address(),
            time,
        ))
    }

    /// Whether the proposed block is valid: our checks, then the app's
    /// ProcessProposal. An app that fails to answer stops consensus (the
    /// node reconnects); voting nil instead would hide the failure.
    async fn validate(&self, block: &Block, id: &crate::types::BlockId) -> Result<bool, NodeError> {
        let state = self.shared.state();
        if let Err(e) = execution::validate_block(&state, block) {
            tracing::warn!(height = block.header.height, error = %e, "invalid proposed block");
            return Ok(false);
        }
        let req =
            block_exec::finalize_request(block, id, state.last_validators.as_ref(), &|_| None);
        let resp = self
            .shared
            .app()
            .process_proposal(RequestProcessProposal {
                txs: req.txs,
                proposed_last_commit: req.decided_last_commit,
                misbehavior: req.misbehavior,
                hash: req.hash,
                height: req.height,
                time: req.time,
                next_validators_hash: req.next_validators_hash,
                proposer_address: req.proposer_address,
            })
            .await;
        Ok(resp?.status == 1)
    }

    async fn decide(
        &mut self,
        height: Height,
        round: u32,
        block: &Block,
        commit: &crate::types::Commit,
        wal: &mut Wal,
    ) -> Result<(), NodeError> {
        // The core decided exactly this block: the commit names its id.
        let id = commit.block_id;
        let (next, _) = if self.shared.vote_extensions_enabled(height) {
            // The decided round's precommits still sit in the core: keep
            // their extensions with the block, for the next proposer.
            let precommits = self.core.votes().round(round).map(|r| &r.precommits);
            let extended = vote_ext::extended_commit(commit, precommits);
            self.shared
                .commit_block(block, &id, super::commit::CommitProof::Extended(&extended))
                .await?
        } else {
            self.shared
                .commit_block(block, &id, super::commit::CommitProof::Plain(commit))
                .await?
        };
        wal.append(now(), &WalMessage::EndHeight(height), Durability::Sync)?;
        tracing::info!(height, round, txs = block.txs.len(), hash = ?id.hash, app_hash = %hex::encode_upper(&next.app_hash), "committed block");
        // Txs the new state invalidated leave the mempool in the background;
        // those left are reported available when the pass ends.
        self.shared.request_recheck();
        let tx = self.inputs.clone();
        let validators = next.validators.clone();
        let wait_for_txs = self.waits_for_txs(&next, height + 1)?;
        let wait = self.timeouts.commit;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = tx.send(Input::StartHeight {
                height: height + 1,
                validators,
                wait_for_txs,
            });
        });
        Ok(())
    }
}

/// What the WAL recorded after our last block `last`. Without a marker for
/// it (a fresh log, or a block the handshake or block sync applied), one is
/// written now: otherwise what the next height records (our votes, our
/// lock) would not be replayed after a restart, and the node would forget
/// them.
fn replay_after(wal: &mut Wal, last: Height) -> Result<Vec<crate::wal::TimedMessage>, NodeError> {
    match wal.replay_after(last)? {
        Some(replay) => Ok(replay),
        None => {
            wal.append(now(), &WalMessage::EndHeight(last), Durability::Sync)?;
            Ok(Vec::new())
        }
    }
}

/// Whether the core refused an input as something no honest node sends or
/// relays (honest nodes relay only what their core accepted): the peer
/// that sent it is disconnected. Refusals that timing explains (another
/// height, a full buffer, a round far ahead) are not.
fn is_forgery(e: &consensus::InputError) -> bool {
    use consensus::InputError as E;
    matches!(
        e,
        E::InvalidSignature(_)
            | E::UnknownValidator(_)
            | E::WrongValidatorIndex { .. }
            | E::NotProposer { .. }
            | E::InvalidPolRound { .. }
            | E::InvalidCertificate(_)
    )
}

/// A vote as CometBFT prints it in `consensus_state`.
fn vote_text(v: &Vote) -> String {
    let short = |b: &[u8]| hex::encode_upper(&b[..b.len().min(6)]);
    let (kind, name) = match v.vote_type {
        VoteType::Prevote => ("SIGNED_MSG_TYPE_PREVOTE", "Prevote"),
        VoteType::Precommit => ("SIGNED_MSG_TYPE_PRECOMMIT", "Precommit"),
    };
    // CometBFT prints the zero-padded fingerprint of an empty hash for nil.
    let block = v
        .block_id
        .map_or_else(|| "0".repeat(12), |id| short(&id.hash.0));
    format!(
        "Vote{{{}:{} {}/{:02}/{kind}({name}) {block} {} @ {}}}",
        v.validator_index,
        short(&v.validator_address.0),
        v.height,
        v.round,
        short(&v.signature.0),
        v.timestamp.to_rfc3339()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::WalOptions;

    #[test]
    fn a_height_started_without_a_marker_is_replayed_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cs.wal");
        let (mut wal, _) = Wal::open(&path, WalOptions::default(), now()).expect("open");
        // Height 7 was applied by the handshake: the log never saw it end.
        wal.append(now(), &WalMessage::EndHeight(5), Durability::Sync)
            .expect("append");
        assert!(replay_after(&mut wal, 6).expect("replay").is_empty());
        // Height 7 starts and records something, then the node stops.
        let input = Input::TxsAvailable { height: 7 };
        wal.append(now(), &WalMessage::Input(input.clone()), Durability::Sync)
            .expect("append");
        drop(wal);
        let (mut wal, _) = Wal::open(&path, WalOptions::default(), now()).expect("reopen");
        let replay = replay_after(&mut wal, 6).expect("replay");
        assert_eq!(replay.len(), 1, "what height 7 recorded comes back");
        assert!(matches!(
            &replay[0].msg,
            WalMessage::Input(Input::TxsAvailable { height: 7 })
        ));
    }
}
