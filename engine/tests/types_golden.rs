//! Golden vectors produced by real Go nodes: data from a CometBFT v0.38
//! kvstore chain ("dockerchain", one validator) recorded as RPC fixtures in
//! tendermint-rs (rpc/tests/kvstore_fixtures/v0_38/incoming: genesis.json,
//! block_at_height_1.json, block_at_height_10.json, commit_at_height_10.json),
//! and a Tendermint header with its known hash (tendermint-rs
//! tests/support/serialization/block/header_with_known_hash.json).
//!
//! Every value below was computed by Go: block hashes, part set hashes (which
//! cover the whole protobuf encoding of the block), commit hashes,
//! validator-set and consensus-params hashes, and ed25519 signatures over
//! CometBFT's canonical vote sign bytes. Reproducing them proves byte-exact
//! agreement end to end, not just agreement with another reimplementation.

use engine::types::{
    bft_time, Address, Block, BlockId, Commit, CommitSig, ConsensusParams, Hash, Header,
    PartSetHeader, PublicKey, Signature, Time, Validator, ValidatorSet, Version, BLOCK_PROTOCOL,
};

fn h32(s: &str) -> Hash {
    Hash(hex::decode(s).expect("hex").try_into().expect("32 bytes"))
}

fn addr(s: &str) -> Address {
    Address(hex::decode(s).expect("hex").try_into().expect("20 bytes"))
}

fn sig(s: &str) -> Signature {
    Signature(hex::decode(s).expect("hex").try_into().expect("64 bytes"))
}

const CHAIN_ID: &str = "dockerchain";
const EMPTY: &str = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
const VALS_HASH: &str = "33415EFFCEDA5BD0A3A443A727457D9F7B9E38389BF27A936FEDF749A7B7566E";
const CONSENSUS_HASH: &str = "048091BC7DDC283F77BFBF91D73C44DA58C3DF8A9CBC867405D8B7F3DAADA22F";
const PROPOSER: &str = "2DD9F44FD9067555C322243C3C913BA7B51D2BE0";

/// The chain's only validator (genesis.json: power 10).
fn validator_key() -> PublicKey {
    PublicKey(
        hex::decode("6cd3651a5b39476e700b749df3bdb417fdfeec8641857703db630d16d3e4fefd")
            .expect("hex")
            .try_into()
            .expect("32 bytes"),
    )
}

fn header(
    height: u64,
    time: Time,
    last_block_id: Option<BlockId>,
    last_commit_hash: &str,
) -> Header {
    Header {
        version: Version {
            block: BLOCK_PROTOCOL,
            app: 1,
        },
        chain_id: CHAIN_ID.into(),
        height,
        time,
        last_block_id,
        last_commit_hash: h32(last_commit_hash),
        data_hash: h32(EMPTY),
        validators_hash: h32(VALS_HASH),
        next_validators_hash: h32(VALS_HASH),
        consensus_hash: h32(CONSENSUS_HASH),
        app_hash: vec![0; 8],
        last_results_hash: h32(EMPTY),
        evidence_hash: h32(EMPTY),
        proposer_address: addr(PROPOSER),
    }
}

/// The id of block 9, as named by block 10.
fn block_9_id() -> BlockId {
    BlockId {
        hash: h32("678A83FB0422D053A3792154703122861DD68ABB8247A4FF2945DF832DB18FC8"),
        part_set_header: PartSetHeader {
            total: 1,
            hash: h32("29FE32F6B57D8439C9E9F6240B436DD560646FDA8C8C105E2C261B6F4746E89C"),
        },
    }
}

/// The commit for block 9 carried in block 10.
fn commit_9() -> Commit {
    Commit {
        height: 9,
        round: 0,
        block_id: block_9_id(),
        signatures: vec![CommitSig::Commit {
            validator_address: addr(PROPOSER),
            // 2023-05-17T14:12:53.088875124Z
            timestamp: Time {
                secs: 1_684_332_773,
                nanos: 88_875_124,
            },
            signature: sig(
                "04ccb9a41ddaf717849ee0648dafdae8652f3f582e67694c42d658bddae5f2cd\
                 2b8b5fcb685d09b88f6b3accb56e2553bfe4c32b39415d367981d822ab4b8202",
            ),
        }],
    }
}

#[test]
fn validator_set_and_params_hashes_match_the_chain() {
    let key = validator_key();
    assert_eq!(key.address(), addr(PROPOSER));
    let set = ValidatorSet::new(vec![Validator::new(key, 10)]).expect("valid");
    assert_eq!(set.hash(), h32(VALS_HASH));
    // genesis.json has CometBFT's default consensus params.
    assert_eq!(ConsensusParams::default().hash(), h32(CONSENSUS_HASH));
}

/// Block 1 carries the empty last commit and a nil last block id; its hash
/// and its part set hash (over the full protobuf encoding) match Go's.
#[test]
fn initial_block_matches_the_chain() {
    // 2023-05-17T14:12:48.347696215Z (the genesis time).
    let time = Time {
        secs: 1_684_332_768,
        nanos: 347_696_215,
    };
    let block = Block {
        header: header(1, time, None, EMPTY),
        txs: vec![],
        evidence: vec![],
        last_commit: None,
    };
    let mut filled = block.clone();
    filled.fill_header();
    assert_eq!(filled, block);
    assert_eq!(block.validate_basic(), Ok(()));
    assert_eq!(
        block.block_id(),
        BlockId {
            hash: h32("6CD5CF4E23A49D9BC073D6F305D29D1B8B5193B534C237696D42FEA5AFBCD520"),
            part_set_header: PartSetHeader {
                total: 1,
                hash: h32("F021777213F7EF77494C9B5C11D246A6F532DA146D205422D1FB85600F6B479C"),
            },
        }
    );
    assert_eq!(Block::from_bytes(&block.to_bytes()), Ok(block));
}

/// Block 10: header hash, part set hash, last-commit hash, the real
/// signature of the precommit for block 9, and BFT time.
#[test]
fn block_10_matches_the_chain() {
    let commit = commit_9();
    let time = Time {
        secs: 1_684_332_773,
        nanos: 88_875_124,
    };
    let block = Block {
        header: header(
            10,
            time,
            Some(block_9_id()),
            "A3AD467820428D99FD53BFCF38CDC1EB141DD27E3B5F0F3931BBE91FBA8B097D",
        ),
        txs: vec![],
        evidence: vec![],
        last_commit: Some(commit.clone()),
    };
    assert_eq!(commit.hash(), block.header.last_commit_hash);
    assert_eq!(block.validate_basic(), Ok(()));
    let want = BlockId {
        hash: h32("00ECDAC463C201ECD4BDBBAAE4A53A4C80291D4051FD69ED97F6420CE1388BFE"),
        part_set_header: PartSetHeader {
            total: 1,
            hash: h32("FF0A320E696FD233DD4D3CC7CD82FF90F54B8FDBC9C700D9375C95A02782B062"),
        },
    };
    assert_eq!(block.block_id(), want);
    assert_eq!(Block::from_bytes(&block.to_bytes()), Ok(block.clone()));

    // Go signed CanonicalVote bytes that ours reproduce exactly.
    let key = validator_key();
    let vote = commit.get_vote(0).expect("signed");
    assert_eq!(vote.verify(CHAIN_ID, &key), Ok(()));
    assert!(vote.verify("otherchain", &key).is_err());

    // The header time is the median of the last commit (one validator).
    let set = ValidatorSet::new(vec![Validator::new(key, 10)]).expect("valid");
    assert_eq!(bft_time(&commit, &set), block.header.time);
}

/// commit_at_height_10.json: the precommit for block 10 itself.
#[test]
fn commit_10_signature_verifies() {
    let commit = Commit {
        height: 10,
        round: 0,
        block_id: BlockId {
            hash: h32("00ECDAC463C201ECD4BDBBAAE4A53A4C80291D4051FD69ED97F6420CE1388BFE"),
            part_set_header: PartSetHeader {
                total: 1,
                hash: h32("FF0A320E696FD233DD4D3CC7CD82FF90F54B8FDBC9C700D9375C95A02782B062"),
            },
        },
        signatures: vec![CommitSig::Commit {
            validator_address: addr(PROPOSER),
            // 2023-05-17T14:12:53.605374524Z
            timestamp: Time {
                secs: 1_684_332_773,
                nanos: 605_374_524,
            },
            signature: sig(
                "e72d0a6acddb4ab815606fd02b05a8bcca5305f6af65fcbf03c0d79101f31475\
                 4c8ce7159364caeb185841ab1f8a8768add8356e30dfecd0f0362fd876295a03",
            ),
        }],
    };
    let vote = commit.get_vote(0).expect("signed");
    assert_eq!(vote.verify(CHAIN_ID, &validator_key()), Ok(()));
    let mut later = vote.clone();
    later.timestamp.nanos += 1;
    assert!(later.verify(CHAIN_ID, &validator_key()).is_err());
}

/// tendermint-rs header_with_known_hash.json (a Tendermint 0.34 node's
/// header; the header hash is unchanged in CometBFT v0.38).
#[test]
fn known_header_hash() {
    let h = Header {
        version: Version { block: 11, app: 1 },
        chain_id: "dockerchain".into(),
        height: 1608,
        // 2020-09-14T16:33:54.21191421Z
        time: Time {
            secs: 1_600_101_234,
            nanos: 211_914_210,
        },
        last_block_id: Some(BlockId {
            hash: h32("D3B2CC7EDAFF87433A5DBCDCDF4077A56AACDE3606034262B0CDB120F62EB40B"),
            part_set_header: PartSetHeader {
                total: 1,
                hash: h32("3AB411EAFE9A3B7AC013B0214990E5653112A39909289E3EA9211F07B8CD6EED"),
            },
        }),
        last_commit_hash: h32("47071B86EFC28BEC17543967975F35191BA9BEC9C2AD77E86F63B149528D71A1"),
        data_hash: h32(EMPTY),
        validators_hash: h32("5E20520EC80B84044B64BA0C55B1C06D543BBD57955C27B8A9999EC526BF703C"),
        next_validators_hash: h32(
            "5E20520EC80B84044B64BA0C55B1C06D543BBD57955C27B8A9999EC526BF703C",
        ),
        consensus_hash: h32(CONSENSUS_HASH),
        app_hash: vec![0; 8],
        last_results_hash: h32(EMPTY),
        evidence_hash: h32(EMPTY),
        proposer_address: addr("C8657A30D20C3BAD414624A1A963373DD500CCD3"),
    };
    assert_eq!(
        h.hash(),
        h32("F30A71F2409FB15AACAEDB6CC122DFA2525BEE9CAE521721B06BFDCA291B8D56")
    );
}
