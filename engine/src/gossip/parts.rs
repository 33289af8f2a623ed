//! Reassembling blocks from gossiped parts.
//!
//! Parts are collected only for blocks this node wants at its height: the
//! proposal's, or one that a quorum voted for (the consensus core says
//! which). A proposal's block is also collected provisionally from the
//! moment the proposal arrives, before the core has judged it: its parts
//! follow it on the wire and would otherwise be dropped (the sender does
//! not send a part twice). Provisional sets give way to newer ones and to
//! the core's, so a peer sending junk proposals cannot crowd out the
//! blocks the core wants. Each part's merkle proof is checked against the wanted part set
//! header before it is kept, so a peer cannot make us hold junk; a complete
//! set is decoded and must hash to the wanted block id.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::types::{Block, BlockId, Height, Part, PartSet};

/// At most this many blocks are assembled at once (a proposal, a polka's,
/// a commit's, and a spare): wanted ids come from the core, which bounds
/// them, but this keeps memory bounded whatever happens.
const MAX_SETS: usize = 4;

/// Why a part or an assembled block is refused.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    /// The part fits no wanted block (wrong height, index, or proof).
    #[error("block part {index} at height {height} matches no wanted block")]
    Unwanted {
        /// Height it was sent for.
        height: Height,
        /// Its index.
        index: u32,
    },
    /// All parts arrived but they do not decode to the wanted block.
    #[error("the parts of block {0:?} do not form that block: {1}")]
    BadBlock(BlockId, String),
}

/// Part sets being filled at one height.
#[derive(Debug, Default)]
pub struct PartAssembler {
    height: Height,
    sets: BTreeMap<BlockId, PartSet>,
    /// Ids collected only because a proposal named them, oldest first.
    provisional: std::collections::VecDeque<BlockId>,
}

impl PartAssembler {
    /// Starts over at `height`, dropping every set.
    pub fn reset(&mut self, height: Height) {
        self.height = height;
        self.sets.clear();
        self.provisional.clear();
    }

    /// Collects parts for `id` at the current height because the core wants
    /// it (no-op if known; a provisional set makes room if [`MAX_SETS`] are
    /// being filled, else it is a no-op).
    pub fn want(&mut self, id: BlockId) {
        self.provisional.retain(|p| *p != id);
        if !self.sets.contains_key(&id) && self.make_room() {
            self.sets
                .insert(id, PartSet::from_header(id.part_set_header));
        }
    }

    /// Collects parts for the block a just-received proposal names, before
    /// the core has checked the proposal; evicts the oldest provisional set
    /// when full, never one the core wants.
    pub fn want_provisionally(&mut self, id: BlockId) {
        if self.sets.contains_key(&id) || !self.make_room() {
            return;
        }
        self.sets
            .insert(id, PartSet::from_header(id.part_set_header));
        self.provisional.push_back(id);
    }

    /// Stops collecting for `id` if it is only provisional (its sender
    /// moved on to another proposal); a set the core wants stays.
    pub fn drop_provisional(&mut self, id: &BlockId) {
        if let Some(i) = self.provisional.iter().position(|p| p == id) {
            self.provisional.remove(i);
            self.sets.remove(id);
        }
    }

    /// Frees a slot if all are taken, by dropping the oldest provisional
    /// set; false if every slot holds a set the core wants.
    fn make_room(&mut self) -> bool {
        if self.sets.len() < MAX_SETS {
            return true;
        }
        match self.provisional.pop_front() {
            Some(old) => {
                self.sets.remove(&old);
                true
            }
            None => false,
        }
    }

    /// Stops collecting for ids the core no longer wants (a new round's
    /// proposal replaced them); provisional sets stay, as the core may not
    /// have seen their proposal yet.
    pub fn retain(&mut self, keep: &[BlockId]) {
        let provisional = &self.provisional;
        self.sets
            .retain(|id, _| keep.contains(id) || provisional.contains(id));
    }

    /// Whether we are collecting `id`'s parts, and which we have.
    pub fn set(&self, id: &BlockId) -> Option<&PartSet> {
        self.sets.get(id)
    }

    /// Adds a part received for `height`. `Ok(Some(..))` when it completed a
    /// wanted block (the set is then dropped: the core holds the block).
    /// `Ok(None)` for a part kept or already held.
    pub fn add(
        &mut self,
        height: Height,
        part: Part,
    ) -> Result<Option<(BlockId, Arc<Block>)>, PartError> {
        let unwanted = PartError::Unwanted {
            height,
            index: part.index,
        };
        if height != self.height {
            return Err(unwanted);
        }
        // The proof names the set: the wanted one it verifies under.
        let fits = |id: &BlockId| {
            let h = id.part_set_header;
            part.index < h.total
                && part.proof.total == u64::from(h.total)
                && part.proof.index == u64::from(part.index)
                && part.proof.verify(&h.hash, &part.bytes).is_ok()
        };
        let Some(id) = self.sets.keys().find(|id| fits(id)).copied() else {
            return Err(unwanted);
        };
        let Some(mut set) = self.sets.remove(&id) else {
            return Err(unwanted);
        };
        if set.add_part(part).is_err() {
            // Unreachable after `fits`; refuse rather than trust it.
            self.sets.insert(id, set);
            return Err(unwanted);
        }
        if !set.is_complete() {
            self.sets.insert(id, set);
            return Ok(None);
        }
        self.provisional.retain(|p| *p != id);
        let bytes = set.data().unwrap_or_default();
        let block =
            Block::from_bytes(&bytes).map_err(|e| PartError::BadBlock(id, e.to_string()))?;
        if block.block_id() != id {
            return Err(PartError::BadBlock(id, "it hashes to another id".into()));
        }
        Ok(Some((id, Arc::new(block))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution;
    use crate::genesis::GenesisDoc;
    use crate::types::PrivateKey;

    fn block(txs: usize) -> Block {
        let key = PrivateKey::from_seed([3; 32]);
        let genesis =
            GenesisDoc::single_validator("parts", key.public_key(), crate::types::Time::GO_ZERO);
        let state = execution::genesis_state(&genesis).expect("state");
        let txs = (0..txs).map(|i| vec![i as u8; 10_000]).collect();
        let time = execution::block_time(&state, None);
        execution::make_block(
            &state,
            1,
            txs,
            None,
            vec![],
            key.public_key().address(),
            time,
        )
    }

    #[test]
    fn a_wanted_block_is_rebuilt_from_its_parts_in_any_order() {
        let b = block(20); // ~200 KB: 4 parts
        let id = b.block_id();
        let parts = b.part_set();
        assert!(id.part_set_header.total > 1);
        let mut a = PartAssembler::default();
        a.reset(1);
        a.want(id);
        let mut done = None;
        for i in (0..id.part_set_header.total).rev() {
            let p = parts.get_part(i).expect("part").clone();
            if let Some(out) = a.add(1, p.clone()).expect("fits") {
                done = Some(out);
            } else {
                assert!(a.add(1, p).expect("duplicate is fine").is_none());
            }
        }
        let (got_id, got) = done.expect("complete");
        assert_eq!(got_id, id);
        assert_eq!(*got, b);
        assert!(a.set(&id).is_none(), "dropped once complete");
    }

    #[test]
    fn parts_of_unwanted_or_other_blocks_are_refused() {
        let b = block(20);
        let other = block(21);
        let mut a = PartAssembler::default();
        a.reset(1);
        let p = b.part_set().get_part(0).expect("part").clone();
        assert!(
            matches!(a.add(1, p.clone()), Err(PartError::Unwanted { .. })),
            "nothing wanted"
        );
        a.want(other.block_id());
        assert!(a.add(1, p.clone()).is_err(), "proof is for another set");
        a.want(b.block_id());
        assert!(a.add(2, p.clone()).is_err(), "another height");
        let mut forged = p.clone();
        forged.bytes[0] ^= 1;
        assert!(a.add(1, forged).is_err(), "the proof does not verify");
        assert!(a.add(1, p).expect("fits").is_none());
    }

    #[test]
    fn provisional_sets_never_crowd_out_wanted_ones() {
        let blocks: Vec<Block> = (0..8).map(|i| block(1 + i)).collect();
        let ids: Vec<BlockId> = blocks.iter().map(Block::block_id).collect();
        let mut a = PartAssembler::default();
        a.reset(1);
        // A proposal's parts are collected before the core confirms it...
        a.want_provisionally(ids[0]);
        a.retain(&[]);
        assert!(a.set(&ids[0]).is_some(), "kept until the core decides");
        // ...and junk proposals evict only each other, oldest first.
        a.want(ids[1]);
        for id in &ids[2..8] {
            a.want_provisionally(*id);
        }
        assert!(a.set(&ids[1]).is_some(), "the core's set stays");
        assert!(a.set(&ids[0]).is_none() && a.set(&ids[4]).is_none());
        assert!((5..8).all(|i| a.set(&ids[i]).is_some()), "the newest stay");
        // The core wanting a block makes room among provisional sets.
        a.want(ids[0]);
        assert!(a.set(&ids[0]).is_some() && a.set(&ids[1]).is_some());
        // A completed block leaves no trace.
        let parts = blocks[7].part_set();
        let mut done = None;
        for i in 0..ids[7].part_set_header.total {
            let part = parts.get_part(i).expect("part").clone();
            done = a.add(1, part).expect("fits");
        }
        assert!(done.is_some(), "complete");
        assert!(a.set(&ids[7]).is_none());
    }
}
