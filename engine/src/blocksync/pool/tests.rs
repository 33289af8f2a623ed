//! Tests of the block pool: unit tests of each rule, a property test that
//! runs the pool against simulated peers (honest, lying, silent, empty)
//! and a model of what it may do, and a scenario with three peers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::types::{Address, Hash, Header, Time, Version, BLOCK_PROTOCOL};

fn peer(n: u8) -> NodeId {
    NodeId([n; 20])
}

/// A block standing for the chain's block at `h` (`good`) or a forgery.
/// Verification in these tests is "both blocks good".
fn block(h: Height, good: bool) -> Block {
    Block {
        header: Header {
            version: Version {
                block: BLOCK_PROTOCOL,
                app: 0,
            },
            chain_id: "pool-test".into(),
            height: h,
            time: Time {
                secs: h as i64,
                nanos: 0,
            },
            last_block_id: None,
            last_commit_hash: Hash::default(),
            data_hash: Hash::default(),
            validators_hash: Hash::default(),
            next_validators_hash: Hash::default(),
            consensus_hash: Hash::default(),
            app_hash: Vec::new(),
            last_results_hash: Hash::default(),
            evidence_hash: Hash::default(),
            proposer_address: Address::default(),
        },
        txs: vec![if good {
            b"good".to_vec()
        } else {
            b"bad".to_vec()
        }],
        evidence: Vec::new(),
        last_commit: None,
    }
}

fn is_good(b: &Block) -> bool {
    b.txs.first().is_some_and(|t| t == b"good")
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn heights_for(reqs: &[(NodeId, Height)], p: NodeId) -> Vec<Height> {
    reqs.iter()
        .filter(|(q, _)| *q == p)
        .map(|(_, h)| *h)
        .collect()
}

// ----- unit tests -------------------------------------------------------

#[test]
fn status_rules_follow_set_peer_range() {
    let t0 = Instant::now();
    let mut pool = BlockPool::new(1, PoolConfig::default());
    assert_eq!(pool.on_status(peer(1), 1, 10, t0), Ok(()));
    assert_eq!(pool.max_peer_height(), 10);
    // Raising is fine, lowering either bound is a fault.
    assert_eq!(pool.on_status(peer(1), 2, 12, t0), Ok(()));
    assert_eq!(
        pool.on_status(peer(1), 2, 11, t0),
        Err(PeerFault::StatusRegressed {
            base: 2,
            height: 11,
            prev_base: 2,
            prev_height: 12
        })
    );
    assert_eq!(pool.num_peers(), 0);
    // Banned for the ban duration, then welcome again.
    assert_eq!(
        pool.on_status(peer(1), 2, 12, secs(t0, 59)),
        Err(PeerFault::Banned)
    );
    assert_eq!(pool.on_status(peer(1), 2, 12, secs(t0, 60)), Ok(()));

    assert_eq!(pool.on_status(peer(2), 1, 20, t0), Ok(()));
    assert_eq!(
        pool.on_status(peer(2), 0, 20, t0),
        Err(PeerFault::StatusRegressed {
            base: 0,
            height: 20,
            prev_base: 1,
            prev_height: 20
        })
    );
    assert_eq!(
        pool.on_status(peer(3), 5, 4, t0),
        Err(PeerFault::BaseAboveHeight { base: 5, height: 4 })
    );
    assert_eq!(pool.on_status(peer(3), 1, 4, t0), Err(PeerFault::Banned));
}

#[test]
fn max_peer_height_ignores_peers_that_pruned_our_height() {
    let t0 = Instant::now();
    let mut pool = BlockPool::new(1, PoolConfig::default());
    pool.on_status(peer(1), 5, 100, t0).expect("valid");
    assert_eq!(pool.max_peer_height(), 0);
    assert!(
        pool.is_caught_up(),
        "CometBFT: with a peer and no usable height, caught up"
    );
    assert!(pool.next_requests(t0).is_empty());
    pool.on_status(peer(2), 1, 8, t0).expect("valid");
    assert_eq!(pool.max_peer_height(), 8);
    assert!(!pool.is_caught_up());
}

#[test]
fn is_caught_up_needs_a_peer_and_the_height_one_below_the_max() {
    let t0 = Instant::now();
    let mut pool = BlockPool::new(1, PoolConfig::default());
    assert!(!pool.is_caught_up(), "no peers");
    pool.on_status(peer(1), 1, 3, t0).expect("valid");
    assert!(!pool.is_caught_up(), "1 < 3 - 1");
    pool.next_requests(t0);
    for h in 1..=3 {
        pool.on_block(peer(1), block(h, true), None, t0)
            .expect("asked");
    }
    pool.pop_verified().expect("block 1");
    assert_eq!(pool.height(), 2);
    assert!(pool.is_caught_up(), "2 >= 3 - 1");
    pool.remove_peer(&peer(1));
    assert!(!pool.is_caught_up(), "no peers again");
}

#[test]
fn requests_respect_ranges_and_the_per_peer_limit() {
    let t0 = Instant::now();
    let mut pool = BlockPool::new(1, PoolConfig::default());
    pool.on_status(peer(1), 1, 100, t0).expect("valid");
    let reqs = pool.next_requests(t0);
    // One peer: a window of 20 heights, each asked once.
    assert_eq!(reqs, (1..=20).map(|h| (peer(1), h)).collect::<Vec<_>>());
    assert!(pool.next_requests(t0).is_empty(), "nothing asked twice");

    // A second peer whose range stops at 10: it is asked the heights it
    // has (the second request for heights near the tip) and the window
    // grows by 20 heights it cannot serve.
    pool.on_status(peer(2), 1, 10, t0).expect("valid");
    let reqs = pool.next_requests(t0);
    assert_eq!(heights_for(&reqs, peer(2)), (1..=10).collect::<Vec<_>>());
    assert!(heights_for(&reqs, peer(1)).is_empty(), "peer 1 is full");

    // Answers free slots; the freed slots go to the lowest waiting heights.
    for h in 1..=5 {
        pool.on_block(peer(1), block(h, true), None, t0)
            .expect("asked");
    }
    let reqs = pool.next_requests(t0);
    assert_eq!(reqs, (21..=25).map(|h| (peer(1), h)).collect::<Vec<_>>());
}

#[test]
fn load_is_spread_over_peers() {
    let t0 = Instant::now();
    let cfg = PoolConfig {
        parallel_window: 0,
        ..PoolConfig::default()
    };
    let mut pool = BlockPool::new(1, cfg);
    for n in 1..=3 {
        pool.on_status(peer(n), 1, 1000, t0).expect("valid");
    }
    let reqs = pool.next_requests(t0);
    assert_eq!(reqs.len(), 60);
    for n in 1..=3 {
        assert_eq!(heights_for(&reqs, peer(n)).len(), 20);
    }
    // Round robin: consecutive heights go to different peers.
    assert_ne!(reqs[0].0, reqs[1].0);
    assert_ne!(reqs[1].0, reqs[2].0);
}

#[test]
fn near_the_tip_two_peers_are_asked_and_both_answers_accepted() {
    let t0 = Instant::now();
    let mut pool = BlockPool::new(1, PoolConfig::default());
    pool.on_status(peer(1), 1, 5, t0).expect("valid");
    pool.on_status(peer(2), 1, 5, t0).expect("valid");
    let reqs = pool.next_requests(t0);
    assert_eq!(reqs.len(), 10, "heights 1..=5, each of both peers");
    assert_eq!(pool.on_block(peer(2), block(1, true), None, t0), Ok(()));
    assert_eq!(pool.on_block(peer(1), block(1, false), None, t0), Ok(()));
    // The first answer is kept.
    pool.on_block(peer(1), block(2, true), None, t0)
        .expect("asked");
    let two = pool.peek_two().expect("1 and 2");
    assert!(is_good(two.first));
    // A third copy from a peer that already answered is unsolicited.
    assert_eq!(
        pool.on_block(peer(2), block(1, true), None, t0),
        Err(PeerFault::Unsolicited { height: 1 })
    );
    assert_eq!(pool.num_peers(), 1);
    assert!(!pool.has_pending_request_from(&peer(2)));
}

#[test]
fn unsolicited_blocks_are_faults() {
    let t0 = Instant::now();
    let mut pool = BlockPool::new(1, PoolConfig::default());
    pool.on_status(peer(1), 1, 100, t0).expect("valid");
    pool.on_status(peer(2), 1, 100, t0).expect("valid");
    pool.on_status(peer(3), 1, 100, t0).expect("valid");
    pool.next_requests(t0);
    // Above the window.
    assert_eq!(
        pool.on_block(peer(1), block(90, true), None, t0),
        Err(PeerFault::Unsolicited { height: 90 })
    );
    // From a peer that is not in the pool.
    assert_eq!(
        pool.on_block(peer(9), block(1, true), None, t0),
        Err(PeerFault::Unsolicited { height: 1 })
    );
    // Wrong extended commit height.
    let mut ec = crate::types::ExtendedCommit::from_commit(crate::types::Commit {
        height: 4,
        round: 0,
        block_id: Default::default(),
        signatures: vec![crate::types::CommitSig::Absent],
    });
    assert!(pool.has_pending_request_from(&peer(2)));
    assert_eq!(
        pool.on_block(peer(2), block(1, true), Some(ec.clone()), t0),
        Err(PeerFault::ExtCommitHeight {
            block: 1,
            ext_commit: 4
        })
    );
    ec.height = 2;
    assert_eq!(pool.num_peers(), 1, "both faulty peers are gone");
    assert!(!pool.has_pending_request_from(&peer(1)));
    assert_eq!(pool.on_status(peer(1), 1, 100, t0), Err(PeerFault::Banned));
    // Peer 3 still answers what it was asked, with a matching commit.
    let asked: Vec<Height> = pool
        .next_requests(t0)
        .into_iter()
        .filter(|(p, _)| *p == peer(3))
        .map(|(_, h)| h)
        .collect();
    assert!(asked.is_empty(), "peer 3 is at its limit");
    assert_eq!(pool.on_block(peer(3), block(2, true), Some(ec), t0), Ok(()));
}

#[test]
fn a_faulty_peer_loses_its_blocks_a_departed_one_keeps_them() {
    let t0 = Instant::now();
    let cfg = PoolConfig {
        parallel_window: 0,
        ..PoolConfig::default()
    };
    let mut pool = BlockPool::new(1, cfg);
    pool.on_status(peer(1), 1, 10, t0).expect("valid");
    pool.on_status(peer(2), 1, 10, t0).expect("valid");
    let reqs = pool.next_requests(t0);
    for (p, h) in &reqs {
        pool.on_block(*p, block(*h, true), None, t0).expect("asked");
    }
    let from_1 = heights_for(&reqs, peer(1));
    pool.remove_peer(&peer(1));
    assert!(pool.peek_two().is_some(), "blocks of a departed peer stay");
    assert!(pool.next_requests(t0).is_empty(), "nothing to ask again");

    // A fault by peer 2 discards its blocks: they are asked again, of the
    // only peer left (peer 3, joining now).
    let from_2 = heights_for(&reqs, peer(2));
    pool.on_status(peer(2), 1, 9, t0).expect_err("regressed");
    pool.on_status(peer(3), 1, 10, t0).expect("valid");
    let again = pool.next_requests(t0);
    assert_eq!(heights_for(&again, peer(3)), from_2);
    assert!(from_1.iter().all(|h| !from_2.contains(h)));
}

#[test]
fn peek_pop_advance_in_order() {
    let t0 = Instant::now();
    let mut pool = BlockPool::new(3, PoolConfig::default());
    pool.on_status(peer(1), 1, 6, t0).expect("valid");
    assert_eq!(
        pool.next_requests(t0),
        (3..=6).map(|h| (peer(1), h)).collect::<Vec<_>>()
    );
    assert!(pool.pop_verified().is_none(), "nothing to pop yet");
    pool.on_block(peer(1), block(4, true), None, t0)
        .expect("asked");
    assert!(pool.peek_two().is_none(), "3 is missing");
    pool.on_block(peer(1), block(3, true), None, t0)
        .expect("asked");
    let two = pool.peek_two().expect("3 and 4");
    assert_eq!((two.first.header.height, two.second.header.height), (3, 4));
    assert!(two.ext_commit.is_none());
    let (b, ec) = pool.pop_verified().expect("3");
    assert_eq!((b.header.height, ec), (3, None));
    assert_eq!(pool.height(), 4);
    assert!(pool.peek_two().is_none(), "5 is missing");
}

#[test]
fn no_block_sends_the_height_elsewhere_and_retries_later() {
    let t0 = Instant::now();
    let cfg = PoolConfig {
        parallel_window: 0,
        ..PoolConfig::default()
    };
    let mut pool = BlockPool::new(1, cfg);
    pool.on_status(peer(1), 1, 1, t0).expect("valid");
    assert_eq!(pool.next_requests(t0), vec![(peer(1), 1)]);
    pool.on_no_block(peer(1), 1, secs(t0, 1));
    assert!(pool.next_requests(secs(t0, 2)).is_empty(), "no one else");
    pool.on_status(peer(2), 1, 1, secs(t0, 3)).expect("valid");
    assert_eq!(pool.next_requests(secs(t0, 3)), vec![(peer(2), 1)]);
    pool.on_no_block(peer(2), 1, secs(t0, 4));
    // No-block answers are forgotten after the retry time.
    assert_eq!(pool.next_requests(secs(t0, 31)), vec![(peer(1), 1)]);
    // An answer to no request changes nothing.
    pool.on_no_block(peer(2), 1, secs(t0, 32));
    assert!(pool.next_requests(secs(t0, 32)).is_empty());
    pool.on_no_block(peer(1), 1, secs(t0, 33));
    assert!(pool.next_requests(secs(t0, 33)).is_empty(), "both refused");
    assert_eq!(pool.next_requests(secs(t0, 34)), vec![(peer(2), 1)]);
}

#[test]
fn an_unanswered_request_is_retried_and_the_late_answer_accepted() {
    let t0 = Instant::now();
    let cfg = PoolConfig {
        parallel_window: 0,
        ..PoolConfig::default()
    };
    let mut pool = BlockPool::new(1, cfg);
    pool.on_status(peer(1), 1, 2, t0).expect("valid");
    pool.on_status(peer(2), 1, 2, t0).expect("valid");
    let first = pool.next_requests(t0);
    assert_eq!(first, vec![(peer(1), 1), (peer(2), 2)]);
    // Peer 1 does not answer height 1 (timeouts are not checked here);
    // peer 2 answers height 2 at once.
    pool.on_block(peer(2), block(2, true), None, secs(t0, 1))
        .expect("asked");
    assert!(pool.next_requests(secs(t0, 29)).is_empty());
    assert_eq!(
        pool.next_requests(secs(t0, 30)),
        vec![(peer(2), 1)],
        "given up on peer 1"
    );
    // Both answers are welcome; the first one counts.
    pool.on_block(peer(1), block(1, false), None, secs(t0, 31))
        .expect("late, still asked");
    pool.on_block(peer(2), block(1, true), None, secs(t0, 31))
        .expect("asked");
    assert!(!is_good(pool.peek_two().expect("1 and 2").first));
}

#[test]
fn silent_peers_time_out_and_delivering_keeps_a_peer_alive() {
    let t0 = Instant::now();
    let cfg = PoolConfig {
        parallel_window: 0,
        ..PoolConfig::default()
    };
    let mut pool = BlockPool::new(1, cfg);
    pool.on_status(peer(1), 1, 100, t0).expect("valid");
    pool.on_status(peer(2), 1, 100, t0).expect("valid");
    pool.on_status(peer(3), 1, 100, t0).expect("valid");
    let reqs = pool.next_requests(t0);
    // Peer 1 delivers one block every 10 s; peer 2 never; peer 3 has
    // nothing outstanding after answering everything.
    let mut from_1 = heights_for(&reqs, peer(1)).into_iter();
    for h in heights_for(&reqs, peer(3)) {
        pool.on_block(peer(3), block(h, true), None, t0)
            .expect("asked");
    }
    for s in [10, 20] {
        let h = from_1.next().expect("asked of peer 1");
        pool.on_block(peer(1), block(h, true), None, secs(t0, s))
            .expect("asked");
        if s == 20 {
            assert_eq!(pool.timeouts(secs(t0, s)), vec![peer(2)]);
        } else {
            assert!(pool.timeouts(secs(t0, s)).is_empty());
        }
    }
    assert!(pool.timeouts(secs(t0, 34)).is_empty());
    assert_eq!(pool.timeouts(secs(t0, 35)), vec![peer(1)]);
    assert_eq!(pool.num_peers(), 1, "peer 3 owes nothing");
    // Timed-out peers are not banned.
    assert_eq!(pool.on_status(peer(2), 1, 100, secs(t0, 36)), Ok(()));
}

#[test]
fn answers_owed_for_synced_heights_count_until_answered() {
    let t0 = Instant::now();
    let cfg = PoolConfig {
        max_pending_per_peer: 2,
        ..PoolConfig::default()
    };
    let mut pool = BlockPool::new(1, cfg);
    pool.on_status(peer(1), 1, 10, t0).expect("valid");
    pool.on_status(peer(2), 1, 10, t0).expect("valid");
    let reqs = pool.next_requests(t0);
    assert_eq!(reqs.len(), 4, "heights 1 and 2 of both");
    for h in [1, 2] {
        pool.on_block(peer(1), block(h, true), None, t0)
            .expect("asked");
    }
    pool.pop_verified().expect("1");
    // Peer 2 still owes height 1 (synced) and 2: it is at its limit.
    assert!(pool.has_pending_request_from(&peer(2)));
    let reqs = pool.next_requests(t0);
    assert!(heights_for(&reqs, peer(2)).is_empty());
    assert_eq!(pool.on_block(peer(2), block(1, true), None, t0), Ok(()));
    assert_eq!(
        pool.on_block(peer(2), block(1, true), None, t0),
        Err(PeerFault::Unsolicited { height: 1 }),
        "owed once, answered once"
    );
}

#[test]
fn invalid_blames_both_senders_and_asks_again() {
    let t0 = Instant::now();
    let cfg = PoolConfig {
        parallel_window: 0,
        ..PoolConfig::default()
    };
    let mut pool = BlockPool::new(1, cfg);
    for n in 1..=3 {
        pool.on_status(peer(n), 1, 30, t0).expect("valid");
    }
    let reqs = pool.next_requests(t0);
    assert_eq!(&reqs[..3], &[(peer(1), 1), (peer(2), 2), (peer(3), 3)]);
    for (p, h) in &reqs {
        pool.on_block(*p, block(*h, *p != peer(2)), None, t0)
            .expect("asked");
    }
    let two = pool.peek_two().expect("1 and 2");
    assert!(!is_good(two.second));
    let blamed = pool.invalid(1, t0);
    assert_eq!(blamed, vec![peer(1), peer(2)]);
    assert_eq!(pool.num_peers(), 1);
    assert_eq!(pool.on_status(peer(2), 1, 30, t0), Err(PeerFault::Banned));
    // Every height peers 1 and 2 delivered is asked of peer 3.
    let again = pool.next_requests(t0);
    let mut lost: Vec<Height> = reqs
        .iter()
        .filter(|(p, _)| *p != peer(3))
        .map(|(_, h)| *h)
        .collect();
    lost.sort_unstable();
    assert_eq!(heights_for(&again, peer(3)), lost[..20].to_vec());
    // Nothing delivered at the height: nobody to blame.
    assert!(pool.invalid(1, t0).is_empty());
}

// ----- a simulated network ---------------------------------------------

/// How a simulated peer answers requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Serves the chain's blocks in its range, "no block" outside.
    Honest,
    /// Serves forged blocks.
    Liar,
    /// Never answers.
    Silent,
    /// Claims a range but answers "no block".
    Empty,
}

#[derive(Clone, Debug)]
struct SimPeer {
    id: NodeId,
    kind: Kind,
    base: Height,
    height: Height,
    connected: bool,
}

#[derive(Clone, Debug)]
enum Answer {
    Block(bool),
    NoBlock,
}

#[derive(Clone, Debug)]
struct Response {
    peer: NodeId,
    height: Height,
    answer: Answer,
}

/// The pool, simulated peers, the messages in flight, and a model of what
/// the pool may do, checked after every step.
struct Sim {
    pool: BlockPool,
    cfg: PoolConfig,
    now: Instant,
    peers: Vec<SimPeer>,
    queue: Vec<Response>,
    delivered: Vec<Response>,
    /// Requests sent and not answered, by peers still in the pool.
    outstanding: BTreeSet<(NodeId, Height)>,
    /// The model's view of the pool's peers and their ranges.
    model_peers: BTreeMap<NodeId, (Height, Height)>,
    /// Which peer's block the pool holds at each height, and whether good.
    holders: BTreeMap<Height, (NodeId, bool)>,
    banned: BTreeMap<NodeId, Instant>,
    /// Peers reported by `invalid`, and by `timeouts`.
    blamed: BTreeSet<NodeId>,
    timed_out: BTreeSet<NodeId>,
    /// Heights asked again after a blame, by the peers asked.
    reasked_after_blame: Vec<(NodeId, Height)>,
    pending_reask: BTreeSet<Height>,
    rng: u64,
}

impl Sim {
    fn new(cfg: PoolConfig, peers: Vec<SimPeer>, seed: u64) -> Sim {
        Sim {
            pool: BlockPool::new(1, cfg.clone()),
            cfg,
            now: Instant::now(),
            peers,
            queue: Vec::new(),
            delivered: Vec::new(),
            outstanding: BTreeSet::new(),
            model_peers: BTreeMap::new(),
            holders: BTreeMap::new(),
            banned: BTreeMap::new(),
            blamed: BTreeSet::new(),
            timed_out: BTreeSet::new(),
            reasked_after_blame: Vec::new(),
            pending_reask: BTreeSet::new(),
            rng: seed | 1,
        }
    }

    fn next_rand(&mut self) -> usize {
        // xorshift64: deterministic delivery order from the seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng as usize
    }

    fn sim_peer(&self, id: NodeId) -> &SimPeer {
        self.peers
            .iter()
            .find(|p| p.id == id)
            .expect("requests go to simulated peers")
    }

    /// The peer leaves the pool, as the pool said (`faulty`) or as the
    /// network did; its connection closes, dropping what it had in flight.
    fn forget(&mut self, id: NodeId, faulty: bool) {
        self.model_peers.remove(&id);
        self.outstanding.retain(|(p, _)| *p != id);
        if faulty {
            self.banned.insert(id, self.now);
            let lost: Vec<Height> = self
                .holders
                .iter()
                .filter(|(_, (p, _))| *p == id)
                .map(|(h, _)| *h)
                .collect();
            for h in lost {
                self.holders.remove(&h);
                self.pending_reask.insert(h);
            }
        }
        self.queue.retain(|r| r.peer != id);
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == id) {
            p.connected = false;
        }
    }

    fn is_banned(&self, id: NodeId) -> bool {
        self.banned
            .get(&id)
            .is_some_and(|at| self.now.saturating_duration_since(*at) < self.cfg.ban_duration)
    }

    /// Peer `i` (re)connects or raises its range and sends its status.
    fn status(&mut self, i: usize, raise: Height) {
        let id = self.peers[i].id;
        self.peers[i].connected = true;
        self.peers[i].height += raise;
        let (base, height) = (self.peers[i].base, self.peers[i].height);
        let known = self.model_peers.contains_key(&id);
        let banned = !known && self.is_banned(id);
        let got = self.pool.on_status(id, base, height, self.now);
        if banned {
            assert_eq!(got, Err(PeerFault::Banned));
            self.peers[i].connected = false;
        } else {
            assert_eq!(got, Ok(()));
            self.model_peers.insert(id, (base, height));
        }
    }

    /// Peer `i` reports a lower height: a fault.
    fn regress(&mut self, i: usize) {
        let id = self.peers[i].id;
        let Some(&(base, height)) = self.model_peers.get(&id) else {
            return;
        };
        if height <= base {
            return;
        }
        let got = self.pool.on_status(id, base, height - 1, self.now);
        assert!(matches!(got, Err(PeerFault::StatusRegressed { .. })));
        self.forget(id, true);
    }

    /// Hands a response to the pool and checks the verdict against the
    /// model: a block is accepted iff it answers an outstanding request.
    fn deliver(&mut self, r: Response) {
        if !self.model_peers.contains_key(&r.peer) {
            return;
        }
        let key = (r.peer, r.height);
        let expected = self.outstanding.contains(&key);
        match r.answer {
            Answer::NoBlock => {
                self.pool.on_no_block(r.peer, r.height, self.now);
                self.outstanding.remove(&key);
            }
            Answer::Block(good) => {
                let got = self
                    .pool
                    .on_block(r.peer, block(r.height, good), None, self.now);
                if expected {
                    assert_eq!(got, Ok(()), "{key:?} answers a request");
                    self.outstanding.remove(&key);
                    if r.height >= self.pool.height() {
                        self.holders.entry(r.height).or_insert((r.peer, good));
                    }
                } else {
                    assert_eq!(
                        got,
                        Err(PeerFault::Unsolicited { height: r.height }),
                        "{key:?} answers nothing"
                    );
                    self.forget(r.peer, true);
                }
            }
        }
        self.delivered.push(r);
    }

    fn deliver_nth(&mut self, n: usize) {
        if self.queue.is_empty() {
            return;
        }
        let r = self.queue.swap_remove(n % self.queue.len());
        self.deliver(r);
    }

    fn duplicate(&mut self, n: usize) {
        if self.delivered.is_empty() {
            return;
        }
        let r = self.delivered[n % self.delivered.len()].clone();
        self.deliver(r);
    }

    /// Peer `i` sends the chain's block at `offset` from the pool's height,
    /// asked or not.
    fn unsolicited(&mut self, i: usize, offset: i64) {
        let h = self.pool.height() as i64 + offset;
        if h < 1 {
            return;
        }
        self.deliver(Response {
            peer: self.peers[i].id,
            height: h as Height,
            answer: Answer::Block(true),
        });
    }

    fn remove(&mut self, i: usize) {
        let id = self.peers[i].id;
        self.pool.remove_peer(&id);
        self.forget(id, false);
    }

    fn tick(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        for id in self.pool.timeouts(self.now) {
            assert!(
                self.outstanding.iter().any(|(p, _)| *p == id),
                "{id:?} timed out owing nothing"
            );
            self.timed_out.insert(id);
            self.forget(id, false);
        }
    }

    /// The node's side: verify and pop what can be, blame what fails, send
    /// new requests; then check the model.
    fn step(&mut self) {
        while let Some(two) = self.pool.peek_two() {
            let h = self.pool.height();
            assert_eq!(two.first.header.height, h);
            assert_eq!(two.second.header.height, h + 1);
            let (good1, good2) = (is_good(two.first), is_good(two.second));
            assert_eq!(self.holders.get(&h).map(|x| x.1), Some(good1));
            assert_eq!(self.holders.get(&(h + 1)).map(|x| x.1), Some(good2));
            if good1 && good2 {
                self.pool.pop_verified().expect("peeked");
                self.holders.remove(&h);
                self.pending_reask.remove(&h);
            } else {
                let blamed = self.pool.invalid(h, self.now);
                let mut expected = vec![self.holders[&h].0];
                let second = self.holders[&(h + 1)].0;
                if second != expected[0] {
                    expected.push(second);
                }
                assert_eq!(blamed, expected, "both senders are blamed");
                for (p, good) in [self.holders[&h], self.holders[&(h + 1)]] {
                    assert!(good || blamed.contains(&p), "the forger is blamed");
                }
                for p in blamed {
                    self.blamed.insert(p);
                    self.forget(p, true);
                }
            }
        }

        let reqs = self.pool.next_requests(self.now);
        for &(p, h) in &reqs {
            let &(base, height) = self.model_peers.get(&p).expect("requests go to pool peers");
            assert!(base <= h && h <= height, "{p:?} has {h} in its range");
            assert!(
                self.outstanding.insert((p, h)),
                "{p:?} asked twice for {h} while the first is unanswered"
            );
            assert!(h >= self.pool.height());
            assert!(h < self.pool.height() + self.cfg.max_window as Height);
            if self.pending_reask.remove(&h) {
                self.reasked_after_blame.push((p, h));
            }
            let sp = self.sim_peer(p);
            let answer = match sp.kind {
                Kind::Silent => continue,
                Kind::Empty => Answer::NoBlock,
                Kind::Liar => Answer::Block(false),
                Kind::Honest if sp.base <= h && h <= sp.height => Answer::Block(true),
                Kind::Honest => Answer::NoBlock,
            };
            self.queue.push(Response {
                peer: p,
                height: h,
                answer,
            });
        }
        self.check();
    }

    fn check(&self) {
        self.pool.check_invariants();
        let mut per_peer: BTreeMap<NodeId, usize> = BTreeMap::new();
        for (p, _) in &self.outstanding {
            *per_peer.entry(*p).or_insert(0) += 1;
        }
        for n in per_peer.values() {
            assert!(*n <= self.cfg.max_pending_per_peer, "per-peer bound");
        }
        assert!(self.holders.len() <= self.cfg.max_window, "blocks held");
        let max = self
            .model_peers
            .values()
            .filter(|(b, _)| *b <= self.pool.height())
            .map(|(_, h)| *h)
            .max()
            .unwrap_or(0);
        assert_eq!(self.pool.max_peer_height(), max);
        assert_eq!(self.pool.num_peers(), self.model_peers.len());
        let caught_up = !self.model_peers.is_empty() && self.pool.height() + 1 >= max;
        assert_eq!(self.pool.is_caught_up(), caught_up, "CometBFT's IsCaughtUp");
        for p in self.model_peers.keys() {
            assert_eq!(
                self.pool.has_pending_request_from(p),
                self.outstanding.iter().any(|(q, _)| q == p)
            );
        }
    }

    /// Runs the network until it is quiet: everything in flight delivered,
    /// time passing, disconnected peers reconnecting every 10 s. Returns
    /// once the pool reaches `target` or after `rounds` seconds.
    fn settle(&mut self, target: Height, rounds: usize) {
        for round in 0..rounds {
            while !self.queue.is_empty() {
                let n = self.next_rand();
                self.deliver_nth(n);
                self.step();
            }
            if self.pool.height() >= target {
                return;
            }
            self.tick(1000);
            if round % 10 == 0 {
                for i in 0..self.peers.len() {
                    // The node keeps a caught forger away for good.
                    let p = &self.peers[i];
                    if !(p.kind == Kind::Liar && self.blamed.contains(&p.id)) {
                        self.status(i, 0);
                    }
                }
            }
            self.step();
        }
    }
}

/// The height the pool can reach with the honest peers' ranges: from
/// height `t` it requests up to the highest height of a peer whose base is
/// at most `t` (CometBFT's rule), and pops `t` once `t` and `t + 1` are
/// both served by honest peers.
fn honest_reach(peers: &[SimPeer]) -> Height {
    let honest = || peers.iter().filter(|p| p.kind == Kind::Honest);
    let covered = |h: Height| honest().any(|p| p.base <= h && h <= p.height);
    let mut t = 1;
    loop {
        let max = honest()
            .filter(|p| p.base <= t)
            .map(|p| p.height)
            .max()
            .unwrap_or(0);
        let start = t;
        while t < max && covered(t) && covered(t + 1) {
            t += 1;
        }
        if t == start {
            return t;
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Deliver(usize),
    Duplicate(usize),
    Tick(u64),
    Status(usize, Height),
    Regress(usize),
    Remove(usize),
    Unsolicited(usize, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Duplicate),
        2 => (0u64..20_000).prop_map(Op::Tick),
        2 => (any::<usize>(), 0u64..5).prop_map(|(i, d)| Op::Status(i, d)),
        1 => any::<usize>().prop_map(Op::Regress),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => (any::<usize>(), -3i64..15).prop_map(|(i, o)| Op::Unsolicited(i, o)),
    ]
}

fn sim_peer() -> impl Strategy<Value = (Kind, Height, Height)> {
    (
        prop_oneof![
            4 => Just(Kind::Honest),
            1 => Just(Kind::Liar),
            1 => Just(Kind::Silent),
            1 => Just(Kind::Empty),
        ],
        1u64..4,
        0u64..40,
    )
        .prop_map(|(kind, base, len)| (kind, base, base + len))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random peers, statuses, delivery orders, duplicates, unsolicited
    /// blocks, removals and time: the pool stays within its bounds, never
    /// asks a peer twice for a height, reports exactly CometBFT's caught-up
    /// state and blames forgers, and once the network settles it has
    /// synced every height honest peers can serve.
    #[test]
    fn the_pool_syncs_what_honest_peers_have(
        peers in proptest::collection::vec(sim_peer(), 1..6),
        ops in proptest::collection::vec(op(), 0..120),
        seed in any::<u64>(),
    ) {
        let cfg = PoolConfig {
            max_pending_per_peer: 4,
            max_window: 12,
            parallel_window: 3,
            ..PoolConfig::default()
        };
        let peers: Vec<SimPeer> = peers
            .into_iter()
            .enumerate()
            .map(|(i, (kind, base, height))| SimPeer {
                id: peer(i as u8 + 1),
                kind,
                base,
                height,
                connected: false,
            })
            .collect();
        let n = peers.len();
        let mut sim = Sim::new(cfg, peers, seed);
        for i in 0..n {
            sim.status(i, 0);
        }
        sim.step();
        for op in ops {
            match op {
                Op::Deliver(k) => sim.deliver_nth(k),
                Op::Duplicate(k) => sim.duplicate(k),
                Op::Tick(ms) => sim.tick(ms),
                Op::Status(i, d) => {
                    let id = sim.peers[i % n].id;
                    if sim.peers[i % n].connected || !sim.model_peers.contains_key(&id) {
                        sim.status(i % n, d);
                    }
                }
                Op::Regress(i) => sim.regress(i % n),
                Op::Remove(i) => sim.remove(i % n),
                Op::Unsolicited(i, o) => sim.unsolicited(i % n, o),
            }
            sim.step();
        }
        let target = honest_reach(&sim.peers);
        sim.settle(target, 2000);
        prop_assert!(
            sim.pool.height() >= target,
            "synced to {} of {}", sim.pool.height(), target
        );
    }
}

/// Three peers with the chain up to 30: one serves forged blocks, one goes
/// silent after a while, one is honest. The forger is blamed (with the
/// honest sender of the block paired with its forgery, as in CometBFT) and
/// the heights it held are asked of others; the silent one times out; the
/// honest peer reconnects once its ban expires and the pool reaches the tip.
#[test]
fn three_peers_one_lies_one_vanishes() {
    let cfg = PoolConfig {
        parallel_window: 0,
        ..PoolConfig::default()
    };
    let sim_peer = |n: u8, kind: Kind| SimPeer {
        id: peer(n),
        kind,
        base: 1,
        height: 30,
        connected: false,
    };
    let peers = vec![
        sim_peer(1, Kind::Honest),
        sim_peer(2, Kind::Liar),
        sim_peer(3, Kind::Honest),
    ];
    let mut sim = Sim::new(cfg, peers, 7);
    for i in 0..3 {
        sim.status(i, 0);
    }
    sim.step();
    // Peer 3 answers its first requests, then vanishes without a word.
    for _ in 0..3 {
        let k = sim
            .queue
            .iter()
            .position(|r| r.peer == peer(3))
            .expect("peer 3 was asked");
        sim.deliver_nth(k);
        sim.step();
    }
    sim.peers[2].kind = Kind::Silent;
    sim.queue.retain(|r| r.peer != peer(3));

    for round in 0..200 {
        while !sim.queue.is_empty() {
            let n = sim.next_rand();
            sim.deliver_nth(n);
            sim.step();
        }
        if sim.pool.is_caught_up() {
            break;
        }
        sim.tick(1000);
        // Only the honest peer comes back (every 10 s, while banned it is
        // refused).
        if round % 10 == 0 && !sim.model_peers.contains_key(&peer(1)) {
            sim.status(0, 0);
        }
        sim.step();
    }
    assert!(sim.blamed.contains(&peer(2)), "the forger is blamed");
    assert_eq!(
        sim.timed_out,
        BTreeSet::from([peer(3)]),
        "the silent peer times out"
    );
    assert!(
        !sim.reasked_after_blame.is_empty()
            && sim.reasked_after_blame.iter().all(|(p, _)| *p != peer(2)),
        "the forger's heights go to other peers: {:?}",
        sim.reasked_after_blame
    );
    assert_eq!(sim.pool.height(), 30, "every block but the tip synced");
    assert!(sim.pool.is_caught_up());
    assert_eq!(
        sim.model_peers.keys().copied().collect::<Vec<_>>(),
        vec![peer(1)]
    );
}
