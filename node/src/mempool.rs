//! The bounded mempool: admitted transactions waiting for a block, in arrival order.

use std::collections::{BTreeMap, VecDeque};
use veilwatt_verifier::types::{Transaction, TxId};

/// Why a transaction does not enter the mempool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Already pending.
    #[error("duplicate transaction {0}")]
    Duplicate(TxId),
    /// At capacity.
    #[error("mempool full")]
    Full,
}

/// Pending transactions, first in first out, at most `capacity`.
#[derive(Debug)]
pub struct Mempool {
    capacity: usize,
    queue: VecDeque<TxId>,
    txs: BTreeMap<TxId, Transaction>,
}

impl Mempool {
    /// An empty mempool holding at most `capacity` transactions.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            queue: VecDeque::new(),
            txs: BTreeMap::new(),
        }
    }

    /// Adds a transaction.
    pub fn insert(&mut self, tx: Transaction) -> Result<TxId, MempoolError> {
        let id = tx.id();
        if self.txs.contains_key(&id) {
            return Err(MempoolError::Duplicate(id));
        }
        if self.txs.len() >= self.capacity {
            return Err(MempoolError::Full);
        }
        self.queue.push_back(id);
        self.txs.insert(id, tx);
        Ok(id)
    }

    /// Whether `id` is pending.
    pub fn contains(&self, id: &TxId) -> bool {
        self.txs.contains_key(id)
    }

    /// Most transactions held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number pending.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Pending transactions in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = &Transaction> {
        self.queue.iter().filter_map(|id| self.txs.get(id))
    }

    /// Up to `max` transactions in arrival order, for a proposal (they stay pending until
    /// committed).
    pub fn peek(&self, max: usize) -> Vec<Transaction> {
        self.iter().take(max).cloned().collect()
    }

    /// Drops transactions that a committed block contained (or that became invalid).
    pub fn remove(&mut self, ids: &[TxId]) {
        for id in ids {
            self.txs.remove(id);
        }
        let txs = &self.txs;
        self.queue.retain(|id| txs.contains_key(id));
    }
}
