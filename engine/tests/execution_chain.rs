//! The chain-state transition end to end: chains of blocks built with
//! `make_block`, committed with real signatures, checked with
//! `validate_block` and advanced with `next_state`; single corruptions of a
//! header or commit and the error naming them; validator and parameter
//! updates; InitChain; the results hash.

use std::collections::HashMap;

use engine::execution::{
    apply_init_chain, block_time, evidence_byte_size, genesis_state, make_block, needs_proof_block,
    next_height, next_state, validate_block, ExecError, HeaderField,
};
use engine::genesis::{GenesisDoc, GenesisValidator};
use engine::store::State;
use engine::types::{
    sha256, Address, Block, BlockId, Commit, CommitError, CommitSig, ConsensusParams,
    DuplicateVoteEvidence, Evidence, Hash, PrivateKey, Time, ValidatorSet, Vote, VoteType,
};
use prost::Message;
use tendermint_proto::v0_38::abci::{
    ExecTxResult, ResponseFinalizeBlock, ResponseInitChain, ValidatorUpdate,
};
use tendermint_proto::v0_38::types as pb;

const CHAIN_ID: &str = "exec-test-chain";

fn key(seed: u8) -> PrivateKey {
    PrivateKey::from_seed([seed; 32])
}

/// A chain under test: the current state, every key that may sign, and the
/// commit for the last block.
struct Chain {
    state: State,
    keys: HashMap<Address, PrivateKey>,
    last_commit: Option<Commit>,
    proposers: Vec<Address>,
}

fn genesis(powers: &[i64], initial_height: u64) -> GenesisDoc {
    GenesisDoc {
        genesis_time: Time {
            secs: 1_700_000_000,
            nanos: 123,
        },
        chain_id: CHAIN_ID.into(),
        initial_height,
        consensus_params: ConsensusParams::default(),
        validators: powers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let pub_key = key(i as u8 + 1).public_key();
                GenesisValidator {
                    address: pub_key.address(),
                    pub_key,
                    power: *p,
                    name: format!("v{i}"),
                }
            })
            .collect(),
        app_hash: Vec::new(),
        app_state: None,
    }
}

impl Chain {
    fn new(powers: &[i64]) -> Chain {
        Chain::with_genesis(genesis(powers, 1))
    }

    fn with_genesis(g: GenesisDoc) -> Chain {
        let state = genesis_state(&g).expect("genesis state");
        let state = apply_init_chain(state, &ResponseInitChain::default()).expect("init chain");
        let mut keys = HashMap::new();
        for seed in 1..=20u8 {
            let k = key(seed);
            keys.insert(k.public_key().address(), k);
        }
        Chain {
            state,
            keys,
            last_commit: None,
            proposers: Vec::new(),
        }
    }

    /// The block the round-0 proposer of the next height would build.
    fn propose(&self, txs: Vec<Vec<u8>>) -> Block {
        let height = next_height(&self.state);
        make_block(
            &self.state,
            height,
            txs,
            self.last_commit.clone(),
            Vec::new(),
            self.state.validators.proposer().address,
            block_time(&self.state, self.last_commit.as_ref()),
        )
    }

    /// Every validator of `vals` precommits `block_id` at `height`, with
    /// timestamps one second apart after `after`.
    fn sign_commit(
        &self,
        vals: &ValidatorSet,
        height: u64,
        block_id: BlockId,
        after: Time,
    ) -> Commit {
        let signatures = vals
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let timestamp = Time {
                    secs: after.secs + 1 + i as i64,
                    nanos: after.nanos,
                };
                let mut vote = Vote {
                    vote_type: VoteType::Precommit,
                    height,
                    round: 0,
                    block_id: Some(block_id),
                    timestamp,
                    validator_address: v.address,
                    validator_index: i as u32,
                    signature: Default::default(),
                    extension: Vec::new(),
                    extension_signature: Vec::new(),
                };
                vote.sign(CHAIN_ID, &self.keys[&v.address]);
                CommitSig::Commit {
                    validator_address: v.address,
                    timestamp,
                    signature: vote.signature,
                }
            })
            .collect();
        Commit {
            height,
            round: 0,
            block_id,
            signatures,
        }
    }

    /// Proposes, validates, finalizes with `response` (tx results filled in
    /// when empty) and commits the next block. Returns it.
    fn step_with(&mut self, txs: Vec<Vec<u8>>, mut response: ResponseFinalizeBlock) -> Block {
        let block = self.propose(txs);
        validate_block(&self.state, &block).expect("valid block");
        // The header hash is what tendermint-rs computes for the same header.
        let tm = tendermint::block::Header::try_from(pb::Header::from(block.header.clone()))
            .expect("tendermint-rs accepts the header");
        assert_eq!(tm.hash().as_bytes(), block.hash().0);
        if response.tx_results.is_empty() {
            response.tx_results = block
                .txs
                .iter()
                .map(|tx| ExecTxResult {
                    code: 0,
                    data: sha256(tx).0.to_vec().into(),
                    ..Default::default()
                })
                .collect();
        }
        if response.app_hash.is_empty() {
            response.app_hash = sha256(&block.header.height.to_be_bytes()).0.to_vec().into();
        }
        let block_id = block.block_id();
        let next = next_state(&self.state, block_id, &block, &response).expect("next state");
        assert_eq!(next.last_block_height, block.header.height);
        assert_eq!(next.last_block_id, Some(block_id));
        assert_eq!(next.last_block_time, block.header.time);
        assert_eq!(next.app_hash, response.app_hash.to_vec());
        assert_eq!(next.validators, self.state.next_validators);
        assert_eq!(next.last_validators.as_ref(), Some(&self.state.validators));
        // The store can keep the new state as CometBFT's state record.
        let raw = tendermint_proto::v0_38::state::State::from(next.clone());
        assert_eq!(State::try_from(raw), Ok(next.clone()));
        self.last_commit = Some(self.sign_commit(
            &self.state.validators,
            block.header.height,
            block_id,
            block.header.time,
        ));
        self.proposers.push(block.header.proposer_address);
        self.state = next;
        block
    }

    fn step(&mut self, txs: Vec<Vec<u8>>) -> Block {
        self.step_with(txs, ResponseFinalizeBlock::default())
    }
}

fn tx(i: u64) -> Vec<u8> {
    format!("tx-{i}").into_bytes()
}

#[test]
fn chain_of_blocks_validates_and_advances() {
    let mut chain = Chain::new(&[10, 10, 10, 10]);
    let genesis_time = chain.state.last_block_time;
    let first = chain.step(vec![tx(1), tx(2)]);
    assert_eq!(first.header.height, 1);
    assert_eq!(first.header.time, genesis_time);
    assert_eq!(first.header.last_block_id, None);
    assert_eq!(first.last_commit, None);
    assert_eq!(first.header.last_results_hash, sha256(&[]));
    assert_eq!(first.header.app_hash, Vec::<u8>::new());
    let mut prev = first;
    for h in 2..=9u64 {
        let commit = chain.last_commit.clone().expect("commit");
        let vals = chain
            .state
            .last_validators
            .clone()
            .expect("last validators");
        let b = chain.step((0..h).map(tx).collect());
        assert_eq!(b.header.height, h);
        assert_eq!(b.header.last_block_id, Some(prev.block_id()));
        assert_eq!(b.header.time, engine::types::bft_time(&commit, &vals));
        assert!(b.header.time > prev.header.time);
        assert_eq!(b.header.app_hash, sha256(&(h - 1).to_be_bytes()).0.to_vec());
        prev = b;
    }
    // Equal powers: round-robin, each validator proposes twice in 8 heights.
    let mut counts: HashMap<Address, usize> = HashMap::new();
    for p in &chain.proposers[1..9] {
        *counts.entry(*p).or_default() += 1;
    }
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|c| *c == 2), "{counts:?}");
}

/// create_empty_blocks = false still makes a block at the initial height
/// and after every block that changed the app hash, and only then.
#[test]
fn proof_blocks_follow_the_initial_height_and_app_hash_changes() {
    let mut chain = Chain::with_genesis(genesis(&[10], 5));
    assert!(needs_proof_block(&chain.state, 5, None), "initial height");
    let same = |chain: &Chain| ResponseFinalizeBlock {
        app_hash: chain.state.app_hash.clone().into(),
        ..Default::default()
    };
    // Block 5 leaves the app hash unchanged (InitChain's, here empty, is
    // replaced by a fixed one first so that "unchanged" is not "empty").
    let fixed = ResponseFinalizeBlock {
        app_hash: vec![7; 8].into(),
        ..Default::default()
    };
    let b5 = chain.step_with(vec![], fixed);
    assert!(
        needs_proof_block(&chain.state, 6, Some(&b5.header.app_hash)),
        "block 5 changed the app hash from empty to 0707..: block 6 proves it"
    );
    let b6 = chain.step_with(vec![], same(&chain));
    assert!(
        !needs_proof_block(&chain.state, 7, Some(&b6.header.app_hash)),
        "block 6 changed nothing: height 7 may wait"
    );
    let b7 = chain.step_with(vec![tx(1)], ResponseFinalizeBlock::default());
    assert!(
        needs_proof_block(&chain.state, 8, Some(&b7.header.app_hash)),
        "block 7 changed the app hash"
    );
    assert!(
        needs_proof_block(&chain.state, 8, None),
        "an unknown previous block"
    );
}

#[test]
fn chain_from_a_later_initial_height() {
    let mut chain = Chain::with_genesis(genesis(&[5, 7], 100));
    assert_eq!(next_height(&chain.state), 100);
    let b = chain.step(vec![]);
    assert_eq!(b.header.height, 100);
    assert_eq!(b.header.time, genesis(&[], 100).genesis_time);
    let b = chain.step(vec![tx(1)]);
    assert_eq!(b.header.height, 101);
    assert!(b.last_commit.is_some());
}

/// A change to a block.
type Mutate = dyn Fn(&mut Block);

/// A state at height 3 and the valid block for height 4 on it.
fn fixture() -> (Chain, Block) {
    let mut chain = Chain::new(&[10, 10, 10, 10]);
    for h in 1..=3 {
        chain.step(vec![tx(h)]);
    }
    let block = chain.propose(vec![tx(4), tx(5)]);
    validate_block(&chain.state, &block).expect("valid");
    (chain, block)
}

fn wrong_field(err: Result<(), ExecError>) -> HeaderField {
    match err {
        Err(ExecError::WrongHeader { field, .. }) => field,
        other => panic!("expected a wrong header field, got {other:?}"),
    }
}

#[test]
fn each_header_corruption_names_its_field() {
    let (chain, block) = fixture();
    let s = &chain.state;
    type Mutation = (HeaderField, Box<dyn Fn(&mut Block)>);
    let cases: Vec<Mutation> = vec![
        (
            HeaderField::Version,
            Box::new(|b| b.header.version.block += 1),
        ),
        (HeaderField::Version, Box::new(|b| b.header.version.app = 9)),
        (
            HeaderField::ChainId,
            Box::new(|b| b.header.chain_id.push('x')),
        ),
        (HeaderField::Height, Box::new(|b| b.header.height += 1)),
        (HeaderField::Height, Box::new(|b| b.header.height -= 1)),
        (
            HeaderField::LastBlockId,
            Box::new(|b| b.header.last_block_id = None),
        ),
        (
            HeaderField::LastBlockId,
            Box::new(|b| {
                if let Some(id) = b.header.last_block_id.as_mut() {
                    id.part_set_header.total += 1;
                }
            }),
        ),
        (
            HeaderField::AppHash,
            Box::new(|b| b.header.app_hash.push(0)),
        ),
        (
            HeaderField::AppHash,
            Box::new(|b| b.header.app_hash.clear()),
        ),
        (
            HeaderField::ConsensusHash,
            Box::new(|b| b.header.consensus_hash = Hash([7; 32])),
        ),
        (
            HeaderField::LastResultsHash,
            Box::new(|b| b.header.last_results_hash = sha256(&[])),
        ),
        (
            HeaderField::ValidatorsHash,
            Box::new(|b| b.header.validators_hash = Hash([7; 32])),
        ),
        (
            HeaderField::NextValidatorsHash,
            Box::new(|b| b.header.next_validators_hash = Hash([7; 32])),
        ),
        (
            HeaderField::Time,
            Box::new(|b| b.header.time = b.header.time.add_nanos(1)),
        ),
    ];
    for (i, (field, mutate)) in cases.iter().enumerate() {
        let mut b = block.clone();
        mutate(&mut b);
        assert_eq!(wrong_field(validate_block(s, &b)), *field, "case {i}");
    }

    // A time not after the last block's.
    let mut b = block.clone();
    b.header.time = s.last_block_time;
    assert!(matches!(
        validate_block(s, &b),
        Err(ExecError::TimeNotIncreasing { .. })
    ));

    // A proposer outside the set.
    let mut b = block.clone();
    b.header.proposer_address = key(99).public_key().address();
    assert_eq!(
        validate_block(s, &b),
        Err(ExecError::ProposerNotValidator(
            key(99).public_key().address()
        ))
    );
    // Any validator of the height may propose (the round is unknown).
    let mut b = block.clone();
    b.header.proposer_address = s.validators.validators[3].address;
    assert_eq!(validate_block(s, &b), Ok(()));

    // Content hashes and contents that disagree: Block.ValidateBasic.
    let contents: Vec<Box<Mutate>> = vec![
        Box::new(|b| b.header.data_hash = Hash([1; 32])),
        Box::new(|b| b.header.last_commit_hash = Hash([1; 32])),
        Box::new(|b| b.header.evidence_hash = Hash([1; 32])),
        Box::new(|b| b.txs.push(b"extra".to_vec())),
        Box::new(|b| b.txs.clear()),
    ];
    for (i, mutate) in contents.iter().enumerate() {
        let mut b = block.clone();
        mutate(&mut b);
        assert!(
            matches!(validate_block(s, &b), Err(ExecError::InvalidBlock(_))),
            "case {i}"
        );
    }
}

/// Replaces the block's last commit and refreshes the content hashes, so
/// that only the commit check can fail.
fn with_commit(block: &Block, commit: Option<Commit>) -> Block {
    let mut b = block.clone();
    b.last_commit = commit;
    b.fill_header();
    b
}

fn commit_error(err: Result<(), ExecError>) -> CommitError {
    match err {
        Err(ExecError::LastCommit(e)) => e,
        other => panic!("expected a last commit error, got {other:?}"),
    }
}

#[test]
fn each_commit_corruption_is_caught() {
    let (chain, block) = fixture();
    let s = &chain.state;
    let commit = block.last_commit.clone().expect("commit");

    assert_eq!(
        validate_block(s, &with_commit(&block, None)),
        Err(ExecError::MissingLastCommit(4))
    );

    let mut c = commit.clone();
    if let CommitSig::Commit { signature, .. } = &mut c.signatures[2] {
        signature.0[0] ^= 1;
    }
    assert!(matches!(
        commit_error(validate_block(s, &with_commit(&block, Some(c)))),
        CommitError::BadSignature { index: 2, .. }
    ));

    // A validly signed commit for the wrong timestamp is a bad signature too.
    let mut c = commit.clone();
    if let CommitSig::Commit { timestamp, .. } = &mut c.signatures[0] {
        *timestamp = timestamp.add_nanos(1);
    }
    assert!(matches!(
        commit_error(validate_block(s, &with_commit(&block, Some(c)))),
        CommitError::BadSignature { index: 0, .. }
    ));

    let mut c = commit.clone();
    c.height += 1;
    assert!(matches!(
        commit_error(validate_block(s, &with_commit(&block, Some(c)))),
        CommitError::WrongHeight { .. }
    ));

    let mut c = commit.clone();
    c.block_id.hash = Hash([9; 32]);
    assert_eq!(
        commit_error(validate_block(s, &with_commit(&block, Some(c)))),
        CommitError::WrongBlock
    );

    let mut c = commit.clone();
    c.signatures.pop();
    assert!(matches!(
        commit_error(validate_block(s, &with_commit(&block, Some(c)))),
        CommitError::WrongSize { .. }
    ));

    // 2 of 4 equal powers is not more than 2/3.
    let mut c = commit.clone();
    c.signatures[0] = CommitSig::Absent;
    c.signatures[1] = CommitSig::Absent;
    assert!(matches!(
        commit_error(validate_block(s, &with_commit(&block, Some(c)))),
        CommitError::NotEnoughPower { .. }
    ));

    // 3 of 4 is enough, but the median time moves (the earliest vote is
    // gone): the proposer's time no longer matches.
    let mut c = commit.clone();
    c.signatures[0] = CommitSig::Absent;
    assert_eq!(
        wrong_field(validate_block(s, &with_commit(&block, Some(c.clone())))),
        HeaderField::Time
    );
    let mut b = with_commit(&block, Some(c.clone()));
    b.header.time = block_time(s, Some(&c));
    assert_eq!(validate_block(s, &b), Ok(()));

    // Swapped signature slots: address mismatch.
    let mut c = commit.clone();
    c.signatures.swap(0, 1);
    assert!(matches!(
        commit_error(validate_block(s, &with_commit(&block, Some(c)))),
        CommitError::AddressMismatch { index: 0, .. }
    ));
}

#[test]
fn initial_block_rules() {
    let chain = Chain::new(&[10, 10]);
    let block = chain.propose(vec![]);
    validate_block(&chain.state, &block).expect("valid");
    // No commit at the initial height.
    let any_commit = Commit {
        height: 1,
        round: 0,
        block_id: BlockId::default(),
        signatures: vec![CommitSig::Absent, CommitSig::Absent],
    };
    assert_eq!(
        validate_block(&chain.state, &with_commit(&block, Some(any_commit))),
        Err(ExecError::UnexpectedLastCommit)
    );
    // The genesis time, exactly.
    let mut b = block.clone();
    b.header.time = b.header.time.add_nanos(1);
    assert_eq!(
        wrong_field(validate_block(&chain.state, &b)),
        HeaderField::Time
    );
    // Before InitChain the results hash is empty; it reads as the empty root.
    let mut raw = genesis_state(&genesis(&[10, 10], 1)).expect("genesis");
    assert!(raw.last_results_hash.is_empty());
    assert_eq!(validate_block(&raw, &block), Ok(()));
    raw.last_results_hash = vec![1; 32];
    assert_eq!(
        wrong_field(validate_block(&raw, &block)),
        HeaderField::LastResultsHash
    );
}

#[test]
fn evidence_size_limit() {
    let (mut chain, _) = fixture();
    // Evidence of validator 0 double-signing at height 3.
    let vals = chain
        .state
        .last_validators
        .clone()
        .expect("last validators");
    let v = &vals.validators[0];
    let vote = |hash: u8| {
        let mut vote = Vote {
            vote_type: VoteType::Precommit,
            height: 3,
            round: 0,
            block_id: Some(BlockId {
                hash: Hash([hash; 32]),
                part_set_header: Default::default(),
            }),
            timestamp: Time {
                secs: 1_700_000_001,
                nanos: 0,
            },
            validator_address: v.address,
            validator_index: 0,
            signature: Default::default(),
            extension: Vec::new(),
            extension_signature: Vec::new(),
        };
        vote.sign(CHAIN_ID, &chain.keys[&v.address]);
        vote
    };
    let ev = Evidence::DuplicateVote(Box::new(
        DuplicateVoteEvidence::new(vote(1), vote(2), chain.state.last_block_time, &vals)
            .expect("evidence"),
    ));
    let size = evidence_byte_size(std::slice::from_ref(&ev));
    let list = pb::EvidenceList {
        evidence: vec![ev.clone().into()],
    };
    assert_eq!(size, list.encoded_len() as i64);
    assert_eq!(evidence_byte_size(&[]), 0);

    let make = |chain: &Chain| {
        make_block(
            &chain.state,
            4,
            vec![],
            chain.last_commit.clone(),
            vec![ev.clone()],
            chain.state.validators.proposer().address,
            block_time(&chain.state, chain.last_commit.as_ref()),
        )
    };
    // Evidence params are not part of the consensus hash, so the limit can
    // be lowered in place.
    chain.state.consensus_params.evidence.max_bytes = size;
    assert_eq!(validate_block(&chain.state, &make(&chain)), Ok(()));
    chain.state.consensus_params.evidence.max_bytes = size - 1;
    assert_eq!(
        validate_block(&chain.state, &make(&chain)),
        Err(ExecError::EvidenceOverflow {
            max: size - 1,
            got: size
        })
    );
}

fn update(seed: u8, power: i64) -> ValidatorUpdate {
    ValidatorUpdate {
        pub_key: Some(key(seed).public_key().into()),
        power,
    }
}

#[test]
fn validator_updates_take_effect_two_heights_later() {
    let mut chain = Chain::new(&[10, 10, 10, 10]);
    chain.step(vec![]);
    chain.step(vec![]);
    let before = chain.state.validators.hash();
    let newcomer = key(5).public_key().address();
    let removed = key(2).public_key().address();
    // Block 3 adds validator 5, removes validator 2, and raises validator 1.
    let b3 = chain.step_with(
        vec![tx(1)],
        ResponseFinalizeBlock {
            validator_updates: vec![update(5, 20), update(2, 0), update(1, 15)],
            ..Default::default()
        },
    );
    assert_eq!(b3.header.height, 3);
    assert_eq!(chain.state.last_height_validators_changed, 5);
    // Height 4 still runs with the old set; height 5 with the new one.
    assert_eq!(chain.state.validators.hash(), before);
    assert!(chain
        .state
        .next_validators
        .get_by_address(&newcomer)
        .is_some());
    assert!(chain
        .state
        .next_validators
        .get_by_address(&removed)
        .is_none());
    let b4 = chain.step(vec![]);
    assert_eq!(b4.header.validators_hash, before);
    assert_ne!(b4.header.next_validators_hash, before);
    assert_eq!(chain.state.last_height_validators_changed, 5);
    let b5 = chain.step(vec![]);
    assert_eq!(b5.header.validators_hash, b4.header.next_validators_hash);
    assert!(chain
        .state
        .last_validators
        .as_ref()
        .expect("last")
        .get_by_address(&newcomer)
        .is_some());
    let set = chain.state.validators.clone();
    assert_eq!(set.len(), 4);
    assert_eq!(set.total_voting_power(), 20 + 15 + 10 + 10);
    // Block 6's commit is signed by the new set (including the newcomer) and
    // verifies; the chain goes on and the newcomer gets to propose.
    for _ in 0..12 {
        chain.step(vec![]);
    }
    assert!(chain.proposers[5..].contains(&newcomer));
    assert!(!chain.proposers[5..].contains(&removed));
    assert!(chain.proposers[..5].contains(&removed));
}

#[test]
fn proposer_rotation_follows_priorities() {
    // Powers 1, 2, 3: over 6 heights each proposes as often as its power.
    let mut chain = Chain::new(&[1, 2, 3]);
    for _ in 0..12 {
        chain.step(vec![]);
    }
    let mut counts: HashMap<Address, usize> = HashMap::new();
    for p in &chain.proposers[..12] {
        *counts.entry(*p).or_default() += 1;
    }
    for (seed, power) in [(1u8, 1usize), (2, 2), (3, 3)] {
        assert_eq!(counts[&key(seed).public_key().address()], 2 * power);
    }
}

#[test]
fn bad_validator_updates_are_rejected() {
    let mut chain = Chain::new(&[10, 10]);
    chain.step(vec![]);
    let block = chain.propose(vec![]);
    let id = block.block_id();
    let resp = |updates: Vec<ValidatorUpdate>| ResponseFinalizeBlock {
        validator_updates: updates,
        ..Default::default()
    };
    assert!(matches!(
        next_state(&chain.state, id, &block, &resp(vec![update(3, -1)])),
        Err(ExecError::InvalidValidatorUpdate { index: 0, .. })
    ));
    // Removing an unknown validator, duplicates, removing everyone.
    for bad in [
        vec![update(7, 0)],
        vec![update(3, 1), update(3, 2)],
        vec![update(1, 0), update(2, 0)],
    ] {
        assert!(matches!(
            next_state(&chain.state, id, &block, &resp(bad)),
            Err(ExecError::ValidatorSetChange(_))
        ));
    }
}

#[test]
fn tx_results_count_must_match() {
    let mut chain = Chain::new(&[10]);
    chain.step(vec![]);
    let block = chain.propose(vec![tx(1), tx(2), tx(3)]);
    let resp = ResponseFinalizeBlock {
        tx_results: vec![ExecTxResult::default(); 2],
        ..Default::default()
    };
    assert_eq!(
        next_state(&chain.state, block.block_id(), &block, &resp),
        Err(ExecError::TxResultsMismatch { txs: 3, results: 2 })
    );
    let mut wrong_height = block.clone();
    wrong_height.header.height += 1;
    assert!(matches!(
        next_state(&chain.state, block.block_id(), &wrong_height, &resp),
        Err(ExecError::WrongFinalizeHeight { .. })
    ));
}

#[test]
fn consensus_param_updates() {
    let mut chain = Chain::new(&[10, 10]);
    chain.step(vec![]);
    let hash_before = chain.state.consensus_params.hash();
    let params = pb::ConsensusParams {
        block: Some(pb::BlockParams {
            max_bytes: 2_000_000,
            max_gas: 1000,
        }),
        version: Some(pb::VersionParams { app: 3 }),
        abci: Some(pb::AbciParams {
            vote_extensions_enable_height: 10,
        }),
        ..Default::default()
    };
    let b2 = chain.step_with(
        vec![],
        ResponseFinalizeBlock {
            consensus_param_updates: Some(params),
            ..Default::default()
        },
    );
    assert_eq!(b2.header.consensus_hash, hash_before);
    let p = &chain.state.consensus_params;
    assert_eq!(p.block.max_bytes, 2_000_000);
    assert_eq!(p.block.max_gas, 1000);
    assert_eq!(p.vote_extensions_enable_height, 10);
    assert_eq!(p.evidence, ConsensusParams::default().evidence);
    assert_eq!(chain.state.version.app, 3);
    assert_eq!(chain.state.last_height_consensus_params_changed, 3);
    // Block 3 carries the new hash and app version and validates.
    let b3 = chain.step(vec![]);
    assert_ne!(b3.header.consensus_hash, hash_before);
    assert_eq!(
        b3.header.consensus_hash,
        chain.state.consensus_params.hash()
    );
    assert_eq!(b3.header.version.app, 3);
    assert_eq!(chain.state.last_height_consensus_params_changed, 3);

    let block = chain.propose(vec![]);
    let id = block.block_id();
    let abci = |h: i64| ResponseFinalizeBlock {
        consensus_param_updates: Some(pb::ConsensusParams {
            abci: Some(pb::AbciParams {
                vote_extensions_enable_height: h,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    // At height 4: enabling at the current height is too late; moving the
    // (future) enable height is fine.
    assert!(matches!(
        next_state(&chain.state, id, &block, &abci(4)),
        Err(ExecError::ConsensusParams(_))
    ));
    assert!(next_state(&chain.state, id, &block, &abci(5)).is_ok());
    assert!(next_state(&chain.state, id, &block, &abci(0)).is_ok());
    // Invalid resulting parameters.
    let bad = ResponseFinalizeBlock {
        consensus_param_updates: Some(pb::ConsensusParams {
            block: Some(pb::BlockParams {
                max_bytes: 0,
                max_gas: -1,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        next_state(&chain.state, id, &block, &bad),
        Err(ExecError::ConsensusParams(_))
    ));
    // Once enabled, extensions can be neither disabled nor moved.
    for _ in 4..=10 {
        chain.step(vec![]);
    }
    assert!(chain
        .state
        .consensus_params
        .vote_extensions_enabled(next_height(&chain.state)));
    let block = chain.propose(vec![]);
    let id = block.block_id();
    for h in [0, 20] {
        assert!(matches!(
            next_state(&chain.state, id, &block, &abci(h)),
            Err(ExecError::ConsensusParams(_))
        ));
    }
}

#[test]
fn init_chain_replaces_the_genesis_set() {
    let g = genesis(&[10, 10], 1);
    let state = genesis_state(&g).expect("genesis");
    let resp = ResponseInitChain {
        validators: vec![update(8, 5), update(9, 6)],
        app_hash: vec![0xAB; 8].into(),
        ..Default::default()
    };
    let state = apply_init_chain(state, &resp).expect("init chain");
    assert_eq!(state.app_hash, vec![0xAB; 8]);
    assert_eq!(state.validators.len(), 2);
    assert_eq!(
        state.validators.validators[0].address,
        key(9).public_key().address()
    );
    let mut chain = Chain::with_genesis(g);
    chain.state = state;
    let b1 = chain.step(vec![]);
    assert_eq!(b1.header.app_hash, vec![0xAB; 8]);
    assert_eq!(
        b1.header.validators_hash,
        chain.state.last_validators.clone().expect("v").hash()
    );
    let b2 = chain.step(vec![]);
    let signers: Vec<Address> = b2
        .last_commit
        .expect("commit")
        .signatures
        .iter()
        .filter_map(|s| match s {
            CommitSig::Commit {
                validator_address, ..
            } => Some(*validator_address),
            _ => None,
        })
        .collect();
    assert_eq!(
        signers,
        vec![key(9).public_key().address(), key(8).public_key().address()]
    );
    // No validators anywhere.
    let empty = genesis_state(&genesis(&[], 1)).expect("genesis");
    assert_eq!(
        apply_init_chain(empty, &ResponseInitChain::default()),
        Err(ExecError::NoValidators)
    );
}

/// CometBFT state_test.go `TestABCIResponsesResultsHash` uses one result
/// `{Code: 32, Data: "Hello", Log: "Huh?"}`: its hash is the RFC 6962 leaf
/// hash of `ExecTxResult{code: 32, data: "Hello"}` (log dropped), computed
/// here from hand-written bytes.
#[test]
fn results_hash_golden_and_tendermint_rs() {
    let mut chain = Chain::new(&[10]);
    let one = vec![ExecTxResult {
        code: 32,
        data: b"Hello".to_vec().into(),
        log: "Huh?".into(),
        ..Default::default()
    }];
    chain.step_with(
        vec![tx(1)],
        ResponseFinalizeBlock {
            tx_results: one,
            ..Default::default()
        },
    );
    let mut leaf = vec![0x00, 0x08, 0x20, 0x12, 0x05];
    leaf.extend_from_slice(b"Hello");
    assert_eq!(chain.state.last_results_hash, sha256(&leaf).0.to_vec());

    // Several results, against tendermint-rs's merkle tree over the stripped
    // encodings.
    let results: Vec<ExecTxResult> = (0..5u32)
        .map(|i| ExecTxResult {
            code: i,
            data: vec![i as u8; i as usize].into(),
            log: "ignored".into(),
            info: "ignored".into(),
            gas_wanted: 100 + i64::from(i),
            gas_used: 50 + i64::from(i),
            codespace: "ignored".into(),
            ..Default::default()
        })
        .collect();
    let leaves: Vec<Vec<u8>> = results
        .iter()
        .map(|r| {
            ExecTxResult {
                code: r.code,
                data: r.data.clone(),
                gas_wanted: r.gas_wanted,
                gas_used: r.gas_used,
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect();
    let want = tendermint::merkle::simple_hash_from_byte_vectors::<
        tendermint::crypto::default::Sha256,
    >(&leaves);
    let b = chain.step_with(
        (0..5).map(tx).collect(),
        ResponseFinalizeBlock {
            tx_results: results,
            ..Default::default()
        },
    );
    assert_eq!(chain.state.last_results_hash, want.to_vec());
    // And the next header carries it.
    let next = chain.step(vec![]);
    assert_eq!(next.header.last_results_hash.0.to_vec(), want.to_vec());
    assert_eq!(b.header.height + 1, next.header.height);
    // No transactions: the empty root.
    chain.step(vec![]);
    assert_eq!(chain.state.last_results_hash, sha256(&[]).0.to_vec());
}
