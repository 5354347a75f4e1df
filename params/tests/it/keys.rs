//! Key generation, pinning and loading.

use crate::common;

use common::{prove_joinsplit, prove_order_v2, verifies_inputs};
use std::process::Command;
use veilwatt_params::{
    dev, CircuitKeys, ExpectedIds, KeyFile, KeyId, MarketCircuit, ParamsError, PK_FILE, VK_FILE,
};

const ORDER: MarketCircuit = MarketCircuit::Order;

#[test]
fn pinned_ids_match_the_circuit() {
    let k = dev::generate_insecure(dev::DEFAULT_SEED, ORDER).unwrap();
    assert_eq!(
        (k.vk_id, k.pk_id),
        (dev::pinned_ids().vk_id, dev::pinned_ids().pk_id),
        "the order circuit changed: update PINNED_VK_ID / PINNED_PK_ID in params/src/dev.rs \
         (vk {} pk {})",
        k.vk_id,
        k.pk_id
    );
    // Cached keys load and are the same keys.
    let cached = dev::keys().unwrap();
    assert_eq!(cached.vk, k.vk);
    assert_eq!(cached.vk_id, k.vk_id);
}

#[test]
fn pinned_joinsplit_ids_match_the_circuit() {
    let c = MarketCircuit::JoinSplit;
    let k = dev::generate_insecure(dev::DEFAULT_SEED, c).unwrap();
    assert_eq!(
        (k.vk_id, k.pk_id),
        (dev::pinned_ids_of(c).vk_id, dev::pinned_ids_of(c).pk_id),
        "the join-split circuit changed: update PINNED_JOINSPLIT_VK_ID / PINNED_JOINSPLIT_PK_ID \
         in params/src/dev.rs (vk {} pk {})",
        k.vk_id,
        k.pk_id
    );
    // Cached keys load and are the same keys.
    assert_eq!(dev::keys_of(c).unwrap().vk, k.vk);
    // Its own contribution secret: the order circuit's trapdoor does not open it.
    let order = dev::trapdoor(dev::DEFAULT_SEED, ORDER);
    let own = dev::trapdoor(dev::DEFAULT_SEED, c);
    assert_eq!(order.phase1.tau, own.phase1.tau, "one phase 1");
    assert_ne!(order.delta, own.delta);
    use ark_ec::{AffineRepr, CurveGroup};
    let g1 = ark_bn254::G1Affine::generator();
    assert_eq!(k.pk.delta_g1, (g1 * own.delta).into_affine());
    // They prove (snarkjs' reduction, as for every key from the ceremony code) and a proof
    // verifies for its own public inputs only.
    let (public, proof) = prove_joinsplit(&k.pk, 13);
    assert!(verifies_inputs(&k.vk, &public, &proof));
    let mut other = public;
    other[veilwatt_circuits::joinsplit::public_input::BINDING] += ark_bn254::Fr::from(1u64);
    assert!(!verifies_inputs(&k.vk, &other, &proof));
}

#[test]
fn pinned_order_v2_ids_match_the_circuit() {
    let c = MarketCircuit::OrderV2;
    let k = dev::generate_insecure(dev::DEFAULT_SEED, c).unwrap();
    assert_eq!(
        (k.vk_id, k.pk_id),
        (dev::pinned_ids_of(c).vk_id, dev::pinned_ids_of(c).pk_id),
        "the unlinkable order circuit changed: update PINNED_ORDER_V2_VK_ID / \
         PINNED_ORDER_V2_PK_ID in params/src/dev.rs (vk {} pk {})",
        k.vk_id,
        k.pk_id
    );
    assert_eq!(dev::keys_of(c).unwrap().vk, k.vk);
    let own = dev::trapdoor(dev::DEFAULT_SEED, c);
    for other in [ORDER, MarketCircuit::JoinSplit] {
        assert_ne!(dev::trapdoor(dev::DEFAULT_SEED, other).delta, own.delta);
    }
    let (public, proof) = prove_order_v2(&k.pk, 5);
    assert!(verifies_inputs(&k.vk, &public, &proof));
    for i in 0..public.len() {
        let mut other = public;
        other[i] += ark_bn254::Fr::from(1u64);
        assert!(!verifies_inputs(&k.vk, &other, &proof), "input {i}");
    }
}

#[test]
fn dev_keys_are_deterministic_per_seed() {
    let a = dev::generate_insecure(7, ORDER).unwrap();
    let b = dev::generate_insecure(7, ORDER).unwrap();
    let c = dev::generate_insecure(8, ORDER).unwrap();
    assert_eq!((a.vk_id, a.pk_id), (b.vk_id, b.pk_id));
    assert_ne!(a.vk_id, c.vk_id);
}

#[test]
fn loader_refuses_mismatching_files() {
    let dir = tempfile::tempdir().unwrap();
    let k = dev::generate_insecure(3, ORDER).unwrap();
    k.write(
        dir.path(),
        veilwatt_params::Provenance::InsecureDev { seed: 3 },
    )
    .unwrap();
    let ids = ExpectedIds {
        vk_id: k.vk_id,
        pk_id: k.pk_id,
    };
    let loaded = CircuitKeys::load(dir.path(), ORDER, &ids).unwrap();
    assert_eq!(loaded.vk, k.vk);

    // Another key's id.
    let wrong = ExpectedIds {
        vk_id: KeyId([7; 32]),
        ..ids
    };
    assert!(matches!(
        CircuitKeys::load(dir.path(), ORDER, &wrong),
        Err(ParamsError::IdMismatch { .. })
    ));

    // A flipped byte in either file.
    for file in [VK_FILE, PK_FILE] {
        let path = dir.path().join(file);
        let original = std::fs::read(&path).unwrap();
        let mut bytes = original.clone();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = CircuitKeys::load(dir.path(), ORDER, &ids).unwrap_err();
        assert!(
            matches!(err, ParamsError::IdMismatch { .. }),
            "{file}: {err}"
        );
        std::fs::write(&path, &original).unwrap();
    }

    // A missing file.
    std::fs::remove_file(dir.path().join(PK_FILE)).unwrap();
    assert!(matches!(
        CircuitKeys::load(dir.path(), ORDER, &ids),
        Err(ParamsError::Io { .. })
    ));
}

#[test]
fn cli_dev_setup_prints_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_veilwatt-params"))
        .args(["dev-setup", "--out"])
        .arg(dir.path())
        .args(["--seed", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for &c in MarketCircuit::ALL {
        let k = &v[c.name()];
        assert_eq!(k["vk_id"], dev::pinned_ids_of(c).vk_id.to_string());
        assert_eq!(k["pk_id"], dev::pinned_ids_of(c).pk_id.to_string());
        assert_eq!(k["public_inputs"], c.public_inputs());
        assert_eq!(
            k["constraints"].as_u64().unwrap() as usize,
            veilwatt_params::constraint_count(c).unwrap()
        );
        for file in [KeyFile::Proving, KeyFile::Verifying, KeyFile::Manifest] {
            let f = file.name(c);
            assert!(dir.path().join(&f).is_file(), "{f} written");
        }
        CircuitKeys::load(dir.path(), c, &dev::pinned_ids_of(c)).unwrap();
    }
    assert_eq!(v["order"]["public_inputs"], 5);
    for f in [PK_FILE, VK_FILE, veilwatt_params::MANIFEST_FILE] {
        assert!(dir.path().join(f).is_file(), "{f} written");
    }
    // The written keys load under the pinned ids.
    CircuitKeys::load(dir.path(), ORDER, &dev::pinned_ids()).unwrap();
}
