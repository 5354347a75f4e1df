//! The keyed ledger state (docs/spec/ledger.md, "State"): every entity under its own key, read
//! through [`StateRead`], changed through a copy-on-write [`Overlay`], and committed to by the
//! root of a Jellyfish Merkle tree over the committed keys ([`tree`]).
//!
//! A backend (the in-memory [`MemoryState`] here, RocksDB in the node) holds the state after
//! the last block and that state's tree (in memory: it is derived from the committed entries); the rules never see a backend, only a
//! [`StateRead`], so that node, audit and tests run the very same function.

pub mod keys;
mod memory;
mod overlay;
mod prefetch;
pub mod smt;
pub mod tree;

pub use memory::MemoryState;
pub use overlay::{ChangeSet, Overlay};
pub use prefetch::Prefetched;
pub use tree::{verify_proof, ProofError, StateProof, TreeRead};

use borsh::BorshDeserialize;

use crate::types::Hash32;

/// Why the state could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The backend failed (I/O, a missing tree node).
    #[error("state storage: {0}")]
    Storage(String),
    /// Stored bytes do not decode: the database is damaged or from another version.
    #[error("corrupt state entry {key}: {detail}")]
    Corrupt {
        /// The key, hex.
        key: String,
        /// Decoder message.
        detail: String,
    },
}

/// A new version of a state: the changes, the tree they make and its root.
#[derive(Clone, Debug)]
pub struct StateUpdate {
    /// The new version (block height).
    pub version: u64,
    /// Entries written and deleted.
    pub changes: ChangeSet,
    /// The state root of the new version.
    pub root: Hash32,
    /// The tree of the new version (sharing its untouched subtrees with the one before).
    pub tree: smt::Tree,
}

impl StateUpdate {
    /// Computes the root of `changes` applied as `version` on top of the state whose tree
    /// `reader` holds (version `version - 1`; for version 0, an empty state).
    pub fn compute<R: TreeRead + ?Sized>(
        reader: &R,
        version: u64,
        changes: ChangeSet,
    ) -> Result<Self, StateError> {
        let tree = tree::update(reader, &changes)?;
        Ok(Self {
            version,
            changes,
            root: Hash32(tree.root()),
            tree,
        })
    }
}

/// One entry of a scan: key and value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Read access to a state: point lookups and ordered range scans, O(log n) each.
pub trait StateRead: Sync {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;

    /// The values under `keys`, in their order. A backend that reads a sorted batch faster
    /// than one key at a time (RocksDB) overrides it.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StateError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Up to `limit` entries with `from <= key < to`, in key order.
    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Entry>, StateError>;
}

impl<S: StateRead + ?Sized> StateRead for &S {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        (**self).get(key)
    }
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StateError> {
        (**self).get_many(keys)
    }
    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Entry>, StateError> {
        (**self).scan(from, to, limit)
    }
}

/// Decodes a stored value.
pub fn decode_entry<T: BorshDeserialize>(key: &[u8], bytes: &[u8]) -> Result<T, StateError> {
    crate::types::decode(bytes).map_err(|e| StateError::Corrupt {
        key: hex::encode(key),
        detail: e.to_string(),
    })
}

/// Typed reads.
pub trait StateReadExt: StateRead {
    /// The value under `key`, decoded.
    fn read<T: BorshDeserialize>(&self, key: &[u8]) -> Result<Option<T>, StateError> {
        self.get(key)?.map(|b| decode_entry(key, &b)).transpose()
    }

    /// Every entry whose key starts with `prefix`, decoded, in key order.
    fn read_prefix<T: BorshDeserialize>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>, StateError> {
        let end = keys::prefix_end(prefix);
        self.scan(prefix, &end, usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                let t = decode_entry(&k, &v)?;
                Ok((k, t))
            })
            .collect()
    }

    /// The first key starting with `prefix`.
    fn first_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let end = keys::prefix_end(prefix);
        Ok(self
            .scan(prefix, &end, 1)?
            .into_iter()
            .next()
            .map(|(k, _)| k))
    }
}

impl<S: StateRead + ?Sized> StateReadExt for S {}
