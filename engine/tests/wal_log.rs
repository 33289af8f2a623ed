//! The consensus WAL: round trips of every input, replay after an
//! end-of-height marker, torn tails, mid-log corruption and repair,
//! rotation and pruning.

use std::path::Path;
use std::sync::Arc;

use engine::consensus::{Input, TimeoutStep};
use engine::types::{
    Block, BlockId, Hash, Header, PrivateKey, Proposal, Signature, Time, Validator, ValidatorSet,
    Version, Vote, VoteType, BLOCK_PROTOCOL,
};
use engine::wal::{self, Durability, TimedMessage, Wal, WalError, WalMessage, WalOptions};

const CHAIN: &str = "wal-chain";

fn t(secs: i64) -> Time {
    Time {
        secs: 1_700_000_000 + secs,
        nanos: 7,
    }
}

fn key() -> PrivateKey {
    PrivateKey::from_seed([5; 32])
}

fn validators() -> ValidatorSet {
    let mut set = ValidatorSet::new(vec![
        Validator::new(key().public_key(), 10),
        Validator::new(PrivateKey::from_seed([6; 32]).public_key(), 5),
    ])
    .expect("set");
    set.increment_proposer_priority(1);
    set
}

fn block(height: u64, tag: u8) -> Arc<Block> {
    let mut b = Block {
        header: Header {
            version: Version {
                block: BLOCK_PROTOCOL,
                app: 1,
            },
            chain_id: CHAIN.into(),
            height,
            time: t(0),
            last_block_id: None,
            last_commit_hash: Hash::default(),
            data_hash: Hash::default(),
            validators_hash: validators().hash(),
            next_validators_hash: validators().hash(),
            consensus_hash: Hash([1; 32]),
            app_hash: vec![2; 8],
            last_results_hash: Hash([3; 32]),
            evidence_hash: Hash::default(),
            proposer_address: key().public_key().address(),
        },
        txs: vec![vec![tag; 100], b"k=v".to_vec()],
        evidence: vec![],
        last_commit: None,
    };
    b.fill_header();
    Arc::new(b)
}

fn vote(vt: VoteType, height: u64, id: Option<BlockId>) -> Vote {
    let mut v = Vote {
        vote_type: vt,
        height,
        round: 1,
        block_id: id,
        timestamp: t(1),
        validator_address: key().public_key().address(),
        validator_index: 0,
        signature: Signature::default(),
        extension: vec![],
        extension_signature: vec![],
    };
    v.sign(CHAIN, &key());
    v
}

/// One of every input variant, for height `h`.
fn all_inputs(h: u64) -> Vec<Input> {
    let b = block(h, 1);
    let id = b.block_id();
    let mut p = Proposal {
        height: h,
        round: 1,
        pol_round: Some(0),
        block_id: id,
        timestamp: t(2),
        signature: Signature::default(),
    };
    p.sign(CHAIN, &key());
    let mut ext = vote(VoteType::Precommit, h, Some(id));
    ext.extension = b"ext".to_vec();
    ext.sign_extension(CHAIN, &key());
    vec![
        Input::StartHeight {
            height: h,
            validators: validators(),
            wait_for_txs: false,
        },
        Input::StartHeight {
            height: h,
            validators: validators(),
            wait_for_txs: true,
        },
        Input::TxsAvailable { height: h },
        Input::Proposal(p),
        Input::Block {
            block_id: id,
            block: b.clone(),
        },
        Input::Vote(vote(VoteType::Prevote, h, Some(id))),
        Input::Vote(vote(VoteType::Prevote, h, None)),
        Input::Vote(ext),
        Input::Certificate(vec![
            vote(VoteType::Precommit, h, Some(id)),
            vote(VoteType::Precommit, h, Some(id)),
        ]),
        Input::Timeout {
            height: h,
            round: 3,
            step: TimeoutStep::Propose,
        },
        Input::Timeout {
            height: h,
            round: 0,
            step: TimeoutStep::Prevote,
        },
        Input::Timeout {
            height: h,
            round: 2,
            step: TimeoutStep::Precommit,
        },
        Input::Timeout {
            height: h,
            round: 0,
            step: TimeoutStep::NewRound,
        },
        Input::ProposalValue {
            height: h,
            round: 1,
            block: block(h, 2),
        },
        Input::BlockValidated {
            height: h,
            block_id: id,
            valid: false,
        },
    ]
}

/// `Input` has no `PartialEq`; its `Debug` rendering shows every field.
fn same(a: &WalMessage, b: &WalMessage) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn open(dir: &Path) -> (Wal, Option<wal::Truncation>) {
    Wal::open(dir, WalOptions::default(), t(0)).expect("open")
}

fn write_height(w: &mut Wal, h: u64) -> Vec<WalMessage> {
    let msgs: Vec<WalMessage> = all_inputs(h).into_iter().map(WalMessage::Input).collect();
    for (i, m) in msgs.iter().enumerate() {
        let d = if i % 2 == 0 {
            Durability::Buffered
        } else {
            Durability::Sync
        };
        w.append(t(i as i64), m, d).expect("append");
    }
    msgs
}

fn assert_replay(got: &[TimedMessage], want: &[WalMessage]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(same(&g.msg, w), "{:?} != {w:?}", g.msg);
    }
}

#[test]
fn every_input_round_trips_and_replays_after_end_height() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, trunc) = open(dir.path());
    assert_eq!(trunc, None);
    assert_eq!(
        w.last_end_height(),
        Some(0),
        "a fresh log starts at EndHeight(0)"
    );
    let h1 = write_height(&mut w, 1);
    w.append(t(50), &WalMessage::EndHeight(1), Durability::Buffered)
        .expect("end height");
    let h2 = write_height(&mut w, 2);
    drop(w);

    let (mut w, trunc) = open(dir.path());
    assert_eq!(trunc, None);
    assert_eq!(w.last_end_height(), Some(1));
    let after1 = w.replay_after(1).expect("replay").expect("marker");
    assert_replay(&after1, &h2);
    assert_eq!(after1[0].time, t(0));
    let after0 = w.replay_after(0).expect("replay").expect("marker");
    let mut want = h1.clone();
    want.push(WalMessage::EndHeight(1));
    want.extend(h2.iter().cloned());
    assert_replay(&after0, &want);
    assert!(w.replay_after(2).expect("replay").is_none());

    // Appending after reopening continues the same log.
    w.append(t(60), &WalMessage::EndHeight(2), Durability::Sync)
        .expect("end");
    assert!(w
        .replay_after(2)
        .expect("replay")
        .expect("marker")
        .is_empty());
}

#[test]
fn buffered_writes_reach_disk_on_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, _) = open(dir.path());
    let seg = w.segment_paths()[0].clone();
    let before = std::fs::metadata(&seg).expect("meta").len();
    let m = WalMessage::Input(Input::Timeout {
        height: 1,
        round: 0,
        step: TimeoutStep::Propose,
    });
    w.append(t(1), &m, Durability::Buffered).expect("append");
    assert_eq!(
        std::fs::metadata(&seg).expect("meta").len(),
        before,
        "buffered"
    );
    w.flush_and_sync().expect("sync");
    assert!(std::fs::metadata(&seg).expect("meta").len() > before);
    w.append(t(2), &m, Durability::Sync).expect("append");
    let len = std::fs::metadata(&seg).expect("meta").len();
    drop(w);
    assert_eq!(std::fs::metadata(&seg).expect("meta").len(), len);
}

/// Cuts the last record at every byte offset: each time the log opens,
/// reports the truncation, and replays exactly the records before it.
#[test]
fn torn_tail_is_truncated_at_every_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, _) = open(dir.path());
    let msgs = write_height(&mut w, 1);
    let seg = w.segment_paths()[0].clone();
    w.flush_and_sync().expect("sync");
    let before_last = std::fs::metadata(&seg).expect("meta").len();
    let last = WalMessage::Input(Input::Vote(vote(VoteType::Precommit, 1, None)));
    w.append(t(9), &last, Durability::Sync).expect("append");
    drop(w);
    let full = std::fs::read(&seg).expect("read");

    for cut in before_last..full.len() as u64 {
        std::fs::write(&seg, &full[..cut as usize]).expect("write");
        let (mut w, trunc) = open(dir.path());
        if cut == before_last {
            assert_eq!(trunc, None);
        } else {
            let trunc = trunc.expect("truncation reported");
            assert_eq!(
                (trunc.offset, trunc.dropped),
                (before_last, cut - before_last)
            );
            assert_eq!(trunc.path, seg);
        }
        assert_eq!(std::fs::metadata(&seg).expect("meta").len(), before_last);
        let got = w.replay_after(0).expect("replay").expect("marker");
        assert_replay(&got, &msgs);
    }
}

#[test]
fn flipped_bit_or_zeros_in_the_tail_are_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, _) = open(dir.path());
    let msgs = write_height(&mut w, 1);
    let seg = w.segment_paths()[0].clone();
    w.flush_and_sync().expect("sync");
    let before_last = std::fs::metadata(&seg).expect("meta").len() as usize;
    let last = WalMessage::Input(Input::Vote(vote(VoteType::Precommit, 1, None)));
    w.append(t(9), &last, Durability::Sync).expect("append");
    drop(w);
    let full = std::fs::read(&seg).expect("read");

    // A bit flipped anywhere in the last record: header (crc or length) or payload.
    for byte in (before_last..full.len()).step_by(7) {
        let mut bad = full.clone();
        bad[byte] ^= 0x10;
        std::fs::write(&seg, &bad).expect("write");
        let (mut w, trunc) = open(dir.path());
        assert_eq!(
            trunc.expect("truncated").offset,
            before_last as u64,
            "byte {byte}"
        );
        assert_replay(&w.replay_after(0).expect("replay").expect("marker"), &msgs);
    }
    // Zeros after the last record (file size updated, data never written).
    let mut zeros = full.clone();
    zeros.extend_from_slice(&[0; 4096]);
    std::fs::write(&seg, &zeros).expect("write");
    let (_, trunc) = open(dir.path());
    assert_eq!(trunc.expect("truncated").offset, full.len() as u64);
}

#[test]
fn mid_log_corruption_is_an_error_until_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, _) = open(dir.path());
    let msgs = write_height(&mut w, 1);
    let seg = w.segment_paths()[0].clone();
    drop(w);
    let mut bytes = std::fs::read(&seg).expect("read");
    // Damage the payload of the third record (the first two: EndHeight(0)
    // and StartHeight), leaving the records after it intact.
    let mut off = 0usize;
    for _ in 0..2 {
        let len = u32::from_be_bytes(bytes[off + 4..off + 8].try_into().expect("4")) as usize;
        off += 8 + len;
    }
    bytes[off + 12] ^= 0xff;
    std::fs::write(&seg, &bytes).expect("write");

    match Wal::open(dir.path(), WalOptions::default(), t(0)) {
        Err(e @ WalError::Corrupt { .. }) => {
            let WalError::Corrupt { path, offset, .. } = &e else {
                unreachable!()
            };
            assert_eq!((path, *offset), (&seg, off as u64));
            assert!(e.to_string().contains("wal.0000000000"), "{e}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Opening again fails the same way: nothing was silently dropped.
    assert!(matches!(
        Wal::open(dir.path(), WalOptions::default(), t(0)),
        Err(WalError::Corrupt { .. })
    ));

    let repair = wal::repair(dir.path()).expect("repair");
    assert_eq!(repair.truncated, Some((seg.clone(), off as u64)));
    let (mut w, trunc) = open(dir.path());
    assert_eq!(trunc, None);
    assert_replay(
        &w.replay_after(0).expect("replay").expect("marker"),
        &msgs[..1],
    );
}

#[test]
fn corruption_in_an_older_segment_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions {
        segment_size: 2048,
        ..WalOptions::default()
    };
    let (mut w, _) = Wal::open(dir.path(), opts.clone(), t(0)).expect("open");
    for h in 1..=3 {
        write_height(&mut w, h);
    }
    let segs = w.segment_paths();
    assert!(segs.len() >= 3, "rotated: {segs:?}");
    drop(w);
    let first = &segs[0];
    let len = std::fs::metadata(first).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(first)
        .expect("open");
    f.set_len(len - 3).expect("cut");
    drop(f);
    match Wal::open(dir.path(), opts.clone(), t(0)) {
        Err(WalError::Corrupt { path, .. }) => assert_eq!(&path, first),
        other => panic!("expected corruption, got {other:?}"),
    }
    let repair = wal::repair(dir.path()).expect("repair");
    assert_eq!(repair.removed.len(), segs.len() - 1);
    Wal::open(dir.path(), opts, t(0)).expect("open after repair");
}

#[test]
fn rotates_by_size_and_prunes_old_heights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions {
        segment_size: 4096,
        keep_heights: 2,
        ..WalOptions::default()
    };
    let (mut w, _) = Wal::open(dir.path(), opts.clone(), t(0)).expect("open");
    let mut last = Vec::new();
    for h in 1..=12 {
        last = write_height(&mut w, h);
        w.append(t(0), &WalMessage::EndHeight(h), Durability::Sync)
            .expect("end");
    }
    let h13 = write_height(&mut w, 13);
    let segs = w.segment_paths();
    assert!(segs.len() >= 2, "rotated");
    // Old heights are gone, the last few remain replayable.
    assert!(w.replay_after(1).expect("replay").is_none(), "pruned");
    assert!(
        !dir.path().join("wal.0000000000").exists(),
        "first segment pruned"
    );
    assert_replay(&w.replay_after(12).expect("replay").expect("marker"), &h13);
    let after11 = w.replay_after(11).expect("replay").expect("marker");
    assert_eq!(after11.len(), last.len() + 1 + h13.len());
    drop(w);

    // The same holds after reopening, with every segment but the last closed.
    let (mut w, trunc) = Wal::open(dir.path(), opts, t(0)).expect("reopen");
    assert_eq!(trunc, None);
    assert_eq!(w.segment_paths(), segs);
    assert_eq!(w.last_end_height(), Some(12));
    assert_replay(&w.replay_after(12).expect("replay").expect("marker"), &h13);
}

#[test]
fn oversized_records_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, _) = open(dir.path());
    let mut b = (*block(1, 1)).clone();
    b.txs = vec![vec![0; wal::MAX_PAYLOAD_LEN]];
    b.fill_header();
    let big = WalMessage::Input(Input::ProposalValue {
        height: 1,
        round: 0,
        block: Arc::new(b),
    });
    assert!(matches!(
        w.append(t(0), &big, Durability::Sync),
        Err(WalError::RecordTooLarge { .. })
    ));
    // The log is still usable.
    w.append(t(0), &WalMessage::EndHeight(1), Durability::Sync)
        .expect("append");
    drop(w);
    let (mut w, trunc) = open(dir.path());
    assert_eq!(trunc, None);
    assert!(w.replay_after(1).expect("replay").is_some());
}

#[test]
fn a_valid_frame_with_an_invalid_input_is_reported_on_replay() {
    use prost::Message;
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, _) = open(dir.path());
    let seg = w.segment_paths()[0].clone();
    drop(w);
    // A checksummed record whose vote has a 3-byte signature.
    let mut v = tendermint_proto::v0_38::types::Vote::from(vote(VoteType::Prevote, 1, None));
    v.signature = vec![1, 2, 3];
    let rec = wal::record::WalRecord {
        time: Some(t(0).into()),
        msg: Some(wal::record::wal_record::Msg::Vote(v)),
    };
    let mut bytes = std::fs::read(&seg).expect("read");
    let at = bytes.len() as u64;
    bytes.extend(wal::record::frame(&rec.encode_to_vec()));
    std::fs::write(&seg, &bytes).expect("write");
    let (mut w, trunc) = open(dir.path());
    assert_eq!(trunc, None, "the frame itself is sound");
    match w.replay_after(0) {
        Err(WalError::Corrupt { offset, .. }) => assert_eq!(offset, at),
        other => panic!("expected a decoding error, got {other:?}"),
    }
}

#[test]
fn a_log_that_crashed_before_its_first_marker_starts_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("wal.0000000000"), [0u8; 5]).expect("write");
    let (mut w, trunc) = open(dir.path());
    assert_eq!(trunc.expect("torn").dropped, 5);
    assert_eq!(w.last_end_height(), Some(0));
    assert!(w
        .replay_after(0)
        .expect("replay")
        .expect("marker")
        .is_empty());
}

/// A StartHeight written before `wait_for_txs` existed (no field 3)
/// replays as a height that does not wait, which is how those nodes ran;
/// a waiting one keeps its flag through the envelope.
#[test]
fn start_height_without_wait_for_txs_replays_as_not_waiting() {
    use prost::Message;
    use wal::record::{from_record, to_record, wal_record::Msg, StartHeightMsg, WalRecord};

    #[derive(Clone, PartialEq, prost::Message)]
    struct OldStartHeightMsg {
        #[prost(uint64, tag = "1")]
        height: u64,
        #[prost(message, optional, tag = "2")]
        validators: Option<tendermint_proto::v0_38::types::ValidatorSet>,
    }
    let old = OldStartHeightMsg {
        height: 7,
        validators: Some(validators().into()),
    };
    let decoded = StartHeightMsg::decode(old.encode_to_vec().as_slice()).expect("decodes");
    let record = WalRecord {
        time: Some(t(0).into()),
        msg: Some(Msg::StartHeight(decoded)),
    };
    let msg = from_record(record).expect("valid").msg;
    assert!(
        matches!(
            msg,
            WalMessage::Input(Input::StartHeight {
                height: 7,
                wait_for_txs: false,
                ..
            })
        ),
        "{msg:?}"
    );

    let waiting = WalMessage::Input(Input::StartHeight {
        height: 8,
        validators: validators(),
        wait_for_txs: true,
    });
    let bytes = to_record(t(1), &waiting).encode_to_vec();
    let back = from_record(WalRecord::decode(bytes.as_slice()).expect("decodes")).expect("valid");
    assert!(same(&back.msg, &waiting), "{:?}", back.msg);
}

/// A node that leaves consensus for block sync abandons the height it was
/// at, and the blocks it syncs never pass through the WAL. The driver then
/// asks to replay after a height the log never ended: there is nothing for
/// it (so the next height starts fresh), the abandoned height's inputs are
/// never replayed, and the marker the node writes after syncing brings
/// replay and pruning back to the usual path.
#[test]
fn a_height_the_log_never_saw_replays_nothing_and_sync_marks_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, _) = open(dir.path());
    write_height(&mut w, 1);
    w.append(t(50), &WalMessage::EndHeight(1), Durability::Sync)
        .expect("end height");
    // Height 2 started, then the node fell behind and synced to 150.
    write_height(&mut w, 2);
    assert!(w.replay_after(150).expect("replay").is_none());
    drop(w);
    let (mut w, _) = open(dir.path());
    assert!(
        w.replay_after(150).expect("replay").is_none(),
        "nor after a restart"
    );
    // After the catch-up: the end of the synced heights.
    w.append(t(60), &WalMessage::EndHeight(150), Durability::Sync)
        .expect("end height");
    assert!(w
        .replay_after(150)
        .expect("replay")
        .expect("marker")
        .is_empty());
    // The fresh height 151 is what a crash then replays.
    let h151 = write_height(&mut w, 151);
    drop(w);
    let (mut w, _) = open(dir.path());
    assert_eq!(w.last_end_height(), Some(150));
    assert_replay(
        &w.replay_after(150).expect("replay").expect("marker"),
        &h151,
    );
}
