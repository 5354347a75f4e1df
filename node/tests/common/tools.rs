//! Running the command-line tools (`veilwatt-prover`, `veilwatt-meter`, `veilwatt-node
//! registrar`) from tests, and the files they read.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use veilwatt_verifier::types::Genesis;

use super::{registrar, sibling_bin, wallet, REGISTRAR_SEED};

/// `p` as the `&str` a command line takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the workspace binary `name` with `args`.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(sibling_bin(name)).args(args).output().unwrap()
}

/// Runs `name` with `args`, which must succeed, and reads its JSON output.
pub fn ok_json(name: &str, args: &[&str]) -> Value {
    let out = run(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{name} {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The files the tools need beside a validator: its genesis, the registrar's key file and a
/// passphrase file for the households' wallets.
pub struct ToolFiles {
    pub genesis: PathBuf,
    pub registrar_key: PathBuf,
    pub pass: PathBuf,
}

impl ToolFiles {
    /// Writes them into `dir`.
    pub fn write(dir: &Path, g: &Genesis) -> Self {
        let genesis = dir.join("genesis.json");
        std::fs::write(&genesis, serde_json::to_vec_pretty(g).unwrap()).unwrap();
        let registrar_key = dir.join("registrar.json");
        std::fs::write(
            &registrar_key,
            serde_json::json!({
                "public_key": wallet(&registrar()),
                "secret": hex::encode(REGISTRAR_SEED)
            })
            .to_string(),
        )
        .unwrap();
        let pass = dir.join("passphrase");
        std::fs::write(&pass, "a household passphrase\n").unwrap();
        Self {
            genesis,
            registrar_key,
            pass,
        }
    }
}
