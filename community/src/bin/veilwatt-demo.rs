//! `veilwatt-demo`: a local demo community on a validator embedded in this process (or on
//! several validator processes), end to end through the real API, provers and ledger
//! (`veilwatt_community::demo`). The README's first command runs it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use veilwatt_community::demo;

#[derive(Parser)]
#[command(
    name = "veilwatt-demo",
    version,
    about = "Run a local demo community: simulated households trade energy on unlinkable orders"
)]
struct Args {
    /// Households.
    #[arg(long, default_value_t = 16)]
    households: usize,
    /// Periods traded (each stands for one simulated hour of a summer day from 09:00).
    #[arg(long, default_value_t = 6)]
    periods: u64,
    /// Validators (1: embedded in this process; more: `veilwatt-node` processes on 127.0.0.1,
    /// the binary next to this one).
    #[arg(long, default_value_t = 1)]
    validators: usize,
    /// Real length of a period, seconds.
    #[arg(long, default_value_t = 8)]
    period_secs: u64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Working directory (recreated on every run).
    #[arg(long, default_value = "veilwatt-demo")]
    dir: PathBuf,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Progress on stderr; the engine and node logs only when RUST_LOG asks.
    veilwatt_node::run::install_logging("error,arc_malachitebft_network=off");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(demo::run(demo::DemoOptions {
        households: args.households,
        periods: args.periods,
        validators: args.validators,
        period_secs: args.period_secs,
        seed: args.seed,
        dir: args.dir,
    }))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", demo::render(&report));
    }
    Ok(())
}
