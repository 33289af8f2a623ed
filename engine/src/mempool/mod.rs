//! The mempool's bookkeeping: transactions the application accepted with
//! CheckTx, in arrival order, with CometBFT's limits (`size`,
//! `max_txs_bytes`, `max_tx_bytes`, `cache_size`), a cache of recently seen
//! transaction hashes so a transaction is checked once, reaping for a
//! proposal within the block's byte and gas limits, and the update after a
//! block (committed transactions leave; the rest are returned for recheck).
//!
//! For gossip, every admitted transaction carries a sequence number (the
//! order of admission, never reused) and the peers it came from, so that a
//! per-peer cursor ([`Mempool::txs_from`]) hands each peer every transaction
//! once, in order, except those the peer sent us. A copy that arrives again
//! while the first is held or still being checked only adds its sender.
//!
//! This module performs no I/O and never calls the application: the node
//! calls CheckTx between [`Mempool::precheck`] and [`Mempool::add_checked`],
//! so a slow application never holds the mempool, and a recheck runs in the
//! background while consensus proceeds.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::config::MempoolConfig;
use crate::p2p::NodeId;
use crate::types::{sha256, Hash, Height};

/// Most senders recorded per transaction. More peers than this sending the
/// same transaction is unusual; one not recorded merely gets the
/// transaction back once.
pub const MAX_SENDERS_PER_TX: usize = 64;

/// Most transactions whose senders are tracked while CheckTx runs on them.
/// Normally one entry per call in flight; the bound holds even if a caller
/// never reports the outcome.
pub const MAX_PENDING_CHECKS: usize = 4096;

/// Why a transaction is not in the mempool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Larger than `max_tx_bytes`.
    #[error("tx too large. Max size is {max}, but got {got}")]
    TooLarge {
        /// The limit.
        max: u64,
        /// The transaction's size.
        got: u64,
    },
    /// `size` or `max_txs_bytes` reached.
    #[error("mempool is full: number of txs {txs} (max: {max_txs}), total txs bytes {bytes} (max: {max_bytes})")]
    Full {
        /// Transactions held.
        txs: u64,
        /// The count limit.
        max_txs: u64,
        /// Bytes held.
        bytes: u64,
        /// The byte limit.
        max_bytes: u64,
    },
    /// Seen recently (in the mempool or the cache).
    #[error("tx already exists in cache")]
    InCache,
    /// An empty transaction.
    #[error("tx is empty")]
    Empty,
}

/// A transaction held by the mempool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolTx {
    /// The bytes.
    pub tx: Arc<Vec<u8>>,
    /// sha256 of the bytes (CometBFT's tx hash).
    pub hash: Hash,
    /// Gas the application asked for in CheckTx.
    pub gas_wanted: i64,
    /// Height at which it was accepted.
    pub height: Height,
    /// The last block whose state its latest passing CheckTx ran against
    /// (admission or recheck). With `recheck` on, only transactions
    /// checked against the current state are reaped.
    pub checked_at: Height,
}

/// The peers a transaction came from, at most [`MAX_SENDERS_PER_TX`] (a
/// handful in practice, so a vector beats a set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Senders(Vec<NodeId>);

impl Senders {
    fn add(&mut self, peer: NodeId) {
        if self.0.len() < MAX_SENDERS_PER_TX && !self.0.contains(&peer) {
            self.0.push(peer);
        }
    }

    fn add_all(&mut self, other: Senders) {
        for p in other.0 {
            self.add(p);
        }
    }

    fn contains(&self, peer: &NodeId) -> bool {
        self.0.contains(peer)
    }
}

/// A transaction CheckTx is running on.
#[derive(Debug, Default)]
struct Pending {
    senders: Senders,
    /// A block committed it meanwhile: the verdict must not admit it.
    committed: bool,
}

/// A held transaction and who sent it to us.
#[derive(Debug)]
struct Entry {
    tx: MempoolTx,
    senders: Senders,
}

/// A transaction as a peer's gossip cursor sees it
/// ([`Mempool::txs_from`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipTx {
    /// Its admission sequence number; the cursor moves past it.
    pub seq: u64,
    /// The bytes.
    pub tx: Arc<Vec<u8>>,
    /// Whether the peer asked about sent it to us (then it is not sent
    /// back).
    pub from_peer: bool,
}

/// A fixed-size set of recent hashes; the oldest leaves first. Removal is
/// O(1): the queue may hold stale entries (a generation that no longer
/// matches), skipped on eviction and compacted when they pile up.
#[derive(Debug, Default)]
struct Cache {
    cap: usize,
    live: HashMap<Hash, u64>,
    order: VecDeque<(Hash, u64)>,
    generation: u64,
}

impl Cache {
    fn new(cap: usize) -> Self {
        Cache {
            cap,
            ..Cache::default()
        }
    }

    /// Inserts; false when already present.
    fn push(&mut self, h: Hash) -> bool {
        if self.cap == 0 {
            return true;
        }
        if self.live.contains_key(&h) {
            return false;
        }
        self.generation += 1;
        self.live.insert(h, self.generation);
        self.order.push_back((h, self.generation));
        while self.live.len() > self.cap {
            match self.order.pop_front() {
                Some((old, g)) if self.live.get(&old) == Some(&g) => {
                    self.live.remove(&old);
                }
                Some(_) => {} // stale entry of a removed hash
                None => break,
            }
        }
        if self.order.len() > 2 * self.cap + 16 {
            let live = &self.live;
            self.order.retain(|(h, g)| live.get(h) == Some(g));
        }
        true
    }

    fn remove(&mut self, h: &Hash) {
        self.live.remove(h);
    }
}

/// Protobuf size of `Data { txs: [tx] }`: what one transaction adds to a
/// block (CometBFT's `ComputeProtoSizeForTxs`).
pub fn proto_size(tx: &[u8]) -> u64 {
    let len = tx.len() as u64;
    let varint = (64 - len.max(1).leading_zeros() as u64).div_ceil(7);
    1 + varint + len
}

/// The mempool.
#[derive(Debug)]
pub struct Mempool {
    config: MempoolConfig,
    /// Admission sequence -> transaction (FIFO order). Sequence numbers
    /// only grow, so a gossip cursor stays valid across removals.
    txs: BTreeMap<u64, Entry>,
    by_hash: HashMap<Hash, u64>,
    next_seq: u64,
    /// Transactions between `precheck` and `add_checked` (CheckTx
    /// running), at most [`MAX_PENDING_CHECKS`].
    pending: HashMap<Hash, Pending>,
    bytes: u64,
    cache: Cache,
    height: Height,
    /// Transactions were reported available since the last `update`
    /// (CometBFT's notifiedTxsAvailable): consensus hears it once per height.
    txs_reported: bool,
}

impl Mempool {
    /// An empty mempool with the given limits, at `height` (the last
    /// committed height).
    pub fn new(config: MempoolConfig, height: Height) -> Self {
        let cache = Cache::new(config.cache_size as usize);
        Mempool {
            config,
            txs: BTreeMap::new(),
            by_hash: HashMap::new(),
            next_seq: 0,
            pending: HashMap::new(),
            bytes: 0,
            cache,
            height,
            txs_reported: false,
        }
    }

    /// The last committed height (the one of the last `update`).
    pub fn height(&self) -> Height {
        self.height
    }

    /// Whether to tell consensus now that transactions are available for
    /// the next height: true the first time per height (between two
    /// [`Mempool::update`]s) that the pool is not empty, false after.
    /// Call it after each accepted transaction and after `update` (CometBFT's
    /// notifyTxsAvailable): a round 0 waiting for transactions
    /// (`create_empty_blocks = false`) proposes on the first notice, and
    /// one notice per height keeps a flood of txs from waking it per tx.
    pub fn notify_txs_available(&mut self) -> bool {
        if self.txs_reported || self.txs.is_empty() {
            return false;
        }
        self.txs_reported = true;
        true
    }

    /// The height transactions were reported available for (the last
    /// committed height + 1), or `None` if none were since the last update.
    /// Consensus checks it when a height starts waiting, so a notice sent
    /// before the height started is not lost.
    pub fn txs_available_for(&self) -> Option<Height> {
        (self.txs_reported || !self.txs.is_empty()).then(|| self.height.saturating_add(1))
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Total bytes of the transactions.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The transactions in order (for `unconfirmed_txs`).
    pub fn iter(&self) -> impl Iterator<Item = &MempoolTx> {
        self.txs.values().map(|e| &e.tx)
    }

    /// The sequence number the next admitted transaction will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// A gossip cursor's next step: up to `limit` held transactions with
    /// sequence number `>= next`, in admission order, each flagged with
    /// whether `peer` sent it. The cursor continues from the last `seq` + 1;
    /// transactions removed meanwhile are simply not returned, and ones
    /// admitted later have higher numbers, so each reaches the cursor once.
    pub fn txs_from(&self, next: u64, peer: &NodeId, limit: usize) -> Vec<GossipTx> {
        self.txs
            .range(next..)
            .take(limit)
            .map(|(seq, e)| GossipTx {
                seq: *seq,
                tx: e.tx.tx.clone(),
                from_peer: e.senders.contains(peer),
            })
            .collect()
    }

    /// Whether `peer` is recorded as a sender of the held transaction
    /// `hash`.
    pub fn is_sender(&self, hash: &Hash, peer: &NodeId) -> bool {
        self.by_hash
            .get(hash)
            .and_then(|seq| self.txs.get(seq))
            .is_some_and(|e| e.senders.contains(peer))
    }

    /// True when `hash` is held.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    fn full_error(&self) -> MempoolError {
        MempoolError::Full {
            txs: self.txs.len() as u64,
            max_txs: self.config.size,
            bytes: self.bytes,
            max_bytes: self.config.max_txs_bytes,
        }
    }

    fn has_room_for(&self, size: u64) -> bool {
        (self.txs.len() as u64) < self.config.size
            && self.bytes.saturating_add(size) <= self.config.max_txs_bytes
    }

    /// The checks before CheckTx: size, room, and not seen recently. On
    /// success the hash enters the cache, so a second copy arriving while
    /// the first is being checked is refused (as in CometBFT).
    pub fn precheck(&mut self, tx: &[u8]) -> Result<Hash, MempoolError> {
        self.precheck_from(tx, None)
    }

    /// [`precheck`](Self::precheck) for a transaction `sender` gave us
    /// (`None`: a client). A copy of a transaction that is held or being
    /// checked records `sender` (whatever the verdict), so the transaction
    /// is not gossiped back to it; CheckTx does not run again. After a
    /// success, report the outcome with [`add_checked`](Self::add_checked)
    /// or [`abandon`](Self::abandon).
    pub fn precheck_from(
        &mut self,
        tx: &[u8],
        sender: Option<NodeId>,
    ) -> Result<Hash, MempoolError> {
        if tx.is_empty() {
            return Err(MempoolError::Empty);
        }
        let size = tx.len() as u64;
        if size > self.config.max_tx_bytes {
            return Err(MempoolError::TooLarge {
                max: self.config.max_tx_bytes,
                got: size,
            });
        }
        let hash = sha256(tx);
        if let Some(peer) = sender {
            self.note_sender(&hash, peer);
        }
        if !self.has_room_for(size) {
            return Err(self.full_error());
        }
        if self.contains(&hash) || !self.cache.push(hash) {
            return Err(MempoolError::InCache);
        }
        if self.pending.len() < MAX_PENDING_CHECKS || self.pending.contains_key(&hash) {
            let pending = self.pending.entry(hash).or_default();
            if let Some(peer) = sender {
                pending.senders.add(peer);
            }
        }
        Ok(hash)
    }

    /// Records that `peer` sent `hash`, if it is held or being checked.
    fn note_sender(&mut self, hash: &Hash, peer: NodeId) {
        if let Some(e) = self.by_hash.get(hash).and_then(|s| self.txs.get_mut(s)) {
            e.senders.add(peer);
        } else if let Some(pending) = self.pending.get_mut(hash) {
            pending.senders.add(peer);
        }
    }

    /// CheckTx for a prechecked transaction gave no verdict (the
    /// application failed): forget its senders. The hash stays in the
    /// cache, so a transaction that breaks the application is not retried
    /// at once.
    pub fn abandon(&mut self, hash: &Hash) {
        self.pending.remove(hash);
    }

    /// Records the application's CheckTx verdict for a transaction that
    /// passed [`Mempool::precheck`]. Accepted (`code == 0`) transactions join
    /// the end of the queue with the senders recorded meanwhile; rejected
    /// ones leave the cache unless `keep-invalid-txs-in-cache` is set, so
    /// they may be retried. One a block committed while CheckTx ran is not
    /// admitted.
    pub fn add_checked(
        &mut self,
        tx: Vec<u8>,
        code: u32,
        gas_wanted: i64,
    ) -> Result<bool, MempoolError> {
        let hash = sha256(&tx);
        let Pending { senders, committed } = self.pending.remove(&hash).unwrap_or_default();
        if committed {
            // Admitting it would put it in a second block.
            return Ok(false);
        }
        if code != 0 {
            if !self.config.keep_invalid_txs_in_cache {
                self.cache.remove(&hash);
            }
            return Ok(false);
        }
        if let Some(e) = self.by_hash.get(&hash).and_then(|s| self.txs.get_mut(s)) {
            e.senders.add_all(senders);
            return Ok(false);
        }
        let size = tx.len() as u64;
        // The mempool may have filled while the application was checking.
        if !self.has_room_for(size) {
            self.cache.remove(&hash);
            return Err(self.full_error());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += size;
        self.by_hash.insert(hash, seq);
        self.txs.insert(
            seq,
            Entry {
                tx: MempoolTx {
                    tx: Arc::new(tx),
                    hash,
                    gas_wanted,
                    height: self.height,
                    checked_at: self.height,
                },
                senders,
            },
        );
        Ok(true)
    }

    /// Transactions for a proposal, in order, stopping at the first that
    /// would exceed `max_bytes` (protobuf size in the block's data) or
    /// `max_gas`; -1 means no limit (CometBFT's `ReapMaxBytesMaxGas`).
    pub fn reap(&self, max_bytes: i64, max_gas: i64) -> Vec<Arc<Vec<u8>>> {
        let mut out = Vec::new();
        let (mut bytes, mut gas) = (0i64, 0i64);
        // With recheck on, a transaction not yet rechecked against the
        // last block's state waits (the recheck runs in the background so
        // as not to delay the proposal; it may be invalid now).
        let fresh = |t: &&MempoolTx| !self.config.recheck || t.checked_at >= self.height;
        for t in self.iter().filter(fresh) {
            let size = i64::try_from(proto_size(&t.tx)).unwrap_or(i64::MAX);
            if max_bytes > -1 && bytes.saturating_add(size) > max_bytes {
                break;
            }
            let next_gas = gas.saturating_add(t.gas_wanted);
            if max_gas > -1 && next_gas > max_gas {
                break;
            }
            bytes += size;
            gas = next_gas;
            out.push(t.tx.clone());
        }
        out
    }

    /// After block `height`: committed transactions leave the mempool and
    /// stay in the cache (valid ones; invalid ones leave the cache unless
    /// configured otherwise), so they are not accepted again, not even by a
    /// CheckTx that was running when the block came.
    pub fn update(&mut self, height: Height, committed: &[(Vec<u8>, u32)]) {
        self.height = height;
        self.txs_reported = false;
        for (tx, code) in committed {
            let hash = sha256(tx);
            if let Some(p) = self.pending.get_mut(&hash) {
                p.committed = true;
            }
            if *code == 0 || self.config.keep_invalid_txs_in_cache {
                self.cache.push(hash);
            } else {
                self.cache.remove(&hash);
            }
            self.remove(&hash);
        }
    }

    /// The transactions to re-run CheckTx on after a block (none when
    /// `recheck` is off), and the height whose state they are checked
    /// against. Copies are cheap: the bytes are shared.
    pub fn recheck_list(&self) -> (Height, Vec<MempoolTx>) {
        if self.config.recheck {
            (self.height, self.iter().cloned().collect())
        } else {
            (self.height, Vec::new())
        }
    }

    /// A transaction passed its recheck against the state after `height`:
    /// it may be reaped again (if the mempool is still at that height).
    pub fn mark_rechecked(&mut self, hash: &Hash, height: Height) {
        if let Some(e) = self.by_hash.get(hash).and_then(|s| self.txs.get_mut(s)) {
            e.tx.checked_at = e.tx.checked_at.max(height);
        }
    }

    /// Removes a transaction that failed its recheck.
    pub fn remove_invalid(&mut self, hash: &Hash) {
        self.remove(hash);
        if !self.config.keep_invalid_txs_in_cache {
            self.cache.remove(hash);
        }
    }

    fn remove(&mut self, hash: &Hash) {
        if let Some(seq) = self.by_hash.remove(hash) {
            if let Some(e) = self.txs.remove(&seq) {
                self.bytes -= e.tx.tx.len() as u64;
            }
        }
    }

    /// Drops every transaction and the cache (`unsafe_flush_mempool`).
    pub fn flush(&mut self) {
        self.txs.clear();
        self.by_hash.clear();
        self.pending.clear();
        self.bytes = 0;
        self.cache = Cache::new(self.config.cache_size as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(f: impl FnOnce(&mut MempoolConfig)) -> Mempool {
        let mut c = MempoolConfig::default();
        f(&mut c);
        Mempool::new(c, 0)
    }

    fn add(m: &mut Mempool, tx: &[u8], gas: i64) -> Result<bool, MempoolError> {
        m.precheck(tx)?;
        m.add_checked(tx.to_vec(), 0, gas)
    }

    #[test]
    fn proto_size_matches_data_encoding() {
        use prost::Message;
        for len in [1usize, 127, 128, 300, 16_384, 70_000] {
            let tx = vec![7u8; len];
            let data = tendermint_proto::v0_38::types::Data {
                txs: vec![tx.clone()],
            };
            assert_eq!(proto_size(&tx), data.encoded_len() as u64, "{len}");
        }
    }

    #[test]
    fn limits_and_dedup_give_cometbft_errors() {
        let mut m = pool(|c| {
            c.size = 2;
            c.max_tx_bytes = 10;
            c.max_txs_bytes = 15;
        });
        assert_eq!(
            m.precheck(&[1; 11]),
            Err(MempoolError::TooLarge { max: 10, got: 11 })
        );
        assert_eq!(m.precheck(&[]), Err(MempoolError::Empty));
        assert_eq!(add(&mut m, b"a=1", 1), Ok(true));
        assert_eq!(add(&mut m, b"a=1", 1), Err(MempoolError::InCache));
        assert_eq!(
            MempoolError::InCache.to_string(),
            "tx already exists in cache"
        );
        assert_eq!(add(&mut m, b"0123456789", 1), Ok(true));
        assert!(matches!(
            add(&mut m, b"b=2", 1),
            Err(MempoolError::Full { .. })
        ));
        assert_eq!(m.len(), 2);
        assert_eq!(m.bytes(), 13);
    }

    #[test]
    fn a_rejected_tx_may_be_retried_unless_invalid_txs_are_kept() {
        let mut m = pool(|_| {});
        m.precheck(b"bad").expect("precheck");
        assert_eq!(m.add_checked(b"bad".to_vec(), 1, 0), Ok(false));
        assert!(m.precheck(b"bad").is_ok(), "rejected txs leave the cache");

        let mut keep = pool(|c| c.keep_invalid_txs_in_cache = true);
        keep.precheck(b"bad").expect("precheck");
        keep.add_checked(b"bad".to_vec(), 1, 0).expect("checked");
        assert_eq!(keep.precheck(b"bad"), Err(MempoolError::InCache));
    }

    #[test]
    fn reaps_in_order_within_bytes_and_gas_and_stops_at_the_first_misfit() {
        let mut m = pool(|_| {});
        for (tx, gas) in [(&b"aaaa"[..], 5), (b"bb", 5), (b"cccccccc", 1), (b"d", 1)] {
            add(&mut m, tx, gas).expect("added");
        }
        let all: Vec<Vec<u8>> = m.reap(-1, -1).iter().map(|t| t.to_vec()).collect();
        assert_eq!(
            all,
            vec![
                b"aaaa".to_vec(),
                b"bb".to_vec(),
                b"cccccccc".to_vec(),
                b"d".to_vec()
            ]
        );
        // aaaa = 6 bytes, bb = 4: 10 fits, cccccccc (10) does not; d is not skipped to.
        assert_eq!(m.reap(12, -1).len(), 2);
        assert_eq!(m.reap(-1, 10).len(), 2);
        assert_eq!(m.reap(-1, 9).len(), 1);
        assert_eq!(m.reap(5, -1).len(), 0);
    }

    #[test]
    fn update_removes_committed_txs_keeps_them_cached_and_returns_the_rest() {
        let mut m = pool(|_| {});
        for tx in [&b"a"[..], b"b", b"c"] {
            add(&mut m, tx, 0).expect("added");
        }
        m.update(1, &[(b"a".to_vec(), 0), (b"c".to_vec(), 3)]);
        let (_, rest) = m.recheck_list();
        assert_eq!(
            rest.iter().map(|t| t.tx.to_vec()).collect::<Vec<_>>(),
            vec![b"b".to_vec()]
        );
        assert_eq!(
            m.precheck(b"a"),
            Err(MempoolError::InCache),
            "committed stays cached"
        );
        assert!(
            m.precheck(b"c").is_ok(),
            "an invalid committed tx may come again"
        );
        m.remove_invalid(&sha256(b"b"));
        assert!(m.is_empty());
        assert_eq!(
            m.bytes(),
            0,
            "c was prechecked, not added: it holds no bytes"
        );
    }

    #[test]
    fn txs_are_reported_available_once_per_height() {
        let mut m = pool(|_| {});
        assert!(!m.notify_txs_available(), "empty: nothing to report");
        assert_eq!(m.txs_available_for(), None);
        add(&mut m, b"a", 0).expect("added");
        assert!(m.notify_txs_available(), "the first tx of the height");
        assert_eq!(m.txs_available_for(), Some(1));
        add(&mut m, b"b", 0).expect("added");
        assert!(!m.notify_txs_available(), "once per height");
        // Block 1 commits a only: b is left, so height 2 hears of it at once.
        m.update(1, &[(b"a".to_vec(), 0)]);
        assert_eq!(m.txs_available_for(), Some(2), "b is still there");
        assert!(m.notify_txs_available());
        assert!(!m.notify_txs_available());
        // Block 2 commits b: height 3 has nothing until a new tx arrives.
        m.update(2, &[(b"b".to_vec(), 0)]);
        assert!(!m.notify_txs_available());
        assert_eq!(m.txs_available_for(), None);
        add(&mut m, b"c", 0).expect("added");
        assert!(m.notify_txs_available());
        assert_eq!(m.txs_available_for(), Some(3));
    }

    #[test]
    fn cache_removals_do_not_grow_its_queue_without_bound() {
        let mut c = Cache::new(4);
        for i in 0..1000u32 {
            let h = sha256(&i.to_be_bytes());
            assert!(c.push(h));
            c.remove(&h);
        }
        assert!(c.order.len() <= 2 * 4 + 16);
        assert!(c.live.is_empty());
    }

    #[test]
    fn the_cache_forgets_the_oldest_beyond_its_size() {
        let mut m = pool(|c| c.cache_size = 2);
        for tx in [&b"1"[..], b"2", b"3"] {
            m.precheck(tx).expect("new");
            m.add_checked(tx.to_vec(), 1, 0).expect("rejected");
        }
        // Rejected txs left the cache; now fill it with accepted ones.
        for tx in [&b"x"[..], b"y", b"z"] {
            add(&mut m, tx, 0).expect("added");
        }
        m.update(
            1,
            &[(b"x".to_vec(), 0), (b"y".to_vec(), 0), (b"z".to_vec(), 0)],
        );
        assert!(m.precheck(b"x").is_ok(), "x fell out of a cache of 2");
        assert_eq!(m.precheck(b"z"), Err(MempoolError::InCache));
    }

    fn peer(n: u8) -> NodeId {
        NodeId([n; 20])
    }

    fn seqs(batch: &[GossipTx]) -> Vec<u64> {
        batch.iter().map(|t| t.seq).collect()
    }

    #[test]
    fn a_cursor_walks_in_admission_order_across_removals_and_later_additions() {
        let mut m = pool(|_| {});
        for tx in [&b"a"[..], b"b", b"c", b"d"] {
            add(&mut m, tx, 0).expect("added");
        }
        let p = peer(1);
        let first = m.txs_from(0, &p, 2);
        assert_eq!(seqs(&first), vec![0, 1]);
        assert_eq!(*first[0].tx, b"a".to_vec());
        // b (seen) and c (not yet seen) leave with a block; e arrives.
        m.update(1, &[(b"b".to_vec(), 0), (b"c".to_vec(), 0)]);
        add(&mut m, b"e", 0).expect("added");
        let next = m.txs_from(first[1].seq + 1, &p, 10);
        assert_eq!(
            next.iter().map(|t| t.tx.to_vec()).collect::<Vec<_>>(),
            vec![b"d".to_vec(), b"e".to_vec()],
            "c left before the cursor reached it; d and e follow in order"
        );
        assert!(m.txs_from(next[1].seq + 1, &p, 10).is_empty());
        assert_eq!(m.next_seq(), 5, "sequence numbers are never reused");
    }

    #[test]
    fn a_copy_from_another_peer_records_its_sender_without_a_second_check() {
        let mut m = pool(|_| {});
        let (a, b, c) = (peer(1), peer(2), peer(3));
        let hash = m.precheck_from(b"tx", Some(a)).expect("new");
        // While CheckTx runs, b's copy is a duplicate but b is noted.
        assert_eq!(m.precheck_from(b"tx", Some(b)), Err(MempoolError::InCache));
        assert_eq!(m.add_checked(b"tx".to_vec(), 0, 0), Ok(true));
        assert!(m.is_sender(&hash, &a) && m.is_sender(&hash, &b));
        // Held: c's copy is refused (no CheckTx) and c is noted.
        assert_eq!(m.precheck_from(b"tx", Some(c)), Err(MempoolError::InCache));
        assert!(m.is_sender(&hash, &c));
        assert!(!m.is_sender(&hash, &peer(4)));
        let flags: Vec<bool> = [a, b, c, peer(4)]
            .iter()
            .map(|p| m.txs_from(0, p, 1)[0].from_peer)
            .collect();
        assert_eq!(flags, vec![true, true, true, false]);
        // A client's copy records nobody.
        assert_eq!(m.precheck(b"tx"), Err(MempoolError::InCache));
    }

    #[test]
    fn a_full_mempool_still_records_the_sender_of_a_held_tx() {
        let mut m = pool(|c| c.size = 1);
        let hash = m.precheck_from(b"tx", Some(peer(1))).expect("new");
        m.add_checked(b"tx".to_vec(), 0, 0).expect("added");
        assert!(matches!(
            m.precheck_from(b"tx", Some(peer(2))),
            Err(MempoolError::Full { .. })
        ));
        assert!(m.is_sender(&hash, &peer(2)));
    }

    #[test]
    fn senders_per_tx_are_bounded() {
        let mut m = pool(|_| {});
        let hash = m.precheck(b"tx").expect("new");
        m.add_checked(b"tx".to_vec(), 0, 0).expect("added");
        for n in 0..=(MAX_SENDERS_PER_TX as u8 + 10) {
            let _ = m.precheck_from(b"tx", Some(peer(n)));
        }
        let recorded = (0..=255u8)
            .filter(|n| m.is_sender(&hash, &peer(*n)))
            .count();
        assert_eq!(recorded, MAX_SENDERS_PER_TX);
        assert!(m.is_sender(&hash, &peer(0)), "the first ones are kept");
    }

    #[test]
    fn a_tx_committed_while_being_checked_is_not_admitted() {
        let mut m = pool(|_| {});
        m.precheck_from(b"tx", Some(peer(1))).expect("new");
        m.update(1, &[(b"tx".to_vec(), 0)]);
        assert_eq!(m.add_checked(b"tx".to_vec(), 0, 0), Ok(false));
        assert!(m.is_empty());
        assert_eq!(m.precheck(b"tx"), Err(MempoolError::InCache));
    }

    #[test]
    fn an_abandoned_check_forgets_its_senders_and_keeps_the_cache_entry() {
        let mut m = pool(|_| {});
        let hash = m.precheck_from(b"tx", Some(peer(1))).expect("new");
        m.abandon(&hash);
        assert!(m.pending.is_empty());
        assert_eq!(m.precheck(b"tx"), Err(MempoolError::InCache));
    }

    #[test]
    fn pending_checks_are_bounded() {
        let mut m = pool(|c| c.cache_size = 0);
        for i in 0..(MAX_PENDING_CHECKS as u32 + 100) {
            m.precheck_from(&i.to_be_bytes(), Some(peer(1)))
                .expect("new");
        }
        assert_eq!(m.pending.len(), MAX_PENDING_CHECKS);
        // Untracked ones are still admitted (without senders).
        let last = (MAX_PENDING_CHECKS as u32 + 99).to_be_bytes();
        assert_eq!(m.add_checked(last.to_vec(), 0, 0), Ok(true));
    }

    /// One step of the gossip model: peers 0..3 send txs 0..8, clients too,
    /// blocks commit some, and peer 0's cursor reads a few at a time.
    #[derive(Clone, Debug)]
    enum Op {
        Receive { tx: u8, from: Option<u8> },
        Commit(u8),
        Read(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..8, proptest::option::of(0u8..3))
                .prop_map(|(tx, from)| Op::Receive { tx, from }),
            1 => (0u8..8).prop_map(Op::Commit),
            3 => (1usize..4).prop_map(Op::Read),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        /// Peer 0's cursor gets every tx it did not send once, in
        /// admission order; never a tx it had sent before the cursor
        /// reached it; and, once drained, has seen every held tx it did
        /// not send.
        #[test]
        fn a_cursor_delivers_each_tx_the_peer_did_not_send_once_in_order(
            ops in proptest::collection::vec(op(), 1..60)
        ) {
            let mut m = pool(|_| {});
            let me = peer(0);
            let mut cursor = 0u64;
            let mut delivered: Vec<(u64, Vec<u8>)> = Vec::new();
            // Model: who sent each tx (while held or being checked).
            let mut sent_by_me: std::collections::HashSet<Vec<u8>> = Default::default();
            let read = |m: &Mempool, cursor: &mut u64, limit: usize,
                            delivered: &mut Vec<(u64, Vec<u8>)>,
                            sent_by_me: &std::collections::HashSet<Vec<u8>>| {
                for t in m.txs_from(*cursor, &me, limit) {
                    prop_assert!(t.seq >= *cursor);
                    prop_assert_eq!(t.from_peer, sent_by_me.contains(&*t.tx));
                    if !t.from_peer {
                        delivered.push((t.seq, t.tx.to_vec()));
                    }
                    *cursor = t.seq + 1;
                }
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Receive { tx, from } => {
                        let bytes = vec![b'x', tx];
                        let sender = from.map(peer);
                        let held = m.contains(&sha256(&bytes));
                        match m.precheck_from(&bytes, sender) {
                            Ok(_) => {
                                sent_by_me.remove(&bytes);
                                if from == Some(0) {
                                    sent_by_me.insert(bytes.clone());
                                }
                                prop_assert_eq!(m.add_checked(bytes, 0, 0), Ok(true));
                            }
                            Err(MempoolError::InCache) => {
                                if held && from == Some(0) {
                                    sent_by_me.insert(bytes);
                                }
                            }
                            Err(e) => prop_assert!(false, "{e}"),
                        }
                    }
                    Op::Commit(tx) => {
                        let bytes = vec![b'x', tx];
                        // Invalid in the block: it leaves the cache too, so
                        // it may come again and be gossiped anew.
                        m.update(m.height() + 1, &[(bytes.clone(), 1)]);
                        sent_by_me.remove(&bytes);
                    }
                    Op::Read(limit) => {
                        read(&m, &mut cursor, limit, &mut delivered, &sent_by_me)?;
                    }
                }
            }
            read(&m, &mut cursor, usize::MAX, &mut delivered, &sent_by_me)?;
            let order: Vec<u64> = delivered.iter().map(|(s, _)| *s).collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(&order, &sorted, "strictly increasing: in order, once each");
            for t in m.iter() {
                let mine = m.is_sender(&t.hash, &me);
                let got = delivered.iter().any(|(_, b)| *b == *t.tx);
                prop_assert!(mine || got, "held and not mine, so delivered");
            }
        }
    }

    #[test]
    fn with_recheck_on_only_txs_checked_against_the_current_state_are_reaped() {
        let mut m = pool(|c| c.recheck = true);
        for tx in [&b"a"[..], b"b"] {
            add(&mut m, tx, 0).expect("added");
        }
        assert_eq!(m.reap(-1, -1).len(), 2);
        m.update(1, &[]);
        assert!(
            m.reap(-1, -1).is_empty(),
            "not rechecked against block 1 yet"
        );
        add(&mut m, b"c", 0).expect("added");
        assert_eq!(
            m.reap(-1, -1),
            vec![Arc::new(b"c".to_vec())],
            "checked at 1"
        );
        let (height, list) = m.recheck_list();
        assert_eq!((height, list.len()), (1, 3));
        m.mark_rechecked(&sha256(b"b"), height);
        let reaped: Vec<Vec<u8>> = m.reap(-1, -1).iter().map(|t| t.to_vec()).collect();
        assert_eq!(
            reaped,
            vec![b"b".to_vec(), b"c".to_vec()],
            "FIFO among fresh ones"
        );

        let mut off = pool(|c| c.recheck = false);
        add(&mut off, b"a", 0).expect("added");
        off.update(1, &[]);
        assert_eq!(off.reap(-1, -1).len(), 1, "without recheck nothing waits");
    }
}
