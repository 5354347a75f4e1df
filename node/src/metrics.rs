//! Prometheus metrics of the node, registered beside the consensus engine's in one registry
//! and served at `/metrics`. (Durations are observed as seconds, the Prometheus convention; they
//! are telemetry, never consensus input.)

use std::time::Duration;

use arc_malachitebft_app_channel::app::metrics::prometheus::metrics::counter::Counter;
use arc_malachitebft_app_channel::app::metrics::prometheus::metrics::family::Family;
use arc_malachitebft_app_channel::app::metrics::prometheus::metrics::gauge::Gauge;
use arc_malachitebft_app_channel::app::metrics::prometheus::metrics::histogram::{
    exponential_buckets, Histogram,
};
use arc_malachitebft_app_channel::app::metrics::SharedRegistry;
use veilwatt_verifier::types::{Block, TxBody};

/// A counter family with string labels.
pub type LabelledCounter = Family<Vec<(String, String)>, Counter>;

/// The node's own metrics.
#[derive(Clone)]
pub struct NodeMetrics {
    /// Transactions admitted to the mempool.
    pub accepted: Counter,
    /// Transactions refused at admission, by error code.
    pub refused: Family<Vec<(String, String)>, Counter>,
    /// Blocks committed.
    pub blocks: Counter,
    /// Transactions committed.
    pub committed_txs: Counter,
    /// Orders committed.
    pub committed_orders: Counter,
    /// Last committed height.
    pub height: Gauge,
    /// Pending transactions.
    pub mempool: Gauge,
    /// Time to write a decided block durably and update the state.
    pub commit_seconds: Histogram,
    /// Bytes of the write batches of committed blocks (block, indexes, state entries).
    pub commit_bytes: Counter,
    /// Batches delivered to a peer validator.
    pub forwarded_batches: Counter,
    /// Batches a peer validator could not be reached for, after retries.
    pub forward_failed: Counter,
    /// Transactions not forwarded because a queue was full.
    pub forward_dropped: Counter,
    /// Transactions received from peer validators.
    pub forward_received: Counter,
    /// Proposed blocks this validator found invalid and voted against.
    pub proposals_refused: Counter,
    /// Proposal streams dropped unfinished (over a limit, a refused header, equivocation).
    pub proposal_streams_dropped: Counter,
    /// Unfinished proposal streams held in memory.
    pub proposal_streams_held: Gauge,
    /// Blocks held as candidates for heights not yet decided (persisted as pending).
    pub candidates: Gauge,
    /// Complete proposals past their round's checked few, held unchecked until the round's
    /// `Proposal` names one.
    pub proposals_parked: Gauge,
    /// Groth16 proofs verified (cache hits excluded), by circuit and result.
    pub proofs_verified: LabelledCounter,
    /// Open API connections.
    pub api_connections: Gauge,
    /// API connections closed on arrival: `api.max_connections` were open.
    pub api_connections_refused: Counter,
    /// API requests answered 429 `rate_limited`.
    pub api_rate_limited: Counter,
    /// Event-stream clients refused: `api.max_subscribers` were connected.
    pub api_subscribers_refused: Counter,
}

impl NodeMetrics {
    /// Registers the metrics under `veilwatt_`, labelled with `moniker`.
    pub fn register(moniker: &str) -> Self {
        let m = Self {
            accepted: Counter::default(),
            refused: Family::default(),
            blocks: Counter::default(),
            committed_txs: Counter::default(),
            committed_orders: Counter::default(),
            height: Gauge::default(),
            mempool: Gauge::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            commit_bytes: Counter::default(),
            forwarded_batches: Counter::default(),
            forward_failed: Counter::default(),
            forward_dropped: Counter::default(),
            forward_received: Counter::default(),
            proposals_refused: Counter::default(),
            proposal_streams_dropped: Counter::default(),
            proposal_streams_held: Gauge::default(),
            candidates: Gauge::default(),
            proposals_parked: Gauge::default(),
            proofs_verified: Family::default(),
            api_connections: Gauge::default(),
            api_connections_refused: Counter::default(),
            api_rate_limited: Counter::default(),
            api_subscribers_refused: Counter::default(),
        };
        SharedRegistry::global()
            .with_moniker(moniker)
            .with_prefix("veilwatt", |reg| {
                reg.register(
                    "tx_accepted",
                    "Transactions admitted to the mempool",
                    m.accepted.clone(),
                );
                reg.register(
                    "tx_refused",
                    "Transactions refused at admission, by code",
                    m.refused.clone(),
                );
                reg.register("blocks", "Blocks committed", m.blocks.clone());
                reg.register(
                    "tx_committed",
                    "Transactions committed",
                    m.committed_txs.clone(),
                );
                reg.register(
                    "orders_committed",
                    "Orders committed",
                    m.committed_orders.clone(),
                );
                reg.register("height", "Last committed height", m.height.clone());
                reg.register("mempool_size", "Pending transactions", m.mempool.clone());
                reg.register(
                    "commit_seconds",
                    "Time to commit a decided block",
                    m.commit_seconds.clone(),
                );
                reg.register(
                    "commit_bytes",
                    "Bytes written to RocksDB by committed blocks (block, indexes, state entries)",
                    m.commit_bytes.clone(),
                );
                reg.register(
                    "forward_batches",
                    "Transaction batches delivered to peer validators",
                    m.forwarded_batches.clone(),
                );
                reg.register(
                    "forward_failed",
                    "Transaction batches a peer validator could not be reached for",
                    m.forward_failed.clone(),
                );
                reg.register(
                    "forward_dropped",
                    "Transactions not forwarded because a queue was full",
                    m.forward_dropped.clone(),
                );
                reg.register(
                    "forward_received",
                    "Transactions received from peer validators",
                    m.forward_received.clone(),
                );
                reg.register(
                    "proposals_refused",
                    "Proposed blocks found invalid and voted against",
                    m.proposals_refused.clone(),
                );
                reg.register(
                    "proposal_streams_dropped",
                    "Proposal streams dropped: over a genesis limit, a refused header, a second proposal for one round",
                    m.proposal_streams_dropped.clone(),
                );
                reg.register(
                    "proposal_streams_held",
                    "Unfinished proposal streams held in memory",
                    m.proposal_streams_held.clone(),
                );
                reg.register(
                    "consensus_candidates",
                    "Blocks held for heights not yet decided",
                    m.candidates.clone(),
                );
                reg.register(
                    "proposals_parked",
                    "Complete proposals held unchecked until their round's Proposal names one",
                    m.proposals_parked.clone(),
                );
                reg.register(
                    "proofs_verified",
                    "Groth16 proofs this validator verified (cache hits excluded), by circuit \
                     and result",
                    m.proofs_verified.clone(),
                );
                reg.register(
                    "api_connections",
                    "Open API connections",
                    m.api_connections.clone(),
                );
                reg.register(
                    "api_connections_refused",
                    "API connections closed on arrival: api.max_connections were open",
                    m.api_connections_refused.clone(),
                );
                reg.register(
                    "api_rate_limited",
                    "API requests answered 429 rate_limited",
                    m.api_rate_limited.clone(),
                );
                reg.register(
                    "api_subscribers_refused",
                    "Event-stream clients refused: api.max_subscribers were connected",
                    m.api_subscribers_refused.clone(),
                );
            });
        m
    }

    /// Counts a refusal.
    pub fn rejected(&self, code: &str) {
        self.refused
            .get_or_create(&vec![("code".to_owned(), code.to_owned())])
            .inc();
    }

    /// Records a commit.
    pub fn observe_commit(&self, block: &Block, took: Duration) {
        self.blocks.inc();
        self.height.set(block.height as i64);
        self.committed_txs.inc_by(block.txs.len() as u64);
        let orders = block
            .txs
            .iter()
            .filter(|t| matches!(t.body, TxBody::Order { .. }))
            .count();
        self.committed_orders.inc_by(orders as u64);
        self.commit_seconds.observe(took.as_secs_f64());
    }
}

/// The whole registry in the Prometheus text format.
pub fn export() -> String {
    let mut s = String::new();
    arc_malachitebft_app_channel::app::metrics::export(&mut s);
    s
}
