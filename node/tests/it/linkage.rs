//! The linkage test (issue 19): a simulated community trades on the anonymous market through
//! `veilwatt-demo` (real validator, real proofs; every household places its net surplus
//! or demand each period through the same planning path as `veilwatt-prover auto`, rounded
//! down to 100 Wh). Then, from the public record alone (the blocks of the node's export and
//! the period results its API serves), the linkage analysis looks for any value of an order,
//! cancel, trade, note or spend that appears in two different periods (tree roots and genesis
//! constants aside), any identity the ledger knows (enrolled meter keys, nullifier-key
//! commitments, wallet keys) in an order, trade or outcome, and any field of an order that
//! would name or locate a household. It prints what it looked for and what it found.
//!
//! The community's size: `VEILWATT_LINKAGE_HOUSEHOLDS` (default 12) households over
//! `VEILWATT_LINKAGE_PERIODS` (default 8) periods of `VEILWATT_LINKAGE_PERIOD_SECS` (default
//! 8) seconds; the full size (50 x 48, about a second of proving per household and
//! period on 2 cores, so periods of 40 s) is run with
//! `VEILWATT_LINKAGE_HOUSEHOLDS=50 VEILWATT_LINKAGE_PERIODS=48 VEILWATT_LINKAGE_PERIOD_SECS=40
//! cargo test --release -p veilwatt-node --test it linkage:: -- --nocapture` (docs/benchmarks.md).

use crate::common;

use veilwatt_verifier::ledger::PeriodResult;
use veilwatt_verifier::linkage;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn nothing_in_the_public_record_links_a_households_periods() {
    let households = setting("VEILWATT_LINKAGE_HOUSEHOLDS", 12);
    let periods = setting("VEILWATT_LINKAGE_PERIODS", 8);
    let period_secs = setting("VEILWATT_LINKAGE_PERIOD_SECS", 8);
    // `VEILWATT_LINKAGE_DIR` keeps the demo's directory and the export there (for the audit
    // benchmark); otherwise both live in a temporary directory.
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("VEILWATT_LINKAGE_DIR")
        .map_or_else(|| tmp.path().to_owned(), std::path::PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    let run = common::run_demo(&dir, households, periods, period_secs);
    let report = &run.report;
    let orders = report["summary"]["orders"].as_u64().unwrap();
    println!("demo summary: {}", report["summary"]);
    let (home, g, export) = (&run.home, &run.genesis, &run.export);

    // The public record: the export's blocks...
    let blocks: Vec<_> = export.blocks.iter().map(|b| b.block.clone()).collect();

    // ...and every period result the API serves (the validator restarted on its home).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let results: Vec<PeriodResult> = rt.block_on(async {
        let running = veilwatt_node::run::start(&veilwatt_node::config::Home::load(home).unwrap())
            .await
            .unwrap();
        let client =
            veilwatt_prover::client::NodeClient::new(&format!("http://{}", running.api_addr));
        let mut results = Vec::new();
        for p in report["periods"].as_array().unwrap() {
            let view = client.period(p["period"].as_u64().unwrap()).await.unwrap();
            results.push(view.result().expect("a cleared period"));
        }
        running.shutdown().await;
        results
    });
    assert_eq!(results.len() as u64, periods);

    let r = linkage::analyse(g, &blocks, &results).unwrap();
    println!("{}", r.render());
    assert_eq!(r.unlinkable_orders, orders);
    assert!(orders >= households * periods / 2, "{report}");
    assert!(r.trades > 0);
    assert!(r.identities >= households, "every enrolment was looked for");
    assert!(
        r.order_quantities.iter().all(|q| q % 100 == 0),
        "{:?}",
        r.order_quantities
    );
    assert!(r.is_unlinkable(), "{}", r.render());
}
