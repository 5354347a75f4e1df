//! Reading a block's keys ahead: the rules read a few entries per transaction, one at a time
//! and in the block's order; a backend answers the same reads faster as one sorted batch, on
//! several threads ([`StateRead::get_many`]). What is read ahead is only a hint: a key not in
//! it is read from the state as before, so the rules' result never depends on it.

use std::collections::BTreeMap;

use super::{Entry, StateError, StateRead};

/// A state with some of its entries read ahead. The state must not change while this is in
/// use (a block executes over a fixed version).
pub struct Prefetched<'a> {
    base: &'a dyn StateRead,
    read: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl std::fmt::Debug for Prefetched<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetched")
            .field("read", &self.read.len())
            .finish()
    }
}

impl<'a> Prefetched<'a> {
    /// `base`, with the entries under `keys` (in any order, repeats allowed) read now.
    pub fn new(base: &'a dyn StateRead, mut keys: Vec<Vec<u8>>) -> Result<Self, StateError> {
        keys.sort_unstable();
        keys.dedup();
        let values = base.get_many(&keys)?;
        Ok(Self {
            base,
            read: keys.into_iter().zip(values).collect(),
        })
    }
}

impl StateRead for Prefetched<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.read.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Entry>, StateError> {
        self.base.scan(from, to, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryState;

    #[test]
    fn reads_are_the_states_whether_read_ahead_or_not() {
        let mut base = MemoryState::default();
        for k in [1u8, 3, 5] {
            base.insert_raw(vec![0x10, k], vec![k]);
        }
        // Present, absent and repeated keys ahead; others not.
        let ahead = vec![vec![0x10, 5], vec![0x10, 2], vec![0x10, 5], vec![0x10, 1]];
        let p = Prefetched::new(&base, ahead).unwrap();
        for k in 0..8u8 {
            let key = [0x10, k];
            assert_eq!(p.get(&key).unwrap(), base.get(&key).unwrap(), "key {k}");
        }
        let keys: Vec<Vec<u8>> = (0..8u8).rev().map(|k| vec![0x10, k]).collect();
        assert_eq!(p.get_many(&keys).unwrap(), base.get_many(&keys).unwrap());
        assert_eq!(
            p.scan(&[0x10], &[0x11], 10).unwrap(),
            base.scan(&[0x10], &[0x11], 10).unwrap()
        );
    }
}
