//! A chain of real blocks with real signatures for the tests of block
//! sync's verification and of the node's sync task: four validators of
//! power 1, each block committed by all of them.

use std::collections::HashMap;

use tendermint_proto::v0_38::abci::{ExecTxResult, ResponseFinalizeBlock, ResponseInitChain};

use crate::execution::{
    apply_init_chain, block_time, genesis_state, make_block, next_height, next_state,
};
use crate::genesis::{GenesisDoc, GenesisValidator};
use crate::store::State;
use crate::types::{
    sha256, Address, Block, BlockId, Commit, CommitSig, ConsensusParams, ExtendedCommit,
    ExtendedCommitSig, Height, PrivateKey, Time, ValidatorSet, Vote, VoteType,
};

pub(crate) const CHAIN_ID: &str = "sync-verify-chain";

pub(crate) fn key(seed: u8) -> PrivateKey {
    PrivateKey::from_seed([seed; 32])
}

/// A chain of real blocks with real signatures: four validators of
/// power 1 (seeds 1..=4).
pub(crate) struct Chain {
    /// The state before each height: `states[i]` is the state the block
    /// at height `i + 1` is validated against.
    pub(crate) states: Vec<State>,
    pub(crate) blocks: Vec<Block>,
    /// The extended commit of each block (extensions when enabled).
    pub(crate) ext_commits: Vec<ExtendedCommit>,
    /// The seed of each validator's key.
    pub(crate) keys: HashMap<Address, u8>,
}

/// Every validator of `vals` whose index is in `signers` precommits
/// `block_id` at `height`, with the key of the seed `seed_of` gives;
/// the others are absent. With `extensions`, precommits carry a signed extension.
pub(crate) fn sign(
    vals: &ValidatorSet,
    height: Height,
    block_id: BlockId,
    after: Time,
    signers: &[usize],
    seed_of: &dyn Fn(&Address) -> u8,
    extensions: bool,
) -> ExtendedCommit {
    let signatures = vals
        .validators
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if !signers.contains(&i) {
                return ExtendedCommitSig::without_extension(CommitSig::Absent);
            }
            let timestamp = Time {
                secs: after.secs + 1 + i as i64,
                nanos: 0,
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
            let k = key(seed_of(&v.address));
            vote.sign(CHAIN_ID, &k);
            if extensions {
                vote.extension = format!("ext-{height}-{i}").into_bytes();
                vote.sign_extension(CHAIN_ID, &k);
            }
            ExtendedCommitSig {
                commit_sig: CommitSig::Commit {
                    validator_address: v.address,
                    timestamp,
                    signature: vote.signature,
                },
                extension: vote.extension,
                extension_signature: vote.extension_signature,
            }
        })
        .collect();
    ExtendedCommit {
        height,
        round: 0,
        block_id,
        signatures,
    }
}

impl Chain {
    /// `len` blocks; vote extensions enabled from `ext_height` (0: never).
    pub(crate) fn build(len: usize, ext_height: i64) -> Chain {
        let genesis = GenesisDoc {
            genesis_time: Time {
                secs: 1_700_000_000,
                nanos: 0,
            },
            chain_id: CHAIN_ID.into(),
            initial_height: 1,
            consensus_params: ConsensusParams {
                vote_extensions_enable_height: ext_height,
                ..ConsensusParams::default()
            },
            validators: (1..=4u8)
                .map(|s| {
                    let pub_key = key(s).public_key();
                    GenesisValidator {
                        address: pub_key.address(),
                        pub_key,
                        power: 1,
                        name: format!("v{s}"),
                    }
                })
                .collect(),
            app_hash: Vec::new(),
            app_state: None,
        };
        let state = genesis_state(&genesis).expect("genesis state");
        let mut state = apply_init_chain(state, &ResponseInitChain::default()).expect("init chain");
        let keys: HashMap<Address, u8> = (1..=4u8)
            .map(|s| (key(s).public_key().address(), s))
            .collect();
        let mut chain = Chain {
            states: Vec::new(),
            blocks: Vec::new(),
            ext_commits: Vec::new(),
            keys,
        };
        let mut last_commit: Option<Commit> = None;
        for i in 0..len {
            let height = next_height(&state);
            let block = make_block(
                &state,
                height,
                vec![format!("tx-{i}").into_bytes()],
                last_commit.clone(),
                Vec::new(),
                state.validators.proposer().address,
                block_time(&state, last_commit.as_ref()),
            );
            let block_id = block.block_id();
            let response = ResponseFinalizeBlock {
                tx_results: vec![ExecTxResult::default()],
                app_hash: sha256(&height.to_be_bytes()).0.to_vec().into(),
                ..Default::default()
            };
            let next = next_state(&state, block_id, &block, &response).expect("next state");
            let ec = sign(
                &state.validators,
                height,
                block_id,
                block.header.time,
                &[0, 1, 2, 3],
                &|a| chain.keys[a],
                state.consensus_params.vote_extensions_enabled(height),
            );
            last_commit = Some(ec.to_commit());
            chain.states.push(state);
            chain.blocks.push(block);
            chain.ext_commits.push(ec);
            state = next;
        }
        chain
    }

    /// The state, block, next block and extended commit at index `i`.
    pub(crate) fn pair(&self, i: usize) -> (&State, Block, Block, Option<ExtendedCommit>) {
        let st = &self.states[i];
        let ec = st
            .consensus_params
            .vote_extensions_enabled(self.blocks[i].header.height)
            .then(|| self.ext_commits[i].clone());
        (st, self.blocks[i].clone(), self.blocks[i + 1].clone(), ec)
    }

    /// `second` with its last commit replaced (header kept consistent,
    /// as a peer forging it would).
    pub(crate) fn with_commit(second: &Block, commit: Commit) -> Block {
        let mut b = second.clone();
        b.last_commit = Some(commit);
        b.fill_header();
        b
    }
}
