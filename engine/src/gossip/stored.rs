//! [`Stored`] over the node's block store: committed blocks' parts and
//! commits for peers that lag behind. A lagging peer asks for the same
//! block's parts many times, so the last few part sets are cached.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::view::Stored;
use crate::store::Store;
use crate::types::{Height, Part, PartSet, PartSetHeader, Vote};

/// Part sets kept rebuilt (a block is re-split only when it leaves).
const CACHED_BLOCKS: usize = 4;

/// A commit as gossip sends it: its round and precommits.
pub type CommitVotes = Arc<(i32, Vec<Vote>)>;

/// The block store, read for gossip.
pub struct StoreView {
    store: Arc<Store>,
    cache: Mutex<VecDeque<(Height, Arc<PartSet>)>>,
    /// Commits, decoded once: the vote planner asks for the same commit's
    /// bits, round and each vote in turn, for every vote it sends.
    commits: Mutex<VecDeque<(Height, CommitVotes)>>,
}

impl StoreView {
    /// Reads `store`.
    pub fn new(store: Arc<Store>) -> Self {
        StoreView {
            store,
            cache: Mutex::new(VecDeque::new()),
            commits: Mutex::new(VecDeque::new()),
        }
    }

    fn part_set(&self, height: Height) -> Option<Arc<PartSet>> {
        cached(&self.cache, height, || {
            Some(self.store.load_block(height).ok().flatten()?.part_set())
        })
    }

    fn commit_votes(&self, height: Height) -> Option<CommitVotes> {
        cached(&self.commits, height, || {
            // The canonical commit (from the next block) if there is one,
            // else the one we decided with.
            let commit = match self.store.load_block_commit(height).ok().flatten() {
                Some(c) => c,
                None => self.store.load_seen_commit(height).ok().flatten()?,
            };
            let votes = (0..commit.signatures.len() as u32)
                .filter_map(|i| commit.get_vote(i))
                .collect();
            Some((commit.round as i32, votes))
        })
    }
}

/// Looks `height` up in a small most-recent cache, loading it on a miss.
fn cached<T>(
    cache: &Mutex<VecDeque<(Height, Arc<T>)>>,
    height: Height,
    load: impl FnOnce() -> Option<T>,
) -> Option<Arc<T>> {
    let mut cache = match cache.lock() {
        Ok(c) => c,
        Err(p) => p.into_inner(),
    };
    if let Some((_, v)) = cache.iter().find(|(h, _)| *h == height) {
        return Some(v.clone());
    }
    let v = Arc::new(load()?);
    if cache.len() == CACHED_BLOCKS {
        cache.pop_front();
    }
    cache.push_back((height, v.clone()));
    Some(v)
}

impl Stored for StoreView {
    fn base(&self) -> Height {
        self.store.base().unwrap_or(0)
    }

    fn parts_header(&self, height: Height) -> Option<PartSetHeader> {
        let meta = self.store.load_block_meta(height).ok().flatten()?;
        Some(meta.block_id.part_set_header)
    }

    fn part(&self, height: Height, index: u32) -> Option<Part> {
        self.part_set(height)?.get_part(index).cloned()
    }

    fn commit(&self, height: Height) -> Option<CommitVotes> {
        self.commit_votes(height)
    }

    fn validator_count(&self, height: Height) -> usize {
        self.store
            .load_validators(height)
            .ok()
            .flatten()
            .map_or(0, |v| v.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution;
    use crate::genesis::GenesisDoc;
    use crate::types::{Commit, CommitSig, PrivateKey, Signature, Time};

    #[test]
    fn stored_blocks_come_back_as_parts_and_commit_votes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("db")).expect("store"));
        let key = PrivateKey::from_seed([8; 32]);
        let genesis = GenesisDoc::single_validator("stored", key.public_key(), Time::GO_ZERO);
        let state = execution::genesis_state(&genesis).expect("state");
        let txs = (0..10).map(|i| vec![i as u8; 20_000]).collect();
        let time = execution::block_time(&state, None);
        let block = execution::make_block(
            &state,
            1,
            txs,
            None,
            vec![],
            key.public_key().address(),
            time,
        );
        let id = block.block_id();
        let commit = Commit {
            height: 1,
            round: 2,
            block_id: id,
            signatures: vec![
                CommitSig::Absent,
                CommitSig::Commit {
                    validator_address: key.public_key().address(),
                    timestamp: Time::GO_ZERO,
                    signature: Signature([1; 64]),
                },
            ],
        };
        store.save_block(&block, &id, &commit).expect("saved");

        let view = StoreView::new(store);
        assert_eq!(view.parts_header(1), Some(id.part_set_header));
        let parts = block.part_set();
        for i in 0..id.part_set_header.total {
            assert_eq!(view.part(1, i).as_ref(), parts.get_part(i), "part {i}");
        }
        assert_eq!(view.part(1, id.part_set_header.total), None);
        let commit = view.commit(1).expect("commit");
        let (round, votes) = &*commit;
        assert_eq!(*round, 2);
        assert_eq!(votes.len(), 1, "absent entries are not votes");
        assert_eq!(votes[0].validator_index, 1);
        assert_eq!(votes[0].block_id, Some(id));
        assert_eq!(view.parts_header(2), None);
        assert!(view.commit(2).is_none());
    }
}
