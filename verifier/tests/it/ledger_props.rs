//! Property tests of the state machine on random blocks: the keyed state agrees with the
//! reference model (same roots, same contents), money and energy are conserved, the same blocks
//! always give the same state root, and invalid input never panics.

use crate::common;

use common::reference::RefLedger;
use common::*;
use proptest::prelude::*;
use veilwatt_verifier::ledger::{Ledger, LedgerRead};
use veilwatt_verifier::state::Overlay;
use veilwatt_verifier::types::*;

/// A household action a random block may contain.
#[derive(Clone, Debug)]
enum Kind {
    Deposit(u8, u64),
    Withdraw(u8, u64, u64),
    Order(u8, u64, u64),
    /// An order through the second meter of household 1 or 2 (meter 7 or 8), on either side:
    /// refused while the household has an order of the other side open for the period.
    SecondMeter(u8, u64, u64, bool),
    Cancel(u8, usize),
    /// Submit again the k-th transaction applied so far (never applies twice).
    Replay(usize),
}

/// An action and the lifetime its transaction is signed with, seconds after the block's time
/// (the genesis allows [`LIFETIME`]; longer ones are refused).
#[derive(Clone, Debug)]
struct Action(Kind, u64);

/// The props' genesis lifetime and retention: short, so that ids expire and results are
/// archived within a few blocks.
const LIFETIME: u64 = 90;
const RETENTION: u64 = 2;

fn action() -> impl Strategy<Value = Action> {
    let kind = prop_oneof![
        1 => (1u8..=6, 1u64..50_000).prop_map(|(i, a)| Kind::Deposit(i, a)),
        1 => (1u8..=6, 1u64..60_000, any::<u64>()).prop_map(|(i, a, n)| Kind::Withdraw(i, a, n)),
        4 => (1u8..=6, 0u64..3, 8u64..=30).prop_map(|(i, p, price)| Kind::Order(i, p, price)),
        2 => (1u8..=2, 0u64..3, 8u64..=30, any::<bool>())
            .prop_map(|(i, p, price, sell)| Kind::SecondMeter(i, p, price, sell)),
        2 => (1u8..=6, any::<usize>()).prop_map(|(i, k)| Kind::Cancel(i, k)),
        1 => any::<usize>().prop_map(Kind::Replay),
    ];
    (kind, 0u64..LIFETIME + 20).prop_map(|(k, ttl)| Action(k, ttl))
}

/// Household i sells if odd, buys if even; its quantity depends on the period.
fn side(i: u8) -> Side {
    if i % 2 == 1 {
        Side::Sell
    } else {
        Side::Buy
    }
}

fn quantity(i: u8, p: u64) -> u32 {
    200 * u32::from(i) + 100 * p as u32
}

fn to_tx(
    g: &Genesis,
    s: &Overlay<'_>,
    Action(kind, ttl): &Action,
    time: u64,
    applied: &[Transaction],
) -> Option<Transaction> {
    let expires_at = time + ttl;
    // Orders are for the period that ended last (its gate may be open) two times in three,
    // else for the one running now (not ended yet: refused).
    let period = |p: &u64| ((time - T0) / PERIOD).saturating_sub(1) + p / 2;
    let (tx, signer) = match kind {
        Kind::Deposit(i, amt) => (deposit(g, *i, *amt), registrar()),
        Kind::Withdraw(i, amt, n) => (
            sign(
                g,
                TxBody::Withdraw {
                    amount: *amt,
                    nonce: *n,
                },
                &owner(*i),
            ),
            owner(*i),
        ),
        Kind::Order(i, p, price) => {
            let p = period(p);
            (
                order(g, *i, p, side(*i), quantity(*i, p), *price),
                owner(*i),
            )
        }
        Kind::SecondMeter(i, p, price, sell) => {
            let (m, p) = (i + 6, period(p));
            let side = if *sell { Side::Sell } else { Side::Buy };
            let q = quantity(m, p);
            let body = TxBody::Order {
                meter: meter_key(m),
                period: p,
                side,
                quantity_wh: q,
                limit_price: *price,
                proof: proof(m, p, side, q),
            };
            (sign(g, body, &owner(*i)), owner(*i))
        }
        Kind::Cancel(i, k) => {
            let mine: Vec<TxId> = s
                .orders_of_owner(&wallet(&owner(*i)))
                .unwrap()
                .iter()
                .map(|o| o.id)
                .collect();
            let id = *mine.get(k % mine.len().max(1))?;
            (
                sign(g, TxBody::CancelOrder { order: id }, &owner(*i)),
                owner(*i),
            )
        }
        Kind::Replay(k) => return applied.get(k % applied.len().max(1)).cloned(),
    };
    Some(resign(g, tx, expires_at, &signer))
}

/// Builds a block like a proposer: begin the block on a scratch state, keep the candidate
/// transactions that apply. A transaction applied before never applies again.
fn propose(
    g: &Genesis,
    s: &St,
    time: u64,
    actions: &[Action],
    applied: &mut Vec<Transaction>,
) -> Result<Block, TestCaseError> {
    let ledger = Ledger::new(g).expect("valid genesis");
    let mut scratch = Overlay::new(&s.0);
    let height = s.0.meta().unwrap().height + 1;
    ledger
        .begin_block(&mut scratch, height, time, &mut Vec::new())
        .unwrap();
    let mut txs = Vec::new();
    for a in actions {
        if let Some(tx) = to_tx(g, &scratch, a, time, applied) {
            let replay = applied.contains(&tx) || txs.contains(&tx);
            let result = ledger.apply_tx(&mut scratch, &tx, time);
            prop_assert!(!(replay && result.is_ok()), "a transaction applied twice");
            if result.is_ok() {
                txs.push(tx);
            }
        }
    }
    drop(scratch);
    applied.extend(txs.iter().cloned());
    Ok(block(g, s, time, txs, verifier()))
}

fn check_invariants(s: &RefState) -> Result<(), TestCaseError> {
    // Money: balances + escrow + fees change only by deposits and withdrawals.
    let held: u128 = s
        .accounts
        .values()
        .map(|a| u128::from(a.balance) + u128::from(a.escrow))
        .sum();
    let fees = u128::from(s.fees.grid) + u128::from(s.fees.market) + u128::from(s.fees.tx);
    prop_assert_eq!(
        held + fees,
        u128::from(s.total_deposits) - u128::from(s.total_withdrawals)
    );
    // Escrow is exactly what open buy orders hold.
    let escrow: u128 = s.accounts.values().map(|a| u128::from(a.escrow)).sum();
    let open: u128 = s.open_orders.values().map(|o| u128::from(o.escrow)).sum();
    prop_assert_eq!(escrow, open);
    // Energy per cleared period: sold = bought; nobody trades more than ordered.
    for r in s.results.values().chain(s.archived.values()) {
        let sold: u64 = r
            .orders
            .iter()
            .filter(|o| o.side == Side::Sell)
            .map(|o| u64::from(o.filled_wh))
            .sum();
        let bought: u64 = r
            .orders
            .iter()
            .filter(|o| o.side == Side::Buy)
            .map(|o| u64::from(o.filled_wh))
            .sum();
        let traded: u64 = r.trades.iter().map(|t| u64::from(t.quantity_wh)).sum();
        prop_assert_eq!(sold, r.volume_wh);
        prop_assert_eq!(bought, r.volume_wh);
        prop_assert_eq!(traded, r.volume_wh);
    }
    Ok(())
}

fn mechanism() -> impl Strategy<Value = Mechanism> {
    prop_oneof![
        Just(Mechanism::Uniform),
        Just(Mechanism::PayAsBid),
        Just(Mechanism::Midpoint)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_blocks_match_the_reference_and_conserve_money_and_energy(
        mech in mechanism(),
        blocks in prop::collection::vec((0u64..3, 0u64..GATE + 10, prop::collection::vec(action(), 0..10)), 1..8),
        tx_fee in prop_oneof![Just(0u64), 1u64..2_000],
        max_cancels in 0u32..3,
    ) {
        let mut g = genesis(mech);
        g.max_tx_lifetime_secs = LIFETIME;
        g.result_retention_periods = RETENTION;
        g.spam = SpamParams { tx_fee, max_cancels_per_period: max_cancels };
        let reference = RefLedger::new(&g).expect("valid genesis");
        let genesis_state = St::genesis(&g);
        prop_assert_eq!(genesis_state.root(), RefState::default().root());
        // Households 1 and 2 own a second meter each (7 and 8).
        let second = |m: u8, i: u8| sign(&g, TxBody::EnrollMeter { meter: meter_key(m), owner: wallet(&owner(i)) }, &registrar());
        let enrolments = (1..=6)
            .map(|i| enroll(&g, i))
            .chain([second(7, 1), second(8, 2)])
            // Some money to start with, so that buy orders mostly apply.
            .chain((1..=6).map(|i| deposit(&g, i, 100_000 + u64::from(i))))
            .map(|tx| resign(&g, tx, T0, &registrar()))
            .collect();
        let first = block(&g, &genesis_state, T0, enrolments, verifier());
        let start = genesis_state.apply_block(&g, &first, verifier()).expect("enrolment");
        let mut r = reference.apply_block(&RefState::default(), &first, verifier()).expect("reference").0;
        prop_assert_eq!(&start.view(), &r);
        let mut s = start.clone();
        let mut time = in_gate(0);
        let mut chain = Vec::new();
        let mut applied = Vec::new();
        // Each block moves on by 0, 1 or 2 periods and lands at an offset into the last
        // period's gate (mostly inside it, so that orders and cancellations apply). Far in the
        // future every period clears and no escrow remains; block time never goes backwards.
        let mut plan: Vec<(u64, u64, Vec<Action>)> = blocks.clone();
        plan.push((10, 0, Vec::new()));
        let mut period = 0;
        for (advance, offset, actions) in &plan {
            period += advance;
            time = time.max(in_gate(period) - 1 + offset);
            let b = propose(&g, &s, time, actions, &mut applied)?;
            let next = s.apply_block(&g, &b, verifier()).expect("proposed block applies");
            // The reference recomputes its root from scratch over its whole state and checks
            // it against the block's: same roots, and the same contents.
            r = reference.execute(&r, &b, verifier()).expect("the reference agrees").0;
            let view = next.view();
            prop_assert_eq!(&view, &r);
            prop_assert_eq!(r.root(), b.state_root);
            check_invariants(&view)?;
            chain.push(b);
            s = next;
        }
        let end = s.view();
        prop_assert!(end.open_orders.is_empty());
        // Bounded history: only unexpired ids and the retained results are committed.
        prop_assert!(end.applied_txs.iter().all(|(e, _)| *e >= time));
        prop_assert!(end.results.len() as u64 <= RETENTION);
        prop_assert!(end.accounts.values().all(|a| a.escrow == 0));

        // Replaying the same blocks gives the same roots.
        let mut replay = start;
        for b in &chain {
            replay = replay.apply_block(&g, b, verifier()).expect("replay");
            prop_assert_eq!(replay.root(), b.state_root);
        }
        prop_assert_eq!(replay.view(), end);
    }
}

fn tx_body() -> impl Strategy<Value = TxBody> {
    let key32 = any::<[u8; 32]>();
    prop_oneof![
        (any::<[u8; 32]>(), any::<[u8; 32]>(), key32).prop_map(|(x, y, o)| {
            let mut m = [0u8; 64];
            m[..32].copy_from_slice(&x);
            m[32..].copy_from_slice(&y);
            TxBody::EnrollMeter {
                meter: MeterKey(m),
                owner: WalletKey(o),
            }
        }),
        (key32, any::<u64>(), any::<u64>()).prop_map(|(t, a, r)| TxBody::Deposit {
            to: WalletKey(t),
            amount: a,
            reference: r
        }),
        (
            any::<u64>(),
            any::<bool>(),
            any::<u32>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 128)
        )
            .prop_map(|(p, s, q, price, proof)| TxBody::Order {
                meter: meter_key(1),
                period: p,
                side: if s { Side::Sell } else { Side::Buy },
                quantity_wh: q,
                limit_price: price,
                proof: veilwatt_verifier::Groth16Proof(proof.try_into().unwrap()),
            }),
        key32.prop_map(|k| TxBody::CancelOrder { order: TxId(k) }),
        (any::<u64>(), any::<u64>()).prop_map(|(a, n)| TxBody::Withdraw {
            amount: a,
            nonce: n
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encodings_round_trip_and_are_canonical(body in tx_body(), seed in any::<u8>()) {
        let g = genesis(Mechanism::Midpoint);
        let tx = sign(&g, body, &key(seed));
        let bytes = encode(&tx);
        let back: Transaction = decode(&bytes).unwrap();
        prop_assert_eq!(&back, &tx);
        prop_assert_eq!(encode(&back), bytes.clone());
        prop_assert_eq!(back.id(), tx.id());
        let json = serde_json::to_string(&tx).unwrap();
        prop_assert_eq!(serde_json::from_str::<Transaction>(&json).unwrap(), tx.clone());
        // Trailing bytes are not accepted.
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(decode::<Transaction>(&longer).is_err());
        // Genesis and blocks too.
        prop_assert_eq!(decode::<Genesis>(&encode(&g)).unwrap(), g.clone());
        let b = Block { height: 3, prev_hash: Hash32([1; 32]), time: 9, proposer: tx.signer, txs: vec![tx], state_root: Hash32([2; 32]) };
        prop_assert_eq!(decode::<Block>(&encode(&b)).unwrap(), b.clone());
        prop_assert_eq!(serde_json::from_str::<Block>(&serde_json::to_string(&b).unwrap()).unwrap(), b);
    }

    /// Decoders never panic; whatever decodes re-encodes to the same bytes; and applying any
    /// decodable transaction to a state never panics.
    #[test]
    fn decoders_and_rules_survive_garbage(bytes in prop::collection::vec(any::<u8>(), 0..400), flip in any::<(usize, u8)>()) {
        if let Ok(tx) = decode::<Transaction>(&bytes) {
            prop_assert_eq!(encode(&tx), bytes.clone());
            let g = genesis(Mechanism::Uniform);
            let st = St::genesis(&g);
            let mut s = Overlay::new(&st.0);
            let _ = Ledger::new(&g).expect("valid genesis").apply_tx(&mut s, &tx, T0);
        }
        if let Ok(b) = decode::<Block>(&bytes) {
            prop_assert_eq!(encode(&b), bytes.clone());
        }
        let _ = decode::<Genesis>(&bytes);
        let _ = decode::<veilwatt_verifier::ledger::Meta>(&bytes);
        let _ = serde_json::from_slice::<Transaction>(&bytes);
        // Mutations of a valid encoding.
        let g = genesis(Mechanism::Uniform);
        let mut valid = encode(&deposit(&g, 1, 5));
        let i = flip.0 % valid.len();
        valid[i] ^= flip.1;
        if let Ok(tx) = decode::<Transaction>(&valid) {
            prop_assert_eq!(encode(&tx), valid.clone());
            let st = St::genesis(&g);
            let mut s = Overlay::new(&st.0);
            let _ = Ledger::new(&g).expect("valid genesis").apply_tx(&mut s, &tx, T0);
        }
        let _ = MeterKey(std::array::from_fn(|k| bytes.get(k).copied().unwrap_or(0))).to_public_key();
    }
}
