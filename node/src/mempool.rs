//! The bounded mempool: admitted transactions waiting for a block, in arrival order.

use std::collections::{BTreeMap, VecDeque};
use veilwatt_verifier::types::{Transaction, TxId, WalletKey};

/// Why a transaction does not enter the mempool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Already pending.
    #[error("duplicate transaction {0}")]
    Duplicate(TxId),
    /// At capacity.
    #[error("mempool full")]
    Full,
    /// Its signer already has its quota of pending transactions.
    #[error("signer {0} already has {1} pending transactions; wait for them to commit")]
    SignerQuota(WalletKey, usize),
}

/// Pending transactions, first in first out, at most `capacity`, and at most a quota per
/// signer (one wallet cannot fill the pool for everyone; the registrar, trusted to enrol and
/// fund a whole community at once, may be exempt).
#[derive(Debug)]
pub struct Mempool {
    capacity: usize,
    queue: VecDeque<TxId>,
    txs: BTreeMap<TxId, Transaction>,
    per_signer: BTreeMap<WalletKey, usize>,
    signer_quota: usize,
    exempt: Option<WalletKey>,
}

impl Mempool {
    /// An empty mempool holding at most `capacity` transactions.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            queue: VecDeque::new(),
            txs: BTreeMap::new(),
            per_signer: BTreeMap::new(),
            signer_quota: usize::MAX,
            exempt: None,
        }
    }

    /// The same, holding at most `quota` transactions of any one signer but `exempt`.
    pub fn with_signer_quota(mut self, quota: usize, exempt: Option<WalletKey>) -> Self {
        self.signer_quota = quota;
        self.exempt = exempt;
        self
    }

    /// Whether a transaction of `signer` would be within its quota.
    pub fn check_quota(&self, signer: &WalletKey) -> Result<(), MempoolError> {
        let held = self.per_signer.get(signer).copied().unwrap_or(0);
        if self.exempt.as_ref() != Some(signer) && held >= self.signer_quota {
            return Err(MempoolError::SignerQuota(*signer, held));
        }
        Ok(())
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
        self.check_quota(&tx.signer)?;
        *self.per_signer.entry(tx.signer).or_default() += 1;
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
            if let Some(tx) = self.txs.remove(id) {
                if let Some(n) = self.per_signer.get_mut(&tx.signer) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_signer.remove(&tx.signer);
                    }
                }
            }
        }
        let txs = &self.txs;
        self.queue.retain(|id| txs.contains_key(id));
    }
}
