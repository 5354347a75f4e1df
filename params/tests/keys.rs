//! Key generation, pinning and loading.

use std::process::Command;
use veilwatt_params::{dev, ExpectedIds, KeyId, OrderKeys, ParamsError, PK_FILE, VK_FILE};

#[test]
fn pinned_ids_match_the_circuit() {
    let k = dev::generate_insecure(dev::DEFAULT_SEED).unwrap();
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
fn dev_keys_are_deterministic_per_seed() {
    let a = dev::generate_insecure(7).unwrap();
    let b = dev::generate_insecure(7).unwrap();
    let c = dev::generate_insecure(8).unwrap();
    assert_eq!((a.vk_id, a.pk_id), (b.vk_id, b.pk_id));
    assert_ne!(a.vk_id, c.vk_id);
}

#[test]
fn loader_refuses_mismatching_files() {
    let dir = tempfile::tempdir().unwrap();
    let k = dev::generate_insecure(3).unwrap();
    k.write(
        dir.path(),
        veilwatt_params::Provenance::InsecureDev { seed: 3 },
    )
    .unwrap();
    let ids = ExpectedIds {
        vk_id: k.vk_id,
        pk_id: k.pk_id,
    };
    let loaded = OrderKeys::load(dir.path(), &ids).unwrap();
    assert_eq!(loaded.vk, k.vk);

    // Another key's id.
    let wrong = ExpectedIds {
        vk_id: KeyId([7; 32]),
        ..ids
    };
    assert!(matches!(
        OrderKeys::load(dir.path(), &wrong),
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
        let err = OrderKeys::load(dir.path(), &ids).unwrap_err();
        assert!(
            matches!(err, ParamsError::IdMismatch { .. }),
            "{file}: {err}"
        );
        std::fs::write(&path, &original).unwrap();
    }

    // A missing file.
    std::fs::remove_file(dir.path().join(PK_FILE)).unwrap();
    assert!(matches!(
        OrderKeys::load(dir.path(), &ids),
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
    assert_eq!(v["vk_id"], dev::PINNED_VK_ID);
    assert_eq!(v["public_inputs"], 5);
    assert_eq!(
        v["constraints"].as_u64().unwrap() as usize,
        veilwatt_params::constraint_count().unwrap()
    );
    for f in [PK_FILE, VK_FILE, veilwatt_params::MANIFEST_FILE] {
        assert!(dir.path().join(f).is_file(), "{f} written");
    }
    // The written keys load under the pinned ids.
    OrderKeys::load(dir.path(), &dev::pinned_ids()).unwrap();
}
