//! Market clearing: worked examples from docs/spec/market.md and property tests against a
//! brute-force reference.

use proptest::prelude::*;
use std::collections::BTreeMap;
use veilwatt_verifier::clearing::{
    buy_escrow, clear, order_flows, order_note_value, BookOrder, Clearing,
};
use veilwatt_verifier::types::{FeeSchedule, Mechanism, Side, TxId};

const FEES: FeeSchedule = FeeSchedule {
    grid_fee_per_kwh: 5,
    market_fee_per_kwh: 2,
    market_fee_buyer_share_bps: 5_000,
};

fn id(k: u8) -> TxId {
    TxId([k; 32])
}

fn order(k: u8, side: Side, quantity_wh: u32, limit_price: u64) -> BookOrder {
    BookOrder {
        id: id(k),
        side,
        quantity_wh,
        limit_price,
    }
}

/// The book of the spec's worked example: S1..S3 (ids 1-3), B1..B3 (ids 4-6).
fn example_book() -> Vec<BookOrder> {
    vec![
        order(1, Side::Sell, 1_000, 10),
        order(2, Side::Sell, 2_000, 12),
        order(3, Side::Sell, 1_500, 20),
        order(4, Side::Buy, 1_500, 25),
        order(5, Side::Buy, 1_000, 15),
        order(6, Side::Buy, 2_000, 11),
    ]
}

fn pairs(c: &Clearing) -> Vec<(u8, u8, u32, u64)> {
    c.trades
        .iter()
        .map(|t| (t.sell.0[0], t.buy.0[0], t.quantity_wh, t.price))
        .collect()
}

#[test]
fn worked_example_uniform() {
    let c = clear(&example_book(), Mechanism::Uniform, &FEES);
    assert_eq!(c.volume_wh, 2_500);
    assert_eq!(c.clearing_price, Some(13)); // floor((12 + 15) / 2)
    assert_eq!(c.filled_wh, vec![1_000, 1_500, 0, 1_500, 1_000, 0]);
    assert_eq!(
        pairs(&c),
        vec![(1, 4, 1_000, 13), (2, 4, 500, 13), (2, 5, 1_000, 13)]
    );
    let t = c.trades[0];
    assert_eq!(
        (
            t.energy_value,
            t.grid_fee,
            t.market_fee_buyer,
            t.market_fee_seller
        ),
        (13_000, 5_000, 1_000, 1_000)
    );
    assert_eq!((t.buyer_pays(), t.seller_receives()), (19_000, 12_000));
    let t = c.trades[1];
    assert_eq!(
        (
            t.energy_value,
            t.grid_fee,
            t.market_fee_buyer,
            t.market_fee_seller
        ),
        (6_500, 2_500, 500, 500)
    );
}

#[test]
fn worked_example_pay_as_bid() {
    let c = clear(&example_book(), Mechanism::PayAsBid, &FEES);
    assert_eq!(c.clearing_price, None);
    assert_eq!(
        pairs(&c),
        vec![(1, 4, 1_000, 25), (2, 4, 500, 25), (2, 5, 1_000, 15)]
    );
    assert_eq!(
        c.trades.iter().map(|t| t.energy_value).sum::<u64>(),
        25_000 + 12_500 + 15_000
    );
}

#[test]
fn worked_example_midpoint() {
    let c = clear(&example_book(), Mechanism::Midpoint, &FEES);
    assert_eq!(
        pairs(&c),
        vec![(1, 4, 1_000, 17), (2, 4, 500, 18), (2, 5, 1_000, 13)]
    );
}

#[test]
fn worked_example_pro_rata_at_the_margin() {
    // Two asks at the marginal price share 500 Wh in proportion 600 : 400.
    let book = [
        order(1, Side::Sell, 600, 10),
        order(2, Side::Sell, 400, 10),
        order(3, Side::Buy, 500, 12),
    ];
    let c = clear(&book, Mechanism::Uniform, &FEES);
    assert_eq!(c.filled_wh, vec![300, 200, 500]);
    assert_eq!(c.clearing_price, Some(11));
    // Rounding: 2 Wh among three equal asks of 1 Wh: equal remainders, lowest ids first.
    let book = [
        order(3, Side::Sell, 1, 10),
        order(1, Side::Sell, 1, 10),
        order(2, Side::Sell, 1, 10),
        order(9, Side::Buy, 2, 12),
    ];
    let c = clear(&book, Mechanism::Uniform, &FEES);
    assert_eq!(c.filled_wh, vec![0, 1, 1, 2]);
}

#[test]
fn no_cross_no_trade() {
    let book = [order(1, Side::Sell, 100, 20), order(2, Side::Buy, 100, 19)];
    let c = clear(&book, Mechanism::Uniform, &FEES);
    assert!(c.trades.is_empty());
    assert_eq!(c.volume_wh, 0);
    assert_eq!(c.filled_wh, vec![0, 0]);
    assert_eq!(clear(&[], Mechanism::Midpoint, &FEES), Clearing::default());
}

fn book() -> impl Strategy<Value = Vec<BookOrder>> {
    prop::collection::vec((any::<bool>(), 1u32..5_000, 5u64..40), 0..24).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(k, (sell, q, p))| BookOrder {
                // Ids deliberately unrelated to insertion order.
                id: TxId([((k * 37) % 251) as u8; 32]),
                side: if sell { Side::Sell } else { Side::Buy },
                quantity_wh: q,
                limit_price: p,
            })
            .collect()
    })
}

fn mechanism() -> impl Strategy<Value = Mechanism> {
    prop_oneof![
        Just(Mechanism::Uniform),
        Just(Mechanism::PayAsBid),
        Just(Mechanism::Midpoint)
    ]
}

/// Brute force: the largest price-compatible volume is max over candidate prices p of
/// min(supply at <= p, demand at >= p).
fn reference_volume(book: &[BookOrder]) -> u64 {
    book.iter()
        .map(|c| c.limit_price)
        .map(|p| {
            let s: u64 = book
                .iter()
                .filter(|o| o.side == Side::Sell && o.limit_price <= p)
                .map(|o| u64::from(o.quantity_wh))
                .sum();
            let d: u64 = book
                .iter()
                .filter(|o| o.side == Side::Buy && o.limit_price >= p)
                .map(|o| u64::from(o.quantity_wh))
                .sum();
            s.min(d)
        })
        .max()
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn clearing_invariants(book in book(), mech in mechanism()) {
        let c = clear(&book, mech, &FEES);
        // Volume equals the brute-force reference.
        prop_assert_eq!(c.volume_wh, reference_volume(&book));
        // Energy conserved: sold = bought = volume; nobody trades more than ordered.
        let sold: u64 = book.iter().zip(&c.filled_wh).filter(|(o, _)| o.side == Side::Sell).map(|(_, f)| u64::from(*f)).sum();
        let bought: u64 = book.iter().zip(&c.filled_wh).filter(|(o, _)| o.side == Side::Buy).map(|(_, f)| u64::from(*f)).sum();
        prop_assert_eq!(sold, c.volume_wh);
        prop_assert_eq!(bought, c.volume_wh);
        for (o, f) in book.iter().zip(&c.filled_wh) {
            prop_assert!(*f <= o.quantity_wh);
        }
        // Trades add up to each order's fill, and respect both limits.
        for (k, o) in book.iter().enumerate() {
            let traded: u64 = c.trades.iter().filter(|t| t.sell == o.id || t.buy == o.id).map(|t| u64::from(t.quantity_wh)).sum();
            // Ids can repeat in generated books (k * 37 mod 251 only repeats after 251 orders).
            prop_assert_eq!(traded, u64::from(c.filled_wh[k]));
        }
        for t in &c.trades {
            let s = book.iter().find(|o| o.id == t.sell).unwrap();
            let b = book.iter().find(|o| o.id == t.buy).unwrap();
            prop_assert!(s.limit_price <= t.price && t.price <= b.limit_price, "{:?}", t);
            prop_assert!(t.quantity_wh > 0);
            // Money per trade: buyer pays = seller receives + fees.
            prop_assert_eq!(t.buyer_pays(), t.seller_receives() + t.grid_fee + t.market_fee_buyer + t.market_fee_seller);
        }
        // The buyer's total never exceeds its escrow.
        for (k, o) in book.iter().enumerate().filter(|(_, o)| o.side == Side::Buy) {
            let paid: u64 = c.trades.iter().filter(|t| t.buy == o.id).map(|t| t.buyer_pays()).sum();
            prop_assert!(paid <= buy_escrow(o.quantity_wh, o.limit_price, &FEES), "order {k}");
        }
        // No unmatched ask is priced below an unmatched bid.
        let min_unmatched_ask = book.iter().zip(&c.filled_wh).filter(|(o, f)| o.side == Side::Sell && **f < o.quantity_wh).map(|(o, _)| o.limit_price).min();
        let max_unmatched_bid = book.iter().zip(&c.filled_wh).filter(|(o, f)| o.side == Side::Buy && **f < o.quantity_wh).map(|(o, _)| o.limit_price).max();
        if let (Some(a), Some(b)) = (min_unmatched_ask, max_unmatched_bid) {
            prop_assert!(a > b, "unmatched ask {a} <= unmatched bid {b}");
        }
        // Uniform: one price for every trade.
        if mech == Mechanism::Uniform {
            prop_assert!(c.trades.iter().all(|t| Some(t.price) == c.clearing_price));
        }
        // Deterministic regardless of input order.
        let mut rev = book.clone();
        rev.reverse();
        let c2 = clear(&rev, mech, &FEES);
        prop_assert_eq!(&c.trades, &c2.trades);
    }

    /// Pro-rata at the margin: within a level, fills differ from the exact proportional share
    /// by less than one Wh.
    #[test]
    fn marginal_levels_are_pro_rata(qs in prop::collection::vec(1u32..1000, 1..8), demand in 1u32..4000) {
        let mut book: Vec<BookOrder> = qs.iter().enumerate().map(|(k, q)| order(k as u8 + 1, Side::Sell, *q, 10)).collect();
        book.push(order(200, Side::Buy, demand, 10));
        let c = clear(&book, Mechanism::Uniform, &FEES);
        let total: u64 = qs.iter().map(|q| u64::from(*q)).sum();
        let v = c.volume_wh;
        for (k, q) in qs.iter().enumerate() {
            let exact = v as f64 * f64::from(*q) / total as f64; // test-only float
            prop_assert!((f64::from(c.filled_wh[k]) - exact).abs() < 1.0);
        }
    }
}

/// Books whose asks have pairwise distinct prices, and bids too (no pro-rata sharing needed).
fn distinct_price_book() -> impl Strategy<Value = Vec<BookOrder>> {
    (
        prop::sample::subsequence((5u64..60).collect::<Vec<_>>(), 0..8),
        prop::sample::subsequence((5u64..60).collect::<Vec<_>>(), 0..8),
        prop::collection::vec(1u32..300, 16),
    )
        .prop_map(|(asks, bids, qs)| {
            let mut v = Vec::new();
            for (k, p) in asks.iter().enumerate() {
                v.push(order(k as u8 + 1, Side::Sell, qs[k], *p));
            }
            for (k, p) in bids.iter().enumerate() {
                v.push(order(k as u8 + 101, Side::Buy, qs[8 + k], *p));
            }
            v
        })
}

/// Brute-force reference: expand every order into single Wh, sort asks ascending and bids
/// descending, pair the k-th units while ask <= bid, price each unit by the mechanism, and sum
/// per (sell, buy) pair.
fn unit_reference(book: &[BookOrder], mech: Mechanism) -> BTreeMap<(u8, u8), (u64, u64)> {
    let mut asks: Vec<&BookOrder> = book.iter().filter(|o| o.side == Side::Sell).collect();
    let mut bids: Vec<&BookOrder> = book.iter().filter(|o| o.side == Side::Buy).collect();
    asks.sort_by_key(|o| o.limit_price);
    bids.sort_by_key(|o| std::cmp::Reverse(o.limit_price));
    let units = |v: &[&BookOrder]| -> Vec<(u8, u64)> {
        v.iter()
            .flat_map(|o| std::iter::repeat_n((o.id.0[0], o.limit_price), o.quantity_wh as usize))
            .collect()
    };
    let (au, bu) = (units(&asks), units(&bids));
    let matched: Vec<((u8, u64), (u8, u64))> = au
        .iter()
        .zip(bu.iter())
        .take_while(|(a, b)| a.1 <= b.1)
        .map(|(a, b)| (*a, *b))
        .collect();
    let uniform = matched.last().map(|(a, b)| (a.1 + b.1) / 2);
    let mut out = BTreeMap::new();
    for (a, b) in matched {
        let price = match mech {
            Mechanism::Uniform => uniform.unwrap(),
            Mechanism::PayAsBid => b.1,
            Mechanism::Midpoint => (a.1 + b.1) / 2,
        };
        let e = out.entry((a.0, b.0)).or_insert((0, 0));
        e.0 += 1;
        e.1 += price;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn each_mechanism_matches_the_unit_level_reference(book in distinct_price_book(), mech in mechanism()) {
        let c = clear(&book, mech, &FEES);
        let mut got = BTreeMap::new();
        for t in &c.trades {
            let e = got.entry((t.sell.0[0], t.buy.0[0])).or_insert((0u64, 0u64));
            e.0 += u64::from(t.quantity_wh);
            e.1 += u64::from(t.quantity_wh) * t.price;
        }
        prop_assert_eq!(got, unit_reference(&book, mech));
    }
}

/// A book and a fee schedule genesis accepts: fees per kWh up to 2^20, any buyer share,
/// limit prices from the seller's market fee (`price_floor` covers it) up to where price plus
/// fees stay below 2^32; unique ids; quantities up to `u32::MAX`.
fn market() -> impl Strategy<Value = (Vec<BookOrder>, FeeSchedule)> {
    let fees = (0u64..1 << 20, 0u64..1 << 20, 0u16..=10_000);
    let orders = prop::collection::vec(
        (
            any::<bool>(),
            prop_oneof![1u32..10_000, 1u32..u32::MAX],
            prop_oneof![0u64..64, 0u64..u64::from(u32::MAX)],
        ),
        0..24,
    );
    (fees, orders).prop_map(|((grid, market, bps), orders)| {
        let fees = FeeSchedule {
            grid_fee_per_kwh: grid,
            market_fee_per_kwh: market,
            market_fee_buyer_share_bps: bps,
        };
        let span = u64::from(u32::MAX) - grid - 2 * market;
        let book = orders
            .into_iter()
            .enumerate()
            .map(|(k, (sell, q, p))| {
                let side = if sell { Side::Sell } else { Side::Buy };
                order(k as u8, side, q, market + p % span)
            })
            .collect();
        (book, fees)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// An unlinkable buy escrows `buy_escrow(q, limit)` when it is placed; clearing then
    /// charges it for its trades and refunds the rest as a note. Under every fee schedule and
    /// mechanism the escrow covers the charge (the refund the ledger mints is never negative:
    /// `order_note_value` never fails), and the money balances: escrows = refunds + what buyers
    /// paid, and what buyers paid = what sellers received + the fees.
    #[test]
    fn escrow_is_never_below_what_clearing_charges((book, fees) in market(), mech in mechanism()) {
        let c = clear(&book, mech, &fees);
        let flows = order_flows(&c.trades).expect("sums of at most 24 trades of u32 x 2^32 fit");
        let (mut escrowed, mut refunded, mut paid, mut received) = (0u128, 0u128, 0u128, 0u128);
        for o in &book {
            let flow = flows.get(&o.id).copied().unwrap_or_default();
            let escrow = match o.side {
                Side::Buy => buy_escrow(o.quantity_wh, o.limit_price, &fees),
                Side::Sell => 0,
            };
            let note = order_note_value(o.side, escrow, flow);
            prop_assert!(note.is_ok(), "{:?} escrowed {} but was charged {:?}", o, escrow, note);
            let note = u128::from(note.unwrap_or_default().unwrap_or(0));
            match o.side {
                Side::Buy => {
                    prop_assert_eq!(flow.received, 0);
                    escrowed += u128::from(escrow);
                    refunded += note;
                    paid += u128::from(flow.paid);
                }
                Side::Sell => {
                    prop_assert_eq!(flow.paid, 0);
                    prop_assert_eq!(note, u128::from(flow.received));
                    received += note;
                }
            }
        }
        prop_assert_eq!(escrowed, refunded + paid);
        let fees_total: u128 = c
            .trades
            .iter()
            .map(|t| u128::from(t.grid_fee + t.market_fee_buyer + t.market_fee_seller))
            .sum();
        prop_assert_eq!(paid, received + fees_total);
    }
}
