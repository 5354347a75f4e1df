//! `veilwatt-params`: generate and check Groth16 keys for the order circuit.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use veilwatt_params::{dev, read_manifest, ExpectedIds, OrderKeys};

#[derive(Parser)]
#[command(version, about = "Groth16 keys for Veilwatt's order circuit")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write INSECURE development keys derived from a public seed (tests and demos only).
    DevSetup {
        /// Directory to write order.pk, order.vk and order.json into.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the deterministic setup.
        #[arg(long, default_value_t = dev::DEFAULT_SEED)]
        seed: u64,
    },
    /// Check that a key directory's files hash to the given ids and load.
    Check {
        /// Key directory.
        #[arg(long)]
        dir: PathBuf,
        /// Expected verifying-key id (hex SHA-256).
        #[arg(long)]
        vk_id: String,
        /// Expected proving-key id (hex SHA-256).
        #[arg(long)]
        pk_id: String,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::DevSetup { out, seed } => {
            eprintln!(
                "veilwatt-params: generating INSECURE development keys from public seed {seed}"
            );
            let keys = dev::generate_insecure(seed).context("key generation")?;
            let m = keys.write(&out, Some(seed)).context("writing keys")?;
            println!(
                "{}",
                serde_json::json!({
                    "vk_id": m.vk_id,
                    "constraints": m.constraints,
                    "public_inputs": m.public_inputs,
                })
            );
        }
        Command::Check { dir, vk_id, pk_id } => {
            let expected = ExpectedIds {
                vk_id: vk_id.parse()?,
                pk_id: pk_id.parse()?,
            };
            OrderKeys::load(&dir, &expected)?;
            let m = read_manifest(&dir)?;
            println!("{}", serde_json::to_string(&m)?);
        }
    }
    Ok(())
}
