//! The meter registry's ledger state (docs/spec/ledger.md, "Meter registry"; decision 0008):
//! the nodes of the registry tree under keys of the committed state, the recent roots an
//! unlinkable order may prove against, and each meter's enrolment.
//!
//! The tree algorithm is the circuits crate's [`Registry`]; this module feeds it exactly the
//! nodes one update reads (the [`DEPTH`] siblings of the changed leaf) and writes back the
//! [`DEPTH`] + 1 nodes it changes, so an enrolment or a revocation costs 20 reads, 21 writes
//! and 20 hashes whatever the registry's size, and reading the root costs one read.
//!
//! Root history: the root as each block leaves it is recorded (if it changed), and an order
//! may prove against any of the last `K` recorded ones (genesis `anonymous.registry_history`)
//! — except that a revocation *cuts* the history: every root recorded before it stops being
//! valid at once, so a revoked meter can prove against no tree in which it was live.

use ark_bn254::Fr;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use veilwatt_circuits::merkle::EMPTY;
use veilwatt_circuits::registry::{NodeStore, Registry, RegistryError, RegistryPath, DEPTH};

use crate::state::{keys, Overlay, StateError, StateRead, StateReadExt};
use crate::types::FieldBytes;

/// A meter's enrolment in the registry (public: the registrar's transaction names the meter).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Enrolment {
    /// The leaf's position.
    pub position: u32,
    /// The household's nullifier-key commitment the leaf holds.
    pub nk_commit: FieldBytes,
    /// Revoked: the leaf is `0` and the meter backs no new order.
    pub revoked: bool,
}

/// What [`keys::registry`] holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RegistryRecord {
    /// Positions used (live or revoked): the next enrolment's position.
    pub size: u64,
    /// Roots recorded so far: the next root's sequence number.
    pub roots_recorded: u64,
    /// Sequence number of the oldest root still valid: the roots recorded before the last
    /// revocation are not.
    pub valid_from: u64,
}

/// Why a registry update was refused. The state is unchanged on every error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryUpdateError {
    /// The tree refused (full, unknown position, zero leaf).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

fn corrupt(key: &[u8], detail: &str) -> StateError {
    StateError::Corrupt {
        key: hex::encode(key),
        detail: detail.to_owned(),
    }
}

/// The registry's record (all zero before the first enrolment).
pub fn record(state: &dyn StateRead) -> Result<RegistryRecord, StateError> {
    Ok(state.read(&keys::registry())?.unwrap_or_default())
}

fn level_byte(level: usize) -> u8 {
    // `level <= DEPTH = 20`.
    u8::try_from(level).unwrap_or(u8::MAX)
}

/// The stored node at (`level`, `index`), if one was written.
fn stored_node(state: &dyn StateRead, level: usize, index: u64) -> Result<Option<Fr>, StateError> {
    let key = keys::registry_node(level_byte(level), index);
    state
        .read::<FieldBytes>(&key)?
        .map(|b| {
            b.to_field()
                .ok_or_else(|| corrupt(&key, "a registry node is not a field element"))
        })
        .transpose()
}

fn node(state: &dyn StateRead, level: usize, index: u64) -> Result<Fr, StateError> {
    Ok(stored_node(state, level, index)?.unwrap_or(EMPTY[level]))
}

/// The registry's current root (not necessarily recorded yet: see [`record_root`]).
pub fn root(state: &dyn StateRead) -> Result<FieldBytes, StateError> {
    Ok(FieldBytes::from_field(node(state, DEPTH, 0)?))
}

/// The leaf at `position` (`0` if revoked or never enrolled).
pub fn leaf(state: &dyn StateRead, position: u64) -> Result<FieldBytes, StateError> {
    Ok(FieldBytes::from_field(node(state, 0, position)?))
}

/// The authentication path of `position` in the current tree, if it was ever enrolled.
pub fn path(state: &dyn StateRead, position: u64) -> Result<Option<RegistryPath>, StateError> {
    if position >= record(state)?.size {
        return Ok(None);
    }
    let nodes = PathNodes::load(state, position)?;
    Ok(Registry(nodes).path(position))
}

/// The leaves of positions `from..` (at most `limit`), with their positions: what a wallet
/// needs to rebuild the tree and its own path without telling anyone which leaf is its own.
pub fn leaves(
    state: &dyn StateRead,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, FieldBytes)>, StateError> {
    let size = record(state)?.size;
    if from >= size {
        return Ok(Vec::new());
    }
    let end = keys::registry_node(0, size);
    state
        .scan(&keys::registry_node(0, from), &end, limit)?
        .into_iter()
        .map(|(k, v)| {
            let position = keys::u64_at(&k, 2).ok_or_else(|| corrupt(&k, "bad node key"))?;
            Ok((position, crate::state::decode_entry(&k, &v)?))
        })
        .collect()
}

/// The nodes one update of one position reads (its path's siblings) and the ones it writes.
struct PathNodes {
    nodes: BTreeMap<(usize, u64), Fr>,
    written: BTreeMap<(usize, u64), Fr>,
    size: u64,
}

impl PathNodes {
    fn load(state: &dyn StateRead, position: u64) -> Result<Self, StateError> {
        let mut nodes = BTreeMap::new();
        for level in 0..DEPTH {
            let index = (position >> level) ^ 1;
            if let Some(v) = stored_node(state, level, index)? {
                nodes.insert((level, index), v);
            }
        }
        Ok(Self {
            nodes,
            written: BTreeMap::new(),
            size: record(state)?.size,
        })
    }
}

impl NodeStore for PathNodes {
    fn node(&self, level: usize, index: u64) -> Option<Fr> {
        self.nodes.get(&(level, index)).copied()
    }

    fn set_node(&mut self, level: usize, index: u64, value: Fr) {
        self.nodes.insert((level, index), value);
        self.written.insert((level, index), value);
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn set_size(&mut self, size: u64) {
        self.size = size;
    }
}

/// Writes an update's nodes and size.
fn store(state: &mut Overlay<'_>, nodes: PathNodes) -> Result<(), StateError> {
    for ((level, index), value) in nodes.written {
        state.put(
            keys::registry_node(level_byte(level), index),
            &FieldBytes::from_field(value),
        );
    }
    let mut rec = record(state)?;
    rec.size = nodes.size;
    state.put(keys::registry(), &rec);
    Ok(())
}

/// Appends `leaf` at the next position; returns the position. All or nothing.
pub fn enrol(state: &mut Overlay<'_>, leaf: Fr) -> Result<u32, RegistryUpdateError> {
    let position = record(state)?.size;
    let mut registry = Registry(PathNodes::load(state, position)?);
    let p = registry.enrol(leaf)?;
    store(state, registry.0)?;
    Ok(p)
}

/// Replaces the leaf at `position` with `0` and cuts the root history: no root recorded so
/// far is valid any more (the one this block leaves is the next valid one). All or nothing.
pub fn revoke(state: &mut Overlay<'_>, position: u64) -> Result<(), RegistryUpdateError> {
    let mut registry = Registry(PathNodes::load(state, position)?);
    registry.revoke(position)?;
    store(state, registry.0)?;
    let mut rec = record(state)?;
    rec.valid_from = rec.roots_recorded;
    state.put(keys::registry(), &rec);
    Ok(())
}

/// Records the current root as the newest valid one, unless it already is, and forgets the
/// oldest so that at most `keep` (>= 1) roots stay recorded. Called at genesis (the empty
/// registry's root) and at the end of every block. Returns the root.
///
/// Unlike the note tree, the registry's root can come back (enrol and revoke a leaf and the
/// tree is as before): a root maps to its *latest* sequence number, and forgetting an old
/// sequence number forgets its root only if that is still the root's latest.
pub fn record_root(state: &mut Overlay<'_>, keep: u64) -> Result<FieldBytes, StateError> {
    let keep = keep.max(1);
    let mut rec = record(state)?;
    let root = root(state)?;
    let recorded = rec.roots_recorded;
    if let Some(newest) = recorded.checked_sub(1).filter(|n| *n >= rec.valid_from) {
        if state.read::<FieldBytes>(&keys::registry_root_seq(newest))? == Some(root) {
            return Ok(root);
        }
    }
    state.put(keys::registry_root(&root), &recorded);
    state.put(keys::registry_root_seq(recorded), &root);
    if let Some(oldest) = recorded.checked_sub(keep) {
        if let Some(old) = state.read::<FieldBytes>(&keys::registry_root_seq(oldest))? {
            if state.read::<u64>(&keys::registry_root(&old))? == Some(oldest) {
                state.delete(keys::registry_root(&old));
            }
        }
        state.delete(keys::registry_root_seq(oldest));
    }
    rec.roots_recorded = recorded + 1;
    state.put(keys::registry(), &rec);
    Ok(root)
}

/// Whether an order may prove against `root`: one of the last `K` recorded roots, none
/// recorded before the last revocation.
pub fn is_recent_root(state: &dyn StateRead, root: &FieldBytes) -> Result<bool, StateError> {
    let Some(seq) = state.read::<u64>(&keys::registry_root(root))? else {
        return Ok(false);
    };
    Ok(seq >= record(state)?.valid_from)
}

/// The roots an order may prove against, oldest first.
pub fn recent_roots(state: &dyn StateRead) -> Result<Vec<FieldBytes>, StateError> {
    let rec = record(state)?;
    let from = keys::registry_root_seq(rec.valid_from);
    let end = keys::prefix_end(&[keys::REGISTRY_ROOT_SEQ]);
    state
        .scan(&from, &end, usize::MAX)?
        .into_iter()
        .map(|(k, v)| crate::state::decode_entry(&k, &v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MemoryState, StateUpdate};
    use ark_ff::Zero;
    use proptest::prelude::*;
    use veilwatt_circuits::registry::MemoryRegistry;

    /// Commits `f`'s changes to `s` as the next version; returns `f`'s result.
    fn block<T>(s: &mut MemoryState, version: u64, f: impl FnOnce(&mut Overlay<'_>) -> T) -> T {
        let mut o = Overlay::new(&*s);
        let out = f(&mut o);
        let update = StateUpdate::compute(&*s, version, o.into_changes()).unwrap();
        s.commit(update);
        out
    }

    #[derive(Clone, Debug)]
    enum Op {
        Enrol(u64),
        Revoke(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1u64..u64::MAX).prop_map(Op::Enrol),
            1 => any::<u64>().prop_map(Op::Revoke),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The keyed registry and the in-memory reference registry agree on every root, leaf
        /// and path over random enrolments and revocations spread over blocks, and the
        /// refusals are the same.
        #[test]
        fn the_keyed_registry_follows_the_reference(
            blocks in prop::collection::vec(prop::collection::vec(op(), 0..6), 1..8)
        ) {
            let mut s = MemoryState::default();
            let mut reference = MemoryRegistry::new();
            for (v, ops) in blocks.iter().enumerate() {
                block(&mut s, v as u64, |o| {
                    for op in ops {
                        match op {
                            Op::Enrol(x) => {
                                let got = enrol(o, Fr::from(*x)).map_err(|e| e.to_string());
                                let want = reference.enrol(Fr::from(*x)).map_err(|e| e.to_string());
                                prop_assert_eq!(got, want);
                            }
                            Op::Revoke(p) => {
                                let size = reference.size().max(1);
                                // Mostly existing positions, sometimes one past the end.
                                let p = p % (size + 1);
                                let got = revoke(o, p).map_err(|e| e.to_string());
                                let want = reference.revoke(p).map_err(|e| e.to_string());
                                prop_assert_eq!(got, want);
                            }
                        }
                    }
                    Ok(())
                })?;
                prop_assert_eq!(root(&s).unwrap(), FieldBytes::from_field(reference.root()));
                prop_assert_eq!(record(&s).unwrap().size, reference.size());
                for p in 0..reference.size() + 1 {
                    prop_assert_eq!(leaf(&s, p).unwrap(), FieldBytes::from_field(reference.leaf(p)));
                    prop_assert_eq!(path(&s, p).unwrap(), reference.path(p));
                }
                let all = leaves(&s, 0, usize::MAX).unwrap();
                prop_assert_eq!(all.len() as u64, reference.size());
                for (p, l) in all {
                    prop_assert_eq!(l, FieldBytes::from_field(reference.leaf(p)));
                }
            }
        }
    }

    #[test]
    fn a_leaf_opens_against_the_root_it_was_enrolled_under() {
        let mut s = MemoryState::default();
        let positions = block(&mut s, 0, |o| {
            (1..=5u64)
                .map(|x| enrol(o, Fr::from(x)).unwrap())
                .collect::<Vec<_>>()
        });
        let r = root(&s).unwrap();
        for (p, x) in positions.iter().zip(1..=5u64) {
            let path = path(&s, u64::from(*p)).unwrap().unwrap();
            assert_eq!(FieldBytes::from_field(path.root(Fr::from(x))), r);
        }
        assert_eq!(path(&s, 5).unwrap(), None);
        assert_eq!(leaves(&s, 3, 10).unwrap().len(), 2);
        assert_eq!(leaves(&s, 0, 2).unwrap().len(), 2);
        assert!(leaves(&s, 9, 10).unwrap().is_empty());
    }

    #[test]
    fn zero_leaves_and_unknown_positions_are_refused() {
        let mut s = MemoryState::default();
        block(&mut s, 0, |o| {
            assert_eq!(
                enrol(o, Fr::zero()),
                Err(RegistryUpdateError::Registry(RegistryError::ZeroLeaf))
            );
            assert_eq!(
                revoke(o, 0),
                Err(RegistryUpdateError::Registry(
                    RegistryError::NoSuchPosition(0)
                ))
            );
        });
        assert_eq!(record(&s).unwrap(), RegistryRecord::default());
    }

    #[test]
    fn only_the_last_k_roots_since_the_last_revocation_are_valid() {
        let mut s = MemoryState::default();
        let empty = block(&mut s, 0, |o| record_root(o, 3).unwrap());
        let mut roots = vec![empty];
        for v in 1..=4u64 {
            roots.push(block(&mut s, v, |o| {
                enrol(o, Fr::from(v)).unwrap();
                record_root(o, 3).unwrap()
            }));
        }
        // An unchanged registry records nothing new.
        block(&mut s, 5, |o| record_root(o, 3).unwrap());
        assert_eq!(recent_roots(&s).unwrap(), roots[2..].to_vec());
        for (i, r) in roots.iter().enumerate() {
            assert_eq!(is_recent_root(&s, r).unwrap(), i >= 2, "root {i}");
        }
        // A revocation invalidates every recorded root within its own block already.
        block(&mut s, 6, |o| {
            revoke(o, 1).unwrap();
            for r in &roots {
                assert!(!is_recent_root(o, r).unwrap());
            }
            assert!(recent_roots(o).unwrap().is_empty());
            let after = record_root(o, 3).unwrap();
            assert_eq!(recent_roots(o).unwrap(), vec![after]);
        });
        let after = root(&s).unwrap();
        for r in &roots {
            assert!(!is_recent_root(&s, r).unwrap());
        }
        assert!(is_recent_root(&s, &after).unwrap());
    }

    #[test]
    fn a_root_that_comes_back_after_a_revocation_is_valid_once_recorded_again() {
        let mut s = MemoryState::default();
        let r0 = block(&mut s, 0, |o| {
            enrol(o, Fr::from(7u64)).unwrap();
            record_root(o, 4).unwrap()
        });
        // Enrol then revoke position 1 in one block: the tree is as it was (root r0), but the
        // history was cut, so r0 must be recorded again to be valid.
        let r1 = block(&mut s, 1, |o| {
            enrol(o, Fr::from(8u64)).unwrap();
            revoke(o, 1).unwrap();
            assert!(!is_recent_root(o, &r0).unwrap());
            record_root(o, 4).unwrap()
        });
        assert_eq!(r1, r0);
        assert!(is_recent_root(&s, &r0).unwrap());
        assert_eq!(recent_roots(&s).unwrap(), vec![r0]);
        // Forgetting the old sequence number of r0 keeps its newer one.
        for v in 2..=6u64 {
            block(&mut s, v, |o| {
                enrol(o, Fr::from(100 + v)).unwrap();
                record_root(o, 4).unwrap()
            });
        }
        assert!(!is_recent_root(&s, &r0).unwrap());
        assert_eq!(recent_roots(&s).unwrap().len(), 4);
    }
}
