//! Unlinkable orders at the ledger (docs/spec/ledger.md, "Unlinkable orders"), with real
//! proofs under the development keys: a sell and a buy whose escrow comes from the buyer's
//! notes clear against each other, the seller's proceeds and the buyer's unused escrow come
//! back as notes, the money identity holds; every rule refuses with its own error and changes
//! nothing; a proof for another market, lifted onto other terms, or against a root from
//! before a revocation is refused; the market's rules (clearing under every mechanism, fees,
//! replays, expiry, signatures, limits) treat unlinkable orders exactly as wallet orders.

use crate::common;

use std::sync::OnceLock;

use ark_bn254::Fr;
use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::joinsplit::Spend;
use veilwatt_circuits::merkle::MemoryTree;
use veilwatt_circuits::note::{self, Note, SpendingKey};
use veilwatt_circuits::registry::{self as reg, MemoryRegistry};
use veilwatt_circuits::statement::PeriodStatement;
use veilwatt_params::{dev, MarketCircuit};
use veilwatt_prover::notes::{NoteBook, NotesError};
use veilwatt_prover::spend::SpendProver;
use veilwatt_prover::unlinkable::{EscrowRequest, UnlinkableOrderProver, UnlinkableOrderRequest};
use veilwatt_verifier::audit::{audit, AuditError, Quiet};
use veilwatt_verifier::clearing::buy_escrow;
use veilwatt_verifier::ledger::{BlockError, Ledger, LedgerRead, MarketVerifier, TxError};
use veilwatt_verifier::pool::Pool;
use veilwatt_verifier::registry;
use veilwatt_verifier::state::Overlay;
use veilwatt_verifier::types::*;
use veilwatt_verifier::{JoinSplitVerifier, UnlinkableOrderVerifier};

const FEE: u64 = 10;

/// The terms of an order a test may change: quantity, price, payout, cancel commitment.
type Terms = (u32, u64, NoteTarget, Hash32);

fn anonymous_genesis(mechanism: Mechanism) -> Genesis {
    let mut g = genesis(mechanism);
    g.shielded = Some(ShieldedParams {
        vk_id: Hash32(dev::pinned_ids_of(MarketCircuit::JoinSplit).vk_id.0),
        root_history: 16,
        min_fee: FEE,
    });
    g.anonymous = Some(AnonymousParams {
        vk_id: Hash32(dev::pinned_ids_of(MarketCircuit::OrderV2).vk_id.0),
        registry_history: 8,
    });
    g.validate().expect("valid genesis");
    g
}

fn verifiers() -> &'static MarketVerifier {
    static V: OnceLock<MarketVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let js = dev::keys_of(MarketCircuit::JoinSplit).expect("join-split keys");
        let o2 = dev::keys_of(MarketCircuit::OrderV2).expect("order v2 keys");
        MarketVerifier {
            order: verifier().clone(),
            joinsplit: Some(JoinSplitVerifier::new(&js.vk, js.vk_id).unwrap()),
            unlinkable: Some(UnlinkableOrderVerifier::new(&o2.vk, o2.vk_id).unwrap()),
        }
    })
}

fn provers() -> &'static (UnlinkableOrderProver, SpendProver) {
    static P: OnceLock<(UnlinkableOrderProver, SpendProver)> = OnceLock::new();
    P.get_or_init(|| {
        let js = dev::keys_of(MarketCircuit::JoinSplit).unwrap();
        let o2 = dev::keys_of(MarketCircuit::OrderV2).unwrap();
        (
            UnlinkableOrderProver::new(o2.pk.clone(), o2.vk_id).unwrap(),
            SpendProver::new(js.pk.clone(), js.vk_id).unwrap(),
        )
    })
}

/// A household of the anonymous market: its meter `i`, its note key, what it knows.
struct Household {
    meter: u8,
    key: SpendingKey,
    cancel_key: Hash32,
    next_tag: u64,
}

impl Household {
    fn new(meter: u8, rng: &mut ChaCha20Rng) -> Self {
        Self {
            meter,
            key: SpendingKey::generate(rng),
            cancel_key: Hash32([meter; 32]),
            next_tag: 0,
        }
    }

    fn nk(&self) -> Fr {
        self.key.viewing_key().nk
    }

    fn enrolment(&self, g: &Genesis) -> Transaction {
        sign(
            g,
            TxBody::EnrollHousehold {
                meter: meter_key(self.meter),
                nk_commit: FieldBytes::from_field(reg::nk_commitment(self.nk())),
            },
            &registrar(),
        )
    }

    /// A fresh one-time tag and its diversifier.
    fn tag(&mut self) -> (Fr, Fr) {
        let vk = self.key.viewing_key();
        let d = vk.diversifier(self.next_tag);
        self.next_tag += 1;
        (d, vk.owner_tag(d))
    }
}

/// The chain under test with a wallet's mirror of the note tree and the registry.
struct Chain {
    g: Genesis,
    state: St,
    notes: MemoryTree,
    time: u64,
    rng: ChaCha20Rng,
    /// The blocks applied so far.
    blocks: Vec<Block>,
}

impl Chain {
    fn new() -> Self {
        Self::with(anonymous_genesis(Mechanism::Uniform))
    }

    fn with(g: Genesis) -> Self {
        let state = St::genesis(&g);
        Self {
            g,
            state,
            notes: MemoryTree::new(),
            time: in_gate(0) - 40,
            rng: ChaCha20Rng::seed_from_u64(19),
            blocks: Vec::new(),
        }
    }

    /// Applies a block of `txs` at `time`.
    fn apply_at(&mut self, time: u64, txs: Vec<Transaction>) -> Result<(), BlockError> {
        self.time = time;
        let before = Pool::load(&self.state.0).unwrap().frontier().size();
        let b = block(&self.g, &self.state, time, txs, verifiers());
        self.state = self.state.apply_block(&self.g, &b, verifiers())?;
        self.blocks.push(b);
        // The note tree only grows (tests extend their mirror of it explicitly).
        let after = Pool::load(&self.state.0).unwrap().frontier().size();
        assert!(after >= before);
        Ok(())
    }

    fn apply(&mut self, txs: Vec<Transaction>) -> Result<(), BlockError> {
        let t = self.time + 1;
        self.apply_at(t, txs)
    }

    /// The registry as the household's wallet rebuilds it from the public leaves.
    fn registry(&self) -> MemoryRegistry {
        let mut r = MemoryRegistry::new();
        for (_, leaf) in registry::leaves(&self.state.0, 0, usize::MAX).unwrap() {
            let leaf = leaf.to_field().unwrap();
            if leaf == Fr::from(0u64) {
                let p = r.enrol(Fr::from(1u64)).unwrap();
                r.revoke(u64::from(p)).unwrap();
            } else {
                r.enrol(leaf).unwrap();
            }
        }
        r
    }

    /// Mints `value` to a fresh tag of `h` and returns the spend that opens it.
    fn mint(&mut self, h: &mut Household, value: u64) -> Spend {
        let (d, owner) = h.tag();
        let n = Note::new(value, owner, &mut self.rng);
        let tx = sign(
            &self.g,
            TxBody::MintNote {
                value,
                owner: FieldBytes::from_field(owner),
                rho: FieldBytes::from_field(n.rho),
                // Every payment is credited once: a fresh reference each time.
                reference: rand::RngCore::next_u64(&mut self.rng),
            },
            &registrar(),
        );
        self.apply(vec![tx]).unwrap();
        let position = self.notes.append(n.commitment()).unwrap();
        Spend {
            key: h.key.clone(),
            diversifier: d,
            value,
            rho: n.rho,
            path: self.notes.path(position).unwrap(),
        }
    }

    /// A proven unlinkable order of `h` for period `p`, its statement signed for `market`,
    /// against the current registry; a buy escrows from `funds`.
    #[allow(clippy::too_many_arguments)]
    fn order(
        &mut self,
        h: &mut Household,
        p: u64,
        side: Side,
        q: u32,
        price: u64,
        funds: Option<&Spend>,
        market: Fr,
    ) -> Result<(Transaction, NoteTarget), veilwatt_prover::ProveError> {
        let sk = meter_secret(h.meter);
        let statement = PeriodStatement {
            meter: sk.public_key(),
            period: p,
            import_wh: if side == Side::Sell { 500 } else { 3_000 },
            export_wh: if side == Side::Sell { 3_000 } else { 500 },
            profile_digest: Fr::from(u64::from(h.meter) + 77),
        };
        let registry = self.registry();
        let position = self
            .state
            .0
            .enrolment(&meter_key(h.meter))
            .unwrap()
            .unwrap()
            .position;
        let (_, owner) = h.tag();
        let payout = NoteTarget {
            owner: FieldBytes::from_field(owner),
            rho: FieldBytes::from_field(Fr::from(1_000 + h.next_tag)),
        };
        let escrow = funds.map(|f| {
            let amount = buy_escrow(q, price, &self.g.fees);
            let (_, change_tag) = h.tag();
            let change = Note::new(f.value - amount - FEE, change_tag, &mut self.rng);
            let dummy = Note::new(0, Fr::from(5u64), &mut self.rng);
            EscrowRequest {
                anchor: self.notes.root(),
                inputs: [f.clone(), Spend::dummy(&h.key, &mut self.rng)],
                outputs: [(change, vec![1]), (dummy, vec![2])],
                amount,
                fee: FEE,
            }
        });
        let request = UnlinkableOrderRequest {
            market,
            nk: h.nk(),
            path: registry.path(u64::from(position)).unwrap(),
            registry_root: registry.root(),
            statement: statement.sign_for_market(&sk, market),
            side,
            quantity_wh: q,
            limit_price: price,
            payout,
            cancel_commit: cancel_commitment(&h.cancel_key),
            escrow,
        };
        let one_time = key(100 + h.meter);
        let (orders, spends) = provers();
        let tx = orders.prove(
            &self.g.chain_id,
            EXPIRY,
            &one_time,
            request,
            Some(spends),
            &mut self.rng,
        )?;
        Ok((tx, payout))
    }
}

fn tx_error(e: BlockError) -> TxError {
    match e {
        BlockError::Tx { error, .. } => error,
        e => panic!("not a transaction error: {e}"),
    }
}

/// Applies `tx` alone at `time` and returns its error, checking it changed nothing.
fn reject(g: &Genesis, state: &St, time: u64, tx: &Transaction) -> TxError {
    let mut s = Overlay::new(&state.0);
    let err = Ledger::new(g)
        .unwrap()
        .apply_tx(&mut s, tx, time)
        .expect_err("must be rejected");
    assert!(
        s.changes().is_empty(),
        "a rejected transaction changes nothing"
    );
    err
}

/// Pool and ledger money: every milli minted is in notes, held in escrow, paid as fees or
/// withdrawn.
fn assert_money_identity(c: &Chain) {
    let pool = Pool::load(&c.state.0).unwrap();
    let meta = c.state.0.meta().unwrap();
    assert_eq!(
        pool.balance + pool.escrowed + pool.fees + meta.fees.grid + meta.fees.market + meta.fees.tx,
        meta.total_deposits - meta.total_withdrawals,
    );
}

fn resigned(g: &Genesis, tx: &Transaction, body: TxBody) -> Transaction {
    Transaction::sign(&g.chain_id, body, tx.expires_at, &key(250))
}

#[test]
fn a_sell_and_an_escrowed_buy_clear_into_notes() {
    let mut c = Chain::new();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (mut seller, mut buyer) = (Household::new(1, &mut rng), Household::new(2, &mut rng));
    let g = c.g.clone();
    c.apply(vec![seller.enrolment(&g), buyer.enrolment(&g)])
        .unwrap();
    let funds = c.mint(&mut buyer, 100_000);
    let market = g.market_id();

    let (sell, sell_to) = c
        .order(&mut seller, 0, Side::Sell, 1_000, 10, None, market)
        .unwrap();
    let (buy, buy_to) = c
        .order(&mut buyer, 0, Side::Buy, 800, 20, Some(&funds), market)
        .unwrap();
    // Neither order names a meter or a wallet: the signer is a one-time key.
    for tx in [&sell, &buy] {
        let json = serde_json::to_string(tx).unwrap();
        for i in 1..=2u8 {
            assert!(!json.contains(&meter_key(i).to_hex()));
            assert!(!json.contains(&wallet(&owner(i)).to_hex()));
        }
    }
    c.apply_at(in_gate(0), vec![sell.clone(), buy.clone()])
        .unwrap();
    let escrow = buy_escrow(800, 20, &g.fees);
    assert_eq!(Pool::load(&c.state.0).unwrap().escrowed, escrow);
    assert_money_identity(&c);
    let TxBody::UnlinkableOrder { order_nf, .. } = &buy.body else {
        unreachable!()
    };
    assert!(c.state.0.order_nullifier_used(0, order_nf).unwrap());

    // The gate closes: the period clears.
    let size = Pool::load(&c.state.0).unwrap().frontier().size();
    c.apply_at(after_gate(0), vec![]).unwrap();
    let result = c.state.0.period_result(0).unwrap().unwrap();
    assert_eq!(result.volume_wh, 800);
    assert!(result.orders.iter().all(|o| o.owner.is_none()));
    let t = &result.trades[0];
    let refund = escrow - t.buyer_pays();
    // Two notes: the seller's proceeds and the buyer's refund, in order-id order, each to
    // the tag its order named.
    let pool = Pool::load(&c.state.0).unwrap();
    assert_eq!(pool.frontier().size(), size + 2);
    assert_eq!(pool.escrowed, 0);
    let proceeds = note::commitment(
        Fr::from(t.seller_receives()),
        sell_to.owner.to_field().unwrap(),
        sell_to.rho.to_field().unwrap(),
    );
    let refund_cm = note::commitment(
        Fr::from(refund),
        buy_to.owner.to_field().unwrap(),
        buy_to.rho.to_field().unwrap(),
    );
    let mut mirror = c.notes.clone();
    let TxBody::UnlinkableOrder {
        escrow: Some(e), ..
    } = &buy.body
    else {
        unreachable!()
    };
    for o in &e.outputs {
        mirror.append(o.cm.to_field().unwrap()).unwrap();
    }
    let (first, second) = if sell.id() < buy.id() {
        (proceeds, refund_cm)
    } else {
        (refund_cm, proceeds)
    };
    mirror.append(first).unwrap();
    mirror.append(second).unwrap();
    assert_eq!(pool.root(), FieldBytes::from_field(mirror.root()));
    assert_money_identity(&c);
    // Past the gate, the period's nullifiers are forgotten.
    assert!(!c.state.0.order_nullifier_used(0, order_nf).unwrap());
}

#[test]
fn proofs_are_bound_to_the_market_the_terms_and_a_live_enrolment() {
    let mut c = Chain::new();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let (mut a, mut b) = (Household::new(1, &mut rng), Household::new(2, &mut rng));
    let g = c.g.clone();
    c.apply(vec![a.enrolment(&g), b.enrolment(&g)]).unwrap();
    let funds = c.mint(&mut b, 100_000);
    c.apply_at(in_gate(0) - 1, vec![]).unwrap();

    // Signed and proven for another market: refused.
    let (other, _) = c
        .order(&mut a, 0, Side::Sell, 1_000, 10, None, Fr::from(42u64))
        .unwrap();
    let e = c.apply_at(in_gate(0), vec![other]).unwrap_err();
    assert!(matches!(tx_error(e), TxError::InvalidProof(_)));

    // Lifted onto other terms (price, payout, cancel commitment, quantity): refused.
    let (sell, _) = c
        .order(&mut a, 0, Side::Sell, 1_000, 10, None, g.market_id())
        .unwrap();
    let TxBody::UnlinkableOrder {
        registry_root,
        order_nf,
        period,
        side,
        quantity_wh,
        limit_price,
        payout,
        cancel_commit,
        escrow,
        proof,
    } = sell.body.clone()
    else {
        unreachable!()
    };
    let lifted = |f: &dyn Fn(&mut Terms)| {
        let mut t = (quantity_wh, limit_price, payout, cancel_commit);
        f(&mut t);
        TxBody::UnlinkableOrder {
            registry_root,
            order_nf,
            period,
            side,
            quantity_wh: t.0,
            limit_price: t.1,
            payout: t.2,
            cancel_commit: t.3,
            escrow: escrow.clone(),
            proof,
        }
    };
    let variants: [&dyn Fn(&mut Terms); 4] = [
        &|t| t.0 -= 1,
        &|t| t.1 += 1,
        &|t| t.2.owner = FieldBytes::from_field(Fr::from(9u64)),
        &|t| t.3 = Hash32([9; 32]),
    ];
    for f in variants {
        let tx = resigned(&g, &sell, lifted(f));
        let e = c.apply_at(in_gate(0), vec![tx]).unwrap_err();
        assert!(matches!(tx_error(e), TxError::InvalidProof(_)));
    }

    // A buy whose escrow's change is redirected: the escrow's binding no longer holds.
    let (buy, _) = c
        .order(&mut b, 0, Side::Buy, 500, 20, Some(&funds), g.market_id())
        .unwrap();
    let mut moved = buy.body.clone();
    if let TxBody::UnlinkableOrder {
        escrow: Some(e), ..
    } = &mut moved
    {
        e.outputs[0].cm = FieldBytes::from_field(Fr::from(7u64));
    }
    assert_ne!(moved, buy.body);
    let e = c
        .apply_at(in_gate(0), vec![resigned(&g, &buy, moved)])
        .unwrap_err();
    assert!(matches!(tx_error(e), TxError::InvalidProof(_)));

    // The honest ones go through; a second order of the meter for the period does not.
    c.apply_at(in_gate(0), vec![sell.clone(), buy.clone()])
        .unwrap();
    let (again, _) = c
        .order(&mut a, 0, Side::Sell, 900, 12, None, g.market_id())
        .unwrap();
    assert_eq!(
        reject(&g, &c.state, in_gate(0), &again),
        TxError::OrderNullifierUsed(order_nf)
    );

    // Revoking meter 1 invalidates the root its period-1 proof was made against, and no
    // proof of it exists against the new root.
    c.apply_at(in_gate(0) + 1, vec![]).unwrap();
    let (late, _) = c
        .order(&mut a, 1, Side::Sell, 1_000, 10, None, g.market_id())
        .unwrap();
    let revoke = sign(
        &g,
        TxBody::RevokeMeter {
            meter: meter_key(1),
        },
        &registrar(),
    );
    c.apply_at(in_gate(1), vec![revoke]).unwrap();
    let TxBody::UnlinkableOrder { registry_root, .. } = &late.body else {
        unreachable!()
    };
    assert_eq!(
        reject(&g, &c.state, in_gate(1), &late),
        TxError::UnknownRegistryRoot(*registry_root)
    );
    assert!(matches!(
        c.order(&mut a, 1, Side::Sell, 1_000, 10, None, g.market_id()),
        Err(veilwatt_prover::ProveError::Relation(_))
    ));
}

#[test]
fn the_rules_of_unlinkable_orders_and_cancels() {
    let mut c = Chain::new();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut b = Household::new(2, &mut rng);
    let g = c.g.clone();
    c.apply(vec![b.enrolment(&g)]).unwrap();
    let funds = c.mint(&mut b, 100_000);
    c.apply_at(in_gate(0) - 1, vec![]).unwrap();
    let (buy, payout) = c
        .order(&mut b, 0, Side::Buy, 500, 20, Some(&funds), g.market_id())
        .unwrap();
    let TxBody::UnlinkableOrder {
        order_nf,
        escrow: Some(_),
        ..
    } = buy.body.clone()
    else {
        unreachable!()
    };
    let with = |f: &dyn Fn(&mut TxBody)| {
        let mut body = buy.body.clone();
        f(&mut body);
        resigned(&g, &buy, body)
    };
    let set = |f: fn(&mut TxBody)| with(&f);
    let t = in_gate(0);
    // An order naming its meter and wallet has no place on this market (refused before any
    // other check: whether its meter is enrolled tells nothing).
    assert_eq!(
        reject(&g, &c.state, t, &order(&g, 2, 0, Side::Sell, 1_000, 10)),
        TxError::LinkableOrder
    );
    // Escrow: exactly the maximum cost for a buy, none for a sell.
    let tx = with(&|b| {
        if let TxBody::UnlinkableOrder {
            escrow: Some(e), ..
        } = b
        {
            e.amount -= 1;
        }
    });
    let need = buy_escrow(500, 20, &g.fees);
    assert_eq!(
        reject(&g, &c.state, t, &tx),
        TxError::EscrowMismatch {
            need,
            got: need - 1
        }
    );
    let tx = set(|b| {
        if let TxBody::UnlinkableOrder { escrow, .. } = b {
            *escrow = None;
        }
    });
    assert_eq!(
        reject(&g, &c.state, t, &tx),
        TxError::EscrowMismatch { need, got: 0 }
    );
    let tx = set(|b| {
        if let TxBody::UnlinkableOrder { side, .. } = b {
            *side = Side::Sell;
        }
    });
    assert_eq!(
        reject(&g, &c.state, t, &tx),
        TxError::EscrowMismatch { need: 0, got: need }
    );
    // Registry root, gate, terms, field elements.
    let tx = set(|b| {
        if let TxBody::UnlinkableOrder { registry_root, .. } = b {
            *registry_root = FieldBytes::from_field(Fr::from(3u64));
        }
    });
    assert!(matches!(
        reject(&g, &c.state, t, &tx),
        TxError::UnknownRegistryRoot(_)
    ));
    assert_eq!(
        reject(&g, &c.state, in_gate(0) - 31, &buy),
        TxError::PeriodNotEnded
    );
    assert_eq!(
        reject(&g, &c.state, after_gate(0), &buy),
        TxError::GateClosed
    );
    let tx = set(|b| {
        if let TxBody::UnlinkableOrder { limit_price, .. } = b {
            *limit_price = 31;
        }
    });
    assert!(matches!(
        reject(&g, &c.state, t, &tx),
        TxError::PriceOutOfRange { .. }
    ));
    let bad = FieldBytes([0xff; 32]);
    let tx = with(&|b| {
        if let TxBody::UnlinkableOrder { order_nf, .. } = b {
            *order_nf = bad;
        }
    });
    assert_eq!(reject(&g, &c.state, t, &tx), TxError::NotAField(bad));
    // The escrow's fee and anchor follow the spend rules.
    let tx = with(&|b| {
        if let TxBody::UnlinkableOrder {
            escrow: Some(e), ..
        } = b
        {
            e.fee = FEE - 1;
        }
    });
    assert!(matches!(
        reject(&g, &c.state, t, &tx),
        TxError::FeeTooLow { .. }
    ));

    // Applied: the escrow is held. Cancel needs the key, refunds the escrow as a note, and
    // leaves the nullifier spent.
    c.apply_at(t, vec![buy.clone()]).unwrap();
    let cancel_by = |k: Hash32, signer: u8| {
        Transaction::sign(
            &g.chain_id,
            TxBody::CancelUnlinkable {
                period: 0,
                order_nf,
                cancel_key: k,
            },
            EXPIRY,
            &key(signer),
        )
    };
    let cancel = |k: Hash32| cancel_by(k, 251);
    assert_eq!(
        reject(&g, &c.state, t, &cancel(Hash32([0; 32]))),
        TxError::WrongCancelKey
    );
    assert_eq!(
        reject(&g, &c.state, after_gate(0), &cancel(b.cancel_key)),
        TxError::GateClosed
    );
    let size = Pool::load(&c.state.0).unwrap().frontier().size();
    c.apply_at(t + 1, vec![cancel(b.cancel_key)]).unwrap();
    let pool = Pool::load(&c.state.0).unwrap();
    assert_eq!(pool.escrowed, 0);
    assert_eq!(pool.frontier().size(), size + 1);
    let mut mirror = c.notes.clone();
    // The mirror holds the mint; the escrow's two outputs and the refund follow.
    let TxBody::UnlinkableOrder {
        escrow: Some(e), ..
    } = &buy.body
    else {
        unreachable!()
    };
    mirror.append(e.outputs[0].cm.to_field().unwrap()).unwrap();
    mirror.append(e.outputs[1].cm.to_field().unwrap()).unwrap();
    mirror
        .append(note::commitment(
            Fr::from(need),
            payout.owner.to_field().unwrap(),
            payout.rho.to_field().unwrap(),
        ))
        .unwrap();
    assert_eq!(pool.root(), FieldBytes::from_field(mirror.root()));
    assert_money_identity(&c);
    assert_eq!(
        reject(&g, &c.state, t + 1, &cancel_by(b.cancel_key, 252)),
        TxError::UnknownOrder
    );
    let again = resigned(&g, &buy, buy.body.clone());
    assert_eq!(
        reject(&g, &c.state, t + 1, &again),
        TxError::OrderNullifierUsed(order_nf)
    );

    // A market without a registry refuses both kinds.
    let plain = genesis(Mechanism::Uniform);
    let s = St::genesis(&plain);
    assert_eq!(reject(&plain, &s, t, &buy), TxError::AnonymousDisabled);
    assert_eq!(
        reject(&plain, &s, t, &cancel(b.cancel_key)),
        TxError::AnonymousDisabled
    );
}

/// The regulator's audit of an anonymous market: it verifies the unlinkable orders' proofs and
/// their escrows' join-splits, replays the clearing, counts one participant per order
/// nullifier, and follows the money through escrow into notes (supply invariant); a block
/// carrying another order's proof, or another escrow's proof, is named. The households'
/// wallets follow the note tree through the same clearing and find their notes.
#[test]
fn the_audit_and_the_wallets_follow_unlinkable_orders_through_escrow_into_notes() {
    let mut c = Chain::new();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut seller = Household::new(1, &mut rng);
    let mut buyer = Household::new(2, &mut rng);
    let mut quitter = Household::new(3, &mut rng);
    let g = c.g.clone();
    c.apply(vec![
        seller.enrolment(&g),
        buyer.enrolment(&g),
        quitter.enrolment(&g),
    ])
    .unwrap();
    let mut funds = c.mint(&mut buyer, 100_000);
    let other_funds = c.mint(&mut quitter, 50_000);
    // The first note's path as of the current tree (the notes at positions 0 and 1).
    funds.path = c.notes.path(0).unwrap();
    let market = g.market_id();
    let (sell, _) = c
        .order(&mut seller, 0, Side::Sell, 1_000, 10, None, market)
        .unwrap();
    let (buy, _) = c
        .order(&mut buyer, 0, Side::Buy, 800, 20, Some(&funds), market)
        .unwrap();
    let (quit, _) = c
        .order(
            &mut quitter,
            0,
            Side::Buy,
            300,
            15,
            Some(&other_funds),
            market,
        )
        .unwrap();
    c.apply_at(in_gate(0), vec![sell.clone(), buy.clone(), quit.clone()])
        .unwrap();
    let TxBody::UnlinkableOrder { order_nf, .. } = &quit.body else {
        unreachable!()
    };
    let cancel = Transaction::sign(
        &g.chain_id,
        TxBody::CancelUnlinkable {
            period: 0,
            order_nf: *order_nf,
            cancel_key: quitter.cancel_key,
        },
        EXPIRY,
        &key(252),
    );
    c.apply_at(in_gate(0) + 1, vec![cancel]).unwrap();
    c.apply_at(after_gate(0), vec![]).unwrap();
    assert_money_identity(&c);

    let exported = export(&g, &c.blocks);
    let report = audit(&g, &exported, verifiers(), None, &Quiet).expect("the audit passes");
    assert_eq!(report.state_root, c.state.root());
    assert_eq!(report.proofs, 3, "three unlinkable orders' proofs");
    let f = &report.periods[0];
    assert_eq!((f.sell_orders, f.buy_orders, f.traded_wh), (1, 1, 800));
    assert_eq!(
        (f.anonymous_orders, f.meters),
        (2, 2),
        "the cancelled order left the book"
    );
    let sh = report.shielded.as_ref().unwrap();
    let result = c.state.0.period_result(0).unwrap().unwrap();
    let t = &result.trades[0];
    let (escrow, quit_escrow) = (buy_escrow(800, 20, &g.fees), buy_escrow(300, 15, &g.fees));
    assert_eq!(sh.spend_proofs, 2, "the two escrows' join-splits");
    assert_eq!((sh.escrows, sh.escrowed_millis), (2, escrow + quit_escrow));
    assert_eq!(sh.escrow_released_millis, escrow + quit_escrow);
    // Notes paid to orders: the seller's proceeds, the buyer's unused escrow, the quitter's
    // whole escrow.
    assert_eq!(sh.order_notes, 3);
    assert_eq!(
        sh.order_notes_millis,
        t.seller_receives() + (escrow - t.buyer_pays()) + quit_escrow
    );
    assert_eq!(sh.escrow_held_millis, 0);
    assert_eq!(sh.fees_millis, 2 * FEE);
    let pool = Pool::load(&c.state.0).unwrap();
    assert_eq!(sh.balance_millis, pool.balance);
    assert_eq!(sh.notes, pool.frontier().size());

    // The households' wallets follow the note tree through the clearing and the cancel from
    // public data alone (blocks, period results): each finds the notes paid to its orders, and
    // every wallet's tree is the pool's.
    let mut books: Vec<NoteBook> = [&seller, &buyer, &quitter]
        .iter()
        .map(|h| NoteBook::new(h.key.clone()))
        .collect();
    for b in &c.blocks {
        for book in &mut books {
            let due = book.due_periods(&g, b.time);
            if !due.is_empty() {
                // Without the results the wallet cannot follow the tree, and says so.
                let mut lost = book.clone();
                assert!(matches!(
                    lost.scan(&g, b, &[]),
                    Err(NotesError::MissingResult { period: 0, .. })
                ));
            }
            let cleared: Vec<_> = due
                .into_iter()
                .map(|p| c.state.0.period_result(p).unwrap().unwrap())
                .collect();
            book.scan(&g, b, &cleared).unwrap();
        }
    }
    let unspent = |b: &NoteBook| b.unspent().map(|n| n.value).collect::<Vec<_>>();
    for book in &books {
        assert_eq!(FieldBytes::from_field(book.root()), pool.root());
        assert_eq!(book.open_orders().count(), 0);
    }
    // (The escrows' change notes carry test memos no wallet opens.)
    assert_eq!(unspent(&books[0]), [t.seller_receives()]);
    assert_eq!(unspent(&books[1]), [escrow - t.buyer_pays()]);
    assert_eq!(unspent(&books[2]), [quit_escrow]);
    assert!(books[1..].iter().all(|b| b.notes()[0].spent_at.is_some()));

    // Another order's proof on the sell: named as an unlinkable order's proof.
    let orders_height = c.blocks.iter().position(|b| b.txs.contains(&sell)).unwrap();
    let proof_of = |tx: &Transaction| match &tx.body {
        TxBody::UnlinkableOrder { proof, .. } => *proof,
        _ => unreachable!(),
    };
    let tampered = |f: &dyn Fn(&mut TxBody)| {
        let mut blocks = c.blocks.clone();
        let b = &mut blocks[orders_height];
        for tx in &mut b.txs {
            let mut body = tx.body.clone();
            f(&mut body);
            if body != tx.body {
                *tx = resigned(&g, tx, body);
            }
        }
        // Later blocks re-linked, so only the proof is wrong.
        for h in orders_height + 1..blocks.len() {
            blocks[h].prev_hash = blocks[h - 1].hash();
        }
        audit(&g, &export(&g, &blocks), verifiers(), None, &Quiet).unwrap_err()
    };
    let buy_proof = proof_of(&buy);
    let e = tampered(&|b| {
        if let TxBody::UnlinkableOrder {
            side: Side::Sell,
            proof,
            ..
        } = b
        {
            *proof = buy_proof;
        }
    });
    assert!(
        matches!(e, AuditError::UnlinkableProof { height, side: Side::Sell, quantity_wh: 1_000, .. } if height == orders_height as u64 + 1),
        "{e}"
    );
    // The quitter's escrow proof on the buyer's escrow: named as a spend's proof.
    let TxBody::UnlinkableOrder {
        escrow: Some(quit_escrow_proof),
        ..
    } = &quit.body
    else {
        unreachable!()
    };
    let other = quit_escrow_proof.proof;
    let e = tampered(&|b| {
        if let TxBody::UnlinkableOrder {
            quantity_wh: 800,
            escrow: Some(e),
            ..
        } = b
        {
            e.proof = other;
        }
    });
    assert!(
        matches!(e, AuditError::SpendProof { height, .. } if height == orders_height as u64 + 1),
        "{e}"
    );
}

/// The market's rules treat unlinkable orders exactly as wallet orders. The same book (three
/// asks, three bids at distinct prices, so no tie depends on order ids) cleared under each
/// mechanism, once as wallet orders on a plain market and once as unlinkable orders on an
/// anonymous one: the same volume, price, trades (by household), fills, unmatched energy and
/// fees; each seller's proceeds note equals what the wallet seller was credited, each buyer's
/// refund note its escrow less what the wallet buyer was charged. The transaction rules
/// (replay, expiry, signature, zero quantity, price range) refuse unlinkable orders as they
/// refuse wallet orders.
#[test]
fn the_market_rules_treat_unlinkable_orders_as_wallet_orders() {
    // (household, side, Wh, limit)
    let book: [(u8, Side, u32, u64); 6] = [
        (1, Side::Sell, 1_000, 10),
        (3, Side::Sell, 800, 14),
        (5, Side::Sell, 1_200, 18),
        (2, Side::Buy, 1_500, 20),
        (4, Side::Buy, 700, 16),
        (6, Side::Buy, 900, 25),
    ];
    type Cleared = (
        u64,
        Option<u64>,
        Vec<(u8, u8, u32, u64, u64, u64, u64, u64)>,
        Vec<(u8, u32, u32)>,
    );
    // The period result with order ids replaced by households.
    let by_household = |r: &veilwatt_verifier::ledger::PeriodResult,
                        who: &std::collections::BTreeMap<TxId, u8>|
     -> Cleared {
        let mut trades: Vec<_> = r
            .trades
            .iter()
            .map(|t| {
                (
                    who[&t.sell],
                    who[&t.buy],
                    t.quantity_wh,
                    t.price,
                    t.energy_value,
                    t.grid_fee,
                    t.market_fee_buyer,
                    t.market_fee_seller,
                )
            })
            .collect();
        trades.sort_unstable();
        let mut fills: Vec<_> = r
            .orders
            .iter()
            .map(|o| (who[&o.id], o.filled_wh, o.unmatched_wh))
            .collect();
        fills.sort_unstable();
        (r.volume_wh, r.clearing_price, trades, fills)
    };
    for mechanism in [Mechanism::Uniform, Mechanism::PayAsBid, Mechanism::Midpoint] {
        // Wallet orders on a plain market.
        let g = genesis(mechanism);
        let setup = (1..=6)
            .flat_map(|i| [enroll(&g, i), deposit(&g, i, 1_000_000)])
            .collect();
        let s = apply(&g, &St::genesis(&g), T0, setup);
        let orders: Vec<Transaction> = book
            .iter()
            .map(|&(i, side, q, price)| order(&g, i, 0, side, q, price))
            .collect();
        let who: std::collections::BTreeMap<TxId, u8> = orders
            .iter()
            .zip(&book)
            .map(|(o, b)| (o.id(), b.0))
            .collect();
        let s = apply(&g, &s, in_gate(0), orders);
        let s = apply(&g, &s, after_gate(0), vec![]);
        let plain = s.view();
        let wallet_result = by_household(&plain.results[&0], &who);
        // Not a trivial book: the asks up to 18 meet the bids down to 18 (2,400 Wh) in
        // several trades, under every mechanism.
        assert_eq!(wallet_result.0, 2_400, "{mechanism:?}");
        assert!(
            wallet_result.2.len() >= 3,
            "{mechanism:?}: {wallet_result:?}"
        );
        let balance = |i: u8| plain.accounts[&wallet(&owner(i))].balance;

        // The same book as unlinkable orders.
        let mut c = Chain::with(anonymous_genesis(mechanism));
        let g = c.g.clone();
        let mut rng = ChaCha20Rng::seed_from_u64(29);
        let mut homes: Vec<Household> = (1..=6).map(|i| Household::new(i, &mut rng)).collect();
        c.apply(homes.iter().map(|h| h.enrolment(&g)).collect())
            .unwrap();
        let mut orders = Vec::new();
        let mut who = std::collections::BTreeMap::new();
        for &(i, side, q, price) in &book {
            let h = &mut homes[usize::from(i) - 1];
            let funds = (side == Side::Buy).then(|| c.mint(h, 1_000_000));
            let (tx, _) = c
                .order(h, 0, side, q, price, funds.as_ref(), g.market_id())
                .unwrap();
            who.insert(tx.id(), i);
            orders.push(tx);
        }
        let t = in_gate(0);
        // The transaction rules, on an unlinkable order.
        let first = orders[0].clone();
        let mut forged = first.clone();
        forged.signature.0[0] ^= 1;
        assert_eq!(reject(&g, &c.state, t, &forged), TxError::BadSignature);
        let late = Transaction::sign(&g.chain_id, first.body.clone(), t - 1, &key(240));
        assert!(matches!(
            reject(&g, &c.state, t, &late),
            TxError::Expired { .. }
        ));
        let zero = {
            let mut body = first.body.clone();
            if let TxBody::UnlinkableOrder { quantity_wh, .. } = &mut body {
                *quantity_wh = 0;
            }
            resigned(&g, &first, body)
        };
        assert_eq!(reject(&g, &c.state, t, &zero), TxError::ZeroAmount);
        for price in [g.price_floor - 1, g.price_cap + 1] {
            let mut body = first.body.clone();
            if let TxBody::UnlinkableOrder { limit_price, .. } = &mut body {
                *limit_price = price;
            }
            assert!(matches!(
                reject(&g, &c.state, t, &resigned(&g, &first, body)),
                TxError::PriceOutOfRange { .. }
            ));
        }
        c.apply_at(t, orders.clone()).unwrap();
        assert_eq!(
            reject(&g, &c.state, t + 1, &first),
            TxError::Replay(first.id())
        );
        c.apply_at(after_gate(0), vec![]).unwrap();
        let result = c.state.0.period_result(0).unwrap().unwrap();
        assert_eq!(
            by_household(&result, &who),
            wallet_result,
            "{mechanism:?}: unlinkable orders clear as wallet orders"
        );
        assert_eq!(c.state.0.meta().unwrap().fees, plain.fees, "{mechanism:?}");

        // What each household's note gets: a seller what the wallet seller was credited, a
        // buyer its escrow less what the wallet buyer was charged.
        let flows = veilwatt_verifier::clearing::order_flows(&result.trades).unwrap();
        for (tx, &(i, side, q, price)) in orders.iter().zip(&book) {
            let flow = flows.get(&tx.id()).copied().unwrap_or_default();
            let escrow = match side {
                Side::Sell => 0,
                Side::Buy => buy_escrow(q, price, &g.fees),
            };
            let note = veilwatt_verifier::clearing::order_note_value(side, escrow, flow)
                .unwrap()
                .unwrap_or(0);
            let expected = match side {
                Side::Sell => balance(i) - 1_000_000,
                Side::Buy => escrow - (1_000_000 - balance(i)),
            };
            assert_eq!(note, expected, "{mechanism:?}: household {i}'s note");
        }
        assert_money_identity(&c);
    }
}
