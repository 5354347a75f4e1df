//! The validator's durable ledger on RocksDB.
//!
//! Column families: `blocks` (height, big-endian -> block), `certificates` (height -> the
//! consensus commit certificate), `tx_index` (tx id -> height and position), `state` (`current`
//! -> height and ledger state), `pending` (height ++ block hash -> a block proposed or received
//! but not yet decided, so that a restarted validator still has the block its consensus WAL
//! voted for). [`RocksStore::commit_decided`] writes a block, its certificate, its transactions'
//! index entries and the resulting state, and drops the pending blocks it supersedes, in **one**
//! write batch with `sync = true`: after a crash at any point the store holds either everything
//! of a block or nothing of it, and a committed block is on disk before the call returns.

use borsh::{BorshDeserialize, BorshSerialize};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::path::Path;
use veilwatt_verifier::ledger::LedgerState;
use veilwatt_verifier::store::LedgerStore;
use veilwatt_verifier::types::{decode, encode, Block, TxId};

const CF_BLOCKS: &str = "blocks";
const CF_TX_INDEX: &str = "tx_index";
const CF_STATE: &str = "state";
const CF_CERTS: &str = "certificates";
const CF_PENDING: &str = "pending";
const STATE_KEY: &[u8] = b"current";

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

impl RocksStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // The state is rewritten whole at every block (see docs/benchmarks.md): bound the
        // write-ahead log so that old rewrites are flushed and their log files recycled.
        opts.set_max_total_wal_size(128 << 20);
        let cfs = [CF_BLOCKS, CF_TX_INDEX, CF_STATE, CF_CERTS, CF_PENDING]
            .into_iter()
            .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        Ok(Self {
            db: DB::open_cf_descriptors(&opts, path, cfs)?,
        })
    }

    /// Opens an existing database read-only (e.g. to export while the node runs).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let opts = Options::default();
        let cfs = [CF_BLOCKS, CF_TX_INDEX, CF_STATE, CF_CERTS, CF_PENDING]
            .into_iter()
            .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        Ok(Self {
            db: DB::open_cf_descriptors_read_only(&opts, path, cfs, false)?,
        })
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or(StoreError::MissingColumnFamily(name))
    }

    /// Height of the last committed block (0 before the first).
    pub fn height(&self) -> Result<u64, StoreError> {
        Ok(self.state()?.map_or(0, |s| s.height))
    }

    /// Where a committed transaction is.
    pub fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError> {
        self.db
            .get_cf(self.cf(CF_TX_INDEX)?, id.0)?
            .map(|b| decode(&b).map_err(corrupt("tx index")))
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

    /// Commits a decided block with its certificate; see the module documentation.
    pub fn commit_decided(
        &self,
        block: &Block,
        state: &LedgerState,
        certificate: &[u8],
    ) -> Result<(), StoreError> {
        let at = self.height()?;
        if block.height != at + 1 || state.height != block.height {
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
        batch.put_cf(self.cf(CF_STATE)?, STATE_KEY, encode(state));
        let end = (block.height + 1).to_be_bytes();
        batch.delete_range_cf(self.cf(CF_PENDING)?, [0u8; 8], end);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    /// Approximate on-disk size of the live data, bytes.
    pub fn disk_size(&self) -> u64 {
        [CF_BLOCKS, CF_CERTS, CF_TX_INDEX, CF_STATE]
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .filter_map(|cf| {
                self.db
                    .property_int_value_cf(cf, "rocksdb.total-sst-files-size")
                    .ok()
                    .flatten()
            })
            .sum()
    }
}

impl LedgerStore for RocksStore {
    type Error = StoreError;

    fn state(&self) -> Result<Option<LedgerState>, StoreError> {
        self.db
            .get_cf(self.cf(CF_STATE)?, STATE_KEY)?
            .map(|b| decode(&b).map_err(corrupt("state")))
            .transpose()
    }

    fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.db
            .get_cf(self.cf(CF_BLOCKS)?, height.to_be_bytes())?
            .map(|b| decode(&b).map_err(corrupt("block")))
            .transpose()
    }

    fn commit(&mut self, block: &Block, state: &LedgerState) -> Result<(), StoreError> {
        self.commit_decided(block, state, &[])
    }
}
