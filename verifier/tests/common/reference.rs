//! The reference model: the version-1 ledger, whole state in memory (`BTreeMap`s, cloned per
//! block) with the same rules written over it directly. The keyed state must give the same
//! roots and the same contents on every block sequence; this model computes its root from
//! scratch over all its entries, so it cannot share a bug with the incremental tree.
#![allow(dead_code)]

use borsh::{BorshDeserialize, BorshSerialize};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use veilwatt_verifier::clearing::{buy_escrow, clear, BookOrder};
use veilwatt_verifier::ledger::{
    Account, BlockError, Event, FeeTotals, MeterRecord, OrderOutcome, OrderRecord, PeriodResult,
    ProofCheck, TxError,
};
use veilwatt_verifier::state::{ChangeSet, MemoryState, StateUpdate};
use veilwatt_verifier::types::{
    encode, Block, Genesis, GenesisError, Hash32, MeterKey, Millis, Side, Transaction, TxBody,
    TxId, WalletKey,
};

/// The whole ledger state.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RefState {
    /// Height of the last applied block (0 = genesis).
    pub height: u64,
    /// Hash of the last applied block (zero at genesis).
    pub last_block_hash: Hash32,
    /// Consensus time of the last applied block.
    pub last_time: u64,
    /// Wallets.
    pub accounts: BTreeMap<WalletKey, Account>,
    /// Meter registry.
    pub meters: BTreeMap<MeterKey, MeterRecord>,
    /// Open orders by (period, id).
    pub open_orders: BTreeMap<(u64, TxId), OrderRecord>,
    /// The order occupying each (meter, period) slot.
    pub order_slots: BTreeMap<(MeterKey, u64), TxId>,
    /// `(expiry, id)` of every applied transaction that has not expired (replay protection).
    pub applied_txs: BTreeSet<(u64, TxId)>,
    /// Cleared periods within the retention window (committed).
    pub results: BTreeMap<u64, PeriodResult>,
    /// Cleared periods older than the retention window (archived, not committed).
    pub archived: BTreeMap<u64, PeriodResult>,
    /// Fees collected.
    pub fees: FeeTotals,
    /// Sum of all deposits, millis.
    pub total_deposits: Millis,
    /// Sum of all withdrawals, millis.
    pub total_withdrawals: Millis,
    /// Cancellations per (period, meter), for periods whose gate is open.
    pub cancels: BTreeMap<(u64, MeterKey), u32>,
    /// Every payment reference credited.
    pub references: BTreeSet<u64>,
}

/// Table tags of the state-root entries.
mod tag {
    pub const META: u8 = 0;
    pub const ACCOUNT: u8 = 1;
    pub const METER: u8 = 2;
    pub const ORDER: u8 = 3;
    pub const APPLIED: u8 = 5;
    pub const RESULT: u8 = 6;
    pub const CANCELS: u8 = 0x13;
    pub const DEPOSIT_REFERENCE: u8 = 0x14;
}

impl RefState {
    /// The state-root entries `(key, value)`, sorted by key (docs/spec/ledger.md lists them).
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        fn key<K: BorshSerialize>(t: u8, k: &K) -> Vec<u8> {
            let mut v = vec![t];
            // Big-endian-friendly: borsh of fixed-size byte arrays sorts like the arrays; u64s
            // are encoded big-endian below to sort numerically.
            v.extend(encode(k));
            v
        }
        let mut out = Vec::new();
        // `last_block_hash` is not committed: a block cannot contain its own hash, and the
        // chain of hashes is committed by the blocks themselves.
        let meta = (
            self.height,
            self.last_time,
            self.fees,
            self.total_deposits,
            self.total_withdrawals,
        );
        out.push((vec![tag::META], encode(&meta)));
        for (k, v) in &self.accounts {
            out.push((key(tag::ACCOUNT, k), encode(v)));
        }
        for (k, v) in &self.meters {
            out.push((key(tag::METER, k), encode(v)));
        }
        // Orders are keyed by their slot, (period, meter).
        for ((p, _), v) in &self.open_orders {
            let mut k = vec![tag::ORDER];
            k.extend(p.to_be_bytes());
            k.extend(v.meter.0);
            out.push((k, encode(v)));
        }
        for (expires_at, id) in &self.applied_txs {
            let mut k = vec![tag::APPLIED];
            k.extend(expires_at.to_be_bytes());
            k.extend(id.0);
            out.push((k, Vec::new()));
        }
        for (p, r) in &self.results {
            let mut k = vec![tag::RESULT];
            k.extend(p.to_be_bytes());
            out.push((k, encode(r)));
        }
        for ((p, meter), n) in &self.cancels {
            let mut k = vec![tag::CANCELS];
            k.extend(p.to_be_bytes());
            k.extend(meter.0);
            out.push((k, encode(n)));
        }
        for r in &self.references {
            let mut k = vec![tag::DEPOSIT_REFERENCE];
            k.extend(r.to_be_bytes());
            out.push((k, Vec::new()));
        }
        out.sort();
        out
    }

    /// The root committing to the whole state, computed from scratch: a fresh tree holding
    /// every entry.
    pub fn root(&self) -> Hash32 {
        let changes: ChangeSet = self
            .entries()
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        StateUpdate::compute(&MemoryState::default(), 0, changes)
            .expect("a tree in memory")
            .root
    }

    /// The state-root key of a wallet's account entry.
    pub fn account_key(wallet: &WalletKey) -> Vec<u8> {
        let mut k = vec![tag::ACCOUNT];
        k.extend(wallet.0);
        k
    }

    fn account(&mut self, w: &WalletKey) -> &mut Account {
        self.accounts.entry(*w).or_default()
    }
}

fn add(a: Millis, b: Millis) -> Result<Millis, TxError> {
    a.checked_add(b).ok_or(TxError::Overflow)
}

fn sub(a: Millis, b: Millis) -> Result<Millis, TxError> {
    a.checked_sub(b).ok_or(TxError::Overflow)
}

/// The rules, bound to one genesis.
#[derive(Clone, Copy, Debug)]
pub struct RefLedger<'g> {
    genesis: &'g Genesis,
}

impl<'g> RefLedger<'g> {
    /// Rules for `genesis`, which must pass [`Genesis::validate`] (the arithmetic relies on
    /// its bounds).
    pub fn new(genesis: &'g Genesis) -> Result<Self, GenesisError> {
        genesis.validate()?;
        Ok(Self { genesis })
    }

    /// The genesis these rules are bound to.
    pub fn genesis(&self) -> &'g Genesis {
        self.genesis
    }

    /// Checks and applies one transaction at consensus time `time`, assuming any order proof
    /// has been verified. On error `state` is unchanged.
    pub fn apply_tx(
        &self,
        state: &mut RefState,
        tx: &Transaction,
        time: u64,
    ) -> Result<(), TxError> {
        let id = tx.id();
        if state.applied_txs.contains(&(tx.expires_at, id)) {
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
        state: &mut RefState,
        tx: &Transaction,
        id: TxId,
        time: u64,
    ) -> Result<(), TxError> {
        if state.applied_txs.contains(&(tx.expires_at, id)) {
            return Err(TxError::Replay(id));
        }
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
        // Each arm checks everything before mutating anything.
        match &tx.body {
            // The shielded pool is modelled by the pool's own property test
            // (`pool::tests`); the model's markets have none.
            TxBody::MintNote { .. } | TxBody::Spend { .. } => {
                assert!(
                    self.genesis.shielded.is_none(),
                    "the reference model has no shielded pool"
                );
                return Err(TxError::ShieldedDisabled);
            }
            // So are the meter registry and unlinkable orders (`registry::tests`,
            // `tests/registry.rs`, `tests/unlinkable.rs`).
            TxBody::EnrollHousehold { .. }
            | TxBody::UnlinkableOrder { .. }
            | TxBody::CancelUnlinkable { .. } => {
                assert!(
                    self.genesis.anonymous.is_none(),
                    "the reference model has no meter registry"
                );
                return Err(TxError::AnonymousDisabled);
            }
            TxBody::EnrollMeter { meter, owner } => {
                meter
                    .to_public_key()
                    .map_err(|e| TxError::InvalidMeterKey(e.to_string()))?;
                if state.meters.contains_key(meter) {
                    return Err(TxError::MeterAlreadyEnrolled);
                }
                state.meters.insert(
                    *meter,
                    MeterRecord {
                        owner: *owner,
                        revoked: false,
                    },
                );
            }
            TxBody::RevokeMeter { meter } => {
                let m = state.meters.get_mut(meter).ok_or(TxError::UnknownMeter)?;
                if m.revoked {
                    return Err(TxError::MeterRevoked);
                }
                m.revoked = true;
            }
            TxBody::Deposit {
                to,
                amount,
                reference,
            } => {
                if *amount == 0 {
                    return Err(TxError::ZeroAmount);
                }
                if state.references.contains(reference) {
                    return Err(TxError::DuplicateReference(*reference));
                }
                let total = add(state.total_deposits, *amount)?;
                let bal = add(state.accounts.get(to).map_or(0, |a| a.balance), *amount)?;
                state.account(to).balance = bal;
                state.total_deposits = total;
                state.references.insert(*reference);
            }
            TxBody::Withdraw { amount, .. } => {
                if *amount == 0 {
                    return Err(TxError::ZeroAmount);
                }
                let have = state.accounts.get(&tx.signer).map_or(0, |a| a.balance);
                let fee = self.genesis.spam.tx_fee;
                let need = add(*amount, fee)?;
                if have < need {
                    return Err(TxError::InsufficientFunds { need, have });
                }
                let fees = add(state.fees.tx, fee)?;
                let total = add(state.total_withdrawals, *amount)?;
                state.account(&tx.signer).balance = have - need;
                state.fees.tx = fees;
                state.total_withdrawals = total;
            }
            TxBody::Order {
                meter,
                period,
                side,
                quantity_wh,
                limit_price,
                ..
            } => {
                let m = state.meters.get(meter).ok_or(TxError::UnknownMeter)?;
                if m.revoked {
                    return Err(TxError::MeterRevoked);
                }
                if m.owner != tx.signer {
                    return Err(TxError::NotMeterOwner);
                }
                if let Some(existing) = state.order_slots.get(&(*meter, *period)) {
                    return Err(TxError::DuplicateOrder(*existing));
                }
                if let Some(o) = state
                    .open_orders
                    .range((*period, TxId([0; 32]))..=(*period, TxId([0xff; 32])))
                    .map(|(_, o)| o)
                    .find(|o| o.owner == tx.signer && o.side != *side)
                {
                    return Err(TxError::SelfTrade {
                        period: *period,
                        open: o.side,
                    });
                }
                self.check_gate(*period, time, true)?;
                if *quantity_wh == 0 {
                    return Err(TxError::ZeroAmount);
                }
                let (floor, cap) = (self.genesis.price_floor, self.genesis.price_cap);
                if *limit_price < floor || *limit_price > cap {
                    return Err(TxError::PriceOutOfRange {
                        price: *limit_price,
                        floor,
                        cap,
                    });
                }
                let escrow = match side {
                    Side::Sell => 0,
                    Side::Buy => buy_escrow(*quantity_wh, *limit_price, &self.genesis.fees),
                };
                let acct = state.accounts.get(&tx.signer).copied().unwrap_or_default();
                let fee = self.genesis.spam.tx_fee;
                let need = add(escrow, fee)?;
                if acct.balance < need {
                    return Err(TxError::InsufficientFunds {
                        need,
                        have: acct.balance,
                    });
                }
                let fees = add(state.fees.tx, fee)?;
                let new_escrow = add(acct.escrow, escrow)?;
                state.fees.tx = fees;
                let a = state.account(&tx.signer);
                a.balance -= need;
                a.escrow = new_escrow;
                state.open_orders.insert(
                    (*period, id),
                    OrderRecord {
                        id,
                        owner: tx.signer,
                        meter: *meter,
                        period: *period,
                        side: *side,
                        quantity_wh: *quantity_wh,
                        limit_price: *limit_price,
                        escrow,
                    },
                );
                state.order_slots.insert((*meter, *period), id);
            }
            TxBody::CancelOrder { order } => {
                let (key, rec) = state
                    .open_orders
                    .iter()
                    .find(|(_, r)| r.id == *order)
                    .map(|(k, r)| (*k, *r))
                    .ok_or(TxError::UnknownOrder)?;
                if rec.owner != tx.signer {
                    return Err(TxError::NotOrderOwner);
                }
                self.check_gate(rec.period, time, false)?;
                let cancels = state
                    .cancels
                    .get(&(rec.period, rec.meter))
                    .copied()
                    .unwrap_or(0);
                let max = self.genesis.spam.max_cancels_per_period;
                if cancels >= max {
                    return Err(TxError::TooManyCancels { max });
                }
                let a = state.accounts.get(&tx.signer).copied().unwrap_or_default();
                let (balance, escrow) = (add(a.balance, rec.escrow)?, sub(a.escrow, rec.escrow)?);
                let fee = self.genesis.spam.tx_fee;
                if balance < fee {
                    return Err(TxError::InsufficientFunds {
                        need: fee,
                        have: balance,
                    });
                }
                let fees = add(state.fees.tx, fee)?;
                state.fees.tx = fees;
                state.cancels.insert((rec.period, rec.meter), cancels + 1);
                let acct = state.account(&tx.signer);
                acct.balance = balance - fee;
                acct.escrow = escrow;
                state.open_orders.remove(&key);
                state.order_slots.remove(&(rec.meter, rec.period));
            }
        }
        state.applied_txs.insert((tx.expires_at, id));
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

    /// Clears every period whose gate has closed by `time`: the first thing a block at
    /// (`height`, `time`) does. Proposers call it on a scratch state before selecting
    /// transactions with [`Ledger::apply_tx`].
    pub fn clear_due(
        &self,
        state: &mut RefState,
        height: u64,
        time: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        let due: BTreeSet<u64> = state
            .open_orders
            .keys()
            .map(|(p, _)| *p)
            .filter(|p| self.genesis.gate_close(*p).is_some_and(|c| c <= time))
            .collect();
        for p in due {
            let records: Vec<OrderRecord> = state
                .open_orders
                .range((p, TxId([0; 32]))..=(p, TxId([0xff; 32])))
                .map(|(_, r)| *r)
                .collect();
            let book: Vec<BookOrder> = records
                .iter()
                .map(|r| BookOrder {
                    id: r.id,
                    side: r.side,
                    quantity_wh: r.quantity_wh,
                    limit_price: r.limit_price,
                })
                .collect();
            let c = clear(&book, self.genesis.mechanism, &self.genesis.fees);
            let index: BTreeMap<TxId, usize> =
                records.iter().enumerate().map(|(k, r)| (r.id, k)).collect();
            let mut spent = vec![0 as Millis; records.len()];
            for t in &c.trades {
                let (s, b) = (&records[index[&t.sell]], index[&t.buy]);
                spent[b] = add(spent[b], t.buyer_pays())?;
                let seller = state.account(&s.owner);
                seller.balance = add(seller.balance, t.seller_receives())?;
                state.fees.grid = add(state.fees.grid, t.grid_fee)?;
                state.fees.market = add(
                    add(state.fees.market, t.market_fee_buyer)?,
                    t.market_fee_seller,
                )?;
            }
            for (k, r) in records.iter().enumerate() {
                if r.side == Side::Buy {
                    let a = state.account(&r.owner);
                    a.escrow = sub(a.escrow, r.escrow)?;
                    a.balance = add(a.balance, sub(r.escrow, spent[k])?)?;
                }
                state.open_orders.remove(&(p, r.id));
                state.order_slots.remove(&(r.meter, r.period));
            }
            let orders = records
                .iter()
                .zip(&c.filled_wh)
                .map(|(r, f)| OrderOutcome {
                    id: r.id,
                    owner: Some(r.owner),
                    side: r.side,
                    filled_wh: *f,
                    unmatched_wh: r.quantity_wh - f,
                })
                .collect();
            events.push(Event::PeriodCleared {
                period: p,
                volume_wh: c.volume_wh,
                trades: c.trades.len(),
            });
            state.results.insert(
                p,
                PeriodResult {
                    period: p,
                    cleared_at: height,
                    clearing_price: c.clearing_price,
                    volume_wh: c.volume_wh,
                    trades: c.trades,
                    orders,
                },
            );
            // Results of periods q with q + R <= p move to the archive.
            let old: Vec<u64> = state
                .results
                .keys()
                .copied()
                .filter(|q| q.saturating_add(self.genesis.result_retention_periods) <= p)
                .collect();
            for q in old {
                if let Some(r) = state.results.remove(&q) {
                    state.archived.insert(q, r);
                }
            }
        }
        Ok(())
    }

    /// Executes a block's header and transactions on a copy of `state`, returning the new state
    /// (its root not yet compared with the block's) and events. Used by proposers to compute the
    /// root and by [`Ledger::apply_block`].
    pub fn execute(
        &self,
        state: &RefState,
        block: &Block,
        proofs: &dyn ProofCheck,
    ) -> Result<(RefState, Vec<Event>), BlockError> {
        let expected = state.height.checked_add(1).ok_or(BlockError::WrongHeight {
            expected: u64::MAX,
            got: block.height,
        })?;
        if block.height != expected {
            return Err(BlockError::WrongHeight {
                expected,
                got: block.height,
            });
        }
        if block.prev_hash != state.last_block_hash {
            return Err(BlockError::WrongPrevHash);
        }
        if block.time < state.last_time {
            return Err(BlockError::TimeWentBackwards);
        }
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
        if let Err(f) = proofs.check(&items) {
            if let Some((i, e)) = f.invalid.first() {
                let index = positions[*i];
                return Err(BlockError::Tx {
                    index,
                    id: block.txs[index].id(),
                    error: TxError::InvalidProof(e.to_string()),
                });
            }
        }

        let mut next = state.clone();
        let mut events = Vec::new();
        self.clear_due(&mut next, block.height, block.time, &mut events)
            .map_err(BlockError::Clearing)?;
        // Expired ids can never apply again: forgotten.
        next.applied_txs
            .retain(|(expires_at, _)| *expires_at >= block.time);
        // So are the cancellation counts of periods whose gate has closed.
        let genesis = self.genesis;
        next.cancels
            .retain(|(p, _), _| genesis.gate_close(*p).is_some_and(|c| c > block.time));
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
        for (index, (tx, (id, signed))) in block.txs.iter().zip(checked).enumerate() {
            let result = if signed {
                self.apply_signed_tx(&mut next, tx, id, block.time)
            } else if next.applied_txs.contains(&(tx.expires_at, id)) {
                Err(TxError::Replay(id))
            } else {
                Err(TxError::BadSignature)
            };
            result.map_err(|error| BlockError::Tx { index, id, error })?;
            events.push(Event::TxApplied { id });
        }
        next.height = block.height;
        next.last_block_hash = block.hash();
        next.last_time = block.time;
        Ok((next, events))
    }

    /// Applies a block: executes it and checks its state root. Pure: `state` is not modified;
    /// the caller stores the returned state.
    pub fn apply_block(
        &self,
        state: &RefState,
        block: &Block,
        proofs: &dyn ProofCheck,
    ) -> Result<(RefState, Vec<Event>), BlockError> {
        let (next, events) = self.execute(state, block, proofs)?;
        let computed = next.root();
        if computed != block.state_root {
            return Err(BlockError::StateRootMismatch {
                claimed: block.state_root,
                computed,
            });
        }
        Ok((next, events))
    }
}

impl RefState {
    /// The contents of a keyed state, decoded into the model's maps (the local indexes are
    /// checked against the committed tables on the way).
    pub fn from_keyed(mem: &MemoryState) -> Self {
        use veilwatt_verifier::ledger::Meta;
        use veilwatt_verifier::state::keys;
        use veilwatt_verifier::types::decode;
        let mut s = RefState::default();
        let mut owner_orders = BTreeSet::new();
        let mut meter_orders = BTreeSet::new();
        let mut owner_meters = BTreeSet::new();
        let mut owner_sides = BTreeSet::new();
        let mut order_ids = BTreeMap::new();
        for (k, v) in mem.entries() {
            let body = &k[1..];
            match k[0] {
                keys::META => {
                    let m: Meta = decode(v).unwrap();
                    s.height = m.height;
                    s.last_time = m.last_time;
                    s.fees = m.fees;
                    s.total_deposits = m.total_deposits;
                    s.total_withdrawals = m.total_withdrawals;
                }
                keys::CHAIN => s.last_block_hash = decode(v).unwrap(),
                // Where pruning resumes: a shortcut (the pruning tests check it).
                keys::PRUNED_TO => {}
                keys::ACCOUNT => {
                    s.accounts
                        .insert(WalletKey(body.try_into().unwrap()), decode(v).unwrap());
                }
                keys::METER => {
                    s.meters
                        .insert(MeterKey(body.try_into().unwrap()), decode(v).unwrap());
                }
                keys::ORDER => {
                    let o: OrderRecord = decode(v).unwrap();
                    assert_eq!(body, keys::order(o.period, &o.meter)[1..].to_vec());
                    s.order_slots.insert((o.meter, o.period), o.id);
                    s.open_orders.insert((o.period, o.id), o);
                }
                keys::ORDER_ID => {
                    let slot: (u64, MeterKey) = decode(v).unwrap();
                    order_ids.insert(TxId(body.try_into().unwrap()), slot);
                }
                keys::APPLIED => {
                    assert!(v.is_empty(), "an applied entry has no value");
                    let expires_at = u64::from_be_bytes(body[..8].try_into().unwrap());
                    s.applied_txs
                        .insert((expires_at, TxId(body[8..].try_into().unwrap())));
                }
                keys::RESULT => {
                    let r: PeriodResult = decode(v).unwrap();
                    assert_eq!(body, r.period.to_be_bytes());
                    s.results.insert(r.period, r);
                }
                keys::ARCHIVE => {
                    let r: PeriodResult = decode(v).unwrap();
                    assert_eq!(body, r.period.to_be_bytes());
                    s.archived.insert(r.period, r);
                }
                keys::CANCELS => {
                    let p = u64::from_be_bytes(body[..8].try_into().unwrap());
                    let meter = MeterKey(body[8..].try_into().unwrap());
                    s.cancels.insert((p, meter), decode(v).unwrap());
                }
                keys::DEPOSIT_REFERENCE => {
                    assert!(v.is_empty(), "a reference entry has no value");
                    s.references
                        .insert(u64::from_be_bytes(body.try_into().unwrap()));
                }
                keys::OWNER_SIDE => {
                    owner_sides.insert((body.to_vec(), v.clone()));
                }
                keys::ORDER_BY_OWNER => {
                    owner_orders.insert((body.to_vec(), v.clone()));
                }
                keys::ORDER_BY_METER => {
                    meter_orders.insert((body.to_vec(), v.clone()));
                }
                keys::METER_BY_OWNER => {
                    owner_meters.insert(body.to_vec());
                }
                // The shielded pool's tables: modelled by `pool::tests` and checked by
                // tests/shielded.rs, not by this model.
                keys::NOTE_TREE | keys::NOTE_ROOT | keys::NOTE_ROOT_SEQ | keys::NULLIFIER => {}
                // The meter registry's: modelled by `registry::tests`, checked by
                // tests/registry.rs.
                keys::REGISTRY
                | keys::REGISTRY_NODE
                | keys::REGISTRY_ROOT
                | keys::REGISTRY_ROOT_SEQ
                | keys::ENROLMENT
                | keys::UNLINKABLE_ORDER
                | keys::ORDER_NULLIFIER => {}
                t => panic!("unknown table {t:#x}"),
            }
        }
        // The indexes hold exactly the open orders and meters.
        let want: BTreeMap<TxId, (u64, MeterKey)> = s
            .open_orders
            .values()
            .map(|o| (o.id, (o.period, o.meter)))
            .collect();
        assert_eq!(order_ids, want, "order-id table");
        let want: BTreeSet<(Vec<u8>, Vec<u8>)> = s
            .open_orders
            .values()
            .map(|o| {
                let k = keys::order_by_owner(&o.owner, o.period, &o.id);
                (k[1..].to_vec(), encode(&o.meter))
            })
            .collect();
        assert_eq!(owner_orders, want, "order-by-owner index");
        let want: BTreeSet<(Vec<u8>, Vec<u8>)> = s
            .open_orders
            .values()
            .map(|o| {
                let k = keys::order_by_meter(&o.meter, o.period);
                (k[1..].to_vec(), encode(&o.id))
            })
            .collect();
        assert_eq!(meter_orders, want, "order-by-meter index");
        let want_meters: BTreeSet<Vec<u8>> = s
            .meters
            .iter()
            .map(|(m, r)| keys::meter_by_owner(&r.owner, m)[1..].to_vec())
            .collect();
        assert_eq!(owner_meters, want_meters, "meter-by-owner index");
        // The side of each wallet's open orders of a period, and how many.
        let mut sides: BTreeMap<(u64, WalletKey), (Side, u32)> = BTreeMap::new();
        for ((p, _), o) in &s.open_orders {
            sides.entry((*p, o.owner)).or_insert((o.side, 0)).1 += 1;
        }
        let want: BTreeSet<(Vec<u8>, Vec<u8>)> = sides
            .into_iter()
            .map(|((p, owner), v)| (keys::owner_side(p, &owner)[1..].to_vec(), encode(&v)))
            .collect();
        assert_eq!(owner_sides, want, "owner-side table");
        // Every index follows from the committed entries: a state restored from them alone
        // (a snapshot) holds exactly the same indexes.
        let committed = mem
            .entries()
            .filter(|(k, _)| keys::is_committed(k))
            .map(|(k, v)| (k.as_slice(), v.as_slice()));
        let derived: BTreeMap<Vec<u8>, Vec<u8>> =
            veilwatt_verifier::ledger::derive_indexes(committed)
                .expect("committed entries decode")
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect();
        let held: BTreeMap<Vec<u8>, Vec<u8>> = mem
            .entries()
            .filter(|(k, _)| {
                !keys::is_committed(k)
                    && ![keys::CHAIN, keys::ARCHIVE, keys::PRUNED_TO].contains(&k[0])
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(derived, held, "indexes derived from the committed entries");
        s
    }
}
