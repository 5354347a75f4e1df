//! The validator API's schema: the JSON of every `/v1` answer, one type each, written by the
//! node (node/src/api.rs) and read by every client ([`crate::client::NodeClient`]). The
//! OpenAPI document (node/src/openapi.json) describes the same shapes, and node/tests/it/api.rs
//! checks the node's answers against both.

use serde::{Deserialize, Serialize};

use crate::certificate::Certificate;
use crate::clearing::Trade;
use crate::ledger::{OrderOutcome, OrderRecord, PeriodResult};
use crate::registry::Enrolment;
use crate::types::{
    Block, FieldBytes, Hash32, MeterKey, Side, Signature64, Transaction, TxId, Validator, WalletKey,
};

/// Every error answer: a stable code and a reason for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// Stable code (`malformed`, `rule_violation`, `rate_limited`, ...: the OpenAPI document lists them).
    pub code: String,
    /// Why.
    pub message: String,
}

/// Where a transaction is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxStatus {
    /// In the mempool.
    Pending,
    /// In a committed block.
    Committed {
        /// Block height.
        height: u64,
        /// Position in the block.
        index: u32,
    },
    /// Dropped after admission (it became invalid before a block included it).
    Rejected {
        /// Stable code.
        code: String,
        /// Why.
        reason: String,
    },
}

/// `POST /v1/tx` (202, always `pending`) and `GET /v1/tx/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatusView {
    /// The transaction's id.
    pub id: TxId,
    /// Its status.
    #[serde(flatten)]
    pub status: TxStatus,
}

/// One validator's precommit signature in a [`CertificateView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureView {
    /// The validator's consensus key.
    pub validator: WalletKey,
    /// Its Ed25519 signature.
    pub signature: Signature64,
}

/// A block's commit certificate (the block's height is the certificate's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateView {
    /// Consensus round the block was decided in.
    pub round: i64,
    /// The decided block's hash.
    pub block_hash: Hash32,
    /// The precommit signatures.
    pub signatures: Vec<SignatureView>,
}

impl From<&Certificate> for CertificateView {
    fn from(c: &Certificate) -> Self {
        Self {
            round: c.round,
            block_hash: c.block_hash,
            signatures: c
                .signatures
                .iter()
                .map(|(validator, signature)| SignatureView {
                    validator: *validator,
                    signature: *signature,
                })
                .collect(),
        }
    }
}

impl CertificateView {
    /// The certificate of the block at `height`.
    pub fn certificate(&self, height: u64) -> Certificate {
        Certificate {
            height,
            round: self.round,
            block_hash: self.block_hash,
            signatures: self
                .signatures
                .iter()
                .map(|s| (s.validator, s.signature))
                .collect(),
        }
    }
}

/// A transaction with its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxView {
    /// [`Transaction::id`].
    pub id: TxId,
    /// The transaction.
    #[serde(flatten)]
    pub tx: Transaction,
}

/// `GET /v1/blocks/{height}`: a committed block, its hash and its certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockView {
    /// Height.
    pub height: u64,
    /// [`Block::hash`].
    pub hash: Hash32,
    /// The previous block's hash.
    pub prev_hash: Hash32,
    /// Consensus time, Unix seconds.
    pub time: u64,
    /// The proposer's consensus key.
    pub proposer: WalletKey,
    /// State root after the block.
    pub state_root: Hash32,
    /// Its transactions, in order.
    pub txs: Vec<TxView>,
    /// Its commit certificate (`None` only if the node could not decode its own copy).
    pub certificate: Option<CertificateView>,
}

impl BlockView {
    /// The view of `block`, certified by `certificate`.
    pub fn new(block: &Block, certificate: Option<&Certificate>) -> Self {
        Self {
            height: block.height,
            hash: block.hash(),
            prev_hash: block.prev_hash,
            time: block.time,
            proposer: block.proposer,
            state_root: block.state_root,
            txs: block
                .txs
                .iter()
                .map(|tx| TxView {
                    id: tx.id(),
                    tx: tx.clone(),
                })
                .collect(),
            certificate: certificate.map(CertificateView::from),
        }
    }

    /// The block (its hash is recomputed from it: compare with [`BlockView::hash`]).
    pub fn block(&self) -> Block {
        Block {
            height: self.height,
            prev_hash: self.prev_hash,
            time: self.time,
            proposer: self.proposer,
            txs: self.txs.iter().map(|t| t.tx.clone()).collect(),
            state_root: self.state_root,
        }
    }
}

/// `GET /v1/blocks?from=&to=`: committed blocks `from..=to`, cut by count and bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRange {
    /// First height asked for.
    pub from: u64,
    /// Last height the answer covers: ask again from `to + 1` for more.
    pub to: u64,
    /// The node's height.
    pub height: u64,
    /// The blocks.
    pub blocks: Vec<BlockView>,
}

/// A count or a quantity per side of the market.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerSide {
    /// Sell side.
    pub sell: u64,
    /// Buy side.
    pub buy: u64,
}

impl PerSide {
    /// Adds `n` to `side`'s figure (saturating: figures of a period never come near).
    pub fn add(&mut self, side: Side, n: u64) {
        let slot = match side {
            Side::Sell => &mut self.sell,
            Side::Buy => &mut self.buy,
        };
        *slot = slot.saturating_add(n);
    }
}

/// Fees of a cleared period, millis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodFees {
    /// Grid fees (to the grid operator).
    pub grid: u64,
    /// Market fees of both sides (to the market operator).
    pub market: u64,
}

/// A cleared period: the ledger's [`PeriodResult`] and its totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearedPeriod {
    /// The period.
    pub period: u64,
    /// Height of the block that cleared it.
    pub cleared_at: u64,
    /// Uniform clearing price, millis per kWh (`None`: nothing matched).
    pub clearing_price: Option<u64>,
    /// Matched energy, Wh.
    pub volume_wh: u64,
    /// Orders per side.
    pub orders: PerSide,
    /// Money paid for energy, millis.
    pub money_exchanged_millis: u64,
    /// Fees, millis.
    pub fees_millis: PeriodFees,
    /// Energy offered or bid and not matched, Wh.
    pub unmatched_wh: PerSide,
    /// Trades.
    pub trades: Vec<Trade>,
    /// Every order's outcome.
    pub outcomes: Vec<OrderOutcome>,
}

impl ClearedPeriod {
    /// The view of a cleared period's result.
    pub fn new(r: &PeriodResult) -> Self {
        let total = |f: fn(&Trade) -> u64| r.trades.iter().map(f).fold(0, u64::saturating_add);
        let (mut orders, mut unmatched_wh) = (PerSide::default(), PerSide::default());
        for o in &r.orders {
            orders.add(o.side, 1);
            unmatched_wh.add(o.side, u64::from(o.unmatched_wh));
        }
        Self {
            period: r.period,
            cleared_at: r.cleared_at,
            clearing_price: r.clearing_price,
            volume_wh: r.volume_wh,
            orders,
            money_exchanged_millis: total(|t| t.energy_value),
            fees_millis: PeriodFees {
                grid: total(|t| t.grid_fee),
                market: total(|t| t.market_fee_buyer.saturating_add(t.market_fee_seller)),
            },
            unmatched_wh,
            trades: r.trades.clone(),
            outcomes: r.orders.clone(),
        }
    }

    /// The ledger's result of the period.
    pub fn result(&self) -> PeriodResult {
        PeriodResult {
            period: self.period,
            cleared_at: self.cleared_at,
            clearing_price: self.clearing_price,
            volume_wh: self.volume_wh,
            trades: self.trades.clone(),
            orders: self.outcomes.clone(),
        }
    }
}

/// A period whose gate is open or whose clearing is still to come.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenPeriod {
    /// The period.
    pub period: u64,
    /// When the period ends, Unix seconds (`None`: past the end of time).
    pub period_end: Option<u64>,
    /// The last block time at which its orders are admitted.
    pub gate_close: Option<u64>,
    /// Open orders per side.
    pub orders: PerSide,
    /// Their quantities, Wh.
    pub quantity_wh: PerSide,
}

/// `GET /v1/periods/{period}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PeriodView {
    /// Not cleared yet.
    Open(OpenPeriod),
    /// Cleared.
    Cleared(ClearedPeriod),
}

impl PeriodView {
    /// The period.
    pub fn period(&self) -> u64 {
        match self {
            Self::Open(p) => p.period,
            Self::Cleared(p) => p.period,
        }
    }

    /// The ledger's result of the period (`None` while it is open).
    pub fn result(&self) -> Option<PeriodResult> {
        match self {
            Self::Open(_) => None,
            Self::Cleared(p) => Some(p.result()),
        }
    }
}

/// `GET /v1/accounts/{address}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountView {
    /// The wallet key.
    pub address: WalletKey,
    /// Available balance, millis.
    pub balance_millis: u64,
    /// Held for open buy orders, millis.
    pub escrow_millis: u64,
    /// Its open orders.
    pub open_orders: Vec<OrderRecord>,
    /// Meters enrolled to it.
    pub meters: Vec<MeterKey>,
}

/// An open order of a meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRef {
    /// Its period.
    pub period: u64,
    /// Its id.
    pub id: TxId,
}

/// `GET /v1/meters/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterView {
    /// The meter key.
    pub id: MeterKey,
    /// Its owner's wallet (meters enrolled for wallet-signed orders).
    pub owner: Option<WalletKey>,
    /// Backs no order: every enrolment it has is revoked.
    pub revoked: bool,
    /// Its open wallet-signed orders.
    pub open_orders: Vec<OrderRef>,
    /// Its enrolment in the registry of unlinkable orders.
    pub enrolment: Option<Enrolment>,
}

/// `GET /v1/registry`: the meter registry of a market with unlinkable orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryView {
    /// Positions used (live or revoked).
    pub size: u64,
    /// The tree's depth.
    pub depth: u32,
    /// Its root now.
    pub root: FieldBytes,
    /// The roots an order may prove against, oldest first.
    pub recent_roots: Vec<FieldBytes>,
    /// How many recent roots stay valid (genesis).
    pub registry_history: u64,
}

/// `GET /v1/registry/leaves?from=&limit=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryLeaves {
    /// Positions used.
    pub size: u64,
    /// The root these leaves give.
    pub root: FieldBytes,
    /// Position of the first leaf.
    pub from: u64,
    /// The leaves.
    pub leaves: Vec<FieldBytes>,
}

/// `GET /v1/state/{key}` (without `proof=true`; with it, a [`crate::state::StateProof`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateValue {
    /// The height whose state this is.
    pub height: u64,
    /// The key, hex.
    pub key: String,
    /// The value, hex.
    pub value: String,
}

/// Whether the node follows consensus live or catches up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncView {
    /// The last block came through value sync rather than live consensus.
    pub catching_up: bool,
    /// The last height taken through value sync (0: none).
    pub last_synced_height: u64,
}

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusView {
    /// The market's chain id.
    pub chain_id: String,
    /// A transaction's `expires_at` may be at most this many seconds after the time of the
    /// block that includes it.
    pub max_tx_lifetime_secs: u64,
    /// This node's name.
    pub moniker: String,
    /// Height of the last committed block (0: none yet).
    pub height: u64,
    /// Its hash.
    pub last_block_hash: Hash32,
    /// Its consensus time, Unix seconds.
    pub last_block_time: u64,
    /// Start of period 0, Unix seconds.
    pub genesis_time: u64,
    /// Length of a settlement period, seconds.
    pub period_secs: u64,
    /// Orders for period p are admitted until `period_end(p) + gate_delay_secs`.
    pub gate_delay_secs: u64,
    /// State root after the last block (`None` before the first).
    pub state_root: Option<Hash32>,
    /// The genesis validator set.
    pub validators: Vec<Validator>,
    /// The peers this node was configured with.
    pub peers: Vec<String>,
    /// Sync.
    pub sync: SyncView,
    /// Transactions waiting in the mempool.
    pub mempool: u64,
    /// Whether the node admits transactions (false while it shuts down).
    pub accepting: bool,
    /// Size of its database, bytes.
    pub db_bytes: u64,
}

/// A `commit` event of `GET /v1/events`, published after every commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitEvent {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash32,
    /// Consensus time.
    pub time: u64,
    /// State root.
    pub state_root: Hash32,
    /// Ids of the block's transactions.
    pub txs: Vec<TxId>,
    /// Periods cleared by the block.
    pub cleared_periods: Vec<u64>,
}

/// `POST /v1/peer/txs`: what became of a forwarded batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardOutcome {
    /// Admitted to the mempool.
    pub admitted: u64,
    /// Already pending or committed here.
    pub duplicate: u64,
    /// Refused (signature, proof, rules, full mempool).
    pub refused: u64,
}
