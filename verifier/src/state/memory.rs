//! The state in memory: the audit's replay, tests and benchmarks. Keeps only the latest version
//! of the tree (a commit drops the nodes the new version no longer shares), so memory follows
//! the size of the state, not its history.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::smt::Tree;
use super::tree::{self, StateProof, TreeRead};
use super::{Entry, StateError, StateRead, StateUpdate};
use crate::types::Hash32;

/// Entries and tree of one version of the state.
#[derive(Clone, Debug, Default)]
pub struct MemoryState {
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    tree: Tree,
    version: Option<u64>,
    root: Hash32,
}

impl MemoryState {
    /// Stores `update` (computed over this state) as the new version.
    pub fn commit(&mut self, update: StateUpdate) {
        for (k, v) in update.changes {
            match v {
                Some(v) => self.kv.insert(k, v),
                None => self.kv.remove(&k),
            };
        }
        self.tree = update.tree;
        self.version = Some(update.version);
        self.root = update.root;
    }

    /// The state at `version` holding exactly `entries` (a snapshot restored without its
    /// history, every value `Some`): its tree is built from these entries, so its root
    /// commits to exactly them and later versions apply on top of it.
    pub fn restore(version: u64, entries: super::ChangeSet) -> Result<Self, StateError> {
        let tree = tree::from_entries(&entries);
        let kv = entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        Ok(MemoryState {
            kv,
            root: Hash32(tree.root()),
            tree,
            version: Some(version),
        })
    }

    /// The version (height) of the state; `None` before genesis.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The state root.
    pub fn root(&self) -> Hash32 {
        self.root
    }

    /// An inclusion or non-inclusion proof for `key` against [`MemoryState::root`].
    pub fn prove(&self, key: &[u8]) -> Result<StateProof, StateError> {
        let version = self
            .version
            .ok_or_else(|| StateError::Storage("no state yet".into()))?;
        tree::prove(self, version, key, self.kv.get(key).map(Vec::as_slice))
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.kv.iter()
    }

    /// Empties the values under `prefix`, keeping their keys and the tree (which holds the
    /// values' hashes, so roots and later updates are unchanged): for a reader that will not
    /// read those values again. Reads then return empty values, and [`MemoryState::prove`]
    /// refuses those keys (their values no longer match the tree's hashes).
    pub fn forget_values(&mut self, prefix: &[u8]) {
        let end = super::keys::prefix_end(prefix);
        for (_, v) in self
            .kv
            .range_mut::<[u8], _>((Bound::Included(prefix), Bound::Excluded(end.as_slice())))
        {
            *v = Vec::new();
        }
    }

    #[cfg(test)]
    pub(crate) fn insert_raw(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.kv.insert(k, v);
    }
}

impl StateRead for MemoryState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.kv.get(key).cloned())
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Entry>, StateError> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(self
            .kv
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl TreeRead for MemoryState {
    fn tree(&self) -> Result<Tree, StateError> {
        Ok(self.tree.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ChangeSet;

    fn update(s: &MemoryState, version: u64, changes: &[(u8, Option<u8>)]) -> StateUpdate {
        let changes: ChangeSet = changes
            .iter()
            .map(|(k, v)| (vec![0x06, *k], v.map(|v| vec![v; 40])))
            .collect();
        StateUpdate::compute(s, version, changes).unwrap()
    }

    #[test]
    fn forgotten_values_keep_their_keys_and_every_later_root() {
        let mut whole = MemoryState::default();
        whole.commit(update(
            &whole,
            0,
            &[(1, Some(1)), (2, Some(2)), (3, Some(3))],
        ));
        let mut thin = whole.clone();
        thin.forget_values(&[0x06]);
        assert_eq!(thin.root(), whole.root());
        assert_eq!(thin.get(&[0x06, 2]).unwrap(), Some(Vec::new()));
        assert!(thin.prove(&[0x06, 2]).is_err());
        assert!(whole.prove(&[0x06, 2]).is_ok());
        let keys = |s: &MemoryState| -> Vec<Vec<u8>> {
            s.scan(&[0x06], &[0x07], usize::MAX)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(keys(&thin), keys(&whole));
        // Deleting a forgotten entry, rewriting one and adding one: the same roots as with
        // the values kept.
        let changes = [(1, None), (2, Some(9)), (4, Some(4))];
        whole.commit(update(&whole, 1, &changes));
        thin.commit(update(&thin, 1, &changes));
        assert_eq!(thin.root(), whole.root());
        assert_eq!(keys(&thin), keys(&whole));
        assert_eq!(thin.get(&[0x06, 2]).unwrap(), Some(vec![9; 40]));
    }
}
