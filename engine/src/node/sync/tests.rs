//! Tests of the block sync task's rules: when to sync at all, when we are
//! caught up or fallen behind, what is admitted from peers and what we
//! answer them from a real store.

use prost::Message as _;
use tendermint_proto::v0_38::blocksync as pb;

use super::*;
use crate::blocksync::testchain::{key, Chain};
use crate::types::{Validator, ValidatorSet};

fn addr(seed: u8) -> Address {
    key(seed).public_key().address()
}

/// A state whose validators are `(seed, power)`.
fn state_with(vals: &[(u8, i64)]) -> State {
    let mut st = Chain::build(1, 0).states[0].clone();
    st.validators = ValidatorSet::new(
        vals.iter()
            .map(|(s, p)| Validator::new(key(*s).public_key(), *p))
            .collect(),
    )
    .expect("set");
    st
}

#[test]
fn sync_is_skipped_only_when_it_cannot_help() {
    let alone = state_with(&[(1, 10)]);
    assert_eq!(
        sync_skipped(&alone, &addr(1), true),
        Some(NoSync::OnlyValidator)
    );
    // A full node of a one-validator chain syncs from it.
    assert_eq!(sync_skipped(&alone, &addr(9), true), None);
    assert_eq!(sync_skipped(&alone, &addr(9), false), Some(NoSync::NoPeers));
    let four = state_with(&[(1, 1), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(sync_skipped(&four, &addr(1), true), None);
    assert_eq!(sync_skipped(&four, &addr(1), false), Some(NoSync::NoPeers));
}

#[test]
fn a_third_of_the_power_blocks_the_chain_as_cometbft_computes_it() {
    // CometBFT: power >= total / 3, in integer division.
    let st = state_with(&[(1, 1), (2, 2), (3, 3)]);
    assert!(!local_node_blocks_the_chain(&st, &addr(1)));
    assert!(local_node_blocks_the_chain(&st, &addr(2)));
    assert!(local_node_blocks_the_chain(&st, &addr(3)));
    assert!(!local_node_blocks_the_chain(&st, &addr(9)));
}

#[test]
fn consensus_waits_for_the_last_extended_commit_where_extensions_are_on() {
    let chain = Chain::build(3, 2);
    // Before height 1: nothing to need.
    assert!(!missing_extended_commit(&chain.states[0], || false));
    // After height 1 (extensions off there).
    assert!(!missing_extended_commit(&chain.states[1], || false));
    // After height 2 (extensions on): needed, and only its absence blocks.
    assert!(missing_extended_commit(&chain.states[2], || false));
    assert!(!missing_extended_commit(&chain.states[2], || true));
}

#[test]
fn a_lag_counts_only_when_it_lasts_and_consensus_is_stuck_or_far_behind() {
    let t0 = Instant::now();
    let s = |secs: u64| t0 + Duration::from_secs(secs);
    let mut d = BehindDetector::new(2, Duration::from_secs(5));
    // Two ahead is what the caught-up rule allows: never a lag.
    for i in 0..10 {
        assert!(!d.observe(10, Some(12), 0, s(i)));
    }
    // No peers, no lag.
    assert!(!d.observe(10, None, 0, s(11)));
    // Three ahead and stuck: a lag, reported once it has lasted 5 s.
    assert!(!d.observe(10, Some(13), 0, s(20)));
    assert!(!d.observe(10, Some(14), 0, s(24)));
    assert!(d.observe(10, Some(15), 0, s(25)));
    // Catching up in between starts the count over.
    let mut d = BehindDetector::new(2, Duration::from_secs(5));
    assert!(!d.observe(10, Some(20), 0, s(0)));
    assert!(!d.observe(18, Some(20), 0, s(3)));
    assert!(!d.observe(18, Some(30), 0, s(6)));
    assert!(!d.observe(18, Some(30), 0, s(10)));
    assert!(d.observe(18, Some(30), 0, s(11)));
    d.reset();
    assert!(!d.observe(18, Some(30), 0, s(12)));

    // One peer claiming a huge height while our consensus progresses: no
    // lag, however long it lasts.
    let mut d = BehindDetector::new(2, Duration::from_secs(5));
    for i in 0..60 {
        assert!(!d.observe(100 + i, Some(1_000_000_000), 1, s(i)), "at {i}");
    }
    // It stops progressing: a lag after 5 s without progress.
    assert!(!d.observe(160, Some(1_000_000_000), 1, s(62)));
    assert!(!d.observe(160, Some(1_000_000_000), 1, s(66)));
    assert!(d.observe(160, Some(1_000_000_000), 1, s(67)));
    // Two peers far ahead: a lag even while we progress slowly.
    let mut d = BehindDetector::new(2, Duration::from_secs(5));
    assert!(!d.observe(10, Some(500), 2, s(0)));
    assert!(!d.observe(11, Some(501), 2, s(3)));
    assert!(d.observe(12, Some(502), 2, s(5)));
}

#[test]
fn only_peers_holding_our_next_block_count_as_ahead() {
    let st = |b, h| Status::new(b, h).expect("status");
    let statuses = [st(1, 50), st(30, 500), st(11, 90)];
    // At 10: the peer pruned below 30 cannot serve 11; the one from 11 can.
    assert_eq!(best_peer_height(statuses.iter(), 10), Some(90));
    assert_eq!(best_peer_height(statuses.iter(), 9), Some(50));
    assert_eq!(best_peer_height(statuses.iter(), 29), Some(500));
    assert_eq!(best_peer_height([].iter(), 29), None);
    // The same rule as the pool's, so a catch-up started on a lag has
    // something to sync.
    let mut pool = BlockPool::new(11, PoolConfig::default());
    let now = Instant::now();
    for (i, s) in statuses.iter().enumerate() {
        pool.on_status(NodeId([i as u8; 20]), s.base(), s.height(), now)
            .expect("status");
    }
    assert_eq!(pool.max_peer_height(), 90);
}

fn block_response_bytes_without_block() -> Vec<u8> {
    pb::Message {
        sum: Some(pb::message::Sum::BlockResponse(pb::BlockResponse {
            block: None,
            ext_commit: None,
        })),
    }
    .encode_to_vec()
}

#[test]
fn garbage_and_unsolicited_blocks_are_faults_late_blocks_are_dropped() {
    assert!(admit(&[0xff, 0xff, 0xff], Expect::NotSyncing).is_err());
    assert!(admit(&[], Expect::Pending).is_err());
    let block = block_response_bytes_without_block();
    // Not syncing: a late answer to an earlier sync, dropped undecoded.
    assert_eq!(admit(&block, Expect::NotSyncing), Ok(None));
    // Syncing and asked nothing of this peer: refused undecoded.
    assert_eq!(
        admit(&block, Expect::NotPending),
        Err("unsolicited block response".to_string())
    );
    // Asked: decoded, and this one lacks its block.
    assert!(admit(&block, Expect::Pending)
        .expect_err("no block")
        .contains("without a block"));
    // Other messages are decoded in every mode.
    for expect in [Expect::NotSyncing, Expect::Pending, Expect::NotPending] {
        assert_eq!(
            admit(&SyncMessage::StatusRequest.into_bytes(), expect),
            Ok(Some(SyncMessage::StatusRequest))
        );
        assert_eq!(
            admit(&SyncMessage::BlockRequest(7).into_bytes(), expect),
            Ok(Some(SyncMessage::BlockRequest(7)))
        );
    }
}

#[test]
fn requests_are_answered_from_the_store_with_extended_commits_where_enabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("blockstore.db")).expect("store");
    let enabled = |h: Height| h >= 2;
    let status =
        |store: &Store| answer(store, enabled, &SyncMessage::StatusRequest).expect("store reads");
    assert_eq!(
        status(&store),
        Some(SyncMessage::StatusResponse(
            Status::new(0, 0).expect("status")
        ))
    );
    // Extensions from height 2: height 1 is stored plain, 2 and 3 extended.
    let chain = Chain::build(3, 2);
    for (i, block) in chain.blocks.iter().enumerate() {
        let id = block.block_id();
        let ec = &chain.ext_commits[i];
        if enabled(block.header.height) {
            store
                .save_block_with_extended_commit(block, &id, ec)
                .expect("save");
        } else {
            store.save_block(block, &id, &ec.to_commit()).expect("save");
        }
    }
    assert_eq!(
        status(&store),
        Some(SyncMessage::StatusResponse(
            Status::new(1, 3).expect("status")
        ))
    );
    let response = |h| {
        answer(&store, enabled, &SyncMessage::BlockRequest(h))
            .expect("store reads")
            .expect("an answer")
    };
    assert_eq!(
        response(1),
        SyncMessage::BlockResponse(Box::new(BlockResponse {
            block: chain.blocks[0].clone(),
            ext_commit: None
        }))
    );
    let two = response(2);
    assert_eq!(
        two,
        SyncMessage::BlockResponse(Box::new(BlockResponse {
            block: chain.blocks[1].clone(),
            ext_commit: Some(chain.ext_commits[1].clone())
        }))
    );
    // What goes on the wire decodes to the same answer.
    assert_eq!(SyncMessage::decode(&two.clone().into_bytes()), Ok(two));
    assert_eq!(response(4), SyncMessage::NoBlockResponse(4));
    assert_eq!(response(0), SyncMessage::NoBlockResponse(0));
    // A block stored without the extended commit its height needs: no
    // answer at all (CometBFT), the requester asks someone else.
    assert!(answer(&store, |_| true, &SyncMessage::BlockRequest(1))
        .expect("store reads")
        .is_none());
    // Answers are not answered.
    assert!(answer(
        &store,
        enabled,
        &SyncMessage::StatusResponse(Status::new(1, 3).expect("status"))
    )
    .expect("store reads")
    .is_none());
}
