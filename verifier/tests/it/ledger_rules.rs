//! One test per rejection rule, and an end-to-end settlement.

use crate::common;

use common::*;
use veilwatt_verifier::ledger::{BlockError, Ledger, TxError};
use veilwatt_verifier::state::{verify_proof, Overlay};
use veilwatt_verifier::types::*;

/// Genesis state plus enrolled households 1..=4 with deposits, at time `in_gate(0)`.
fn community(g: &Genesis) -> St {
    let txs = (1..=4)
        .flat_map(|i| [enroll(g, i), deposit(g, i, 1_000_000)])
        .collect();
    apply(g, &St::genesis(g), T0, txs)
}

/// Applies `tx` alone at `time` and returns the error.
fn reject(g: &Genesis, state: &St, time: u64, tx: Transaction) -> TxError {
    let mut s = Overlay::new(&state.0);
    let err = Ledger::new(g)
        .expect("valid genesis")
        .apply_tx(&mut s, &tx, time)
        .expect_err("must be rejected");
    assert!(
        s.changes().is_empty(),
        "a rejected transaction changes nothing"
    );
    err
}

#[test]
fn end_to_end_settlement_with_itemised_fees() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    // Household 1 sells 1,000 Wh at >= 10; household 2 buys 1,500 Wh at <= 20.
    let s = apply(
        &g,
        &s,
        in_gate(0),
        vec![
            order(&g, 1, 0, Side::Sell, 1_000, 10),
            order(&g, 2, 0, Side::Buy, 1_500, 20),
        ],
    );
    // Buyer escrow: 1,500 x 20 + 1,500 x 5 + floor(1,500 x 2 x 0.5) = 30,000 + 7,500 + 1,500.
    let buyer = wallet(&owner(2));
    assert_eq!(s.view().accounts[&buyer].escrow, 39_000);
    assert_eq!(s.view().accounts[&buyer].balance, 1_000_000 - 39_000);
    // The first block after the gate clears period 0 at floor((10 + 20) / 2) = 15.
    let s = apply(&g, &s, after_gate(0), vec![]);
    let v = s.view();
    let r = &v.results[&0];
    assert_eq!(
        (r.volume_wh, r.clearing_price, r.trades.len()),
        (1_000, Some(15), 1)
    );
    let t = r.trades[0];
    assert_eq!(
        (
            t.energy_value,
            t.grid_fee,
            t.market_fee_buyer,
            t.market_fee_seller
        ),
        (15_000, 5_000, 1_000, 1_000)
    );
    assert_eq!(
        s.view().accounts[&buyer],
        veilwatt_verifier::ledger::Account {
            balance: 1_000_000 - 21_000,
            escrow: 0
        }
    );
    assert_eq!(
        s.view().accounts[&wallet(&owner(1))].balance,
        1_000_000 + 14_000
    );
    assert_eq!((s.view().fees.grid, s.view().fees.market), (5_000, 2_000));
    let unmatched: Vec<u32> = r.orders.iter().map(|o| o.unmatched_wh).collect();
    assert_eq!(unmatched.iter().sum::<u32>(), 500);
    assert!(s.view().open_orders.is_empty());

    // A household checks its balance against the committed root.
    let root = s.root();
    let key = veilwatt_verifier::state::keys::account(&buyer);
    let proof = s.0.prove(&key).expect("proof");
    let value = verify_proof(&root, &proof)
        .expect("holds")
        .expect("present");
    let account: veilwatt_verifier::ledger::Account = decode(&value).unwrap();
    assert_eq!(account.balance, 1_000_000 - 21_000);
    let mut forged = proof.clone();
    let mut v = value.clone();
    v[0] ^= 1;
    forged.value = Some(hex::encode(v));
    assert!(verify_proof(&root, &forged).is_err());
}

/// The clearing looks for open orders from the first period whose gate was open at the last
/// block's time: an order applied in the last second before its gate closed is still found,
/// by the very next block or after a long silence, and a later period's orders are left open.
#[test]
fn orders_of_the_last_second_before_the_gate_are_cleared() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let last_second = |p: u64| after_gate(p) - 1;
    let s = apply(
        &g,
        &s,
        last_second(0),
        vec![
            order(&g, 1, 0, Side::Sell, 1_000, 10),
            order(&g, 2, 0, Side::Buy, 1_000, 20),
        ],
    );
    let s = apply(&g, &s, after_gate(0), vec![]);
    assert_eq!(s.view().results[&0].volume_wh, 1_000);
    assert!(s.view().open_orders.is_empty());

    // Period 1's orders in its last second, then period 2's; blocks come back only after
    // period 1's gate closed and before period 2's did.
    let s = apply(
        &g,
        &s,
        last_second(1),
        vec![
            order(&g, 3, 1, Side::Sell, 700, 10),
            order(&g, 4, 1, Side::Buy, 700, 20),
        ],
    );
    let s = apply(&g, &s, last_second(1), vec![]);
    let s = apply(
        &g,
        &s,
        in_gate(2),
        vec![order(&g, 1, 2, Side::Sell, 300, 10)],
    );
    assert_eq!(s.view().results[&1].volume_wh, 700);
    assert_eq!(s.view().open_orders.len(), 1);
    assert!(!s.view().results.contains_key(&2));
    let s = apply(&g, &s, after_gate(5), vec![]);
    assert_eq!(s.view().results[&2].volume_wh, 0);
    assert!(s.view().open_orders.is_empty());
}

#[test]
fn replayed_transaction_is_rejected() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let tx = deposit(&g, 1, 1_000_000);
    assert_eq!(
        reject(&g, &s, in_gate(0), tx.clone()),
        TxError::Replay(tx.id())
    );
}

#[test]
fn expired_transactions_are_refused_and_their_ids_forgotten() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let t = in_gate(0);
    let reg = registrar();
    let dep = |amount, expires_at| resign(&g, deposit(&g, 1, amount), expires_at, &reg);
    // Past its expiry.
    assert_eq!(
        reject(&g, &s, t, dep(7, t - 1)),
        TxError::Expired {
            expires_at: t - 1,
            time: t
        }
    );
    // Further ahead than the genesis lifetime.
    let max = t + g.max_tx_lifetime_secs;
    assert_eq!(
        reject(&g, &s, t, dep(7, max + 1)),
        TxError::ExpiryTooFar {
            expires_at: max + 1,
            max
        }
    );
    // Both bounds are inclusive.
    let (last_second, longest) = (dep(8, t), dep(9, max));
    let s = apply(&g, &s, t, vec![last_second.clone(), longest.clone()]);
    let view = s.view();
    assert!(view.applied_txs.contains(&(t, last_second.id())));
    // Until it expires, an applied id is a replay; after, the rules have forgotten it (one
    // key fewer in the state) and it is refused as expired: never applied twice.
    assert_eq!(
        reject(&g, &s, t, last_second.clone()),
        TxError::Replay(last_second.id())
    );
    let s = apply(&g, &s, t + 1, vec![]);
    assert!(!s.view().applied_txs.contains(&(t, last_second.id())));
    assert!(s.view().applied_txs.contains(&(max, longest.id())));
    assert_eq!(
        reject(&g, &s, t + 1, last_second),
        TxError::Expired {
            expires_at: t,
            time: t + 1
        }
    );
    assert_eq!(
        reject(&g, &s, t + 1, longest.clone()),
        TxError::Replay(longest.id())
    );
    // A block that carries an expired transaction is invalid as a whole.
    let stale = dep(10, t);
    let b = block(&g, &s, t + 2, vec![stale.clone()], verifier());
    assert_eq!(
        s.apply_block(&g, &b, verifier()).unwrap_err(),
        BlockError::Tx {
            index: 0,
            id: stale.id(),
            error: TxError::Expired {
                expires_at: t,
                time: t + 2
            }
        }
    );
}

#[test]
fn the_replay_set_holds_only_unexpired_ids() {
    // Many blocks, each with one deposit valid for 90 s: the replay set never holds more than
    // the deposits of the last 90 s, however long the chain.
    let mut g = genesis(Mechanism::Uniform);
    g.max_tx_lifetime_secs = 90;
    let reg = registrar();
    let mut s = St::genesis(&g);
    for k in 0..40u64 {
        let time = T0 + 10 * k;
        let tx = resign(&g, deposit(&g, 1, 1 + k), time + 90, &reg);
        s = apply(&g, &s, time, vec![tx]);
        let live = s.view().applied_txs;
        assert!(live.len() <= 10, "{} ids at block {k}", live.len());
        assert!(live.iter().all(|(e, _)| *e >= time));
    }
}

#[test]
fn results_older_than_the_retention_window_move_to_the_archive() {
    let mut g = genesis(Mechanism::Uniform);
    g.result_retention_periods = 2;
    let mut s = community(&g);
    for p in 0..5u64 {
        s = apply(
            &g,
            &s,
            in_gate(p),
            vec![
                order(&g, 1, p, Side::Sell, 1_000, 10),
                order(&g, 2, p, Side::Buy, 1_000, 20),
            ],
        );
        s = apply(&g, &s, after_gate(p), vec![]);
        let v = s.view();
        // Committed: the last two cleared periods; archived: the ones before.
        let kept: Vec<u64> = v.results.keys().copied().collect();
        let archived: Vec<u64> = v.archived.keys().copied().collect();
        assert_eq!(kept, (p.saturating_sub(1)..=p).collect::<Vec<_>>());
        assert_eq!(archived, (0..p.saturating_sub(1)).collect::<Vec<_>>());
    }
    // Reads see both, in period order, the archived ones unchanged.
    use veilwatt_verifier::ledger::LedgerRead;
    let all = s.0.period_results(0, u64::MAX).unwrap();
    assert_eq!(
        all.iter().map(|r| r.period).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert!(all.iter().all(|r| r.volume_wh == 1_000));
    assert_eq!(s.0.period_result(0).unwrap().unwrap().period, 0);
    assert_eq!(s.0.period_results(1, 3).unwrap().len(), 3);
    // The archive is not part of the root (proofs and roots cover the retained ones only).
    assert_eq!(s.root(), s.view().root());
}

/// The audit keeps no retained result's value (only its key and the tree's hash of it): its
/// replay of a chain whose results move to the archive still computes every block's root and
/// reports every period, as it does when nothing moves.
#[test]
fn the_audit_replays_results_that_move_to_the_archive() {
    use veilwatt_verifier::audit::{audit, Quiet};
    use veilwatt_verifier::ledger::{LedgerRead, MarketVerifier};
    let verifiers = MarketVerifier {
        order: verifier().clone(),
        joinsplit: None,
        unlinkable: None,
    };
    let chain = |retention: u64| {
        let mut g = genesis(Mechanism::Uniform);
        g.result_retention_periods = retention;
        let mut s = St::genesis(&g);
        let mut blocks = Vec::new();
        let mut add = |s: &mut St, time: u64, txs: Vec<Transaction>| {
            let b = block(&g, s, time, txs, verifier());
            *s = s.apply_block(&g, &b, verifier()).expect("valid block");
            blocks.push(b);
        };
        let setup = (1..=4)
            .flat_map(|i| [enroll(&g, i), deposit(&g, i, 1_000_000)])
            .collect();
        add(&mut s, T0, setup);
        for p in 0..4u64 {
            let q = 1_000 + 100 * p as u32;
            let txs = vec![
                order(&g, 1, p, Side::Sell, q, 10),
                order(&g, 2, p, Side::Buy, q, 20),
            ];
            add(&mut s, in_gate(p), txs);
            add(&mut s, after_gate(p), vec![]);
        }
        (g, s, blocks)
    };
    let report = |retention: u64| {
        let (g, s, blocks) = chain(retention);
        let r = audit(&g, &export(&g, &blocks), &verifiers, None, &Quiet).expect("audit passes");
        assert_eq!(r.state_root, s.root());
        (r, s)
    };
    let (moved, s) = report(1);
    assert_eq!(
        s.view().archived.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2],
        "results moved to the archive during the replay"
    );
    assert_eq!(s.0.period_result(3).unwrap().unwrap().volume_wh, 1_300);
    let (kept, _) = report(96);
    assert_eq!(moved.periods.len(), 4);
    let traded: Vec<u64> = moved.periods.iter().map(|f| f.traded_wh).collect();
    assert_eq!(traded, vec![1_000, 1_100, 1_200, 1_300]);
    assert_eq!(moved.periods, kept.periods);
}

#[test]
fn bad_signature_is_rejected() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    // Signed for another chain.
    let tx = Transaction::sign(
        "other-chain",
        TxBody::Withdraw {
            amount: 1,
            nonce: 1,
        },
        EXPIRY,
        &owner(1),
    );
    assert_eq!(reject(&g, &s, in_gate(0), tx), TxError::BadSignature);
    // Signature of another kind's body transplanted.
    let mut tx = sign(
        &g,
        TxBody::Withdraw {
            amount: 1,
            nonce: 1,
        },
        &owner(1),
    );
    tx.body = TxBody::Withdraw {
        amount: 2,
        nonce: 1,
    };
    assert_eq!(reject(&g, &s, in_gate(0), tx), TxError::BadSignature);
}

#[test]
fn registrar_kinds_need_the_registrar() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let tx = sign(
        &g,
        TxBody::Deposit {
            to: wallet(&owner(1)),
            amount: 5,
            reference: 9,
        },
        &owner(1),
    );
    assert_eq!(reject(&g, &s, in_gate(0), tx), TxError::NotRegistrar);
    let tx = sign(
        &g,
        TxBody::EnrollMeter {
            meter: meter_key(9),
            owner: wallet(&owner(9)),
        },
        &owner(9),
    );
    assert_eq!(reject(&g, &s, in_gate(0), tx), TxError::NotRegistrar);
}

#[test]
fn meter_enrolment_rules() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let mut bad = meter_key(9);
    bad.0[40] ^= 1;
    let tx = sign(
        &g,
        TxBody::EnrollMeter {
            meter: bad,
            owner: wallet(&owner(9)),
        },
        &registrar(),
    );
    assert!(matches!(
        reject(&g, &s, in_gate(0), tx),
        TxError::InvalidMeterKey(_)
    ));
    let tx = sign(
        &g,
        TxBody::EnrollMeter {
            meter: meter_key(1),
            owner: wallet(&owner(9)),
        },
        &registrar(),
    );
    assert_eq!(
        reject(&g, &s, in_gate(0), tx),
        TxError::MeterAlreadyEnrolled
    );
    let tx = sign(
        &g,
        TxBody::RevokeMeter {
            meter: meter_key(9),
        },
        &registrar(),
    );
    assert_eq!(reject(&g, &s, in_gate(0), tx), TxError::UnknownMeter);
}

#[test]
fn order_needs_an_enrolled_unrevoked_meter_of_the_signer() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    assert_eq!(
        reject(&g, &s, in_gate(0), order(&g, 9, 0, Side::Sell, 100, 10)),
        TxError::UnknownMeter
    );
    let s2 = apply(
        &g,
        &s,
        in_gate(0),
        vec![sign(
            &g,
            TxBody::RevokeMeter {
                meter: meter_key(1),
            },
            &registrar(),
        )],
    );
    assert_eq!(
        reject(&g, &s2, in_gate(0), order(&g, 1, 0, Side::Sell, 100, 10)),
        TxError::MeterRevoked
    );
    // Household 2 signs an order backed by household 1's meter (with 1's valid proof).
    let body = TxBody::Order {
        meter: meter_key(1),
        period: 0,
        side: Side::Sell,
        quantity_wh: 100,
        limit_price: 10,
        proof: proof(1, 0, Side::Sell, 100),
    };
    assert_eq!(
        reject(&g, &s, in_gate(0), sign(&g, body, &owner(2))),
        TxError::NotMeterOwner
    );
}

#[test]
fn one_order_per_meter_and_period() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let first = order(&g, 1, 0, Side::Sell, 100, 10);
    let s = apply(&g, &s, in_gate(0), vec![first.clone()]);
    let again = order(&g, 1, 0, Side::Sell, 100, 11);
    assert_eq!(
        reject(&g, &s, in_gate(0), again),
        TxError::DuplicateOrder(first.id())
    );
}

#[test]
fn orders_only_between_period_end_and_gate_close() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let tx = order(&g, 1, 5, Side::Sell, 100, 10);
    assert_eq!(
        reject(&g, &s, T0 + 6 * PERIOD - 1, tx.clone()),
        TxError::PeriodNotEnded
    );
    assert_eq!(
        reject(&g, &s, after_gate(5), tx.clone()),
        TxError::GateClosed
    );
    let mut ok = Overlay::new(&s.0);
    Ledger::new(&g)
        .expect("valid genesis")
        .apply_tx(&mut ok, &tx, T0 + 6 * PERIOD)
        .expect("open at period end");
}

#[test]
fn quantity_and_price_limits() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let body = TxBody::Order {
        meter: meter_key(1),
        period: 0,
        side: Side::Sell,
        quantity_wh: 0,
        limit_price: 10,
        proof: proof(1, 0, Side::Sell, 100),
    };
    assert_eq!(
        reject(&g, &s, in_gate(0), sign(&g, body, &owner(1))),
        TxError::ZeroAmount
    );
    let below = order(&g, 1, 0, Side::Sell, 100, 7);
    assert!(matches!(
        reject(&g, &s, in_gate(0), below),
        TxError::PriceOutOfRange { price: 7, .. }
    ));
    let above = order(&g, 2, 0, Side::Buy, 100, 31);
    assert!(matches!(
        reject(&g, &s, in_gate(0), above),
        TxError::PriceOutOfRange { price: 31, .. }
    ));
}

#[test]
fn buyer_must_cover_the_escrow_and_withdrawals_the_balance() {
    let g = genesis(Mechanism::Uniform);
    let s = apply(
        &g,
        &St::genesis(&g),
        T0,
        vec![enroll(&g, 2), deposit(&g, 2, 1_000)],
    );
    let buy = order(&g, 2, 0, Side::Buy, 100, 20); // escrow 2,000 + 500 + 100
    assert_eq!(
        reject(&g, &s, in_gate(0), buy),
        TxError::InsufficientFunds {
            need: 2_600,
            have: 1_000
        }
    );
    let w = sign(
        &g,
        TxBody::Withdraw {
            amount: 1_001,
            nonce: 1,
        },
        &owner(2),
    );
    assert_eq!(
        reject(&g, &s, in_gate(0), w),
        TxError::InsufficientFunds {
            need: 1_001,
            have: 1_000
        }
    );
    let w = sign(
        &g,
        TxBody::Withdraw {
            amount: 0,
            nonce: 2,
        },
        &owner(2),
    );
    assert_eq!(reject(&g, &s, in_gate(0), w), TxError::ZeroAmount);
}

#[test]
fn deposits_cannot_overflow() {
    let g = genesis(Mechanism::Uniform);
    let s = apply(&g, &St::genesis(&g), T0, vec![deposit(&g, 1, u64::MAX - 5)]);
    assert_eq!(reject(&g, &s, T0, deposit(&g, 1, 10)), TxError::Overflow);
}

#[test]
fn proof_must_match_exactly_this_order() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let ledger = Ledger::new(&g).expect("valid genesis");
    // A valid proof for 100 Wh attached to an order for 101 Wh; for another period; another side.
    for (q, p, side) in [
        (101, 0, Side::Sell),
        (100, 1, Side::Sell),
        (100, 0, Side::Buy),
    ] {
        let body = TxBody::Order {
            meter: meter_key(1),
            period: p,
            side,
            quantity_wh: q,
            limit_price: 10,
            proof: proof(1, 0, Side::Sell, 100),
        };
        let tx = sign(&g, body, &owner(1));
        let b = block(&g, &s, in_gate(1), vec![tx], verifier());
        match ledger.apply_block(&s.0, &b, verifier()) {
            Err(BlockError::Tx {
                index: 0,
                error: TxError::InvalidProof(_),
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn cancel_rules() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let buy = order(&g, 2, 0, Side::Buy, 100, 20);
    let s = apply(&g, &s, in_gate(0), vec![buy.clone()]);
    let unknown = sign(
        &g,
        TxBody::CancelOrder {
            order: TxId([7; 32]),
        },
        &owner(2),
    );
    assert_eq!(reject(&g, &s, in_gate(0), unknown), TxError::UnknownOrder);
    let not_mine = sign(&g, TxBody::CancelOrder { order: buy.id() }, &owner(1));
    assert_eq!(reject(&g, &s, in_gate(0), not_mine), TxError::NotOrderOwner);
    let cancel = sign(&g, TxBody::CancelOrder { order: buy.id() }, &owner(2));
    let s2 = apply(&g, &s, in_gate(0), vec![cancel]);
    assert_eq!(
        s2.view().accounts[&wallet(&owner(2))],
        veilwatt_verifier::ledger::Account {
            balance: 1_000_000,
            escrow: 0
        }
    );
    assert!(s2.view().open_orders.is_empty());
}

/// Household 1's second meter (9), enrolled to the same wallet.
fn second_meter(g: &Genesis) -> Transaction {
    sign(
        g,
        TxBody::EnrollMeter {
            meter: meter_key(9),
            owner: wallet(&owner(1)),
        },
        &registrar(),
    )
}

/// An order through meter `m`, signed by household `i`.
fn order_via(g: &Genesis, m: u8, i: u8, p: u64, side: Side, q: u32, price: u64) -> Transaction {
    let body = TxBody::Order {
        meter: meter_key(m),
        period: p,
        side,
        quantity_wh: q,
        limit_price: price,
        proof: proof(m, p, side, q),
    };
    sign(g, body, &owner(i))
}

#[test]
fn a_wallet_cannot_trade_with_itself_through_two_meters() {
    let g = genesis(Mechanism::Uniform);
    let s = apply(&g, &community(&g), T0, vec![second_meter(&g)]);
    let sell = order(&g, 1, 0, Side::Sell, 1_000, 10);
    let s = apply(&g, &s, in_gate(0), vec![sell.clone()]);
    // A buy through the other meter would match the wallet's own sell: refused.
    let buy = order_via(&g, 9, 1, 0, Side::Buy, 1_000, 20);
    assert_eq!(
        reject(&g, &s, in_gate(0), buy.clone()),
        TxError::SelfTrade {
            period: 0,
            open: Side::Sell
        }
    );
    // A second sell is fine (both on one side), and so is a buy for another period.
    let sell2 = order_via(&g, 9, 1, 0, Side::Sell, 500, 12);
    let both = apply(&g, &s, in_gate(0), vec![sell2.clone()]);
    let cancel = |o: &Transaction| sign(&g, TxBody::CancelOrder { order: o.id() }, &owner(1));
    // With one of the two sells cancelled the side still holds; with both, it is free.
    // (The second meter's sell goes first: it holds the slot the buy needs.)
    let one_left = apply(&g, &both, in_gate(0), vec![cancel(&sell2)]);
    assert!(matches!(
        reject(&g, &one_left, in_gate(0), buy.clone()),
        TxError::SelfTrade { .. }
    ));
    let none_left = apply(&g, &one_left, in_gate(0), vec![cancel(&sell)]);
    let bought = apply(&g, &none_left, in_gate(0), vec![buy]);
    // The period clears with the buy alone: no trade with itself, nothing left of the side.
    let s = apply(&g, &bought, after_gate(0), vec![]);
    assert_eq!(s.view().results[&0].volume_wh, 0);
    let next = order_via(&g, 9, 1, 1, Side::Buy, 1_000, 20);
    apply(&g, &s, in_gate(1), vec![next]);
}

#[test]
fn cancellations_per_meter_and_period_are_capped() {
    let mut g = genesis(Mechanism::Uniform);
    g.spam.max_cancels_per_period = 2;
    let mut s = community(&g);
    let cancel = |o: &Transaction| sign(&g, TxBody::CancelOrder { order: o.id() }, &owner(2));
    // Order, cancel, order again: twice. The proof is the same every time (the loop the cap
    // stops costs the spammer nothing else); the price makes each order a new transaction.
    let mut last = None;
    for price in [20, 21, 22] {
        let o = order(&g, 2, 0, Side::Buy, 100, price);
        s = apply(&g, &s, in_gate(0), vec![o.clone()]);
        last = Some(o);
        if price < 22 {
            s = apply(&g, &s, in_gate(0), vec![cancel(last.as_ref().unwrap())]);
        }
    }
    let open = last.unwrap();
    assert_eq!(
        reject(&g, &s, in_gate(0), cancel(&open)),
        TxError::TooManyCancels { max: 2 }
    );
    // The count is per meter and period: the next period starts afresh, and the counts of a
    // closed gate are forgotten.
    let o = order(&g, 2, 1, Side::Buy, 100, 20);
    let s = apply(&g, &s, in_gate(1), vec![o.clone()]);
    let s = apply(&g, &s, in_gate(1), vec![cancel(&o)]);
    let cancels = |s: &St| {
        s.0.entries()
            .filter(|(k, _)| k[0] == veilwatt_verifier::state::keys::CANCELS)
            .count()
    };
    assert_eq!(
        cancels(&s),
        1,
        "period 0's gate has closed: its count is gone"
    );
    let s = apply(&g, &s, after_gate(1), vec![]);
    assert_eq!(cancels(&s), 0);
    // A genesis allowing no cancellation refuses every one.
    let mut g0 = g.clone();
    g0.spam.max_cancels_per_period = 0;
    let s = apply(
        &g0,
        &community(&g0),
        in_gate(0),
        vec![order(&g0, 2, 0, Side::Buy, 100, 20)],
    );
    let o = order(&g0, 2, 0, Side::Buy, 100, 20);
    let c = sign(&g0, TxBody::CancelOrder { order: o.id() }, &owner(2));
    assert_eq!(
        reject(&g0, &s, in_gate(0), c),
        TxError::TooManyCancels { max: 0 }
    );
}

#[test]
fn a_payment_reference_is_credited_once() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let credit = |to: u8, amount: u64, reference: u64| {
        sign(
            &g,
            TxBody::Deposit {
                to: wallet(&owner(to)),
                amount,
                reference,
            },
            &registrar(),
        )
    };
    let s = apply(&g, &s, in_gate(0), vec![credit(1, 500, 77)]);
    // The same payment again, to another wallet, for another amount, or signed again with
    // another expiry (a new transaction id): refused.
    for tx in [
        credit(2, 500, 77),
        credit(1, 501, 77),
        resign(&g, credit(1, 500, 77), EXPIRY - 1, &registrar()),
    ] {
        assert_eq!(
            reject(&g, &s, in_gate(0), tx),
            TxError::DuplicateReference(77)
        );
    }
    apply(&g, &s, in_gate(0), vec![credit(1, 500, 78)]);
}

#[test]
fn every_wallet_transaction_pays_the_genesis_fee() {
    let mut g = genesis(Mechanism::Uniform);
    g.spam.tx_fee = 300;
    let s = apply(&g, &St::genesis(&g), T0, vec![enroll(&g, 1), enroll(&g, 2)]);
    // A seller without money cannot pay the fee of its order.
    let sell = order(&g, 1, 0, Side::Sell, 1_000, 10);
    assert_eq!(
        reject(&g, &s, in_gate(0), sell.clone()),
        TxError::InsufficientFunds { need: 300, have: 0 }
    );
    let s = apply(
        &g,
        &s,
        T0,
        vec![deposit(&g, 1, 1_000), deposit(&g, 2, 100_000)],
    );
    let s = apply(&g, &s, in_gate(0), vec![sell.clone()]);
    let v = s.view();
    assert_eq!(v.accounts[&wallet(&owner(1))].balance, 700);
    assert_eq!(v.fees.tx, 300);
    // A buyer pays escrow and fee; a cancellation costs the fee too (the escrow comes back).
    let buy = order(&g, 2, 0, Side::Buy, 100, 20);
    let escrow = veilwatt_verifier::clearing::buy_escrow(100, 20, &g.fees);
    let s = apply(&g, &s, in_gate(0), vec![buy.clone()]);
    let buyer = wallet(&owner(2));
    assert_eq!(s.view().accounts[&buyer].balance, 100_000 - escrow - 300);
    let s = apply(
        &g,
        &s,
        in_gate(0),
        vec![sign(&g, TxBody::CancelOrder { order: buy.id() }, &owner(2))],
    );
    assert_eq!(s.view().accounts[&buyer].balance, 100_000 - 600);
    // A withdrawal needs its amount plus the fee.
    let withdraw = |amount| {
        sign(
            &g,
            TxBody::Withdraw {
                amount,
                nonce: amount,
            },
            &owner(1),
        )
    };
    assert_eq!(
        reject(&g, &s, in_gate(0), withdraw(500)),
        TxError::InsufficientFunds {
            need: 800,
            have: 700
        }
    );
    let s = apply(&g, &s, in_gate(0), vec![withdraw(400)]);
    let v = s.view();
    assert_eq!(v.accounts[&wallet(&owner(1))].balance, 0);
    assert_eq!(v.fees.tx, 1_200);
    // Registrar transactions pay nothing.
    assert_eq!(v.total_deposits, 101_000);
}

#[test]
fn block_header_rules() {
    let g = genesis(Mechanism::Uniform);
    let s = community(&g);
    let ledger = Ledger::new(&g).expect("valid genesis");
    let good = block(&g, &s, in_gate(0), vec![], verifier());
    assert!(ledger.apply_block(&s.0, &good, verifier()).is_ok());
    let mut b = good.clone();
    b.height += 1;
    assert!(matches!(
        ledger.apply_block(&s.0, &b, verifier()),
        Err(BlockError::WrongHeight { .. })
    ));
    let mut b = good.clone();
    b.prev_hash = Hash32([1; 32]);
    assert_eq!(
        ledger.apply_block(&s.0, &b, verifier()).unwrap_err(),
        BlockError::WrongPrevHash
    );
    let mut b = good.clone();
    b.time = s.view().last_time - 1;
    assert_eq!(
        ledger.apply_block(&s.0, &b, verifier()).unwrap_err(),
        BlockError::TimeWentBackwards
    );
    let mut b = good.clone();
    b.proposer = wallet(&owner(1));
    assert_eq!(
        ledger.apply_block(&s.0, &b, verifier()).unwrap_err(),
        BlockError::UnknownProposer
    );
    let mut b = good.clone();
    b.state_root = Hash32([9; 32]);
    assert!(matches!(
        ledger.apply_block(&s.0, &b, verifier()),
        Err(BlockError::StateRootMismatch { .. })
    ));
    // A block with one bad transaction is rejected whole.
    let b = block(
        &g,
        &s,
        in_gate(0),
        vec![
            deposit(&g, 3, 5),
            sign(
                &g,
                TxBody::Withdraw {
                    amount: 1,
                    nonce: 1,
                },
                &owner(9),
            ),
        ],
        verifier(),
    );
    assert!(matches!(
        ledger.apply_block(&s.0, &b, verifier()),
        Err(BlockError::Tx {
            index: 1,
            error: TxError::InsufficientFunds { .. },
            ..
        })
    ));
}

/// A block over the genesis' consensus limits is invalid whatever it carries, and a block at
/// the limits is valid: the limits every validator enforces on a proposal are rules of the
/// ledger, so the audit applies them too.
#[test]
fn blocks_over_the_genesis_limits_are_invalid() {
    let base = genesis(Mechanism::Uniform);
    let s = community(&base);
    // The same market with a three-transaction limit (the state does not depend on it).
    let mut g = base.clone();
    g.consensus.max_block_txs = 3;
    let ledger = Ledger::new(&g).expect("valid genesis");
    let deposits = |n: u64| (0..n).map(|k| deposit(&g, 1, 1 + k)).collect::<Vec<_>>();

    let at_limit = block(&g, &s, in_gate(0), deposits(3), verifier());
    assert!(ledger.apply_block(&s.0, &at_limit, verifier()).is_ok());
    let over = block(&g, &s, in_gate(0), deposits(4), verifier());
    assert_eq!(
        ledger.apply_block(&s.0, &over, verifier()).unwrap_err(),
        BlockError::TooManyTxs { count: 4, max: 3 }
    );

    // Bytes: the limit set to exactly the size of a block of 450 deposits (the smallest
    // limit a genesis may set is 64 KiB) admits it, and refuses it with one byte less.
    assert_eq!(
        Block::EMPTY_ENCODED_LEN,
        block(&g, &s, in_gate(0), vec![], verifier()).encoded_len()
    );
    let mut tight = g.clone();
    tight.consensus.max_block_txs = 1_000;
    let b = block(&tight, &s, in_gate(0), deposits(450), verifier());
    let bytes = b.encoded_len();
    assert_eq!(bytes, veilwatt_verifier::types::encode(&b).len() as u64);
    tight.consensus.max_block_bytes = bytes;
    let ledger = Ledger::new(&tight).expect("valid genesis");
    assert!(ledger.apply_block(&s.0, &b, verifier()).is_ok());
    tight.consensus.max_block_bytes = bytes - 1;
    let ledger = Ledger::new(&tight).expect("valid genesis");
    assert_eq!(
        ledger.apply_block(&s.0, &b, verifier()).unwrap_err(),
        BlockError::TooLarge {
            bytes,
            max: bytes - 1
        }
    );
}

#[test]
fn genesis_parameters_that_would_overflow_are_invalid() {
    let ok = genesis(Mechanism::Uniform);
    assert!(ok.validate().is_ok());
    let invalid = |tweak: &dyn Fn(&mut Genesis), needle: &str| {
        let mut g = ok.clone();
        tweak(&mut g);
        let e = g.validate().unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    };
    // Prices and fees whose sum wraps around u64 (it passed before: the sum was unchecked).
    invalid(
        &|g| {
            g.price_cap = u64::MAX;
            g.fees.grid_fee_per_kwh = 2;
        },
        "below 2^32",
    );
    invalid(&|g| g.fees.grid_fee_per_kwh = u64::MAX, "below 2^32");
    // Voting powers whose total wraps.
    invalid(
        &|g| {
            g.validators[0].power = u64::MAX;
            let mut v = g.validators[0].clone();
            v.power = 2;
            g.validators.push(v);
        },
        "total power",
    );
    // A clock that cannot reach the first gate.
    invalid(&|g| g.genesis_time = u64::MAX - 1, "64 bits");
    invalid(&|g| g.gate_delay_secs = u64::MAX, "64 bits");
    // History must stay bounded.
    invalid(&|g| g.max_tx_lifetime_secs = 0, "max_tx_lifetime_secs");
    invalid(
        &|g| g.max_tx_lifetime_secs = MAX_TX_LIFETIME_BOUND + 1,
        "max_tx_lifetime_secs",
    );
    invalid(
        &|g| g.result_retention_periods = 0,
        "result_retention_periods",
    );
    // Consensus limits: a block must be able to hold something, and one block with its
    // certificate must fit in a sync response.
    invalid(&|g| g.consensus.max_block_txs = 0, "max_block_txs");
    invalid(&|g| g.consensus.max_block_txs = u32::MAX, "max_block_txs");
    invalid(&|g| g.consensus.max_block_bytes = 1_000, "max_block_bytes");
    invalid(
        &|g| g.consensus.max_block_bytes = MAX_BLOCK_BYTES_BOUND + 1,
        "max_block_bytes",
    );
    invalid(
        &|g| g.consensus.max_clock_skew_secs = 0,
        "max_clock_skew_secs",
    );
    invalid(
        &|g| g.consensus.max_clock_skew_secs = u64::MAX,
        "max_clock_skew_secs",
    );
    // Spam limits: a fee no balance could pay, a cancellation quota that is none.
    invalid(&|g| g.spam.tx_fee = MAX_TX_FEE + 1, "spam.tx_fee");
    invalid(&|g| g.spam.tx_fee = u64::MAX, "spam.tx_fee");
    invalid(
        &|g| g.spam.max_cancels_per_period = MAX_CANCELS_BOUND + 1,
        "max_cancels_per_period",
    );
    // A genesis written before the limits existed gets the defaults.
    let mut json = serde_json::to_value(&ok).unwrap();
    json.as_object_mut().unwrap().remove("consensus");
    let old: Genesis = serde_json::from_value(json).unwrap();
    assert_eq!(old.consensus, ConsensusParams::default());
    let mut json = serde_json::to_value(&ok).unwrap();
    json.as_object_mut().unwrap().remove("spam");
    let old: Genesis = serde_json::from_value(json).unwrap();
    assert_eq!(old.spam, SpamParams::default());
    let mut json = serde_json::to_value(&ok).unwrap();
    json["spam"] = serde_json::json!({"tx_fees": 10});
    assert!(serde_json::from_value::<Genesis>(json).is_err());
    // A misspelt limit is an error, not a silent default.
    let mut json = serde_json::to_value(&ok).unwrap();
    json["consensus"] = serde_json::json!({"max_block_tx": 10});
    assert!(serde_json::from_value::<Genesis>(json).is_err());
}

/// The market id names one genesis: any change to it (chain id, a rule) gives another id, so a
/// statement signed for one market is no statement for another.
#[test]
fn market_id_is_a_function_of_the_whole_genesis() {
    let g = genesis(Mechanism::Uniform);
    assert_eq!(g.market_id(), g.clone().market_id());
    let mut other_chain = g.clone();
    other_chain.chain_id.push('x');
    let mut other_rule = g.clone();
    other_rule.period_secs += 1;
    assert_ne!(g.market_id(), other_chain.market_id());
    assert_ne!(g.market_id(), other_rule.market_id());
    assert_ne!(other_chain.market_id(), other_rule.market_id());
}

/// What a snapshot of `s` carries: its committed entries, and the tip's hash beside them.
fn snapshot_of(s: &St) -> (veilwatt_verifier::state::ChangeSet, Hash32) {
    use veilwatt_verifier::state::keys;
    let committed =
        s.0.entries()
            .filter(|(k, _)| keys::is_committed(k))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
    let tip = s.0.entries().find(|(k, _)| **k == keys::chain());
    (
        committed,
        decode(tip.expect("a tip").1).expect("a block hash"),
    )
}

#[test]
fn a_state_restored_from_its_committed_entries_applies_blocks_like_the_original() {
    use veilwatt_verifier::state::{keys, MemoryState};
    let g = genesis(Mechanism::Uniform);
    let s = apply(&g, &community(&g), T0, vec![second_meter(&g)]);
    let sell = order(&g, 1, 0, Side::Sell, 1_000, 10);
    let sell2 = order_via(&g, 9, 1, 0, Side::Sell, 500, 12);
    let s = apply(&g, &s, in_gate(0), vec![sell.clone(), sell2.clone()]);
    let (committed, tip) = snapshot_of(&s);
    let height = s.view().height;
    let restored =
        St(veilwatt_verifier::snapshot::restore(height, committed.clone(), &tip).unwrap());
    assert_eq!(restored.root(), s.root());
    assert_eq!(restored.view(), s.view());
    // Cancellations find their orders through the (local) id index, and a buy of the same
    // wallet needs its side freed: the restored state applies the block as the original does.
    let cancel = |o: &Transaction| sign(&g, TxBody::CancelOrder { order: o.id() }, &owner(1));
    let buy = order_via(&g, 9, 1, 0, Side::Buy, 1_000, 20);
    let b = block(
        &g,
        &s,
        in_gate(0),
        vec![cancel(&sell2), cancel(&sell), buy],
        verifier(),
    );
    let after = s.apply_block(&g, &b, verifier()).unwrap();
    let after_restored = restored.apply_block(&g, &b, verifier()).unwrap();
    assert_eq!(after_restored.root(), after.root());
    assert_eq!(after_restored.view(), after.view());
    // Without the derived indexes the same entries give the same root, but the first
    // cancellation finds no order: the indexes are what makes the restored state whole.
    let mut bare = committed;
    bare.insert(keys::chain(), Some(encode(&tip)));
    let bare = St(MemoryState::restore(height, bare).unwrap());
    assert_eq!(bare.root(), s.root());
    assert!(matches!(
        bare.apply_block(&g, &b, verifier()),
        Err(BlockError::Tx { index: 0, .. })
    ));
}

#[test]
fn a_burst_of_expiring_ids_is_forgotten_over_several_blocks() {
    // Blocks of at most 3 transactions: a block forgets at most 6 expired ids.
    let mut g = genesis(Mechanism::Uniform);
    g.consensus.max_block_txs = 3;
    let max = Ledger::new(&g).unwrap().max_pruned_per_block();
    assert_eq!(max, 6);
    let reg = registrar();
    let t = in_gate(0);
    let expiry = t + 100;
    // Ten deposits over four blocks, all expiring at the same second.
    let deps: Vec<Transaction> = (0..10u64)
        .map(|k| resign(&g, deposit(&g, 1, 1 + k), expiry, &reg))
        .collect();
    let mut s = St::genesis(&g);
    for (k, chunk) in deps.chunks(3).enumerate() {
        s = apply(&g, &s, t + k as u64, chunk.to_vec());
    }
    let live = |s: &St| s.view().applied_txs.len();
    assert_eq!(live(&s), 10);
    // Once they have expired, the next block forgets the 6 earliest (by key), the one after
    // the other 4.
    let mut ids: Vec<TxId> = deps.iter().map(Transaction::id).collect();
    ids.sort();
    let s1 = apply(&g, &s, expiry + 1, vec![]);
    assert_eq!(live(&s1), 4);
    let kept: Vec<TxId> = s1.view().applied_txs.iter().map(|(_, id)| *id).collect();
    assert_eq!(kept, ids[6..]);
    // Expired either way: a remembered id is refused as a replay, a forgotten one as expired.
    let by_id = |id: &TxId| deps.iter().find(|d| d.id() == *id).unwrap().clone();
    assert_eq!(
        reject(&g, &s1, expiry + 1, by_id(&ids[9])),
        TxError::Replay(ids[9])
    );
    assert!(matches!(
        reject(&g, &s1, expiry + 1, by_id(&ids[0])),
        TxError::Expired { .. }
    ));
    // The same next block on the state restored from s1's committed entries alone (where
    // pruning starts from the table's beginning) and on s1 itself: the same root.
    let (committed, tip) = snapshot_of(&s1);
    let restored =
        St(veilwatt_verifier::snapshot::restore(s1.view().height, committed, &tip).unwrap());
    let b = block(&g, &s1, expiry + 2, vec![], verifier());
    let s2 = s1.apply_block(&g, &b, verifier()).unwrap();
    assert_eq!(live(&s2), 0);
    assert_eq!(
        restored.apply_block(&g, &b, verifier()).unwrap().root(),
        s2.root()
    );
}
