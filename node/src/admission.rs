//! Admission: what happens to a transaction between the HTTP body and the mempool.
//!
//! 1. size limit, then JSON decoding (400 / 413);
//! 2. stateless checks, in parallel and off the async runtime: Ed25519 signature, and for orders
//!    the Groth16 proof, verified in batches with the verifier crate (422);
//! 3. a check against the latest committed state with the ledger's own rules (422);
//! 4. de-duplication and a bounded mempool (409 / 429).
//!
//! Proofs verified here are remembered in a [`ProofCache`], so block execution re-verifies only
//! the proofs this node has not seen.

use crate::mempool::{Mempool, MempoolError};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use veilwatt_circuits::joinsplit::JoinSplitPublic;
use veilwatt_circuits::order::OrderPublic;
use veilwatt_verifier::ledger::{Ledger, MarketVerifier, ProofCheck, TxError};
use veilwatt_verifier::pool::PoolError;
use veilwatt_verifier::state::{Overlay, StateRead};
use veilwatt_verifier::types::{Transaction, TxId, UnlinkableOrderPublic};
use veilwatt_verifier::{
    BatchFailure, Groth16Proof, OrderProof, PublicStatement, SpendProof, Verifier, VerifyError,
};

/// Why a transaction was not admitted. Each variant has a stable code and an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The body exceeds the limit.
    #[error("body of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Body size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The body is not a transaction.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// An order's proof does not verify for its public inputs.
    #[error("invalid proof: {0}")]
    InvalidProof(VerifyError),
    /// The ledger's rules reject it against the current state.
    #[error("rejected by the ledger rules: {0}")]
    Rule(TxError),
    /// Already pending or committed.
    #[error("duplicate transaction {0}")]
    Duplicate(TxId),
    /// The mempool is full; retry later.
    #[error("mempool full")]
    MempoolFull,
    /// The signer has its quota of pending transactions; retry once some commit.
    #[error("{0}")]
    SignerQuota(MempoolError),
}

impl AdmitError {
    /// HTTP status for the API.
    pub fn http_status(&self) -> u16 {
        match self {
            AdmitError::TooLarge { .. } => 413,
            AdmitError::Malformed(_) => 400,
            AdmitError::Rule(TxError::State(_)) => 500,
            AdmitError::BadSignature | AdmitError::InvalidProof(_) | AdmitError::Rule(_) => 422,
            AdmitError::Duplicate(_) => 409,
            AdmitError::MempoolFull | AdmitError::SignerQuota(_) => 429,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::TooLarge { .. } => "too_large",
            AdmitError::Malformed(_) => "malformed",
            AdmitError::BadSignature => "bad_signature",
            AdmitError::InvalidProof(_) => "invalid_proof",
            AdmitError::Rule(TxError::State(_)) => "internal",
            AdmitError::Rule(TxError::Expired { .. }) => "expired",
            AdmitError::Rule(TxError::ExpiryTooFar { .. }) => "expiry_too_far",
            AdmitError::Rule(_) => "rule_violation",
            AdmitError::Duplicate(_) => "duplicate",
            AdmitError::MempoolFull => "mempool_full",
            AdmitError::SignerQuota(_) => "signer_quota",
        }
    }
}

impl From<MempoolError> for AdmitError {
    fn from(e: MempoolError) -> Self {
        match e {
            MempoolError::Duplicate(id) => AdmitError::Duplicate(id),
            MempoolError::Full => AdmitError::MempoolFull,
            e @ MempoolError::SignerQuota(..) => AdmitError::SignerQuota(e),
        }
    }
}

/// What the cache remembers of a verified proof: its circuit, the proof and its inputs.
fn proof_key<S: PublicStatement>(public: &S, proof: &Groth16Proof) -> [u8; 32] {
    use ark_ff::{BigInteger, PrimeField};
    let mut h = Sha256::new();
    h.update(S::BATCH_LABEL);
    h.update(proof.0);
    for x in public.inputs() {
        h.update(x.into_bigint().to_bytes_le());
    }
    h.finalize().into()
}

/// Proofs this node has verified, by hash of (proof, public inputs), and transactions whose
/// signature it has verified, by id; both bounded, oldest evicted. As a [`ProofCheck`] it
/// verifies only the proofs it does not know, and lets block execution skip the signatures
/// checked at admission.
pub struct ProofCache {
    verifier: MarketVerifier,
    capacity: usize,
    inner: Mutex<Remembered>,
    signatures: Mutex<Remembered>,
    /// Proofs verified (not served from the cache), by circuit and result.
    verified: Option<ProofCounter>,
}

/// The counter family of [`ProofCache::with_counter`]: labels `circuit` and `result`.
pub type ProofCounter = crate::metrics::LabelledCounter;

fn remember_in(set: &Mutex<Remembered>, capacity: usize, key: [u8; 32]) {
    let mut g = set.lock().unwrap_or_else(|e| e.into_inner());
    if g.0.insert(key) {
        g.1.push_back(key);
        while g.1.len() > capacity {
            if let Some(old) = g.1.pop_front() {
                g.0.remove(&old);
            }
        }
    }
}

/// Known proof keys, and their insertion order for eviction.
type Remembered = (BTreeSet<[u8; 32]>, VecDeque<[u8; 32]>);

impl ProofCache {
    /// A cache of at most `capacity` verified proofs.
    pub fn new(verifier: impl Into<MarketVerifier>, capacity: usize) -> Self {
        Self {
            verifier: verifier.into(),
            capacity,
            inner: Mutex::new((BTreeSet::new(), VecDeque::new())),
            signatures: Mutex::new((BTreeSet::new(), VecDeque::new())),
            verified: None,
        }
    }

    /// Counts every proof this cache verifies in `counter`, labelled `circuit` (`order`,
    /// `join-split`) and `result` (`valid`, `invalid`); proofs served from the cache are not
    /// counted again.
    pub fn with_counter(mut self, counter: ProofCounter) -> Self {
        self.verified = Some(counter);
        self
    }

    /// Number of proofs remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0.len()
    }

    /// Whether no proof is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn known(&self, key: &[u8; 32]) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .contains(key)
    }

    fn remember(&self, key: [u8; 32]) {
        remember_in(&self.inner, self.capacity, key);
    }

    /// Records that transaction `id`'s signature verified (the id commits to it).
    pub fn remember_signature(&self, id: &TxId) {
        remember_in(&self.signatures, self.capacity, id.0);
    }

    /// Verifies `items` (batch, only the unknown ones) and remembers the valid ones. Returns the
    /// failures by index into `items`.
    pub fn verify(&self, items: &[(OrderPublic, OrderProof)]) -> Vec<(usize, VerifyError)> {
        self.verify_with(Some(&self.verifier.order), items, "order")
    }

    /// [`ProofCache::verify`] for spend (join-split) proofs; all refused without a join-split
    /// key.
    pub fn verify_spends(
        &self,
        items: &[(JoinSplitPublic, SpendProof)],
    ) -> Vec<(usize, VerifyError)> {
        self.verify_with(self.verifier.joinsplit.as_ref(), items, "join-split")
    }

    /// [`ProofCache::verify`] for unlinkable order proofs; all refused without their key.
    pub fn verify_unlinkable(
        &self,
        items: &[(UnlinkableOrderPublic, OrderProof)],
    ) -> Vec<(usize, VerifyError)> {
        self.verify_with(self.verifier.unlinkable.as_ref(), items, "unlinkable-order")
    }

    fn verify_with<S: PublicStatement + Clone>(
        &self,
        verifier: Option<&Verifier<S>>,
        items: &[(S, Groth16Proof)],
        circuit: &'static str,
    ) -> Vec<(usize, VerifyError)> {
        let Some(verifier) = verifier else {
            return (0..items.len())
                .map(|i| (i, VerifyError::NoKey(circuit)))
                .collect();
        };
        let keys: Vec<[u8; 32]> = items.iter().map(|(p, pr)| proof_key(p, pr)).collect();
        let unknown: Vec<usize> = (0..items.len())
            .filter(|&i| !self.known(&keys[i]))
            .collect();
        let batch: Vec<(S, Groth16Proof)> = unknown.iter().map(|&i| items[i].clone()).collect();
        // Deterministic scalars: this also serves block execution, which must not use randomness.
        let failed: Vec<(usize, VerifyError)> = match verifier.verify_batch_deterministic(&batch) {
            Ok(()) => Vec::new(),
            Err(f) => f
                .invalid
                .into_iter()
                .map(|(k, e)| (unknown[k], e))
                .collect(),
        };
        for &i in &unknown {
            if !failed.iter().any(|(j, _)| *j == i) {
                self.remember(keys[i]);
            }
        }
        if let Some(counter) = &self.verified {
            let count = |result: &str, n: usize| {
                let labels = vec![
                    ("circuit".to_owned(), circuit.to_owned()),
                    ("result".to_owned(), result.to_owned()),
                ];
                counter.get_or_create(&labels).inc_by(n as u64);
            };
            count("valid", unknown.len() - failed.len());
            count("invalid", failed.len());
        }
        failed
    }
}

impl ProofCheck for ProofCache {
    fn check(&self, items: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure> {
        let invalid = self.verify(items);
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(BatchFailure { invalid })
        }
    }

    fn check_spends(&self, items: &[(JoinSplitPublic, SpendProof)]) -> Result<(), BatchFailure> {
        let invalid = self.verify_spends(items);
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(BatchFailure { invalid })
        }
    }

    fn check_unlinkable(
        &self,
        items: &[(UnlinkableOrderPublic, OrderProof)],
    ) -> Result<(), BatchFailure> {
        let invalid = self.verify_unlinkable(items);
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(BatchFailure { invalid })
        }
    }

    fn signature_known(&self, id: &TxId) -> bool {
        self.signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .contains(&id.0)
    }
}

/// Admission limits.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionConfig {
    /// Largest accepted body, bytes.
    pub max_body_bytes: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        // An order is ~900 bytes of JSON; leave room, refuse anything absurd.
        Self {
            max_body_bytes: 16 * 1024,
        }
    }
}

/// The admission pipeline of one node.
pub struct Admission<'g> {
    ledger: Ledger<'g>,
    chain_id: String,
    config: AdmissionConfig,
    proofs: &'g ProofCache,
}

impl<'g> Admission<'g> {
    /// A pipeline for `ledger`'s chain.
    pub fn new(
        ledger: Ledger<'g>,
        chain_id: String,
        config: AdmissionConfig,
        proofs: &'g ProofCache,
    ) -> Self {
        Self {
            ledger,
            chain_id,
            config,
            proofs,
        }
    }

    /// Step 1: size and decoding.
    pub fn decode(&self, body: &[u8]) -> Result<Transaction, AdmitError> {
        if body.len() > self.config.max_body_bytes {
            return Err(AdmitError::TooLarge {
                size: body.len(),
                max: self.config.max_body_bytes,
            });
        }
        serde_json::from_slice(body).map_err(|e| AdmitError::Malformed(e.to_string()))
    }

    /// Step 2 for a batch: signatures in parallel, proofs in one batch. Returns, per input, the
    /// error that already rules it out. Needs no state: run it without holding any lock.
    pub fn check_stateless(&self, txs: &[Transaction]) -> Vec<Option<AdmitError>> {
        let mut results: Vec<Option<AdmitError>> = txs
            .par_iter()
            .map(|t| {
                if t.verify_signature(&self.chain_id) {
                    self.proofs.remember_signature(&t.id());
                    None
                } else {
                    Some(AdmitError::BadSignature)
                }
            })
            .collect();
        // Proofs of the orders whose signature verified.
        let mut items = Vec::new();
        let mut positions = Vec::new();
        for (i, tx) in txs.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            // As in block execution, the meter key's subgroup check is left to the circuit
            // (and was done natively at enrolment; the rules refuse unenrolled meters).
            match tx
                .body
                .order_proof_item(|m| m.to_public_key_unchecked().ok_or(()))
            {
                Some(Ok(item)) => {
                    items.push(item);
                    positions.push(i);
                }
                Some(Err(_)) => {
                    results[i] = Some(AdmitError::Rule(TxError::InvalidMeterKey(
                        "not a Baby Jubjub point".into(),
                    )))
                }
                None => {}
            }
        }
        for (k, e) in self.proofs.verify(&items) {
            results[positions[k]] = Some(AdmitError::InvalidProof(e));
        }
        // Proofs of the spends, against the inputs the ledger derives (binding hash included).
        let mut spends = Vec::new();
        let mut spend_positions = Vec::new();
        for (i, tx) in txs.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            match tx.spend_proof_item(&self.chain_id) {
                Some(Ok(item)) => {
                    spends.push(item);
                    spend_positions.push(i);
                }
                Some(Err(bad)) => {
                    results[i] = Some(AdmitError::Rule(TxError::Pool(PoolError::NotAField(bad))))
                }
                None => {}
            }
        }
        for (k, e) in self.proofs.verify_spends(&spends) {
            results[spend_positions[k]] = Some(AdmitError::InvalidProof(e));
        }
        // Unlinkable order proofs, against the market's id and the terms the order carries
        // (a market without a registry refuses them by its rules).
        if self.ledger.genesis().anonymous.is_some() {
            let market = self.ledger.market_id();
            let mut orders = Vec::new();
            let mut order_positions = Vec::new();
            for (i, tx) in txs.iter().enumerate() {
                if results[i].is_some() {
                    continue;
                }
                match tx.unlinkable_order_item(&self.chain_id, market) {
                    Some(Ok(item)) => {
                        orders.push(item);
                        order_positions.push(i);
                    }
                    Some(Err(bad)) => results[i] = Some(AdmitError::Rule(TxError::NotAField(bad))),
                    None => {}
                }
            }
            for (k, e) in self.proofs.verify_unlinkable(&orders) {
                results[order_positions[k]] = Some(AdmitError::InvalidProof(e));
            }
        }
        results
    }

    /// Steps 3-4: the ledger rules against `pending` (the committed state with every pending
    /// transaction applied; admitted transactions are applied to it) at `time`, then the
    /// mempool. `pre` is [`Admission::check_stateless`]'s answer for `txs`. Results are in
    /// input order.
    pub fn admit_checked(
        &self,
        txs: Vec<Transaction>,
        pre: Vec<Option<AdmitError>>,
        pending: &mut Overlay<'_>,
        time: u64,
        mempool: &mut Mempool,
    ) -> Vec<Result<TxId, AdmitError>> {
        txs.into_iter()
            .zip(pre)
            .map(|(tx, pre)| {
                if let Some(e) = pre {
                    return Err(e);
                }
                let id = tx.id();
                if mempool.contains(&id) {
                    return Err(AdmitError::Duplicate(id));
                }
                if mempool.len() >= mempool.capacity() {
                    return Err(AdmitError::MempoolFull);
                }
                mempool.check_quota(&tx.signer)?;
                // Apply to a copy only if the insertion cannot fail afterwards (checked above).
                match self.ledger.apply_signed_tx(pending, &tx, id, time) {
                    Err(TxError::Replay(id)) => Err(AdmitError::Duplicate(id)),
                    Err(e) => Err(AdmitError::Rule(e)),
                    Ok(()) => mempool.insert(tx).map_err(AdmitError::from),
                }
            })
            .collect()
    }

    /// Steps 2-4 for a batch against `state` (the committed state) at `time`: pending
    /// transactions are re-applied over it first, as a block would.
    pub fn admit(
        &self,
        txs: Vec<Transaction>,
        state: &dyn StateRead,
        time: u64,
        mempool: &mut Mempool,
    ) -> Vec<Result<TxId, AdmitError>> {
        let pre = self.check_stateless(&txs);
        let mut pending = Overlay::new(state);
        for tx in mempool.iter() {
            let _ = self.ledger.apply_signed_tx(&mut pending, tx, tx.id(), time);
        }
        self.admit_checked(txs, pre, &mut pending, time, mempool)
    }

    /// The rules this pipeline checks against.
    pub fn ledger(&self) -> &Ledger<'g> {
        &self.ledger
    }
}
