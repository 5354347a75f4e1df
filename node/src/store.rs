//! The validator's durable ledger on RocksDB.
//!
//! Column families: `blocks` (height, big-endian -> block), `certificates` (height -> the
//! consensus commit certificate), `tx_index` (tx id -> height and position), `kv` (the keyed
//! ledger state, [`veilwatt_verifier::state::keys`] -> value: one entry per entity), `archive`
//! (the entries under the [`keys::ARCHIVE`] tag: period results older than the genesis
//! retention window, which the rules moved out of the committed state; kept apart so that the
//! working set of `kv` stays the size of the live state), `pending` (height ++ block hash -> a
//! block proposed or received but not yet decided, so that a restarted validator still has the
//! block its consensus WAL voted for).
//!
//! [`RocksStore::commit_decided`] writes a block, its certificate, its transactions' index
//! entries and the entries the block changed, and drops the pending blocks it supersedes, in
//! **one** write batch with `sync = true`: after a crash at any point the store holds either
//! everything of a block or nothing of it, and a committed block is on disk before the call
//! returns. A block writes what it changes, not the state: its cost follows its size, not the
//! ledger's.
//!
//! The state root's tree is not stored: it follows from the committed entries, so the store
//! builds it in memory when it opens (checking its root against the last block's) and keeps
//! it up to date at every commit. A commit then writes one entry per changed key and nothing
//! for the tree (with jmt's stored nodes, ~6 tree nodes per changed key; decision 0007). The
//! tree a commit replaces is freed on a thread of its own, off the commit's path.

use borsh::{BorshDeserialize, BorshSerialize};
use rayon::prelude::*;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction, IteratorMode, Options,
    ReadOptions, Snapshot, WriteBatch, WriteOptions, DB,
};
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use veilwatt_verifier::ledger::LedgerRead;
use veilwatt_verifier::state::smt::{KeyHash, Tree, ValueHash};
use veilwatt_verifier::state::{
    keys, tree, Entry, StateError, StateProof, StateRead, StateReadExt, StateUpdate, TreeRead,
};
use veilwatt_verifier::types::{decode, encode, Block, TxId};

const CF_BLOCKS: &str = "blocks";
const CF_TX_INDEX: &str = "tx_index";
const CF_KV: &str = "kv";
const CF_CERTS: &str = "certificates";
const CF_PENDING: &str = "pending";
const CF_ARCHIVE: &str = "archive";
const ALL_CFS: [&str; 6] = [
    CF_BLOCKS,
    CF_TX_INDEX,
    CF_KV,
    CF_CERTS,
    CF_PENDING,
    CF_ARCHIVE,
];
/// The column family of jmt's tree nodes, before the tree was kept in memory: dropped when
/// such a store is opened (its entries are the same, and so is its root).
const OLD_TREE_CF: &str = "tree";
/// The column family of the version-1 store (the whole state as one value).
const OLD_STATE_CF: &str = "state";

/// The column family holding a state key.
fn column_of(key: &[u8]) -> &'static str {
    if key.first() == Some(&keys::ARCHIVE) {
        CF_ARCHIVE
    } else {
        CF_KV
    }
}
/// Block cache of the state column family.
const CACHE_BYTES: usize = 256 << 20;
/// Memtable of the state column family.
const MEMTABLE_BYTES: usize = 8 << 20;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// Stored bytes do not decode: the database is damaged or from another version.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Decoder message.
        detail: String,
    },
    /// A block was committed out of order.
    #[error("commit out of order: store is at height {at}, block has height {got}")]
    OutOfOrder {
        /// Current height.
        at: u64,
        /// The block's height.
        got: u64,
    },
    /// A column family is missing (not a Veilwatt database).
    #[error("missing column family {0}")]
    MissingColumnFamily(&'static str),
    /// A database written by an earlier format (Veilwatt 1's whole-state values, keyed state
    /// before transactions carried an expiry, or before the order indexes became local).
    #[error(
        "{0} holds a ledger of an earlier format (version 1's single state value, \
         transactions without an expiry, or committed order indexes); this version cannot read \
         it: start the chain again from its genesis in a new data directory"
    )]
    OldFormat(String),
    /// The keyed state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Where a committed transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
}

/// The ledger on RocksDB.
pub struct RocksStore {
    db: DB,
    /// The committed state's tree. A commit holds the write lock from before its write batch
    /// until the tree is the new one, so a snapshot (taken under the read lock) sees entries
    /// and tree of one version.
    tree: RwLock<Tree>,
    /// Where a commit leaves the tree it replaced.
    retired: Retired,
}

/// Frees the trees that commits replace on a thread of their own. A block's changes
/// supersede ~10^5 tree nodes at a million keys, and freeing them is a walk over cold memory
/// that took ~10 ms of every commit (decision 0007). At most two trees wait: a commit that
/// finds both places taken frees its own.
struct Retired {
    to_free: Option<SyncSender<Tree>>,
    thread: Option<JoinHandle<()>>,
}

impl Retired {
    fn start() -> Self {
        let (to_free, freed) = sync_channel::<Tree>(2);
        let thread = std::thread::Builder::new()
            .name("state-tree-free".into())
            .spawn(move || freed.into_iter().for_each(drop));
        match thread {
            Ok(thread) => Self {
                to_free: Some(to_free),
                thread: Some(thread),
            },
            // Without the thread, commits free their trees themselves.
            Err(_) => Self {
                to_free: None,
                thread: None,
            },
        }
    }

    /// Frees `tree` on the thread, or here if the thread has two waiting or is gone.
    fn free(&self, tree: Tree) {
        if let Some(to_free) = &self.to_free {
            // A refused tree comes back in the error, and is freed with it.
            let _ = to_free.try_send(tree);
        }
    }
}

impl Drop for Retired {
    fn drop(&mut self) {
        self.to_free = None;
        if let Some(thread) = self.thread.take() {
            // The thread ends once it has freed what it was given; it cannot panic.
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.db.path())
            .finish()
    }
}

fn corrupt(what: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    }
}

fn descriptors() -> Vec<ColumnFamilyDescriptor> {
    let cache = Cache::new_lru_cache(CACHE_BYTES);
    ALL_CFS
        .into_iter()
        .map(|name| {
            let mut o = Options::default();
            if name == CF_KV {
                let mut t = BlockBasedOptions::default();
                t.set_block_cache(&cache);
                // Most reads are point lookups of keys that exist or of absent keys (replay
                // checks, free slots): a bloom filter answers the absent ones without I/O.
                t.set_bloom_filter(10.0, false);
                t.set_cache_index_and_filter_blocks(true);
                o.set_block_based_table_factory(&t);
                // A block inserts ~10^4 entries into the memtable, a skip list whose search
                // is a walk over cold memory: a memtable of 8 MB instead of the default 64 MB
                // stays in the CPU's caches, and commits took ~30% less (decision 0007).
                o.set_write_buffer_size(MEMTABLE_BYTES);
            }
            ColumnFamilyDescriptor::new(name, o)
        })
        .collect()
}

fn refuse_old_format(path: &Path) -> Result<(), StoreError> {
    let cfs = DB::list_cf(&Options::default(), path).unwrap_or_default();
    // An existing database without the archive column predates expiring transactions.
    let predates_expiry = cfs.iter().any(|c| c == CF_KV) && !cfs.iter().any(|c| c == CF_ARCHIVE);
    if cfs.iter().any(|c| c == OLD_STATE_CF) || predates_expiry {
        return Err(StoreError::OldFormat(path.display().to_string()));
    }
    Ok(())
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path`, and builds the state's tree.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        refuse_old_format(path)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_total_wal_size(128 << 20);
        let has_old_tree = DB::list_cf(&Options::default(), path)
            .unwrap_or_default()
            .iter()
            .any(|c| c == OLD_TREE_CF);
        let mut cfs = descriptors();
        if has_old_tree {
            cfs.push(ColumnFamilyDescriptor::new(OLD_TREE_CF, Options::default()));
        }
        let mut db = DB::open_cf_descriptors(&opts, path, cfs)?;
        if has_old_tree {
            db.drop_cf(OLD_TREE_CF)?;
        }
        Self::with_tree(db)
    }

    /// Opens an existing database read-only (e.g. to export while the node runs).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        refuse_old_format(path)?;
        // A read-only open may leave out column families (an earlier format's `tree`).
        let db =
            DB::open_cf_descriptors_read_only(&Options::default(), path, descriptors(), false)?;
        Self::with_tree(db)
    }

    /// The store over `db`, its tree built from the committed entries and checked against
    /// the root the last block commits.
    fn with_tree(db: DB) -> Result<Self, StoreError> {
        let store = Self {
            db,
            tree: RwLock::default(),
            retired: Retired::start(),
        }
        .refuse_retired_keys()?;
        let tree = store.build_tree()?;
        let height = store.live().meta()?.height;
        if height > 0 {
            let block = store.block(height)?.ok_or(StoreError::Corrupt {
                what: "chain",
                detail: format!("the state is at height {height}, whose block is missing"),
            })?;
            if block.state_root.0 != tree.root() {
                return Err(StoreError::Corrupt {
                    what: "state",
                    detail: format!(
                        "the entries' root {} is not the root {} block {height} commits",
                        hex::encode(tree.root()),
                        block.state_root
                    ),
                });
            }
        }
        *store.tree_mut() = tree;
        Ok(store)
    }

    /// The tree of the committed entries, read in key order and hashed in parallel batches.
    fn build_tree(&self) -> Result<Tree, StoreError> {
        const BATCH: usize = 1 << 16;
        let cf = self.cf(CF_KV)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(vec![keys::LOCAL]);
        type Raw = (Box<[u8]>, Box<[u8]>);
        fn hash(batch: &mut Vec<Raw>, leaves: &mut Vec<(KeyHash, ValueHash)>) {
            leaves.par_extend(batch.par_drain(..).map(|(k, v)| tree::leaf(&k, &v)));
        }
        let mut leaves = Vec::new();
        let mut batch = Vec::with_capacity(BATCH);
        for item in self.db.iterator_cf_opt(cf, ro, IteratorMode::Start) {
            batch.push(item?);
            if batch.len() == BATCH {
                hash(&mut batch, &mut leaves);
            }
        }
        hash(&mut batch, &mut leaves);
        Ok(Tree::from_leaves(leaves))
    }

    fn tree_read(&self) -> RwLockReadGuard<'_, Tree> {
        self.tree.read().unwrap_or_else(|e| e.into_inner())
    }

    fn tree_mut(&self) -> RwLockWriteGuard<'_, Tree> {
        self.tree.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a state holding entries under a retired tag ([`keys::RETIRED`]): it was
    /// written by an earlier format, whose state root committed them.
    fn refuse_retired_keys(self) -> Result<Self, StoreError> {
        for tag in keys::RETIRED {
            if self.live().first_key(&[tag])?.is_some() {
                return Err(StoreError::OldFormat(self.db.path().display().to_string()));
            }
        }
        Ok(self)
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or(StoreError::MissingColumnFamily(name))
    }

    /// The committed state as it is now (each read sees the latest commit).
    pub fn live(&self) -> StoreView<'_> {
        StoreView {
            store: self,
            snapshot: None,
        }
    }

    /// The committed state frozen at this instant: every read through it, of entries or of
    /// the tree, sees one version, whatever is committed meanwhile.
    pub fn snapshot(&self) -> StoreView<'_> {
        let tree = self.tree_read();
        StoreView {
            store: self,
            snapshot: Some((self.db.snapshot(), tree.clone())),
        }
    }

    /// Whether the genesis state was written.
    pub fn is_initialized(&self) -> Result<bool, StoreError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_KV)?, veilwatt_verifier::state::keys::meta())?
            .is_some())
    }

    /// Writes the genesis state (version 0) into an empty store.
    pub fn init_genesis(&self, update: &StateUpdate) -> Result<(), StoreError> {
        if self.is_initialized()? {
            return Err(StoreError::OutOfOrder { at: 0, got: 0 });
        }
        let mut batch = WriteBatch::default();
        self.write_update(&mut batch, update)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut tree = self.tree_mut();
        self.db.write_opt(batch, &wo)?;
        *tree = update.tree.clone();
        Ok(())
    }

    /// Height of the last committed block (0 before the first).
    pub fn height(&self) -> Result<u64, StoreError> {
        Ok(self.live().meta()?.height)
    }

    /// Where a committed transaction is.
    pub fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError> {
        self.db
            .get_cf(self.cf(CF_TX_INDEX)?, id.0)?
            .map(|b| decode(&b).map_err(corrupt("tx index")))
            .transpose()
    }

    /// The committed block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.db
            .get_cf(self.cf(CF_BLOCKS)?, height.to_be_bytes())?
            .map(|b| decode(&b).map_err(corrupt("block")))
            .transpose()
    }

    /// The encoded commit certificate of the block at `height`.
    pub fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_CERTS)?, height.to_be_bytes())?)
    }

    /// Remembers a block proposed or received for a height not yet decided (synced).
    pub fn put_pending(&self, block: &Block) -> Result<(), StoreError> {
        let mut key = block.height.to_be_bytes().to_vec();
        key.extend_from_slice(&block.hash().0);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .put_cf_opt(self.cf(CF_PENDING)?, key, encode(block), &wo)?;
        Ok(())
    }

    /// Pending blocks for `height`.
    pub fn pending(&self, height: u64) -> Result<Vec<Block>, StoreError> {
        let cf = self.cf(CF_PENDING)?;
        let prefix = height.to_be_bytes();
        let mut out = Vec::new();
        for item in self.db.prefix_iterator_cf(cf, prefix) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(decode(&v).map_err(corrupt("pending block"))?);
        }
        Ok(out)
    }

    fn write_update(&self, batch: &mut WriteBatch, update: &StateUpdate) -> Result<(), StoreError> {
        for (k, v) in &update.changes {
            let cf = self.cf(column_of(k))?;
            match v {
                Some(v) => batch.put_cf(cf, k, v),
                None => batch.delete_cf(cf, k),
            }
        }
        Ok(())
    }

    /// Commits a decided block with its certificate and the state update it produced (see
    /// the module documentation). Returns the size of the write batch, bytes.
    pub fn commit_decided(
        &self,
        block: &Block,
        update: &StateUpdate,
        certificate: &[u8],
    ) -> Result<usize, StoreError> {
        let at = self.height()?;
        if block.height != at + 1 || update.version != block.height {
            return Err(StoreError::OutOfOrder {
                at,
                got: block.height,
            });
        }
        let mut batch = WriteBatch::default();
        let key = block.height.to_be_bytes();
        batch.put_cf(self.cf(CF_BLOCKS)?, key, encode(block));
        batch.put_cf(self.cf(CF_CERTS)?, key, certificate);
        let index = self.cf(CF_TX_INDEX)?;
        for (i, tx) in block.txs.iter().enumerate() {
            let loc = TxLocation {
                height: block.height,
                index: i as u32,
            };
            batch.put_cf(index, tx.id().0, encode(&loc));
        }
        self.write_update(&mut batch, update)?;
        let end = (block.height + 1).to_be_bytes();
        batch.delete_range_cf(self.cf(CF_PENDING)?, [0u8; 8], end);
        let bytes = batch.size_in_bytes();
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut tree = self.tree_mut();
        self.db.write_opt(batch, &wo)?;
        let replaced = std::mem::replace(&mut *tree, update.tree.clone());
        drop(tree);
        self.retired.free(replaced);
        Ok(bytes)
    }

    /// Writes every memtable to disk (benchmarks measure bytes on disk after it).
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in ALL_CFS {
            self.db.flush_cf(self.cf(name)?)?;
        }
        Ok(())
    }

    /// Waits, at most `max`, until RocksDB has no flush or compaction running or pending;
    /// returns whether it got there. Benchmarks measure blocks on a settled store, not one
    /// still compacting what their setup wrote a moment before.
    pub fn settle(&self, max: std::time::Duration) -> Result<bool, StoreError> {
        const BUSY: [&str; 4] = [
            "rocksdb.mem-table-flush-pending",
            "rocksdb.compaction-pending",
            "rocksdb.num-running-flushes",
            "rocksdb.num-running-compactions",
        ];
        let start = std::time::Instant::now();
        loop {
            let mut busy = false;
            for name in ALL_CFS {
                let cf = self.cf(name)?;
                for p in BUSY {
                    busy |= self.db.property_int_value_cf(cf, p)?.unwrap_or(0) > 0;
                }
            }
            if !busy {
                return Ok(true);
            }
            if start.elapsed() >= max {
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Approximate on-disk size of the live data, bytes.
    pub fn disk_size(&self) -> u64 {
        [CF_BLOCKS, CF_CERTS, CF_TX_INDEX, CF_KV, CF_ARCHIVE]
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .map(|cf| {
                [
                    "rocksdb.total-sst-files-size",
                    "rocksdb.cur-size-all-mem-tables",
                ]
                .iter()
                .filter_map(|p| self.db.property_int_value_cf(cf, *p).ok().flatten())
                .sum::<u64>()
            })
            .sum()
    }
}

/// The committed state read from RocksDB, live or at a snapshot.
pub struct StoreView<'a> {
    store: &'a RocksStore,
    /// For a frozen view: the database snapshot and the tree of the same version.
    snapshot: Option<(Snapshot<'a>, Tree)>,
}

impl std::fmt::Debug for StoreView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreView")
            .field("snapshot", &self.snapshot.is_some())
            .finish()
    }
}

fn rocks(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(format!("rocksdb: {e}"))
}

impl StoreView<'_> {
    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StateError> {
        self.store
            .db
            .cf_handle(name)
            .ok_or_else(|| StateError::Storage(format!("missing column family {name}")))
    }

    fn get_cf(&self, name: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let cf = self.cf(name)?;
        match &self.snapshot {
            Some((s, _)) => s.get_cf(cf, key),
            None => self.store.db.get_cf(cf, key),
        }
        .map_err(rocks)
    }

    /// An inclusion or non-inclusion proof of `key` in this state.
    pub fn prove(&self, key: &[u8]) -> Result<StateProof, StateError> {
        let height = self.meta()?.height;
        let value = self.get(key)?;
        tree::prove(self, height, key, value.as_deref())
    }

    /// Entries of `[from, to)` within one column family, at most `limit`, appended to `out`.
    fn scan_cf(
        &self,
        name: &'static str,
        from: &[u8],
        to: &[u8],
        limit: usize,
        out: &mut Vec<Entry>,
    ) -> Result<(), StateError> {
        if from >= to || limit == 0 {
            return Ok(());
        }
        let cf = self.cf(name)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(to.to_vec());
        let mode = IteratorMode::From(from, Direction::Forward);
        let iter = match &self.snapshot {
            Some((s, _)) => s.iterator_cf_opt(cf, ro, mode),
            None => self.store.db.iterator_cf_opt(cf, ro, mode),
        };
        for item in iter.take(limit) {
            let (k, v) = item.map_err(rocks)?;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(())
    }
}

impl StateRead for StoreView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.get_cf(column_of(key), key)
    }

    /// Keys of the state's column, sorted, are read as RocksDB batches (one pass over each
    /// level's files for a batch), a part per thread; others one at a time.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StateError> {
        const MIN_PART: usize = 64;
        if !keys.is_sorted() || keys.iter().any(|k| column_of(k) != CF_KV) {
            return keys.iter().map(|k| self.get(k)).collect();
        }
        let part = keys
            .len()
            .div_ceil(rayon::current_num_threads())
            .max(MIN_PART);
        let parts = keys
            .par_chunks(part)
            .map(|part| {
                let cf = self.cf(CF_KV)?;
                let mut ro = ReadOptions::default();
                if let Some((snapshot, _)) = &self.snapshot {
                    ro.set_snapshot(snapshot);
                }
                self.store
                    .db
                    .batched_multi_get_cf_opt(cf, part, true, &ro)
                    .into_iter()
                    .map(|v| Ok(v.map_err(rocks)?.map(|v| v.to_vec())))
                    .collect::<Result<Vec<_>, StateError>>()
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        Ok(parts.concat())
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Entry>, StateError> {
        // The key space in order: `kv` below the archive tag, `archive`, `kv` above it.
        let (archive, above) = ([keys::ARCHIVE], [keys::ARCHIVE + 1]);
        let mut out = Vec::new();
        for (name, lo, hi) in [
            (CF_KV, from, to.min(&archive[..])),
            (CF_ARCHIVE, from.max(&archive[..]), to.min(&above[..])),
            (CF_KV, from.max(&above[..]), to),
        ] {
            let left = limit - out.len();
            self.scan_cf(name, lo, hi, left, &mut out)?;
        }
        Ok(out)
    }
}

impl TreeRead for StoreView<'_> {
    fn tree(&self) -> Result<Tree, StateError> {
        Ok(match &self.snapshot {
            Some((_, tree)) => tree.clone(),
            None => self.store.tree_read().clone(),
        })
    }
}
