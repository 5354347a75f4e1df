//! The shielded pool's ledger state (docs/spec/notes.md, "Ledger state"): the note-commitment
//! tree's frontier, the recent roots a spend may prove against, and the nullifier set.
//!
//! Every function reads and writes through the keyed state, so the pool is part of the state
//! root and of the one pure rule function that node and audit share. Costs per block: one read
//! and one write of the frontier (~1 KiB) for all the notes a block appends, one Poseidon hash
//! per note (amortized) and 32 for the root; a root lookup and a nullifier insert are one key
//! each.

use borsh::{BorshDeserialize, BorshSerialize};
use veilwatt_circuits::merkle::{Frontier, DEPTH};

use crate::state::{keys, Overlay, StateError, StateRead, StateReadExt};
use crate::types::{FieldBytes, Millis};

/// Why a pool operation was refused. The state is unchanged on every error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The tree holds 2^32 notes.
    #[error("the note tree is full")]
    TreeFull,
    /// Bytes that should be a field element are not its canonical encoding.
    #[error("{0} is not a canonical field element")]
    NotAField(FieldBytes),
    /// A spend's anchor is not one of the recent roots (never a root, or too old).
    #[error("anchor {0} is not one of the recent note-tree roots")]
    UnknownAnchor(FieldBytes),
    /// The nullifier was revealed before: its note is spent.
    #[error("nullifier {0} was already revealed: the note is spent")]
    DoubleSpend(FieldBytes),
    /// A spend would take more out of the pool than its notes hold.
    #[error("the pool holds {balance}, a spend takes {need}")]
    Insolvent {
        /// Taken, millis.
        need: Millis,
        /// Held, millis.
        balance: Millis,
    },
    /// The state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What [`keys::note_tree`] holds.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct StoredPool {
    /// Notes appended.
    size: u64,
    /// The frontier's left subtrees, `DEPTH + 1` field elements.
    filled: Vec<FieldBytes>,
    /// Roots recorded so far: the next root's sequence number.
    roots_recorded: u64,
    /// Value held by the pool's notes, millis.
    balance: Millis,
    /// Fees the pool's spends paid, millis.
    fees: Millis,
    /// Held for open unlinkable buy orders, millis.
    escrowed: Millis,
}

fn corrupt(detail: &str) -> StateError {
    StateError::Corrupt {
        key: hex::encode(keys::note_tree()),
        detail: detail.to_owned(),
    }
}

/// The pool's one record: the note tree's frontier and the pool's public money figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    frontier: Frontier,
    roots_recorded: u64,
    /// Value of the notes the pool holds, millis: minted plus paid in, less paid out. Every
    /// spend's proof conserves value, so it never goes negative; the rules refuse a spend
    /// that would take more than this anyway (a broken proof system could not drain more).
    pub balance: Millis,
    /// Fees paid by spends, millis.
    pub fees: Millis,
    /// Value paid out of the pool's notes into the escrow of open unlinkable buy orders,
    /// millis; it comes back as notes (refunds, proceeds) or fees when they clear or cancel.
    pub escrowed: Millis,
}

impl Pool {
    /// Reads the pool (empty before its first note).
    pub fn load(state: &dyn StateRead) -> Result<Self, StateError> {
        let Some(stored) = state.read::<StoredPool>(&keys::note_tree())? else {
            return Ok(Self {
                frontier: Frontier::new(),
                roots_recorded: 0,
                balance: 0,
                fees: 0,
                escrowed: 0,
            });
        };
        let filled: Vec<_> = stored
            .filled
            .iter()
            .map(FieldBytes::to_field)
            .collect::<Option<_>>()
            .ok_or_else(|| corrupt("a frontier node is not a field element"))?;
        let filled: [_; DEPTH + 1] = filled
            .try_into()
            .map_err(|_| corrupt("wrong number of frontier nodes"))?;
        let frontier = Frontier::from_parts(stored.size, filled)
            .ok_or_else(|| corrupt("size beyond the tree's capacity"))?;
        Ok(Self {
            frontier,
            roots_recorded: stored.roots_recorded,
            balance: stored.balance,
            fees: stored.fees,
            escrowed: stored.escrowed,
        })
    }

    /// Writes the pool.
    pub fn store(&self, state: &mut Overlay<'_>) {
        let (size, filled) = self.frontier.parts();
        let stored = StoredPool {
            size,
            filled: filled.iter().map(|x| FieldBytes::from_field(*x)).collect(),
            roots_recorded: self.roots_recorded,
            balance: self.balance,
            fees: self.fees,
            escrowed: self.escrowed,
        };
        state.put(keys::note_tree(), &stored);
    }

    /// The note tree's frontier.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// The note tree's current root (not necessarily recorded yet: see [`record_root`]).
    pub fn root(&self) -> FieldBytes {
        FieldBytes::from_field(self.frontier.root())
    }

    /// Appends note commitments in order; returns their positions. All or nothing.
    pub fn append(&mut self, commitments: &[FieldBytes]) -> Result<Vec<u32>, PoolError> {
        let leaves = commitments
            .iter()
            .map(|cm| cm.to_field().ok_or(PoolError::NotAField(*cm)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut frontier = self.frontier.clone();
        let positions = leaves
            .into_iter()
            .map(|leaf| frontier.append(leaf).map_err(|_| PoolError::TreeFull))
            .collect::<Result<Vec<_>, _>>()?;
        self.frontier = frontier;
        Ok(positions)
    }
}

/// The note tree's frontier.
pub fn frontier(state: &dyn StateRead) -> Result<Frontier, StateError> {
    Ok(Pool::load(state)?.frontier)
}

/// The note tree's current root (not necessarily recorded yet: see [`record_root`]).
pub fn current_root(state: &dyn StateRead) -> Result<FieldBytes, StateError> {
    Ok(Pool::load(state)?.root())
}

/// Appends note commitments in order; returns their positions. All or nothing.
pub fn append(state: &mut Overlay<'_>, commitments: &[FieldBytes]) -> Result<Vec<u32>, PoolError> {
    let mut pool = Pool::load(state)?;
    let positions = pool.append(commitments)?;
    pool.store(state);
    Ok(positions)
}

/// Records the tree's current root as the newest anchor, unless it already is, and forgets
/// the oldest so that at most `keep` (>= 1) roots stay. Called at genesis (the empty tree's
/// root) and at the end of every block, so a spend proves against the tree as some recent
/// block left it. Returns the root.
///
/// A root is recorded once: the tree only grows, so a changed root differs from every earlier
/// one (short of a Poseidon collision), and an unchanged one is the newest already.
pub fn record_root(state: &mut Overlay<'_>, keep: u64) -> Result<FieldBytes, StateError> {
    let keep = keep.max(1);
    let mut pool = Pool::load(state)?;
    let root = pool.root();
    let recorded = pool.roots_recorded;
    if let Some(newest) = recorded.checked_sub(1) {
        if state.read::<FieldBytes>(&keys::note_root_seq(newest))? == Some(root) {
            return Ok(root);
        }
    }
    state.put(keys::note_root(&root), &recorded);
    state.put(keys::note_root_seq(recorded), &root);
    if let Some(oldest) = recorded.checked_sub(keep) {
        if let Some(old) = state.read::<FieldBytes>(&keys::note_root_seq(oldest))? {
            state.delete(keys::note_root(&old));
        }
        state.delete(keys::note_root_seq(oldest));
    }
    pool.roots_recorded = recorded + 1;
    pool.store(state);
    Ok(root)
}

/// Whether `root` is one of the recent roots.
pub fn is_recent_root(state: &dyn StateRead, root: &FieldBytes) -> Result<bool, StateError> {
    Ok(state.get(&keys::note_root(root))?.is_some())
}

/// Refuses an anchor that is not a recent root.
pub fn check_anchor(state: &dyn StateRead, anchor: &FieldBytes) -> Result<(), PoolError> {
    if is_recent_root(state, anchor)? {
        Ok(())
    } else {
        Err(PoolError::UnknownAnchor(*anchor))
    }
}

/// The recent roots, oldest first.
pub fn recent_roots(state: &dyn StateRead) -> Result<Vec<FieldBytes>, StateError> {
    Ok(state
        .read_prefix::<FieldBytes>(&[keys::NOTE_ROOT_SEQ])?
        .into_iter()
        .map(|(_, root)| root)
        .collect())
}

/// Whether the nullifier has been revealed (its note spent).
pub fn is_revealed(state: &dyn StateRead, nf: &FieldBytes) -> Result<bool, StateError> {
    Ok(state.get(&keys::nullifier(nf))?.is_some())
}

/// Reveals a nullifier: refused if it was revealed before (a double spend) or is not a field
/// element.
pub fn reveal(state: &mut Overlay<'_>, nf: &FieldBytes) -> Result<(), PoolError> {
    if nf.to_field().is_none() {
        return Err(PoolError::NotAField(*nf));
    }
    if is_revealed(state, nf)? {
        return Err(PoolError::DoubleSpend(*nf));
    }
    state.put_raw(keys::nullifier(nf), Vec::new());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MemoryState, StateUpdate};
    use ark_bn254::Fr;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, VecDeque};
    use veilwatt_circuits::merkle::MemoryTree;

    fn fb(x: u64) -> FieldBytes {
        FieldBytes::from_field(Fr::from(x))
    }

    /// Commits `f`'s changes to `s` as the next version; returns `f`'s result.
    fn block<T>(s: &mut MemoryState, version: u64, f: impl FnOnce(&mut Overlay<'_>) -> T) -> T {
        let mut o = Overlay::new(&*s);
        let out = f(&mut o);
        let changes = o.into_changes();
        let update = StateUpdate::compute(&*s, version, changes).unwrap();
        s.commit(update);
        out
    }

    #[test]
    fn the_stored_tree_follows_the_reference_tree() {
        let mut s = MemoryState::default();
        let mut reference = MemoryTree::new();
        let mut next = 0u64;
        for (v, n) in [0usize, 1, 2, 5, 1, 9, 16, 3].into_iter().enumerate() {
            let cms: Vec<_> = (0..n).map(|i| fb(1_000 + next + i as u64)).collect();
            next += n as u64;
            let positions = block(&mut s, v as u64, |o| append(o, &cms).unwrap());
            for (cm, p) in cms.iter().zip(&positions) {
                assert_eq!(reference.append(cm.to_field().unwrap()).unwrap(), *p);
            }
            assert_eq!(
                current_root(&s).unwrap(),
                FieldBytes::from_field(reference.root())
            );
            assert_eq!(frontier(&s).unwrap().size(), next);
        }
    }

    #[test]
    fn only_the_last_k_roots_are_anchors() {
        let mut s = MemoryState::default();
        let empty = block(&mut s, 0, |o| record_root(o, 3).unwrap());
        assert!(is_recent_root(&s, &empty).unwrap());
        let mut roots = vec![empty];
        for v in 1..=5u64 {
            let root = block(&mut s, v, |o| {
                append(o, &[fb(v)]).unwrap();
                record_root(o, 3).unwrap()
            });
            roots.push(root);
        }
        // A block that appends nothing records nothing new and forgets nothing.
        block(&mut s, 6, |o| record_root(o, 3).unwrap());
        assert_eq!(recent_roots(&s).unwrap(), roots[3..].to_vec());
        for (i, r) in roots.iter().enumerate() {
            assert_eq!(is_recent_root(&s, r).unwrap(), i >= 3, "root {i}");
            let checked = check_anchor(&s, r);
            if i >= 3 {
                assert_eq!(checked, Ok(()));
            } else {
                assert_eq!(checked, Err(PoolError::UnknownAnchor(*r)));
            }
        }
        // A root of a tree that never existed is no anchor either.
        assert!(!is_recent_root(&s, &fb(77)).unwrap());
        // Exactly 3 roots stored, under both indexes.
        let by_root = s.read_prefix::<u64>(&[keys::NOTE_ROOT]);
        assert_eq!(by_root.unwrap().len(), 3);
    }

    #[test]
    fn a_nullifier_is_revealed_once() {
        let mut s = MemoryState::default();
        block(&mut s, 0, |o| reveal(o, &fb(5)).unwrap());
        assert!(is_revealed(&s, &fb(5)).unwrap());
        assert!(!is_revealed(&s, &fb(6)).unwrap());
        // Across blocks.
        let mut o = Overlay::new(&s);
        assert_eq!(reveal(&mut o, &fb(5)), Err(PoolError::DoubleSpend(fb(5))));
        assert!(o.changes().is_empty());
        // Within one block.
        reveal(&mut o, &fb(6)).unwrap();
        assert_eq!(reveal(&mut o, &fb(6)), Err(PoolError::DoubleSpend(fb(6))));
        // Not a field element (the modulus itself, and all ones).
        let p = FieldBytes::from_hex(
            "010000f093f5e1439170b97948e833285d588181b64550b829a031e1724e6430",
        )
        .unwrap();
        assert_eq!(reveal(&mut o, &p), Err(PoolError::NotAField(p)));
        let ones = FieldBytes([0xff; 32]);
        assert_eq!(reveal(&mut o, &ones), Err(PoolError::NotAField(ones)));
    }

    #[test]
    fn a_bad_commitment_appends_nothing() {
        let mut s = MemoryState::default();
        block(&mut s, 0, |o| append(o, &[fb(1)]).unwrap());
        let mut o = Overlay::new(&s);
        let bad = FieldBytes([0xff; 32]);
        assert_eq!(
            append(&mut o, &[fb(2), bad]),
            Err(PoolError::NotAField(bad))
        );
        assert!(o.changes().is_empty());
        assert_eq!(frontier(&o).unwrap().size(), 1);
    }

    #[test]
    fn a_damaged_tree_entry_is_reported() {
        let mut s = MemoryState::default();
        block(&mut s, 0, |o| {
            o.put(
                keys::note_tree(),
                &StoredPool {
                    size: 1,
                    filled: vec![fb(1); DEPTH],
                    roots_recorded: 0,
                    balance: 0,
                    fees: 0,
                    escrowed: 0,
                },
            )
        });
        assert!(matches!(frontier(&s), Err(StateError::Corrupt { .. })));
        block(&mut s, 1, |o| {
            o.put(
                keys::note_tree(),
                &StoredPool {
                    size: 1,
                    filled: vec![FieldBytes([0xff; 32]); DEPTH + 1],
                    roots_recorded: 0,
                    balance: 0,
                    fees: 0,
                    escrowed: 0,
                },
            )
        });
        assert!(matches!(frontier(&s), Err(StateError::Corrupt { .. })));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Append(Vec<u16>),
        Reveal(u16),
        EndBlock,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            proptest::collection::vec(any::<u16>(), 0..6).prop_map(Op::Append),
            (0u16..64).prop_map(Op::Reveal),
            Just(Op::EndBlock),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The pool against a plain model: a full tree, a queue of the last `keep` distinct
        /// roots, a set of nullifiers; compared after every block.
        #[test]
        fn the_pool_matches_a_plain_model(
            keep in 1u64..5,
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let mut s = MemoryState::default();
            let mut tree = MemoryTree::new();
            let mut roots: VecDeque<FieldBytes> = VecDeque::new();
            let mut nfs = BTreeSet::new();
            let record = |tree: &MemoryTree, roots: &mut VecDeque<FieldBytes>| {
                let r = FieldBytes::from_field(tree.root());
                if roots.back() != Some(&r) {
                    roots.push_back(r);
                    if roots.len() as u64 > keep {
                        roots.pop_front();
                    }
                }
            };
            block(&mut s, 0, |o| record_root(o, keep).unwrap());
            record(&tree, &mut roots);
            let mut version = 1;
            let mut pending = Vec::new();
            for op in ops.into_iter().chain([Op::EndBlock]) {
                match op {
                    Op::EndBlock => {
                        let ops = std::mem::take(&mut pending);
                        let mut results = Vec::new();
                        block(&mut s, version, |o| {
                            for op in &ops {
                                match op {
                                    Op::Append(cms) => {
                                        let cms: Vec<_> =
                                            cms.iter().map(|x| fb(u64::from(*x))).collect();
                                        results.push(append(o, &cms).map(|_| ()));
                                    }
                                    Op::Reveal(nf) => results.push(reveal(o, &fb(u64::from(*nf)))),
                                    Op::EndBlock => {}
                                }
                            }
                            record_root(o, keep).unwrap();
                        });
                        version += 1;
                        for (op, result) in ops.iter().zip(results) {
                            match op {
                                Op::Append(cms) => {
                                    prop_assert_eq!(result, Ok(()));
                                    for x in cms {
                                        tree.append(Fr::from(u64::from(*x))).unwrap();
                                    }
                                }
                                Op::Reveal(nf) => {
                                    let fresh = nfs.insert(*nf);
                                    let expected = if fresh {
                                        Ok(())
                                    } else {
                                        Err(PoolError::DoubleSpend(fb(u64::from(*nf))))
                                    };
                                    prop_assert_eq!(result, expected);
                                }
                                Op::EndBlock => {}
                            }
                        }
                        record(&tree, &mut roots);
                        prop_assert_eq!(
                            recent_roots(&s).unwrap(),
                            roots.iter().copied().collect::<Vec<_>>()
                        );
                        prop_assert_eq!(current_root(&s).unwrap(), FieldBytes::from_field(tree.root()));
                        for nf in 0u16..64 {
                            prop_assert_eq!(
                                is_revealed(&s, &fb(u64::from(nf))).unwrap(),
                                nfs.contains(&nf)
                            );
                        }
                    }
                    op => pending.push(op),
                }
            }
        }
    }
}
