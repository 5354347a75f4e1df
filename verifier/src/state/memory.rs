//! The state in memory: the audit's replay, tests and benchmarks. Keeps only the latest version
//! of the tree (stale nodes are dropped at each commit), so memory follows the size of the
//! state, not its history.

use std::collections::BTreeMap;
use std::ops::Bound;

use jmt::storage::{NibblePath, Node, NodeKey};
use jmt::Version;

use super::tree::{self, StateProof};
use super::{Entry, StateError, StateRead, StateUpdate};
use crate::types::Hash32;

/// Entries and tree nodes of one version of the state.
#[derive(Clone, Debug, Default)]
pub struct MemoryState {
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    nodes: BTreeMap<NodeKey, Node>,
    version: Option<Version>,
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
        for stale in &update.tree.stale_node_index_batch {
            self.nodes.remove(&stale.node_key);
        }
        for (k, n) in update.tree.node_batch.nodes() {
            self.nodes.insert(k.clone(), n.clone());
        }
        self.version = Some(update.version);
        self.root = update.root;
    }

    /// The state at `version` holding exactly `entries` (a snapshot restored without its
    /// history, every value `Some`): its tree is built from scratch at that version, so its
    /// root commits to exactly these entries and later versions apply on top of it.
    pub fn restore(version: Version, entries: super::ChangeSet) -> Result<Self, StateError> {
        let mut m = MemoryState::default();
        // The tree code reads the root of the version before; there is none: an empty tree.
        let before = match version.checked_sub(1) {
            Some(v) => Some(NodeKey::new(v, root_path()?)),
            None => None,
        };
        if let Some(k) = &before {
            m.nodes.insert(k.clone(), Node::Null);
        }
        let update = StateUpdate::compute(&m, version, entries)?;
        m.commit(update);
        if let Some(k) = &before {
            m.nodes.remove(k);
        }
        Ok(m)
    }

    /// The version (height) of the state; `None` before genesis.
    pub fn version(&self) -> Option<Version> {
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

    /// Number of tree nodes held.
    pub fn tree_nodes(&self) -> usize {
        self.nodes.len()
    }

    #[cfg(test)]
    pub(crate) fn insert_raw(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.kv.insert(k, v);
    }
}

/// The (empty) nibble path of a root node key, which jmt does not let us construct: taken from
/// the root of a one-entry tree.
fn root_path() -> Result<NibblePath, StateError> {
    let mut one = super::ChangeSet::new();
    one.insert(super::keys::meta(), Some(Vec::new()));
    let u = StateUpdate::compute(&MemoryState::default(), 0, one)?;
    u.tree
        .node_batch
        .nodes()
        .keys()
        .map(|k| k.nibble_path())
        .find(|p| p.num_nibbles() == 0)
        .cloned()
        .ok_or_else(|| StateError::Storage("a tree without a root".into()))
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

crate::impl_tree_reader!(MemoryState, |this, key| Ok(this.nodes.get(key).cloned()));
