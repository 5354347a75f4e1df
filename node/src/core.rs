//! The node's shared state: the committed ledger, the mempool with the state it implies, the
//! admission pipeline, the store, commit notifications and metrics. The HTTP API and the
//! consensus application both work through it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc, oneshot};
use veilwatt_verifier::ledger::MarketVerifier;
use veilwatt_verifier::ledger::{Applied, BlockError, Ledger, LedgerRead, ProofCheck};
use veilwatt_verifier::state::{ChangeSet, Overlay, StateUpdate};
use veilwatt_verifier::types::{Block, Genesis, Hash32, Transaction, TxId, WalletKey};

use crate::admission::{Admission, AdmissionConfig, AdmitError, ProofCache};
use crate::consensus::context::ValidatorSet;
use crate::forward::{ForwardError, Forwarder};
use crate::mempool::Mempool;
use crate::metrics::NodeMetrics;
use crate::store::{RocksStore, StoreError, TxLocation};

/// How many rejection reasons are remembered for `GET /v1/tx/{id}`.
const REJECTED_MEMORY: usize = 100_000;
/// Most transactions verified together in one admission batch.
const ADMIT_BATCH: usize = 512;
/// Proofs remembered as verified.
const PROOF_CACHE: usize = 200_000;

/// Unix seconds from the wall clock (admission and proposing only; never the state machine).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub use veilwatt_verifier::api::{CommitEvent, ForwardOutcome, TxStatus};

/// Failures of the node's own machinery (not of a client's input).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state could not be read.
    #[error(transparent)]
    State(#[from] veilwatt_verifier::state::StateError),
    /// The stored state does not match genesis.
    #[error("{0}")]
    Inconsistent(String),
}

struct Pool {
    mempool: Mempool,
    /// What applying every pending transaction changes in the committed state.
    pending: ChangeSet,
}

/// The last committed block, as the node's status reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tip {
    /// Height (0 before the first block).
    pub height: u64,
    /// Its hash (zero at genesis).
    pub last_block_hash: Hash32,
    /// Its consensus time.
    pub last_time: u64,
    /// The state root after it.
    pub state_root: Hash32,
}

#[derive(Default)]
struct Rejected {
    reasons: BTreeMap<TxId, (String, String)>,
    order: VecDeque<TxId>,
}

impl Rejected {
    fn insert(&mut self, id: TxId, code: &str, reason: String) {
        if self.reasons.insert(id, (code.to_owned(), reason)).is_none() {
            self.order.push_back(id);
            while self.order.len() > REJECTED_MEMORY {
                if let Some(old) = self.order.pop_front() {
                    self.reasons.remove(&old);
                }
            }
        }
    }
}

type AdmitReply = oneshot::Sender<Result<TxId, AdmitError>>;

/// Where a submitted transaction comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client of this node's API: forwarded to the other validators once admitted.
    Client,
    /// Another validator forwarded it: not forwarded again.
    Peer,
}

/// The shared state of one node.
pub struct NodeCore {
    /// Genesis (lives as long as the process).
    pub genesis: &'static Genesis,
    /// The rules.
    pub ledger: Ledger<'static>,
    /// Proofs verified so far.
    pub proofs: &'static ProofCache,
    admission: Admission<'static>,
    /// Storage.
    pub store: RocksStore,
    tip: RwLock<Tip>,
    pool: Mutex<Pool>,
    rejected: Mutex<Rejected>,
    events: broadcast::Sender<Arc<CommitEvent>>,
    admit_tx: mpsc::Sender<(Transaction, Origin, AdmitReply)>,
    forwarder: OnceLock<Forwarder>,
    /// The last forwarded batch taken from each peer validator.
    forward_replays: Mutex<crate::forward::ReplayGuard>,
    /// Test-only misbehaviour of this validator as a proposer.
    #[cfg(feature = "byzantine")]
    pub byzantine: OnceLock<crate::byzantine::Mode>,
    /// Metrics.
    pub metrics: NodeMetrics,
    /// Consensus validator set.
    pub validators: ValidatorSet,
    /// False once shutdown began: the API refuses new transactions.
    pub accepting: AtomicBool,
    /// Height of the last block received through sync (0 if none).
    pub synced_to: AtomicU64,
    /// Configured peers.
    pub peers: Vec<String>,
    /// This node's moniker.
    pub moniker: String,
    /// This validator's consensus key.
    pub self_key: WalletKey,
    /// Set when shutdown begins; long-lived responses (event streams) end on it.
    pub closing: tokio::sync::watch::Sender<bool>,
}

/// The receiving end of the admission queue; run with [`NodeCore::run_admission`].
pub struct AdmissionQueue(mpsc::Receiver<(Transaction, Origin, AdmitReply)>);

impl NodeCore {
    /// Opens the node's state: the store at `ledger_dir`, resuming from its last block.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        genesis: Genesis,
        verifier: MarketVerifier,
        store: RocksStore,
        admission: AdmissionConfig,
        mempool: crate::config::MempoolSettings,
        peers: Vec<String>,
        moniker: String,
        self_key: WalletKey,
    ) -> Result<(Arc<Self>, AdmissionQueue), CoreError> {
        // One genesis per process lifetime: leaking it lets the rules borrow it for 'static.
        let genesis: &'static Genesis = Box::leak(Box::new(genesis));
        let ledger = Ledger::new(genesis).map_err(|e| CoreError::Inconsistent(e.to_string()))?;
        let validators = ValidatorSet::from_genesis(genesis)
            .map_err(|e| CoreError::Inconsistent(e.to_string()))?;
        let metrics = NodeMetrics::register(&moniker);
        let proofs: &'static ProofCache = Box::leak(Box::new(
            ProofCache::new(verifier, PROOF_CACHE).with_counter(metrics.proofs_verified.clone()),
        ));
        if !store.is_initialized()? {
            let genesis_state = ledger.genesis_update(&store.live())?;
            store.init_genesis(&genesis_state)?;
        }
        let view = store.live();
        let meta = view.meta()?;
        let tip = Tip {
            height: meta.height,
            last_block_hash: view.last_block_hash()?,
            last_time: meta.last_time,
            state_root: veilwatt_verifier::state::tree::root(&view)?,
        };
        drop(view);
        let (events, _) = broadcast::channel(1024);
        let (admit_tx, admit_rx) = mpsc::channel(16 * 1024);
        metrics.height.set(tip.height as i64);
        let core = Arc::new(Self {
            genesis,
            ledger,
            proofs,
            admission: Admission::new(ledger, genesis.chain_id.clone(), admission, proofs),
            store,
            pool: Mutex::new(Pool {
                mempool: Mempool::new(mempool.capacity)
                    .with_signer_quota(mempool.per_signer, Some(genesis.registrar)),
                pending: ChangeSet::new(),
            }),
            tip: RwLock::new(tip),
            rejected: Mutex::default(),
            events,
            admit_tx,
            forwarder: OnceLock::new(),
            forward_replays: Mutex::default(),
            #[cfg(feature = "byzantine")]
            byzantine: OnceLock::new(),
            metrics,
            validators,
            accepting: AtomicBool::new(true),
            synced_to: AtomicU64::new(0),
            peers,
            moniker,
            self_key,
            closing: tokio::sync::watch::channel(false).0,
        });
        Ok((core, AdmissionQueue(admit_rx)))
    }

    /// The last committed block.
    pub fn tip(&self) -> Tip {
        *self.tip.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to commit events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommitEvent>> {
        self.events.subscribe()
    }

    /// Decodes a submitted body (size limit, JSON).
    pub fn decode(&self, body: &[u8]) -> Result<Transaction, AdmitError> {
        self.admission.decode(body)
    }

    /// Forwards transactions admitted from clients with `forwarder` from now on.
    pub fn set_forwarder(&self, forwarder: Forwarder) {
        let _ = self.forwarder.set(forwarder);
    }

    /// Submits a decoded transaction to the admission queue and waits for the verdict.
    pub async fn submit(&self, tx: Transaction) -> Result<TxId, AdmitError> {
        self.submit_from(tx, Origin::Client).await
    }

    async fn submit_from(&self, tx: Transaction, origin: Origin) -> Result<TxId, AdmitError> {
        let (reply, rx) = oneshot::channel();
        self.admit_tx
            .try_send((tx, origin, reply))
            .map_err(|_| AdmitError::MempoolFull)?;
        rx.await.unwrap_or(Err(AdmitError::MempoolFull))
    }

    /// Admits a batch another validator forwarded (see [`crate::forward`]): checks who sent it,
    /// then runs every transaction through this node's own admission.
    pub async fn receive_forwarded(&self, body: &[u8]) -> Result<ForwardOutcome, ForwardError> {
        let batch = crate::forward::open(
            body,
            &self.genesis.chain_id,
            &self.genesis.validators,
            &self.self_key,
        )?;
        lock(&self.forward_replays).admit(&batch, crate::forward::now_us())?;
        self.metrics.forward_received.inc_by(batch.txs.len() as u64);
        let verdicts = futures::future::join_all(
            batch
                .txs
                .into_iter()
                .map(|tx| self.submit_from(tx, Origin::Peer)),
        )
        .await;
        let mut out = ForwardOutcome::default();
        for v in verdicts {
            match v {
                Ok(_) => out.admitted += 1,
                Err(AdmitError::Duplicate(_)) => out.duplicate += 1,
                Err(_) => out.refused += 1,
            }
        }
        Ok(out)
    }

    /// The admission worker: takes queued submissions in batches, checks signatures and
    /// proofs on the blocking pool (one batch verification per batch), then the rules.
    pub async fn run_admission(self: Arc<Self>, mut queue: AdmissionQueue) {
        while let Some(first) = queue.0.recv().await {
            let mut batch = vec![first];
            while batch.len() < ADMIT_BATCH {
                match queue.0.try_recv() {
                    Ok(x) => batch.push(x),
                    Err(_) => break,
                }
            }
            let mut txs = Vec::with_capacity(batch.len());
            let mut origins = Vec::with_capacity(batch.len());
            let mut replies = Vec::with_capacity(batch.len());
            for (tx, origin, reply) in batch {
                txs.push(tx);
                origins.push(origin);
                replies.push(reply);
            }
            let core = Arc::clone(&self);
            let results = tokio::task::spawn_blocking(move || core.admit_batch(txs, origins)).await;
            match results {
                Ok(results) => {
                    for (r, reply) in results.into_iter().zip(replies) {
                        let _ = reply.send(r);
                    }
                }
                Err(e) => tracing::error!(error = %e, "admission batch panicked"),
            }
        }
    }

    fn admit_batch(
        &self,
        txs: Vec<Transaction>,
        origins: Vec<Origin>,
    ) -> Vec<Result<TxId, AdmitError>> {
        #[allow(unused_mut)]
        let mut pre = self.admission.check_stateless(&txs);
        #[cfg(feature = "byzantine")]
        if self.byzantine.get() == Some(&crate::byzantine::Mode::InvalidProof) {
            crate::byzantine::ignore_invalid_proofs(&mut pre);
        }
        // Client transactions that passed the stateless checks, kept for forwarding.
        let forward: Vec<Transaction> = match self.forwarder.get() {
            Some(_) => txs
                .iter()
                .zip(&origins)
                .zip(&pre)
                .filter(|((_, o), p)| **o == Origin::Client && p.is_none())
                .map(|((t, _), _)| t.clone())
                .collect(),
            None => Vec::new(),
        };
        let mut pool = lock(&self.pool);
        // The pool lock also orders admission after any commit in progress, so the pending
        // changes and the store agree.
        let time = now_secs().max(self.tip().last_time);
        let Pool { mempool, pending } = &mut *pool;
        let view = self.store.live();
        let mut overlay = Overlay::with_changes(&view, std::mem::take(pending));
        let results = self
            .admission
            .admit_checked(txs, pre, &mut overlay, time, mempool);
        *pending = overlay.into_changes();
        self.metrics.mempool.set(mempool.len() as i64);
        drop(pool);
        for r in &results {
            match r {
                Ok(_) => {
                    self.metrics.accepted.inc();
                }
                Err(e) => self.metrics.rejected(e.code()),
            }
        }
        if let Some(f) = self.forwarder.get() {
            // Only what this node admitted: the ids of accepted client transactions.
            let admitted: BTreeSet<TxId> = results
                .iter()
                .filter_map(|r| r.as_ref().ok().copied())
                .collect();
            for tx in forward {
                if admitted.contains(&tx.id()) {
                    f.push(tx);
                }
            }
        }
        results
    }

    /// Status of a transaction.
    pub fn tx_status(&self, id: &TxId) -> Result<Option<TxStatus>, StoreError> {
        if let Some(TxLocation { height, index }) = self.store.tx_location(id)? {
            return Ok(Some(TxStatus::Committed { height, index }));
        }
        if lock(&self.pool).mempool.contains(id) {
            return Ok(Some(TxStatus::Pending));
        }
        Ok(lock(&self.rejected)
            .reasons
            .get(id)
            .map(|(code, reason)| TxStatus::Rejected {
                code: code.clone(),
                reason: reason.clone(),
            }))
    }

    /// Number of pending transactions.
    pub fn mempool_len(&self) -> usize {
        lock(&self.pool).mempool.len()
    }

    /// Builds the block a proposer offers at `height`, `time`: pending transactions in arrival
    /// order, skipping any the rules now refuse (those are dropped from the mempool), executed
    /// for its state root. Returns the block and the state update it makes.
    pub fn build_block(
        &self,
        height: u64,
        time: u64,
        proposer: WalletKey,
        max_txs: usize,
    ) -> Result<(Block, Applied), BlockError> {
        let tip = self.tip();
        let time = time.max(tip.last_time);
        let limits = &self.genesis.consensus;
        let max_txs = max_txs.min(limits.max_block_txs as usize);
        let candidates = lock(&self.pool).mempool.peek(max_txs);
        let mut bytes = Block::EMPTY_ENCODED_LEN;
        let committed = self.store.live();
        let mut scratch = Overlay::new(&committed);
        let mut events = Vec::new();
        self.ledger
            .begin_block(&mut scratch, height, time, &mut events)
            .map_err(BlockError::Clearing)?;
        let mut txs = Vec::with_capacity(candidates.len());
        let mut refused = Vec::new();
        for tx in candidates {
            let size = tx.encoded_len();
            if bytes.saturating_add(size) > limits.max_block_bytes {
                // Full: the rest waits for the next block (a lone transaction larger than a
                // block never fits and is refused).
                if txs.is_empty() && refused.is_empty() {
                    refused.push((tx.id(), "larger than the genesis' max_block_bytes".into()));
                    continue;
                }
                break;
            }
            let id = tx.id();
            match self.ledger.apply_signed_tx(&mut scratch, &tx, id, time) {
                Ok(()) => {
                    bytes += size;
                    txs.push(tx)
                }
                Err(e) => refused.push((id, e.to_string())),
            }
        }
        drop(scratch);
        if !refused.is_empty() {
            self.drop_pending(refused);
        }
        let mut block = Block {
            height,
            prev_hash: tip.last_block_hash,
            time,
            proposer,
            txs,
            state_root: Hash32::default(),
        };
        let proofs: &dyn ProofCheck = self.proofs;
        #[cfg(feature = "byzantine")]
        let proofs: &dyn ProofCheck = match self.byzantine.get() {
            Some(crate::byzantine::Mode::InvalidProof) => &crate::byzantine::AcceptAll,
            _ => proofs,
        };
        #[allow(unused_mut)]
        let (mut changes, events) = self.ledger.execute(&committed, &block, proofs)?;
        #[cfg(feature = "byzantine")]
        if self.byzantine.get() == Some(&crate::byzantine::Mode::WrongTrades) {
            crate::byzantine::tamper_clearing(&mut changes, &committed);
        }
        let mut update = StateUpdate::compute(&committed, height, changes)?;
        block.state_root = update.root;
        // The hash covers the root, so the tip's hash is recorded after it is known (it is
        // not part of the root).
        update.changes.insert(
            veilwatt_verifier::state::keys::chain(),
            Some(veilwatt_verifier::types::encode(&block.hash())),
        );
        Ok((block, Applied { update, events }))
    }

    /// Checks a proposed or synced block in full against the committed state: height, parent,
    /// time, proposer, every signature, every proof not verified before, every rule, the
    /// period clearing and the state root. Returns the state update it makes.
    pub fn validate_block(&self, block: &Block) -> Result<Applied, BlockError> {
        self.ledger
            .apply_block(&self.store.live(), block, self.proofs)
    }

    fn drop_pending(&self, refused: Vec<(TxId, String)>) {
        let ids: Vec<TxId> = refused.iter().map(|(id, _)| *id).collect();
        let mut pool = lock(&self.pool);
        pool.mempool.remove(&ids);
        self.metrics.mempool.set(pool.mempool.len() as i64);
        drop(pool);
        self.record_rejected(refused);
    }

    /// Remembers why pending transactions were dropped, for `GET /v1/tx/{id}`.
    fn record_rejected(&self, dropped: Vec<(TxId, String)>) {
        let mut rej = lock(&self.rejected);
        for (id, reason) in dropped {
            rej.insert(id, "rule_violation", reason);
        }
    }

    /// Commits a decided block (durably, with its certificate and state update), then updates
    /// the tip, the mempool and subscribers.
    pub fn commit(
        &self,
        block: &Block,
        applied: Applied,
        certificate: &[u8],
    ) -> Result<(), CoreError> {
        let started = std::time::Instant::now();
        let ids: Vec<TxId> = block.txs.iter().map(Transaction::id).collect();
        let mut dropped = Vec::new();
        {
            // Under the pool lock: admission never sees the new store with the old pending
            // changes.
            let mut pool = lock(&self.pool);
            let bytes = self
                .store
                .commit_decided(block, &applied.update, certificate)?;
            self.metrics.commit_bytes.inc_by(bytes as u64);
            *self.tip.write().unwrap_or_else(|e| e.into_inner()) = Tip {
                height: block.height,
                last_block_hash: block.hash(),
                last_time: block.time,
                state_root: applied.update.root,
            };
            // The mempool: drop what the block included, re-apply the rest to the new state
            // and drop what no longer applies.
            pool.mempool.remove(&ids);
            let view = self.store.live();
            let mut pending = Overlay::new(&view);
            let time = now_secs().max(block.time);
            for tx in pool.mempool.iter() {
                let id = tx.id();
                if let Err(e) = self.ledger.apply_signed_tx(&mut pending, tx, id, time) {
                    dropped.push((id, e.to_string()));
                }
            }
            let dropped_ids: Vec<TxId> = dropped.iter().map(|(id, _)| *id).collect();
            pool.pending = pending.into_changes();
            pool.mempool.remove(&dropped_ids);
            self.metrics.mempool.set(pool.mempool.len() as i64);
        }
        self.record_rejected(dropped);
        self.metrics.observe_commit(block, started.elapsed());
        let _ = self.events.send(Arc::new(CommitEvent {
            height: block.height,
            hash: block.hash(),
            time: block.time,
            state_root: block.state_root,
            txs: ids,
            cleared_periods: applied.cleared_periods(),
        }));
        Ok(())
    }
}
