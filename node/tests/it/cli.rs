//! The administrative commands: genesis, init, testnet.

use std::process::Command;

use veilwatt_node::config::{read_genesis, Home};

fn node(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_veilwatt-node"))
        .args(args)
        .output()
        .unwrap()
}

const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

#[test]
fn genesis_then_init_writes_a_loadable_home() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("genesis.json");
    let out = node(&[
        "genesis",
        "--out",
        g.to_str().unwrap(),
        "--validator",
        &format!("utility:{KEY}:2"),
        "--registrar",
        KEY,
        "--chain-id",
        "cli-test",
        "--period-secs",
        "900",
        "--mechanism",
        "pay-as-bid",
        "--insecure-dev-keys",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let genesis = read_genesis(&g).unwrap();
    assert_eq!(genesis.chain_id, "cli-test");
    assert_eq!(genesis.validators[0].power, 2);

    let home = dir.path().join("home");
    let init = |home: &std::path::Path| {
        node(&[
            "init",
            "--genesis",
            g.to_str().unwrap(),
            "--home",
            home.to_str().unwrap(),
            "--api",
            "127.0.0.1:0",
        ])
    };
    let out = init(&home);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The new key is not in this genesis: init says so.
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the genesis validator set"));
    let loaded = Home::load(&home).unwrap();
    assert_eq!(loaded.genesis, genesis);
    // A second init never overwrites a validator key.
    let again = init(&home);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
}

#[test]
fn bad_genesis_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("genesis.json");
    let out = node(&[
        "genesis",
        "--out",
        g.to_str().unwrap(),
        "--validator",
        "x:nothex",
        "--registrar",
        KEY,
    ]);
    assert!(!out.status.success());
    let out = node(&[
        "genesis",
        "--out",
        g.to_str().unwrap(),
        "--validator",
        &format!("v:{KEY}"),
        "--registrar",
        KEY,
        "--price-floor",
        "50",
        "--price-cap",
        "10",
        "--insecure-dev-keys",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("price_floor"));
    // Neither a ceremony key id nor the explicit flag for a play market.
    let out = node(&[
        "genesis",
        "--out",
        g.to_str().unwrap(),
        "--validator",
        &format!("v:{KEY}"),
        "--registrar",
        KEY,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--vk-id"));
    // The development key's id given explicitly, without the flag: refused too.
    let out = node(&[
        "genesis",
        "--out",
        g.to_str().unwrap(),
        "--validator",
        &format!("v:{KEY}"),
        "--registrar",
        KEY,
        "--vk-id",
        veilwatt_params::dev::PINNED_VK_ID,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("INSECURE development keys"));
    assert!(!g.exists());
}

#[test]
fn testnet_writes_one_home_per_validator_sharing_one_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let out = node(&[
        "testnet",
        "--validators",
        "4",
        "--out",
        dir.path().to_str().unwrap(),
        "--base-port",
        "31000",
        "--insecure-dev-keys",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let homes: Vec<Home> = (0..4)
        .map(|i| Home::load(&dir.path().join(format!("node{i}"))).unwrap())
        .collect();
    let g = &homes[0].genesis;
    assert_eq!(g.validators.len(), 4);
    for (i, h) in homes.iter().enumerate() {
        assert_eq!(&h.genesis, g);
        assert_eq!(h.config.api.listen.port(), 31000 + i as u16);
        assert_eq!(h.config.consensus.persistent_peers.len(), 3);
        let me = ed25519_dalek::SigningKey::from_bytes(&h.secret)
            .verifying_key()
            .to_bytes();
        assert_eq!(g.validators[i].key.0, me);
    }
    // The registrar's secret key is readable by its owner only.
    let registrar = dir.path().join("registrar_key.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&registrar).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "registrar_key.json mode {mode:o}");
}
