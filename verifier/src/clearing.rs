//! Clearing one period's order book (docs/spec/market.md). Pure integer arithmetic.
//!
//! 1. Asks (sells) are ranked by price ascending, bids (buys) by price descending; ties by
//!    order id ascending. Orders at one price form a level.
//! 2. Levels are matched greedily while the ask level's price does not exceed the bid level's:
//!    this finds the largest price-compatible volume V and the marginal ask and bid levels.
//! 3. Levels before the marginal ones fill completely; a marginal level shares what is left of V
//!    pro rata to quantity (largest-remainder rounding to whole Wh, ties by order id).
//! 4. The filled units are paired in rank order (k-th sold Wh with k-th bought Wh), giving trades
//!    whose price depends on the mechanism: `uniform` one price `floor((marginal ask + marginal
//!    bid) / 2)`; `pay-as-bid` the bid; `midpoint` `floor((ask + bid) / 2)` per pair.
//! 5. Each trade itemises its value and fees in millis (`Wh x minor/kWh`, exact).

use crate::types::{FeeSchedule, Mechanism, Millis, Side, TxId};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// An order as the book sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookOrder {
    /// Order id (its transaction id).
    pub id: TxId,
    /// Sell or buy.
    pub side: Side,
    /// Quantity, Wh.
    pub quantity_wh: u32,
    /// Limit price, minor units per kWh.
    pub limit_price: u64,
}

/// One matched pair.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Trade {
    /// The sell order.
    pub sell: TxId,
    /// The buy order.
    pub buy: TxId,
    /// Energy, Wh.
    pub quantity_wh: u32,
    /// Price, minor units per kWh.
    pub price: u64,
    /// `quantity x price`, millis: what the seller is paid for the energy.
    pub energy_value: Millis,
    /// Grid/wheeling fee, paid by the buyer, millis.
    pub grid_fee: Millis,
    /// Buyer's part of the market fee, millis.
    pub market_fee_buyer: Millis,
    /// Seller's part of the market fee, millis.
    pub market_fee_seller: Millis,
}

impl Trade {
    /// What the buyer pays in total.
    pub fn buyer_pays(&self) -> Millis {
        self.energy_value + self.grid_fee + self.market_fee_buyer
    }

    /// What the seller receives net of its fee.
    pub fn seller_receives(&self) -> Millis {
        self.energy_value.saturating_sub(self.market_fee_seller)
    }
}

/// The result of clearing a period.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Clearing {
    /// Matched pairs, in rank order.
    pub trades: Vec<Trade>,
    /// Filled quantity per order, in the input order.
    pub filled_wh: Vec<u32>,
    /// Total matched energy, Wh.
    pub volume_wh: u64,
    /// The uniform price (for `uniform`; `None` otherwise or without trades).
    pub clearing_price: Option<u64>,
}

/// `(value, grid fee, market fee buyer, market fee seller)` for `q` Wh at `price`.
pub fn itemise(q: u32, price: u64, fees: &FeeSchedule) -> (Millis, Millis, Millis, Millis) {
    let q = u64::from(q);
    // Genesis validation keeps prices and fees below 2^32, so these products fit; saturate
    // rather than wrap for arbitrary callers.
    let value = q.saturating_mul(price);
    let grid = q.saturating_mul(fees.grid_fee_per_kwh);
    let market = q.saturating_mul(fees.market_fee_per_kwh);
    let buyer = buyer_share(market, fees.market_fee_buyer_share_bps);
    (value, grid, buyer, market - buyer)
}

/// `floor(total x bps / 10,000)`.
pub fn buyer_share(total: Millis, bps: u16) -> Millis {
    (u128::from(total) * u128::from(bps) / 10_000) as Millis
}

/// The most a buy order of `q` Wh at limit `limit` can cost: escrowed when it is accepted.
pub fn buy_escrow(q: u32, limit: u64, fees: &FeeSchedule) -> Millis {
    let (value, grid, buyer, _) = itemise(q, limit, fees);
    value.saturating_add(grid).saturating_add(buyer)
}

/// What an order paid (a buyer: energy, grid fee, its market fee) and received (a seller: energy
/// net of its market fee) over a period's trades, millis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// Paid by a buy order.
    pub paid: Millis,
    /// Received by a sell order.
    pub received: Millis,
}

/// Every order's [`Flow`] over `trades`; `None` if a sum overflows 64 bits.
pub fn order_flows(trades: &[Trade]) -> Option<std::collections::BTreeMap<TxId, Flow>> {
    let mut flows: std::collections::BTreeMap<TxId, Flow> = std::collections::BTreeMap::new();
    for t in trades {
        let b = flows.entry(t.buy).or_default();
        b.paid = b.paid.checked_add(t.buyer_pays())?;
        let s = flows.entry(t.sell).or_default();
        s.received = s.received.checked_add(t.seller_receives())?;
    }
    Some(flows)
}

/// The value of the note an unlinkable order's clearing mints to its payout target: a
/// seller's proceeds, a buyer's unused escrow; `Ok(None)` when that is zero; `Err` if a buy
/// paid more than its escrow (never, for a book the ledger cleared: the escrow is the most
/// the order can cost).
pub fn order_note_value(side: Side, escrow: Millis, flow: Flow) -> Result<Option<Millis>, Flow> {
    let value = match side {
        Side::Sell => flow.received,
        Side::Buy => escrow.checked_sub(flow.paid).ok_or(flow)?,
    };
    Ok((value > 0).then_some(value))
}

/// `floor((a + b) / 2)` without overflow.
pub fn midpoint(a: u64, b: u64) -> u64 {
    a / 2 + b / 2 + (a % 2 + b % 2) / 2
}

struct Level {
    price: u64,
    /// Indices into the ranked side.
    members: std::ops::Range<usize>,
    total: u64,
}

fn levels(ranked: &[(usize, BookOrder)]) -> Vec<Level> {
    let mut out: Vec<Level> = Vec::new();
    for (k, (_, o)) in ranked.iter().enumerate() {
        match out.last_mut() {
            Some(l) if l.price == o.limit_price => {
                l.members.end = k + 1;
                l.total += u64::from(o.quantity_wh);
            }
            _ => out.push(Level {
                price: o.limit_price,
                members: k..k + 1,
                total: u64::from(o.quantity_wh),
            }),
        }
    }
    out
}

/// Splits `amount` (<= sum of quantities) among `orders` pro rata to quantity: floors, then one
/// Wh each to the largest remainders (ties: earlier in `orders`, i.e. lower id).
fn pro_rata(amount: u64, orders: &[(usize, BookOrder)]) -> Vec<u64> {
    let total: u64 = orders.iter().map(|(_, o)| u64::from(o.quantity_wh)).sum();
    if total == 0 {
        return vec![0; orders.len()];
    }
    let mut shares = Vec::with_capacity(orders.len());
    let mut rems = Vec::with_capacity(orders.len());
    for (k, (_, o)) in orders.iter().enumerate() {
        let num = u128::from(amount) * u128::from(o.quantity_wh);
        shares.push((num / u128::from(total)) as u64);
        rems.push((num % u128::from(total), k));
    }
    let left = amount - shares.iter().sum::<u64>();
    // Largest remainder first; ties by position (= order id).
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, k) in rems.iter().take(left as usize) {
        shares[k] += 1;
    }
    shares
}

/// Fills of one ranked side given the volume `v` it trades.
fn side_fills(ranked: &[(usize, BookOrder)], lv: &[Level], v: u64) -> Vec<u64> {
    let mut fills = vec![0u64; ranked.len()];
    let mut left = v;
    for l in lv {
        if left == 0 {
            break;
        }
        if l.total <= left {
            for k in l.members.clone() {
                fills[k] = u64::from(ranked[k].1.quantity_wh);
            }
            left -= l.total;
        } else {
            let shares = pro_rata(left, &ranked[l.members.clone()]);
            for (k, s) in l.members.clone().zip(shares) {
                fills[k] = s;
            }
            left = 0;
        }
    }
    fills
}

/// Clears one period's book.
pub fn clear(orders: &[BookOrder], mechanism: Mechanism, fees: &FeeSchedule) -> Clearing {
    let rank = |side: Side| {
        let mut v: Vec<(usize, BookOrder)> = orders
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, o)| o.side == side)
            .collect();
        match side {
            Side::Sell => v.sort_by_key(|(_, o)| (o.limit_price, o.id)),
            Side::Buy => v.sort_by(|a, b| {
                b.1.limit_price
                    .cmp(&a.1.limit_price)
                    .then(a.1.id.cmp(&b.1.id))
            }),
        }
        v
    };
    let asks = rank(Side::Sell);
    let bids = rank(Side::Buy);
    let (al, bl) = (levels(&asks), levels(&bids));

    // Greedy level matching: the largest price-compatible volume and the marginal levels.
    let (mut i, mut j, mut v) = (0usize, 0usize, 0u64);
    let (mut ra, mut rb) = (
        al.first().map_or(0, |l| l.total),
        bl.first().map_or(0, |l| l.total),
    );
    let mut marginal = None;
    while i < al.len() && j < bl.len() && al[i].price <= bl[j].price {
        let m = ra.min(rb);
        v += m;
        ra -= m;
        rb -= m;
        marginal = Some((al[i].price, bl[j].price));
        if ra == 0 {
            i += 1;
            ra = al.get(i).map_or(0, |l| l.total);
        }
        if rb == 0 {
            j += 1;
            rb = bl.get(j).map_or(0, |l| l.total);
        }
    }

    let mut result = Clearing {
        filled_wh: vec![0; orders.len()],
        volume_wh: v,
        ..Default::default()
    };
    let Some((marginal_ask, marginal_bid)) = marginal else {
        return result;
    };
    let ask_fills = side_fills(&asks, &al, v);
    let bid_fills = side_fills(&bids, &bl, v);
    for (k, (idx, _)) in asks.iter().enumerate() {
        result.filled_wh[*idx] = ask_fills[k] as u32;
    }
    for (k, (idx, _)) in bids.iter().enumerate() {
        result.filled_wh[*idx] = bid_fills[k] as u32;
    }
    let uniform = midpoint(marginal_ask, marginal_bid);
    if mechanism == Mechanism::Uniform {
        result.clearing_price = Some(uniform);
    }

    // Pair the filled units in rank order.
    let (mut a, mut b) = (0usize, 0usize);
    let (mut left_a, mut left_b) = (
        ask_fills.first().copied().unwrap_or(0),
        bid_fills.first().copied().unwrap_or(0),
    );
    loop {
        while a < asks.len() && left_a == 0 {
            a += 1;
            left_a = ask_fills.get(a).copied().unwrap_or(0);
        }
        while b < bids.len() && left_b == 0 {
            b += 1;
            left_b = bid_fills.get(b).copied().unwrap_or(0);
        }
        if a >= asks.len() || b >= bids.len() {
            break;
        }
        let q = left_a.min(left_b);
        let (ask, bid) = (asks[a].1, bids[b].1);
        let price = match mechanism {
            Mechanism::Uniform => uniform,
            Mechanism::PayAsBid => bid.limit_price,
            Mechanism::Midpoint => midpoint(ask.limit_price, bid.limit_price),
        };
        let q32 = q as u32;
        let (energy_value, grid_fee, market_fee_buyer, market_fee_seller) =
            itemise(q32, price, fees);
        result.trades.push(Trade {
            sell: ask.id,
            buy: bid.id,
            quantity_wh: q32,
            price,
            energy_value,
            grid_fee,
            market_fee_buyer,
            market_fee_seller,
        });
        left_a -= q;
        left_b -= q;
    }
    result
}
