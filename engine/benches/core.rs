//! Benchmarks of the hot paths of consensus: signature checks, sign bytes,
//! hashing, part sets, and the state machine itself.
//!
//! Run: `cargo bench -p engine --bench core`.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use engine::consensus::{Config, Consensus, Ed25519Verifier, Input, SignatureVerifier};
use engine::types::{
    Block, BlockId, Hash, Header, PartSet, PrivateKey, Proposal, PublicKey, Signature, Time,
    Validator, ValidatorSet, Version, Vote, VoteType, BLOCK_PART_SIZE,
};

const CHAIN: &str = "bench-chain";

fn header(height: u64) -> Header {
    Header {
        version: Version { block: 11, app: 1 },
        chain_id: CHAIN.into(),
        height,
        time: Time {
            secs: 1_700_000_000,
            nanos: 123_456_789,
        },
        last_block_id: Some(BlockId::default()),
        last_commit_hash: Hash([1; 32]),
        data_hash: Hash([2; 32]),
        validators_hash: Hash([3; 32]),
        next_validators_hash: Hash([4; 32]),
        consensus_hash: Hash([5; 32]),
        app_hash: vec![6; 32],
        last_results_hash: Hash([7; 32]),
        evidence_hash: Hash([8; 32]),
        proposer_address: engine::types::Address([9; 20]),
    }
}

fn vote(key: &PrivateKey, index: u32, t: VoteType, id: Option<BlockId>) -> Vote {
    let mut v = Vote {
        vote_type: t,
        height: 1,
        round: 0,
        block_id: id,
        timestamp: Time {
            secs: 1_700_000_000,
            nanos: index,
        },
        validator_address: key.public_key().address(),
        validator_index: index,
        signature: Signature::default(),
        extension: vec![],
        extension_signature: vec![],
    };
    v.signature = key.sign(&v.sign_bytes(CHAIN));
    v
}

fn signatures(c: &mut Criterion) {
    let key = PrivateKey::from_seed([7; 32]);
    let v = vote(&key, 0, VoteType::Precommit, Some(BlockId::default()));
    let pk = key.public_key();
    let bytes = v.sign_bytes(CHAIN);
    c.bench_function("vote/sign_bytes", |b| b.iter(|| v.sign_bytes(CHAIN)));
    c.bench_function("vote/verify_single", |b| {
        b.iter(|| pk.verify(&bytes, &v.signature).is_ok())
    });
    let mut group = c.benchmark_group("vote/verify_batch");
    for n in [16usize, 64, 150] {
        let keys: Vec<PrivateKey> = (0..n)
            .map(|i| PrivateKey::from_seed([i as u8; 32]))
            .collect();
        let votes: Vec<(PublicKey, Vec<u8>, Signature)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let v = vote(k, i as u32, VoteType::Precommit, Some(BlockId::default()));
                (k.public_key(), v.sign_bytes(CHAIN), v.signature)
            })
            .collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &votes, |b, votes| {
            b.iter(|| {
                let mut batch = ed25519_consensus::batch::Verifier::new();
                for (pk, msg, sig) in votes {
                    let vk = ed25519_consensus::VerificationKeyBytes::from(pk.0);
                    batch.queue((vk, ed25519_consensus::Signature::from(sig.0), msg));
                }
                batch.verify(rand::thread_rng()).is_ok()
            })
        });
    }
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let h = header(42);
    c.bench_function("header/hash", |b| b.iter(|| h.hash()));
}

fn part_sets(c: &mut Criterion) {
    let mut group = c.benchmark_group("part_set");
    group.sample_size(10);
    for mib in [1usize, 20] {
        let data: Vec<u8> = (0..mib * 1024 * 1024)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("build", format!("{mib}MiB")),
            &data,
            |b, d| b.iter(|| PartSet::from_data(d, BLOCK_PART_SIZE)),
        );
        let full = PartSet::from_data(&data, BLOCK_PART_SIZE);
        group.bench_with_input(
            BenchmarkId::new("receive_and_check", format!("{mib}MiB")),
            &full,
            |b, full| {
                b.iter_batched(
                    || {
                        (0..full.count())
                            .filter_map(|i| full.get_part(i).cloned())
                            .collect::<Vec<_>>()
                    },
                    |parts| {
                        let mut rx = PartSet::from_header(full.header);
                        for p in parts {
                            let _ = rx.add_part(p);
                        }
                        rx.is_complete()
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

/// Accepts every signature: isolates the state machine's own cost.
struct TrustAll;
impl SignatureVerifier for TrustAll {
    fn verify(&self, _: &PublicKey, _: &[u8], _: &Signature) -> bool {
        true
    }
}

fn state_machine(c: &mut Criterion) {
    const N: usize = 100;
    let keys: Vec<PrivateKey> = (0..N)
        .map(|i| PrivateKey::from_seed([i as u8 + 1; 32]))
        .collect();
    let vals = ValidatorSet::new(
        keys.iter()
            .map(|k| Validator::new(k.public_key(), 10))
            .collect(),
    )
    .expect("valid set");
    let key_of = |i: usize| {
        let a = vals.validators[i].address;
        keys.iter()
            .find(|k| k.public_key().address() == a)
            .expect("key")
    };
    let proposer = vals
        .get_by_address(&vals.proposer().address)
        .expect("proposer")
        .0 as usize;
    let block = Arc::new(Block {
        header: header(1),
        txs: vec![b"k=v".to_vec()],
        evidence: vec![],
        last_commit: None,
    });
    let id = block.block_id();
    let mut proposal = Proposal {
        height: 1,
        round: 0,
        pol_round: None,
        block_id: id,
        timestamp: Time::default(),
        signature: Signature::default(),
    };
    proposal.signature = key_of(proposer).sign(&proposal.sign_bytes(CHAIN));
    let me = (proposer + 1) % N;
    let mut inputs = vec![
        Input::Proposal(proposal),
        Input::Block {
            block_id: id,
            block,
        },
        Input::BlockValidated {
            height: 1,
            block_id: id,
            valid: true,
        },
    ];
    for t in [VoteType::Prevote, VoteType::Precommit] {
        for i in 0..N {
            inputs.push(Input::Vote(vote(key_of(i), i as u32, t, Some(id))));
        }
    }
    let mut group = c.benchmark_group("state_machine/height_100_validators");
    group.throughput(Throughput::Elements(inputs.len() as u64));
    for (name, verifier) in [
        (
            "ed25519",
            Arc::new(Ed25519Verifier) as Arc<dyn SignatureVerifier>,
        ),
        (
            "logic_only",
            Arc::new(TrustAll) as Arc<dyn SignatureVerifier>,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || inputs.clone(),
                |inputs| {
                    let cfg = Config::new(CHAIN, Some(vals.validators[me].address));
                    let mut core = Consensus::new(cfg, verifier.clone());
                    core.handle(Input::StartHeight {
                        height: 1,
                        validators: vals.clone(),
                        wait_for_txs: false,
                    })
                    .expect("start");
                    let mut decided = false;
                    for i in inputs {
                        if let Ok(out) = core.handle(i) {
                            decided |= out
                                .iter()
                                .any(|o| matches!(o, engine::consensus::Output::Decide { .. }));
                        }
                    }
                    assert!(decided);
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, signatures, hashing, part_sets, state_machine);
criterion_main!(benches);
