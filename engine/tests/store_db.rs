//! The block and state store: round trips, atomic block saves, reopening,
//! corrupt values, pruning and rollback.

use std::path::Path;

use engine::store::{State, Store, StoreError};
use engine::types::{
    Address, Block, BlockId, Commit, CommitSig, ConsensusParams, ExtendedCommit, ExtendedCommitSig,
    Hash, Header, PrivateKey, Signature, Time, Validator, ValidatorSet, Version, BLOCK_PROTOCOL,
};

const CHAIN: &str = "store-chain";

fn vals() -> ValidatorSet {
    let mut set = ValidatorSet::new(vec![
        Validator::new(PrivateKey::from_seed([1; 32]).public_key(), 10),
        Validator::new(PrivateKey::from_seed([2; 32]).public_key(), 7),
    ])
    .expect("set");
    set.increment_proposer_priority(1);
    set
}

fn time(h: u64) -> Time {
    Time {
        secs: 1_700_000_000 + h as i64,
        nanos: 0,
    }
}

fn app_hash(h: u64) -> Vec<u8> {
    vec![h as u8; 32]
}

fn results_hash(h: u64) -> Hash {
    Hash([h as u8 + 100; 32])
}

fn commit(height: u64, id: BlockId) -> Commit {
    let v = vals();
    Commit {
        height,
        round: 0,
        block_id: id,
        signatures: vec![
            CommitSig::Commit {
                validator_address: v.validators[0].address,
                timestamp: time(height),
                signature: Signature([height as u8; 64]),
            },
            CommitSig::Absent,
        ],
    }
}

/// Blocks 1..=n of a chain, each with its id and a seen commit.
fn chain(n: u64) -> Vec<(Block, BlockId, Commit)> {
    let mut out: Vec<(Block, BlockId, Commit)> = Vec::new();
    for h in 1..=n {
        let prev = out.last().map(|(_, id, _)| *id);
        let mut block = Block {
            header: Header {
                version: Version {
                    block: BLOCK_PROTOCOL,
                    app: 0,
                },
                chain_id: CHAIN.into(),
                height: h,
                time: time(h),
                last_block_id: prev,
                last_commit_hash: Hash::default(),
                data_hash: Hash::default(),
                validators_hash: vals().hash(),
                next_validators_hash: vals().hash(),
                consensus_hash: ConsensusParams::default().hash(),
                app_hash: app_hash(h - 1),
                last_results_hash: results_hash(h - 1),
                evidence_hash: Hash::default(),
                proposer_address: Address([3; 20]),
            },
            txs: vec![vec![h as u8; 10]],
            evidence: vec![],
            last_commit: prev.map(|id| commit(h - 1, id)),
        };
        block.fill_header();
        let id = block.block_id();
        out.push((block, id, commit(h, id)));
    }
    out
}

/// The state after executing block `h` of [`chain`] (validators and
/// params never change).
fn state_after(h: u64, blocks: &[(Block, BlockId, Commit)]) -> State {
    State {
        version: Version {
            block: BLOCK_PROTOCOL,
            app: 0,
        },
        chain_id: CHAIN.into(),
        initial_height: 1,
        last_block_height: h,
        last_block_id: (h > 0).then(|| blocks[h as usize - 1].1),
        last_block_time: time(h),
        next_validators: vals(),
        validators: vals(),
        last_validators: (h > 0).then(vals),
        last_height_validators_changed: 1,
        consensus_params: ConsensusParams::default(),
        last_height_consensus_params_changed: 1,
        last_results_hash: results_hash(h).0.to_vec(),
        app_hash: app_hash(h),
    }
}

fn open(dir: &Path) -> Store {
    Store::open(&dir.join("engine.db")).expect("open")
}

#[test]
fn blocks_round_trip_and_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = chain(3);
    {
        let store = open(dir.path());
        assert_eq!(
            (store.base().expect("b"), store.height().expect("h")),
            (0, 0)
        );
        assert!(store.load_block(1).expect("load").is_none());
        for (b, id, seen) in &blocks {
            store.save_block(b, id, seen).expect("save");
        }
    }
    let store = open(dir.path());
    assert_eq!(
        (store.base().expect("b"), store.height().expect("h")),
        (1, 3)
    );
    assert_eq!(store.size().expect("size"), 3);
    for (i, (b, id, seen)) in blocks.iter().enumerate() {
        let h = i as u64 + 1;
        assert_eq!(store.load_block(h).expect("load").as_ref(), Some(b));
        assert_eq!(
            store.load_block_by_hash(&id.hash).expect("load").as_ref(),
            Some(b)
        );
        assert_eq!(store.block_height_by_hash(&id.hash).expect("h"), Some(h));
        let meta = store.load_block_meta(h).expect("meta").expect("some");
        assert_eq!(meta.block_id, *id);
        assert_eq!(meta.header, b.header);
        assert_eq!(meta.num_txs, 1);
        assert_eq!(meta.block_size, b.to_bytes().len() as u64);
        assert_eq!(
            store.load_seen_commit(h).expect("seen").as_ref(),
            Some(seen)
        );
        // The canonical commit of h comes from block h + 1.
        let canonical = store.load_block_commit(h).expect("commit");
        match blocks.get(i + 1) {
            Some((next, _, _)) => assert_eq!(canonical, next.last_commit),
            None => assert_eq!(canonical, None),
        }
    }
    assert!(store
        .load_block_by_hash(&Hash([0xee; 32]))
        .expect("load")
        .is_none());
}

#[test]
fn block_saves_are_contiguous_checked_and_atomic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let blocks = chain(3);
    let (b1, id1, c1) = &blocks[0];
    let (b3, id3, c3) = &blocks[2];
    store.save_block(b1, id1, c1).expect("save 1");

    // A gap is refused and writes nothing.
    match store.save_block(b3, id3, c3) {
        Err(StoreError::NonContiguous { expected, got }) => assert_eq!((expected, got), (2, 3)),
        other => panic!("expected a gap error, got {other:?}"),
    }
    assert_eq!(store.height().expect("h"), 1);
    assert!(store.load_seen_commit(3).expect("seen").is_none());
    assert!(store.load_block_commit(2).expect("commit").is_none());
    assert!(store.block_height_by_hash(&id3.hash).expect("h").is_none());

    // Mismatched ids and commits are refused and write nothing.
    let (b2, id2, c2) = &blocks[1];
    assert!(matches!(
        store.save_block(b2, id3, c2),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.save_block(b2, id2, c3),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.height().expect("h"), 1);
    assert!(store.load_block_commit(1).expect("commit").is_none());

    // Block, meta, seen commit and the previous canonical commit land together.
    store.save_block(b2, id2, c2).expect("save 2");
    assert!(store.load_block(2).expect("block").is_some());
    assert!(store.load_block_meta(2).expect("meta").is_some());
    assert_eq!(store.load_seen_commit(2).expect("seen").as_ref(), Some(c2));
    assert_eq!(store.load_block_commit(1).expect("commit"), b2.last_commit);
}

#[test]
fn state_and_per_height_records_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = chain(2);
    {
        let store = open(dir.path());
        assert_eq!(store.load_state().expect("state"), None);
        let genesis = state_after(0, &blocks);
        store.save_state(&genesis).expect("save");
        assert_eq!(store.load_state().expect("state"), Some(genesis));
        store.save_state(&state_after(2, &blocks)).expect("save");
    }
    let store = open(dir.path());
    assert_eq!(
        store.load_state().expect("state"),
        Some(state_after(2, &blocks))
    );
    for h in 1..=4 {
        assert_eq!(store.load_validators(h).expect("vals"), Some(vals()), "{h}");
    }
    assert_eq!(store.load_validators(5).expect("vals"), None);
    assert_eq!(
        store.load_consensus_params(3).expect("params"),
        Some(ConsensusParams::default())
    );
    assert_eq!(store.load_consensus_params(4).expect("params"), None);

    use prost::Message;
    use tendermint_proto::v0_38::abci;
    let resp = abci::ResponseFinalizeBlock {
        app_hash: vec![9u8; 32].into(),
        tx_results: vec![abci::ExecTxResult {
            code: 1,
            log: "failed".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    store
        .save_finalize_response(2, &resp.encode_to_vec())
        .expect("save");
    assert_eq!(
        store.load_finalize_response(2).expect("load"),
        Some(resp.encode_to_vec())
    );
    assert_eq!(
        store.load_finalize_response_decoded(2).expect("load"),
        Some(resp)
    );
    assert_eq!(store.load_finalize_response(3).expect("load"), None);

    // Pruning state records keeps those at and above the retain height.
    // Validators 1..=4, params 1 and 3, the response of 2: 1, 2, 3 and params 1 go.
    assert_eq!(store.prune_states(3).expect("prune"), 4);
    assert_eq!(store.load_validators(2).expect("vals"), None);
    assert_eq!(store.load_validators(3).expect("vals"), Some(vals()));
    assert_eq!(store.load_consensus_params(1).expect("params"), None);
    assert!(store.load_consensus_params(3).expect("params").is_some());
    assert_eq!(store.load_finalize_response(2).expect("load"), None);
}

#[test]
fn corrupt_values_are_typed_errors_naming_table_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("engine.db");
    let blocks = chain(2);
    {
        let store = Store::open(&path).expect("open");
        for (b, id, seen) in &blocks {
            store.save_block(b, id, seen).expect("save");
        }
        store.save_state(&state_after(2, &blocks)).expect("state");
    }
    {
        // Overwrite values behind the store's back.
        let db = redb::Database::create(&path).expect("db");
        let txn = db.begin_write().expect("txn");
        {
            let garbage: &[u8] = &[0xff, 0x01, 0x02];
            for table in ["blocks", "block_metas", "seen_commits", "validators"] {
                let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new(table);
                txn.open_table(def)
                    .expect("table")
                    .insert(2, garbage)
                    .expect("insert");
            }
            let state: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("state");
            txn.open_table(state)
                .expect("table")
                .insert("state", garbage)
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let store = Store::open(&path).expect("reopen");
    let check = |r: Result<(), StoreError>, want_table: &str, want_key: &str| match r {
        Err(e @ StoreError::Decode { .. }) => {
            let StoreError::Decode { table, key, .. } = &e else {
                unreachable!()
            };
            assert_eq!((table.as_str(), key.as_str()), (want_table, want_key));
            assert!(e.to_string().contains("engine.db"), "{e}");
        }
        other => panic!("expected a decode error for {want_table}, got {other:?}"),
    };
    check(store.load_block(2).map(|_| ()), "blocks", "2");
    check(store.load_block_meta(2).map(|_| ()), "block_metas", "2");
    check(store.load_seen_commit(2).map(|_| ()), "seen_commits", "2");
    check(store.load_validators(2).map(|_| ()), "validators", "2");
    check(store.load_state().map(|_| ()), "state", "state");
    // Other records still load.
    assert!(store.load_block(1).expect("block 1").is_some());
    // A block that decodes but does not validate is a decode error too.
    let mut bad = blocks[0].0.clone();
    bad.txs.push(b"extra".to_vec());
    let bytes = tendermint_proto::v0_38::types::Block::from(bad);
    drop(store);
    {
        use prost::Message;
        let db = redb::Database::create(&path).expect("db");
        let txn = db.begin_write().expect("txn");
        {
            let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("blocks");
            txn.open_table(def)
                .expect("table")
                .insert(1, bytes.encode_to_vec().as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let store = Store::open(&path).expect("reopen");
    check(store.load_block(1).map(|_| ()), "blocks", "1");
}

/// `seen` with an extension on its precommit for the block.
fn extended(seen: &Commit, h: u64) -> ExtendedCommit {
    let mut ec = ExtendedCommit::from_commit(seen.clone());
    ec.signatures[0].extension = format!("ext-{h}").into_bytes();
    ec.signatures[0].extension_signature = vec![h as u8; 64];
    ec
}

#[test]
fn extended_commits_are_saved_with_their_block_and_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = chain(3);
    {
        let store = open(dir.path());
        // Height 1 predates vote extensions: a plain save keeps no extended commit.
        let (b1, id1, c1) = &blocks[0];
        store.save_block(b1, id1, c1).expect("save 1");
        assert!(store.load_block_extended_commit(1).expect("read").is_none());

        // A precommit for the block without an extension signature is
        // refused, and nothing of the block is written.
        let (b2, id2, c2) = &blocks[1];
        let unsigned = ExtendedCommit::from_commit(c2.clone());
        assert!(matches!(
            store.save_block_with_extended_commit(b2, id2, &unsigned),
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(store.height().expect("h"), 1);
        assert!(store.load_seen_commit(2).expect("seen").is_none());

        for (b, id, seen) in &blocks[1..] {
            let ec = extended(seen, b.header.height);
            store
                .save_block_with_extended_commit(b, id, &ec)
                .expect("save with extensions");
        }
    }
    let store = open(dir.path());
    for (b, _, seen) in &blocks[1..] {
        let h = b.header.height;
        let ec = store
            .load_block_extended_commit(h)
            .expect("read")
            .expect("saved");
        assert_eq!(ec, extended(seen, h));
        assert_eq!(ec.signatures[0].extension, format!("ext-{h}").into_bytes());
        assert_eq!(
            ec.signatures[1],
            ExtendedCommitSig::without_extension(CommitSig::Absent)
        );
        // The seen commit is the same commit without extension data.
        assert_eq!(
            store.load_seen_commit(h).expect("seen").as_ref(),
            Some(seen)
        );
    }

    // Removing the latest block (store one block ahead of the state, hard
    // rollback) removes its extended commit with it; pruning removes the
    // older ones.
    store.save_state(&state_after(2, &blocks)).expect("state");
    store.rollback(true).expect("rollback");
    assert!(store.load_block_extended_commit(3).expect("read").is_none());
    assert_eq!(store.prune_blocks(2).expect("prune"), 1);
    assert!(store.load_block_extended_commit(2).expect("read").is_some());
    assert_eq!(store.height().expect("h"), 2);
}

#[test]
fn pruning_removes_old_blocks_and_their_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let blocks = chain(5);
    for (b, id, seen) in &blocks {
        store.save_block(b, id, seen).expect("save");
    }
    assert!(matches!(store.prune_blocks(0), Err(StoreError::Invalid(_))));
    assert!(matches!(store.prune_blocks(6), Err(StoreError::Invalid(_))));
    assert_eq!(store.prune_blocks(3).expect("prune"), 2);
    assert_eq!(
        (store.base().expect("b"), store.height().expect("h")),
        (3, 5)
    );
    for h in 1..=2 {
        let id = blocks[h - 1].1;
        assert!(store.load_block(h as u64).expect("block").is_none());
        assert!(store.load_block_meta(h as u64).expect("meta").is_none());
        assert!(store.load_seen_commit(h as u64).expect("seen").is_none());
        assert!(store.load_block_commit(h as u64).expect("commit").is_none());
        assert!(store
            .block_height_by_hash(&id.hash)
            .expect("hash")
            .is_none());
    }
    assert!(store.load_block(3).expect("block").is_some());
    assert!(store.load_block_commit(3).expect("commit").is_some());
    assert_eq!(store.prune_blocks(3).expect("again"), 0);
    // Saving continues on top.
    let next = chain(6).pop().expect("block 6");
    store.save_block(&next.0, &next.1, &next.2).expect("save 6");
}

#[test]
fn rollback_restores_the_previous_state_and_optionally_the_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let blocks = chain(4);
    store.save_state(&state_after(0, &blocks)).expect("genesis");
    for (h, (b, id, seen)) in blocks.iter().enumerate().take(3) {
        store.save_block(b, id, seen).expect("save");
        store
            .save_state(&state_after(h as u64 + 1, &blocks))
            .expect("state");
    }
    store
        .save_finalize_response(3, b"resp")
        .expect("finalize response");

    // Soft rollback: the state goes back one height; the block stays.
    let (h, app) = store.rollback(false).expect("rollback");
    assert_eq!((h, app), (2, app_hash(2)));
    assert_eq!(
        store.load_state().expect("state"),
        Some(state_after(2, &blocks))
    );
    assert_eq!(store.height().expect("h"), 3);
    assert_eq!(store.load_finalize_response(3).expect("resp"), None);

    // Store one block ahead of the state: hard rollback removes only that block.
    let (h, app) = store.rollback(true).expect("rollback");
    assert_eq!((h, app), (2, app_hash(2)));
    assert_eq!(store.height().expect("h"), 2);
    assert!(store.load_block(3).expect("block").is_none());
    assert!(store.load_block_commit(2).expect("commit").is_none());
    assert!(store
        .block_height_by_hash(&blocks[2].1.hash)
        .expect("hash")
        .is_none());
    assert_eq!(
        store.load_state().expect("state"),
        Some(state_after(2, &blocks))
    );

    // Hard rollback of state and block together.
    let (h, _) = store.rollback(true).expect("rollback");
    assert_eq!(h, 1);
    assert_eq!(store.height().expect("h"), 1);
    assert_eq!(
        store.load_state().expect("state"),
        Some(state_after(1, &blocks))
    );

    // The first block cannot be rolled back.
    assert!(matches!(store.rollback(false), Err(StoreError::Invalid(_))));

    // The chain continues from there.
    let (b, id, seen) = &blocks[1];
    store.save_block(b, id, seen).expect("re-save 2");
}
