//! The file signer: CometBFT's file formats on real files, and the
//! double-sign guard in every case.

use std::path::Path;

use engine::privval::{FilePV, FilePVPaths, Hrs, LastSignState, PrivvalError, SignStep};
use engine::types::{
    Address, BlockId, Hash, PartSetHeader, PrivateKey, Proposal, Signature, Time, Vote, VoteType,
};
use prost::Message;
use tendermint_proto::v0_38::types as pb;

const CHAIN: &str = "test-chain";

fn paths(dir: &Path) -> FilePVPaths {
    FilePVPaths {
        key: dir.join("priv_validator_key.json"),
        state: dir.join("priv_validator_state.json"),
    }
}

fn new_pv(dir: &Path) -> FilePV {
    let pv = FilePV::new(PrivateKey::from_seed([9; 32]), paths(dir));
    pv.save().expect("save");
    pv
}

fn bid(n: u8) -> BlockId {
    BlockId {
        hash: Hash([n; 32]),
        part_set_header: PartSetHeader {
            total: 1,
            hash: Hash([n + 1; 32]),
        },
    }
}

fn t(secs: i64) -> Time {
    Time { secs, nanos: 5 }
}

fn vote(vote_type: VoteType, height: u64, round: u32, block: Option<BlockId>, ts: Time) -> Vote {
    Vote {
        vote_type,
        height,
        round,
        block_id: block,
        timestamp: ts,
        validator_address: Address([1; 20]),
        validator_index: 0,
        signature: Signature::default(),
        extension: Vec::new(),
        extension_signature: Vec::new(),
    }
}

fn proposal(height: u64, round: u32, block: BlockId, ts: Time) -> Proposal {
    Proposal {
        height,
        round,
        pol_round: None,
        block_id: block,
        timestamp: ts,
        signature: Signature::default(),
    }
}

/// A key file written by CometBFT (a public test fixture): the address and
/// public key follow from the 64-byte private key, and we write the same
/// JSON back byte for byte.
#[test]
fn reads_and_writes_a_cometbft_key_file() {
    let json = r#"{
  "address": "A3258DCBF45DCA0DF052981870F2D1441A36D145",
  "pub_key": {
    "type": "tendermint/PubKeyEd25519",
    "value": "AT/+aaL1eB0477Mud9JMm8Sh8BIvOYlPGC9KkIUmFaE="
  },
  "priv_key": {
    "type": "tendermint/PrivKeyEd25519",
    "value": "EVkqJO/jIXp3rkASXfh9YnyToYXRXhBr6g9cQVxPFnQBP/5povV4HTjvsy530kybxKHwEi85iU8YL0qQhSYVoQ=="
  }
}"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = paths(dir.path());
    std::fs::write(&p.key, json).expect("write");
    std::fs::write(
        &p.state,
        "{\n  \"height\": \"0\",\n  \"round\": 0,\n  \"step\": 0\n}",
    )
    .expect("write");
    let pv = FilePV::load(p.clone()).expect("load");
    assert_eq!(
        hex::encode_upper(pv.address().0),
        "A3258DCBF45DCA0DF052981870F2D1441A36D145"
    );
    std::fs::remove_file(&p.key).expect("rm");
    pv.save().expect("save");
    assert_eq!(std::fs::read_to_string(&p.key).expect("read"), json);
    // The initial state CometBFT writes is reproduced exactly, too.
    assert_eq!(
        std::fs::read_to_string(&p.state).expect("read"),
        "{\n  \"height\": \"0\",\n  \"round\": 0,\n  \"step\": 0\n}"
    );
}

/// A state file from a CometBFT node's data directory (the example recorded
/// in a public test): it parses, re-encodes to the same JSON, and its sign
/// bytes are a precommit that our encoder reproduces exactly, so a restart
/// at that step returns the stored signature rather than signing again.
#[test]
fn reads_a_cometbft_state_file_and_honours_it() {
    let sig_b64 =
        "pBNefaWQtXBKXGCmiwdz3SVifEoytgoRD/Ui0JiA7giZYTwInKcLITyZLVHnZ/nbKq8CULoMrLhasAHPsS6HAw==";
    let signbytes = "8301080211240000000000000022480A202B35C46A53F9E93AC38BDF7CAC71CAEBEC3889308BBB6012D848A67FE1756923122408011220530C5626D32F9D0D95E8494396BD510560357439BBC7B2F2F689E1246281A9C72A0C08DCE5EDB50610D2AAABCC03321E6532652D746573742E336636616131326538323736346261613631376637";
    let json = format!(
        "{{\n  \"height\": \"36\",\n  \"round\": 0,\n  \"step\": 3,\n  \"signature\": \"{sig_b64}\",\n  \"signbytes\": \"{signbytes}\"\n}}"
    );
    let state = LastSignState::from_json(Path::new("x"), json.as_bytes()).expect("parse");
    assert_eq!(
        (state.height, state.round, state.step),
        (36, 0, SignStep::Precommit)
    );
    assert_eq!(String::from_utf8(state.to_json()).expect("utf8"), json);

    let raw = hex::decode(signbytes).expect("hex");
    let cv = pb::CanonicalVote::decode_length_delimited(raw.as_slice()).expect("canonical vote");
    let b = cv.block_id.clone().expect("block id");
    let psh = b.part_set_header.expect("psh");
    let block = BlockId {
        hash: Hash(b.hash.try_into().expect("32")),
        part_set_header: PartSetHeader {
            total: psh.total,
            hash: Hash(psh.hash.try_into().expect("32")),
        },
    };
    let ts = cv.timestamp.expect("ts");
    let ts = Time {
        secs: ts.seconds,
        nanos: ts.nanos as u32,
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let p = paths(dir.path());
    FilePV::new(PrivateKey::from_seed([3; 32]), p.clone())
        .save()
        .expect("save");
    std::fs::write(&p.state, &json).expect("write state");
    let mut pv = FilePV::load(p).expect("load");

    let mut same = vote(VoteType::Precommit, 36, 0, Some(block), ts);
    assert_eq!(
        same.sign_bytes(&cv.chain_id),
        raw,
        "our encoder matches Go's"
    );
    pv.sign_vote(&cv.chain_id, &mut same, false)
        .expect("same vote");
    assert_eq!(base64_of(&same.signature), sig_b64);

    let mut later = vote(VoteType::Precommit, 36, 0, Some(block), t(1));
    pv.sign_vote(&cv.chain_id, &mut later, false)
        .expect("differs in time only");
    assert_eq!(later.timestamp, ts);
    assert_eq!(base64_of(&later.signature), sig_b64);

    let mut other = vote(VoteType::Precommit, 36, 0, Some(bid(7)), ts);
    assert!(matches!(
        pv.sign_vote(&cv.chain_id, &mut other, false),
        Err(PrivvalError::Conflict(_))
    ));
    let mut nil = vote(VoteType::Precommit, 36, 0, None, ts);
    assert!(matches!(
        pv.sign_vote(&cv.chain_id, &mut nil, false),
        Err(PrivvalError::Conflict(_))
    ));
}

fn base64_of(s: &Signature) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s.0)
}

#[test]
fn signs_increasing_steps_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pv = new_pv(dir.path());
    let pk = pv.public_key();
    let mut p = proposal(1, 0, bid(1), t(10));
    pv.sign_proposal(CHAIN, &mut p).expect("propose");
    p.verify(CHAIN, &pk).expect("proposal signature");
    for vt in [VoteType::Prevote, VoteType::Precommit] {
        let mut v = vote(vt, 1, 0, Some(bid(1)), t(11));
        v.validator_address = pv.address();
        pv.sign_vote(CHAIN, &mut v, false).expect("vote");
        v.verify(CHAIN, &pk).expect("vote signature");
        assert!(v.extension_signature.is_empty());
    }
    // A later round, then a later height, may start at any step.
    let mut v = vote(VoteType::Prevote, 1, 3, None, t(12));
    pv.sign_vote(CHAIN, &mut v, false).expect("later round");
    let mut v = vote(VoteType::Precommit, 2, 0, None, t(13));
    pv.sign_vote(CHAIN, &mut v, false).expect("later height");
    let s = pv.last_sign_state();
    assert_eq!((s.height, s.round, s.step), (2, 0, SignStep::Precommit));
}

#[test]
fn refuses_every_regression() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pv = new_pv(dir.path());
    let mut v = vote(VoteType::Prevote, 5, 2, Some(bid(1)), t(1));
    pv.sign_vote(CHAIN, &mut v, false).expect("sign");
    let last = Hrs {
        height: 5,
        round: 2,
        step: SignStep::Prevote,
    };
    let cases = [
        (4, 9, SignStep::Precommit), // lower height
        (5, 1, SignStep::Precommit), // lower round
        (5, 2, SignStep::Propose),   // lower step
    ];
    for (h, r, step) in cases {
        let requested = Hrs {
            height: h,
            round: r,
            step,
        };
        let err = if step == SignStep::Propose {
            let mut p = proposal(h, r, bid(1), t(1));
            let err = pv.sign_proposal(CHAIN, &mut p).expect_err("regression");
            assert_eq!(p.signature, Signature::default(), "left unsigned");
            err
        } else {
            let mut v = vote(VoteType::Precommit, h, r, Some(bid(1)), t(1));
            let err = pv.sign_vote(CHAIN, &mut v, false).expect_err("regression");
            assert_eq!(v.signature, Signature::default(), "left unsigned");
            err
        };
        match err {
            PrivvalError::Regression {
                requested: got,
                last: l,
            } => {
                assert_eq!(got, requested);
                assert_eq!(l, last);
            }
            other => panic!("expected a regression, got {other:?}"),
        }
    }
}

#[test]
fn same_step_identical_timestamp_only_or_conflicting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pv = new_pv(dir.path());

    // Votes.
    let mut first = vote(VoteType::Prevote, 3, 0, Some(bid(1)), t(100));
    pv.sign_vote(CHAIN, &mut first, false).expect("first");
    let mut again = vote(VoteType::Prevote, 3, 0, Some(bid(1)), t(100));
    pv.sign_vote(CHAIN, &mut again, false).expect("identical");
    assert_eq!(again, first);
    let mut later = vote(VoteType::Prevote, 3, 0, Some(bid(1)), t(200));
    pv.sign_vote(CHAIN, &mut later, false)
        .expect("timestamp only");
    assert_eq!(later.timestamp, t(100), "stored timestamp reused");
    assert_eq!(later.signature, first.signature);
    let mut other = vote(VoteType::Prevote, 3, 0, Some(bid(2)), t(100));
    assert!(matches!(
        pv.sign_vote(CHAIN, &mut other, false),
        Err(PrivvalError::Conflict(_))
    ));
    assert_eq!(other.signature, Signature::default());
    let mut other_chain = vote(VoteType::Prevote, 3, 0, Some(bid(1)), t(100));
    assert!(matches!(
        pv.sign_vote("other-chain", &mut other_chain, false),
        Err(PrivvalError::Conflict(_))
    ));

    // Proposals.
    let mut p1 = proposal(4, 1, bid(1), t(300));
    pv.sign_proposal(CHAIN, &mut p1).expect("proposal");
    let mut p2 = proposal(4, 1, bid(1), t(300));
    pv.sign_proposal(CHAIN, &mut p2).expect("identical");
    assert_eq!(p2, p1);
    let mut p3 = proposal(4, 1, bid(1), t(301));
    pv.sign_proposal(CHAIN, &mut p3).expect("timestamp only");
    assert_eq!((p3.timestamp, p3.signature), (t(300), p1.signature));
    let mut p4 = proposal(4, 1, bid(1), t(300));
    p4.pol_round = Some(0);
    assert!(matches!(
        pv.sign_proposal(CHAIN, &mut p4),
        Err(PrivvalError::Conflict(_))
    ));
}

#[test]
fn same_step_without_sign_bytes_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = paths(dir.path());
    FilePV::new(PrivateKey::from_seed([1; 32]), p.clone())
        .save()
        .expect("save");
    std::fs::write(&p.state, r#"{"height":"7","round":1,"step":2}"#).expect("write");
    let mut pv = FilePV::load(p).expect("load");
    let mut v = vote(VoteType::Prevote, 7, 1, None, t(1));
    assert!(matches!(
        pv.sign_vote(CHAIN, &mut v, false),
        Err(PrivvalError::NoSignBytes(_))
    ));
    let mut v = vote(VoteType::Precommit, 7, 1, None, t(1));
    pv.sign_vote(CHAIN, &mut v, false)
        .expect("next step is fine");
}

#[test]
fn vote_extensions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pv = new_pv(dir.path());
    let pk = pv.public_key();
    let addr = pv.address();

    let mut v = vote(VoteType::Precommit, 1, 0, Some(bid(1)), t(1));
    v.validator_address = addr;
    v.extension = b"ext".to_vec();
    pv.sign_vote(CHAIN, &mut v, true)
        .expect("extended precommit");
    v.verify_with_extension(CHAIN, &pk)
        .expect("both signatures");

    // A repeat at the same step re-signs a (possibly different) extension.
    let mut again = vote(VoteType::Precommit, 1, 0, Some(bid(1)), t(1));
    again.validator_address = addr;
    again.extension = b"other".to_vec();
    pv.sign_vote(CHAIN, &mut again, true).expect("repeat");
    assert_eq!(again.signature, v.signature);
    again
        .verify_with_extension(CHAIN, &pk)
        .expect("re-signed extension");

    // An empty extension is signed too when extensions are on.
    let mut empty = vote(VoteType::Precommit, 2, 0, Some(bid(1)), t(1));
    empty.validator_address = addr;
    pv.sign_vote(CHAIN, &mut empty, true)
        .expect("empty extension");
    assert_eq!(empty.extension_signature.len(), 64);
    empty.verify_with_extension(CHAIN, &pk).expect("verifies");

    // Nil precommits and prevotes never carry an extension.
    let mut nil = vote(VoteType::Precommit, 3, 0, None, t(1));
    pv.sign_vote(CHAIN, &mut nil, true).expect("nil precommit");
    assert!(nil.extension_signature.is_empty());
    let mut bad = vote(VoteType::Prevote, 4, 0, Some(bid(1)), t(1));
    bad.extension = b"x".to_vec();
    assert!(matches!(
        pv.sign_vote(CHAIN, &mut bad, true),
        Err(PrivvalError::UnexpectedExtension)
    ));
    // Extensions off: an extension would go out unsigned, so it is refused.
    let mut off = vote(VoteType::Precommit, 4, 0, Some(bid(1)), t(1));
    off.extension = b"x".to_vec();
    assert!(matches!(
        pv.sign_vote(CHAIN, &mut off, false),
        Err(PrivvalError::UnexpectedExtension)
    ));
}

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pv = new_pv(dir.path());
    let mut v = vote(VoteType::Precommit, 9, 4, Some(bid(1)), t(1));
    pv.sign_vote(CHAIN, &mut v, false).expect("sign");
    drop(pv);

    let mut pv = FilePV::load(paths(dir.path())).expect("reload");
    let s = pv.last_sign_state();
    assert_eq!((s.height, s.round, s.step), (9, 4, SignStep::Precommit));
    assert_eq!(s.signature, Some(v.signature));
    let mut conflicting = vote(VoteType::Precommit, 9, 4, None, t(1));
    assert!(matches!(
        pv.sign_vote(CHAIN, &mut conflicting, false),
        Err(PrivvalError::Conflict(_))
    ));
    let mut lower = vote(VoteType::Prevote, 9, 4, Some(bid(1)), t(1));
    assert!(matches!(
        pv.sign_vote(CHAIN, &mut lower, false),
        Err(PrivvalError::Regression { .. })
    ));
    let mut same = vote(VoteType::Precommit, 9, 4, Some(bid(1)), t(1));
    pv.sign_vote(CHAIN, &mut same, false)
        .expect("same vote again");
    assert_eq!(same.signature, v.signature);

    // Resetting (unsafe-reset-all) forgets, and says so on disk.
    pv.reset().expect("reset");
    let reloaded = FilePV::load(paths(dir.path())).expect("reload");
    assert_eq!(reloaded.last_sign_state(), &LastSignState::default());
}

#[test]
fn generate_and_load_or_generate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = FilePV::load_or_generate(paths(dir.path())).expect("generate");
    let b = FilePV::load_or_generate(paths(dir.path())).expect("load");
    assert_eq!(a.public_key(), b.public_key());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&paths(dir.path()).key)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let other = tempfile::tempdir().expect("tempdir");
    let c = FilePV::generate(paths(other.path())).expect("generate");
    assert_ne!(a.public_key(), c.public_key(), "keys are random");
}

#[test]
fn bad_files_give_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = paths(dir.path());
    match FilePV::load(p.clone()) {
        Err(PrivvalError::Io { path, .. }) => assert_eq!(path, p.key),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    new_pv(dir.path());
    let states = [
        "",
        "{",
        r#"{"height":"x","round":0,"step":0}"#,
        r#"{"height":"-1","round":0,"step":0}"#,
        r#"{"height":"1","round":-1,"step":0}"#,
        r#"{"height":"1","round":0,"step":4}"#,
        r#"{"height":"1","round":0,"step":1,"signature":"!!"}"#,
        r#"{"height":"1","round":0,"step":1,"signature":"AAAA"}"#,
        r#"{"height":"1","round":0,"step":1,"signbytes":"ABCD"}"#,
        r#"{"height":"1","round":0,"step":1,"signbytes":"XYZ"}"#,
    ];
    for s in states {
        std::fs::write(&p.state, s).expect("write");
        match FilePV::load(p.clone()) {
            Err(PrivvalError::InvalidFile { path, .. }) => assert_eq!(path, p.state, "{s}"),
            other => panic!("{s}: expected an invalid-file error, got {other:?}"),
        }
    }
    // A key file whose parts disagree is refused, not repaired.
    let good = std::fs::read_to_string(&p.key).expect("read");
    let bad_addr = good.replacen("\"address\": \"", "\"address\": \"00", 1);
    for k in [bad_addr, good.replace("PrivKeyEd25519", "PrivKeySecp256k1")] {
        std::fs::write(&p.key, k).expect("write");
        match FilePV::load_empty_state(p.clone()) {
            Err(e @ PrivvalError::InvalidFile { .. }) => {
                assert!(e.to_string().contains("priv_validator_key.json"), "{e}")
            }
            other => panic!("expected an invalid-file error, got {other:?}"),
        }
    }
}

#[test]
fn a_corrupt_stored_sign_bytes_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = paths(dir.path());
    new_pv(dir.path());
    let state = LastSignState {
        height: 2,
        round: 0,
        step: SignStep::Prevote,
        signature: Some(Signature([1; 64])),
        sign_bytes: Some(vec![0xff, 0xff, 0xff]),
    };
    state.save(&p.state).expect("save");
    let mut pv = FilePV::load(p).expect("load");
    let mut v = vote(VoteType::Prevote, 2, 0, None, t(1));
    assert!(matches!(
        pv.sign_vote(CHAIN, &mut v, false),
        Err(PrivvalError::BadStoredSignBytes { .. })
    ));
}
