//! The shared state of a run: validator sets, block ids, the event queue and
//! the network model.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use engine::consensus::TimeoutStep;
use engine::types::{
    txs_hash, Address, Block, BlockId, Hash, Header, Height, PartSetHeader, Round, Time,
    ValidatorSet, Version,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::checks::Recorder;
use super::config::{NetworkConfig, WaitForTxs};
use super::message::Msg;
use super::verifier::MemoVerifier;

/// The transaction a Byzantine proposer slips in; the simulated application
/// rejects any block carrying it (ProcessProposal REJECT).
pub const INVALID_TX: &[u8] = b"invalid";

/// Something that happens at a simulated time.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    Deliver {
        from: usize,
        to: usize,
        msg: Box<Msg>,
    },
    Timeout {
        node: usize,
        epoch: u64,
        height: Height,
        round: Round,
        step: TimeoutStep,
    },
    StartHeight {
        node: usize,
        epoch: u64,
        height: Height,
    },
    /// The node's mempool reports transactions for `height`.
    TxsAvailable {
        node: usize,
        epoch: u64,
        height: Height,
    },
    Gossip,
    /// Gossip mode: `msg` arrives over connection `conn` of the link
    /// from -> to (dropped if that connection has broken since).
    Arrive {
        from: usize,
        to: usize,
        conn: u64,
        msg: Box<Msg>,
    },
    /// Gossip mode: the link a - b, broken as connection `conn`, comes back.
    Reconnect {
        a: usize,
        b: usize,
        conn: u64,
    },
    /// Gossip mode: every node plans for its peers.
    GossipTick,
    /// Gossip mode: every node sends its +2/3 claims.
    Maj23,
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Gst,
}

/// A partition in force during [start, end): nodes on different sides do not
/// hear each other.
#[derive(Clone, Debug)]
pub(crate) struct Partition {
    pub start: u64,
    pub end: u64,
    pub side: Vec<bool>,
}

/// Gossip mode: the connection between two nodes (TCP-like: FIFO in each
/// direction; when it breaks, everything in flight on it is lost).
#[derive(Clone, Debug, Default)]
struct Link {
    /// Connection number, bumped at every break and reconnection; a
    /// message arrives only on the connection it was sent on.
    conn: u64,
    up: bool,
    /// The latest arrival time scheduled in each direction (low to high
    /// index, high to low): a later message never overtakes it.
    last: [u64; 2],
}

/// Gossip mode: before GST each message sent breaks its connection with
/// probability `loss / LOSS_PER_BREAK` (with the default 15% loss, about
/// one message in a hundred).
const LOSS_PER_BREAK: f64 = 16.0;

/// The event queue and the network model.
pub(crate) struct Net {
    pub now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    pub rng: ChaCha8Rng,
    pub cfg: NetworkConfig,
    pub partition: Option<Partition>,
    /// Messages put on the wire so far (including lost ones).
    pub transmissions: u64,
    /// Gossip mode: the connection of each pair (lower index first); empty
    /// in the default mode.
    links: BTreeMap<(usize, usize), Link>,
    /// Gossip mode: links that broke since the runner last looked; both
    /// ends must forget each other.
    pub breaks: Vec<(usize, usize)>,
}

impl Net {
    pub fn new(rng: ChaCha8Rng, cfg: NetworkConfig) -> Self {
        Net {
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            rng,
            cfg,
            partition: None,
            transmissions: 0,
            links: BTreeMap::new(),
            breaks: Vec::new(),
        }
    }

    /// Gossip mode: connects every pair of `n` nodes.
    pub fn connect_all(&mut self, n: usize) {
        for a in 0..n {
            for b in a + 1..n {
                self.links.insert(
                    (a, b),
                    Link {
                        conn: 0,
                        up: true,
                        last: [0; 2],
                    },
                );
            }
        }
    }

    /// Whether the simulation runs in gossip mode (over links).
    pub fn has_links(&self) -> bool {
        !self.links.is_empty()
    }

    fn link(&mut self, a: usize, b: usize) -> &mut Link {
        self.links.entry((a.min(b), a.max(b))).or_default()
    }

    /// Whether the partition separates a and b now; if so, when it heals.
    fn partitioned(&self, a: usize, b: usize) -> Option<u64> {
        let p = self.partition.as_ref()?;
        (self.now >= p.start && self.now < p.end && p.side[a] != p.side[b]).then_some(p.end)
    }

    /// Gossip mode: the link a - b breaks (if up); it comes back at `back`
    /// (never: `None`, e.g. for a crashed node, which reconnects when it
    /// restarts).
    pub fn break_link(&mut self, a: usize, b: usize, back: Option<u64>) {
        let link = self.link(a, b);
        if !link.up {
            return;
        }
        link.up = false;
        link.conn += 1;
        link.last = [0; 2];
        let conn = link.conn;
        self.breaks.push((a, b));
        if let Some(at) = back {
            self.schedule(at, Event::Reconnect { a, b, conn });
        }
    }

    /// Gossip mode: tries to bring the link a - b up (after a break that
    /// was connection `conn`, or any if `None`); returns whether it is now
    /// up and new. Across a partition in force it waits for the healing.
    pub fn reconnect(&mut self, a: usize, b: usize, conn: Option<u64>) -> bool {
        let link = self.link(a, b);
        if link.up || conn.is_some_and(|c| c != link.conn) {
            return false;
        }
        let current = link.conn;
        if let Some(end) = self.partitioned(a, b) {
            self.schedule(
                end,
                Event::Reconnect {
                    a,
                    b,
                    conn: current,
                },
            );
            return false;
        }
        let link = self.link(a, b);
        link.up = true;
        link.conn += 1;
        true
    }

    /// Gossip mode: whether `conn` is the live connection of the link.
    pub fn is_live(&mut self, a: usize, b: usize, conn: u64) -> bool {
        let link = self.link(a, b);
        link.up && link.conn == conn
    }

    /// Gossip mode: puts `msg` on the connection from -> to. A message on a
    /// broken link is lost; one sent across a partition breaks the link
    /// until the partition heals; before GST a message may break the link
    /// (it and everything in flight is lost, the link comes back after a
    /// random delay, at GST at the latest) and is delayed up to the pre-GST
    /// bound (never past GST + delta); after GST it arrives within delta.
    /// Either way it never overtakes an earlier message of the connection.
    fn transmit_on_link(&mut self, from: usize, to: usize, msg: Msg) -> String {
        let now = self.now;
        if !self.link(from, to).up {
            return "lost: connection down".to_string();
        }
        if let Some(end) = self.partitioned(from, to) {
            self.break_link(from, to, Some(end));
            return "cut by partition: connection broken".to_string();
        }
        let gst = self.cfg.gst_ms;
        let delta = self.cfg.delta_ms.max(1);
        let at = if now < gst {
            if self
                .rng
                .gen_bool((self.cfg.loss / LOSS_PER_BREAK).clamp(0.0, 1.0))
            {
                let back =
                    (now + self.rng.gen_range(1..=self.cfg.pre_gst_max_delay_ms.max(1))).min(gst);
                self.break_link(from, to, Some(back.max(now + 1)));
                return "lost: connection broken".to_string();
            }
            let d = self.rng.gen_range(1..=self.cfg.pre_gst_max_delay_ms.max(1));
            (now + d).min(gst + delta)
        } else {
            now + self.rng.gen_range(1..=delta)
        };
        let dir = usize::from(from > to);
        let link = self.link(from, to);
        let at = at.max(link.last[dir]);
        link.last[dir] = at;
        let conn = link.conn;
        self.schedule(
            at,
            Event::Arrive {
                from,
                to,
                conn,
                msg: Box::new(msg),
            },
        );
        format!("arrives at {at}")
    }

    pub fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn pop(&mut self) -> Option<(u64, Event)> {
        let ((t, _), e) = self.queue.pop_first()?;
        self.now = t;
        Some((t, e))
    }

    pub fn after_gst(&self) -> bool {
        self.now >= self.cfg.gst_ms
    }

    /// Puts `msg` on the link from -> to: partitions cut it, before GST it may
    /// be lost, duplicated and delayed arbitrarily (up to the pre-GST bound,
    /// and never past GST + delta); after GST it arrives within delta.
    /// Returns a description for the trace.
    pub fn transmit(&mut self, from: usize, to: usize, msg: Msg) -> String {
        let now = self.now;
        self.transmissions += 1;
        if self.has_links() {
            return self.transmit_on_link(from, to, msg);
        }
        if let Some(p) = &self.partition {
            if now >= p.start && now < p.end && p.side[from] != p.side[to] {
                return "cut by partition".to_string();
            }
        }
        let gst = self.cfg.gst_ms;
        let delta = self.cfg.delta_ms.max(1);
        if now < gst {
            if self.rng.gen_bool(self.cfg.loss) {
                return "lost".to_string();
            }
            let copies = if self.rng.gen_bool(self.cfg.duplicate) {
                2
            } else {
                1
            };
            let mut delays = Vec::new();
            for _ in 0..copies {
                let d = self.rng.gen_range(1..=self.cfg.pre_gst_max_delay_ms.max(1));
                let at = (now + d).min(gst + delta);
                delays.push(at - now);
                self.schedule(
                    at,
                    Event::Deliver {
                        from,
                        to,
                        msg: Box::new(msg.clone()),
                    },
                );
            }
            format!("delay {delays:?}")
        } else {
            let d = self.rng.gen_range(1..=delta);
            self.schedule(
                now + d,
                Event::Deliver {
                    from,
                    to,
                    msg: Box::new(msg),
                },
            );
            format!("delay [{d}]")
        }
    }
}

/// Facts every node shares: the chain, keys, validator sets, block ids and
/// the Byzantine coalition's plan.
pub(crate) struct World {
    pub chain_id: String,
    pub n: usize,
    pub addresses: Vec<Address>,
    pub byzantine: Vec<bool>,
    /// The coalition's split of the network: Byzantine nodes send one version
    /// of a message to `side_a` nodes and another to the rest.
    pub side_a: Vec<bool>,
    /// A subset of side A: the lock breaker's precommits for its value go
    /// only there.
    pub decide_side: Vec<bool>,
    valsets: Vec<ValidatorSet>,
    valset_hashes: Vec<Hash>,
    block_ids: HashMap<usize, (Arc<Block>, BlockId)>,
    /// Blocks of the coalition's equivocating proposals, by (height, round).
    pub byz_blocks: BTreeMap<(Height, Round), (BlockId, BlockId)>,
    /// Lock-breaker attack rounds whose prevotes for v go to the decide side
    /// only (the rest go to all of side A).
    pub narrow_prevotes: BTreeSet<(Height, Round)>,
    pub verifier: Arc<MemoVerifier>,
    pub timeouts: engine::consensus::Timeouts,
    /// Round 0 waits for transactions.
    pub wait_for_txs: Option<WaitForTxs>,
    /// Blocks carry the header hashes of their contents (last commit,
    /// evidence), so that they decode from their parts (gossip mode; the
    /// default mode keeps its historical block ids, and so its seeds).
    pub full_headers: bool,
}

impl World {
    pub fn new(
        chain_id: String,
        addresses: Vec<Address>,
        genesis: ValidatorSet,
        byzantine: Vec<bool>,
        side_a: Vec<bool>,
        decide_side: Vec<bool>,
        timeouts: engine::consensus::Timeouts,
    ) -> Self {
        let n = addresses.len();
        let hash = genesis.hash();
        World {
            chain_id,
            n,
            addresses,
            byzantine,
            side_a,
            decide_side,
            // index 0 is a placeholder so that heights index directly
            valsets: vec![genesis.clone(), genesis],
            valset_hashes: vec![hash, hash],
            block_ids: HashMap::new(),
            byz_blocks: BTreeMap::new(),
            narrow_prevotes: BTreeSet::new(),
            verifier: Arc::new(MemoVerifier::new()),
            timeouts,
            wait_for_txs: None,
            full_headers: false,
        }
    }

    /// Whether round 0 of `height` waits for transactions.
    pub fn waits_for_txs(&self, height: Height) -> bool {
        self.wait_for_txs.is_some() && height > 1
    }

    /// When `node`, starting (or restarting in) a waiting `height` at
    /// `now`, hears of transactions, if ever: the deaf node of the height
    /// (one honest node, in turn) never does.
    pub fn txs_arrival(
        &self,
        rng: &mut ChaCha8Rng,
        node: usize,
        height: Height,
        now: u64,
    ) -> Option<u64> {
        let w = self.wait_for_txs?;
        let within = w.txs_within_ms?;
        if w.one_deaf {
            let honest: Vec<usize> = (0..self.n).filter(|i| !self.byzantine[*i]).collect();
            if !honest.is_empty() && honest[height as usize % honest.len()] == node {
                return None;
            }
        }
        Some(now + rng.gen_range(0..=within))
    }

    fn extend_to(&mut self, height: Height) {
        while self.valsets.len() as u64 <= height {
            let next = self
                .valsets
                .last()
                .map(|v| v.copy_increment_proposer_priority(1))
                .unwrap_or_else(|| self.valsets[0].clone());
            self.valset_hashes.push(next.hash());
            self.valsets.push(next);
        }
    }

    /// The validator set of `height`: genesis, then incremented once per height.
    pub fn valset(&mut self, height: Height) -> &ValidatorSet {
        self.extend_to(height);
        &self.valsets[height as usize]
    }

    fn valset_hash(&mut self, height: Height) -> Hash {
        self.extend_to(height);
        self.valset_hashes[height as usize]
    }

    /// Node index of an address.
    pub fn node_of(&self, addr: &Address) -> Option<usize> {
        self.addresses.iter().position(|a| a == addr)
    }

    /// "n3" for node 3's address, else the short address.
    pub fn name(&self, addr: &Address) -> String {
        match self.node_of(addr) {
            Some(i) => format!("n{i}"),
            None => format!("{addr:?}"),
        }
    }

    /// The block's id, computed once per block.
    pub fn block_id(&mut self, block: &Arc<Block>) -> BlockId {
        let key = Arc::as_ptr(block) as usize;
        if let Some((_, id)) = self.block_ids.get(&key) {
            return *id;
        }
        let id = block.block_id();
        self.block_ids.insert(key, (block.clone(), id));
        id
    }

    /// The simulated application's ProcessProposal.
    pub fn app_accepts(&self, block: &Block, height: Height) -> bool {
        block.header.chain_id == self.chain_id
            && block.header.height == height
            && !block.txs.iter().any(|t| t == INVALID_TX)
    }

    /// Builds a small block with random transactions.
    #[allow(clippy::too_many_arguments)]
    pub fn build_block(
        &mut self,
        rng: &mut ChaCha8Rng,
        height: Height,
        proposer: Address,
        last_block_id: Option<BlockId>,
        now_ms: u64,
        invalid: bool,
    ) -> Arc<Block> {
        let count = rng.gen_range(1..=3);
        let mut txs: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let len = rng.gen_range(4..=8);
                (0..len).map(|_| rng.gen_range(b'a'..=b'z')).collect()
            })
            .collect();
        if invalid {
            txs.push(INVALID_TX.to_vec());
        }
        let header = Header {
            version: Version { block: 11, app: 0 },
            chain_id: self.chain_id.clone(),
            height,
            time: time_of(now_ms),
            last_block_id,
            last_commit_hash: Hash::default(),
            data_hash: txs_hash(&txs),
            validators_hash: self.valset_hash(height),
            next_validators_hash: self.valset_hash(height + 1),
            consensus_hash: Hash::default(),
            app_hash: Vec::new(),
            last_results_hash: Hash::default(),
            evidence_hash: Hash::default(),
            proposer_address: proposer,
        };
        let mut block = Block {
            header,
            txs,
            evidence: Vec::new(),
            last_commit: None,
        };
        if self.full_headers {
            block.fill_header();
        }
        Arc::new(block)
    }

    /// A block id that names no block.
    pub fn random_block_id(rng: &mut ChaCha8Rng) -> BlockId {
        BlockId {
            hash: Hash(rng.gen()),
            part_set_header: PartSetHeader {
                total: 1,
                hash: Hash(rng.gen()),
            },
        }
    }
}

/// The simulated wall clock as a protobuf timestamp.
pub fn time_of(ms: u64) -> Time {
    Time {
        secs: 1_700_000_000 + (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as u32,
    }
}

/// What a node's handler may touch.
pub(crate) struct Ctx<'a> {
    pub net: &'a mut Net,
    pub world: &'a mut World,
    pub rec: &'a mut Recorder,
}

impl Ctx<'_> {
    /// Sends `msg` from -> to through the network, tracing it.
    pub fn send(&mut self, from: usize, to: usize, msg: Msg) {
        if from == to {
            return;
        }
        let summary = if self.rec.tracing() {
            Some(msg.summary(&|a| self.world.name(a)))
        } else {
            None
        };
        let fate = self.net.transmit(from, to, msg);
        if let Some(s) = summary {
            self.rec
                .trace_line(self.net.now, format!("n{from} -> n{to} {s} ({fate})"));
        }
    }

    /// Sends `msg` to every other node.
    pub fn broadcast(&mut self, from: usize, msg: &Msg) {
        for to in 0..self.world.n {
            if to != from {
                self.send(from, to, msg.clone());
            }
        }
    }
}
