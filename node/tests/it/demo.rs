//! The demo end to end, as a real process: `veilwatt-demo --json` simulates meters, enrols
//! them in the registry of unlinkable orders, funds the households with shielded notes, proves
//! and submits unlinkable orders over HTTP, lets the periods clear and reports; the report must
//! equal what the ledger it left behind says when exported and replayed through the state
//! machine with every proof re-verified, and the record must name no household.

use crate::common;

use serde_json::Value;
use veilwatt_params::dev;
use veilwatt_params::MarketCircuit;
use veilwatt_verifier::ledger::MarketVerifier;
use veilwatt_verifier::ledger::{Ledger, LedgerRead};
use veilwatt_verifier::state::MemoryState;
use veilwatt_verifier::{JoinSplitVerifier, OrderVerifier, UnlinkableOrderVerifier};

#[test]
fn demo_report_matches_the_replayed_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::run_demo(dir.path(), 8, 2, 4);
    let report = &run.report;
    let summary = &report["summary"];
    let periods = report["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 2);
    assert!(summary["orders"].as_u64().unwrap() > 0, "{report}");
    // A healthy run ends cleanly: no error or warning logged.
    let stderr = &run.stderr;
    assert!(
        !stderr.contains("ERROR") && !stderr.contains("WARN"),
        "{stderr}"
    );
    // What was proven: every order's proof and every buy's escrow join-split, counted by the
    // validator that verified them; what stayed private: every one-minute reading.
    let n = |v: &Value| v.as_u64().unwrap();
    let buys: u64 = periods.iter().map(|p| n(&p["buy_orders"])).sum();
    assert_eq!(
        summary["order_proofs_verified"], summary["orders"],
        "{report}"
    );
    assert_eq!(n(&summary["spend_proofs_verified"]), buys, "{report}");
    assert_eq!(n(&summary["orders_naming_a_household"]), 0, "{report}");
    // The wallets found every note the ledger owes them: the deposits less the market's fees
    // and the escrows' spend fees (energy money only moved between households).
    assert_eq!(
        n(&summary["wallet_notes_millis"]),
        8 * 50_000_000 - n(&summary["fees_millis"]) - 10 * buys,
        "{report}"
    );
    assert_eq!(
        summary["private_readings"].as_u64(),
        Some(8 * 2 * u64::from(veilwatt_prover::simulate::MINUTES)),
        "{report}"
    );
    assert!(summary["trades"].as_u64().unwrap() > 0, "{report}");
    let volume: u64 = periods
        .iter()
        .map(|p| p["volume_wh"].as_u64().unwrap())
        .sum();
    assert_eq!(summary["energy_traded_wh"].as_u64().unwrap(), volume);
    assert!(volume > 0);

    // Replay the ledger the demo left.
    let (export, g) = (&run.export, &run.genesis);
    // The demo's market takes unlinkable orders, their escrows spend notes: every proof of
    // both kinds is verified again.
    assert!(g.shielded.is_some() && g.anonymous.is_some());
    let (order, js, o2) = (
        dev::keys().unwrap(),
        dev::keys_of(MarketCircuit::JoinSplit).unwrap(),
        dev::keys_of(MarketCircuit::OrderV2).unwrap(),
    );
    let verifier = MarketVerifier {
        order: OrderVerifier::new(&order.vk, order.vk_id).unwrap(),
        joinsplit: Some(JoinSplitVerifier::new(&js.vk, js.vk_id).unwrap()),
        unlinkable: Some(UnlinkableOrderVerifier::new(&o2.vk, o2.vk_id).unwrap()),
    };
    let ledger = Ledger::new(g).unwrap();
    let mut state = MemoryState::default();
    state.commit(ledger.genesis_update(&state).unwrap());
    for b in &export.blocks {
        let applied = ledger.apply_block(&state, &b.block, &verifier).unwrap();
        state.commit(applied.update);
    }
    assert_eq!(
        state.meta().unwrap().height,
        summary["height"].as_u64().unwrap()
    );
    let mut trades = 0;
    for p in periods {
        let r = state
            .period_result(p["period"].as_u64().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(r.volume_wh, p["volume_wh"].as_u64().unwrap());
        assert_eq!(r.clearing_price, p["clearing_price"].as_u64());
        let money: u64 = r.trades.iter().map(|t| t.energy_value).sum();
        assert_eq!(money, p["money_millis"].as_u64().unwrap());
        let sells = r
            .orders
            .iter()
            .filter(|o| o.side == veilwatt_verifier::types::Side::Sell)
            .count();
        assert_eq!(sells as u64, p["sell_orders"].as_u64().unwrap());
        assert!(r.orders.iter().all(|o| o.owner.is_none()), "{r:?}");
        trades += r.trades.len() as u64;
    }
    assert_eq!(trades, summary["trades"].as_u64().unwrap());
}
