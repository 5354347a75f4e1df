//! The ledger state machine (docs/spec/ledger.md): one pure function from a state and a block
//! to the changes it makes and its events. No clock (time is the block's consensus time), no
//! floats, no hash-map iteration, no randomness; all arithmetic checked. The state is read
//! through [`StateRead`] (keyed, see [`crate::state`]) and changed through an [`Overlay`], so a
//! block costs what it touches, not what the ledger holds.

use crate::clearing::{buy_escrow, clear, order_flows, order_note_value, BookOrder, Flow, Trade};
use crate::pool::{self, Pool, PoolError};
use crate::proof::{
    BatchFailure, JoinSplitVerifier, OrderProof, OrderVerifier, SpendProof,
    UnlinkableOrderVerifier, VerifyError,
};
use crate::registry::{self, Enrolment, RegistryUpdateError};
use crate::state::TreeRead;
use crate::state::{
    keys, ChangeSet, Overlay, Prefetched, StateError, StateRead, StateReadExt, StateUpdate,
};
use crate::types::{
    cancel_commitment, AnonymousParams, Block, FieldBytes, Genesis, GenesisError, Hash32, MeterKey,
    Millis, NoteOutput, NoteTarget, Payout, ShieldedParams, Side, Transaction, TxBody, TxId,
    UnlinkableOrderPublic, WalletKey, MAX_NOTE_MEMO,
};
use borsh::{BorshDeserialize, BorshSerialize};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use veilwatt_circuits::joinsplit::JoinSplitPublic;
use veilwatt_circuits::note;
use veilwatt_circuits::order::OrderPublic;

/// A wallet's money.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Account {
    /// Spendable, millis.
    pub balance: Millis,
    /// Held for open buy orders, millis.
    pub escrow: Millis,
}

/// A registered meter.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct MeterRecord {
    /// The wallet allowed to place orders backed by this meter.
    pub owner: WalletKey,
    /// Revoked meters back no new orders.
    pub revoked: bool,
}

/// An accepted order waiting for its period to clear.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct OrderRecord {
    /// Order id.
    pub id: TxId,
    /// Owner wallet (the order's signer).
    pub owner: WalletKey,
    /// Meter.
    pub meter: MeterKey,
    /// Period.
    pub period: u64,
    /// Side.
    pub side: Side,
    /// Quantity, Wh.
    pub quantity_wh: u32,
    /// Limit price, minor/kWh.
    pub limit_price: u64,
    /// Escrow held (buy orders), millis.
    pub escrow: Millis,
}

/// An open unlinkable order: no meter, no wallet; its money goes to notes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct UnlinkableOrderRecord {
    /// Order id (its transaction's id).
    pub id: TxId,
    /// Its nullifier.
    pub order_nf: FieldBytes,
    /// Period.
    pub period: u64,
    /// Side.
    pub side: Side,
    /// Quantity, Wh.
    pub quantity_wh: u32,
    /// Limit price, minor/kWh.
    pub limit_price: u64,
    /// Where proceeds or the unused escrow go.
    pub payout: NoteTarget,
    /// Commitment to the cancel key.
    pub cancel_commit: Hash32,
    /// Escrow held (buy orders), millis.
    pub escrow: Millis,
}

/// What happened to one order at clearing.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct OrderOutcome {
    /// Order id.
    pub id: TxId,
    /// Owner wallet; `None` for an unlinkable order.
    pub owner: Option<WalletKey>,
    /// Side.
    pub side: Side,
    /// Filled, Wh.
    pub filled_wh: u32,
    /// Not matched on the ledger (settled with the utility at its tariffs, off-ledger), Wh.
    pub unmatched_wh: u32,
}

/// A cleared period.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct PeriodResult {
    /// Period.
    pub period: u64,
    /// Height of the block that cleared it.
    pub cleared_at: u64,
    /// Uniform price, when the mechanism is uniform and something traded.
    pub clearing_price: Option<u64>,
    /// Matched energy, Wh.
    pub volume_wh: u64,
    /// Trades, itemised.
    pub trades: Vec<Trade>,
    /// Per-order outcome, in order-id order.
    pub orders: Vec<OrderOutcome>,
}

impl PeriodResult {
    /// The notes this period's clearing minted to its unlinkable orders, in the order the
    /// ledger appended them to the note tree (order-id order): per order its id and the
    /// note's value (a seller's proceeds, a buyer's unused escrow). `open` gives each
    /// unlinkable order's side and escrow (public in its transaction). `Err` names an order
    /// `open` does not know or an inconsistent result.
    pub fn order_notes(
        &self,
        open: impl Fn(&TxId) -> Option<(Side, Millis)>,
    ) -> Result<Vec<(TxId, Millis)>, String> {
        let flows = order_flows(&self.trades).ok_or("a trade total overflows 64 bits")?;
        let mut notes = Vec::new();
        for o in self.orders.iter().filter(|o| o.owner.is_none()) {
            let (side, escrow) =
                open(&o.id).ok_or_else(|| format!("unlinkable order {} is not known", o.id))?;
            let flow = flows.get(&o.id).copied().unwrap_or_default();
            let value = order_note_value(side, escrow, flow)
                .map_err(|f| format!("order {} paid {} from escrow {escrow}", o.id, f.paid))?;
            if let Some(value) = value {
                notes.push((o.id, value));
            }
        }
        Ok(notes)
    }
}

/// Fees collected.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct FeeTotals {
    /// Grid/wheeling fees, millis.
    pub grid: Millis,
    /// Market fees (both shares), millis.
    pub market: Millis,
    /// Per-transaction fees (the genesis `spam.tx_fee`), millis.
    pub tx: Millis,
}

/// The totals every block updates (key [`keys::META`]).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Meta {
    /// Height of the last applied block (0 = genesis).
    pub height: u64,
    /// Consensus time of the last applied block.
    pub last_time: u64,
    /// Fees collected.
    pub fees: FeeTotals,
    /// Sum of all deposits, millis.
    pub total_deposits: Millis,
    /// Sum of all withdrawals, millis.
    pub total_withdrawals: Millis,
}

/// The ledger's tables, read from any state: typed point lookups and ordered scans, each
/// O(log n) plus what it returns.
pub trait LedgerRead: StateRead {
    /// Height, time and totals.
    fn meta(&self) -> Result<Meta, StateError> {
        Ok(self.read(&keys::meta())?.unwrap_or_default())
    }

    /// Hash of the last applied block (zero at genesis).
    fn last_block_hash(&self) -> Result<Hash32, StateError> {
        Ok(self.read(&keys::chain())?.unwrap_or_default())
    }

    /// A wallet's account, if it has one.
    fn account(&self, wallet: &WalletKey) -> Result<Option<Account>, StateError> {
        self.read(&keys::account(wallet))
    }

    /// A meter's record.
    fn meter(&self, meter: &MeterKey) -> Result<Option<MeterRecord>, StateError> {
        self.read(&keys::meter(meter))
    }

    /// A meter's enrolment in the registry of unlinkable orders.
    fn enrolment(&self, meter: &MeterKey) -> Result<Option<Enrolment>, StateError> {
        self.read(&keys::enrolment(meter))
    }

    /// An open order by id.
    fn open_order(&self, id: &TxId) -> Result<Option<OrderRecord>, StateError> {
        let Some((period, meter)) = self.read::<(u64, MeterKey)>(&keys::order_id(id))? else {
            return Ok(None);
        };
        Ok(self
            .slot(&meter, period)?
            .filter(|o: &OrderRecord| o.id == *id))
    }

    /// The open order occupying a meter's slot for a period.
    fn slot(&self, meter: &MeterKey, period: u64) -> Result<Option<OrderRecord>, StateError> {
        self.read(&keys::order(period, meter))
    }

    /// The side of a wallet's open orders for a period and how many are open.
    fn owner_side(
        &self,
        period: u64,
        owner: &WalletKey,
    ) -> Result<Option<(Side, u32)>, StateError> {
        self.read(&keys::owner_side(period, owner))
    }

    /// How many times a meter's orders for a period were cancelled (while its gate is open).
    fn cancels(&self, period: u64, meter: &MeterKey) -> Result<u32, StateError> {
        Ok(self.read(&keys::cancels(period, meter))?.unwrap_or(0))
    }

    /// Whether the transaction with this id and expiry was applied (and has not expired: an
    /// expired one can never be applied again, so it is forgotten).
    fn is_applied(&self, expires_at: u64, id: &TxId) -> Result<bool, StateError> {
        Ok(self.get(&keys::applied(expires_at, id))?.is_some())
    }

    /// A cleared period's result, from the committed state or the archive.
    fn period_result(&self, period: u64) -> Result<Option<PeriodResult>, StateError> {
        match self.read(&keys::result(period))? {
            Some(r) => Ok(Some(r)),
            None => self.read(&keys::archived_result(period)),
        }
    }

    /// Results of the cleared periods in `from..=to`, in period order (archived ones first:
    /// every archived period is older than every retained one).
    fn period_results(&self, from: u64, to: u64) -> Result<Vec<PeriodResult>, StateError> {
        let mut out = Vec::new();
        for (first, all) in [
            (
                keys::archived_result as fn(u64) -> Vec<u8>,
                keys::all_archived_results(),
            ),
            (keys::result, keys::all_results()),
        ] {
            let end = match to.checked_add(1) {
                Some(t) => first(t),
                None => keys::prefix_end(&all),
            };
            for (k, v) in self.scan(&first(from), &end, usize::MAX)? {
                out.push(crate::state::decode_entry(&k, &v)?);
            }
        }
        Ok(out)
    }

    /// A period's open orders, in id order.
    fn orders_of_period(&self, period: u64) -> Result<Vec<OrderRecord>, StateError> {
        let mut orders: Vec<OrderRecord> = self
            .read_prefix(&keys::orders_of_period(period))?
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        orders.sort_by_key(|o| o.id);
        Ok(orders)
    }

    /// The earliest period from `from` on with open orders (wallet-signed or unlinkable).
    /// The scan starts at `from`'s orders: it does not walk over what is left (in a store,
    /// as deletion markers for a while) of the orders of periods cleared before.
    fn first_open_period(&self, from: u64) -> Result<Option<u64>, StateError> {
        let first = |tag: u8| -> Result<Option<u64>, StateError> {
            let mut start = vec![tag];
            start.extend(from.to_be_bytes());
            let found = self.scan(&start, &keys::prefix_end(&[tag]), 1)?;
            Ok(found.first().and_then(|(k, _)| keys::u64_at(k, 1)))
        };
        let (a, b) = (first(keys::ORDER)?, first(keys::UNLINKABLE_ORDER)?);
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Every period with open orders (wallet-signed or unlinkable), in order (one seek per
    /// period and table).
    fn open_periods(&self) -> Result<Vec<u64>, StateError> {
        let mut out = std::collections::BTreeSet::new();
        for tag in [keys::ORDER, keys::UNLINKABLE_ORDER] {
            let end = keys::prefix_end(&[tag]);
            let mut from = vec![tag];
            while let Some((k, _)) = self.scan(&from, &end, 1)?.into_iter().next() {
                let Some(p) = keys::u64_at(&k, 1) else { break };
                out.insert(p);
                let mut prefix = vec![tag];
                prefix.extend(p.to_be_bytes());
                from = keys::prefix_end(&prefix);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// An open unlinkable order.
    fn unlinkable_order(
        &self,
        period: u64,
        order_nf: &FieldBytes,
    ) -> Result<Option<UnlinkableOrderRecord>, StateError> {
        self.read(&keys::unlinkable_order(period, order_nf))
    }

    /// A period's open unlinkable orders, in id order.
    fn unlinkable_orders_of_period(
        &self,
        period: u64,
    ) -> Result<Vec<UnlinkableOrderRecord>, StateError> {
        let mut orders: Vec<UnlinkableOrderRecord> = self
            .read_prefix(&keys::unlinkable_orders_of_period(period))?
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        orders.sort_by_key(|o| o.id);
        Ok(orders)
    }

    /// Whether `order_nf` was used by an order for `period` (whose gate is still open).
    fn order_nullifier_used(&self, period: u64, order_nf: &FieldBytes) -> Result<bool, StateError> {
        Ok(self
            .get(&keys::order_nullifier(period, order_nf))?
            .is_some())
    }

    /// A wallet's open orders, by period then id.
    fn orders_of_owner(&self, owner: &WalletKey) -> Result<Vec<OrderRecord>, StateError> {
        let prefix = keys::orders_of_owner(owner);
        let mut out = Vec::new();
        for (k, meter) in self.read_prefix::<MeterKey>(&prefix)? {
            if let Some(p) = keys::u64_at(&k, prefix.len()) {
                if let Some(o) = self.slot(&meter, p)? {
                    out.push(o);
                }
            }
        }
        Ok(out)
    }

    /// The meters a wallet owns, in key order.
    fn meters_of_owner(&self, owner: &WalletKey) -> Result<Vec<MeterKey>, StateError> {
        let prefix = keys::meters_of_owner(owner);
        Ok(self
            .scan(&prefix, &keys::prefix_end(&prefix), usize::MAX)?
            .into_iter()
            .filter_map(|(k, _)| Some(MeterKey(k.get(prefix.len()..)?.try_into().ok()?)))
            .collect())
    }

    /// A meter's open orders `(period, order id)`, by period.
    fn orders_of_meter(&self, meter: &MeterKey) -> Result<Vec<(u64, TxId)>, StateError> {
        let prefix = keys::orders_of_meter(meter);
        self.read_prefix::<TxId>(&prefix)?
            .into_iter()
            .map(|(k, id)| {
                let p = keys::u64_at(&k, prefix.len()).ok_or_else(|| StateError::Corrupt {
                    key: hex::encode(&k),
                    detail: "order index key without a period".into(),
                })?;
                Ok((p, id))
            })
            .collect()
    }
}

impl<S: StateRead + ?Sized> LedgerRead for S {}

/// A block applied to a state: the new version of the state and what happened.
#[derive(Clone, Debug)]
pub struct Applied {
    /// Changes, the tree they make and its root.
    pub update: StateUpdate,
    /// Events, in order.
    pub events: Vec<Event>,
}

impl Applied {
    /// Periods the block cleared.
    pub fn cleared_periods(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::PeriodCleared { period, .. } => Some(*period),
                Event::TxApplied { .. } => None,
            })
            .collect()
    }
}

/// Why a transaction is rejected. Each rule has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The transaction id was applied before.
    #[error("transaction {0} was already applied")]
    Replay(TxId),
    /// The block's time is past the transaction's expiry.
    #[error("transaction expired at {expires_at}, block time is {time}")]
    Expired {
        /// The transaction's expiry, Unix seconds.
        expires_at: u64,
        /// The block's time.
        time: u64,
    },
    /// The expiry is further from the block's time than the genesis allows.
    #[error("transaction expiry {expires_at} is too far ahead: at most {max} (block time plus the genesis max_tx_lifetime_secs)")]
    ExpiryTooFar {
        /// The transaction's expiry, Unix seconds.
        expires_at: u64,
        /// The latest expiry allowed at this block's time.
        max: u64,
    },
    /// The signature does not verify for this chain and kind.
    #[error("bad signature")]
    BadSignature,
    /// A registrar-only transaction not signed by the registrar.
    #[error("only the registrar may submit this transaction")]
    NotRegistrar,
    /// The meter key is not a valid Baby Jubjub subgroup point.
    #[error("invalid meter key: {0}")]
    InvalidMeterKey(String),
    /// The meter is already enrolled.
    #[error("meter is already enrolled")]
    MeterAlreadyEnrolled,
    /// The meter is not enrolled.
    #[error("unknown meter")]
    UnknownMeter,
    /// The meter is revoked.
    #[error("meter is revoked")]
    MeterRevoked,
    /// The signer does not own the meter.
    #[error("signer does not own the meter")]
    NotMeterOwner,
    /// The meter already has an order for this period.
    #[error("meter already has order {0} for this period")]
    DuplicateOrder(TxId),
    /// The period has not ended at the block's time.
    #[error("period has not ended yet")]
    PeriodNotEnded,
    /// The period's gate has closed at the block's time.
    #[error("the period's gate has closed")]
    GateClosed,
    /// Zero quantity or amount.
    #[error("quantity or amount must be positive")]
    ZeroAmount,
    /// Limit price outside [floor, cap].
    #[error("price {price} outside [{floor}, {cap}]")]
    PriceOutOfRange {
        /// Offered price.
        price: u64,
        /// Floor.
        floor: u64,
        /// Cap.
        cap: u64,
    },
    /// Not enough available balance.
    #[error("insufficient funds: need {need}, have {have}")]
    InsufficientFunds {
        /// Required, millis.
        need: Millis,
        /// Available, millis.
        have: Millis,
    },
    /// The proof does not verify for exactly this order's public inputs.
    #[error("proof invalid for this order: {0}")]
    InvalidProof(String),
    /// The order does not exist or is no longer open.
    #[error("unknown or closed order")]
    UnknownOrder,
    /// The signer does not own the order.
    #[error("signer does not own the order")]
    NotOrderOwner,
    /// An amount would overflow.
    #[error("arithmetic overflow")]
    Overflow,
    /// The genesis has no shielded pool.
    #[error("this market has no shielded pool")]
    ShieldedDisabled,
    /// A shielded-pool rule (unknown anchor, double spend, bad field element, ...).
    #[error(transparent)]
    Pool(PoolError),
    /// A spend's fee is below the genesis minimum.
    #[error("fee {fee} is below the minimum {min}")]
    FeeTooLow {
        /// The spend's fee, millis.
        fee: Millis,
        /// The genesis `min_fee`, millis.
        min: Millis,
    },
    /// A spend's public amount out is not its fee plus a payout its kind allows.
    #[error(
        "public_out {public_out} must be the fee {fee} plus the payout (none: exactly the fee)"
    )]
    PayoutMismatch {
        /// The spend's public amount out, millis.
        public_out: Millis,
        /// Its fee, millis.
        fee: Millis,
    },
    /// The genesis has no meter registry (unlinkable orders).
    #[error("this market has no meter registry for unlinkable orders")]
    AnonymousDisabled,
    /// An order naming its meter and wallet on a market of unlinkable orders.
    #[error(
        "this market takes unlinkable orders only: an order may not name its meter and wallet"
    )]
    LinkableOrder,
    /// Bytes that should be a field element are not its canonical encoding.
    #[error("{0} is not a canonical field element")]
    NotAField(FieldBytes),
    /// The meter registry refused (full).
    #[error(transparent)]
    Registry(veilwatt_circuits::registry::RegistryError),
    /// An unlinkable order's registry root is not one of the valid recent roots.
    #[error("registry root {0} is not one of the valid recent registry roots")]
    UnknownRegistryRoot(FieldBytes),
    /// The order nullifier was used for this period: the meter has an order already.
    #[error(
        "order nullifier {0} was already used for this period: one order per meter and period"
    )]
    OrderNullifierUsed(FieldBytes),
    /// A buy order must escrow exactly its maximum cost, a sell order nothing.
    #[error("the order must escrow exactly {need} millis, it escrows {got}")]
    EscrowMismatch {
        /// Required, millis.
        need: Millis,
        /// Offered, millis.
        got: Millis,
    },
    /// The cancel key does not open the order's cancel commitment.
    #[error("the cancel key does not match the order")]
    WrongCancelKey,
    /// A note memo is longer than allowed.
    #[error("note memo of {len} bytes; at most {max}")]
    MemoTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A wallet's orders of one period must all be on one side, so that none can trade with
    /// another (a trade with oneself moves the price and the volume, and nothing else).
    #[error("the wallet has a {open:?} order open for period {period}: its orders of a period must all be on one side")]
    SelfTrade {
        /// The period.
        period: u64,
        /// The side its open orders are on.
        open: Side,
    },
    /// The meter's orders for this period were cancelled as often as the genesis allows.
    #[error("the meter's orders for this period were already cancelled {max} times (the genesis spam.max_cancels_per_period)")]
    TooManyCancels {
        /// The limit.
        max: u32,
    },
    /// A deposit or mint names a payment reference already credited.
    #[error("payment reference {0} was already credited")]
    DuplicateReference(u64),
    /// The state could not be read (not a property of the transaction).
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<RegistryUpdateError> for TxError {
    fn from(e: RegistryUpdateError) -> Self {
        match e {
            RegistryUpdateError::State(s) => TxError::State(s),
            RegistryUpdateError::Registry(r) => TxError::Registry(r),
        }
    }
}

impl From<PoolError> for TxError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::State(s) => TxError::State(s),
            e => TxError::Pool(e),
        }
    }
}

/// Why a block is rejected. A rejected block changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Height is not the next one.
    #[error("expected height {expected}, got {got}")]
    WrongHeight {
        /// Expected.
        expected: u64,
        /// Got.
        got: u64,
    },
    /// `prev_hash` is not the last block's hash.
    #[error("previous-hash mismatch")]
    WrongPrevHash,
    /// Time earlier than the previous block's.
    #[error("block time goes backwards")]
    TimeWentBackwards,
    /// More transactions than the genesis allows in a block.
    #[error("block carries {count} transactions, the genesis allows at most {max}")]
    TooManyTxs {
        /// In the block.
        count: usize,
        /// `consensus.max_block_txs`.
        max: u32,
    },
    /// Encoding larger than the genesis allows.
    #[error("block encodes to {bytes} bytes, the genesis allows at most {max}")]
    TooLarge {
        /// Its canonical encoding's length.
        bytes: u64,
        /// `consensus.max_block_bytes`.
        max: u64,
    },
    /// Proposer not in the validator set.
    #[error("proposer is not a validator")]
    UnknownProposer,
    /// A transaction is invalid.
    #[error("transaction #{index} ({id}): {error}")]
    Tx {
        /// Position in the block.
        index: usize,
        /// Its id.
        id: TxId,
        /// Why.
        error: TxError,
    },
    /// The block's state root differs from the computed one.
    #[error("state root mismatch: block says {claimed}, computed {computed}")]
    StateRootMismatch {
        /// In the block.
        claimed: Hash32,
        /// Computed.
        computed: Hash32,
    },
    /// Settling a cleared period failed (an amount overflowed).
    #[error("clearing: {0}")]
    Clearing(TxError),
    /// The state could not be read (not a property of the block).
    #[error(transparent)]
    State(#[from] StateError),
}

/// What a block did, for indexes and subscribers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A transaction was applied.
    TxApplied {
        /// Id.
        id: TxId,
    },
    /// A period was cleared.
    PeriodCleared {
        /// Period.
        period: u64,
        /// Matched energy.
        volume_wh: u64,
        /// Number of trades.
        trades: usize,
    },
}

/// Verifies the proofs of a block's orders and spends. [`MarketVerifier`] is the real one; a
/// node that has already verified a proof at admission can answer from its cache.
pub trait ProofCheck: Sync {
    /// `Ok` if every order proof verifies; otherwise the invalid ones.
    fn check(&self, items: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure>;

    /// `Ok` if every spend (join-split) proof verifies; otherwise the invalid ones. The
    /// default has no join-split key and refuses every spend proof.
    fn check_spends(&self, items: &[(JoinSplitPublic, SpendProof)]) -> Result<(), BatchFailure> {
        refuse_all(items.len(), "join-split")
    }

    /// `Ok` if every unlinkable order proof verifies; otherwise the invalid ones. The default
    /// has no key for them and refuses every one.
    fn check_unlinkable(
        &self,
        items: &[(UnlinkableOrderPublic, OrderProof)],
    ) -> Result<(), BatchFailure> {
        refuse_all(items.len(), "unlinkable order")
    }

    /// Whether the signature of the transaction with id `id` was already verified for this
    /// chain. Sound because the id is a hash of the whole signed transaction (body, signer and
    /// signature). The default knows none, so every signature is checked.
    fn signature_known(&self, _id: &TxId) -> bool {
        false
    }
}

/// `Ok` for no items, otherwise every item invalid for want of a `circuit` key.
fn refuse_all(n: usize, circuit: &'static str) -> Result<(), BatchFailure> {
    if n == 0 {
        return Ok(());
    }
    Err(BatchFailure {
        invalid: (0..n).map(|i| (i, VerifyError::NoKey(circuit))).collect(),
    })
}

impl ProofCheck for OrderVerifier {
    fn check(&self, items: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure> {
        self.verify_batch_deterministic(items)
    }
}

/// The verifying keys of a market: the order circuit's, and the join-split's when the genesis
/// has a shielded pool.
#[derive(Clone, Debug)]
pub struct MarketVerifier {
    /// Order proofs.
    pub order: OrderVerifier,
    /// Spend proofs (`None`: every spend proof is refused).
    pub joinsplit: Option<JoinSplitVerifier>,
    /// Unlinkable order proofs (`None`: every one is refused).
    pub unlinkable: Option<UnlinkableOrderVerifier>,
}

impl From<OrderVerifier> for MarketVerifier {
    fn from(order: OrderVerifier) -> Self {
        Self {
            order,
            joinsplit: None,
            unlinkable: None,
        }
    }
}

impl ProofCheck for MarketVerifier {
    fn check(&self, items: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure> {
        self.order.verify_batch_deterministic(items)
    }

    fn check_spends(&self, items: &[(JoinSplitPublic, SpendProof)]) -> Result<(), BatchFailure> {
        match &self.joinsplit {
            Some(v) => v.verify_batch_deterministic(items),
            None => refuse_all(items.len(), "join-split"),
        }
    }

    fn check_unlinkable(
        &self,
        items: &[(UnlinkableOrderPublic, OrderProof)],
    ) -> Result<(), BatchFailure> {
        match &self.unlinkable {
            Some(v) => v.verify_batch_deterministic(items),
            None => refuse_all(items.len(), "unlinkable order"),
        }
    }
}

fn add(a: Millis, b: Millis) -> Result<Millis, TxError> {
    a.checked_add(b).ok_or(TxError::Overflow)
}

fn sub(a: Millis, b: Millis) -> Result<Millis, TxError> {
    a.checked_sub(b).ok_or(TxError::Overflow)
}

/// Mints a note of `value` to `target` into the pool (the value enters the pool's balance).
fn mint_note(state: &mut Overlay<'_>, value: Millis, target: &NoteTarget) -> Result<(), TxError> {
    let field = |x: &FieldBytes| x.to_field().ok_or(PoolError::NotAField(*x));
    let cm = note::commitment(
        ark_bn254::Fr::from(value),
        field(&target.owner)?,
        field(&target.rho)?,
    );
    let mut pool = Pool::load(state)?;
    pool.append(&[FieldBytes::from_field(cm)])?;
    pool.balance = add(pool.balance, value)?;
    pool.store(state);
    Ok(())
}

/// The pool's half of a join-split (its proof verified, its terms checked): the anchor is a
/// recent root, the nullifiers are new (revealed now), `public_in` enters and `public_out`
/// leaves the pool's balance (never below zero), the fee is booked, the outputs appended.
fn join_split(
    state: &mut Overlay<'_>,
    anchor: &FieldBytes,
    nullifiers: &[FieldBytes; 2],
    outputs: &[NoteOutput; 2],
    public_in: Millis,
    public_out: Millis,
    fee: Millis,
) -> Result<(), TxError> {
    pool::check_anchor(state, anchor)?;
    for nf in nullifiers {
        pool::reveal(state, nf)?;
    }
    let mut pool = Pool::load(state)?;
    pool.balance = add(pool.balance, public_in)?;
    pool.balance = pool
        .balance
        .checked_sub(public_out)
        .ok_or(PoolError::Insolvent {
            need: public_out,
            balance: pool.balance,
        })?;
    pool.fees = add(pool.fees, fee)?;
    pool.append(&[outputs[0].cm, outputs[1].cm])?;
    pool.store(state);
    Ok(())
}

/// Settles an unlinkable order that leaves the book (cleared with `flow`, or cancelled with
/// none): its escrow is released, and a seller's proceeds or a buyer's unused escrow come to
/// its payout target as a note (none if zero; [`crate::clearing::order_note_value`], which
/// wallets and the audit use to follow the note tree).
fn settle_unlinkable(
    state: &mut Overlay<'_>,
    order: &UnlinkableOrderRecord,
    flow: Flow,
) -> Result<(), TxError> {
    if order.escrow > 0 {
        let mut pool = Pool::load(state)?;
        pool.escrowed = sub(pool.escrowed, order.escrow)?;
        pool.store(state);
    }
    let value = order_note_value(order.side, order.escrow, flow).map_err(|_| TxError::Overflow)?;
    if let Some(value) = value {
        mint_note(state, value, &order.payout)?;
    }
    Ok(())
}

/// An order in a period's book: wallet-signed or unlinkable.
enum Booked {
    Wallet(OrderRecord),
    Unlinkable(UnlinkableOrderRecord),
}

impl Booked {
    fn id(&self) -> TxId {
        match self {
            Booked::Wallet(o) => o.id,
            Booked::Unlinkable(o) => o.id,
        }
    }

    fn book(&self) -> BookOrder {
        let (id, side, quantity_wh, limit_price) = match self {
            Booked::Wallet(o) => (o.id, o.side, o.quantity_wh, o.limit_price),
            Booked::Unlinkable(o) => (o.id, o.side, o.quantity_wh, o.limit_price),
        };
        BookOrder {
            id,
            side,
            quantity_wh,
            limit_price,
        }
    }
}

/// The prefix of one period's entries in a table keyed by period first.
type PeriodPrefix = fn(u64) -> Vec<u8>;

/// The entries of the state before a block that the rules of `tx` (whose id is `id`) read
/// (some of them: those of the transactions a block carries by the thousand), for
/// [`Prefetched`]. Only a hint: the rules read what they need whether it was read ahead or not.
fn reads_ahead(tx: &Transaction, id: &TxId, out: &mut Vec<Vec<u8>>) {
    out.push(keys::applied(tx.expires_at, id));
    match &tx.body {
        TxBody::Order { meter, period, .. } => {
            out.push(keys::meter(meter));
            out.push(keys::order(*period, meter));
            out.push(keys::owner_side(*period, &tx.signer));
            out.push(keys::account(&tx.signer));
        }
        TxBody::Deposit { to, reference, .. } => {
            out.push(keys::deposit_reference(*reference));
            out.push(keys::account(to));
        }
        TxBody::Withdraw { .. } => out.push(keys::account(&tx.signer)),
        _ => {}
    }
}

/// Records a payment reference as credited, or refuses one credited before.
fn credit_reference(state: &mut Overlay<'_>, reference: u64) -> Result<(), TxError> {
    let key = keys::deposit_reference(reference);
    if state.get(&key)?.is_some() {
        return Err(TxError::DuplicateReference(reference));
    }
    state.put_raw(key, Vec::new());
    Ok(())
}

/// The local indexes that follow from a state's committed entries (docs/spec/ledger.md, "Local
/// keys"): an owner's meters, and an open order's slot by id, its owner's and its meter's
/// lists, and the side of its owner's orders of the period. The rules write them as they go;
/// a state restored from its committed entries alone (a snapshot) gets them from here, and
/// then holds exactly what the rules would have written.
pub fn derive_indexes<'a>(
    committed: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<ChangeSet, StateError> {
    let empty = crate::state::MemoryState::default();
    let mut out = Overlay::new(&empty);
    for (k, v) in committed {
        match k.first() {
            Some(&keys::METER) => {
                let meter = k
                    .get(1..)
                    .and_then(|b| <[u8; 64]>::try_from(b).ok())
                    .map(MeterKey)
                    .ok_or_else(|| StateError::Corrupt {
                        key: hex::encode(k),
                        detail: "not a meter key".into(),
                    })?;
                let m: MeterRecord = crate::state::decode_entry(k, v)?;
                out.put_raw(keys::meter_by_owner(&m.owner, &meter), Vec::new());
            }
            Some(&keys::ORDER) => {
                let o: OrderRecord = crate::state::decode_entry(k, v)?;
                write::index_order(&mut out, &o)?;
            }
            _ => {}
        }
    }
    Ok(out.into_changes())
}

/// Writes of the ledger's tables (every entity and its indexes change together).
mod write {
    use super::*;

    pub fn account(s: &mut Overlay<'_>, wallet: &WalletKey, a: &Account) {
        s.put(keys::account(wallet), a);
    }

    pub fn meta(s: &mut Overlay<'_>, m: &Meta) {
        s.put(keys::meta(), m);
    }

    pub fn meter(s: &mut Overlay<'_>, key: &MeterKey, m: &MeterRecord, new: bool) {
        s.put(keys::meter(key), m);
        if new {
            s.put_raw(keys::meter_by_owner(&m.owner, key), Vec::new());
        }
    }

    /// A new open order, in its slot, found by its id, and counted on its owner's side of the
    /// period (the caller checked that side is the order's).
    pub fn open_order(s: &mut Overlay<'_>, o: &OrderRecord) -> Result<(), StateError> {
        s.put(keys::order(o.period, &o.meter), o);
        index_order(s, o)
    }

    /// The local indexes of an open order (all of them follow from its committed record).
    pub fn index_order(s: &mut Overlay<'_>, o: &OrderRecord) -> Result<(), StateError> {
        s.put(keys::order_id(&o.id), &(o.period, o.meter));
        s.put(keys::order_by_owner(&o.owner, o.period, &o.id), &o.meter);
        s.put(keys::order_by_meter(&o.meter, o.period), &o.id);
        let open = s.owner_side(o.period, &o.owner)?.map_or(0, |(_, n)| n);
        s.put(
            keys::owner_side(o.period, &o.owner),
            &(o.side, open.saturating_add(1)),
        );
        Ok(())
    }

    /// An order leaves the book (cancelled or cleared); its id stays applied until it expires.
    pub fn close_order(s: &mut Overlay<'_>, o: &OrderRecord) -> Result<(), StateError> {
        s.delete(keys::order(o.period, &o.meter));
        s.delete(keys::order_id(&o.id));
        s.delete(keys::order_by_owner(&o.owner, o.period, &o.id));
        s.delete(keys::order_by_meter(&o.meter, o.period));
        let key = keys::owner_side(o.period, &o.owner);
        match s.owner_side(o.period, &o.owner)? {
            Some((side, open)) if open > 1 => s.put(key, &(side, open - 1)),
            _ => s.delete(key),
        }
        Ok(())
    }
}

/// The rules, bound to one genesis.
#[derive(Clone, Copy, Debug)]
pub struct Ledger<'g> {
    genesis: &'g Genesis,
    /// `genesis.market_id()`, computed once.
    market: ark_bn254::Fr,
}

impl<'g> Ledger<'g> {
    /// Rules for `genesis`, which must pass [`Genesis::validate`] (the arithmetic relies on
    /// its bounds).
    pub fn new(genesis: &'g Genesis) -> Result<Self, GenesisError> {
        genesis.validate()?;
        Ok(Self {
            genesis,
            market: genesis.market_id(),
        })
    }

    /// The genesis these rules are bound to.
    pub fn genesis(&self) -> &'g Genesis {
        self.genesis
    }

    /// The market's id (`Genesis::market_id`), which unlinkable order proofs name.
    pub fn market_id(&self) -> ark_bn254::Fr {
        self.market
    }

    /// The state at height 0 (version 0 of the tree): empty but for zero totals. `reader` is
    /// the empty backend that will hold it.
    pub fn genesis_update<R: TreeRead>(&self, reader: &R) -> Result<StateUpdate, StateError> {
        let empty = crate::state::MemoryState::default();
        let mut state = Overlay::new(&empty);
        write::meta(&mut state, &Meta::default());
        if let Some(params) = &self.genesis.shielded {
            // The empty note tree's root is the first anchor (spends of dummies only).
            pool::record_root(&mut state, params.root_history)?;
        }
        if let Some(params) = &self.genesis.anonymous {
            // The empty registry's root: orders are refused until a meter is enrolled anyway.
            registry::record_root(&mut state, params.registry_history)?;
        }
        StateUpdate::compute(reader, 0, state.into_changes())
    }

    /// The genesis' shielded-pool parameters, or why there are none.
    fn shielded(&self) -> Result<&'g ShieldedParams, TxError> {
        self.genesis
            .shielded
            .as_ref()
            .ok_or(TxError::ShieldedDisabled)
    }

    /// The genesis' unlinkable-order parameters, or why there are none.
    fn anonymous(&self) -> Result<&'g AnonymousParams, TxError> {
        self.genesis
            .anonymous
            .as_ref()
            .ok_or(TxError::AnonymousDisabled)
    }

    /// Checks and applies one transaction at consensus time `time`, assuming any order proof
    /// has been verified. On error `state` is unchanged.
    pub fn apply_tx(
        &self,
        state: &mut Overlay<'_>,
        tx: &Transaction,
        time: u64,
    ) -> Result<(), TxError> {
        let id = tx.id();
        if state.is_applied(tx.expires_at, &id)? {
            return Err(TxError::Replay(id));
        }
        if !tx.verify_signature(&self.genesis.chain_id) {
            return Err(TxError::BadSignature);
        }
        self.apply_signed_tx(state, tx, id, time)
    }

    /// [`Ledger::apply_tx`] for a transaction whose signature the caller has verified (a block
    /// verifies all its signatures in parallel first; a node's mempool verified them on
    /// admission). `id` must be `tx.id()`. On error `state` is unchanged.
    pub fn apply_signed_tx(
        &self,
        state: &mut Overlay<'_>,
        tx: &Transaction,
        id: TxId,
        time: u64,
    ) -> Result<(), TxError> {
        // The transaction's changes go to a nested overlay and reach `state` only if every
        // rule passed.
        let changes = {
            let mut scratch = Overlay::new(&*state);
            self.apply_rules(&mut scratch, tx, id, time)?;
            scratch.into_changes()
        };
        state.absorb(changes);
        Ok(())
    }

    fn apply_rules(
        &self,
        state: &mut Overlay<'_>,
        tx: &Transaction,
        id: TxId,
        time: u64,
    ) -> Result<(), TxError> {
        if state.is_applied(tx.expires_at, &id)? {
            return Err(TxError::Replay(id));
        }
        // Bounded history: a transaction is applied only up to its expiry, and no expiry is
        // further than the genesis lifetime, so its id needs remembering only until then.
        if time > tx.expires_at {
            return Err(TxError::Expired {
                expires_at: tx.expires_at,
                time,
            });
        }
        let max = time.saturating_add(self.genesis.max_tx_lifetime_secs);
        if tx.expires_at > max {
            return Err(TxError::ExpiryTooFar {
                expires_at: tx.expires_at,
                max,
            });
        }
        if tx.body.is_registrar_kind() && tx.signer != self.genesis.registrar {
            return Err(TxError::NotRegistrar);
        }
        match &tx.body {
            TxBody::EnrollMeter { meter, owner } => {
                meter
                    .to_public_key()
                    .map_err(|e| TxError::InvalidMeterKey(e.to_string()))?;
                if state.meter(meter)?.is_some() {
                    return Err(TxError::MeterAlreadyEnrolled);
                }
                let record = MeterRecord {
                    owner: *owner,
                    revoked: false,
                };
                write::meter(state, meter, &record, true);
            }
            TxBody::RevokeMeter { meter } => {
                // A meter may be enrolled for orders signed by a wallet, in the registry of
                // unlinkable orders, or both (while households move over): revoke every live
                // enrolment.
                let v1 = state.meter(meter)?;
                let v2 = state.enrolment(meter)?;
                if v1.is_none() && v2.is_none() {
                    return Err(TxError::UnknownMeter);
                }
                if v1.is_none_or(|m| m.revoked) && v2.is_none_or(|e| e.revoked) {
                    return Err(TxError::MeterRevoked);
                }
                if let Some(mut m) = v1.filter(|m| !m.revoked) {
                    m.revoked = true;
                    write::meter(state, meter, &m, false);
                }
                if let Some(mut e) = v2.filter(|e| !e.revoked) {
                    registry::revoke(state, u64::from(e.position))?;
                    e.revoked = true;
                    state.put(keys::enrolment(meter), &e);
                }
            }
            TxBody::EnrollHousehold { meter, nk_commit } => {
                self.anonymous()?;
                let key = meter
                    .to_public_key()
                    .map_err(|e| TxError::InvalidMeterKey(e.to_string()))?;
                let nkc = nk_commit.to_field().ok_or(TxError::NotAField(*nk_commit))?;
                // One live leaf per meter: a second would give it a second order nullifier
                // per period, so a second order. A revoked meter may enrol again (a new key).
                if state.enrolment(meter)?.is_some_and(|e| !e.revoked) {
                    return Err(TxError::MeterAlreadyEnrolled);
                }
                let position =
                    registry::enrol(state, veilwatt_circuits::registry::leaf(&key, nkc))?;
                state.put(
                    keys::enrolment(meter),
                    &Enrolment {
                        position,
                        nk_commit: *nk_commit,
                        revoked: false,
                    },
                );
            }
            TxBody::Deposit {
                to,
                amount,
                reference,
            } => {
                if *amount == 0 {
                    return Err(TxError::ZeroAmount);
                }
                credit_reference(state, *reference)?;
                let mut meta = state.meta()?;
                meta.total_deposits = add(meta.total_deposits, *amount)?;
                let mut a = state.account(to)?.unwrap_or_default();
                a.balance = add(a.balance, *amount)?;
                write::account(state, to, &a);
                write::meta(state, &meta);
            }
            TxBody::Withdraw { amount, .. } => {
                if *amount == 0 {
                    return Err(TxError::ZeroAmount);
                }
                let mut a = state.account(&tx.signer)?.unwrap_or_default();
                self.take(state, &mut a, *amount)?;
                let mut meta = state.meta()?;
                meta.total_withdrawals = add(meta.total_withdrawals, *amount)?;
                write::account(state, &tx.signer, &a);
                write::meta(state, &meta);
            }
            TxBody::Order {
                meter,
                period,
                side,
                quantity_wh,
                limit_price,
                ..
            } => {
                // A market with a registry keeps households' orders unlinkable: none may
                // name its meter and wallet (one such order would link its household's day).
                if self.genesis.anonymous.is_some() {
                    return Err(TxError::LinkableOrder);
                }
                let m = state.meter(meter)?.ok_or(TxError::UnknownMeter)?;
                if m.revoked {
                    return Err(TxError::MeterRevoked);
                }
                if m.owner != tx.signer {
                    return Err(TxError::NotMeterOwner);
                }
                if let Some(existing) = state.slot(meter, *period)? {
                    return Err(TxError::DuplicateOrder(existing.id));
                }
                // No self-trade: a wallet's orders of one period are all on one side.
                if let Some((open, _)) = state.owner_side(*period, &tx.signer)? {
                    if open != *side {
                        return Err(TxError::SelfTrade {
                            period: *period,
                            open,
                        });
                    }
                }
                self.check_gate(*period, time, true)?;
                self.check_order_terms(*quantity_wh, *limit_price)?;
                let escrow = match side {
                    Side::Sell => 0,
                    Side::Buy => buy_escrow(*quantity_wh, *limit_price, &self.genesis.fees),
                };
                let mut a = state.account(&tx.signer)?.unwrap_or_default();
                self.take(state, &mut a, escrow)?;
                a.escrow = add(a.escrow, escrow)?;
                write::account(state, &tx.signer, &a);
                write::open_order(
                    state,
                    &OrderRecord {
                        id,
                        owner: tx.signer,
                        meter: *meter,
                        period: *period,
                        side: *side,
                        quantity_wh: *quantity_wh,
                        limit_price: *limit_price,
                        escrow,
                    },
                )?;
            }
            TxBody::MintNote {
                value,
                owner,
                rho,
                reference,
            } => {
                self.shielded()?;
                if *value == 0 {
                    return Err(TxError::ZeroAmount);
                }
                credit_reference(state, *reference)?;
                mint_note(
                    state,
                    *value,
                    &NoteTarget {
                        owner: *owner,
                        rho: *rho,
                    },
                )?;
                let mut meta = state.meta()?;
                meta.total_deposits = add(meta.total_deposits, *value)?;
                write::meta(state, &meta);
            }
            TxBody::Spend {
                anchor,
                nullifiers,
                outputs,
                public_in,
                public_out,
                fee,
                payout,
                ..
            } => {
                self.check_spend_terms(outputs, *fee)?;
                let mismatch = TxError::PayoutMismatch {
                    public_out: *public_out,
                    fee: *fee,
                };
                let paid = public_out.checked_sub(*fee).ok_or(mismatch.clone())?;
                match payout {
                    Payout::None if paid != 0 => return Err(mismatch),
                    Payout::Bank { .. } if paid == 0 => return Err(TxError::ZeroAmount),
                    _ => {}
                }
                if *public_in > 0 {
                    let mut a = state.account(&tx.signer)?.unwrap_or_default();
                    if a.balance < *public_in {
                        return Err(TxError::InsufficientFunds {
                            need: *public_in,
                            have: a.balance,
                        });
                    }
                    a.balance -= public_in;
                    write::account(state, &tx.signer, &a);
                }
                join_split(
                    state,
                    anchor,
                    nullifiers,
                    outputs,
                    *public_in,
                    *public_out,
                    *fee,
                )?;
                match payout {
                    Payout::None => {}
                    Payout::Wallet { wallet } => {
                        let mut a = state.account(wallet)?.unwrap_or_default();
                        a.balance = add(a.balance, paid)?;
                        write::account(state, wallet, &a);
                    }
                    Payout::Bank { .. } => {
                        let mut meta = state.meta()?;
                        meta.total_withdrawals = add(meta.total_withdrawals, paid)?;
                        write::meta(state, &meta);
                    }
                }
            }
            TxBody::UnlinkableOrder {
                registry_root,
                order_nf,
                period,
                side,
                quantity_wh,
                limit_price,
                payout,
                cancel_commit,
                escrow,
                ..
            } => {
                self.anonymous()?;
                self.shielded()?;
                self.check_gate(*period, time, true)?;
                self.check_order_terms(*quantity_wh, *limit_price)?;
                for x in [registry_root, order_nf, &payout.owner, &payout.rho] {
                    x.to_field().ok_or(TxError::NotAField(*x))?;
                }
                if !registry::is_recent_root(state, registry_root)? {
                    return Err(TxError::UnknownRegistryRoot(*registry_root));
                }
                if state.order_nullifier_used(*period, order_nf)? {
                    return Err(TxError::OrderNullifierUsed(*order_nf));
                }
                let need = match side {
                    Side::Sell => 0,
                    Side::Buy => buy_escrow(*quantity_wh, *limit_price, &self.genesis.fees),
                };
                let held = match escrow {
                    None if need == 0 => 0,
                    Some(e) if e.amount == need && need > 0 => {
                        self.check_spend_terms(&e.outputs, e.fee)?;
                        let out = add(e.amount, e.fee)?;
                        join_split(state, &e.anchor, &e.nullifiers, &e.outputs, 0, out, e.fee)?;
                        let mut pool = Pool::load(state)?;
                        pool.escrowed = add(pool.escrowed, e.amount)?;
                        pool.store(state);
                        e.amount
                    }
                    other => {
                        return Err(TxError::EscrowMismatch {
                            need,
                            got: other.as_ref().map_or(0, |e| e.amount),
                        })
                    }
                };
                state.put_raw(keys::order_nullifier(*period, order_nf), Vec::new());
                state.put(
                    keys::unlinkable_order(*period, order_nf),
                    &UnlinkableOrderRecord {
                        id,
                        order_nf: *order_nf,
                        period: *period,
                        side: *side,
                        quantity_wh: *quantity_wh,
                        limit_price: *limit_price,
                        payout: *payout,
                        cancel_commit: *cancel_commit,
                        escrow: held,
                    },
                );
            }
            TxBody::CancelUnlinkable {
                period,
                order_nf,
                cancel_key,
            } => {
                self.anonymous()?;
                let rec = state
                    .unlinkable_order(*period, order_nf)?
                    .ok_or(TxError::UnknownOrder)?;
                if cancel_commitment(cancel_key) != rec.cancel_commit {
                    return Err(TxError::WrongCancelKey);
                }
                self.check_gate(*period, time, false)?;
                settle_unlinkable(state, &rec, Flow::default())?;
                // The nullifier stays: one order per meter and period, cancelled or not.
                state.delete(keys::unlinkable_order(*period, order_nf));
            }
            TxBody::CancelOrder { order } => {
                let rec = state.open_order(order)?.ok_or(TxError::UnknownOrder)?;
                if rec.owner != tx.signer {
                    return Err(TxError::NotOrderOwner);
                }
                self.check_gate(rec.period, time, false)?;
                // Spam quota: an order, its cancellation and the order again cannot loop.
                let cancels = state.cancels(rec.period, &rec.meter)?;
                let max = self.genesis.spam.max_cancels_per_period;
                if cancels >= max {
                    return Err(TxError::TooManyCancels { max });
                }
                state.put(keys::cancels(rec.period, &rec.meter), &(cancels + 1));
                let mut a = state.account(&tx.signer)?.unwrap_or_default();
                a.balance = add(a.balance, rec.escrow)?;
                a.escrow = sub(a.escrow, rec.escrow)?;
                self.take(state, &mut a, 0)?;
                write::account(state, &tx.signer, &a);
                write::close_order(state, &rec)?;
            }
        }
        state.put_raw(keys::applied(tx.expires_at, &id), Vec::new());
        Ok(())
    }

    /// Takes `amount` and the genesis' per-transaction fee from `a`'s balance (the signer's
    /// account, which the caller writes back), the fee into the totals; or why not.
    fn take(
        &self,
        state: &mut Overlay<'_>,
        a: &mut Account,
        amount: Millis,
    ) -> Result<(), TxError> {
        let fee = self.genesis.spam.tx_fee;
        let need = add(amount, fee)?;
        a.balance = a
            .balance
            .checked_sub(need)
            .ok_or(TxError::InsufficientFunds {
                need,
                have: a.balance,
            })?;
        if fee > 0 {
            let mut meta = state.meta()?;
            meta.fees.tx = add(meta.fees.tx, fee)?;
            write::meta(state, &meta);
        }
        Ok(())
    }

    /// A positive quantity and a limit price within the genesis floor and cap.
    fn check_order_terms(&self, quantity_wh: u32, limit_price: u64) -> Result<(), TxError> {
        if quantity_wh == 0 {
            return Err(TxError::ZeroAmount);
        }
        let (floor, cap) = (self.genesis.price_floor, self.genesis.price_cap);
        if limit_price < floor || limit_price > cap {
            return Err(TxError::PriceOutOfRange {
                price: limit_price,
                floor,
                cap,
            });
        }
        Ok(())
    }

    /// What a join-split's terms must satisfy before it touches the pool: memos within the
    /// limit, a fee of at least the genesis minimum, a shielded pool at all.
    fn check_spend_terms(&self, outputs: &[NoteOutput; 2], fee: Millis) -> Result<(), TxError> {
        let params = self.shielded()?;
        for o in outputs {
            if o.memo.len() > MAX_NOTE_MEMO {
                return Err(TxError::MemoTooLong {
                    len: o.memo.len(),
                    max: MAX_NOTE_MEMO,
                });
            }
        }
        if fee < params.min_fee {
            return Err(TxError::FeeTooLow {
                fee,
                min: params.min_fee,
            });
        }
        Ok(())
    }

    /// Orders for period `p` are accepted in `[end(p), end(p) + G)`; cancellations before
    /// `end(p) + G`.
    fn check_gate(&self, p: u64, time: u64, must_have_ended: bool) -> Result<(), TxError> {
        let end = self.genesis.period_end(p).ok_or(TxError::GateClosed)?;
        let close = self.genesis.gate_close(p).ok_or(TxError::GateClosed)?;
        if must_have_ended && time < end {
            return Err(TxError::PeriodNotEnded);
        }
        if time >= close {
            return Err(TxError::GateClosed);
        }
        Ok(())
    }

    /// What a block at (`height`, `time`) does before its transactions: clears every period
    /// whose gate has closed ([`Ledger::clear_due`]) and forgets the expired transaction ids.
    /// Proposers call it on a scratch overlay before selecting transactions with
    /// [`Ledger::apply_tx`].
    pub fn begin_block(
        &self,
        state: &mut Overlay<'_>,
        height: u64,
        time: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        self.clear_due(state, height, time, events)?;
        self.prune_expired(state, time)?;
        self.prune_closed_gates(state, time)?;
        Ok(())
    }

    /// Forgets the order nullifiers and cancellation counts of every period whose gate has
    /// closed by `time`: no order or cancellation for such a period can be applied any more,
    /// so they guard nothing.
    fn prune_closed_gates(&self, state: &mut Overlay<'_>, time: u64) -> Result<(), StateError> {
        let tables: [(u8, PeriodPrefix); 2] = [
            (keys::ORDER_NULLIFIER, keys::order_nullifiers_of_period),
            (keys::CANCELS, keys::cancels_of_period),
        ];
        for (tag, of_period) in tables {
            while let Some(k) = state.first_key(&[tag])? {
                let Some(p) = keys::u64_at(&k, 1) else { break };
                if self.genesis.gate_close(p).is_some_and(|c| c > time) {
                    break;
                }
                let prefix = of_period(p);
                for (k, _) in state.scan(&prefix, &keys::prefix_end(&prefix), usize::MAX)? {
                    state.delete(k);
                }
            }
        }
        Ok(())
    }

    /// Clears every period whose gate has closed by `time`, earliest first.
    pub fn clear_due(
        &self,
        state: &mut Overlay<'_>,
        height: u64,
        time: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        // Gates close in period order, so the due periods are a prefix of the open ones.
        // No order is open for a period before the first whose gate was still open at the
        // previous block's time.
        let mut from = self.first_uncleared_period(state.meta()?.last_time);
        while let Some(p) = state.first_open_period(from)? {
            if self.genesis.gate_close(p).is_none_or(|c| c > time) {
                break;
            }
            self.clear_period(state, p, height, events)?;
            let Some(next) = p.checked_add(1) else { break };
            from = next;
        }
        Ok(())
    }

    /// The first period whose gate is open at `time` (closes after it). No order of an
    /// earlier period is open after a block at `time`: the block cleared every period whose
    /// gate had closed before applying its transactions, and no order is applied to a period
    /// whose gate has closed.
    fn first_uncleared_period(&self, time: u64) -> u64 {
        // gate_close(p) = genesis_time + (p + 1) * period_secs + gate_delay_secs > time.
        let g = self.genesis;
        let after_first = time.saturating_sub(g.genesis_time.saturating_add(g.gate_delay_secs));
        after_first / g.period_secs
    }

    fn clear_period(
        &self,
        state: &mut Overlay<'_>,
        p: u64,
        height: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        // One book of both kinds of order, in id order.
        let mut records: Vec<Booked> = state
            .orders_of_period(p)?
            .into_iter()
            .map(Booked::Wallet)
            .chain(
                state
                    .unlinkable_orders_of_period(p)?
                    .into_iter()
                    .map(Booked::Unlinkable),
            )
            .collect();
        records.sort_by_key(Booked::id);
        let book: Vec<BookOrder> = records.iter().map(Booked::book).collect();
        let c = clear(&book, self.genesis.mechanism, &self.genesis.fees);
        let mut meta = state.meta()?;
        let flows = order_flows(&c.trades).ok_or(TxError::Overflow)?;
        for t in &c.trades {
            meta.fees.grid = add(meta.fees.grid, t.grid_fee)?;
            meta.fees.market = add(
                add(meta.fees.market, t.market_fee_buyer)?,
                t.market_fee_seller,
            )?;
        }
        for r in &records {
            let flow = flows.get(&r.id()).copied().unwrap_or_default();
            match r {
                Booked::Wallet(r) => {
                    let mut a = state.account(&r.owner)?.unwrap_or_default();
                    match r.side {
                        Side::Sell => a.balance = add(a.balance, flow.received)?,
                        Side::Buy => {
                            a.escrow = sub(a.escrow, r.escrow)?;
                            a.balance = add(a.balance, sub(r.escrow, flow.paid)?)?;
                        }
                    }
                    if r.side == Side::Buy || flow.received > 0 {
                        write::account(state, &r.owner, &a);
                    }
                    write::close_order(state, r)?;
                }
                Booked::Unlinkable(r) => {
                    settle_unlinkable(state, r, flow)?;
                    state.delete(keys::unlinkable_order(p, &r.order_nf));
                }
            }
        }
        write::meta(state, &meta);
        let orders = records
            .iter()
            .zip(&c.filled_wh)
            .map(|(r, f)| {
                let (owner, side, quantity_wh) = match r {
                    Booked::Wallet(o) => (Some(o.owner), o.side, o.quantity_wh),
                    Booked::Unlinkable(o) => (None, o.side, o.quantity_wh),
                };
                OrderOutcome {
                    id: r.id(),
                    owner,
                    side,
                    filled_wh: *f,
                    unmatched_wh: quantity_wh - f,
                }
            })
            .collect();
        events.push(Event::PeriodCleared {
            period: p,
            volume_wh: c.volume_wh,
            trades: c.trades.len(),
        });
        state.put(
            keys::result(p),
            &PeriodResult {
                period: p,
                cleared_at: height,
                clearing_price: c.clearing_price,
                volume_wh: c.volume_wh,
                trades: c.trades,
                orders,
            },
        );
        // Bounded history: results of periods `q` with `q + R <= p` leave the committed
        // state for the archive (R >= 1, so `p` itself stays).
        let keep_from = p
            .saturating_add(1)
            .saturating_sub(self.genesis.result_retention_periods);
        for (k, v) in state.scan(&keys::all_results(), &keys::result(keep_from), usize::MAX)? {
            if let Some(q) = keys::u64_at(&k, 1) {
                state.delete(k);
                state.put_raw(keys::archived_result(q), v);
            }
        }
        Ok(())
    }

    /// Forgets the applied transactions that expired before `time` (they can never be
    /// applied again: block times do not go backwards), earliest expiry first and at most
    /// [`Ledger::max_pruned_per_block`] of them: their signers chose their expiries, and ids
    /// of many blocks expiring at one instant must not make one block cost what all of them
    /// did. The next blocks forget the rest; an expired id still remembered is refused as a
    /// replay, as it is refused as expired once forgotten. The scan starts where the previous
    /// block's stopped ([`keys::PRUNED_TO`]): it never walks over the deleted entries of earlier
    /// blocks (which a store keeps as tombstones for a while).
    fn prune_expired(&self, state: &mut Overlay<'_>, time: u64) -> Result<(), StateError> {
        let resume = state.get(&keys::pruned_to())?;
        let from = resume.clone().unwrap_or_else(keys::all_applied);
        let to = keys::applied_from(time);
        let max = self.max_pruned_per_block();
        let expired = state.scan(&from, &to, max)?;
        let next = match expired.last() {
            Some((last, _)) if expired.len() == max => keys::next_key(last),
            _ => from.max(to),
        };
        for (k, _) in expired {
            state.delete(k);
        }
        if resume.as_ref() != Some(&next) {
            state.put_raw(keys::pruned_to(), next);
        }
        Ok(())
    }

    /// Most expired transaction ids a block forgets: twice what a block may apply, so that
    /// forgetting keeps up with any rate of transactions the chain can carry.
    pub fn max_pruned_per_block(&self) -> usize {
        2 * self.genesis.consensus.max_block_txs as usize
    }

    /// A block within the genesis' consensus limits: at most `max_block_txs` transactions and
    /// `max_block_bytes` of canonical encoding.
    pub fn check_size(&self, block: &Block) -> Result<(), BlockError> {
        let limits = &self.genesis.consensus;
        if block.txs.len() > limits.max_block_txs as usize {
            return Err(BlockError::TooManyTxs {
                count: block.txs.len(),
                max: limits.max_block_txs,
            });
        }
        let bytes = block.encoded_len();
        if bytes > limits.max_block_bytes {
            return Err(BlockError::TooLarge {
                bytes,
                max: limits.max_block_bytes,
            });
        }
        Ok(())
    }

    /// Executes a block's header and transactions over `state`, returning the changes (the
    /// block's state root not yet compared) and events. Used by proposers to compute the root
    /// and by [`Ledger::apply_block`].
    pub fn execute(
        &self,
        state: &dyn StateRead,
        block: &Block,
        proofs: &dyn ProofCheck,
    ) -> Result<(ChangeSet, Vec<Event>), BlockError> {
        let meta = state.meta()?;
        let expected = meta.height.checked_add(1).ok_or(BlockError::WrongHeight {
            expected: u64::MAX,
            got: block.height,
        })?;
        if block.height != expected {
            return Err(BlockError::WrongHeight {
                expected,
                got: block.height,
            });
        }
        if block.prev_hash != state.last_block_hash()? {
            return Err(BlockError::WrongPrevHash);
        }
        if block.time < meta.last_time {
            return Err(BlockError::TimeWentBackwards);
        }
        self.check_size(block)?;
        if !self
            .genesis
            .validators
            .iter()
            .any(|v| v.key == block.proposer)
        {
            return Err(BlockError::UnknownProposer);
        }
        // Proofs of all orders in one batch, against exactly the public inputs the ledger
        // derives from each order.
        let mut items = Vec::new();
        let mut positions = Vec::new();
        for (k, tx) in block.txs.iter().enumerate() {
            // The circuit itself proves the key is a subgroup point, so the (costly) native
            // subgroup check is not repeated here; enrolment did it once. Non-canonical
            // coordinates cannot be enrolled: the rules reject such an order as coming from an
            // unknown meter.
            if let Some(Ok(item)) = tx
                .body
                .order_proof_item(|m| m.to_public_key_unchecked().ok_or(()))
            {
                items.push(item);
                positions.push(k);
            }
        }
        // Spend proofs likewise, against the inputs the ledger derives (its binding hash
        // included); a spend naming a non-canonical field element is invalid as a whole.
        let mut spends = Vec::new();
        let mut spend_positions = Vec::new();
        for (k, tx) in block.txs.iter().enumerate() {
            match tx.spend_proof_item(&self.genesis.chain_id) {
                None => {}
                Some(Ok(item)) => {
                    spends.push(item);
                    spend_positions.push(k);
                }
                Some(Err(bad)) => {
                    return Err(BlockError::Tx {
                        index: k,
                        id: tx.id(),
                        error: TxError::Pool(PoolError::NotAField(bad)),
                    })
                }
            }
        }
        // Unlinkable order proofs, against the market's id and the terms hash the ledger
        // derives. A market without a registry refuses them by its rules instead.
        let mut unlinkable = Vec::new();
        let mut unlinkable_positions = Vec::new();
        if self.genesis.anonymous.is_some() {
            for (k, tx) in block.txs.iter().enumerate() {
                match tx.unlinkable_order_item(&self.genesis.chain_id, self.market) {
                    None => {}
                    Some(Ok(item)) => {
                        unlinkable.push(item);
                        unlinkable_positions.push(k);
                    }
                    Some(Err(bad)) => {
                        return Err(BlockError::Tx {
                            index: k,
                            id: tx.id(),
                            error: TxError::NotAField(bad),
                        })
                    }
                }
            }
        }
        let failures = [
            (proofs.check(&items).err(), &positions),
            (proofs.check_spends(&spends).err(), &spend_positions),
            (
                proofs.check_unlinkable(&unlinkable).err(),
                &unlinkable_positions,
            ),
        ];
        let first_invalid = failures
            .iter()
            .filter_map(|(f, at)| {
                let (i, e) = f.as_ref()?.invalid.first()?;
                Some((at[*i], e.to_string()))
            })
            .min_by_key(|(index, _)| *index);
        if let Some((index, e)) = first_invalid {
            return Err(BlockError::Tx {
                index,
                id: block.txs[index].id(),
                error: TxError::InvalidProof(e),
            });
        }

        // Signatures and ids are independent per transaction: compute them in parallel.
        let checked: Vec<(TxId, bool)> = block
            .txs
            .par_iter()
            .map(|tx| {
                let id = tx.id();
                let signed =
                    proofs.signature_known(&id) || tx.verify_signature(&self.genesis.chain_id);
                (id, signed)
            })
            .collect();
        // The entries the transactions will read, read ahead in one batch.
        let mut ahead = Vec::with_capacity(5 * block.txs.len());
        for (tx, (id, _)) in block.txs.iter().zip(&checked) {
            reads_ahead(tx, id, &mut ahead);
        }
        let read = Prefetched::new(state, ahead)?;
        let mut next = Overlay::new(&read);
        let mut events = Vec::new();
        self.begin_block(&mut next, block.height, block.time, &mut events)
            .map_err(|e| match e {
                TxError::State(s) => BlockError::State(s),
                e => BlockError::Clearing(e),
            })?;
        for (index, (tx, (id, signed))) in block.txs.iter().zip(checked).enumerate() {
            let result = if signed {
                self.apply_signed_tx(&mut next, tx, id, block.time)
            } else if next.is_applied(tx.expires_at, &id)? {
                Err(TxError::Replay(id))
            } else {
                Err(TxError::BadSignature)
            };
            result.map_err(|error| match error {
                TxError::State(s) => BlockError::State(s),
                error => BlockError::Tx { index, id, error },
            })?;
            events.push(Event::TxApplied { id });
        }
        if let Some(params) = &self.genesis.shielded {
            // The tree as this block leaves it is an anchor for the next ones.
            pool::record_root(&mut next, params.root_history)?;
        }
        if let Some(params) = &self.genesis.anonymous {
            // The registry as this block leaves it is a root the next blocks' orders open.
            registry::record_root(&mut next, params.registry_history)?;
        }
        let mut meta = next.meta()?;
        meta.height = block.height;
        meta.last_time = block.time;
        write::meta(&mut next, &meta);
        next.put(keys::chain(), &block.hash());
        Ok((next.into_changes(), events))
    }

    /// Applies a block to the state `state` (a backend holding the tree of its version):
    /// executes it and checks its state root. Pure: `state` is not modified; the caller
    /// commits the returned update.
    pub fn apply_block<S: StateRead + TreeRead>(
        &self,
        state: &S,
        block: &Block,
        proofs: &dyn ProofCheck,
    ) -> Result<Applied, BlockError> {
        let (changes, events) = self.execute(state, block, proofs)?;
        let update = StateUpdate::compute(state, block.height, changes)?;
        if update.root != block.state_root {
            return Err(BlockError::StateRootMismatch {
                claimed: block.state_root,
                computed: update.root,
            });
        }
        Ok(Applied { update, events })
    }
}
