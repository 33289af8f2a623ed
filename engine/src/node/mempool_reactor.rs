//! The mempool reactor: transactions to and from peers on the mempool
//! channel (0x30), wire-compatible with CometBFT v0.38, and the CheckTx
//! admission path that RPC clients and peers share.
//!
//! Inbound, a `tendermint.mempool.Message{txs}` may carry several
//! transactions; each goes through CheckTx with its sender recorded, one at
//! a time per peer (so a peer's order survives, which nonce-based apps need)
//! and at most [`MAX_CONCURRENT_CHECKS`] at a time across peers; decoded
//! messages wait in a backlog of at most [`BACKLOG_BYTES`]. A message
//! that does not decode, carries no transaction, an empty one, or more
//! bytes than `max_tx_bytes` allows stops the peer, as CometBFT's message
//! filter does. A refused or duplicate transaction, or a full mempool, is
//! not the peer's fault.
//!
//! Outbound, one task per peer walks the mempool in admission order with a
//! cursor ([`Mempool::txs_from`](crate::mempool::Mempool::txs_from)) and
//! sends every transaction the peer did not send us, one per message as
//! CometBFT v0.38 does, waiting for room in the peer's send queue (only
//! that peer's task waits) and retrying a send that timed out, so nothing
//! is skipped. It sleeps until a transaction is admitted. Nothing is sent
//! when `mempool.broadcast` is false.
//!
//! Never decides what is valid: that is the application's CheckTx and the
//! mempool's limits.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use abci::proto::{RequestCheckTx, ResponseCheckTx};
use bytes::Bytes;
use prost::Message as _;
use tendermint_proto::v0_38::mempool::{message::Sum, Message, Txs};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::Shared;
use crate::app_conn::AppError;
use crate::mempool::{GossipTx, MempoolError};
use crate::p2p::conn::ConnError;
use crate::p2p::peer::{Inbound, PeerEvent};
use crate::p2p::{NodeId, P2pError, MEMPOOL_CHANNEL};
use crate::types::Hash;

/// Most CheckTx calls for peers' transactions running at once.
pub(super) const MAX_CONCURRENT_CHECKS: usize = 32;

/// Transaction bytes from all peers decoded and waiting for CheckTx (at
/// least one largest message). Absorbs bursts, such as a peer sending its
/// whole mempool on connecting; when it is used up, the reactor waits, and
/// the switch holds the peers' messages back, as CometBFT's reactor does
/// when its application connection's queue is full.
const BACKLOG_BYTES: u64 = 16 << 20;

/// Transactions one cursor step reads while holding the mempool lock.
const CURSOR_STEP: usize = 64;

/// Why an admission through CheckTx failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum CheckTxError {
    /// The mempool refused it before or after CheckTx (duplicate, too
    /// large, full).
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    /// The application did not answer.
    #[error(transparent)]
    App(#[from] AppError),
}

/// Forgets a prechecked transaction's pending senders unless its verdict
/// was recorded: also when the caller's future is dropped mid-check (an
/// RPC client that hung up).
struct PendingCheck<'a> {
    shared: &'a Shared,
    hash: Hash,
    settled: bool,
}

impl Drop for PendingCheck<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.with_mempool(|m| m.abandon(&self.hash));
        }
    }
}

impl Shared {
    /// Admits `tx` to the mempool if the application's CheckTx accepts it:
    /// the mempool's precheck (which records `sender` on a copy it already
    /// holds), CheckTx on the mempool connection, then the verdict. An
    /// admitted transaction wakes consensus (once per height) and the
    /// peers' gossip. Returns the application's response, also when it
    /// refused the transaction.
    pub(super) async fn check_tx(
        &self,
        tx: Vec<u8>,
        sender: Option<NodeId>,
    ) -> Result<ResponseCheckTx, CheckTxError> {
        let hash = self.with_mempool(|m| m.precheck_from(&tx, sender))?;
        let mut pending = PendingCheck {
            shared: self,
            hash,
            settled: false,
        };
        let resp = self
            .app()
            .check_tx(RequestCheckTx {
                tx: tx.clone().into(),
                r#type: abci::proto::CheckTxType::New as i32,
            })
            .await?;
        pending.settled = true;
        let added = self.with_mempool(|m| m.add_checked(tx, resp.code, resp.gas_wanted))?;
        if added {
            self.notify_txs_available();
            self.tx_added.send_replace(());
        }
        Ok(resp)
    }
}

/// Why a peer's mempool message is refused; the peer is then stopped with
/// this as the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadMessage {
    /// Not a `tendermint.mempool.Message`.
    #[error("mempool message does not decode: {0}")]
    Undecodable(String),
    /// A message without its `txs` field (an unknown message type).
    #[error("mempool message of unknown type")]
    UnknownType,
    /// A `Txs` with no transaction.
    #[error("mempool message contains no transactions")]
    NoTransactions,
    /// A zero-length transaction.
    #[error("mempool message contains an empty transaction")]
    EmptyTransaction,
    /// One transaction above `max_tx_bytes`.
    #[error("transaction of {size} bytes exceeds max_tx_bytes {max}")]
    TxTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: u64,
    },
    /// The transactions together above max(`max_tx_bytes`,
    /// `max_batch_bytes`).
    #[error("mempool message of {total} transaction bytes exceeds {max}")]
    BatchTooLarge {
        /// The sum of the transactions' sizes.
        total: usize,
        /// The limit.
        max: u64,
    },
}

/// The limits a peer's message must respect (the `[mempool]` keys).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// `max_tx_bytes`.
    pub(crate) max_tx_bytes: u64,
    /// `max_batch_bytes` (deprecated in CometBFT, still a batch bound).
    pub(crate) max_batch_bytes: u64,
}

/// The transactions of a peer's mempool message, or why the peer must be
/// stopped (CometBFT v0.38's `filterMempoolMsgBytes` rules, applied after
/// decoding: the channel's receive capacity already bounds the size).
pub(crate) fn decode_txs(msg: &[u8], limits: Limits) -> Result<Vec<Vec<u8>>, BadMessage> {
    let decoded = Message::decode(msg).map_err(|e| BadMessage::Undecodable(e.to_string()))?;
    let Some(Sum::Txs(Txs { txs })) = decoded.sum else {
        return Err(BadMessage::UnknownType);
    };
    if txs.is_empty() {
        return Err(BadMessage::NoTransactions);
    }
    let batch_max = limits.max_tx_bytes.max(limits.max_batch_bytes);
    let mut total = 0usize;
    for tx in &txs {
        if tx.is_empty() {
            return Err(BadMessage::EmptyTransaction);
        }
        if tx.len() as u64 > limits.max_tx_bytes {
            return Err(BadMessage::TxTooLarge {
                size: tx.len(),
                max: limits.max_tx_bytes,
            });
        }
        total = total.saturating_add(tx.len());
        if total as u64 > batch_max {
            return Err(BadMessage::BatchTooLarge {
                total,
                max: batch_max,
            });
        }
    }
    Ok(txs)
}

/// One transaction as CometBFT v0.38 sends it: `Message{txs: Txs{[tx]}}`.
pub(crate) fn encode_tx(tx: &[u8]) -> Bytes {
    Message {
        sum: Some(Sum::Txs(Txs {
            txs: vec![tx.to_vec()],
        })),
    }
    .encode_to_vec()
    .into()
}

/// A peer's decoded message and its share of the backlog budget (the
/// node's and the peer's own), returned when its transactions have been
/// checked.
type Backlogged = (Vec<Vec<u8>>, OwnedSemaphorePermit, OwnedSemaphorePermit);

/// The tasks serving one connected peer. Dropping it stops gossip to the
/// peer; transactions it already sent are still checked.
struct PeerTasks {
    /// To the peer's CheckTx worker; bounded by the backlog budget.
    received: mpsc::UnboundedSender<Backlogged>,
    /// This peer's share of the backlog: a quarter of the node's (at least
    /// one largest message), so one peer cannot crowd out the others.
    share: Arc<Semaphore>,
    broadcast: Option<JoinHandle<()>>,
}

impl Drop for PeerTasks {
    fn drop(&mut self) {
        if let Some(task) = &self.broadcast {
            task.abort();
        }
    }
}

/// Runs the mempool reactor on the mempool channel's inbound queue until
/// the switch closes it.
pub(super) async fn run(shared: Arc<Shared>, mut inbound: mpsc::Receiver<Inbound>) {
    let config = &shared.home.config.mempool;
    let limits = Limits {
        max_tx_bytes: config.max_tx_bytes,
        max_batch_bytes: config.max_batch_bytes,
    };
    let broadcast = config.broadcast;
    if !broadcast {
        info!("tx broadcasting is disabled (mempool.broadcast = false)");
    }
    let checks = Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS));
    let budget_bytes = BACKLOG_BYTES
        .max(limits.max_tx_bytes.max(limits.max_batch_bytes))
        .min(u64::from(u32::MAX));
    // A u32 after the clamp, and below the semaphore's maximum.
    let budget_bytes = u32::try_from(budget_bytes).unwrap_or(u32::MAX);
    let budget = Arc::new(Semaphore::new(budget_bytes as usize));
    let largest = limits.max_tx_bytes.max(limits.max_batch_bytes);
    let share_bytes = u64::from(budget_bytes / 4)
        .max(largest)
        .min(u64::from(budget_bytes));
    // At most `budget_bytes`, a u32.
    let share_bytes = u32::try_from(share_bytes).unwrap_or(budget_bytes);
    let mut peers: HashMap<NodeId, PeerTasks> = HashMap::new();
    while let Some(event) = inbound.recv().await {
        match event {
            Inbound::Peer(PeerEvent::Added(info)) => {
                let id = info.id;
                let (received, backlog) = mpsc::unbounded_channel();
                tokio::spawn(check_peer_txs(shared.clone(), id, backlog, checks.clone()));
                let broadcast = broadcast.then(|| tokio::spawn(gossip_to(shared.clone(), id)));
                // A reconnection replaces the previous connection's tasks.
                peers.insert(
                    id,
                    PeerTasks {
                        received,
                        share: Arc::new(Semaphore::new(share_bytes as usize)),
                        broadcast,
                    },
                );
            }
            Inbound::Peer(PeerEvent::Removed(id, _)) => {
                peers.remove(&id);
            }
            Inbound::Message { peer, msg, .. } => match decode_txs(&msg, limits) {
                Err(e) => {
                    warn!(%peer, reason = %e, "stopping a peer for a bad mempool message");
                    // Already gone if this fails: nothing more to do.
                    let _ = shared.switch.stop_peer(peer, e.to_string());
                }
                Ok(txs) => {
                    let Some(tasks) = peers.get(&peer) else {
                        debug!(%peer, "mempool message from a peer not added; dropped");
                        continue;
                    };
                    // decode_txs bounds the total by the largest message,
                    // which the budget holds.
                    let bytes: usize = txs.iter().map(Vec::len).sum();
                    let want = u32::try_from(bytes).unwrap_or(u32::MAX).min(share_bytes);
                    // When the backlog (the peer's share, or the node's) is
                    // full the txs are dropped rather than waited for:
                    // waiting would stop this loop, and with it every
                    // peer's connection behind a full queue (consensus
                    // messages included). Tx gossip is best effort; the
                    // sender keeps the txs.
                    let permits = tasks
                        .share
                        .clone()
                        .try_acquire_many_owned(want)
                        .and_then(|mine| Ok((mine, budget.clone().try_acquire_many_owned(want)?)));
                    let Ok((mine, ours)) = permits else {
                        debug!(%peer, bytes, "mempool check backlog full; a peer's txs are dropped");
                        continue;
                    };
                    // The worker lives as long as its sender.
                    let _ = tasks.received.send((txs, mine, ours));
                }
            },
        }
    }
}

/// CheckTx, in order, on the transactions `peer` sent, until the peer is
/// gone and its backlog is done.
async fn check_peer_txs(
    shared: Arc<Shared>,
    peer: NodeId,
    mut backlog: mpsc::UnboundedReceiver<Backlogged>,
    checks: Arc<Semaphore>,
) {
    while let Some((txs, _share, _budget)) = backlog.recv().await {
        for tx in txs {
            // The semaphore is never closed.
            let Ok(_permit) = checks.acquire().await else {
                return;
            };
            let len = tx.len();
            match shared.check_tx(tx, Some(peer)).await {
                Ok(r) if r.code == 0 => {}
                Ok(r) => {
                    debug!(%peer, code = r.code, log = %r.log, "the application refused a peer's tx")
                }
                Err(CheckTxError::Mempool(e)) => {
                    debug!(%peer, len, reason = %e, "a peer's tx was not added")
                }
                Err(CheckTxError::App(e)) => {
                    warn!(%peer, error = %e, "CheckTx of a peer's tx failed")
                }
            }
        }
    }
}

/// What one attempt to hand a message to a peer's connection came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// Queued.
    Yes,
    /// The queue stayed full; try the same message again.
    Retry,
    /// The peer is gone or does not serve the channel: stop.
    Gone,
}

/// Gossips the mempool to `peer` until it is gone.
async fn gossip_to(shared: Arc<Shared>, peer: NodeId) {
    let added = shared.tx_added.subscribe();
    let fetch = |next| shared.with_mempool(|m| m.txs_from(next, &peer, CURSOR_STEP));
    let send = |msg: Bytes| {
        let switch = shared.switch.clone();
        async move {
            match switch.send(peer, MEMPOOL_CHANNEL, msg).await {
                Ok(()) => Sent::Yes,
                Err(P2pError::Conn {
                    source: ConnError::SendTimeout(_),
                    ..
                }) => Sent::Retry,
                Err(e) => {
                    debug!(%peer, reason = %e, "mempool gossip to the peer ends");
                    Sent::Gone
                }
            }
        }
    };
    cursor_loop(fetch, send, added).await;
}

/// A peer's gossip cursor: sends, in admission order, every transaction
/// `fetch` returns that the peer did not send us, each until it is
/// queued; then waits for `added` to ring. Ends when `send` reports the
/// peer gone or `added`'s sender is dropped.
async fn cursor_loop<F, S, Fut>(mut fetch: F, mut send: S, mut added: watch::Receiver<()>)
where
    F: FnMut(u64) -> Vec<GossipTx>,
    S: FnMut(Bytes) -> Fut,
    Fut: Future<Output = Sent>,
{
    let mut next = 0u64;
    loop {
        // Marked seen before reading, so an admission after the read rings.
        added.borrow_and_update();
        let batch = fetch(next);
        if batch.is_empty() {
            if added.changed().await.is_err() {
                return;
            }
            continue;
        }
        for t in batch {
            if !t.from_peer {
                let msg = encode_tx(&t.tx);
                loop {
                    match send(msg.clone()).await {
                        Sent::Yes => break,
                        Sent::Retry => continue,
                        Sent::Gone => return,
                    }
                }
            }
            next = t.seq + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::config::MempoolConfig;
    use crate::mempool::Mempool;

    const LIMITS: Limits = Limits {
        max_tx_bytes: 10,
        max_batch_bytes: 0,
    };

    /// `Message{txs: Txs{txs}}` written by hand: field 1 (Txs), whose
    /// field 1 repeats (tx bytes).
    fn wire(txs: &[&[u8]]) -> Vec<u8> {
        let mut inner = Vec::new();
        for tx in txs {
            inner.push(0x0a);
            inner.push(tx.len() as u8);
            inner.extend_from_slice(tx);
        }
        let mut out = vec![0x0a, inner.len() as u8];
        out.extend(inner);
        out
    }

    #[test]
    fn one_tx_per_message_in_cometbft_bytes() {
        assert_eq!(
            encode_tx(b"k=v").to_vec(),
            vec![0x0a, 0x05, 0x0a, 0x03, b'k', b'=', b'v']
        );
        assert_eq!(encode_tx(b"k=v").to_vec(), wire(&[b"k=v"]));
    }

    #[test]
    fn a_message_with_several_txs_yields_them_in_order() {
        assert_eq!(
            decode_txs(&wire(&[b"a=1", b"b=2", b"c"]), LIMITS),
            Ok(vec![b"a=1".to_vec(), b"b=2".to_vec(), b"c".to_vec()])
        );
    }

    #[test]
    fn messages_that_stop_the_peer() {
        for garbage in [
            vec![0xff, 0xff, 0xff],
            // A truncated Txs: length 5, 2 bytes follow.
            vec![0x0a, 0x05, 0x0a, 0x03],
        ] {
            let got = decode_txs(&garbage, LIMITS);
            assert!(
                matches!(got, Err(BadMessage::Undecodable(_))),
                "{garbage:02x?} -> {got:?}"
            );
        }
        let cases = [
            (vec![], BadMessage::UnknownType),
            (vec![0x0a, 0x00], BadMessage::NoTransactions),
            (wire(&[b"a", b""]), BadMessage::EmptyTransaction),
            (
                wire(&[&[7; 11]]),
                BadMessage::TxTooLarge { size: 11, max: 10 },
            ),
            (
                wire(&[&[7; 6], &[8; 6]]),
                BadMessage::BatchTooLarge { total: 12, max: 10 },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode_txs(&bytes, LIMITS), Err(expected), "{bytes:02x?}");
        }
        assert_eq!(
            BadMessage::NoTransactions.to_string(),
            "mempool message contains no transactions"
        );
        // max_batch_bytes above max_tx_bytes widens the batch.
        let wide = Limits {
            max_tx_bytes: 10,
            max_batch_bytes: 20,
        };
        assert!(decode_txs(&wire(&[&[7; 6], &[8; 6]]), wide).is_ok());
    }

    fn peer(n: u8) -> NodeId {
        NodeId([n; 20])
    }

    /// A mempool, a fake connection whose queue is "full" on every other
    /// attempt, and the cursor loop between them.
    struct Harness {
        mempool: Arc<Mutex<Mempool>>,
        added: watch::Sender<()>,
        got: mpsc::UnboundedReceiver<Bytes>,
        task: JoinHandle<()>,
    }

    fn start(me: NodeId) -> Harness {
        let mempool = Arc::new(Mutex::new(Mempool::new(MempoolConfig::default(), 0)));
        let (added, rx) = watch::channel(());
        let (out, got) = mpsc::unbounded_channel();
        let m = mempool.clone();
        let fetch = move |next| m.lock().expect("not poisoned").txs_from(next, &me, 2);
        let mut attempt = 0u32;
        let send = move |msg: Bytes| {
            attempt += 1;
            let outcome = if attempt % 2 == 1 {
                Sent::Retry
            } else if out.send(msg).is_ok() {
                Sent::Yes
            } else {
                Sent::Gone
            };
            async move { outcome }
        };
        let task = tokio::spawn(cursor_loop(fetch, send, rx));
        Harness {
            mempool,
            added,
            got,
            task,
        }
    }

    impl Harness {
        fn admit(&self, tx: &[u8], from: Option<NodeId>) {
            let mut m = self.mempool.lock().expect("not poisoned");
            m.precheck_from(tx, from).expect("new");
            assert_eq!(m.add_checked(tx.to_vec(), 0, 0), Ok(true));
            drop(m);
            self.added.send_replace(());
        }

        async fn next(&mut self) -> Vec<u8> {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.got.recv())
                .await
                .expect("a message in time")
                .expect("loop alive");
            let mut txs = decode_txs(
                &msg,
                Limits {
                    max_tx_bytes: 1 << 20,
                    max_batch_bytes: 0,
                },
            )
            .expect("valid");
            assert_eq!(txs.len(), 1, "one tx per message");
            txs.remove(0)
        }
    }

    #[tokio::test]
    async fn every_tx_the_peer_did_not_send_reaches_it_once_in_order_despite_full_queues() {
        let me = peer(1);
        let mut h = start(me);
        h.admit(b"a", None);
        h.admit(b"mine", Some(me));
        h.admit(b"b", Some(peer(2)));
        h.admit(b"c", None);
        assert_eq!(h.next().await, b"a");
        assert_eq!(h.next().await, b"b", "its own tx is skipped");
        assert_eq!(h.next().await, b"c");
        // Added while the cursor waits; one leaves before it is reached.
        {
            let mut m = h.mempool.lock().expect("not poisoned");
            m.precheck(b"gone").expect("new");
            m.add_checked(b"gone".to_vec(), 0, 0).expect("added");
            m.update(1, &[(b"gone".to_vec(), 0)]);
        }
        h.admit(b"d", None);
        assert_eq!(h.next().await, b"d", "gone is skipped");
        // Nothing is sent twice: the next message is the next new tx.
        h.admit(b"e", None);
        assert_eq!(h.next().await, b"e");
        // The loop ends when the mempool side goes away.
        drop(h.added);
        tokio::time::timeout(Duration::from_secs(10), h.task)
            .await
            .expect("ends in time")
            .expect("no panic");
    }

    #[tokio::test]
    async fn a_gone_peer_ends_the_loop() {
        let mut h = start(peer(1));
        h.got.close();
        h.admit(b"a", None);
        tokio::time::timeout(Duration::from_secs(10), h.task)
            .await
            .expect("ends in time")
            .expect("no panic");
    }
}
