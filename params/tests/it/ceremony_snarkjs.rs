//! Interoperability with snarkjs, the ecosystem's tool: a chain mixing our contributions and a
//! snarkjs one verifies in both tools, and snarkjs builds the same initial keys from our `.r1cs`.
//!
//! snarkjs is pinned in `tools/snarkjs` (`npm ci --prefix tools/snarkjs`, which `.ci/run` does);
//! `VEILWATT_SNARKJS` may name another executable. Without it this test fails (it does not skip).

use crate::common;

use common::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use veilwatt_params::ceremony::{self, zkey::Zkey, MarketCircuit};

fn snarkjs() -> PathBuf {
    if let Some(p) = std::env::var_os("VEILWATT_SNARKJS") {
        return PathBuf::from(p);
    }
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/snarkjs/node_modules/.bin/snarkjs");
    assert!(
        p.exists(),
        "snarkjs not installed: run `npm ci --prefix tools/snarkjs` (or set VEILWATT_SNARKJS)"
    );
    p
}

/// Runs snarkjs; returns (success, stdout + stderr).
fn run_snarkjs(args: &[&str]) -> (bool, String) {
    run_snarkjs_each(vec![args.iter().map(|a| a.to_string()).collect()]).remove(0)
}

/// Runs one snarkjs process per argument list, all at once (each is single-threaded), and
/// returns their (success, stdout + stderr) in order.
fn run_snarkjs_each(runs: Vec<Vec<String>>) -> Vec<(bool, String)> {
    let children: Vec<_> = runs
        .into_iter()
        .map(|args| {
            Command::new(snarkjs())
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("snarkjs runs")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().expect("snarkjs runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        })
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Copies the files that travel with a transcript (all but the key) from `a` to `b`.
fn carry(a: &Path, b: &Path) {
    std::fs::create_dir_all(b).unwrap();
    std::fs::copy(a.join("ceremony.json"), b.join("ceremony.json")).unwrap();
    for c in MarketCircuit::ALL {
        let f = format!("{}.r1cs", c.name());
        std::fs::copy(a.join(&f), b.join(&f)).unwrap();
    }
}

#[test]
fn a_chain_with_a_snarkjs_contribution_verifies_in_both_tools() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let ptau = write_ptau(r, "pot.ptau", circuit_power(), 31);
    let d: Vec<PathBuf> = (0..5).map(|i| r.join(format!("t{i}"))).collect();
    ceremony::init(&ptau, &d[0], MarketCircuit::ALL).unwrap();

    // snarkjs builds the same initial key from our .r1cs and the phase-1 file: every section
    // and the header, for the order circuit. (For every circuit, `zkey verify` below builds
    // snarkjs' own initial key from our .r1cs and checks the final key's IC, A, B1 and B2
    // sections identical to it and its C and H consistent with it: doing `zkey new` for the
    // other circuits too would build their initial keys twice, a minute of CI.)
    let theirs = r.join("snarkjs-init-order.zkey");
    let (ok, log) = run_snarkjs(&[
        "zkey",
        "new",
        s(&d[0].join("order.r1cs")),
        s(&ptau),
        s(&theirs),
    ]);
    assert!(ok, "{log}");
    let theirs = Zkey::from_bytes(&std::fs::read(&theirs).unwrap(), "snarkjs init").unwrap();
    assert_eq!(
        theirs,
        ceremony::read_zkey(&d[0], MarketCircuit::Order).unwrap()
    );

    // ours -> snarkjs -> ours -> beacon (ours).
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    ceremony::contribute(&d[0], &d[1], Some("alice"), &mut rng).unwrap();
    carry(&d[1], &d[2]);
    let runs = MarketCircuit::ALL
        .iter()
        .map(|c| {
            let zkey = format!("{}.zkey", c.name());
            vec![
                "zkey".into(),
                "contribute".into(),
                s(&d[1].join(&zkey)).into(),
                s(&d[2].join(&zkey)).into(),
                "--name=carol (snarkjs)".into(),
                "-e=typed entropy for the test".into(),
            ]
        })
        .collect();
    for (c, (ok, log)) in MarketCircuit::ALL.iter().zip(run_snarkjs_each(runs)) {
        assert!(ok, "{}: {log}", c.name());
    }
    ceremony::contribute(&d[2], &d[3], Some("dave"), &mut rng).unwrap();
    ceremony::beacon(&d[3], &d[4], &[0x5a; 32], 10, Some("beacon")).unwrap();

    // Our verify accepts the mixed chain and lists every contribution.
    let report = ceremony::verify(&d[4], Some(&ptau)).unwrap();
    assert_eq!(report.len(), MarketCircuit::ALL.len());
    for circuit in &report {
        let names: Vec<Option<String>> = circuit
            .contributions
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                Some("alice".to_owned()),
                Some("carol (snarkjs)".to_owned()),
                Some("dave".to_owned()),
                Some("beacon".to_owned())
            ],
            "{:?}",
            circuit.circuit
        );
    }

    // snarkjs accepts it too, for every circuit.
    let runs = MarketCircuit::ALL
        .iter()
        .map(|c| {
            vec![
                "zkey".into(),
                "verify".into(),
                s(&d[0].join(format!("{}.r1cs", c.name()))).into(),
                s(&ptau).into(),
                s(&d[4].join(format!("{}.zkey", c.name()))).into(),
            ]
        })
        .collect();
    for (c, (ok, log)) in MarketCircuit::ALL.iter().zip(run_snarkjs_each(runs)) {
        assert!(ok && log.contains("ZKey Ok!"), "{}: {log}", c.name());
    }

    // Proofs with the final keys verify; proofs with the previous link's keys do not.
    let (keys, _) = ceremony::finalize(&d[4], &r.join("keys"), Some(&ptau))
        .unwrap()
        .swap_remove(0);
    assert_eq!(keys.circuit, MarketCircuit::Order);
    let (public, proof) = prove(&keys.pk, 3);
    assert!(verifies(&keys.vk, &public, &proof));
    let previous =
        ceremony::proving_key(&ceremony::read_zkey(&d[3], MarketCircuit::Order).unwrap());
    let (public, stale) = prove(&previous, 4);
    assert!(!verifies(&keys.vk, &public, &stale));
}

#[test]
fn snarkjs_rejects_what_our_verify_rejects() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    // The order circuit alone, over a phase 1 of its size (the tampering is circuit-agnostic).
    let order = MarketCircuit::Order.r1cs().unwrap();
    let power = veilwatt_params::ceremony::ptau::phase1_power_for(order.domain_power());
    let ptau = write_ptau(r, "pot.ptau", power, 32);
    let (d0, d1, d2) = (r.join("t0"), r.join("t1"), r.join("t2"));
    ceremony::init(&ptau, &d0, &[MarketCircuit::Order]).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(78);
    ceremony::contribute(&d0, &d1, Some("alice"), &mut rng).unwrap();
    ceremony::contribute(&d1, &d2, Some("mallory"), &mut rng).unwrap();
    // Mallory changed delta but kept alice's L query.
    let mut z = ceremony::read_zkey(&d2, MarketCircuit::Order).unwrap();
    z.l = ceremony::read_zkey(&d1, MarketCircuit::Order).unwrap().l;
    std::fs::write(d2.join("order.zkey"), z.to_bytes()).unwrap();
    let e = ceremony::verify(&d2, Some(&ptau)).unwrap_err().to_string();
    assert!(
        e.contains("L query") && e.contains("contribution #2 (mallory)"),
        "{e}"
    );
    let (ok, log) = run_snarkjs(&[
        "zkey",
        "verify",
        s(&d0.join("order.r1cs")),
        s(&ptau),
        s(&d2.join("order.zkey")),
    ]);
    assert!(
        !log.contains("ZKey Ok!"),
        "snarkjs accepted a tampered key: {log}"
    );
    let _ = ok;
}
