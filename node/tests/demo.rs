//! The demo end to end, as a real process: `veilwatt-node demo --json` simulates meters, enrols
//! them, funds the households through shielded notes, proves and submits orders over HTTP, lets the periods clear and reports; the report
//! must equal what the ledger it left behind says when exported and replayed through the state
//! machine with every proof re-verified.

use std::process::Command;

use serde_json::Value;
use veilwatt_params::dev;
use veilwatt_verifier::ledger::MarketVerifier;
use veilwatt_verifier::ledger::{Ledger, LedgerRead};
use veilwatt_verifier::state::MemoryState;
use veilwatt_verifier::types::Genesis;
use veilwatt_verifier::{JoinSplitVerifier, OrderVerifier};

#[test]
fn demo_report_matches_the_replayed_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_veilwatt-node"))
        .args([
            "demo",
            "--households",
            "8",
            "--periods",
            "2",
            "--period-secs",
            "4",
            "--json",
            "--dir",
        ])
        .arg(&work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = &report["summary"];
    let periods = report["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 2);
    assert!(summary["orders"].as_u64().unwrap() > 0, "{report}");
    // A healthy run ends cleanly: no error or warning logged.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ERROR") && !stderr.contains("WARN"),
        "{stderr}"
    );
    // What was proven: every order's proof and every household's funding join-split, counted
    // by the validator that verified them; what stayed private: every one-minute reading.
    assert_eq!(
        summary["order_proofs_verified"], summary["orders"],
        "{report}"
    );
    assert_eq!(
        summary["spend_proofs_verified"].as_u64(),
        Some(8),
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

    // Export the ledger the demo left and replay it.
    let home = work.join("node0");
    let file = dir.path().join("export.json");
    let st = Command::new(env!("CARGO_BIN_EXE_veilwatt-node"))
        .args(["export", "--home"])
        .arg(&home)
        .arg("--out")
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success());
    let export = veilwatt_verifier::audit::Export::read_from(std::io::BufReader::new(
        std::fs::File::open(&file).unwrap(),
    ))
    .unwrap();
    let g: Genesis =
        serde_json::from_slice(&std::fs::read(home.join("genesis.json")).unwrap()).unwrap();
    // The demo funds households through shielded notes: its spends are verified too.
    assert!(g.shielded.is_some());
    let (order, js) = (
        dev::keys().unwrap(),
        dev::keys_of(veilwatt_params::MarketCircuit::JoinSplit).unwrap(),
    );
    let verifier = MarketVerifier {
        order: OrderVerifier::new(&order.vk, order.vk_id).unwrap(),
        joinsplit: Some(JoinSplitVerifier::new(&js.vk, js.vk_id).unwrap()),
        unlinkable: None,
    };
    let ledger = Ledger::new(&g).unwrap();
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
        trades += r.trades.len() as u64;
    }
    assert_eq!(trades, summary["trades"].as_u64().unwrap());
}
