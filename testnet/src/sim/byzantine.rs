//! Byzantine behaviours. A Byzantine validator runs an honest core for its
//! bookkeeping (heights, rounds, the proposals it saw); its driver distorts
//! the proposals and votes the core asks it to send, according to its
//! [`Strategy`]. Byzantine validators coordinate through the shared world:
//! they split the honest validators into two sides and show each side a
//! different version of the messages they equivocate on.

use std::collections::VecDeque;
use std::sync::Arc;

use engine::consensus::Input;
use engine::types::{Block, BlockId, Proposal, Signature, Vote, VoteType};
use rand::Rng;

use super::config::Strategy;
use super::message::Msg;
use super::node::Node;
use super::world::{time_of, Ctx, World};

fn sign_vote(node: &Node, chain_id: &str, mut v: Vote) -> Vote {
    v.signature = node.key.sign(&v.sign_bytes(chain_id));
    v
}

fn sign_proposal(node: &Node, chain_id: &str, mut p: Proposal) -> Proposal {
    p.signature = node.key.sign(&p.sign_bytes(chain_id));
    p
}

fn random_signature(ctx: &mut Ctx) -> Signature {
    let mut s = [0u8; 64];
    ctx.net.rng.fill(&mut s[..]);
    Signature(s)
}

/// Sends `a` to side A (and to the other Byzantine nodes), `b` to the rest.
fn send_split(ctx: &mut Ctx, from: usize, a: &Msg, b: &Msg) {
    send_split_by(ctx, from, |w, to| w.side_a[to], a, b);
}

/// Sends `a` to the nodes `pick` selects (and to the other Byzantine nodes),
/// `b` to the rest.
fn send_split_by(
    ctx: &mut Ctx,
    from: usize,
    pick: impl Fn(&World, usize) -> bool,
    a: &Msg,
    b: &Msg,
) {
    for to in 0..ctx.world.n {
        if to == from {
            continue;
        }
        let m = if pick(ctx.world, to) || ctx.world.byzantine[to] {
            a
        } else {
            b
        };
        ctx.send(from, to, m.clone());
    }
}

/// The core wants to propose `block`.
pub(crate) fn propose(
    node: &mut Node,
    ctx: &mut Ctx,
    strategy: Strategy,
    mut proposal: Proposal,
    block: Arc<Block>,
    queue: &mut VecDeque<Input>,
) {
    let chain_id = node.chain_id().to_string();
    let idx = node.idx;
    let now = ctx.net.now;
    proposal.timestamp = time_of(now);
    let (h, r) = (proposal.height, proposal.round);
    let feed = |proposal: Proposal, block: Arc<Block>, queue: &mut VecDeque<Input>| {
        let block_id = proposal.block_id;
        queue.push_back(Input::Proposal(proposal));
        queue.push_back(Input::Block { block_id, block });
    };
    match strategy {
        Strategy::Silent => {
            let p = sign_proposal(node, &chain_id, proposal);
            feed(p, block, queue);
        }
        Strategy::LockBreaker
            if proposal.pol_round.is_none() && node.attacked.insert((h, 0, 1)) =>
        {
            // The attack round: v to side A, another block to side B.
            let proposer = ctx.world.addresses[idx];
            let last = block.header.last_block_id;
            let other = ctx
                .world
                .build_block(&mut ctx.net.rng, h, proposer, last, now, false);
            let mut q = proposal.clone();
            q.block_id = ctx.world.block_id(&other);
            let pa = sign_proposal(node, &chain_id, proposal);
            let pb = sign_proposal(node, &chain_id, q);
            ctx.world
                .byz_blocks
                .insert((h, r), (pa.block_id, pb.block_id));
            // Half of the attacks show the polka for v to the decide side
            // only (some decide on it, the others never lock), half to all
            // of side A (some decide, the others lock).
            if ctx.net.rng.gen_bool(0.5) {
                ctx.world.narrow_prevotes.insert((h, r));
            }
            let a = Msg::Proposal {
                proposal: pa.clone(),
                block: block.clone(),
            };
            let b = Msg::Proposal {
                proposal: pb,
                block: other,
            };
            send_split(ctx, idx, &a, &b);
            feed(pa, block, queue);
        }
        Strategy::EquivocatingProposer | Strategy::Equivocator => {
            let proposer = ctx.world.addresses[idx];
            let last = block.header.last_block_id;
            let other = ctx
                .world
                .build_block(&mut ctx.net.rng, h, proposer, last, now, false);
            let other_id = ctx.world.block_id(&other);
            let mut q = proposal.clone();
            q.block_id = other_id;
            q.pol_round = None;
            let pa = sign_proposal(node, &chain_id, proposal);
            let pb = sign_proposal(node, &chain_id, q);
            ctx.world
                .byz_blocks
                .insert((h, r), (pa.block_id, pb.block_id));
            let a = Msg::Proposal {
                proposal: pa.clone(),
                block: block.clone(),
            };
            let b = Msg::Proposal {
                proposal: pb,
                block: other,
            };
            send_split(ctx, idx, &a, &b);
            feed(pa, block, queue);
        }
        Strategy::Amnesia | Strategy::LockBreaker if proposal.pol_round.is_some() => {
            let proposer = ctx.world.addresses[idx];
            let last = block.header.last_block_id;
            let fresh = ctx
                .world
                .build_block(&mut ctx.net.rng, h, proposer, last, now, false);
            proposal.block_id = ctx.world.block_id(&fresh);
            proposal.pol_round = None;
            let p = sign_proposal(node, &chain_id, proposal);
            let msg = Msg::Proposal {
                proposal: p.clone(),
                block: fresh.clone(),
            };
            ctx.broadcast(idx, &msg);
            feed(p, fresh, queue);
        }
        Strategy::ForgedSignatures => {
            let mut p = proposal;
            p.signature = random_signature(ctx);
            let msg = Msg::Proposal {
                proposal: p.clone(),
                block: block.clone(),
            };
            ctx.broadcast(idx, &msg);
            let p = sign_proposal(node, &chain_id, p);
            feed(p, block, queue);
        }
        Strategy::WrongChain => {
            let other_chain = format!("other-{chain_id}");
            let wrong = sign_proposal(node, &other_chain, proposal.clone());
            let msg = Msg::Proposal {
                proposal: wrong,
                block: block.clone(),
            };
            ctx.broadcast(idx, &msg);
            let p = sign_proposal(node, &chain_id, proposal);
            let msg = Msg::Proposal {
                proposal: p.clone(),
                block: block.clone(),
            };
            ctx.broadcast(idx, &msg);
            feed(p, block, queue);
        }
        // Honest proposals: DoubleVote, InvalidBlock (its block is built
        // invalid), Flood, Amnesia without a POL.
        _ => {
            let p = sign_proposal(node, &chain_id, proposal);
            let msg = Msg::Proposal {
                proposal: p.clone(),
                block: block.clone(),
            };
            ctx.broadcast(idx, &msg);
            feed(p, block, queue);
        }
    }
}

/// The core wants to cast `vote`.
pub(crate) fn vote(
    node: &mut Node,
    ctx: &mut Ctx,
    strategy: Strategy,
    mut vote: Vote,
    queue: &mut VecDeque<Input>,
) {
    let chain_id = node.chain_id().to_string();
    let idx = node.idx;
    vote.timestamp = time_of(ctx.net.now);
    let (h, r) = (vote.height, vote.round);
    match strategy {
        Strategy::Silent => {
            queue.push_back(Input::Vote(sign_vote(node, &chain_id, vote)));
        }
        Strategy::DoubleVote | Strategy::Equivocator => {
            let (a, b) = match ctx.world.byz_blocks.get(&(h, r)) {
                Some((a, b)) => (Some(*a), Some(*b)),
                None => {
                    let other = match (vote.block_id, node.latest_proposal) {
                        (Some(_), _) => None,
                        (None, Some((ph, _, id))) if ph == h => Some(id),
                        (None, _) => Some(World::random_block_id(&mut ctx.net.rng)),
                    };
                    if ctx.net.rng.gen_bool(0.5) {
                        (vote.block_id, other)
                    } else {
                        (other, vote.block_id)
                    }
                }
            };
            let mut va = vote.clone();
            va.block_id = a;
            let mut vb = vote;
            vb.block_id = b;
            let va = sign_vote(node, &chain_id, va);
            let vb = sign_vote(node, &chain_id, vb);
            send_split(ctx, idx, &Msg::Vote(va.clone()), &Msg::Vote(vb));
            queue.push_back(Input::Vote(va));
        }
        Strategy::LockBreaker => match ctx.world.byz_blocks.get(&(h, r)).copied() {
            // The attack round: side A sees a polka for v, side B does not;
            // only the decide side sees our precommit for v.
            Some((a, b)) if vote.vote_type == VoteType::Prevote => {
                let mut va = vote.clone();
                va.block_id = Some(a);
                let mut vb = vote;
                vb.block_id = Some(b);
                let va = sign_vote(node, &chain_id, va);
                let vb = sign_vote(node, &chain_id, vb);
                let (ma, mb) = (Msg::Vote(va.clone()), Msg::Vote(vb));
                if ctx.world.narrow_prevotes.contains(&(h, r)) {
                    send_split_by(ctx, idx, |w, to| w.decide_side[to], &ma, &mb);
                } else {
                    send_split(ctx, idx, &ma, &mb);
                }
                queue.push_back(Input::Vote(va));
            }
            Some((a, _)) => {
                let mut va = vote.clone();
                va.block_id = Some(a);
                let mut nil = vote;
                nil.block_id = None;
                let va = sign_vote(node, &chain_id, va);
                let nil = sign_vote(node, &chain_id, nil);
                send_split_by(
                    ctx,
                    idx,
                    |w, to| w.decide_side[to],
                    &Msg::Vote(va),
                    &Msg::Vote(nil.clone()),
                );
                // Its own core counts the nil precommit, so that it stays
                // at this height for the next round.
                queue.push_back(Input::Vote(nil));
            }
            // Other rounds: vote for the latest proposal, whatever the lock.
            None => {
                if let Some((ph, _, id)) = node.latest_proposal {
                    if ph == h {
                        vote.block_id = Some(id);
                    }
                }
                let v = sign_vote(node, &chain_id, vote);
                ctx.broadcast(idx, &Msg::Vote(v.clone()));
                queue.push_back(Input::Vote(v));
            }
        },
        Strategy::Amnesia => {
            if let Some((ph, _, id)) = node.latest_proposal {
                if ph == h {
                    vote.block_id = Some(id);
                }
            }
            let v = sign_vote(node, &chain_id, vote);
            ctx.broadcast(idx, &Msg::Vote(v.clone()));
            queue.push_back(Input::Vote(v));
        }
        Strategy::ForgedSignatures => {
            let mut bad = vote.clone();
            bad.signature = random_signature(ctx);
            ctx.broadcast(idx, &Msg::Vote(bad));
            if vote.vote_type == VoteType::Prevote && node.attacked.insert((h, r, 0)) {
                forge_round(node, ctx, h, r);
            }
            queue.push_back(Input::Vote(sign_vote(node, &chain_id, vote)));
        }
        Strategy::WrongChain => {
            let other_chain = format!("other-{chain_id}");
            let mut wrong = vote.clone();
            wrong.block_id = Some(World::random_block_id(&mut ctx.net.rng));
            let wrong = sign_vote(node, &other_chain, wrong);
            ctx.broadcast(idx, &Msg::Vote(wrong));
            for other_height in [h + 1, h.saturating_sub(1)] {
                if other_height == 0 {
                    continue;
                }
                let mut v = vote.clone();
                v.height = other_height;
                v.block_id = Some(World::random_block_id(&mut ctx.net.rng));
                let v = sign_vote(node, &chain_id, v);
                ctx.broadcast(idx, &Msg::Vote(v));
            }
            let v = sign_vote(node, &chain_id, vote);
            ctx.broadcast(idx, &Msg::Vote(v.clone()));
            queue.push_back(Input::Vote(v));
        }
        Strategy::Flood => {
            let v = sign_vote(node, &chain_id, vote.clone());
            ctx.broadcast(idx, &Msg::Vote(v.clone()));
            queue.push_back(Input::Vote(v));
            for k in 0..6u32 {
                let mut f = vote.clone();
                if k < 4 {
                    f.round = r + 3 + k * 7 + ctx.net.rng.gen_range(0..50);
                } else {
                    f.height = h + u64::from(k) - 3;
                    f.round = ctx.net.rng.gen_range(0..1000);
                }
                f.block_id = Some(World::random_block_id(&mut ctx.net.rng));
                let f = sign_vote(node, &chain_id, f);
                ctx.broadcast(idx, &Msg::Vote(f));
            }
        }
        // Honest votes: EquivocatingProposer, InvalidBlock.
        _ => {
            let v = sign_vote(node, &chain_id, vote);
            ctx.broadcast(idx, &Msg::Vote(v.clone()));
            queue.push_back(Input::Vote(v));
        }
    }
}

/// Forges, in the name of every validator, a proposal of an invalid block and
/// prevotes and precommits for it, all with random signature bytes. A core
/// that checks signatures rejects every one of them.
fn forge_round(node: &mut Node, ctx: &mut Ctx, h: u64, r: u32) {
    let idx = node.idx;
    let now = ctx.net.now;
    let set = ctx.world.valset(h).clone();
    let set = if r == 0 {
        set
    } else {
        set.copy_increment_proposer_priority(r)
    };
    let proposer = set.proposer().address;
    let last = node.last_decided(h.saturating_sub(1));
    let block = ctx
        .world
        .build_block(&mut ctx.net.rng, h, proposer, last, now, true);
    let block_id: BlockId = ctx.world.block_id(&block);
    let proposal = Proposal {
        height: h,
        round: r,
        pol_round: None,
        block_id,
        timestamp: time_of(now),
        signature: random_signature(ctx),
    };
    ctx.broadcast(idx, &Msg::Proposal { proposal, block });
    for vote_type in [VoteType::Prevote, VoteType::Precommit] {
        for (i, v) in set.validators.iter().enumerate() {
            let vote = Vote {
                vote_type,
                height: h,
                round: r,
                block_id: Some(block_id),
                timestamp: time_of(now),
                validator_address: v.address,
                validator_index: i as u32,
                signature: random_signature(ctx),
                extension: Vec::new(),
                extension_signature: Vec::new(),
            };
            ctx.broadcast(idx, &Msg::Vote(vote));
        }
    }
}
