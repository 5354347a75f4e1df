//! Copy-on-write changes over a state: what a block (or the mempool, or one transaction)
//! changes, without copying what it does not.

use std::collections::BTreeMap;
use std::ops::Bound;

use borsh::BorshSerialize;

use super::{Entry, StateError, StateRead};
use crate::types::encode;

/// Writes (`Some`) and deletions (`None`) by key, in key order.
pub type ChangeSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A state seen through pending changes: reads see the changes first, then `base`.
pub struct Overlay<'a> {
    base: &'a dyn StateRead,
    changes: ChangeSet,
}

impl std::fmt::Debug for Overlay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("changes", &self.changes.len())
            .finish()
    }
}

impl<'a> Overlay<'a> {
    /// No changes yet over `base`.
    pub fn new(base: &'a dyn StateRead) -> Self {
        Self::with_changes(base, ChangeSet::new())
    }

    /// `changes` (made earlier over the same `base`) over `base`.
    pub fn with_changes(base: &'a dyn StateRead, changes: ChangeSet) -> Self {
        Self { base, changes }
    }

    /// Sets `key` to `value`.
    pub fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert(key, Some(value));
    }

    /// Sets `key` to the canonical encoding of `value`.
    pub fn put<T: BorshSerialize>(&mut self, key: Vec<u8>, value: &T) {
        self.put_raw(key, encode(value));
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.changes.insert(key, None);
    }

    /// Adds changes made over this overlay (by a nested one), later ones winning.
    pub fn absorb(&mut self, changes: ChangeSet) {
        self.changes.extend(changes);
    }

    /// The changes so far.
    pub fn changes(&self) -> &ChangeSet {
        &self.changes
    }

    /// The changes, consuming the overlay.
    pub fn into_changes(self) -> ChangeSet {
        self.changes
    }
}

impl StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.changes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Entry>, StateError> {
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        let mine: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = self
            .changes
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .collect();
        // Each deletion hides at most one base entry, so this many base entries are enough.
        let deletions = mine.iter().filter(|(_, v)| v.is_none()).count();
        let base = self.base.scan(from, to, limit.saturating_add(deletions))?;
        let mut out = Vec::with_capacity(limit.min(base.len() + mine.len()));
        let (mut b, mut m) = (base.into_iter().peekable(), mine.into_iter().peekable());
        while out.len() < limit {
            let take_mine = match (b.peek(), m.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((bk, _)), Some((mk, _))) => {
                    if bk.as_slice() == mk.as_slice() {
                        b.next(); // shadowed by the change
                        true
                    } else {
                        mk.as_slice() < bk.as_slice()
                    }
                }
            };
            if take_mine {
                if let Some((k, Some(v))) = m.next() {
                    out.push((k.clone(), v.clone()));
                }
            } else if let Some(e) = b.next() {
                out.push(e);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryState;

    #[test]
    fn scans_merge_changes_over_the_base_in_key_order() {
        let mut base = MemoryState::default();
        for k in [1u8, 3, 5, 7] {
            base.insert_raw(vec![0x10, k], vec![k]);
        }
        let mut o = Overlay::new(&base);
        o.put_raw(vec![0x10, 2], vec![2]);
        o.delete(vec![0x10, 3]);
        o.put_raw(vec![0x10, 5], vec![50]);
        o.delete(vec![0x10, 9]); // absent in the base
        let all = o.scan(&[0x10], &[0x11], usize::MAX).unwrap();
        let got: Vec<(u8, u8)> = all.iter().map(|(k, v)| (k[1], v[0])).collect();
        assert_eq!(got, vec![(1, 1), (2, 2), (5, 50), (7, 7)]);
        for limit in 0..5 {
            let some = o.scan(&[0x10], &[0x11], limit).unwrap();
            assert_eq!(some, all[..limit.min(all.len())].to_vec());
        }
        assert_eq!(o.get(&[0x10, 3]).unwrap(), None);
        assert_eq!(o.get(&[0x10, 7]).unwrap(), Some(vec![7]));
        // Nested overlays see through each other.
        let mut inner = Overlay::new(&o);
        inner.delete(vec![0x10, 1]);
        let got: Vec<u8> = inner
            .scan(&[0x10], &[0x11], 2)
            .unwrap()
            .iter()
            .map(|(k, _)| k[1])
            .collect();
        assert_eq!(got, vec![2, 5]);
    }
}
