//! The phase-2 ceremony: a chain of contributions and a beacon verifies and gives working keys;
//! every kind of tampering is caught and named.

use crate::common;

use ark_bn254::Fr;
use ark_r1cs_std::{alloc::AllocVar, eq::EqGadget, fields::fp::FpVar};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use common::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::Path;
use veilwatt_params::ceremony::{
    self, phase2, ptau::Phase1File, r1cs::R1cs, zkey::Zkey, CeremonyError, MarketCircuit,
    Provenance,
};
use veilwatt_params::{dev, CircuitKeys};

fn zkey_file(dir: &Path) -> std::path::PathBuf {
    dir.join("order.zkey")
}

fn load(dir: &Path) -> Zkey {
    ceremony::read_zkey(dir, MarketCircuit::Order).unwrap()
}

fn store(dir: &Path, z: &Zkey) {
    std::fs::write(zkey_file(dir), z.to_bytes()).unwrap();
}

fn verify_err(dir: &Path) -> String {
    match ceremony::verify(dir, Some(shared_ptau())) {
        Ok(_) => panic!("tampered transcript in {} verified", dir.display()),
        Err(e) => e.to_string(),
    }
}

/// init -> alice -> bob -> beacon, in `root/{0,1,2,3}`, for the order circuit alone (the
/// tampering tests need one circuit; the first test runs every circuit).
fn chain(root: &Path, seed: u64) -> [std::path::PathBuf; 4] {
    let dirs = ["0", "1", "2", "3"].map(|d| root.join(d));
    ceremony::init(shared_ptau(), &dirs[0], &[MarketCircuit::Order]).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    ceremony::contribute(&dirs[0], &dirs[1], Some("alice"), &mut rng).unwrap();
    ceremony::contribute(&dirs[1], &dirs[2], Some("bob"), &mut rng).unwrap();
    ceremony::beacon(&dirs[2], &dirs[3], &[0xab; 32], 10, Some("beacon")).unwrap();
    dirs
}

#[test]
fn a_chain_with_a_beacon_verifies_and_its_keys_prove() {
    let root = tempfile::tempdir().unwrap();
    let dirs = ["0", "1", "2", "3"].map(|d| root.path().join(d));
    let m = ceremony::init(shared_ptau(), &dirs[0], MarketCircuit::ALL).unwrap();
    assert_eq!(m.circuits.len(), MarketCircuit::ALL.len());
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let h1 = ceremony::contribute(&dirs[0], &dirs[1], Some("alice"), &mut rng).unwrap();
    let h2 = ceremony::contribute(&dirs[1], &dirs[2], None, &mut rng).unwrap();
    let h3 = ceremony::beacon(&dirs[2], &dirs[3], &[0xab; 32], 10, Some("beacon")).unwrap();

    let report = ceremony::verify(&dirs[3], Some(shared_ptau())).unwrap();
    let order = &report[0];
    assert_eq!(order.contributions.len(), 3);
    let names: Vec<_> = order.contributions.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, [Some("alice".into()), None, Some("beacon".into())]);
    for (c, h) in order.contributions.iter().zip([&h1, &h2, &h3]) {
        assert_eq!(c.hash, h[0].1, "the published hash is the one verify lists");
    }
    // Without --ptau, verify uses the file init recorded.
    ceremony::verify(&dirs[3], None).unwrap();

    // The final keys prove; a proof made with the previous link's keys does not verify.
    let keydir = root.path().join("keys");
    let finished = ceremony::finalize(&dirs[3], &keydir, None).unwrap();
    let circuits: Vec<_> = finished.iter().map(|(k, _)| k.circuit).collect();
    assert_eq!(
        circuits,
        MarketCircuit::ALL,
        "every circuit's keys are finalized"
    );
    for (_, provenance) in &finished {
        assert!(
            matches!(provenance, Provenance::Ceremony { ref contributions, .. } if contributions.len() == 3)
        );
    }
    let (keys, _) = finished.into_iter().next().unwrap();
    let loaded = CircuitKeys::load(
        &keydir,
        MarketCircuit::Order,
        &veilwatt_params::ExpectedIds {
            vk_id: keys.vk_id,
            pk_id: keys.pk_id,
        },
    )
    .unwrap();
    assert!(
        !veilwatt_params::read_manifest(&keydir, MarketCircuit::Order)
            .unwrap()
            .is_insecure()
    );
    let (public, proof) = prove(&loaded.pk, 11);
    assert!(verifies(&keys.vk, &public, &proof));
    let previous = ceremony::proving_key(&load(&dirs[2]));
    let (public, stale) = prove(&previous, 12);
    assert!(
        verifies(&previous.vk, &public, &stale),
        "the previous link's keys are consistent"
    );
    assert!(!verifies(&keys.vk, &public, &stale));

    // A transcript with no contribution cannot be finalized.
    assert!(ceremony::finalize(&dirs[0], &root.path().join("k0"), None).is_err());
}

#[test]
fn a_proof_of_knowledge_for_another_transcript_is_named() {
    let root = tempfile::tempdir().unwrap();
    let a = chain(&root.path().join("a"), 1);
    let b = chain(&root.path().join("b"), 2);
    // Bob's contribution of chain b (bound to chain b's transcript) spliced into chain a.
    let mut z = load(&a[2]);
    let other = load(&b[2]);
    z.mpc.contributions[1] = other.mpc.contributions[1].clone();
    store(&a[2], &z);
    let e = verify_err(&a[2]);
    assert!(
        e.contains("contribution #2 (bob)") && e.contains("another transcript"),
        "{e}"
    );
}

#[test]
fn a_delta_changed_without_rescaling_l_and_h_is_named() {
    let root = tempfile::tempdir().unwrap();
    let d = chain(root.path(), 3);
    let before = load(&d[1]);
    let mut after = load(&d[2]);
    after.l = before.l.clone();
    after.h = before.h.clone();
    store(&d[2], &after);
    let e = verify_err(&d[2]);
    assert!(
        e.contains("L query") && e.contains("contribution #2 (bob)"),
        "{e}"
    );
    // Only H left alone.
    let mut after = load(&d[3]);
    after.h = load(&d[2]).h;
    store(&d[3], &after);
    let e = verify_err(&d[3]);
    assert!(
        e.contains("H query") && e.contains("contribution #3 (beacon)"),
        "{e}"
    );
}

#[test]
fn a_forged_delta_or_proof_of_knowledge_is_named() {
    let root = tempfile::tempdir().unwrap();
    let d = chain(root.path(), 4);
    let mut z = load(&d[2]);
    // A header delta that no contribution produced.
    let good = z.clone();
    z.delta1 = z.mpc.contributions[0].delta_after;
    store(&d[2], &z);
    let e = verify_err(&d[2]);
    assert!(
        e.contains("[delta]_1") && e.contains("contribution #2 (bob)"),
        "{e}"
    );
    // A proof of knowledge whose G2 part is for another secret.
    let mut z = good.clone();
    z.mpc.contributions[1].g2_spx = good.mpc.contributions[0].g2_spx;
    store(&d[2], &z);
    let e = verify_err(&d[2]);
    assert!(
        e.contains("contribution #2 (bob)") && e.contains("does not verify"),
        "{e}"
    );
    // A beacon contribution whose key does not come from its beacon.
    let mut z = load(&d[3]);
    if let ceremony::zkey::ContributionKind::Beacon { hash, .. } = &mut z.mpc.contributions[2].kind
    {
        hash[0] ^= 1;
    }
    store(&d[3], &z);
    let e = verify_err(&d[3]);
    assert!(
        e.contains("contribution #3 (beacon)") && e.contains("beacon"),
        "{e}"
    );
}

#[test]
fn a_ceremony_covers_the_circuits_it_was_started_for_and_no_other() {
    let root = tempfile::tempdir().unwrap();
    let d = chain(root.path(), 9);
    let report = ceremony::verify(&d[3], None).unwrap();
    let covered: Vec<_> = report.iter().map(|r| r.circuit).collect();
    assert_eq!(covered, [MarketCircuit::Order]);
    assert!(!d[3].join("joinsplit.zkey").exists());
    let keydir = root.path().join("keys");
    ceremony::finalize(&d[3], &keydir, None).unwrap();
    assert!(keydir.join("order.pk").is_file());
    assert!(!keydir.join("joinsplit.pk").exists() && !keydir.join("order_v2.pk").exists());

    // The manifest's list is checked: no circuit, an unknown one, one twice, out of order,
    // or one whose files are missing.
    let manifest = d[3].join(ceremony::MANIFEST);
    let original = std::fs::read_to_string(&manifest).unwrap();
    let m: serde_json::Value = serde_json::from_str(&original).unwrap();
    let order = m["circuits"][0].clone();
    let with = |circuits: serde_json::Value| {
        let mut m = m.clone();
        m["circuits"] = circuits;
        std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
        verify_err(&d[3])
    };
    let renamed = |name: &str| {
        let mut c = order.clone();
        c["name"] = name.into();
        c
    };
    for (circuits, needle) in [
        (serde_json::json!([]), "one or more"),
        (serde_json::json!([renamed("mint")]), "one or more"),
        (serde_json::json!([order, order]), "each once"),
        (
            serde_json::json!([renamed("joinsplit"), order]),
            "in that order",
        ),
        (
            serde_json::json!([order, renamed("joinsplit")]),
            "joinsplit",
        ),
    ] {
        let e = with(circuits.clone());
        assert!(e.contains(needle), "{circuits}: {e}");
    }
    std::fs::write(&manifest, original).unwrap();
    ceremony::verify(&d[3], None).unwrap();

    // `init` takes the circuits in any order, once each, and needs one.
    let m = ceremony::init(
        shared_ptau(),
        &root.path().join("i"),
        &[MarketCircuit::Order, MarketCircuit::Order],
    )
    .unwrap();
    assert_eq!(m.market_circuits(), [MarketCircuit::Order]);
    assert!(ceremony::init(shared_ptau(), &root.path().join("j"), &[]).is_err());
}

/// A circuit of another shape: x^3 + x + 5 == y.
struct Cube;

impl ConstraintSynthesizer<Fr> for Cube {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let y = FpVar::new_input(cs.clone(), || Ok(Fr::from(35u64)))?;
        let x = FpVar::new_witness(cs, || Ok(Fr::from(3u64)))?;
        (&x * &x * &x + &x + Fr::from(5u64)).enforce_equal(&y)
    }
}

#[test]
fn a_swapped_circuit_is_caught() {
    let root = tempfile::tempdir().unwrap();
    let d = chain(root.path(), 5);
    // A key for another circuit over the same phase 1.
    let cube = ceremony::r1cs_of(Cube).unwrap();
    let mut p1 = Phase1File::open(shared_ptau()).unwrap();
    let cube_key = phase2::new_zkey(&cube, &p1.slice(cube.domain_power()).unwrap()).unwrap();
    let original = std::fs::read(zkey_file(&d[3])).unwrap();
    store(&d[3], &cube_key);
    let e = verify_err(&d[3]);
    assert!(e.contains("another circuit"), "{e}");
    std::fs::write(zkey_file(&d[3]), &original).unwrap();
    // The circuit file swapped.
    std::fs::write(d[3].join("order.r1cs"), cube.to_bytes()).unwrap();
    let e = verify_err(&d[3]);
    assert!(e.contains("order.r1cs is not the order circuit"), "{e}");
}

#[test]
fn a_truncated_file_is_caught() {
    let root = tempfile::tempdir().unwrap();
    let d = chain(root.path(), 6);
    let bytes = std::fs::read(zkey_file(&d[3])).unwrap();
    for cut in [10, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(zkey_file(&d[3]), &bytes[..cut]).unwrap();
        let e = verify_err(&d[3]);
        assert!(
            e.contains("truncated") || e.contains("ends early"),
            "cut at {cut}: {e}"
        );
    }
}

#[test]
fn another_phase_1_is_caught() {
    let root = tempfile::tempdir().unwrap();
    let d = chain(root.path(), 7);
    // Same power, other secrets: not the file the ceremony started from.
    let other = write_ptau(root.path(), "other.ptau", circuit_power(), 99);
    let e = ceremony::verify(&d[3], Some(&other))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not the phase-1 file"), "{e}");
    // And even with the recorded hash bypassed, the keys do not match that phase 1.
    let mut p1 = Phase1File::open(&other).unwrap();
    let r1cs = MarketCircuit::Order.r1cs().unwrap();
    let init = phase2::new_zkey(&r1cs, &p1.slice(r1cs.domain_power()).unwrap()).unwrap();
    let e = phase2::verify(&load(&d[3]), &init).unwrap_err().to_string();
    assert!(e.contains("another phase 1"), "{e}");
    // A phase 1 too small for the circuit.
    let small = write_ptau(root.path(), "small.ptau", circuit_power() - 1, 1);
    let e = ceremony::init(&small, &root.path().join("x"), MarketCircuit::ALL).unwrap_err();
    assert!(matches!(e, CeremonyError::Phase1TooSmall { .. }), "{e}");
    assert!(e.to_string().contains("power"), "{e}");
}

#[test]
fn malformed_or_unprepared_phase_1_files_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let junk = root.path().join("junk.ptau");
    std::fs::write(&junk, b"not a ptau file at all").unwrap();
    let e = ceremony::init(&junk, &root.path().join("x"), MarketCircuit::ALL)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a ptau file"), "{e}");
    // Truncated.
    let bytes = std::fs::read(shared_ptau()).unwrap();
    let cut = root.path().join("cut.ptau");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let e = ceremony::init(&cut, &root.path().join("y"), MarketCircuit::ALL)
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated"), "{e}");
    // Not prepared for phase 2: keep sections 1-7 only.
    let unprepared = strip_lagrange(&bytes);
    let path = root.path().join("raw.ptau");
    std::fs::write(&path, unprepared).unwrap();
    let e = ceremony::init(&path, &root.path().join("z"), MarketCircuit::ALL)
        .unwrap_err()
        .to_string();
    assert!(e.contains("prepare phase2"), "{e}");
}

fn strip_lagrange(bytes: &[u8]) -> Vec<u8> {
    let n = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let mut pos = 12usize;
    let mut kept: Vec<(u32, Vec<u8>)> = Vec::new();
    for _ in 0..n {
        let ty = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap());
        let size = u64::from_le_bytes(bytes[pos + 4..pos + 12].try_into().unwrap()) as usize;
        if ty < 12 {
            kept.push((ty, bytes[pos + 12..pos + 12 + size].to_vec()));
        }
        pos += 12 + size;
    }
    let refs: Vec<(u32, &[u8])> = kept.iter().map(|(t, b)| (*t, b.as_slice())).collect();
    ceremony::binfile::write(b"ptau", 1, &refs)
}

#[test]
fn the_r1cs_export_round_trips() {
    let r1cs = MarketCircuit::Order.r1cs().unwrap();
    let bytes = r1cs.to_bytes();
    assert_eq!(R1cs::from_bytes(&bytes).unwrap(), r1cs);
    assert_eq!(
        r1cs.n_public as usize,
        veilwatt_circuits::order::public_input::COUNT
    );
    assert_eq!(
        r1cs.constraints.len(),
        veilwatt_params::constraint_count(MarketCircuit::Order).unwrap()
    );
}

#[test]
fn development_keys_come_from_a_one_contributor_ceremony_and_are_forgeable() {
    let keys = dev::generate_insecure(dev::DEFAULT_SEED, MarketCircuit::Order).unwrap();
    let t = dev::trapdoor(dev::DEFAULT_SEED, MarketCircuit::Order);
    use ark_ec::{AffineRepr, CurveGroup};
    let g1 = ark_bn254::G1Affine::generator();
    assert_eq!(keys.vk.alpha_g1, (g1 * t.phase1.alpha).into_affine());
    assert_eq!(keys.pk.delta_g1, (g1 * t.delta).into_affine());
    // Honest proofs verify under the development keys.
    let (public, proof) = prove(&keys.pk, 21);
    assert!(verifies(&keys.vk, &public, &proof));
    // So does a proof forged for a sale no statement backs.
    let mut forged_public = public;
    forged_public.quantity_wh = 4_000_000_000;
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let forged = dev::forge(&keys.vk, &t, &forged_public.to_field_elements(), &mut rng);
    assert!(verifies(&keys.vk, &forged_public, &forged));
    // Keys from a ceremony refuse it.
    let root = tempfile::tempdir().unwrap();
    let d = chain(root.path(), 8);
    let (ceremony_keys, _) = ceremony::finalize(&d[3], &root.path().join("k"), None)
        .unwrap()
        .swap_remove(0);
    assert_eq!(ceremony_keys.circuit, MarketCircuit::Order);
    let forged = dev::forge(
        &ceremony_keys.vk,
        &t,
        &forged_public.to_field_elements(),
        &mut rng,
    );
    assert!(!verifies(&ceremony_keys.vk, &forged_public, &forged));
}
