//! Keys and their provenance, through real nodes: a proof forged with the development keys'
//! public trapdoor is refused (422) by a market on ceremony keys and accepted only on a chain
//! marked `insecure_dev_keys`; the node and the audit refuse development keys on a chain that
//! is not marked so. (The household tools' refusals: prover/tests/it/cli.rs.)

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::order::{OrderPublic, Side as CircuitSide};
use veilwatt_node::config::Home;
use veilwatt_node::run;
use veilwatt_params::ceremony::{self, ptau};
use veilwatt_params::{dev, CircuitKeys, MarketCircuit, Provenance};
use veilwatt_verifier::types::*;
use veilwatt_verifier::OrderProof;

const T: Duration = Duration::from_secs(60);

/// A finished two-contribution ceremony of the order circuit over a seeded phase 1; the keys are
/// written to `out`.
fn ceremony_keys(dir: &Path, out: &Path) -> CircuitKeys {
    let power = dev::market_phase1_power().unwrap();
    let ptau_file = dir.join("pot.ptau");
    std::fs::write(
        &ptau_file,
        ptau::write_insecure(power, &dev::phase1_secrets(4242)).unwrap(),
    )
    .unwrap();
    // The market here has no shielded pool: the order circuit's keys are all it loads.
    ceremony::init(&ptau_file, &dir.join("t0"), &[MarketCircuit::Order]).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    ceremony::contribute(&dir.join("t0"), &dir.join("t1"), Some("utility"), &mut rng).unwrap();
    ceremony::contribute(
        &dir.join("t1"),
        &dir.join("t2"),
        Some("community"),
        &mut rng,
    )
    .unwrap();
    ceremony::finalize(&dir.join("t2"), out, None)
        .unwrap()
        .into_iter()
        .map(|(keys, _)| keys)
        .find(|k| k.circuit == MarketCircuit::Order)
        .unwrap()
}

/// A 4,000,000,000 Wh sale by meter 1, backed by no statement, with a proof forged from the
/// development keys' trapdoor for the verifying key `vk`.
fn forged_sale(
    g: &Genesis,
    owner: &ed25519_dalek::SigningKey,
    vk: &ark_groth16::VerifyingKey<ark_bn254::Bn254>,
) -> Transaction {
    let period = (now() - g.genesis_time) / g.period_secs - 1;
    let quantity = 4_000_000_000u32;
    let public = OrderPublic {
        meter: meter(1).public_key(),
        period,
        side: CircuitSide::Sell,
        quantity_wh: quantity,
    };
    let proof = dev::forge(
        vk,
        &dev::trapdoor(dev::DEFAULT_SEED, MarketCircuit::Order),
        &public.to_field_elements(),
        &mut ChaCha20Rng::seed_from_u64(1),
    );
    Transaction::sign(
        &g.chain_id,
        TxBody::Order {
            meter: meter_key(1),
            period,
            side: Side::Sell,
            quantity_wh: quantity,
            limit_price: 10,
            proof: OrderProof::from_proof(&proof),
        },
        g.tx_expiry(now()),
        owner,
    )
}

/// Starts a node for `g` (with `keys` in HOME/keys if given), enrols meter 1, submits the
/// forged sale and returns the answer.
async fn submit_forged(
    dir: &Path,
    g: &Genesis,
    keys: Option<&Path>,
    vk: &ark_groth16::VerifyingKey<ark_bn254::Bn254>,
) -> (u16, serde_json::Value) {
    let home = make_home(dir, g, |_| {});
    if let Some(k) = keys {
        let dst = home.join("keys");
        std::fs::create_dir_all(&dst).unwrap();
        for f in [veilwatt_params::VK_FILE, veilwatt_params::MANIFEST_FILE] {
            std::fs::copy(k.join(f), dst.join(f)).unwrap();
        }
    }
    let node = run::start(&Home::load(&home).unwrap()).await.unwrap();
    let api = Api::new(format!("http://{}", node.api_addr));
    let owner = key(1);
    let e = enroll(g, 1, &owner);
    assert_eq!(api.submit(&e).await.0, 202);
    api.wait_committed(&e.id(), T).await;
    let r = api.submit(&forged_sale(g, &owner, vk)).await;
    node.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_proof_is_refused_on_ceremony_keys_and_accepted_only_on_an_insecure_chain() {
    let dir = tempfile::tempdir().unwrap();
    let keydir = dir.path().join("keys");
    let keys = ceremony_keys(dir.path(), &keydir);

    // A real market: ceremony keys, not marked insecure. The attacker forges with the public
    // trapdoor against the market's own verifying key: 422.
    let mut real = genesis("ceremony-market", 60, 3600);
    real.vk_id = Hash32(keys.vk_id.0);
    real.insecure_dev_keys = false;
    let r = submit_forged(&dir.path().join("real"), &real, Some(&keydir), &keys.vk).await;
    assert_eq!(r.0, 422, "{r:?}");
    assert_eq!(r.1["code"], "invalid_proof", "{r:?}");

    // A play market on the development keys: the same forgery is accepted.
    let play = genesis("play-market", 60, 3600);
    assert!(play.insecure_dev_keys);
    let dev_vk = dev::keys().unwrap().vk.clone();
    let r = submit_forged(&dir.path().join("play"), &play, None, &dev_vk).await;
    assert_eq!(r.0, 202, "{r:?}");
}

fn node_cmd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_veilwatt-node"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn development_keys_on_an_unmarked_chain_are_refused_by_node_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    // The default development keys pinned by a genesis that does not say insecure_dev_keys.
    let play = genesis("unmarked", 60, 3600);
    let home = make_home(dir.path(), &play, |_| {});
    let gpath = home.join("genesis.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&gpath).unwrap()).unwrap();
    v["insecure_dev_keys"] = false.into();
    std::fs::write(&gpath, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = node_cmd(&["run", "--home", home.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INSECURE development keys"), "{err}");
    // The audit refuses the same genesis.
    let out = Command::new(sibling_bin("veilwatt-verifier"))
        .args([
            "audit",
            "--genesis",
            gpath.to_str().unwrap(),
            "--ledger",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INSECURE development keys"), "{err}");

    // Other development keys (seed 5) in HOME/keys, pinned by an unmarked genesis.
    let other = dev::generate_insecure(5, MarketCircuit::Order).unwrap();
    let mut g = genesis("unmarked-other", 60, 3600);
    g.vk_id = Hash32(other.vk_id.0);
    g.insecure_dev_keys = false;
    let home = make_home(&dir.path().join("b"), &g, |_| {});
    other
        .write(&home.join("keys"), Provenance::InsecureDev { seed: 5 })
        .unwrap();
    let out = node_cmd(&["run", "--home", home.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INSECURE development keys"), "{err}");
}
