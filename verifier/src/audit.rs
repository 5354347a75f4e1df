//! The regulator's audit (docs/spec/audit.md): trust no validator. Given the genesis and a
//! ledger export (`veilwatt-node export`, format `veilwatt-export/1`), check
//!
//! 1. that the export belongs to this genesis and its blocks are heights `1..=n` in order,
//!    each hashing to its stated hash and linked to its parent;
//! 2. every block's commit certificate: signatures by distinct genesis validators over the
//!    precommit for exactly that height and block hash, every one valid, together more than
//!    2/3 of the voting power;
//! 3. every order proof, in batches across blocks;
//! 4. the replay of every block through the very state machine the validators run, whose state
//!    root must equal each block's;
//!
//! then report the market's figures per period from the replayed state. The first failure
//! stops the audit with an [`AuditError`] naming the height, the transaction and what differs.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use veilwatt_circuits::order::OrderPublic;

use crate::ledger::{BlockError, Ledger, LedgerRead, ProofCheck};
use crate::proof::{BatchFailure, OrderProof, OrderVerifier};
use crate::state::{MemoryState, StateError};
use crate::types::{Block, Genesis, Hash32, MeterKey, Side, Signature64, TxBody, TxId, WalletKey};

/// The export format this audit reads.
pub const EXPORT_FORMAT: &str = "veilwatt-export/1";

/// Domain tag of commit votes (node/src/consensus/signing.rs).
pub const VOTE_DOMAIN: &str = "veilwatt/vote/v1";

/// A ledger export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Export {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// Chain id.
    pub chain_id: String,
    /// Hash of the genesis the ledger started from.
    pub genesis_hash: Hash32,
    /// First height.
    pub from: u64,
    /// Last height.
    pub to: u64,
    /// The blocks, in height order.
    pub blocks: Vec<ExportedBlock>,
}

/// One block of an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportedBlock {
    /// The block's hash as the exporter states it.
    pub hash: Hash32,
    /// The block.
    pub block: Block,
    /// Its commit certificate, canonical encoding in hex ([`Certificate::encode`]).
    pub certificate: String,
}

/// A commit certificate: precommit signatures of validators for one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// Height.
    pub height: u64,
    /// Consensus round the block was decided in.
    pub round: i64,
    /// The decided block's hash.
    pub block_hash: Hash32,
    /// `(validator key, Ed25519 signature)`.
    pub signatures: Vec<(WalletKey, Signature64)>,
}

fn tag(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

impl Certificate {
    /// Canonical encoding: height (u64 BE), round (i64 BE), block hash, count (u32 BE), then
    /// per signature the validator key and the 64-byte signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(52 + 96 * self.signatures.len());
        w.extend_from_slice(&self.height.to_be_bytes());
        w.extend_from_slice(&self.round.to_be_bytes());
        w.extend_from_slice(&self.block_hash.0);
        w.extend_from_slice(&(self.signatures.len() as u32).to_be_bytes());
        for (k, s) in &self.signatures {
            w.extend_from_slice(&k.0);
            w.extend_from_slice(&s.0);
        }
        w
    }

    /// Decodes [`Certificate::encode`]'s bytes exactly (no trailing bytes).
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        let fixed = |r: std::ops::Range<usize>| -> Result<&[u8], String> {
            b.get(r).ok_or_else(|| "truncated".to_owned())
        };
        let u64_at = |i: usize| -> Result<[u8; 8], String> {
            fixed(i..i + 8)?
                .try_into()
                .map_err(|_| "truncated".to_owned())
        };
        let height = u64::from_be_bytes(u64_at(0)?);
        let round = i64::from_be_bytes(u64_at(8)?);
        let mut block_hash = [0u8; 32];
        block_hash.copy_from_slice(fixed(16..48)?);
        let n = u32::from_be_bytes(fixed(48..52)?.try_into().map_err(|_| "truncated")?) as usize;
        if b.len() != 52 + n.saturating_mul(96) {
            return Err(format!(
                "{} bytes for {n} signatures (expected {})",
                b.len(),
                52usize.saturating_add(n.saturating_mul(96))
            ));
        }
        let signatures = b[52..]
            .chunks_exact(96)
            .map(|c| {
                let mut k = [0u8; 32];
                let mut s = [0u8; 64];
                k.copy_from_slice(&c[..32]);
                s.copy_from_slice(&c[32..]);
                (WalletKey(k), Signature64(s))
            })
            .collect();
        Ok(Self {
            height,
            round,
            block_hash: Hash32(block_hash),
            signatures,
        })
    }

    /// What validator `validator` signed to precommit the block: the vote domain and chain id
    /// (length-prefixed), vote type 1 (precommit), height, round, 1 (a value, not nil), the
    /// block hash and the validator's key.
    pub fn signing_bytes(&self, chain_id: &str, validator: &WalletKey) -> Vec<u8> {
        let mut w = Vec::with_capacity(160);
        tag(&mut w, VOTE_DOMAIN.as_bytes());
        tag(&mut w, chain_id.as_bytes());
        w.push(1);
        w.extend_from_slice(&self.height.to_be_bytes());
        w.extend_from_slice(&self.round.to_be_bytes());
        w.push(1);
        w.extend_from_slice(&self.block_hash.0);
        w.extend_from_slice(&validator.0);
        w
    }

    /// Checks the certificate commits `block_hash` at `height` with more than 2/3 of the
    /// genesis voting power, every signature valid and from a distinct genesis validator.
    pub fn verify(&self, g: &Genesis, height: u64, block_hash: &Hash32) -> Result<(), CertError> {
        if self.height != height {
            return Err(CertError::Height(self.height));
        }
        if self.block_hash != *block_hash {
            return Err(CertError::OtherBlock(self.block_hash));
        }
        let total: u128 = g.validators.iter().map(|v| u128::from(v.power)).sum();
        let mut seen = BTreeSet::new();
        let mut power: u128 = 0;
        for (key, sig) in &self.signatures {
            let v = g
                .validators
                .iter()
                .find(|v| v.key == *key)
                .ok_or(CertError::NotAValidator(*key))?;
            if !seen.insert(*key) {
                return Err(CertError::Duplicate(v.name.clone()));
            }
            let ok = ed25519_dalek::VerifyingKey::from_bytes(&key.0).is_ok_and(|vk| {
                vk.verify_strict(
                    &self.signing_bytes(&g.chain_id, key),
                    &ed25519_dalek::Signature::from_bytes(&sig.0),
                )
                .is_ok()
            });
            if !ok {
                return Err(CertError::BadSignature(v.name.clone()));
            }
            power += u128::from(v.power);
        }
        if power * 3 <= total * 2 {
            return Err(CertError::NotEnoughPower { power, total });
        }
        Ok(())
    }
}

/// Why a commit certificate does not commit a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The certificate is for another height.
    #[error("the certificate is for height {0}")]
    Height(u64),
    /// The certificate commits another block.
    #[error("the certificate commits block {0}, not this one")]
    OtherBlock(Hash32),
    /// A signer outside the genesis validator set.
    #[error("signed by {0}, which is not a genesis validator")]
    NotAValidator(WalletKey),
    /// Two signatures by one validator.
    #[error("validator {0} signed twice")]
    Duplicate(String),
    /// A signature does not verify.
    #[error("the signature of validator {0} does not verify")]
    BadSignature(String),
    /// Too little voting power signed.
    #[error("signatures carry {power} of {total} voting power; more than 2/3 is needed")]
    NotEnoughPower {
        /// Signed.
        power: u128,
        /// Total.
        total: u128,
    },
    /// The certificate bytes do not decode.
    #[error("undecodable certificate: {0}")]
    Malformed(String),
}

/// Why an audit failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The replayed state could not be read.
    #[error(transparent)]
    State(StateError),
    /// Not an export this audit reads.
    #[error("not a {EXPORT_FORMAT} export: {0}")]
    Format(String),
    /// The export is of another chain or genesis.
    #[error("the export is of another market: {0}")]
    OtherGenesis(String),
    /// The export does not start at height 1 (a replay needs every block).
    #[error("the export starts at height {0}; an audit replays from height 1")]
    NotFromGenesis(u64),
    /// A block is missing, repeated or out of order.
    #[error("block {position} of the export has height {got}; expected {expected} (missing, repeated or out-of-order block)")]
    OutOfOrder {
        /// Position in the export.
        position: usize,
        /// Expected height.
        expected: u64,
        /// Its height.
        got: u64,
    },
    /// A block does not hash to its stated hash.
    #[error("height {height}: the block hashes to {computed}, but the export says {stated} (block content altered)")]
    BlockHash {
        /// Height.
        height: u64,
        /// Stated.
        stated: Hash32,
        /// Computed.
        computed: Hash32,
    },
    /// A block's parent link is wrong.
    #[error("height {height}: prev_hash {stated} is not the hash of block {} ({expected})", height - 1)]
    Parent {
        /// Height.
        height: u64,
        /// In the block.
        stated: Hash32,
        /// The previous block's hash.
        expected: Hash32,
    },
    /// A commit certificate is invalid.
    #[error("height {height}: commit certificate invalid: {error}")]
    Certificate {
        /// Height.
        height: u64,
        /// Why.
        error: CertError,
    },
    /// An order proof does not verify.
    #[error("height {height}, transaction #{index} ({id}): the order's proof does not verify for meter {meter}, period {period}, {side:?} {quantity_wh} Wh: {why}")]
    Proof {
        /// Height.
        height: u64,
        /// Position in the block.
        index: usize,
        /// Transaction id.
        id: TxId,
        /// Meter.
        meter: Box<MeterKey>,
        /// Period.
        period: u64,
        /// Side.
        side: Side,
        /// Quantity.
        quantity_wh: u32,
        /// Verifier's reason.
        why: String,
    },
    /// The replay refused a block (including a state-root mismatch).
    #[error("height {height}: replay: {error}")]
    Replay {
        /// Height.
        height: u64,
        /// What the state machine says.
        error: BlockError,
    },
}

/// Progress of a long audit (a progress bar in the CLI).
pub trait Progress: Sync {
    /// A stage starts with `total` steps.
    fn stage(&self, _name: &str, _total: u64) {}
    /// `n` steps done.
    fn advance(&self, _n: u64) {}
}

/// No progress reporting.
pub struct Quiet;
impl Progress for Quiet {}

/// A period's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeriodFigures {
    /// Period.
    pub period: u64,
    /// Height of the block that cleared it.
    pub cleared_at: u64,
    /// Sell orders.
    pub sell_orders: u64,
    /// Buy orders.
    pub buy_orders: u64,
    /// Energy offered, Wh.
    pub offered_wh: u64,
    /// Energy bid for, Wh.
    pub bid_wh: u64,
    /// Energy traded, Wh.
    pub traded_wh: u64,
    /// Trades.
    pub trades: u64,
    /// Uniform clearing price, minor units per kWh.
    pub clearing_price: Option<u64>,
    /// Lowest and highest trade price.
    pub price_range: Option<(u64, u64)>,
    /// Money paid for energy, millis.
    pub money_millis: u64,
    /// Grid/wheeling fees, millis.
    pub grid_fees_millis: u64,
    /// Market fees, millis.
    pub market_fees_millis: u64,
    /// Offered energy not traded (sold to the utility), Wh.
    pub unmatched_sell_wh: u64,
    /// Demand not traded (bought from the utility), Wh.
    pub unmatched_buy_wh: u64,
    /// Distinct meters with an order.
    pub meters: u64,
    /// Whether no meter had more than one order in the period.
    pub one_order_per_meter: bool,
}

/// What the audit checked and found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis_hash: Hash32,
    /// Blocks checked (heights 1..=blocks).
    pub blocks: u64,
    /// Transactions replayed.
    pub transactions: u64,
    /// Order proofs re-verified.
    pub proofs: u64,
    /// Commit signatures verified.
    pub signatures: u64,
    /// Final state root.
    pub state_root: Hash32,
    /// Cleared periods in the requested range.
    pub periods: Vec<PeriodFigures>,
    /// Totals over `periods` (its `period` and `cleared_at` are zero, `clearing_price` none).
    pub totals: PeriodFigures,
    /// Periods with orders on the ledger that have not cleared yet.
    pub open_periods: Vec<u64>,
    /// The chain runs on the INSECURE development keys: its proofs prove nothing.
    pub insecure_dev_keys: bool,
}

/// Proofs per batch: big enough to amortise the pairing, small enough to parallelise.
const PROOF_BATCH: usize = 256;

/// One block's proofs, already verified; the replay asks for exactly these.
struct Verified<'a>(&'a [(OrderPublic, OrderProof)]);

impl ProofCheck for Verified<'_> {
    fn check(&self, items: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure> {
        if items == self.0 {
            return Ok(());
        }
        // Never reached for blocks this audit verified; refuse rather than trust.
        Err(BatchFailure {
            invalid: (0..items.len())
                .map(|i| (i, crate::VerifyError::Rejected))
                .collect(),
        })
    }
}

/// Audits `export` against `g`, verifying proofs with `verifier`; reports the cleared periods
/// within `periods` (all when `None`).
pub fn audit(
    g: &Genesis,
    export: &Export,
    verifier: &OrderVerifier,
    periods: Option<(u64, u64)>,
    progress: &dyn Progress,
) -> Result<AuditReport, AuditError> {
    // 1. Provenance, order, hashes, links.
    if export.format != EXPORT_FORMAT {
        return Err(AuditError::Format(format!("format {:?}", export.format)));
    }
    if export.chain_id != g.chain_id {
        return Err(AuditError::OtherGenesis(format!(
            "chain {:?}, genesis says {:?}",
            export.chain_id, g.chain_id
        )));
    }
    if export.genesis_hash != g.hash() {
        return Err(AuditError::OtherGenesis(format!(
            "genesis hash {}, the genesis file hashes to {}",
            export.genesis_hash,
            g.hash()
        )));
    }
    let ledger = Ledger::new(g).map_err(|e| AuditError::OtherGenesis(e.to_string()))?;
    match export.blocks.first() {
        Some(b) if b.block.height != 1 => return Err(AuditError::NotFromGenesis(b.block.height)),
        None if export.from != 1 => return Err(AuditError::NotFromGenesis(export.from)),
        _ => {}
    }
    let mut prev = Hash32::default();
    for (position, b) in export.blocks.iter().enumerate() {
        let expected = position as u64 + 1;
        if b.block.height != expected {
            return Err(AuditError::OutOfOrder {
                position,
                expected,
                got: b.block.height,
            });
        }
        let computed = b.block.hash();
        if computed != b.hash {
            return Err(AuditError::BlockHash {
                height: expected,
                stated: b.hash,
                computed,
            });
        }
        if b.block.prev_hash != prev {
            return Err(AuditError::Parent {
                height: expected,
                stated: b.block.prev_hash,
                expected: prev,
            });
        }
        prev = computed;
    }

    // 2. Certificates, in parallel; the lowest failing height is reported.
    progress.stage("certificates", export.blocks.len() as u64);
    let checked: Vec<Result<u64, AuditError>> = export
        .blocks
        .par_iter()
        .map(|b| {
            let height = b.block.height;
            let fail = |error| AuditError::Certificate { height, error };
            let bytes = hex::decode(&b.certificate)
                .map_err(|e| fail(CertError::Malformed(e.to_string())))?;
            let cert = Certificate::decode(&bytes).map_err(|e| fail(CertError::Malformed(e)))?;
            cert.verify(g, height, &b.hash).map_err(fail)?;
            progress.advance(1);
            Ok(cert.signatures.len() as u64)
        })
        .collect();
    let mut signatures = 0;
    for r in checked {
        signatures += r?;
    }

    // 3. Proofs, in batches across blocks.
    let mut items: Vec<Vec<(OrderPublic, OrderProof)>> = Vec::with_capacity(export.blocks.len());
    let mut where_: Vec<(usize, usize)> = Vec::new(); // (block position, tx index)
    for (pos, b) in export.blocks.iter().enumerate() {
        let mut mine = Vec::new();
        for (k, tx) in b.block.txs.iter().enumerate() {
            if let Some(Ok(item)) = tx
                .body
                .order_proof_item(|m| m.to_public_key_unchecked().ok_or(()))
            {
                mine.push(item);
                where_.push((pos, k));
            }
        }
        items.push(mine);
    }
    let flat: Vec<&(OrderPublic, OrderProof)> = items.iter().flatten().collect();
    progress.stage("proofs", flat.len() as u64);
    let failures: Vec<(usize, String)> = flat
        .par_chunks(PROOF_BATCH)
        .enumerate()
        .flat_map_iter(|(c, chunk)| {
            let owned: Vec<(OrderPublic, OrderProof)> = chunk.iter().map(|x| **x).collect();
            let r = verifier.verify_batch_deterministic(&owned);
            progress.advance(chunk.len() as u64);
            r.err()
                .map(|f| f.invalid)
                .unwrap_or_default()
                .into_iter()
                .map(move |(i, e)| (c * PROOF_BATCH + i, e.to_string()))
        })
        .collect();
    if let Some((i, why)) = failures.into_iter().min_by_key(|(i, _)| *i) {
        let (pos, index) = where_[i];
        let b = &export.blocks[pos];
        let tx = &b.block.txs[index];
        let (meter, period, side, quantity_wh) = match &tx.body {
            TxBody::Order {
                meter,
                period,
                side,
                quantity_wh,
                ..
            } => (*meter, *period, *side, *quantity_wh),
            _ => (MeterKey([0; 64]), 0, Side::Sell, 0),
        };
        return Err(AuditError::Proof {
            height: b.block.height,
            index,
            id: tx.id(),
            meter: Box::new(meter),
            period,
            side,
            quantity_wh,
            why,
        });
    }

    // 4. Replay.
    progress.stage("replay", export.blocks.len() as u64);
    let mut state = MemoryState::default();
    let genesis = ledger.genesis_update(&state).map_err(AuditError::State)?;
    state.commit(genesis);
    let mut order_meters: BTreeMap<TxId, MeterKey> = BTreeMap::new();
    let mut transactions = 0u64;
    for (b, proofs) in export.blocks.iter().zip(&items) {
        let height = b.block.height;
        let applied = ledger
            .apply_block(&state, &b.block, &Verified(proofs))
            .map_err(|error| AuditError::Replay { height, error })?;
        state.commit(applied.update);
        for tx in &b.block.txs {
            if let TxBody::Order { meter, .. } = &tx.body {
                order_meters.insert(tx.id(), *meter);
            }
        }
        transactions += b.block.txs.len() as u64;
        progress.advance(1);
    }

    // Figures.
    let (lo, hi) = periods.unwrap_or((0, u64::MAX));
    let mut out = Vec::new();
    let results = state.period_results(lo, hi).map_err(AuditError::State)?;
    for r in &results {
        let mut f = PeriodFigures {
            period: r.period,
            cleared_at: r.cleared_at,
            clearing_price: r.clearing_price,
            traded_wh: r.volume_wh,
            trades: r.trades.len() as u64,
            one_order_per_meter: true,
            ..PeriodFigures::default()
        };
        let mut per_meter: BTreeMap<MeterKey, u64> = BTreeMap::new();
        for o in &r.orders {
            let q = u64::from(o.filled_wh) + u64::from(o.unmatched_wh);
            match o.side {
                Side::Sell => {
                    f.sell_orders += 1;
                    f.offered_wh += q;
                    f.unmatched_sell_wh += u64::from(o.unmatched_wh);
                }
                Side::Buy => {
                    f.buy_orders += 1;
                    f.bid_wh += q;
                    f.unmatched_buy_wh += u64::from(o.unmatched_wh);
                }
            }
            if let Some(m) = order_meters.get(&o.id) {
                *per_meter.entry(*m).or_default() += 1;
            }
        }
        f.meters = per_meter.len() as u64;
        f.one_order_per_meter = per_meter.values().all(|n| *n <= 1);
        for t in &r.trades {
            f.money_millis += t.energy_value;
            f.grid_fees_millis += t.grid_fee;
            f.market_fees_millis += t.market_fee_buyer + t.market_fee_seller;
            f.price_range = Some(match f.price_range {
                None => (t.price, t.price),
                Some((a, z)) => (a.min(t.price), z.max(t.price)),
            });
        }
        out.push(f);
    }
    let mut totals = PeriodFigures {
        one_order_per_meter: out.iter().all(|f| f.one_order_per_meter),
        ..PeriodFigures::default()
    };
    let mut all_meters: BTreeSet<&MeterKey> = BTreeSet::new();
    for f in &out {
        totals.sell_orders += f.sell_orders;
        totals.buy_orders += f.buy_orders;
        totals.offered_wh += f.offered_wh;
        totals.bid_wh += f.bid_wh;
        totals.traded_wh += f.traded_wh;
        totals.trades += f.trades;
        totals.money_millis += f.money_millis;
        totals.grid_fees_millis += f.grid_fees_millis;
        totals.market_fees_millis += f.market_fees_millis;
        totals.unmatched_sell_wh += f.unmatched_sell_wh;
        totals.unmatched_buy_wh += f.unmatched_buy_wh;
        if let Some((a, z)) = f.price_range {
            totals.price_range = Some(match totals.price_range {
                None => (a, z),
                Some((x, y)) => (x.min(a), y.max(z)),
            });
        }
    }
    for r in &results {
        all_meters.extend(r.orders.iter().filter_map(|o| order_meters.get(&o.id)));
    }
    totals.meters = all_meters.len() as u64;
    let open_periods = state.open_periods().map_err(AuditError::State)?;
    Ok(AuditReport {
        chain_id: g.chain_id.clone(),
        genesis_hash: g.hash(),
        blocks: export.blocks.len() as u64,
        transactions,
        proofs: flat.len() as u64,
        signatures,
        state_root: state.root(),
        periods: out,
        totals,
        open_periods,
        insecure_dev_keys: g.insecure_dev_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FeeSchedule, Mechanism, Validator};
    use ed25519_dalek::{Signer, SigningKey};

    fn keys() -> Vec<SigningKey> {
        (1..=4u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect()
    }

    fn genesis(powers: [u64; 4]) -> Genesis {
        Genesis {
            chain_id: "cert".into(),
            genesis_time: 0,
            validators: keys()
                .iter()
                .zip(powers)
                .enumerate()
                .map(|(i, (k, power))| Validator {
                    name: format!("v{i}"),
                    key: WalletKey(k.verifying_key().to_bytes()),
                    power,
                })
                .collect(),
            registrar: WalletKey([9; 32]),
            period_secs: 60,
            gate_delay_secs: 60,
            mechanism: Mechanism::Uniform,
            fees: FeeSchedule {
                grid_fee_per_kwh: 1,
                market_fee_per_kwh: 1,
                market_fee_buyer_share_bps: 5_000,
            },
            price_floor: 1,
            price_cap: 2,
            vk_id: Hash32([0; 32]),
            insecure_dev_keys: true,
        }
    }

    fn signed_by(g: &Genesis, who: &[usize]) -> Certificate {
        let mut c = Certificate {
            height: 7,
            round: 2,
            block_hash: Hash32([5; 32]),
            signatures: vec![],
        };
        let ks = keys();
        c.signatures = who
            .iter()
            .map(|i| {
                let me = WalletKey(ks[*i].verifying_key().to_bytes());
                let sig = ks[*i].sign(&c.signing_bytes(&g.chain_id, &me));
                (me, Signature64(sig.to_bytes()))
            })
            .collect();
        c
    }

    #[test]
    fn encoding_round_trips_exactly() {
        let g = genesis([1; 4]);
        let c = signed_by(&g, &[0, 2, 3]);
        let b = c.encode();
        assert_eq!(b.len(), 52 + 3 * 96);
        assert_eq!(Certificate::decode(&b).unwrap(), c);
        assert!(Certificate::decode(&b[..b.len() - 1]).is_err());
        let mut longer = b.clone();
        longer.push(0);
        assert!(Certificate::decode(&longer).is_err());
        assert!(Certificate::decode(&b[..40]).is_err());
    }

    #[test]
    fn more_than_two_thirds_of_the_power_must_sign() {
        let g = genesis([1; 4]);
        let h = Hash32([5; 32]);
        assert!(signed_by(&g, &[0, 1, 2]).verify(&g, 7, &h).is_ok());
        assert_eq!(
            signed_by(&g, &[0, 1]).verify(&g, 7, &h),
            Err(CertError::NotEnoughPower { power: 2, total: 4 })
        );
        // Weighted: one validator with 3 of 6 plus one more is 4/6 = 2/3 exactly: not enough.
        let w = genesis([3, 1, 1, 1]);
        assert!(matches!(
            signed_by(&w, &[0, 1]).verify(&w, 7, &h),
            Err(CertError::NotEnoughPower { power: 4, total: 6 })
        ));
        assert!(signed_by(&w, &[0, 1, 2]).verify(&w, 7, &h).is_ok());
        // Duplicates do not add power.
        let mut dup = signed_by(&g, &[0, 1]);
        dup.signatures.push(dup.signatures[0]);
        assert_eq!(
            dup.verify(&g, 7, &h),
            Err(CertError::Duplicate("v0".into()))
        );
        // Wrong height, other block, outsider, other chain.
        assert_eq!(
            signed_by(&g, &[0, 1, 2]).verify(&g, 8, &h),
            Err(CertError::Height(7))
        );
        assert!(matches!(
            signed_by(&g, &[0, 1, 2]).verify(&g, 7, &Hash32([6; 32])),
            Err(CertError::OtherBlock(_))
        ));
        let mut outsider = signed_by(&g, &[0, 1, 2]);
        outsider.signatures[2].0 = WalletKey([8; 32]);
        assert!(matches!(
            outsider.verify(&g, 7, &h),
            Err(CertError::NotAValidator(_))
        ));
        let mut other_chain = g.clone();
        other_chain.chain_id = "other".into();
        let c = signed_by(&other_chain, &[0, 1, 2]);
        assert!(matches!(
            c.verify(&g, 7, &h),
            Err(CertError::BadSignature(_))
        ));
    }
}
