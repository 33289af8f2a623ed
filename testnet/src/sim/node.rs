//! A simulated validator: the consensus core plus its driver (signing through
//! the double-sign guard, the input WAL, restart by replay, the simulated
//! application, gossip). Byzantine validators reuse the driver and distort
//! what they send (see [`super::byzantine`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use engine::consensus::{
    Config, ConflictPool, Consensus, Input, InputError, Output, RoundState, Step,
};
use engine::types::{
    Block, BlockId, Commit, CommitSig, Height, PrivateKey, Proposal, Round, Signature, Time, Vote,
    VoteType,
};

use super::byzantine;
use super::checks::Property;
use super::config::Strategy;
use super::gossip::{Gossip, Outgoing, SimStore, Voice};
use super::message::{certificate_summary, proposal_summary, short_id, vote_summary, Msg, MsgKey};
use super::world::{time_of, Ctx, Event, World};

/// CometBFT's signing steps: proposal 1, prevote 2, precommit 3.
fn vote_step(t: VoteType) -> u8 {
    match t {
        VoteType::Prevote => 2,
        VoteType::Precommit => 3,
    }
}

/// The last thing signed; persisted across restarts.
#[derive(Clone, Debug)]
struct LastSigned {
    hrs: (Height, Round, u8),
    sign_bytes: Vec<u8>,
    signature: Signature,
    timestamp: Time,
}

/// The double-sign guard (CometBFT's FilePV last-sign state): refuses to sign
/// below the last signed (height, round, step), and at the same one signs
/// only the same message (a differing timestamp takes the stored one).
#[derive(Clone, Debug, Default)]
pub(crate) struct SignGuard {
    last: Option<LastSigned>,
}

impl SignGuard {
    /// Signs `bytes_at(ts)` at `hrs`; returns (signature, timestamp used), or
    /// None when signing would be a double-sign.
    fn sign(
        &mut self,
        key: &PrivateKey,
        hrs: (Height, Round, u8),
        timestamp: Time,
        bytes_at: impl Fn(Time) -> Vec<u8>,
    ) -> Option<(Signature, Time)> {
        if let Some(last) = &self.last {
            if hrs < last.hrs {
                return None;
            }
            if hrs == last.hrs {
                return (bytes_at(last.timestamp) == last.sign_bytes)
                    .then_some((last.signature, last.timestamp));
            }
        }
        let sign_bytes = bytes_at(timestamp);
        let signature = key.sign(&sign_bytes);
        self.last = Some(LastSigned {
            hrs,
            sign_bytes,
            signature,
            timestamp,
        });
        Some((signature, timestamp))
    }
}

/// What a node has seen at one height, for gossip.
#[derive(Default)]
struct Known {
    keys: BTreeSet<MsgKey>,
    msgs: Vec<(Round, MsgKey, Msg)>,
}

/// One validator of the simulated network.
pub(crate) struct Node {
    pub idx: usize,
    pub strategy: Option<Strategy>,
    pub key: PrivateKey,
    config: Config,
    core: Consensus,
    pub up: bool,
    pub epoch: u64,
    // Persisted: survives a crash.
    /// Every input, recorded before it is handled, with whether the core
    /// accepted it.
    wal: Vec<(Input, bool)>,
    guard: SignGuard,
    decided: BTreeMap<Height, (Arc<Block>, Commit)>,
    // Volatile.
    store: BTreeMap<Height, Known>,
    /// When each message was last gossiped to each peer.
    sent: BTreeMap<(usize, MsgKey), u64>,
    peer_seen: Vec<Option<(Height, Round, Step)>>,
    pending_proposals: BTreeMap<BlockId, Proposal>,
    /// The latest proposal the core accepted: (height, round, block id).
    pub latest_proposal: Option<(Height, Round, BlockId)>,
    /// Byzantine bookkeeping: rounds already attacked.
    pub attacked: BTreeSet<(Height, Round, u8)>,
    /// Set when the core panicked; the node stops.
    pub panicked: bool,
    /// Gossip mode: the committed blocks the reactor serves (persisted).
    gossip_store: Option<SimStore>,
    /// Gossip mode: the reactor (volatile: rebuilt at a restart).
    gossip: Option<Gossip>,
    /// Gossip mode: the reactor's seed.
    gossip_seed: u64,
    /// Gossip mode: equivocators' refused votes, which may complete a
    /// quorum our peers counted (the real driver's certificates; without
    /// them a node that saw an equivocator's other vote first may never
    /// count a commit its peers send vote by vote).
    conflicts: ConflictPool,
}

impl Node {
    pub fn new(
        idx: usize,
        n: usize,
        key: PrivateKey,
        config: Config,
        world: &World,
        strategy: Option<Strategy>,
    ) -> Self {
        let core = Consensus::new(config.clone(), world.verifier.clone());
        Node {
            idx,
            strategy,
            key,
            config,
            core,
            up: true,
            epoch: 0,
            wal: Vec::new(),
            guard: SignGuard::default(),
            decided: BTreeMap::new(),
            store: BTreeMap::new(),
            sent: BTreeMap::new(),
            peer_seen: vec![None; n],
            pending_proposals: BTreeMap::new(),
            latest_proposal: None,
            attacked: BTreeSet::new(),
            panicked: false,
            gossip_store: None,
            gossip: None,
            gossip_seed: 0,
            conflicts: ConflictPool::default(),
        }
    }

    /// Gossip mode: gives the node a reactor (seeded with `seed`) and a
    /// store of committed blocks for it.
    pub fn enable_gossip(&mut self, seed: u64, world: &World) {
        self.gossip_store = Some(SimStore::default());
        self.gossip_seed = seed;
        self.gossip = Some(self.new_gossip(world));
    }

    fn new_gossip(&self, world: &World) -> Gossip {
        let voice = match self.strategy {
            None => Voice::All,
            Some(Strategy::Silent) => Voice::Mute,
            Some(_) => Voice::PositionOnly,
        };
        let store = self.gossip_store.clone().unwrap_or_default();
        let seed = self.gossip_seed.wrapping_add(self.epoch);
        Gossip::new(store, seed, world.addresses[self.idx], voice)
    }

    fn send_out(&self, ctx: &mut Ctx, out: Outgoing) {
        for (to, m) in out {
            ctx.send(self.idx, to, Msg::Consensus(m));
        }
    }

    /// Gossip mode: plans for every peer and sends what it planned.
    pub fn gossip_plan(&mut self, ctx: &mut Ctx) {
        if !self.up {
            return;
        }
        let Some(g) = &mut self.gossip else { return };
        g.set_clock(ctx.net.now);
        let out = g.plan();
        self.send_out(ctx, out);
    }

    /// Gossip mode: sends our +2/3 claims to every peer.
    pub fn gossip_maj23(&mut self, ctx: &mut Ctx) {
        if !self.up {
            return;
        }
        let Some(g) = &mut self.gossip else { return };
        let out = g.maj23();
        self.send_out(ctx, out);
    }

    /// Gossip mode: the connection to `peer` came up.
    pub fn gossip_connect(&mut self, ctx: &mut Ctx, peer: usize) {
        if !self.up {
            return;
        }
        let Some(g) = &mut self.gossip else { return };
        let out = g.connect(peer);
        self.send_out(ctx, out);
        self.gossip_plan(ctx);
    }

    /// Gossip mode: the connection to `peer` broke.
    pub fn gossip_disconnect(&mut self, peer: usize) {
        if let Some(g) = &mut self.gossip {
            g.disconnect(peer);
        }
    }

    pub fn honest(&self) -> bool {
        self.strategy.is_none()
    }

    pub fn round_state(&self) -> Option<RoundState> {
        if self.panicked {
            return None;
        }
        catch_unwind(AssertUnwindSafe(|| self.core.round_state())).ok()
    }

    pub fn chain_id(&self) -> &str {
        &self.config.chain_id
    }

    /// A message arrived from the network.
    pub fn deliver(&mut self, ctx: &mut Ctx, from: usize, msg: Msg) {
        if !self.up {
            return;
        }
        match msg {
            Msg::Proposal { proposal, block } => {
                let block_id = proposal.block_id;
                self.input(ctx, Input::Proposal(proposal));
                if ctx.world.block_id(&block) == block_id {
                    self.input(ctx, Input::Block { block_id, block });
                } else if ctx.rec.tracing() {
                    let idx = self.idx;
                    ctx.rec.trace_line(
                        ctx.net.now,
                        format!(
                            "n{idx} drops a block that does not hash to {}",
                            short_id(&Some(block_id))
                        ),
                    );
                }
            }
            Msg::Vote(v) => self.input(ctx, Input::Vote(v)),
            Msg::Certificate(votes) => self.input(ctx, Input::Certificate(votes)),
            Msg::Consensus(m) => {
                let Some(g) = &mut self.gossip else { return };
                g.set_clock(ctx.net.now);
                let (inputs, replies) = g.receive(from, m);
                self.send_out(ctx, replies);
                for input in inputs {
                    self.input(ctx, input);
                }
                self.gossip_plan(ctx);
            }
            Msg::Catchup {
                votes,
                block_id,
                block,
            } => {
                self.input(ctx, Input::Certificate(votes));
                if ctx.world.block_id(&block) == block_id {
                    self.input(ctx, Input::Block { block_id, block });
                }
            }
        }
    }

    /// Feeds one input (and the inputs its outputs cause) to the core.
    pub fn input(&mut self, ctx: &mut Ctx, input: Input) {
        if !self.up || self.panicked {
            return;
        }
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let Some(before) = self.round_state() else {
                return;
            };
            if let Input::StartHeight { height, .. } = input {
                self.truncate_wal(height);
            }
            self.wal.push((input.clone(), false));
            let Some(result) = self.handle(ctx, input.clone()) else {
                return;
            };
            if let (Ok(_), Some(last)) = (&result, self.wal.last_mut()) {
                last.1 = true;
            }
            if ctx.rec.tracing() {
                let line = format!(
                    "n{} <- {} : {}",
                    self.idx,
                    input_summary(&input, ctx.world),
                    result_summary(&result, ctx.world)
                );
                ctx.rec.trace_line(ctx.net.now, line);
            }
            let Ok(outputs) = result else { continue };
            self.note_accepted(ctx, &input, &before);
            if let Some(g) = &mut self.gossip {
                let mut out = Vec::new();
                g.set_clock(ctx.net.now);
                g.tell_accepted(&self.core, &input, &mut out);
                self.send_out(ctx, out);
                if let Input::Vote(v) = &input {
                    queue.extend(self.conflicts.on_counted(v, &self.core));
                }
            }
            for output in outputs {
                self.carry_out(ctx, output, &mut queue, false);
            }
        }
        self.gossip_plan(ctx);
    }

    /// Starting `height`: the WAL keeps only what replaying from this height
    /// needs, i.e. the messages of this height or above that the core
    /// accepted (buffered) earlier. They are replayed right after the
    /// StartHeight, which is where the live core processed them.
    fn truncate_wal(&mut self, height: Height) {
        let keep: Vec<(Input, bool)> = std::mem::take(&mut self.wal)
            .into_iter()
            .filter(|(input, ok)| {
                *ok && match input {
                    Input::Proposal(p) => p.height >= height,
                    Input::Vote(v) => v.height >= height,
                    Input::Block { block, .. } => block.header.height >= height,
                    _ => false,
                }
            })
            .collect();
        self.wal = keep;
    }

    /// Calls the core, turning a panic into a reported violation.
    fn handle(&mut self, ctx: &mut Ctx, input: Input) -> Option<Result<Vec<Output>, InputError>> {
        let core = &mut self.core;
        match catch_unwind(AssertUnwindSafe(|| core.handle(input.clone()))) {
            Ok(r) => Some(r),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.panicked = true;
                let detail = format!(
                    "n{} core panicked on {}: {msg}",
                    self.idx,
                    input_summary(&input, ctx.world)
                );
                ctx.rec.violation(ctx.net.now, Property::Panic, detail);
                None
            }
        }
    }

    /// Bookkeeping for an input the core accepted: gossip store, evidence.
    fn note_accepted(&mut self, ctx: &mut Ctx, input: &Input, before: &RoundState) {
        match input {
            Input::Vote(v) => {
                // Votes of far-future rounds may be evicted by the core's
                // flood bound; only votes of rounds up to the next one are
                // "observed" for the evidence property.
                if self.honest()
                    && before.height == v.height
                    && v.round <= before.round.saturating_add(1)
                {
                    ctx.rec.vote_accepted(self.idx, v);
                }
                self.remember(v.height, v.round, MsgKey::vote(v), Msg::Vote(v.clone()));
            }
            Input::Certificate(votes) => {
                for v in votes {
                    if self.honest()
                        && before.height == v.height
                        && v.round <= before.round.saturating_add(1)
                    {
                        ctx.rec.vote_accepted(self.idx, v);
                    }
                }
            }
            Input::Proposal(p) => {
                self.pending_proposals.insert(p.block_id, p.clone());
                self.latest_proposal = Some((p.height, p.round, p.block_id));
            }
            Input::Block { block_id, block } => {
                if let Some(p) = self.pending_proposals.get(block_id).cloned() {
                    let msg = Msg::Proposal {
                        proposal: p.clone(),
                        block: block.clone(),
                    };
                    self.remember(p.height, p.round, MsgKey::proposal(&p), msg);
                }
            }
            Input::StartHeight { height, .. } => {
                self.pending_proposals.clear();
                self.store.retain(|h, _| h >= height);
            }
            _ => {}
        }
    }

    fn remember(&mut self, height: Height, round: Round, key: MsgKey, msg: Msg) {
        let known = self.store.entry(height).or_default();
        if known.keys.insert(key) {
            known.msgs.push((round, key, msg));
        }
    }

    /// Carries out one output of the core. During replay nothing is fed back
    /// (the WAL holds the inputs that followed) and the application is not
    /// asked again.
    fn carry_out(
        &mut self,
        ctx: &mut Ctx,
        output: Output,
        queue: &mut VecDeque<Input>,
        replay: bool,
    ) {
        let now = ctx.net.now;
        let idx = self.idx;
        match output {
            Output::RequestProposal { height, round } => {
                if replay {
                    return;
                }
                let last = self
                    .decided
                    .get(&(height.saturating_sub(1)))
                    .map(|(_, c)| c.block_id);
                let invalid = self.strategy == Some(Strategy::InvalidBlock);
                let proposer = ctx.world.addresses[idx];
                let block =
                    ctx.world
                        .build_block(&mut ctx.net.rng, height, proposer, last, now, invalid);
                if self.honest() && ctx.world.app_accepts(&block, height) {
                    // PrepareProposal built it, so the proposer's application
                    // accepts it (CometBFT's proposer does not run
                    // ProcessProposal on its own block).
                    let id = ctx.world.block_id(&block);
                    ctx.rec.app_accepted(idx, id);
                }
                queue.push_back(Input::ProposalValue {
                    height,
                    round,
                    block,
                });
            }
            Output::Propose {
                mut proposal,
                block,
            } => {
                if let Some(strategy) = self.strategy {
                    if !replay {
                        byzantine::propose(self, ctx, strategy, proposal, block, queue);
                    }
                    return;
                }
                let chain_id = self.config.chain_id.clone();
                let hrs = (proposal.height, proposal.round, 1);
                let p = proposal.clone();
                let signed = self.guard.sign(&self.key, hrs, time_of(now), |ts| {
                    let mut p = p.clone();
                    p.timestamp = ts;
                    p.sign_bytes(&chain_id)
                });
                let Some((signature, timestamp)) = signed else {
                    if !replay {
                        let detail = format!(
                            "n{idx} asked to sign conflicting {}",
                            proposal_summary(&proposal)
                        );
                        ctx.rec.violation(now, Property::SignGuard, detail);
                    }
                    return;
                };
                proposal.signature = signature;
                proposal.timestamp = timestamp;
                if let Some(g) = &mut self.gossip {
                    // Our parts first, so that the proposal's event finds
                    // them; the reactor sends both.
                    let mut out = Vec::new();
                    g.our_block(block.clone(), &mut out);
                    self.send_out(ctx, out);
                } else {
                    let msg = Msg::Proposal {
                        proposal: proposal.clone(),
                        block: block.clone(),
                    };
                    ctx.broadcast(idx, &msg);
                }
                if !replay {
                    let block_id = proposal.block_id;
                    queue.push_back(Input::Proposal(proposal));
                    queue.push_back(Input::Block { block_id, block });
                }
            }
            Output::Vote(mut vote) => {
                if let Some(strategy) = self.strategy {
                    if !replay {
                        byzantine::vote(self, ctx, strategy, vote, queue);
                    }
                    return;
                }
                let chain_id = self.config.chain_id.clone();
                let hrs = (vote.height, vote.round, vote_step(vote.vote_type));
                let v = vote.clone();
                let signed = self.guard.sign(&self.key, hrs, time_of(now), |ts| {
                    let mut v = v.clone();
                    v.timestamp = ts;
                    v.sign_bytes(&chain_id)
                });
                let Some((signature, timestamp)) = signed else {
                    if !replay {
                        let detail = format!(
                            "n{idx} asked to sign conflicting {}",
                            vote_summary(&vote, &|a| ctx.world.name(a))
                        );
                        ctx.rec.violation(now, Property::SignGuard, detail);
                    }
                    return;
                };
                vote.signature = signature;
                vote.timestamp = timestamp;
                // In gossip mode the reactor sends it once the core holds it.
                if self.gossip_store.is_none() {
                    ctx.broadcast(idx, &Msg::Vote(vote.clone()));
                }
                if !replay {
                    queue.push_back(Input::Vote(vote));
                }
            }
            Output::ScheduleTimeout {
                height,
                round,
                step,
                duration,
            } => {
                let at = now + duration.as_millis() as u64;
                let epoch = self.epoch;
                ctx.net.schedule(
                    at,
                    Event::Timeout {
                        node: idx,
                        epoch,
                        height,
                        round,
                        step,
                    },
                );
            }
            Output::ValidateBlock { height, block, .. } => {
                if replay {
                    return;
                }
                let block_id = ctx.world.block_id(&block);
                let valid = ctx.world.app_accepts(&block, height);
                if valid && self.honest() {
                    ctx.rec.app_accepted(idx, block_id);
                }
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
                let block_id = commit.block_id;
                let hashed = ctx.world.block_id(&block);
                let invalid = !ctx.world.app_accepts(&block, height) || hashed != block_id;
                ctx.rec.decide(now, idx, height, round, block_id, invalid);
                if let Some(store) = &self.gossip_store {
                    let n = ctx.world.valset(height).len();
                    let votes = (commit.round as i32, commit_votes(&commit));
                    store.add(height, block.part_set(), votes, n);
                }
                if let Some(g) = &mut self.gossip {
                    let mut out = Vec::new();
                    g.decided(round, block.clone(), block_id, &mut out);
                    self.send_out(ctx, out);
                }
                self.decided.insert(height, (block, commit));
                if !replay {
                    let at = now + ctx.world.timeouts.commit.as_millis() as u64;
                    let epoch = self.epoch;
                    ctx.net.schedule(
                        at,
                        Event::StartHeight {
                            node: idx,
                            epoch,
                            height: height + 1,
                        },
                    );
                }
            }
            Output::Equivocation { first, second } => {
                if self.honest() {
                    ctx.rec.equivocation(idx, &first, &second);
                }
                if self.gossip.is_some() && !replay {
                    queue.extend(self.conflicts.add((*second).clone(), &self.core));
                }
            }
        }
    }

    /// Starts `height` (Input::StartHeight with that height's validator set),
    /// and if round 0 waits for transactions, arranges when they arrive.
    pub fn start_height(&mut self, ctx: &mut Ctx, height: Height) {
        let validators = ctx.world.valset(height).clone();
        let wait_for_txs = ctx.world.waits_for_txs(height);
        self.input(
            ctx,
            Input::StartHeight {
                height,
                validators,
                wait_for_txs,
            },
        );
        if wait_for_txs {
            self.schedule_txs(ctx, height);
        }
    }

    /// Schedules this node's `Input::TxsAvailable` for `height`, if it ever
    /// hears of transactions there.
    fn schedule_txs(&mut self, ctx: &mut Ctx, height: Height) {
        let now = ctx.net.now;
        if let Some(at) = ctx
            .world
            .txs_arrival(&mut ctx.net.rng, self.idx, height, now)
        {
            let (node, epoch) = (self.idx, self.epoch);
            ctx.net.schedule(
                at,
                Event::TxsAvailable {
                    node,
                    epoch,
                    height,
                },
            );
        }
    }

    /// The node crashes: volatile state is lost, pending timers are void.
    pub fn crash(&mut self, ctx: &mut Ctx) {
        self.up = false;
        self.epoch += 1;
        self.store.clear();
        self.sent.clear();
        self.peer_seen.iter_mut().for_each(|p| *p = None);
        self.pending_proposals.clear();
        self.gossip = None;
        self.conflicts = ConflictPool::default();
        ctx.rec
            .trace_line(ctx.net.now, format!("n{} CRASHES", self.idx));
    }

    /// The node restarts: a fresh core replays the WAL; messages the replay
    /// wants sent go out only if the double-sign guard allows; timeouts of
    /// the current position are scheduled again.
    pub fn restart(&mut self, ctx: &mut Ctx) {
        self.up = true;
        self.epoch += 1;
        self.core = Consensus::new(self.config.clone(), ctx.world.verifier.clone());
        if self.gossip_store.is_some() {
            // A fresh reactor; its peers come back as the runner reconnects.
            self.gossip = Some(self.new_gossip(ctx.world));
        }
        let mut wal = std::mem::take(&mut self.wal);
        // Messages buffered before the StartHeight they belong to go right
        // after it, where the live core processed them.
        if let Some(pos) = wal
            .iter()
            .position(|(i, _)| matches!(i, Input::StartHeight { .. }))
        {
            let start = wal.remove(pos);
            wal.insert(0, start);
        }
        ctx.rec.trace_line(
            ctx.net.now,
            format!("n{} RESTARTS, replaying {} inputs", self.idx, wal.len()),
        );
        let mut ignored = VecDeque::new();
        let mut timeouts = Vec::new();
        for (input, ok) in wal {
            self.wal.push((input.clone(), ok));
            let Some(before) = self.round_state() else {
                return;
            };
            let Some(result) = self.handle(ctx, input.clone()) else {
                return;
            };
            let Ok(outputs) = result else { continue };
            self.note_accepted(ctx, &input, &before);
            for output in outputs {
                match output {
                    Output::ScheduleTimeout { .. } => timeouts.push(output),
                    other => self.carry_out(ctx, other, &mut ignored, true),
                }
            }
        }
        let Some(rs) = self.round_state() else {
            return;
        };
        if let Some(g) = &mut self.gossip {
            let mut out = Vec::new();
            g.tell_all(&self.core, &mut out);
            self.send_out(ctx, out);
        }
        for t in timeouts {
            if let Output::ScheduleTimeout { height, round, .. } = &t {
                if *height == rs.height && *round >= rs.round {
                    self.carry_out(ctx, t, &mut ignored, true);
                }
            }
        }
        if rs.step == Step::NewRound {
            // The mempool was lost with the crash; gossip refills it.
            self.schedule_txs(ctx, rs.height);
        }
        if rs.step == Step::Commit {
            let at = ctx.net.now + ctx.world.timeouts.commit.as_millis() as u64;
            ctx.net.schedule(
                at,
                Event::StartHeight {
                    node: self.idx,
                    epoch: self.epoch,
                    height: rs.height + 1,
                },
            );
        }
    }

    /// The gossip routine: peers whose position has not changed since the
    /// last round of gossip get what this node knows that they may miss (the
    /// decided block and its precommits for a peer at a lower height; the
    /// proposal and votes of the peer's round, and the POL round's prevotes,
    /// for a peer at our height). Before GST a message may go again (it may
    /// have been lost); after GST each goes once per peer.
    pub fn gossip(&mut self, ctx: &mut Ctx, peers: &[Option<(Height, Round, Step)>]) {
        let Some(me) = self.round_state() else { return };
        let now = ctx.net.now;
        let gst = ctx.net.cfg.gst_ms;
        let resend_after = 4 * ctx.net.cfg.gossip_interval_ms.max(1);
        // A message sent after GST arrives; one sent before may have been
        // lost, and goes again after a while.
        let sent = &self.sent;
        let may_send = |key: &(usize, MsgKey)| match sent.get(key) {
            None => true,
            Some(t) => *t < gst && now >= t + resend_after,
        };
        let mut sends = Vec::new();
        for (j, peer) in peers.iter().enumerate() {
            if j == self.idx {
                continue;
            }
            let Some(state) = *peer else { continue };
            let stuck = self.peer_seen[j] == Some(state);
            self.peer_seen[j] = Some(state);
            if !stuck {
                continue;
            }
            let (jh, jr, _) = state;
            let mut out = Vec::new();
            if jh >= 1 && jh < me.height {
                if let Some((block, commit)) = self.decided.get(&jh) {
                    let key = MsgKey::catchup(jh);
                    if may_send(&(j, key)) {
                        out.push((
                            key,
                            Msg::Catchup {
                                votes: commit_votes(commit),
                                block_id: commit.block_id,
                                block: block.clone(),
                            },
                        ));
                    }
                }
            } else if jh == me.height {
                if let Some(known) = self.store.get(&jh) {
                    let mut rounds = BTreeSet::from([jr]);
                    for (r, _, m) in &known.msgs {
                        if let (true, Msg::Proposal { proposal, .. }) = (*r == jr, m) {
                            if let Some(pol) = proposal.pol_round {
                                rounds.insert(pol);
                            }
                        }
                    }
                    for (r, key, m) in &known.msgs {
                        if rounds.contains(r) && may_send(&(j, *key)) {
                            out.push((*key, m.clone()));
                        }
                    }
                    // Quorums we hold in those rounds go as certificates, so
                    // that an equivocator's vote the peer saw otherwise first
                    // still counts there.
                    for r in &rounds {
                        for votes in self.quorum_certificates(*r) {
                            let key = MsgKey::certificate(&votes);
                            if may_send(&(j, key)) {
                                out.push((key, Msg::Certificate(votes)));
                            }
                        }
                    }
                }
            }
            sends.extend(out.into_iter().map(|(key, msg)| (j, key, msg)));
        }
        for (j, key, msg) in sends {
            self.sent.insert((j, key), now);
            ctx.send(self.idx, j, msg);
        }
    }
}

/// The precommits a commit carries, as votes.
pub(crate) fn commit_votes(commit: &Commit) -> Vec<Vote> {
    commit
        .signatures
        .iter()
        .enumerate()
        .filter_map(|(i, sig)| match sig {
            CommitSig::Commit {
                validator_address,
                timestamp,
                signature,
            } => Some(Vote {
                vote_type: VoteType::Precommit,
                height: commit.height,
                round: commit.round,
                block_id: Some(commit.block_id),
                timestamp: *timestamp,
                validator_address: *validator_address,
                validator_index: i as u32,
                signature: *signature,
                extension: Vec::new(),
                extension_signature: Vec::new(),
            }),
            _ => None,
        })
        .collect()
}

fn input_summary(input: &Input, world: &World) -> String {
    match input {
        Input::StartHeight {
            height,
            wait_for_txs,
            ..
        } => {
            if *wait_for_txs {
                format!("StartHeight h{height} (waits for txs)")
            } else {
                format!("StartHeight h{height}")
            }
        }
        Input::TxsAvailable { height } => format!("TxsAvailable h{height}"),
        Input::Proposal(p) => proposal_summary(p),
        Input::Block { block_id, .. } => format!("Block {}", short_id(&Some(*block_id))),
        Input::Vote(v) => vote_summary(v, &|a| world.name(a)),
        Input::Certificate(votes) => certificate_summary(votes),
        Input::Timeout {
            height,
            round,
            step,
        } => format!("Timeout {step:?} h{height} r{round}"),
        Input::ProposalValue { height, round, .. } => format!("ProposalValue h{height} r{round}"),
        Input::BlockValidated {
            block_id, valid, ..
        } => format!(
            "BlockValidated {} valid={valid}",
            short_id(&Some(*block_id))
        ),
    }
}

fn output_summary(output: &Output, world: &World) -> String {
    match output {
        Output::RequestProposal { height, round } => format!("RequestProposal h{height} r{round}"),
        Output::Propose { proposal, .. } => format!("Propose {}", proposal_summary(proposal)),
        Output::Vote(v) => format!("Vote {}", vote_summary(v, &|a| world.name(a))),
        Output::ScheduleTimeout {
            height,
            round,
            step,
            duration,
        } => format!(
            "ScheduleTimeout {step:?} h{height} r{round} {}ms",
            duration.as_millis()
        ),
        Output::ValidateBlock { height, round, .. } => format!("ValidateBlock h{height} r{round}"),
        Output::Decide {
            height,
            round,
            commit,
            ..
        } => format!(
            "DECIDE h{height} r{round} {}",
            short_id(&Some(commit.block_id))
        ),
        Output::Equivocation { first, .. } => format!(
            "EQUIVOCATION by {} h{} r{}",
            world.name(&first.validator_address),
            first.height,
            first.round
        ),
    }
}

fn result_summary(result: &Result<Vec<Output>, InputError>, world: &World) -> String {
    match result {
        Ok(outputs) if outputs.is_empty() => "ok".to_string(),
        Ok(outputs) => {
            let parts: Vec<_> = outputs.iter().map(|o| output_summary(o, world)).collect();
            format!("ok => [{}]", parts.join("; "))
        }
        Err(e) => format!("rejected: {e}"),
    }
}

impl Node {
    /// The prevote and precommit quorums this node's core holds in `round`
    /// of its height, each as the votes for the quorum's value.
    fn quorum_certificates(&self, round: Round) -> Vec<Vec<Vote>> {
        let core = &self.core;
        let Some(vals) = core.validators() else {
            return Vec::new();
        };
        let Some(rv) = core.votes().round(round) else {
            return Vec::new();
        };
        let t = core.votes().thresholds();
        [VoteType::Prevote, VoteType::Precommit]
            .into_iter()
            .filter_map(|vt| {
                let set = rv.of(vt);
                let value = set.quorum_value(t)?;
                let votes: Vec<Vote> = (0..vals.len() as u32)
                    .filter_map(|i| set.vote_for(i, &value).cloned())
                    .collect();
                Some(votes)
            })
            .collect()
    }

    /// The id of the block this node decided at `height`, if any.
    pub fn last_decided(&self, height: Height) -> Option<BlockId> {
        self.decided.get(&height).map(|(_, c)| c.block_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_guard_refuses_double_signs_and_re_signs_the_same_message() {
        let key = PrivateKey::from_seed([9; 32]);
        let mut guard = SignGuard::default();
        let bytes = |tag: u8| move |ts: Time| vec![tag, ts.secs as u8];
        let t1 = Time { secs: 1, nanos: 0 };
        let t2 = Time { secs: 2, nanos: 0 };
        let (sig, ts) = guard.sign(&key, (1, 0, 2), t1, bytes(1)).expect("first");
        // The same message later: the stored signature and timestamp.
        assert_eq!(guard.sign(&key, (1, 0, 2), t2, bytes(1)), Some((sig, ts)));
        // A different message at the same step: refused.
        assert_eq!(guard.sign(&key, (1, 0, 2), t2, bytes(2)), None);
        // Going back: refused; going forward: signed.
        assert!(guard.sign(&key, (1, 1, 3), t2, bytes(3)).is_some());
        assert_eq!(guard.sign(&key, (1, 1, 2), t2, bytes(4)), None);
    }
}
