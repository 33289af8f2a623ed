//! Scenario tests of the state machine, one upon-rule at a time, with real
//! ed25519 keys and signatures.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::types::{
    Address, Block, BlockId, Hash, Header, PrivateKey, Proposal, Time, Validator, ValidatorSet,
    Version, Vote, VoteType,
};

const CHAIN: &str = "test-chain";

/// Four validators with equal power; `me` is validator `me` in set order.
struct Net {
    keys: Vec<PrivateKey>,
    vals: ValidatorSet,
}

impl Net {
    fn new(powers: &[i64]) -> Net {
        let keys: Vec<PrivateKey> = (0..powers.len())
            .map(|i| PrivateKey::from_seed([i as u8 + 1; 32]))
            .collect();
        let vals = ValidatorSet::new(
            keys.iter()
                .zip(powers)
                .map(|(k, p)| Validator::new(k.public_key(), *p))
                .collect(),
        )
        .expect("valid set");
        Net { keys, vals }
    }

    /// The key of validator `i` in set order.
    fn key(&self, i: usize) -> &PrivateKey {
        let addr = self.vals.validators[i].address;
        self.keys
            .iter()
            .find(|k| k.public_key().address() == addr)
            .expect("every validator has a key")
    }

    fn addr(&self, i: usize) -> Address {
        self.vals.validators[i].address
    }

    fn index_of(&self, a: Address) -> usize {
        self.vals.get_by_address(&a).expect("validator").0 as usize
    }

    /// The proposer of `round` at a height started with `self.vals`.
    fn proposer(&self, round: u32) -> usize {
        let a = self
            .vals
            .copy_increment_proposer_priority(round)
            .proposer()
            .address;
        self.index_of(a)
    }

    fn node(&self, me: usize) -> Consensus {
        let cfg = Config::new(CHAIN, Some(self.addr(me)));
        let mut c = Consensus::new(cfg, Arc::new(Ed25519Verifier));
        c.handle(Input::StartHeight {
            height: 1,
            validators: self.vals.clone(),
            wait_for_txs: false,
        })
        .expect("start");
        c
    }

    fn block(&self, tag: u8, proposer: usize) -> (BlockId, Arc<Block>) {
        let block = Block {
            header: Header {
                version: Version {
                    block: crate::types::BLOCK_PROTOCOL,
                    app: 0,
                },
                chain_id: CHAIN.into(),
                height: 1,
                time: Time {
                    secs: 1_700_000_000,
                    nanos: 0,
                },
                last_block_id: None,
                last_commit_hash: Hash::default(),
                data_hash: Hash::default(),
                validators_hash: self.vals.hash(),
                next_validators_hash: self.vals.hash(),
                consensus_hash: Hash::default(),
                app_hash: vec![],
                last_results_hash: Hash::default(),
                evidence_hash: Hash::default(),
                proposer_address: self.addr(proposer),
            },
            txs: vec![vec![tag]],
            evidence: vec![],
            last_commit: None,
        };
        (block.block_id(), Arc::new(block))
    }

    fn proposal(&self, round: u32, pol: Option<u32>, id: BlockId) -> Proposal {
        let mut p = Proposal {
            height: 1,
            round,
            pol_round: pol,
            block_id: id,
            timestamp: Time::default(),
            signature: Default::default(),
        };
        p.signature = self.key(self.proposer(round)).sign(&p.sign_bytes(CHAIN));
        p
    }

    fn vote(&self, from: usize, t: VoteType, round: u32, id: Option<BlockId>) -> Vote {
        self.vote_on(from, t, 1, round, id, CHAIN)
    }

    fn vote_on(
        &self,
        from: usize,
        t: VoteType,
        height: u64,
        round: u32,
        id: Option<BlockId>,
        chain: &str,
    ) -> Vote {
        let mut v = Vote {
            vote_type: t,
            height,
            round,
            block_id: id,
            timestamp: Time::default(),
            validator_address: self.addr(from),
            validator_index: from as u32,
            signature: Default::default(),
            extension: vec![],
            extension_signature: vec![],
        };
        v.signature = self.key(from).sign(&v.sign_bytes(chain));
        v
    }
}

fn votes_of(out: &[Output]) -> Vec<(VoteType, u32, Option<BlockId>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Vote(v) => Some((v.vote_type, v.round, v.block_id)),
            _ => None,
        })
        .collect()
}

fn feed(c: &mut Consensus, inputs: impl IntoIterator<Item = Input>) -> Vec<Output> {
    let mut all = Vec::new();
    for i in inputs {
        all.extend(c.handle(i).expect("accepted"));
    }
    all
}

/// A non-proposer of round 0 and the round-0 proposer.
fn roles(net: &Net) -> (usize, usize) {
    let p0 = net.proposer(0);
    ((p0 + 1) % 4, p0)
}

/// The validator that proposes in none of rounds 0, 1 and 2: scenarios that
/// watch one validator across rounds need it never to be the proposer.
fn bystander(net: &Net) -> usize {
    let busy = [net.proposer(0), net.proposer(1), net.proposer(2)];
    (0..4)
        .find(|i| !busy.contains(i))
        .expect("four validators, three proposers")
}

/// Delivers the round's proposal and block and the app's acceptance.
fn deliver_proposal(
    net: &Net,
    c: &mut Consensus,
    round: u32,
    pol: Option<u32>,
    tag: u8,
) -> (BlockId, Vec<Output>) {
    let (id, block) = net.block(tag, net.proposer(round));
    let mut out = feed(
        c,
        [
            Input::Proposal(net.proposal(round, pol, id)),
            Input::Block {
                block_id: id,
                block,
            },
        ],
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { .. })),
        "asks the app to validate"
    );
    out.extend(feed(
        c,
        [Input::BlockValidated {
            height: 1,
            block_id: id,
            valid: true,
        }],
    ));
    (id, out)
}

#[test]
fn happy_path_prevotes_precommits_and_decides() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let (id, out) = deliver_proposal(&net, &mut c, 0, None, 1);
    assert_eq!(
        votes_of(&out),
        vec![(VoteType::Prevote, 0, Some(id))],
        "L22 prevotes v"
    );
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let out = feed(
        &mut c,
        others
            .iter()
            .take(2)
            .map(|i| Input::Vote(net.vote(*i, VoteType::Prevote, 0, Some(id)))),
    );
    assert!(
        votes_of(&out).is_empty(),
        "two of four prevotes are not a quorum"
    );
    let out = feed(
        &mut c,
        [Input::Vote(net.vote(me, VoteType::Prevote, 0, Some(id)))],
    );
    assert_eq!(
        votes_of(&out),
        vec![(VoteType::Precommit, 0, Some(id))],
        "L36 precommits v"
    );
    assert_eq!(c.round_state().locked, Some((0, id)));
    assert_eq!(c.round_state().valid, Some((0, id)));
    let out = feed(
        &mut c,
        others
            .iter()
            .take(2)
            .map(|i| Input::Vote(net.vote(*i, VoteType::Precommit, 0, Some(id)))),
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Decide { .. })));
    let out = feed(
        &mut c,
        [Input::Vote(net.vote(me, VoteType::Precommit, 0, Some(id)))],
    );
    let decided = out.iter().find_map(|o| match o {
        Output::Decide {
            height,
            round,
            block,
            commit,
        } => Some((*height, *round, block.block_id(), commit.clone())),
        _ => None,
    });
    let (h, r, bid, commit) = decided.expect("L49 decides");
    assert_eq!((h, r, bid), (1, 0, id));
    assert_eq!(commit.signatures.len(), 4);
    let signed = commit
        .signatures
        .iter()
        .filter(|s| matches!(s, crate::types::CommitSig::Commit { .. }))
        .count();
    assert_eq!(signed, 3);
    assert_eq!(
        net.vals.verify_commit(CHAIN, &id, 1, &commit),
        Ok(()),
        "the decision's commit verifies as CometBFT's VerifyCommit would"
    );
    assert_eq!(c.round_state().step, Step::Commit);
}

#[test]
fn rejected_block_gets_a_nil_prevote() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let (id, block) = net.block(1, net.proposer(0));
    feed(
        &mut c,
        [
            Input::Proposal(net.proposal(0, None, id)),
            Input::Block {
                block_id: id,
                block,
            },
        ],
    );
    let out = feed(
        &mut c,
        [Input::BlockValidated {
            height: 1,
            block_id: id,
            valid: false,
        }],
    );
    assert_eq!(votes_of(&out), vec![(VoteType::Prevote, 0, None)]);
}

#[test]
fn no_prevote_before_the_app_answers_then_timeout_prevotes_nil() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let (id, block) = net.block(1, net.proposer(0));
    let out = feed(
        &mut c,
        [
            Input::Proposal(net.proposal(0, None, id)),
            Input::Block {
                block_id: id,
                block,
            },
        ],
    );
    assert!(votes_of(&out).is_empty(), "valid(v) unknown: wait");
    let out = feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Propose,
        }],
    );
    assert_eq!(votes_of(&out), vec![(VoteType::Prevote, 0, None)], "L57");
    // A late verdict changes nothing.
    let out = feed(
        &mut c,
        [Input::BlockValidated {
            height: 1,
            block_id: id,
            valid: true,
        }],
    );
    assert!(votes_of(&out).is_empty());
}

#[test]
fn timeouts_follow_cometbft_increments_and_rules() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let out = feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Propose,
        }],
    );
    assert_eq!(votes_of(&out), vec![(VoteType::Prevote, 0, None)]);
    // L34: +2/3 prevotes of mixed values schedule timeoutPrevote once.
    let (id, _) = net.block(1, 0);
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let out = feed(
        &mut c,
        [
            Input::Vote(net.vote(others[0], VoteType::Prevote, 0, Some(id))),
            Input::Vote(net.vote(others[1], VoteType::Prevote, 0, None)),
            Input::Vote(net.vote(me, VoteType::Prevote, 0, None)),
        ],
    );
    let scheduled: Vec<_> = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::ScheduleTimeout {
                    step: TimeoutStep::Prevote,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(scheduled.len(), 1);
    let out = feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Prevote,
        }],
    );
    assert_eq!(votes_of(&out), vec![(VoteType::Precommit, 0, None)], "L61");
    // L47 then L65: +2/3 precommits of any value, timeout, next round.
    let out = feed(
        &mut c,
        [
            Input::Vote(net.vote(others[0], VoteType::Precommit, 0, Some(id))),
            Input::Vote(net.vote(others[1], VoteType::Precommit, 0, None)),
            Input::Vote(net.vote(me, VoteType::Precommit, 0, None)),
        ],
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::ScheduleTimeout {
            step: TimeoutStep::Precommit,
            round: 0,
            ..
        }
    )));
    let out = feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Precommit,
        }],
    );
    assert_eq!(c.round_state().round, 1);
    let propose_timeout = out.iter().find_map(|o| match o {
        Output::ScheduleTimeout {
            step: TimeoutStep::Propose,
            round: 1,
            duration,
            ..
        } => Some(*duration),
        _ => None,
    });
    assert_eq!(
        propose_timeout,
        Some(std::time::Duration::from_millis(3500)),
        "3s + 1 * 0.5s"
    );
    // A stale timeout of round 0 does nothing.
    let out = feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Propose,
        }],
    );
    assert!(out.is_empty());
}

#[test]
fn precommit_nil_on_nil_polka() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Propose,
        }],
    );
    let out = feed(
        &mut c,
        (0..3).map(|i| Input::Vote(net.vote((me + i) % 4, VoteType::Prevote, 0, None))),
    );
    assert_eq!(votes_of(&out), vec![(VoteType::Precommit, 0, None)], "L44");
}

/// Drives `c` through round 0 to a lock on the round-0 proposal, then to round 1.
fn lock_in_round_zero(net: &Net, c: &mut Consensus, me: usize) -> BlockId {
    let (id, _) = deliver_proposal(net, c, 0, None, 1);
    feed(
        c,
        (0..3).map(|i| Input::Vote(net.vote((me + i) % 4, VoteType::Prevote, 0, Some(id)))),
    );
    assert_eq!(c.round_state().locked, Some((0, id)));
    // Precommits are split; the round ends without decision.
    feed(
        c,
        [
            Input::Vote(net.vote(me, VoteType::Precommit, 0, Some(id))),
            Input::Vote(net.vote((me + 1) % 4, VoteType::Precommit, 0, None)),
            Input::Vote(net.vote((me + 2) % 4, VoteType::Precommit, 0, None)),
            Input::Timeout {
                height: 1,
                round: 0,
                step: TimeoutStep::Precommit,
            },
        ],
    );
    assert_eq!(c.round_state().round, 1);
    id
}

#[test]
fn locked_validator_prevotes_nil_for_a_different_fresh_value() {
    let net = Net::new(&[1, 1, 1, 1]);
    let me = bystander(&net);
    // The scenario needs someone else to propose in round 1.
    assert_ne!(net.proposer(1), me);
    let mut c = net.node(me);
    let locked = lock_in_round_zero(&net, &mut c, me);
    let (other, out) = deliver_proposal(&net, &mut c, 1, None, 2);
    assert_ne!(other, locked);
    assert_eq!(
        votes_of(&out),
        vec![(VoteType::Prevote, 1, None)],
        "L22 with a lock on another value"
    );
}

#[test]
fn locked_validator_prevotes_its_locked_value_again() {
    let net = Net::new(&[1, 1, 1, 1]);
    let me = bystander(&net);
    assert_ne!(
        net.proposer(1),
        me,
        "the scenario needs another round-1 proposer"
    );
    let mut c = net.node(me);
    let locked = lock_in_round_zero(&net, &mut c, me);
    // The round-1 proposer re-proposes the locked value with POL round 0.
    let (_, block) = net.block(1, net.proposer(0));
    let out = feed(
        &mut c,
        [
            Input::Proposal(net.proposal(1, Some(0), locked)),
            Input::Block {
                block_id: locked,
                block,
            },
        ],
    );
    assert_eq!(
        votes_of(&out),
        vec![(VoteType::Prevote, 1, Some(locked))],
        "L28"
    );
}

#[test]
fn a_later_polka_unlocks() {
    let net = Net::new(&[1, 1, 1, 1]);
    let me = bystander(&net);
    assert!(
        net.proposer(1) != me && net.proposer(2) != me,
        "the scenario needs other proposers"
    );
    let mut c = net.node(me);
    let locked = lock_in_round_zero(&net, &mut c, me);
    // Round 1: others saw a polka for C that we missed; we timed out.
    let (c_id, c_block) = net.block(3, net.proposer(1));
    feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 1,
            step: TimeoutStep::Propose,
        }],
    );
    feed(
        &mut c,
        (1..4).map(|i| Input::Vote(net.vote((me + i) % 4, VoteType::Prevote, 1, Some(c_id)))),
    );
    feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 1,
            step: TimeoutStep::Prevote,
        }],
    );
    feed(
        &mut c,
        (0..3).map(|i| Input::Vote(net.vote((me + i) % 4, VoteType::Precommit, 1, None))),
    );
    feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 1,
            step: TimeoutStep::Precommit,
        }],
    );
    assert_eq!(c.round_state().round, 2);
    // Round 2 proposes C with POL round 1 > our locked round 0: prevote C.
    let out = feed(
        &mut c,
        [
            Input::Proposal(net.proposal(2, Some(1), c_id)),
            Input::Block {
                block_id: c_id,
                block: c_block,
            },
        ],
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::ValidateBlock { .. })));
    let out = feed(
        &mut c,
        [Input::BlockValidated {
            height: 1,
            block_id: c_id,
            valid: true,
        }],
    );
    assert_ne!(c_id, locked);
    assert_eq!(
        votes_of(&out),
        vec![(VoteType::Prevote, 2, Some(c_id))],
        "L28 with lockedRound <= vr"
    );
}

#[test]
fn a_stale_pol_does_not_unlock() {
    let net = Net::new(&[1, 1, 1, 1]);
    let me = bystander(&net);
    assert!(
        net.proposer(1) != me && net.proposer(2) != me,
        "the scenario needs other proposers"
    );
    let mut c = net.node(me);
    let _locked = lock_in_round_zero(&net, &mut c, me);
    // Byzantine round-1 proposer proposes C claiming a POL from round 0, but
    // round 0's polka was for the locked value: no quorum for C at round 0.
    let (c_id, c_block) = net.block(3, net.proposer(1));
    let out = feed(
        &mut c,
        [
            Input::Proposal(net.proposal(1, Some(0), c_id)),
            Input::Block {
                block_id: c_id,
                block: c_block,
            },
        ],
    );
    let out2 = feed(
        &mut c,
        [Input::BlockValidated {
            height: 1,
            block_id: c_id,
            valid: true,
        }],
    );
    assert!(
        votes_of(&out).is_empty() && votes_of(&out2).is_empty(),
        "no POL: wait for timeout"
    );
    let out = feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 1,
            step: TimeoutStep::Propose,
        }],
    );
    assert_eq!(votes_of(&out), vec![(VoteType::Prevote, 1, None)]);
}

#[test]
fn proposer_requests_a_value_then_reproposes_its_valid_value() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (_, p0) = roles(&net);
    let mut c = {
        let cfg = Config::new(CHAIN, Some(net.addr(p0)));
        Consensus::new(cfg, Arc::new(Ed25519Verifier))
    };
    let out = c
        .handle(Input::StartHeight {
            height: 1,
            validators: net.vals.clone(),
            wait_for_txs: false,
        })
        .expect("start");
    assert!(
        out.contains(&Output::RequestProposal {
            height: 1,
            round: 0
        }),
        "L18"
    );
    let (id, block) = net.block(1, p0);
    let out = feed(
        &mut c,
        [Input::ProposalValue {
            height: 1,
            round: 0,
            block: block.clone(),
        }],
    );
    let proposed = out.iter().find_map(|o| match o {
        Output::Propose { proposal, .. } => Some(proposal.clone()),
        _ => None,
    });
    let proposed = proposed.expect("L19 proposes");
    assert_eq!(
        (proposed.round, proposed.pol_round, proposed.block_id),
        (0, None, id)
    );
    // Our own signed proposal comes back: we prevote it without asking the app.
    let out = feed(&mut c, [Input::Proposal(net.proposal(0, None, id))]);
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::ValidateBlock { .. })));
    assert_eq!(votes_of(&out), vec![(VoteType::Prevote, 0, Some(id))]);
    // Polka for it: valid value set. Then rounds advance until we propose again.
    feed(
        &mut c,
        (0..3).map(|i| Input::Vote(net.vote((p0 + i) % 4, VoteType::Prevote, 0, Some(id)))),
    );
    assert_eq!(c.round_state().valid, Some((0, id)));
    let mut round = 0;
    let mut reproposal = None;
    while reproposal.is_none() && round < 12 {
        let out = feed(
            &mut c,
            [Input::Timeout {
                height: 1,
                round,
                step: TimeoutStep::Precommit,
            }],
        );
        round += 1;
        reproposal = out.iter().find_map(|o| match o {
            Output::Propose { proposal, .. } => Some(proposal.clone()),
            _ => None,
        });
        assert!(
            !out.contains(&Output::RequestProposal { height: 1, round }),
            "L15: validValue is re-proposed"
        );
    }
    let p = reproposal.expect("we propose again within 12 rounds");
    assert_eq!(
        (p.pol_round, p.block_id),
        (Some(0), id),
        "L16 carries validRound"
    );
}

#[test]
fn skips_to_a_round_where_more_than_a_third_are() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    feed(
        &mut c,
        [Input::Vote(net.vote(
            (me + 1) % 4,
            VoteType::Prevote,
            5,
            None,
        ))],
    );
    assert_eq!(c.round_state().round, 0, "one of four is not +1/3");
    feed(
        &mut c,
        [Input::Vote(net.vote(
            (me + 2) % 4,
            VoteType::Precommit,
            5,
            None,
        ))],
    );
    assert_eq!(
        c.round_state().round,
        5,
        "L55 on two of four, any vote type"
    );
}

#[test]
fn decides_a_value_committed_in_an_earlier_round() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let (id, block) = net.block(9, net.proposer(0));
    feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Propose,
        }],
    );
    feed(
        &mut c,
        (1..4).map(|i| Input::Vote(net.vote((me + i) % 4, VoteType::Prevote, 0, None))),
    );
    feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Prevote,
        }],
    );
    feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Precommit,
        }],
    );
    assert_eq!(c.round_state().round, 1);
    // Late precommits of round 0 for a block, and then the block itself.
    let out = feed(
        &mut c,
        (1..4).map(|i| Input::Vote(net.vote((me + i) % 4, VoteType::Precommit, 0, Some(id)))),
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Decide { .. })),
        "no block yet"
    );
    let out = feed(
        &mut c,
        [Input::Block {
            block_id: id,
            block,
        }],
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Decide { round: 0, .. })),
        "L49 for r < round_p"
    );
}

#[test]
fn weighted_quorums_count_power_not_heads() {
    // One validator holds 70 of 100: it alone is more than 2/3.
    let net = Net::new(&[70, 10, 10, 10]);
    let big = net.index_of(net.vals.validators[0].address);
    assert_eq!(net.vals.validators[big].voting_power, 70);
    let me = (big + 1) % 4;
    let mut c = net.node(me);
    feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Propose,
        }],
    );
    let out = feed(
        &mut c,
        [Input::Vote(net.vote(big, VoteType::Prevote, 0, None))],
    );
    assert_eq!(votes_of(&out), vec![(VoteType::Precommit, 0, None)]);
    // Three small validators (30 of 100) are not.
    let mut c = net.node(me);
    feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Propose,
        }],
    );
    let out = feed(
        &mut c,
        (1..4).map(|i| Input::Vote(net.vote(i, VoteType::Prevote, 0, None))),
    );
    assert!(votes_of(&out).is_empty());
}

#[test]
fn equivocation_is_reported_and_counted_once() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let (a, _) = net.block(1, 0);
    let (b, _) = net.block(2, 0);
    let liar = (me + 1) % 4;
    let out = feed(
        &mut c,
        [Input::Vote(net.vote(liar, VoteType::Prevote, 0, Some(a)))],
    );
    assert!(out.is_empty());
    let out = feed(
        &mut c,
        [Input::Vote(net.vote(liar, VoteType::Prevote, 0, Some(b)))],
    );
    let ev = out.iter().find_map(|o| match o {
        Output::Equivocation { first, second } => Some((first.block_id, second.block_id)),
        _ => None,
    });
    assert_eq!(ev, Some((Some(a), Some(b))));
    let rv = c.votes().round(0).expect("votes");
    assert_eq!(
        rv.prevotes.weight_any(),
        1,
        "the second vote is not counted"
    );
    // The same vote again is a duplicate, not evidence.
    let out = feed(
        &mut c,
        [Input::Vote(net.vote(liar, VoteType::Prevote, 0, Some(a)))],
    );
    assert!(out.is_empty());
}

#[test]
fn invalid_messages_are_rejected_with_typed_errors() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let (id, _) = net.block(1, 0);
    let other = (me + 1) % 4;

    let mut forged = net.vote(other, VoteType::Prevote, 0, Some(id));
    forged.signature = net.key(me).sign(&forged.sign_bytes(CHAIN));
    assert_eq!(
        c.handle(Input::Vote(forged)),
        Err(InputError::InvalidSignature(net.addr(other)))
    );

    let wrong_chain = net.vote_on(other, VoteType::Prevote, 1, 0, Some(id), "other-chain");
    assert!(matches!(
        c.handle(Input::Vote(wrong_chain)),
        Err(InputError::InvalidSignature(_))
    ));

    let mut wrong_index = net.vote(other, VoteType::Prevote, 0, Some(id));
    wrong_index.validator_index = ((other + 1) % 4) as u32;
    assert!(matches!(
        c.handle(Input::Vote(wrong_index)),
        Err(InputError::WrongValidatorIndex { .. })
    ));

    let stranger = PrivateKey::from_seed([99; 32]);
    let mut unknown = net.vote(other, VoteType::Prevote, 0, Some(id));
    unknown.validator_address = stranger.public_key().address();
    unknown.signature = stranger.sign(&unknown.sign_bytes(CHAIN));
    assert!(matches!(
        c.handle(Input::Vote(unknown)),
        Err(InputError::UnknownValidator(_))
    ));

    let old = net.vote_on(other, VoteType::Prevote, 0, 0, Some(id), CHAIN);
    assert!(matches!(
        c.handle(Input::Vote(old)),
        Err(InputError::WrongHeight { .. })
    ));
    let far = net.vote_on(other, VoteType::Prevote, 3, 0, Some(id), CHAIN);
    assert!(matches!(
        c.handle(Input::Vote(far)),
        Err(InputError::WrongHeight { .. })
    ));

    // A proposal signed by a non-proposer.
    let mut p = net.proposal(0, None, id);
    let not_proposer = (net.proposer(0) + 1) % 4;
    p.signature = net.key(not_proposer).sign(&p.sign_bytes(CHAIN));
    assert!(matches!(
        c.handle(Input::Proposal(p)),
        Err(InputError::InvalidSignature(_))
    ));
    let bad_pol = net.proposal(1, Some(1), id);
    assert!(matches!(
        c.handle(Input::Proposal(bad_pol)),
        Err(InputError::InvalidPolRound { .. })
    ));

    // None of it moved the state.
    assert_eq!(c.round_state().round, 0);
    assert_eq!(c.round_state().step, Step::Propose);
    assert!(c.votes().round(0).is_none());
}

#[test]
fn next_height_messages_wait_for_that_height() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let early: Vec<Vote> = (1..3)
        .map(|i| net.vote_on((me + i) % 4, VoteType::Prevote, 2, 7, None, CHAIN))
        .collect();
    for v in &early {
        assert_eq!(c.handle(Input::Vote(v.clone())), Ok(vec![]));
    }
    assert_eq!(c.round_state().height, 1);
    c.handle(Input::StartHeight {
        height: 2,
        validators: net.vals.clone(),
        wait_for_txs: false,
    })
    .expect("start 2");
    // The buffered votes were counted at height 2: +1/3 in round 7 skipped there.
    assert_eq!(c.round_state().height, 2);
    assert_eq!(c.round_state().round, 7);
}

#[test]
fn a_flood_of_future_rounds_is_bounded() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let flooder = (me + 1) % 4;
    for round in 2..200 {
        c.handle(Input::Vote(net.vote(
            flooder,
            VoteType::Prevote,
            round,
            None,
        )))
        .expect("a higher round replaces the flooder's lowest far round");
    }
    assert_eq!(c.round_state().round, 0);
    let kept: Vec<u32> = c.votes().rounds().map(|(r, _)| *r).collect();
    assert_eq!(
        kept,
        vec![198, 199],
        "only the two highest far rounds are kept"
    );
    // A far round below those kept is refused.
    assert!(matches!(
        c.handle(Input::Vote(net.vote(flooder, VoteType::Prevote, 50, None))),
        Err(InputError::RoundTooFarAhead { .. })
    ));
}

#[test]
fn a_node_far_behind_in_rounds_still_finds_the_others() {
    // Two honest validators reached round 5 while we were at round 0; they
    // send their votes of rounds 1..=5 in bursts, one validator after another.
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    for who in [(me + 1) % 4, (me + 2) % 4] {
        for round in 1..=5 {
            for t in [VoteType::Prevote, VoteType::Precommit] {
                let _ = c.handle(Input::Vote(net.vote(who, t, round, None)));
            }
        }
    }
    assert_eq!(
        c.round_state().round,
        5,
        "L55 reaches the round the others are in"
    );
}

#[test]
fn blocks_are_held_only_when_a_proposal_or_a_third_of_power_names_them() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let (id, block) = net.block(1, net.proposer(0));
    // Parts completed before the proposal: refused, offered again later.
    assert_eq!(
        c.handle(Input::Block {
            block_id: id,
            block: block.clone()
        }),
        Err(InputError::UnexpectedBlock)
    );
    // One vote (a minority) for a block does not make us hold it.
    let (junk, junk_block) = net.block(7, 0);
    feed(
        &mut c,
        [Input::Vote(net.vote(
            (me + 1) % 4,
            VoteType::Prevote,
            0,
            Some(junk),
        ))],
    );
    assert_eq!(
        c.handle(Input::Block {
            block_id: junk,
            block: junk_block.clone()
        }),
        Err(InputError::UnexpectedBlock)
    );
    assert!(c.wanted_blocks().is_empty(), "gossip assembles nothing yet");
    // Two of four (more than 1/3) do.
    feed(
        &mut c,
        [Input::Vote(net.vote(
            (me + 2) % 4,
            VoteType::Prevote,
            0,
            Some(junk),
        ))],
    );
    assert_eq!(c.wanted_blocks(), vec![junk]);
    assert_eq!(
        c.handle(Input::Block {
            block_id: junk,
            block: junk_block
        }),
        Ok(vec![])
    );
    assert!(c.wanted_blocks().is_empty(), "held now");
    // After the proposal, the proposed block is taken and validated.
    feed(&mut c, [Input::Proposal(net.proposal(0, None, id))]);
    assert_eq!(c.wanted_blocks(), vec![id]);
    let out = feed(
        &mut c,
        [Input::Block {
            block_id: id,
            block,
        }],
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::ValidateBlock { .. })));
    assert!(c.wanted_blocks().is_empty());
}

#[test]
fn a_polka_for_another_proposal_of_an_equivocating_proposer_is_followed() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    // We got P1(v1); everyone else got P2(v2) and prevoted v2.
    let (v1, _) = deliver_proposal(&net, &mut c, 0, None, 1);
    let (v2, b2) = net.block(2, net.proposer(0));
    assert_ne!(v1, v2);
    let out = feed(
        &mut c,
        (1..4).map(|i| Input::Vote(net.vote((me + i) % 4, VoteType::Prevote, 0, Some(v2)))),
    );
    assert!(votes_of(&out).is_empty(), "no block v2 yet");
    let out = feed(
        &mut c,
        [Input::Block {
            block_id: v2,
            block: b2,
        }],
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { .. })),
        "the polka's block is validated"
    );
    let out = feed(
        &mut c,
        [Input::BlockValidated {
            height: 1,
            block_id: v2,
            valid: true,
        }],
    );
    assert_eq!(
        votes_of(&out),
        vec![(VoteType::Precommit, 0, Some(v2))],
        "L36 on the polka's value"
    );
    assert_eq!(c.round_state().locked, Some((0, v2)));
}

#[test]
fn rounds_far_beyond_reach_are_refused() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let far = state::MAX_ROUNDS_AHEAD + 1;
    for who in [(me + 1) % 4, (me + 2) % 4] {
        assert!(matches!(
            c.handle(Input::Vote(net.vote(who, VoteType::Precommit, far, None))),
            Err(InputError::RoundTooFarAhead { .. })
        ));
    }
    assert_eq!(c.round_state().round, 0);
    for who in [(me + 1) % 4, (me + 2) % 4] {
        feed(
            &mut c,
            [Input::Vote(net.vote(
                who,
                VoteType::Precommit,
                far - 1,
                None,
            ))],
        );
    }
    assert_eq!(c.round_state().round, far - 1, "L55 within reach");
}

#[test]
fn next_height_votes_are_authenticated_with_the_current_keys() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let victim = (me + 1) % 4;
    let mut forged = net.vote_on(victim, VoteType::Prevote, 2, 0, None, CHAIN);
    forged.signature = net.key(me).sign(&forged.sign_bytes(CHAIN));
    assert!(matches!(
        c.handle(Input::Vote(forged)),
        Err(InputError::InvalidSignature(_))
    ));
    let genuine = net.vote_on(victim, VoteType::Prevote, 2, 0, None, CHAIN);
    assert_eq!(c.handle(Input::Vote(genuine)), Ok(vec![]));
}

#[test]
fn an_unstarted_core_rejects_messages() {
    let net = Net::new(&[1, 1, 1, 1]);
    let mut c = Consensus::new(Config::new(CHAIN, None), Arc::new(Ed25519Verifier));
    let v = net.vote(0, VoteType::Prevote, 0, None);
    assert_eq!(c.handle(Input::Vote(v)), Err(InputError::NotStarted));
    assert!(matches!(
        c.handle(Input::StartHeight {
            height: 0,
            validators: net.vals.clone(),
            wait_for_txs: false,
        }),
        Err(InputError::InvalidStart(0))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Whatever arrives in whatever order, the core never emits two different
    /// votes for one (round, type) and never panics.
    #[test]
    fn never_two_different_votes_for_one_round_and_type(
        script in proptest::collection::vec((0u8..6, 0usize..4, 0u32..3, 0u8..3), 1..80)
    ) {
        let net = Net::new(&[1, 1, 1, 1]);
        let (me, _) = roles(&net);
        let mut c = net.node(me);
        let blocks: Vec<(BlockId, Arc<Block>)> = (0..3).map(|t| net.block(t, net.proposer(0))).collect();
        let mut mine: std::collections::BTreeMap<(u32, VoteType), Option<BlockId>> = Default::default();
        for (kind, who, round, value) in script {
            let v = blocks.get(value as usize % 3).map(|b| b.0);
            let value = if value == 2 { None } else { v };
            let input = match kind {
                0 => Input::Vote(net.vote(who, VoteType::Prevote, round, value)),
                1 => Input::Vote(net.vote(who, VoteType::Precommit, round, value)),
                2 => Input::Proposal(net.proposal(round, None, blocks[who % 3].0)),
                3 => Input::Block { block_id: blocks[who % 3].0, block: blocks[who % 3].1.clone() },
                4 => Input::BlockValidated { height: 1, block_id: blocks[who % 3].0, valid: who != 0 },
                _ => Input::Timeout { height: 1, round, step: [TimeoutStep::Propose, TimeoutStep::Prevote, TimeoutStep::Precommit][who % 3] },
            };
            let Ok(out) = c.handle(input) else { continue };
            for o in out {
                if let Output::Vote(v) = o {
                    let prev = mine.insert((v.round, v.vote_type), v.block_id);
                    prop_assert!(prev.is_none(), "second vote for {:?}", (v.round, v.vote_type));
                }
            }
        }
    }
}

#[test]
fn address_is_from_the_key() {
    let k = PrivateKey::from_seed([1; 32]);
    assert_eq!(
        Validator::new(k.public_key(), 1).address,
        k.public_key().address()
    );
}

#[test]
fn a_certificate_counts_an_equivocators_other_vote() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let (id, block) = net.block(1, net.proposer(0));
    let (a, b, liar) = ((me + 1) % 4, (me + 2) % 4, (me + 3) % 4);
    // The liar told us nil; it told the others `id`, and they decided.
    feed(
        &mut c,
        [Input::Vote(net.vote(liar, VoteType::Precommit, 0, None))],
    );
    let cert: Vec<Vote> = [a, b, liar]
        .iter()
        .map(|i| net.vote(*i, VoteType::Precommit, 0, Some(id)))
        .collect();
    let out = feed(&mut c, [Input::Certificate(cert)]);
    assert!(
        out.iter().any(|o| matches!(o, Output::Equivocation { .. })),
        "the certificate exposes the liar"
    );
    let out = feed(
        &mut c,
        [Input::Block {
            block_id: id,
            block,
        }],
    );
    let commit = out.iter().find_map(|o| match o {
        Output::Decide { commit, .. } => Some(commit.clone()),
        _ => None,
    });
    let commit = commit.expect("decides through the certificate");
    let signed = commit
        .signatures
        .iter()
        .filter(|s| matches!(s, crate::types::CommitSig::Commit { .. }))
        .count();
    assert_eq!(
        signed, 3,
        "the commit carries the liar's precommit for the block"
    );
}

#[test]
fn a_certificate_proves_a_polka_for_l28() {
    let net = Net::new(&[1, 1, 1, 1]);
    let me = bystander(&net);
    assert_ne!(
        net.proposer(1),
        me,
        "the scenario needs another round-1 proposer"
    );
    let mut c = net.node(me);
    let (v, block) = net.block(4, net.proposer(0));
    let liar = (me + 3) % 4;
    // Round 0: we saw the liar's nil prevote and timed out.
    feed(
        &mut c,
        [
            Input::Vote(net.vote(liar, VoteType::Prevote, 0, None)),
            Input::Timeout {
                height: 1,
                round: 0,
                step: TimeoutStep::Propose,
            },
        ],
    );
    feed(
        &mut c,
        (0..3).map(|i| Input::Vote(net.vote((me + i) % 4, VoteType::Precommit, 0, None))),
    );
    feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Precommit,
        }],
    );
    // Round 1 re-proposes v with POL round 0; the proof comes as a certificate.
    let out = feed(
        &mut c,
        [
            Input::Proposal(net.proposal(1, Some(0), v)),
            Input::Block { block_id: v, block },
            Input::BlockValidated {
                height: 1,
                block_id: v,
                valid: true,
            },
        ],
    );
    assert!(votes_of(&out).is_empty(), "no POL visible yet");
    let cert = [(me + 1) % 4, (me + 2) % 4, liar]
        .iter()
        .map(|i| net.vote(*i, VoteType::Prevote, 0, Some(v)))
        .collect();
    let out = feed(&mut c, [Input::Certificate(cert)]);
    assert_eq!(votes_of(&out), vec![(VoteType::Prevote, 1, Some(v))], "L28");
}

#[test]
fn invalid_certificates_are_rejected_whole() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let mut c = net.node(me);
    let (id, _) = net.block(1, 0);
    let (other, _) = net.block(2, 0);
    let pv = |i: usize, v| net.vote(i % 4, VoteType::Prevote, 0, Some(v));
    let short = vec![pv(me + 1, id), pv(me + 2, id)];
    assert_eq!(
        c.handle(Input::Certificate(short)),
        Err(InputError::InvalidCertificate(
            "not more than 2/3 of the power"
        ))
    );
    let mixed = vec![pv(me + 1, id), pv(me + 2, id), pv(me + 3, other)];
    assert!(matches!(
        c.handle(Input::Certificate(mixed)),
        Err(InputError::InvalidCertificate(_))
    ));
    let twice = vec![pv(me + 1, id), pv(me + 1, id), pv(me + 2, id)];
    assert!(matches!(
        c.handle(Input::Certificate(twice)),
        Err(InputError::InvalidCertificate(_))
    ));
    let mut forged = vec![pv(me + 1, id), pv(me + 2, id), pv(me + 3, id)];
    forged[2].signature = net.key(me).sign(&forged[2].sign_bytes(CHAIN));
    assert!(matches!(
        c.handle(Input::Certificate(forged)),
        Err(InputError::InvalidSignature(_))
    ));
    assert!(matches!(
        c.handle(Input::Certificate(vec![])),
        Err(InputError::InvalidCertificate(_))
    ));
    assert!(c.votes().round(0).is_none(), "nothing was counted");
}

#[test]
fn next_height_proposals_are_kept_when_signed_by_the_predicted_proposer() {
    let net = Net::new(&[1, 1, 1, 1]);
    // Height 2 runs on the same set, one proposer-priority step later.
    let next = net.vals.copy_increment_proposer_priority(1);
    let proposer2 = net.index_of(next.proposer().address);
    let mut c = net.node((proposer2 + 2) % 4);
    let mut block = (*net.block(5, proposer2).1).clone();
    block.header.height = 2;
    let id = block.block_id();
    let mut p = Proposal {
        height: 2,
        round: 0,
        pol_round: None,
        block_id: id,
        timestamp: Time::default(),
        signature: Default::default(),
    };
    let mut forged = p.clone();
    forged.signature = net.key((proposer2 + 1) % 4).sign(&forged.sign_bytes(CHAIN));
    assert!(matches!(
        c.handle(Input::Proposal(forged)),
        Err(InputError::InvalidSignature(_))
    ));
    p.signature = net.key(proposer2).sign(&p.sign_bytes(CHAIN));
    assert_eq!(c.handle(Input::Proposal(p)), Ok(vec![]));
    assert_eq!(
        c.handle(Input::Block {
            block_id: id,
            block: Arc::new(block)
        }),
        Ok(vec![])
    );
    let out = c
        .handle(Input::StartHeight {
            height: 2,
            validators: next,
            wait_for_txs: false,
        })
        .expect("start 2");
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { height: 2, .. })),
        "the buffered proposal and block are used at height 2"
    );
}

// ----- create_empty_blocks = false: round 0 waits for transactions ------

impl Net {
    /// Validator `me` at height 1, started with round 0 waiting for
    /// transactions; `interval` is create_empty_blocks_interval (zero: none).
    /// Returns the core and the outputs of the start.
    fn waiting_node(&self, me: usize, interval: std::time::Duration) -> (Consensus, Vec<Output>) {
        let mut cfg = Config::new(CHAIN, Some(self.addr(me)));
        cfg.timeouts.create_empty_blocks_interval = interval;
        let mut c = Consensus::new(cfg, Arc::new(Ed25519Verifier));
        let out = c
            .handle(Input::StartHeight {
                height: 1,
                validators: self.vals.clone(),
                wait_for_txs: true,
            })
            .expect("start");
        (c, out)
    }
}

fn schedules(out: &[Output], step: TimeoutStep, round: u32) -> bool {
    out.iter().any(|o| {
        matches!(o, Output::ScheduleTimeout { step: s, round: r, .. } if *s == step && *r == round)
    })
}

fn requests_proposal(out: &[Output]) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::RequestProposal { .. }))
}

#[test]
fn round_zero_waits_for_txs_until_released() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (other, p0) = roles(&net);
    let (mut proposer, out) = net.waiting_node(p0, std::time::Duration::ZERO);
    assert!(out.is_empty(), "no RequestProposal, no timeout: {out:?}");
    assert_eq!(proposer.round_state().step, Step::NewRound);
    let (mut follower, out) = net.waiting_node(other, std::time::Duration::ZERO);
    assert!(out.is_empty(), "no timeoutPropose while waiting: {out:?}");

    // A stray timeoutPropose (none is scheduled while waiting) and a notice
    // for another height change nothing.
    for c in [&mut proposer, &mut follower] {
        let out = feed(
            c,
            [
                Input::Timeout {
                    height: 1,
                    round: 0,
                    step: TimeoutStep::Propose,
                },
                Input::TxsAvailable { height: 2 },
            ],
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(c.round_state().step, Step::NewRound);
    }

    // Transactions arrive: the proposer asks for a value, everyone starts
    // timeoutPropose, exactly as a round that never waited.
    let out = feed(&mut proposer, [Input::TxsAvailable { height: 1 }]);
    assert!(out.contains(&Output::RequestProposal {
        height: 1,
        round: 0
    }));
    assert!(schedules(&out, TimeoutStep::Propose, 0), "{out:?}");
    assert_eq!(proposer.round_state().step, Step::Propose);
    let out = feed(&mut follower, [Input::TxsAvailable { height: 1 }]);
    assert!(!requests_proposal(&out));
    assert!(schedules(&out, TimeoutStep::Propose, 0), "{out:?}");
    // A second notice is a no-op.
    assert!(feed(&mut proposer, [Input::TxsAvailable { height: 1 }]).is_empty());
    // After the release, timeoutPropose works as usual (L57).
    let out = feed(
        &mut follower,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Propose,
        }],
    );
    assert_eq!(votes_of(&out), vec![(VoteType::Prevote, 0, None)]);
}

#[test]
fn the_interval_ends_the_wait_without_txs() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (_, p0) = roles(&net);
    let interval = std::time::Duration::from_secs(30);
    let (mut c, out) = net.waiting_node(p0, interval);
    assert_eq!(
        out,
        vec![Output::ScheduleTimeout {
            height: 1,
            round: 0,
            step: TimeoutStep::NewRound,
            duration: interval,
        }],
        "only the interval runs while waiting"
    );
    let out = feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::NewRound,
        }],
    );
    assert!(requests_proposal(&out), "an empty block after the interval");
    assert!(schedules(&out, TimeoutStep::Propose, 0));
    // Once proposing, the interval timeout is stale.
    let again = feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::NewRound,
        }],
    );
    assert!(again.is_empty(), "{again:?}");
}

/// CometBFT's handleCompleteProposal prevotes in any step up to Propose:
/// a validator without transactions prevotes the proposer's block.
#[test]
fn a_complete_proposal_is_prevoted_while_waiting() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, p0) = roles(&net);
    let (mut c, _) = net.waiting_node(me, std::time::Duration::ZERO);
    let (id, block) = net.block(1, p0);
    let out = feed(&mut c, [Input::Proposal(net.proposal(0, None, id))]);
    assert!(out.is_empty(), "the block is not complete yet: {out:?}");
    assert_eq!(c.round_state().step, Step::NewRound);
    let out = feed(
        &mut c,
        [Input::Block {
            block_id: id,
            block,
        }],
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { .. })),
        "{out:?}"
    );
    assert!(votes_of(&out).is_empty(), "valid(v) not known yet");
    let out = feed(
        &mut c,
        [Input::BlockValidated {
            height: 1,
            block_id: id,
            valid: true,
        }],
    );
    assert_eq!(votes_of(&out), vec![(VoteType::Prevote, 0, Some(id))]);
    assert!(
        !schedules(&out, TimeoutStep::Propose, 0),
        "past Propose, no timeoutPropose: {out:?}"
    );
    // The round goes on as usual: a polka, a precommit, a decision.
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let out = feed(
        &mut c,
        others
            .iter()
            .take(2)
            .map(|i| Input::Vote(net.vote(*i, VoteType::Prevote, 0, Some(id))))
            .chain([Input::Vote(net.vote(me, VoteType::Prevote, 0, Some(id)))]),
    );
    assert_eq!(votes_of(&out), vec![(VoteType::Precommit, 0, Some(id))]);
    // A late notice changes nothing.
    assert!(feed(&mut c, [Input::TxsAvailable { height: 1 }]).is_empty());
}

/// A validator whose mempool never sees the transactions (or that
/// restarted with an empty one) joins once more than 1/3 of the power
/// votes in round 0: it cannot be what keeps the others from a quorum.
#[test]
fn votes_of_more_than_a_third_in_round_zero_end_the_wait() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (_, p0) = roles(&net);
    let (mut c, _) = net.waiting_node(p0, std::time::Duration::ZERO);
    let voters: Vec<usize> = (0..4).filter(|i| *i != p0).collect();
    let out = feed(
        &mut c,
        [Input::Vote(net.vote(voters[0], VoteType::Prevote, 0, None))],
    );
    assert!(out.is_empty(), "one of four is not +1/3: {out:?}");
    assert_eq!(c.round_state().step, Step::NewRound);
    let out = feed(
        &mut c,
        [Input::Vote(net.vote(voters[1], VoteType::Prevote, 0, None))],
    );
    assert!(out.contains(&Output::RequestProposal {
        height: 1,
        round: 0
    }));
    assert!(schedules(&out, TimeoutStep::Propose, 0));
    assert_eq!(c.round_state().step, Step::Propose);
}

#[test]
fn rounds_above_zero_never_wait() {
    let net = Net::new(&[1, 1, 1, 1]);
    let me = bystander(&net);
    let (mut c, _) = net.waiting_node(me, std::time::Duration::ZERO);
    // L55: two of four in round 1 move us there, and round 1 proposes.
    let movers: Vec<usize> = (0..4).filter(|i| *i != me).take(2).collect();
    let out = feed(
        &mut c,
        movers
            .iter()
            .map(|i| Input::Vote(net.vote(*i, VoteType::Prevote, 1, None))),
    );
    assert_eq!(c.round_state().round, 1);
    assert_eq!(c.round_state().step, Step::Propose);
    assert!(schedules(&out, TimeoutStep::Propose, 1), "{out:?}");

    // L65 from a waiting round 0: round 1 does not wait either.
    let (mut c, _) = net.waiting_node(net.proposer(1), std::time::Duration::ZERO);
    let out = feed(
        &mut c,
        [Input::Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Precommit,
        }],
    );
    assert_eq!(c.round_state().round, 1);
    assert!(out.contains(&Output::RequestProposal {
        height: 1,
        round: 1
    }));
}

/// +2/3 precommits decide while round 0 still waits (a validator that saw
/// neither the transactions nor the proposal catches up with the others).
#[test]
fn a_waiting_validator_decides_on_a_commit() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, p0) = roles(&net);
    let (mut c, _) = net.waiting_node(me, std::time::Duration::ZERO);
    let (id, block) = net.block(1, p0);
    let votes: Vec<Vote> = (0..4)
        .filter(|i| *i != me)
        .map(|i| net.vote(i, VoteType::Precommit, 0, Some(id)))
        .collect();
    let out = feed(
        &mut c,
        [
            Input::Certificate(votes),
            Input::Block {
                block_id: id,
                block,
            },
        ],
    );
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Decide {
                height: 1,
                round: 0,
                ..
            }
        )),
        "{out:?}"
    );
    assert!(
        votes_of(&out).is_empty(),
        "a decision needs no vote of ours"
    );
}

/// A height that needs a proof block is started with `wait_for_txs: false`
/// by the I/O layer (execution::needs_proof_block): it proposes at once,
/// even with an interval configured.
#[test]
fn a_height_that_does_not_wait_proposes_at_once() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (_, p0) = roles(&net);
    let mut cfg = Config::new(CHAIN, Some(net.addr(p0)));
    cfg.timeouts.create_empty_blocks_interval = std::time::Duration::from_secs(30);
    let mut c = Consensus::new(cfg, Arc::new(Ed25519Verifier));
    let out = c
        .handle(Input::StartHeight {
            height: 1,
            validators: net.vals.clone(),
            wait_for_txs: false,
        })
        .expect("start");
    assert!(requests_proposal(&out));
    assert!(!schedules(&out, TimeoutStep::NewRound, 0), "{out:?}");
    assert_eq!(c.round_state().step, Step::Propose);
}

#[test]
fn refused_equivocating_votes_complete_a_certificate_the_core_then_counts() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let (a, _) = net.block(1, 0);
    let (b, _) = net.block(2, 0);
    let mut c = net.node(me);
    let mut pool = ConflictPool::default();
    let eq = others[0];
    // The equivocator's vote for A arrives first and is counted...
    feed(
        &mut c,
        [Input::Vote(net.vote(eq, VoteType::Prevote, 0, Some(a)))],
    );
    // ...the other two vote B: only 2 of 4 counted for B.
    for i in &others[1..] {
        feed(
            &mut c,
            [Input::Vote(net.vote(*i, VoteType::Prevote, 0, Some(b)))],
        );
    }
    let second = net.vote(eq, VoteType::Prevote, 0, Some(b));
    let out = feed(&mut c, [Input::Vote(second.clone())]);
    assert!(out.iter().any(|o| matches!(o, Output::Equivocation { .. })));
    assert_eq!(
        c.votes().round(0).map(|r| r.prevotes.weight_for(&Some(b))),
        Some(2)
    );
    // A vote for another value completes nothing.
    let stray = net.vote(others[1], VoteType::Prevote, 0, None);
    assert!(pool.add(stray, &c).is_none());
    // The refused vote plus the two counted ones: 3 of 4 for B.
    let cert = pool.add(second.clone(), &c).expect("a certificate");
    let Input::Certificate(votes) = &cert else {
        panic!("{cert:?}");
    };
    assert_eq!(votes.len(), 3);
    assert!(votes.iter().all(|v| v.block_id == Some(b)));
    feed(&mut c, [cert]);
    assert_eq!(
        c.votes()
            .round(0)
            .map(|r| r.prevotes.quorum_value(c.votes().thresholds())),
        Some(Some(Some(b))),
        "the core counts the quorum for B"
    );
    assert!(pool.add(second, &c).is_none(), "once per value");
}

#[test]
fn a_refused_vote_completes_a_quorum_when_later_votes_arrive() {
    let net = Net::new(&[1, 1, 1, 1]);
    let (me, _) = roles(&net);
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let (a, _) = net.block(1, 0);
    let (b, _) = net.block(2, 0);
    let mut c = net.node(me);
    let mut pool = ConflictPool::default();
    let eq = others[0];
    feed(
        &mut c,
        [Input::Vote(net.vote(eq, VoteType::Precommit, 0, Some(a)))],
    );
    let second = net.vote(eq, VoteType::Precommit, 0, Some(b));
    feed(&mut c, [Input::Vote(second.clone())]);
    assert!(pool.add(second, &c).is_none(), "1 of 4 for B");
    let v1 = net.vote(others[1], VoteType::Precommit, 0, Some(b));
    feed(&mut c, [Input::Vote(v1.clone())]);
    assert!(pool.on_counted(&v1, &c).is_none(), "2 of 4 for B");
    let v2 = net.vote(others[2], VoteType::Precommit, 0, Some(b));
    feed(&mut c, [Input::Vote(v2.clone())]);
    let cert = pool.on_counted(&v2, &c).expect("3 of 4 for B");
    feed(&mut c, [cert]);
    assert_eq!(
        c.votes()
            .round(0)
            .map(|r| r.precommits.quorum_value(c.votes().thresholds())),
        Some(Some(Some(b))),
        "the core counts the precommit quorum for B"
    );
}
