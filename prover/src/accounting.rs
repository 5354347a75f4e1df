//! A household's itemised statement: what it bought and sold on the ledger, the fees, and what
//! it saved against the utility's tariffs from genesis (retail = the price cap, feed-in = the
//! price floor; docs/spec/household.md).
//!
//! Savings count traded energy only: energy an order did not trade is bought from or sold to
//! the utility at exactly those tariffs, so it neither gains nor loses against them.

use serde::Serialize;
use veilwatt_verifier::clearing::Trade;
use veilwatt_verifier::types::{Genesis, Millis, Side};

use veilwatt_verifier::api::TxStatus;
use veilwatt_verifier::client::{ClientError, NodeClient};

use crate::household::{HomeError, Household, OrderRecord};

/// One order and what the ledger made of it.
#[derive(Clone, Debug, Serialize)]
pub struct OrderFate {
    /// The order as submitted.
    pub order: OrderRecord,
    /// `pending`, `committed`, `rejected` or `unknown` (the node does not know it); for an
    /// order the household cancelled, `cancelled` once the cancel is committed (`cancelling`
    /// before).
    pub status: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// Whether its period has cleared.
    pub cleared: bool,
    /// Filled, Wh (cleared periods).
    pub filled_wh: u32,
    /// Not matched, settled with the utility, Wh (cleared periods).
    pub unmatched_wh: u32,
    /// Its trades.
    pub trades: Vec<Trade>,
}

/// Why the fates of a household's orders could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FatesError {
    /// The household directory.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The node.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Every order of `home`, with what the ledger made of it (asked of the node: each order's
/// and cancellation's status, and its period's result).
pub async fn fates(home: &Household, client: &NodeClient) -> Result<Vec<OrderFate>, FatesError> {
    let mut out = Vec::new();
    for (period, order) in home.orders()? {
        let st = client.tx_status(&order.id).await?.map(|v| v.status);
        let (status, mut reason) = match &st {
            None => ("unknown", None),
            Some(TxStatus::Pending) => ("pending", None),
            Some(TxStatus::Committed { .. }) => ("committed", None),
            Some(TxStatus::Rejected { reason, .. }) => ("rejected", Some(reason.clone())),
        };
        let status = match order.cancel {
            Some(cancel) if status == "committed" => {
                match client.tx_status(&cancel).await?.map(|v| v.status) {
                    Some(TxStatus::Committed { .. }) => "cancelled",
                    Some(TxStatus::Rejected { reason: why, .. }) => {
                        reason = Some(format!("the cancel was refused: {why}"));
                        status
                    }
                    _ => "cancelling",
                }
            }
            _ => status,
        }
        .to_owned();
        let result = client.period(period).await?.result();
        let cleared = result.is_some() && status == "committed";
        let outcome = result
            .as_ref()
            .and_then(|r| r.orders.iter().find(|o| o.id == order.id).copied());
        let trades = result
            .iter()
            .flat_map(|r| &r.trades)
            .filter(|t| t.sell == order.id || t.buy == order.id)
            .copied()
            .collect();
        out.push(OrderFate {
            status,
            reason,
            cleared,
            filled_wh: outcome.map_or(0, |o| o.filled_wh),
            unmatched_wh: outcome.map_or(0, |o| o.unmatched_wh),
            trades,
            order,
        });
    }
    Ok(out)
}

/// One trade from the household's side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    /// Period.
    pub period: u64,
    /// The household's side.
    pub side: Side,
    /// Energy, Wh.
    pub quantity_wh: u32,
    /// Price, minor units per kWh.
    pub price: u64,
    /// Energy value, millis.
    pub energy_millis: Millis,
    /// Grid fee paid (buys), millis.
    pub grid_fee_millis: Millis,
    /// Market fee paid, millis.
    pub market_fee_millis: Millis,
    /// Money in (positive) or out (negative), millis.
    pub net_millis: i64,
    /// Against the tariff: a buy's `retail x q - paid`, a sale's `received - feed-in x q`.
    pub saving_millis: i64,
}

/// The statement for a range of periods.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// First period.
    pub from: u64,
    /// Last period.
    pub to: u64,
    /// Retail tariff (price cap), minor units per kWh.
    pub retail_tariff: u64,
    /// Feed-in tariff (price floor), minor units per kWh.
    pub feed_in_tariff: u64,
    /// Itemised trades.
    pub lines: Vec<Line>,
    /// Orders in the range.
    pub orders: u64,
    /// Orders of the range whose period has not cleared yet.
    pub orders_not_cleared: u64,
    /// Bought on the ledger, Wh.
    pub bought_wh: u64,
    /// Sold on the ledger, Wh.
    pub sold_wh: u64,
    /// Paid for energy, millis.
    pub paid_energy_millis: Millis,
    /// Received for energy, millis.
    pub received_energy_millis: Millis,
    /// Grid/wheeling fees, millis.
    pub grid_fees_millis: Millis,
    /// Market fees, millis.
    pub market_fees_millis: Millis,
    /// Net money, millis.
    pub net_millis: i64,
    /// Offered but not sold (to the utility at feed-in), Wh.
    pub unmatched_sell_wh: u64,
    /// Bid but not bought (from the utility at retail), Wh.
    pub unmatched_buy_wh: u64,
    /// Saving against the tariffs, millis.
    pub saving_millis: i64,
}

fn signed(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// The itemised statement of `fates` for periods `from..=to`.
pub fn statement(g: &Genesis, from: u64, to: u64, fates: &[OrderFate]) -> Statement {
    let mut s = Statement {
        from,
        to,
        retail_tariff: g.price_cap,
        feed_in_tariff: g.price_floor,
        ..Statement::default()
    };
    for f in fates
        .iter()
        .filter(|f| (from..=to).contains(&f.order.period))
    {
        s.orders += 1;
        if !f.cleared {
            s.orders_not_cleared += 1;
            continue;
        }
        let side = f.order.side;
        match side {
            Side::Sell => s.unmatched_sell_wh += u64::from(f.unmatched_wh),
            Side::Buy => s.unmatched_buy_wh += u64::from(f.unmatched_wh),
        }
        for t in &f.trades {
            let q = u64::from(t.quantity_wh);
            let line = match side {
                Side::Buy => Line {
                    period: f.order.period,
                    side,
                    quantity_wh: t.quantity_wh,
                    price: t.price,
                    energy_millis: t.energy_value,
                    grid_fee_millis: t.grid_fee,
                    market_fee_millis: t.market_fee_buyer,
                    net_millis: -signed(t.buyer_pays()),
                    saving_millis: signed(q * g.price_cap) - signed(t.buyer_pays()),
                },
                Side::Sell => Line {
                    period: f.order.period,
                    side,
                    quantity_wh: t.quantity_wh,
                    price: t.price,
                    energy_millis: t.energy_value,
                    grid_fee_millis: 0,
                    market_fee_millis: t.market_fee_seller,
                    net_millis: signed(t.seller_receives()),
                    saving_millis: signed(t.seller_receives()) - signed(q * g.price_floor),
                },
            };
            match side {
                Side::Buy => {
                    s.bought_wh += q;
                    s.paid_energy_millis += line.energy_millis;
                }
                Side::Sell => {
                    s.sold_wh += q;
                    s.received_energy_millis += line.energy_millis;
                }
            }
            s.grid_fees_millis += line.grid_fee_millis;
            s.market_fees_millis += line.market_fee_millis;
            s.net_millis += line.net_millis;
            s.saving_millis += line.saving_millis;
            s.lines.push(line);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use veilwatt_verifier::types::TxId;

    fn genesis() -> Genesis {
        serde_json::from_value(serde_json::json!({
            "chain_id": "t", "genesis_time": 0, "validators": [],
            "registrar": "00".repeat(32), "period_secs": 60, "gate_delay_secs": 60,
            "mechanism": "uniform",
            "fees": {"grid_fee_per_kwh": 4, "market_fee_per_kwh": 1, "market_fee_buyer_share_bps": 5000},
            "price_floor": 8, "price_cap": 30, "vk_id": "00".repeat(32)
        }))
        .unwrap()
    }

    fn fate(period: u64, side: Side, trades: Vec<Trade>, unmatched_wh: u32) -> OrderFate {
        OrderFate {
            order: OrderRecord {
                period,
                id: TxId([period as u8; 32]),
                side,
                quantity_wh: 1_000,
                limit_price: 20,
                submitted_at: 0,
                unlinkable: None,
                cancel: None,
            },
            status: "committed".into(),
            reason: None,
            cleared: true,
            filled_wh: 1_000 - unmatched_wh,
            unmatched_wh,
            trades,
        }
    }

    fn trade(q: u32, price: u64) -> Trade {
        let q64 = u64::from(q);
        Trade {
            sell: TxId([1; 32]),
            buy: TxId([2; 32]),
            quantity_wh: q,
            price,
            energy_value: q64 * price,
            grid_fee: q64 * 4,
            market_fee_buyer: q64 / 2,
            market_fee_seller: q64 / 2,
        }
    }

    #[test]
    fn itemises_and_saves_against_the_tariffs() {
        let g = genesis();
        let fates = vec![
            fate(1, Side::Sell, vec![trade(600, 20)], 400),
            fate(2, Side::Buy, vec![trade(1_000, 18)], 0),
            fate(9, Side::Buy, vec![trade(1_000, 18)], 0),
        ];
        let s = statement(&g, 1, 5, &fates);
        assert_eq!(s.orders, 2);
        assert_eq!(s.lines.len(), 2);
        assert_eq!((s.sold_wh, s.bought_wh), (600, 1_000));
        assert_eq!(s.unmatched_sell_wh, 400);
        // Sale: 600 Wh at 20 = 12,000 millis, less 300 fee; feed-in would pay 600 x 8 = 4,800.
        assert_eq!(s.lines[0].net_millis, 11_700);
        assert_eq!(s.lines[0].saving_millis, 11_700 - 4_800);
        // Buy: 1 kWh at 18 + 4 grid + 0.5 market = 22,500 millis; retail 30,000.
        assert_eq!(s.lines[1].net_millis, -22_500);
        assert_eq!(s.lines[1].saving_millis, 7_500);
        assert_eq!(s.saving_millis, 6_900 + 7_500);
        assert_eq!(s.grid_fees_millis, 4_000);
        assert_eq!(s.market_fees_millis, 300 + 500);
        assert_eq!(s.net_millis, 11_700 - 22_500);
    }

    #[test]
    fn uncleared_orders_are_counted_not_itemised() {
        let g = genesis();
        let mut f = fate(3, Side::Buy, vec![], 0);
        f.cleared = false;
        let s = statement(&g, 0, 10, &[f]);
        assert_eq!((s.orders, s.orders_not_cleared, s.lines.len()), (1, 1, 0));
    }
}
