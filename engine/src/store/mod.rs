//! Durable chain data: blocks, commits, and the state the next block is
//! executed against, in one embedded database.
//!
//! CometBFT keeps `data/blockstore.db` and `data/state.db` as two LevelDB
//! databases and updates them in separate batches. We keep both in one
//! redb file, `data/engine.db`, so a block, its commits and its meta land
//! in one ACID transaction, and a rollback changes state and blocks
//! together. Values are protobuf encodings of the CometBFT messages
//! (`Block`, `BlockMeta`, `Commit`, `ExtendedCommit`, `ValidatorSet`, `ConsensusParams`,
//! `tendermint.state.State`, `ResponseFinalizeBlock`); keys are heights
//! (u64) or, for the hash index, the 32-byte block hash.
//!
//! | table | key | value |
//! |---|---|---|
//! | `blocks` | height | `tendermint.types.Block` |
//! | `block_hashes` | block hash | height |
//! | `block_metas` | height | `tendermint.types.BlockMeta` |
//! | `commits` | height h | canonical commit of h (block h+1's last commit) |
//! | `seen_commits` | height h | the commit this node collected for h |
//! | `extended_commits` | height h | that commit with its vote extensions (`ExtendedCommit`), for heights with extensions enabled |
//! | `state` | `"state"` | `tendermint.state.State` |
//! | `validators` | height | `tendermint.types.ValidatorSet` of that height |
//! | `consensus_params` | height | `tendermint.types.ConsensusParams` of that height |
//! | `finalize_responses` | height | `tendermint.abci.ResponseFinalizeBlock` bytes |
//!
//! This module owns that file. It must never half-write (every public
//! write is one transaction), never panic on what it reads (a value that
//! does not decode is [`StoreError::Decode`], naming table and key), and
//! never decide anything about consensus or execution: it stores what it
//! is given, checking only that blocks are saved contiguously and match
//! their ids.

mod state;

use std::path::{Path, PathBuf};

use prost::Message;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};
use tendermint_proto::v0_38::state as pb_state;
use tendermint_proto::v0_38::types as pb;

pub use state::{BlockMeta, State};

use crate::types::{
    Block, BlockId, Commit, ConsensusParams, ExtendedCommit, Hash, Height, ValidatorSet,
};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const BLOCK_HASHES: TableDefinition<&[u8], u64> = TableDefinition::new("block_hashes");
const BLOCK_METAS: TableDefinition<u64, &[u8]> = TableDefinition::new("block_metas");
const COMMITS: TableDefinition<u64, &[u8]> = TableDefinition::new("commits");
const SEEN_COMMITS: TableDefinition<u64, &[u8]> = TableDefinition::new("seen_commits");
const EXTENDED_COMMITS: TableDefinition<u64, &[u8]> = TableDefinition::new("extended_commits");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const VALIDATORS: TableDefinition<u64, &[u8]> = TableDefinition::new("validators");
const CONSENSUS_PARAMS: TableDefinition<u64, &[u8]> = TableDefinition::new("consensus_params");
const FINALIZE_RESPONSES: TableDefinition<u64, &[u8]> = TableDefinition::new("finalize_responses");

const STATE_KEY: &str = "state";

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O, or its own structures are damaged).
    #[error("{}: database error: {source}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored value does not decode.
    #[error("{}: table {table}, key {key}: undecodable value: {reason}", path.display())]
    Decode {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: String,
        /// The key, rendered (height, or hash in hex).
        key: String,
        /// What failed.
        reason: String,
    },
    /// Blocks are saved one height after another.
    #[error("cannot save block {got}: the store expects height {expected}")]
    NonContiguous {
        /// The next height the store accepts.
        expected: Height,
        /// The height offered.
        got: Height,
    },
    /// A write was refused because its arguments disagree with each other
    /// or with what is stored.
    #[error("invalid store operation: {0}")]
    Invalid(String),
}

/// The block and state store over one redb file.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Renders a height key for errors.
fn hkey(h: Height) -> String {
    h.to_string()
}

impl Store {
    /// The store's file under a CometBFT-style home: `data/engine.db`.
    pub fn path_in_home(home: &Path) -> PathBuf {
        home.join("data").join("engine.db")
    }

    /// Opens the database at `path`, creating it and its tables if needed.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let path = path.to_owned();
        let db = Database::create(&path).map_err(|e| db_err(&path, e))?;
        let store = Store { db, path };
        let txn = store.begin_write()?;
        {
            let e = |err| db_err(&store.path, err);
            txn.open_table(BLOCKS).map_err(e)?;
            txn.open_table(BLOCK_HASHES).map_err(e)?;
            txn.open_table(BLOCK_METAS).map_err(e)?;
            txn.open_table(COMMITS).map_err(e)?;
            txn.open_table(SEEN_COMMITS).map_err(e)?;
            txn.open_table(EXTENDED_COMMITS).map_err(e)?;
            txn.open_table(STATE).map_err(e)?;
            txn.open_table(VALIDATORS).map_err(e)?;
            txn.open_table(CONSENSUS_PARAMS).map_err(e)?;
            txn.open_table(FINALIZE_RESPONSES).map_err(e)?;
        }
        store.commit(txn)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        self.db.begin_write().map_err(|e| db_err(&self.path, e))
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(|e| db_err(&self.path, e))
    }

    fn commit(&self, txn: redb::WriteTransaction) -> Result<(), StoreError> {
        txn.commit().map_err(|e| db_err(&self.path, e))
    }

    fn e<E: Into<redb::Error>>(&self) -> impl Fn(E) -> StoreError + '_ {
        move |e| db_err(&self.path, e)
    }

    /// Reads and decodes one value of a height-keyed table.
    fn get<T>(
        &self,
        table: TableDefinition<u64, &[u8]>,
        height: Height,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.begin_read()?;
        let t = txn.open_table(table).map_err(self.e())?;
        let Some(v) = t.get(height).map_err(self.e())? else {
            return Ok(None);
        };
        decode(v.value())
            .map(Some)
            .map_err(|reason| self.decode_err(table.name(), hkey(height), reason))
    }

    fn decode_err(&self, table: &str, key: String, reason: String) -> StoreError {
        StoreError::Decode {
            path: self.path.clone(),
            table: table.to_owned(),
            key,
            reason,
        }
    }

    // ---- blocks ----------------------------------------------------------

    /// The lowest stored block height (0 when no block is stored).
    pub fn base(&self) -> Result<Height, StoreError> {
        let txn = self.begin_read()?;
        let t = txn.open_table(BLOCKS).map_err(self.e())?;
        let base = t.first().map_err(self.e())?.map_or(0, |(k, _)| k.value());
        Ok(base)
    }

    /// The highest stored block height (0 when no block is stored).
    pub fn height(&self) -> Result<Height, StoreError> {
        let txn = self.begin_read()?;
        let t = txn.open_table(BLOCKS).map_err(self.e())?;
        let top = t.last().map_err(self.e())?.map_or(0, |(k, _)| k.value());
        Ok(top)
    }

    /// Number of stored blocks.
    pub fn size(&self) -> Result<u64, StoreError> {
        let txn = self.begin_read()?;
        let t = txn.open_table(BLOCKS).map_err(self.e())?;
        t.len().map_err(self.e())
    }

    /// Saves `block` under `block_id` with the commit this node collected
    /// for it, in one transaction: the block, its meta, the hash index, the
    /// seen commit, and the block's last commit as the canonical commit of
    /// the previous height. The first block may have any height; after that
    /// heights must be contiguous. `block_id` must be the block's id and the
    /// seen commit must commit it.
    pub fn save_block(
        &self,
        block: &Block,
        block_id: &BlockId,
        seen_commit: &Commit,
    ) -> Result<(), StoreError> {
        self.save_block_and_commits(block, block_id, seen_commit, None)
    }

    /// [`Store::save_block`] for a height with vote extensions enabled
    /// (CometBFT `SaveBlockWithExtendedCommit`): the seen commit is
    /// `extended`'s plain commit, and `extended` itself is saved in the
    /// same transaction so the next proposer (even after a restart) can
    /// hand the extensions to the application. Every precommit for the
    /// block must carry an extension signature.
    pub fn save_block_with_extended_commit(
        &self,
        block: &Block,
        block_id: &BlockId,
        extended: &ExtendedCommit,
    ) -> Result<(), StoreError> {
        extended.ensure_extensions(true).map_err(|e| {
            StoreError::Invalid(format!(
                "block {}: extended commit: {e}",
                block.header.height
            ))
        })?;
        self.save_block_and_commits(block, block_id, &extended.to_commit(), Some(extended))
    }

    fn save_block_and_commits(
        &self,
        block: &Block,
        block_id: &BlockId,
        seen_commit: &Commit,
        extended: Option<&ExtendedCommit>,
    ) -> Result<(), StoreError> {
        let height = block.header.height;
        if block_id.hash != block.hash() {
            return Err(StoreError::Invalid(format!(
                "block {height}: block id does not match the block's hash"
            )));
        }
        if seen_commit.height != height || seen_commit.block_id != *block_id {
            return Err(StoreError::Invalid(format!(
                "block {height}: the seen commit is for another block"
            )));
        }
        let bytes = block.to_bytes();
        let meta = BlockMeta {
            block_id: *block_id,
            block_size: bytes.len() as u64,
            header: block.header.clone(),
            num_txs: block.txs.len() as u64,
        };
        let meta_bytes = pb::BlockMeta::from(meta).encode_to_vec();
        let seen = pb::Commit::from(seen_commit.clone()).encode_to_vec();
        let extended = extended.map(|e| pb::ExtendedCommit::from(e.clone()).encode_to_vec());
        let last_commit = block
            .last_commit
            .as_ref()
            .map(|c| (c.height, pb::Commit::from(c.clone()).encode_to_vec()));

        let txn = self.begin_write()?;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(self.e())?;
            let top = blocks.last().map_err(self.e())?.map(|(k, _)| k.value());
            if let Some(top) = top {
                let expected = top.saturating_add(1);
                if height != expected {
                    return Err(StoreError::NonContiguous {
                        expected,
                        got: height,
                    });
                }
            }
            blocks.insert(height, bytes.as_slice()).map_err(self.e())?;
            txn.open_table(BLOCK_METAS)
                .map_err(self.e())?
                .insert(height, meta_bytes.as_slice())
                .map_err(self.e())?;
            txn.open_table(BLOCK_HASHES)
                .map_err(self.e())?
                .insert(block_id.hash.as_bytes(), height)
                .map_err(self.e())?;
            txn.open_table(SEEN_COMMITS)
                .map_err(self.e())?
                .insert(height, seen.as_slice())
                .map_err(self.e())?;
            if let Some(ec) = extended {
                txn.open_table(EXTENDED_COMMITS)
                    .map_err(self.e())?
                    .insert(height, ec.as_slice())
                    .map_err(self.e())?;
            }
            if let Some((h, c)) = last_commit {
                txn.open_table(COMMITS)
                    .map_err(self.e())?
                    .insert(h, c.as_slice())
                    .map_err(self.e())?;
            }
        }
        self.commit(txn)
    }

    /// The block at `height`.
    pub fn load_block(&self, height: Height) -> Result<Option<Block>, StoreError> {
        self.get(BLOCKS, height, |b| {
            Block::from_bytes(b).map_err(|e| e.to_string())
        })
    }

    /// The height of the block with `hash`.
    pub fn block_height_by_hash(&self, hash: &Hash) -> Result<Option<Height>, StoreError> {
        let txn = self.begin_read()?;
        let t = txn.open_table(BLOCK_HASHES).map_err(self.e())?;
        Ok(t.get(hash.as_bytes()).map_err(self.e())?.map(|v| v.value()))
    }

    /// The block with `hash`.
    pub fn load_block_by_hash(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        match self.block_height_by_hash(hash)? {
            Some(h) => self.load_block(h),
            None => Ok(None),
        }
    }

    /// The meta of the block at `height`.
    pub fn load_block_meta(&self, height: Height) -> Result<Option<BlockMeta>, StoreError> {
        self.get(BLOCK_METAS, height, |b| {
            let raw = pb::BlockMeta::decode(b).map_err(|e| e.to_string())?;
            BlockMeta::try_from(raw).map_err(|e| e.to_string())
        })
    }

    /// The canonical commit of `height`: the one included as last commit in
    /// block `height + 1` (so absent for the latest block).
    pub fn load_block_commit(&self, height: Height) -> Result<Option<Commit>, StoreError> {
        self.get(COMMITS, height, decode_commit)
    }

    /// The commit this node collected for `height` when it decided it.
    pub fn load_seen_commit(&self, height: Height) -> Result<Option<Commit>, StoreError> {
        self.get(SEEN_COMMITS, height, decode_commit)
    }

    /// The commit this node collected for `height` with its vote extensions
    /// (CometBFT `LoadBlockExtendedCommit`): present only for heights saved
    /// with [`Store::save_block_with_extended_commit`].
    pub fn load_block_extended_commit(
        &self,
        height: Height,
    ) -> Result<Option<ExtendedCommit>, StoreError> {
        self.get(EXTENDED_COMMITS, height, |b| {
            let raw = pb::ExtendedCommit::decode(b).map_err(|e| e.to_string())?;
            ExtendedCommit::try_from(raw).map_err(|e| e.to_string())
        })
    }

    /// Deletes blocks (with their metas, hash entries, canonical, seen and
    /// extended commits) below `retain_height`, in one transaction. Returns how many
    /// blocks were deleted. `retain_height` must be at most the store's
    /// height, so the latest block is always kept.
    pub fn prune_blocks(&self, retain_height: Height) -> Result<u64, StoreError> {
        let txn = self.begin_write()?;
        let mut pruned = 0;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(self.e())?;
            let top = blocks
                .last()
                .map_err(self.e())?
                .map_or(0, |(k, _)| k.value());
            if retain_height == 0 || retain_height > top {
                return Err(StoreError::Invalid(format!(
                    "retain height {retain_height} must be within 1..={top}"
                )));
            }
            let mut metas = txn.open_table(BLOCK_METAS).map_err(self.e())?;
            let mut hashes = txn.open_table(BLOCK_HASHES).map_err(self.e())?;
            let mut commits = txn.open_table(COMMITS).map_err(self.e())?;
            let mut seen = txn.open_table(SEEN_COMMITS).map_err(self.e())?;
            let mut extended = txn.open_table(EXTENDED_COMMITS).map_err(self.e())?;
            let heights: Vec<u64> = blocks
                .range(..retain_height)
                .map_err(self.e())?
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(self.e())?;
            for h in heights {
                if let Some(m) = metas.remove(h).map_err(self.e())? {
                    let meta = pb::BlockMeta::decode(m.value())
                        .map_err(|e| self.decode_err("block_metas", hkey(h), e.to_string()))?;
                    let hash = meta.block_id.map(|b| b.hash).unwrap_or_default();
                    drop(m);
                    hashes.remove(hash.as_slice()).map_err(self.e())?;
                }
                blocks.remove(h).map_err(self.e())?;
                commits.remove(h).map_err(self.e())?;
                seen.remove(h).map_err(self.e())?;
                extended.remove(h).map_err(self.e())?;
                pruned += 1;
            }
        }
        self.commit(txn)?;
        Ok(pruned)
    }

    /// Deletes the per-height state records (validator sets, consensus
    /// params, `FinalizeBlock` responses) below `retain_height`, in one
    /// transaction, and returns how many records were deleted. The caller
    /// chooses `retain_height`: evidence verification needs the validator
    /// sets of heights within the evidence age, and `block_results` needs
    /// the responses of the heights it serves.
    pub fn prune_states(&self, retain_height: Height) -> Result<u64, StoreError> {
        let txn = self.begin_write()?;
        let mut pruned = 0;
        for table in [VALIDATORS, CONSENSUS_PARAMS, FINALIZE_RESPONSES] {
            let mut t = txn.open_table(table).map_err(self.e())?;
            let keys: Vec<u64> = t
                .range(..retain_height)
                .map_err(self.e())?
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(self.e())?;
            for k in keys {
                t.remove(k).map_err(self.e())?;
                pruned += 1;
            }
        }
        self.commit(txn)?;
        Ok(pruned)
    }

    // ---- state -----------------------------------------------------------

    /// Saves `state` together with the per-height records it implies, in
    /// one transaction: the validators of `last_block_height + 1` and `+ 2`
    /// and the consensus params of `last_block_height + 1`.
    pub fn save_state(&self, state: &State) -> Result<(), StoreError> {
        let next = state.last_block_height.saturating_add(1);
        let vals = pb::ValidatorSet::from(state.validators.clone()).encode_to_vec();
        let next_vals = pb::ValidatorSet::from(state.next_validators.clone()).encode_to_vec();
        let params = pb::ConsensusParams::from(state.consensus_params.clone()).encode_to_vec();
        let bytes = pb_state::State::from(state.clone()).encode_to_vec();
        let txn = self.begin_write()?;
        {
            txn.open_table(STATE)
                .map_err(self.e())?
                .insert(STATE_KEY, bytes.as_slice())
                .map_err(self.e())?;
            let mut v = txn.open_table(VALIDATORS).map_err(self.e())?;
            v.insert(next, vals.as_slice()).map_err(self.e())?;
            v.insert(next.saturating_add(1), next_vals.as_slice())
                .map_err(self.e())?;
            txn.open_table(CONSENSUS_PARAMS)
                .map_err(self.e())?
                .insert(next, params.as_slice())
                .map_err(self.e())?;
        }
        self.commit(txn)
    }

    /// The saved state, if any.
    pub fn load_state(&self) -> Result<Option<State>, StoreError> {
        let txn = self.begin_read()?;
        let t = txn.open_table(STATE).map_err(self.e())?;
        let Some(v) = t.get(STATE_KEY).map_err(self.e())? else {
            return Ok(None);
        };
        let decoded = pb_state::State::decode(v.value())
            .map_err(|e| e.to_string())
            .and_then(|raw| State::try_from(raw).map_err(|e| e.to_string()));
        decoded
            .map(Some)
            .map_err(|reason| self.decode_err("state", STATE_KEY.into(), reason))
    }

    /// The validator set of `height`.
    pub fn load_validators(&self, height: Height) -> Result<Option<ValidatorSet>, StoreError> {
        self.get(VALIDATORS, height, |b| {
            let raw = pb::ValidatorSet::decode(b).map_err(|e| e.to_string())?;
            ValidatorSet::try_from(raw).map_err(|e| e.to_string())
        })
    }

    /// The consensus parameters of `height`.
    pub fn load_consensus_params(
        &self,
        height: Height,
    ) -> Result<Option<ConsensusParams>, StoreError> {
        self.get(CONSENSUS_PARAMS, height, |b| {
            let raw = pb::ConsensusParams::decode(b).map_err(|e| e.to_string())?;
            ConsensusParams::try_from(raw).map_err(|e| e.to_string())
        })
    }

    /// Saves the application's `FinalizeBlock` response for `height` (the
    /// protobuf bytes of `tendermint.abci.ResponseFinalizeBlock`, kept as
    /// given so `block_results` can serve them and a crash between
    /// `FinalizeBlock` and `Commit` can be recovered without re-executing).
    pub fn save_finalize_response(
        &self,
        height: Height,
        response: &[u8],
    ) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        txn.open_table(FINALIZE_RESPONSES)
            .map_err(self.e())?
            .insert(height, response)
            .map_err(self.e())?;
        self.commit(txn)
    }

    /// The raw `FinalizeBlock` response saved for `height`.
    pub fn load_finalize_response(&self, height: Height) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(FINALIZE_RESPONSES, height, |b| Ok(b.to_vec()))
    }

    /// The `FinalizeBlock` response for `height`, decoded.
    pub fn load_finalize_response_decoded(
        &self,
        height: Height,
    ) -> Result<Option<tendermint_proto::v0_38::abci::ResponseFinalizeBlock>, StoreError> {
        self.get(FINALIZE_RESPONSES, height, |b| {
            tendermint_proto::v0_38::abci::ResponseFinalizeBlock::decode(b)
                .map_err(|e| e.to_string())
        })
    }

    // ---- rollback --------------------------------------------------------

    /// Rolls the state back by one height (`engine rollback`, CometBFT
    /// `state.Rollback`), in one transaction: the state becomes the state
    /// after block `H - 1`, where `H` is the saved state's last height,
    /// taking the app hash and results hash from block `H`'s header (they
    /// describe execution up to `H - 1`). With `remove_block`, block `H`
    /// (the latest stored block) is deleted too (`--hard`). If the block
    /// store is one block ahead of the state (a crash between saving the
    /// block and the state), only that block is removed when asked.
    /// Returns the new last height and app hash.
    pub fn rollback(&self, remove_block: bool) -> Result<(Height, Vec<u8>), StoreError> {
        let invalid = self
            .load_state()?
            .ok_or_else(|| StoreError::Invalid("no state to roll back".into()))?;
        let top = self.height()?;
        let h = invalid.last_block_height;
        if top == h.saturating_add(1) && top != 0 {
            if remove_block {
                let txn = self.begin_write()?;
                self.delete_block(&txn, top)?;
                self.commit(txn)?;
            }
            return Ok((h, invalid.app_hash));
        }
        if top != h {
            return Err(StoreError::Invalid(format!(
                "block store height {top} and state height {h} differ by more than one"
            )));
        }
        if h <= invalid.initial_height {
            return Err(StoreError::Invalid(format!(
                "cannot roll back height {h}: it is the chain's first block"
            )));
        }
        let rollback = h - 1;
        let missing = |what: &str, at: Height| {
            StoreError::Invalid(format!("{what} of height {at} not found"))
        };
        let prev_meta = self
            .load_block_meta(rollback)?
            .ok_or_else(|| missing("block meta", rollback))?;
        let latest_meta = self
            .load_block_meta(h)?
            .ok_or_else(|| missing("block meta", h))?;
        let prev_last_validators = self.load_validators(rollback)?;
        let prev_params = self
            .load_consensus_params(h)?
            .ok_or_else(|| missing("consensus params", h))?;
        let rolled = State {
            version: crate::types::Version {
                block: invalid.version.block,
                app: prev_params.version_app,
            },
            chain_id: invalid.chain_id.clone(),
            initial_height: invalid.initial_height,
            last_block_height: prev_meta.header.height,
            last_block_id: Some(prev_meta.block_id),
            last_block_time: prev_meta.header.time,
            next_validators: invalid.validators.clone(),
            validators: invalid
                .last_validators
                .clone()
                .ok_or_else(|| missing("last validators", h))?,
            last_validators: prev_last_validators,
            last_height_validators_changed: invalid.last_height_validators_changed.min(h),
            consensus_params: prev_params,
            last_height_consensus_params_changed: invalid
                .last_height_consensus_params_changed
                .min(h),
            last_results_hash: latest_meta.header.last_results_hash.as_bytes().to_vec(),
            app_hash: latest_meta.header.app_hash.clone(),
        };
        let bytes = pb_state::State::from(rolled.clone()).encode_to_vec();
        let txn = self.begin_write()?;
        {
            txn.open_table(STATE)
                .map_err(self.e())?
                .insert(STATE_KEY, bytes.as_slice())
                .map_err(self.e())?;
            // Records derived from executing block H no longer hold.
            txn.open_table(FINALIZE_RESPONSES)
                .map_err(self.e())?
                .remove(h)
                .map_err(self.e())?;
            txn.open_table(VALIDATORS)
                .map_err(self.e())?
                .remove(h.saturating_add(2))
                .map_err(self.e())?;
            txn.open_table(CONSENSUS_PARAMS)
                .map_err(self.e())?
                .remove(h.saturating_add(1))
                .map_err(self.e())?;
        }
        if remove_block {
            self.delete_block(&txn, h)?;
        }
        self.commit(txn)?;
        Ok((rolled.last_block_height, rolled.app_hash))
    }

    /// Deletes the latest block `h` inside `txn`: block, meta, hash entry,
    /// seen and extended commits, and the canonical commit of `h - 1` it carried.
    fn delete_block(&self, txn: &redb::WriteTransaction, h: Height) -> Result<(), StoreError> {
        let mut metas = txn.open_table(BLOCK_METAS).map_err(self.e())?;
        if let Some(m) = metas.remove(h).map_err(self.e())? {
            let meta = pb::BlockMeta::decode(m.value())
                .map_err(|e| self.decode_err("block_metas", hkey(h), e.to_string()))?;
            let hash = meta.block_id.map(|b| b.hash).unwrap_or_default();
            drop(m);
            txn.open_table(BLOCK_HASHES)
                .map_err(self.e())?
                .remove(hash.as_slice())
                .map_err(self.e())?;
        }
        txn.open_table(BLOCKS)
            .map_err(self.e())?
            .remove(h)
            .map_err(self.e())?;
        txn.open_table(SEEN_COMMITS)
            .map_err(self.e())?
            .remove(h)
            .map_err(self.e())?;
        txn.open_table(EXTENDED_COMMITS)
            .map_err(self.e())?
            .remove(h)
            .map_err(self.e())?;
        txn.open_table(COMMITS)
            .map_err(self.e())?
            .remove(h.saturating_sub(1))
            .map_err(self.e())?;
        Ok(())
    }
}

fn decode_commit(b: &[u8]) -> Result<Commit, String> {
    let raw = pb::Commit::decode(b).map_err(|e| e.to_string())?;
    Commit::try_from(raw).map_err(|e| e.to_string())
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db {
        path: path.to_owned(),
        source: Box::new(e.into()),
    }
}
