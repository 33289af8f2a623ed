//! The block pool: which heights to ask which peers for, what came back,
//! and which peers misbehaved, as a deterministic state machine modelled on
//! CometBFT v0.38's `blocksync/pool.go`.
//!
//! CometBFT runs one goroutine per requested height and timers per peer;
//! here the same decisions are pure functions of the inputs, and time is a
//! value the caller passes in. The node feeds it peers' statuses, blocks
//! and no-block answers, calls [`BlockPool::next_requests`] and
//! [`BlockPool::timeouts`] on a tick, verifies [`BlockPool::peek_two`],
//! then either [`BlockPool::pop_verified`] or [`BlockPool::invalid`].
//!
//! The rules, and where they differ from CometBFT:
//!
//! - A peer joins with its first status and must never lower its base or
//!   height, nor report a base above its height; a peer that does is
//!   removed and banned for [`PoolConfig::ban_duration`] (as CometBFT).
//! - One requester per height, for a window of at most
//!   [`PoolConfig::max_window`] consecutive heights from the pool's height,
//!   and no more than 20 per peer (CometBFT's `maxPendingRequestsPerPeer`),
//!   up to the highest height a peer that can serve us reports.
//! - Within [`PoolConfig::parallel_window`] heights of the pool's height a
//!   block is asked of two peers at once (CometBFT's
//!   `minBlocksForSingleRequest`); the first answer is kept, the second is
//!   expected and accepted.
//! - A request is made only to a peer whose range holds the height, never
//!   twice to the same peer while the first is unanswered, and to the
//!   least-loaded such peer (ties go to the one picked longest ago).
//!   CometBFT picks by receive rate instead; we keep no rate monitor.
//! - Every request sent and not yet answered counts against the peer's
//!   limit until the peer answers it, also after its height was synced:
//!   CometBFT forgets those and its per-peer counter drifts.
//! - A block is accepted only as the answer to a request still
//!   outstanding to that peer; anything else is [`PeerFault::Unsolicited`].
//!   CometBFT also tolerates blocks below the pool's height from any peer,
//!   and a second copy from an asked peer.
//! - A peer with an unanswered request that has delivered nothing for
//!   [`PoolConfig::peer_timeout`] times out (CometBFT's `peerTimeout`).
//!   A request unanswered for [`PoolConfig::request_retry`] is given up
//!   on: the height is asked of another peer, and the late answer is still
//!   accepted (CometBFT's `requestRetrySeconds`).
//! - A peer that answered "no block" is not asked for that height again
//!   until `request_retry` has passed.
//! - Every [`PeerFault`] removes the peer, discards the blocks it
//!   delivered (their heights are asked again) and bans it. A peer that
//!   disconnects ([`BlockPool::remove_peer`]) or times out keeps its
//!   delivered blocks: they are verified like any other. (CometBFT discards
//!   them in both cases.)
//!
//! The waiting CometBFT does before its first requests (`peerConnWait`, to
//! let peers connect) is the caller's: it simply calls `next_requests`
//! later.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::p2p::NodeId;
use crate::types::{Block, ExtendedCommit, Height};

/// The pool's limits and timeouts; [`Default`] gives CometBFT's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Requests outstanding to one peer at most (CometBFT 20).
    pub max_pending_per_peer: usize,
    /// Consecutive heights requested or held at most; this bounds the
    /// blocks in memory. CometBFT's bound is 20 per peer; ours is also
    /// capped in total.
    pub max_window: usize,
    /// Heights this close to the pool's height are asked of two peers
    /// (CometBFT 50).
    pub parallel_window: Height,
    /// A peer with unanswered requests that delivers nothing for this long
    /// is dropped (CometBFT 15 s).
    pub peer_timeout: Duration,
    /// A request unanswered for this long is given up on and made to
    /// another peer (CometBFT 30 s).
    pub request_retry: Duration,
    /// How long a faulty peer's statuses are ignored (CometBFT 60 s).
    pub ban_duration: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_pending_per_peer: 20,
            max_window: 600,
            parallel_window: 50,
            peer_timeout: Duration::from_secs(15),
            request_retry: Duration::from_secs(30),
            ban_duration: Duration::from_secs(60),
        }
    }
}

/// A peer's misbehaviour. When the pool returns one it has already removed
/// the peer, discarded its blocks and banned it; the node disconnects it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerFault {
    /// A status with the base above the height.
    #[error("status with base {base} above height {height}")]
    BaseAboveHeight {
        /// Reported base.
        base: Height,
        /// Reported height.
        height: Height,
    },
    /// A status lowering the peer's earlier base or height.
    #[error("status ({base}, {height}) lowers the earlier ({prev_base}, {prev_height})")]
    StatusRegressed {
        /// Reported base.
        base: Height,
        /// Reported height.
        height: Height,
        /// The base reported before.
        prev_base: Height,
        /// The height reported before.
        prev_height: Height,
    },
    /// A status from a peer still banned for an earlier fault.
    #[error("peer is banned for an earlier fault")]
    Banned,
    /// A block that answers no request outstanding to this peer.
    #[error("unsolicited block at height {height}")]
    Unsolicited {
        /// The block's height.
        height: Height,
    },
    /// A block whose extended commit is for another height.
    #[error("extended commit for height {ext_commit}, block at height {block}")]
    ExtCommitHeight {
        /// The block's height.
        block: Height,
        /// The extended commit's height.
        ext_commit: Height,
    },
}

/// The two blocks verification needs: `first` at the pool's height, with
/// the extended commit its sender supplied, and `second` at the next height,
/// whose last commit proves `first`.
#[derive(Clone, Copy, Debug)]
pub struct TwoBlocks<'a> {
    /// The block at the pool's height.
    pub first: &'a Block,
    /// `first`'s extended commit, if its sender sent one.
    pub ext_commit: Option<&'a ExtendedCommit>,
    /// The block one height above.
    pub second: &'a Block,
}

/// A peer's claimed range and what it owes us.
#[derive(Clone, Debug)]
struct Peer {
    base: Height,
    height: Height,
    /// When the peer last delivered a block (or joined).
    last_delivery: Instant,
    /// Sequence number of the last time it was picked (0: never).
    last_pick: u64,
    /// Requests for heights already synced that it has not answered yet,
    /// with the time each was sent. Bounded by `max_pending_per_peer`.
    stale: BTreeMap<Height, Instant>,
}

/// One outstanding request for a height.
#[derive(Clone, Debug)]
struct Ask {
    peer: NodeId,
    at: Instant,
    /// Unanswered for `request_retry`: another peer is asked too; this
    /// peer's answer is still accepted.
    given_up: bool,
}

/// What arrived for a height.
#[derive(Clone, Debug)]
struct Delivered {
    block: Block,
    ext_commit: Option<ExtendedCommit>,
    from: NodeId,
}

/// The state of one height in the window.
#[derive(Clone, Debug, Default)]
struct Requester {
    /// Requests sent and not answered (at most one per peer).
    asks: Vec<Ask>,
    /// Peers that answered "no block", with when; not asked again before
    /// `request_retry`.
    refused: Vec<(NodeId, Instant)>,
    /// The block, once a peer delivered it.
    got: Option<Delivered>,
}

impl Requester {
    fn asked(&self, peer: &NodeId) -> bool {
        self.asks.iter().any(|a| a.peer == *peer)
    }

    /// Requests still awaited for this height's block.
    fn live_asks(&self) -> usize {
        self.asks.iter().filter(|a| !a.given_up).count()
    }
}

/// Which heights to request from which peers, and the blocks received, for
/// a node catching up (see the module documentation).
#[derive(Clone, Debug)]
pub struct BlockPool {
    cfg: PoolConfig,
    /// The next height to verify and apply.
    height: Height,
    /// One entry per height from `height`, consecutive.
    requesters: BTreeMap<Height, Requester>,
    peers: BTreeMap<NodeId, Peer>,
    /// Faulty peers and when they were banned.
    banned: BTreeMap<NodeId, Instant>,
    /// The highest height reported by a peer that can serve `height`.
    max_peer_height: Height,
    /// Counter for `Peer::last_pick`.
    picks: u64,
}

impl BlockPool {
    /// A pool that syncs from `start_height` (the state's next height).
    pub fn new(start_height: Height, cfg: PoolConfig) -> BlockPool {
        BlockPool {
            cfg,
            height: start_height,
            requesters: BTreeMap::new(),
            peers: BTreeMap::new(),
            banned: BTreeMap::new(),
            max_peer_height: 0,
            picks: 0,
        }
    }

    /// The next height to verify and apply.
    pub fn height(&self) -> Height {
        self.height
    }

    /// The highest height reported by a peer whose base is at most
    /// [`BlockPool::height`] (a peer that pruned what we need cannot help).
    pub fn max_peer_height(&self) -> Height {
        self.max_peer_height
    }

    /// How many peers are in the pool.
    pub fn num_peers(&self) -> usize {
        self.peers.len()
    }

    /// CometBFT's `IsCaughtUp`: at least one peer, and the pool's height at
    /// least the highest peer height minus one (block H is verified with
    /// block H+1's last commit, so the last block comes from consensus).
    /// CometBFT also requires "a block received or 5 s waited", which in
    /// v0.38 is always true (its pool height is never 0).
    pub fn is_caught_up(&self) -> bool {
        !self.peers.is_empty() && self.height.saturating_add(1) >= self.max_peer_height
    }

    /// Whether `peer` has a request outstanding, so a block from it may be
    /// expected. The node checks this before decoding a `BlockResponse`
    /// (CometBFT's `FilterMsgBytes`): without one, the response is
    /// unsolicited and the peer is disconnected undecoded.
    pub fn has_pending_request_from(&self, peer: &NodeId) -> bool {
        self.peers.get(peer).is_some_and(|p| !p.stale.is_empty())
            || self.requesters.values().any(|r| r.asked(peer))
    }

    /// A peer's status (`StatusResponse`): adds the peer or updates its
    /// range (CometBFT `SetPeerRange`).
    pub fn on_status(
        &mut self,
        peer: NodeId,
        base: Height,
        height: Height,
        now: Instant,
    ) -> Result<(), PeerFault> {
        self.expire_bans(now);
        if base > height {
            self.fault(peer, now);
            return Err(PeerFault::BaseAboveHeight { base, height });
        }
        match self.peers.get_mut(&peer) {
            Some(p) => {
                if base < p.base || height < p.height {
                    let fault = PeerFault::StatusRegressed {
                        base,
                        height,
                        prev_base: p.base,
                        prev_height: p.height,
                    };
                    self.fault(peer, now);
                    return Err(fault);
                }
                p.base = base;
                p.height = height;
            }
            None => {
                if self.banned.contains_key(&peer) {
                    return Err(PeerFault::Banned);
                }
                self.peers.insert(
                    peer,
                    Peer {
                        base,
                        height,
                        last_delivery: now,
                        last_pick: 0,
                        stale: BTreeMap::new(),
                    },
                );
            }
        }
        self.update_max_peer_height();
        Ok(())
    }

    /// The peer disconnected: its outstanding requests are made to others.
    /// Blocks it already delivered stay (they are verified anyway).
    pub fn remove_peer(&mut self, peer: &NodeId) {
        self.drop_peer(peer, false);
    }

    /// The requests to send now, as `(peer, height)`: new heights as the
    /// window allows, a second peer for heights close to the pool's height,
    /// and heights whose requests were given up on or refused.
    pub fn next_requests(&mut self, now: Instant) -> Vec<(NodeId, Height)> {
        self.expire_bans(now);
        let retry = self.cfg.request_retry;
        for r in self.requesters.values_mut() {
            r.refused
                .retain(|(_, at)| now.saturating_duration_since(*at) < retry);
            if r.got.is_none() {
                for a in &mut r.asks {
                    if now.saturating_duration_since(a.at) >= retry {
                        a.given_up = true;
                    }
                }
            }
        }

        // Grow the window up to the highest height a peer can serve.
        let limit = self.cfg.max_window.min(
            self.peers
                .len()
                .saturating_mul(self.cfg.max_pending_per_peer),
        );
        while self.requesters.len() < limit {
            let next = match self.height.checked_add(self.requesters.len() as Height) {
                Some(next) if next <= self.max_peer_height => next,
                _ => break,
            };
            self.requesters.insert(next, Requester::default());
        }

        let mut in_flight = self.in_flight();
        let mut out = Vec::new();
        for (&h, r) in self.requesters.iter_mut() {
            if r.got.is_some() {
                continue;
            }
            let wanted = if h.saturating_sub(self.height) < self.cfg.parallel_window {
                2
            } else {
                1
            };
            while r.live_asks() < wanted {
                let pick = self
                    .peers
                    .iter()
                    .filter(|(id, p)| {
                        p.base <= h
                            && h <= p.height
                            && in_flight.get(*id).copied().unwrap_or(0)
                                < self.cfg.max_pending_per_peer
                            && !r.asked(id)
                            && !r.refused.iter().any(|(x, _)| x == *id)
                    })
                    .min_by_key(|(id, p)| {
                        (in_flight.get(*id).copied().unwrap_or(0), p.last_pick, **id)
                    })
                    .map(|(id, _)| *id);
                let Some(id) = pick else { break };
                self.picks += 1;
                if let Some(p) = self.peers.get_mut(&id) {
                    p.last_pick = self.picks;
                }
                *in_flight.entry(id).or_insert(0) += 1;
                r.asks.push(Ask {
                    peer: id,
                    at: now,
                    given_up: false,
                });
                out.push((id, h));
            }
        }
        out
    }

    /// A block from `peer` (`BlockResponse`). Accepted only as the answer
    /// to a request outstanding to that peer; the first block for a height
    /// is kept, a second answer (from the other asked peer) is dropped.
    pub fn on_block(
        &mut self,
        peer: NodeId,
        block: Block,
        ext_commit: Option<ExtendedCommit>,
        now: Instant,
    ) -> Result<(), PeerFault> {
        let h = block.header.height;
        if let Some(ec) = &ext_commit {
            if ec.height != h {
                self.fault(peer, now);
                return Err(PeerFault::ExtCommitHeight {
                    block: h,
                    ext_commit: ec.height,
                });
            }
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            self.fault(peer, now);
            return Err(PeerFault::Unsolicited { height: h });
        };
        if p.stale.remove(&h).is_some() {
            // A late answer for a height already synced.
            p.last_delivery = now;
            return Ok(());
        }
        let Some(r) = self.requesters.get_mut(&h) else {
            self.fault(peer, now);
            return Err(PeerFault::Unsolicited { height: h });
        };
        let Some(i) = r.asks.iter().position(|a| a.peer == peer) else {
            self.fault(peer, now);
            return Err(PeerFault::Unsolicited { height: h });
        };
        r.asks.swap_remove(i);
        p.last_delivery = now;
        if r.got.is_none() {
            r.got = Some(Delivered {
                block,
                ext_commit,
                from: peer,
            });
        }
        Ok(())
    }

    /// `peer` does not have the block at `height` (`NoBlockResponse`): ask
    /// another peer. Ignored unless the request was outstanding.
    pub fn on_no_block(&mut self, peer: NodeId, height: Height, now: Instant) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.stale.remove(&height).is_some() {
                return;
            }
        }
        if let Some(r) = self.requesters.get_mut(&height) {
            if let Some(i) = r.asks.iter().position(|a| a.peer == peer) {
                r.asks.swap_remove(i);
                r.refused.push((peer, now));
            }
        }
    }

    /// The block at the pool's height and the one above, once both arrived.
    pub fn peek_two(&self) -> Option<TwoBlocks<'_>> {
        let first = self.requesters.get(&self.height)?.got.as_ref()?;
        let second = self
            .requesters
            .get(&self.height.checked_add(1)?)?
            .got
            .as_ref()?;
        Some(TwoBlocks {
            first: &first.block,
            ext_commit: first.ext_commit.as_ref(),
            second: &second.block,
        })
    }

    /// The block at the pool's height was verified and applied: hands it
    /// over with its extended commit and moves to the next height. `None`
    /// (and no change) if that block has not arrived.
    pub fn pop_verified(&mut self) -> Option<(Block, Option<ExtendedCommit>)> {
        self.requesters.get(&self.height)?.got.as_ref()?;
        let r = self.requesters.remove(&self.height)?;
        // Requests still outstanding for this height are owed by their
        // peers and keep counting against them until answered.
        for a in r.asks {
            if let Some(p) = self.peers.get_mut(&a.peer) {
                p.stale.insert(self.height, a.at);
            }
        }
        self.height = self.height.saturating_add(1);
        self.update_max_peer_height();
        let got = r.got?;
        Some((got.block, got.ext_commit))
    }

    /// The pair at `height` and `height + 1` failed verification. Which of
    /// the two is wrong cannot be told, so both senders are faulty: they are
    /// removed and banned, every block they delivered is discarded and its
    /// height asked again. Returns them for the node to disconnect.
    pub fn invalid(&mut self, height: Height, now: Instant) -> Vec<NodeId> {
        let mut faulty = Vec::new();
        for h in [Some(height), height.checked_add(1)].into_iter().flatten() {
            if let Some(d) = self.requesters.get(&h).and_then(|r| r.got.as_ref()) {
                if !faulty.contains(&d.from) {
                    faulty.push(d.from);
                }
            }
        }
        for p in &faulty {
            self.fault(*p, now);
        }
        faulty
    }

    /// Peers with unanswered requests that delivered nothing for
    /// [`PoolConfig::peer_timeout`]: removed (their requests go to others)
    /// and returned for the node to disconnect.
    pub fn timeouts(&mut self, now: Instant) -> Vec<NodeId> {
        self.expire_bans(now);
        let timeout = self.cfg.peer_timeout;
        let expired = |p: &Peer, at: Instant| {
            let since = if p.last_delivery > at {
                p.last_delivery
            } else {
                at
            };
            now.saturating_duration_since(since) >= timeout
        };
        let mut out = BTreeSet::new();
        for r in self.requesters.values() {
            for a in &r.asks {
                if let Some(p) = self.peers.get(&a.peer) {
                    if expired(p, a.at) {
                        out.insert(a.peer);
                    }
                }
            }
        }
        for (id, p) in &self.peers {
            if p.stale.values().any(|at| expired(p, *at)) {
                out.insert(*id);
            }
        }
        for id in &out {
            self.drop_peer(id, false);
        }
        out.into_iter().collect()
    }

    /// Requests outstanding per peer, in the window and already synced.
    fn in_flight(&self) -> BTreeMap<NodeId, usize> {
        let mut n: BTreeMap<NodeId, usize> = self
            .peers
            .iter()
            .map(|(id, p)| (*id, p.stale.len()))
            .collect();
        for r in self.requesters.values() {
            for a in &r.asks {
                *n.entry(a.peer).or_insert(0) += 1;
            }
        }
        n
    }

    /// Removes, bans, and discards what `peer` delivered.
    fn fault(&mut self, peer: NodeId, now: Instant) {
        self.drop_peer(&peer, true);
        self.banned.insert(peer, now);
    }

    /// Forgets `peer` and its outstanding requests; with `discard`, also
    /// the blocks it delivered.
    fn drop_peer(&mut self, peer: &NodeId, discard: bool) {
        for r in self.requesters.values_mut() {
            r.asks.retain(|a| a.peer != *peer);
            r.refused.retain(|(p, _)| p != peer);
            if discard && r.got.as_ref().is_some_and(|d| d.from == *peer) {
                r.got = None;
            }
        }
        if self.peers.remove(peer).is_some() {
            self.update_max_peer_height();
        }
    }

    fn expire_bans(&mut self, now: Instant) {
        let ban = self.cfg.ban_duration;
        self.banned
            .retain(|_, at| now.saturating_duration_since(*at) < ban);
    }

    /// CometBFT `updateMaxPeerHeight`: peers whose base is above our height
    /// cannot serve us, so their heights do not count.
    fn update_max_peer_height(&mut self) {
        self.max_peer_height = self
            .peers
            .values()
            .filter(|p| p.base <= self.height)
            .map(|p| p.height)
            .max()
            .unwrap_or(0);
    }

    /// Checks the pool's internal invariants (tests only).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        for ((&h, r), expected) in self.requesters.iter().zip(self.height..) {
            assert_eq!(h, expected, "requesters are consecutive from the height");
            assert!(r.live_asks() <= 2, "at most two live asks per height");
            let peers: BTreeSet<_> = r.asks.iter().map(|a| a.peer).collect();
            assert_eq!(peers.len(), r.asks.len(), "one ask per peer per height");
            for a in &r.asks {
                assert!(self.peers.contains_key(&a.peer), "asks name pool peers");
            }
            if let Some(d) = &r.got {
                assert_eq!(d.block.header.height, h, "blocks sit at their height");
            }
        }
        assert!(self.requesters.len() <= self.cfg.max_window);
        for n in self.in_flight().values() {
            assert!(*n <= self.cfg.max_pending_per_peer, "per-peer bound");
        }
        for p in self.peers.values() {
            assert!(p.stale.keys().all(|h| *h < self.height));
        }
    }
}

#[cfg(test)]
mod tests;
