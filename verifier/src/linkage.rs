//! Linkage analysis of the public record (docs/spec/audit.md, "Linkage"): can anyone group a
//! household's orders, trades, notes or spends across periods from what the ledger publishes?
//!
//! The analysis reads only public data: the committed transactions and the period results
//! (trades and per-order outcomes, as the API and a replayed export give them). Every value
//! of at least 32 bytes (keys, hashes, nullifiers, commitments, owner tags, signatures, proofs,
//! memos; long values also as each aligned 32-byte chunk) is an *identifier*; each is recorded
//! with the field it appears in and the period it belongs to (an order's or cancel's own
//! period, a trade's period, else the period of the block's time). Then:
//!
//! - an identifier in two different periods links them, unless every household shares it:
//!   tree roots (`registry_root`, `anchor`: whoever synced at that height proves against the
//!   same root) and market constants (anything in the genesis: registrar and validator keys,
//!   key ids);
//! - an order, cancel, trade or outcome naming an identity the ledger knows (an enrolled
//!   meter's key or nullifier-key commitment, a wallet key) names its household;
//! - an unlinkable order's fields must not include a meter, wallet, owner, leaf, position or
//!   index field (other than its one-time payout owner tag);
//! - a wallet order (`order`) names its meter and wallet by design: each one counts against
//!   the record.
//!
//! Small numbers (period, side, quantity, price, amounts, times) are not identifiers: every
//! household draws them from the same small grid (quantities rounded to the household tools'
//! unit, prices within the market's range). The report lists how many distinct quantities and
//! limit prices the unlinkable orders used, so a reader can see that grid.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::ledger::PeriodResult;
use crate::types::{Block, Genesis, TxBody};

/// Fields whose values every household shares: the note tree's and the registry's roots.
const SHARED_FIELDS: [&str; 2] = ["registry_root", "anchor"];

/// Field-name fragments an unlinkable order must not carry (its payout's one-time owner tag
/// aside): they would name or locate a household.
const NAMING_FIELDS: [&str; 6] = ["meter", "wallet", "owner", "leaf", "position", "index"];

/// One identifier that appears in more than one period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Linked {
    /// The value (hex).
    pub value: String,
    /// The fields it appears in (`kind.field.sub`).
    pub fields: BTreeSet<String>,
    /// The periods it appears in.
    pub periods: BTreeSet<u64>,
}

/// An order, cancel, trade or outcome that names a household's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Naming {
    /// Where (`kind.field.sub`), and the period.
    pub field: String,
    /// The period.
    pub period: u64,
    /// What it names (`enrolled meter key`, `nullifier-key commitment`, `wallet key`).
    pub names: String,
}

/// What the analysis looked at and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkageReport {
    /// Blocks read.
    pub blocks: u64,
    /// Transactions read.
    pub transactions: u64,
    /// Unlinkable orders among them.
    pub unlinkable_orders: u64,
    /// Wallet orders among them (each names its meter and wallet).
    pub wallet_orders: u64,
    /// Period results read, and their trades.
    pub period_results: u64,
    /// Trades read.
    pub trades: u64,
    /// Distinct periods the values belong to.
    pub periods: u64,
    /// Distinct identifiers, and per field how many (`kind.field.sub` -> count).
    pub identifiers: u64,
    /// Identifiers per field.
    pub fields: BTreeMap<String, u64>,
    /// Identifiers in shared fields (tree roots) seen in more than one period: allowed.
    pub shared_roots: u64,
    /// Market constants (from the genesis) seen in more than one period: allowed.
    pub shared_constants: u64,
    /// Identities the ledger knows (enrolled meter keys, nullifier-key commitments, wallet
    /// keys) looked for in orders, cancels, trades and outcomes.
    pub identities: u64,
    /// The fields unlinkable orders carry.
    pub order_fields: BTreeSet<String>,
    /// Distinct quantities (Wh) and limit prices the unlinkable orders used.
    pub order_quantities: BTreeSet<u32>,
    /// Distinct limit prices.
    pub order_prices: BTreeSet<u64>,
    /// Identifiers that link periods.
    pub linked: Vec<Linked>,
    /// Orders, cancels, trades or outcomes naming a household.
    pub naming: Vec<Naming>,
    /// Unlinkable-order fields that would name or locate a household.
    pub naming_fields: Vec<String>,
}

impl LinkageReport {
    /// Whether nothing links a household's activity across periods or names it.
    pub fn is_unlinkable(&self) -> bool {
        self.linked.is_empty()
            && self.naming.is_empty()
            && self.naming_fields.is_empty()
            && self.wallet_orders == 0
    }

    /// The report as text: what was looked for, then what was found.
    pub fn render(&self) -> String {
        let mut out = format!(
            "linkage analysis of {} blocks, {} transactions ({} unlinkable orders, {} wallet \
             orders), {} period results with {} trades, over {} periods\n",
            self.blocks,
            self.transactions,
            self.unlinkable_orders,
            self.wallet_orders,
            self.period_results,
            self.trades,
            self.periods
        );
        out.push_str(&format!(
            "looked for: each of {} identifiers (values of 32 bytes or more, and each 32-byte \
             chunk of longer ones) in more than one period; allowed: tree roots ({} seen in \
             several periods) and genesis constants ({})\n",
            self.identifiers, self.shared_roots, self.shared_constants
        ));
        for (field, n) in &self.fields {
            out.push_str(&format!("  {field}: {n}\n"));
        }
        out.push_str(&format!(
            "looked for: {} known identities (enrolled meter keys, nullifier-key commitments, \
             wallet keys) in orders, cancels, trades and outcomes\n",
            self.identities
        ));
        out.push_str(&format!(
            "unlinkable orders carry: {}\n",
            self.order_fields
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.push_str(&format!(
            "small values every household shares: {} distinct quantities, {} distinct limit \
             prices\n",
            self.order_quantities.len(),
            self.order_prices.len()
        ));
        if self.is_unlinkable() {
            out.push_str("found: nothing links two periods or names a household\n");
            return out;
        }
        if self.wallet_orders > 0 {
            out.push_str(&format!(
                "found: {} wallet orders (each names its meter and wallet)\n",
                self.wallet_orders
            ));
        }
        for l in &self.linked {
            out.push_str(&format!(
                "found: {} in {} links periods {:?}\n",
                l.value,
                l.fields.iter().cloned().collect::<Vec<_>>().join(", "),
                l.periods
            ));
        }
        for n in &self.naming {
            out.push_str(&format!(
                "found: {} in period {} names an {}\n",
                n.field, n.period, n.names
            ));
        }
        for f in &self.naming_fields {
            out.push_str(&format!("found: unlinkable orders carry the field {f}\n"));
        }
        out
    }
}

/// Why the analysis could not run.
#[derive(Debug, thiserror::Error)]
pub enum LinkageError {
    /// A value could not be rendered as JSON (never for ledger types).
    #[error("encoding a ledger value: {0}")]
    Json(#[from] serde_json::Error),
}

/// Every identifier of `v` with its field path.
fn identifiers(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) if s.len() >= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let s = s.to_ascii_lowercase();
            if s.len() > 64 {
                for (k, chunk) in s.as_bytes().chunks(64).enumerate() {
                    if chunk.len() == 64 {
                        let chunk = String::from_utf8_lossy(chunk).into_owned();
                        out.push((chunk, format!("{path}[{k}]")));
                    }
                }
            }
            out.push((s, path.to_owned()));
        }
        Value::Array(items) => {
            for item in items {
                identifiers(item, path, out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                identifiers(item, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// The field paths of an object (leaves only).
fn field_paths(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, item) in map {
                field_paths(item, &format!("{path}.{k}"), out);
            }
        }
        _ => {
            out.insert(path.to_owned());
        }
    }
}

fn kind_name(body: &TxBody) -> &'static str {
    match body {
        TxBody::EnrollMeter { .. } => "enroll_meter",
        TxBody::RevokeMeter { .. } => "revoke_meter",
        TxBody::Deposit { .. } => "deposit",
        TxBody::Order { .. } => "order",
        TxBody::CancelOrder { .. } => "cancel_order",
        TxBody::Withdraw { .. } => "withdraw",
        TxBody::MintNote { .. } => "mint_note",
        TxBody::Spend { .. } => "spend",
        TxBody::EnrollHousehold { .. } => "enroll_household",
        TxBody::UnlinkableOrder { .. } => "unlinkable_order",
        TxBody::CancelUnlinkable { .. } => "cancel_unlinkable",
    }
}

/// Analyses the public record of market `g`: its committed `blocks` and the `results` of its
/// cleared periods.
pub fn analyse<'a>(
    g: &Genesis,
    blocks: impl IntoIterator<Item = &'a Block>,
    results: impl IntoIterator<Item = &'a PeriodResult>,
) -> Result<LinkageReport, LinkageError> {
    let mut report = LinkageReport::default();
    let mut constants = Vec::new();
    identifiers(&serde_json::to_value(g)?, "genesis", &mut constants);
    let constants: BTreeSet<String> = constants.into_iter().map(|(v, _)| v).collect();

    // Identities the ledger knows, and the identifiers of what must not name them.
    let mut identities: BTreeMap<String, &'static str> = BTreeMap::new();
    // (value, field, period) of every identifier; `anonymous` marks the items that must not
    // name an identity.
    let mut seen: Vec<(String, String, u64, bool)> = Vec::new();
    for block in blocks {
        report.blocks += 1;
        let block_period = block.time.saturating_sub(g.genesis_time) / g.period_secs.max(1);
        for tx in &block.txs {
            report.transactions += 1;
            let kind = kind_name(&tx.body);
            let (period, anonymous) = match &tx.body {
                TxBody::UnlinkableOrder {
                    period,
                    quantity_wh,
                    limit_price,
                    ..
                } => {
                    report.unlinkable_orders += 1;
                    report.order_quantities.insert(*quantity_wh);
                    report.order_prices.insert(*limit_price);
                    let mut fields = BTreeSet::new();
                    field_paths(&serde_json::to_value(tx)?, kind, &mut fields);
                    report.order_fields.extend(fields);
                    (*period, true)
                }
                TxBody::CancelUnlinkable { period, .. } => (*period, true),
                TxBody::Order { period, .. } => {
                    report.wallet_orders += 1;
                    (*period, false)
                }
                _ => (block_period, false),
            };
            match &tx.body {
                TxBody::EnrollHousehold { meter, nk_commit } => {
                    identities.insert(meter.to_hex(), "enrolled meter key");
                    identities.insert(nk_commit.to_string(), "nullifier-key commitment");
                }
                TxBody::EnrollMeter { meter, owner } => {
                    identities.insert(meter.to_hex(), "enrolled meter key");
                    identities.insert(owner.to_hex(), "wallet key");
                }
                // Signers of kinds that a household's own account signs.
                TxBody::Order { .. } | TxBody::CancelOrder { .. } | TxBody::Withdraw { .. } => {
                    identities.insert(tx.signer.to_hex(), "wallet key");
                }
                _ => {}
            }
            let mut ids = Vec::new();
            identifiers(&serde_json::to_value(tx)?, kind, &mut ids);
            ids.push((tx.id().to_hex(), format!("{kind}.id")));
            seen.extend(ids.into_iter().map(|(v, f)| (v, f, period, anonymous)));
        }
    }
    for r in results {
        report.period_results += 1;
        report.trades += r.trades.len() as u64;
        let mut ids = Vec::new();
        identifiers(&serde_json::to_value(&r.trades)?, "trade", &mut ids);
        identifiers(&serde_json::to_value(&r.orders)?, "outcome", &mut ids);
        seen.extend(ids.into_iter().map(|(v, f)| (v, f, r.period, true)));
    }
    report.identities = identities.len() as u64;

    let mut by_value: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<u64>)> = BTreeMap::new();
    let mut periods = BTreeSet::new();
    for (value, field, period, anonymous) in &seen {
        periods.insert(*period);
        if *anonymous {
            if let Some(names) = identities.get(value) {
                report.naming.push(Naming {
                    field: field.clone(),
                    period: *period,
                    names: (*names).to_owned(),
                });
            }
        }
        let e = by_value.entry(value).or_default();
        e.0.insert(field);
        e.1.insert(*period);
    }
    report.periods = periods.len() as u64;
    report.identifiers = by_value.len() as u64;
    for (value, (fields, periods)) in by_value {
        for f in &fields {
            *report.fields.entry(strip_chunk(f).to_owned()).or_default() += 1;
        }
        if periods.len() < 2 {
            continue;
        }
        let shared = fields.iter().all(|f| {
            let leaf = strip_chunk(f).rsplit('.').next().unwrap_or("");
            SHARED_FIELDS.contains(&leaf)
        });
        if shared {
            report.shared_roots += 1;
        } else if constants.contains(value) {
            report.shared_constants += 1;
        } else {
            report.linked.push(Linked {
                value: value.to_owned(),
                fields: fields.into_iter().map(str::to_owned).collect(),
                periods,
            });
        }
    }
    report.naming_fields = report
        .order_fields
        .iter()
        .filter(|f| {
            let rest = f.split_once('.').map_or("", |(_, r)| r);
            *f != "unlinkable_order.body.payout.owner"
                && NAMING_FIELDS.iter().any(|n| rest.contains(n))
        })
        .cloned()
        .collect();
    Ok(report)
}

/// `path` without a trailing `[k]` chunk index.
fn strip_chunk(path: &str) -> &str {
    path.split_once('[').map_or(path, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::{Groth16Proof, PROOF_BYTES};
    use crate::types::{FieldBytes, Hash32, MeterKey, NoteTarget, Side, Transaction, TxBody};
    use ed25519_dalek::SigningKey;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn genesis() -> Genesis {
        serde_json::from_value(serde_json::json!({
            "chain_id": "linkage", "genesis_time": 1000, "validators": [],
            "registrar": "11".repeat(32), "period_secs": 60, "gate_delay_secs": 60,
            "mechanism": "uniform",
            "fees": {"grid_fee_per_kwh": 4, "market_fee_per_kwh": 1, "market_fee_buyer_share_bps": 5000},
            "price_floor": 8, "price_cap": 30, "vk_id": "22".repeat(32)
        }))
        .unwrap()
    }

    fn field(rng: &mut ChaCha20Rng) -> FieldBytes {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b[..31]);
        FieldBytes(b)
    }

    /// An unlinkable order of `period` with fresh random values throughout.
    fn order(period: u64, root: FieldBytes, rng: &mut ChaCha20Rng) -> TxBody {
        let mut proof = [0u8; PROOF_BYTES];
        rng.fill_bytes(&mut proof);
        let mut cancel = [0u8; 32];
        rng.fill_bytes(&mut cancel);
        TxBody::UnlinkableOrder {
            registry_root: root,
            order_nf: field(rng),
            period,
            side: Side::Sell,
            quantity_wh: 300,
            limit_price: 12,
            payout: NoteTarget {
                owner: field(rng),
                rho: field(rng),
            },
            cancel_commit: Hash32(cancel),
            escrow: None,
            proof: Groth16Proof(proof),
        }
    }

    fn block(height: u64, period: u64, bodies: Vec<TxBody>, rng: &mut ChaCha20Rng) -> Block {
        let g = genesis();
        let mut key = [0u8; 32];
        let txs = bodies
            .into_iter()
            .map(|b| {
                rng.fill_bytes(&mut key);
                Transaction::sign(&g.chain_id, b, 10_000, &SigningKey::from_bytes(&key))
            })
            .collect();
        Block {
            height,
            prev_hash: Hash32([0; 32]),
            time: g.genesis_time + (period + 1) * g.period_secs + 1,
            proposer: crate::types::WalletKey([3; 32]),
            txs,
            state_root: Hash32([0; 32]),
        }
    }

    #[test]
    fn fresh_orders_in_two_periods_do_not_link_and_a_shared_root_is_allowed() {
        let rng = &mut ChaCha20Rng::seed_from_u64(1);
        let root = field(rng);
        let blocks = [
            block(1, 1, vec![order(1, root, rng), order(1, root, rng)], rng),
            block(2, 2, vec![order(2, root, rng)], rng),
        ];
        let r = analyse(&genesis(), &blocks, []).unwrap();
        assert!(r.is_unlinkable(), "{}", r.render());
        assert_eq!((r.unlinkable_orders, r.periods, r.shared_roots), (3, 2, 1));
        assert!(r.fields.contains_key("unlinkable_order.body.payout.owner"));
        assert!(r.render().contains("found: nothing links"));
    }

    #[test]
    fn a_payout_owner_tag_reused_in_another_period_links_them() {
        let rng = &mut ChaCha20Rng::seed_from_u64(2);
        let root = field(rng);
        let first = order(1, root, rng);
        let TxBody::UnlinkableOrder { payout, .. } = &first else {
            unreachable!()
        };
        let reused = payout.owner;
        let mut second = order(2, root, rng);
        if let TxBody::UnlinkableOrder { payout, .. } = &mut second {
            payout.owner = reused;
        }
        let blocks = [
            block(1, 1, vec![first], rng),
            block(2, 2, vec![second], rng),
        ];
        let r = analyse(&genesis(), &blocks, []).unwrap();
        assert!(!r.is_unlinkable());
        assert_eq!(r.linked.len(), 1, "{}", r.render());
        assert_eq!(r.linked[0].value, reused.to_hex());
        assert_eq!(r.linked[0].periods, BTreeSet::from([1, 2]));
        assert!(r.render().contains("links periods"));
    }

    #[test]
    fn an_order_carrying_an_enrolled_households_identity_names_it() {
        let rng = &mut ChaCha20Rng::seed_from_u64(3);
        let nk_commit = field(rng);
        let enrol = TxBody::EnrollHousehold {
            meter: MeterKey([7; 64]),
            nk_commit,
        };
        let mut o = order(1, field(rng), rng);
        if let TxBody::UnlinkableOrder { payout, .. } = &mut o {
            payout.rho = nk_commit;
        }
        let blocks = [block(1, 1, vec![enrol, o], rng)];
        let r = analyse(&genesis(), &blocks, []).unwrap();
        assert_eq!(r.naming.len(), 1, "{}", r.render());
        assert_eq!(r.naming[0].field, "unlinkable_order.body.payout.rho");
        assert_eq!(r.naming[0].names, "nullifier-key commitment");
        assert_eq!(r.identities, 2);
    }

    #[test]
    fn wallet_orders_count_against_the_record() {
        let rng = &mut ChaCha20Rng::seed_from_u64(4);
        let wallet_order = TxBody::Order {
            meter: MeterKey([7; 64]),
            period: 1,
            side: Side::Buy,
            quantity_wh: 100,
            limit_price: 20,
            proof: Groth16Proof([5; PROOF_BYTES]),
        };
        let blocks = [block(1, 1, vec![wallet_order], rng)];
        let r = analyse(&genesis(), &blocks, []).unwrap();
        assert_eq!(r.wallet_orders, 1);
        assert!(!r.is_unlinkable());
    }
}
