//! The validator's durable ledger on RocksDB.
//!
//! Column families: `blocks` (height, big-endian -> block), `tx_index` (tx id -> height and
//! position), `state` (`current` -> height and ledger state). [`RocksStore::commit`] writes a
//! block, its transactions' index entries and the resulting state in **one** write batch with
//! `sync = true`: after a crash at any point the store holds either everything of a block or
//! nothing of it, and a committed block is on disk before `commit` returns.

use borsh::{BorshDeserialize, BorshSerialize};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::path::Path;
use veilwatt_verifier::ledger::LedgerState;
use veilwatt_verifier::store::LedgerStore;
use veilwatt_verifier::types::{decode, encode, Block, TxId};

const CF_BLOCKS: &str = "blocks";
const CF_TX_INDEX: &str = "tx_index";
const CF_STATE: &str = "state";
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
        let cfs = [CF_BLOCKS, CF_TX_INDEX, CF_STATE]
            .into_iter()
            .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        Ok(Self {
            db: DB::open_cf_descriptors(&opts, path, cfs)?,
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
        let at = self.height()?;
        if block.height != at + 1 || state.height != block.height {
            return Err(StoreError::OutOfOrder {
                at,
                got: block.height,
            });
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_BLOCKS)?,
            block.height.to_be_bytes(),
            encode(block),
        );
        let index = self.cf(CF_TX_INDEX)?;
        for (i, tx) in block.txs.iter().enumerate() {
            let loc = TxLocation {
                height: block.height,
                index: i as u32,
            };
            batch.put_cf(index, tx.id().0, encode(&loc));
        }
        batch.put_cf(self.cf(CF_STATE)?, STATE_KEY, encode(state));
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }
}
