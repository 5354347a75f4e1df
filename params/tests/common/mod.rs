//! Shared helpers of the ceremony tests: a fast insecure phase 1, honest order proofs.
#![allow(dead_code)]

use ark_bn254::{Bn254, Fr};
use ark_ff::{PrimeField, UniformRand};
use ark_groth16::{Groth16, Proof, ProvingKey, VerifyingKey};
use ark_snark::SNARK;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use veilwatt_circuits::eddsa::SecretKey;
use veilwatt_circuits::order::{OrderCircuit, OrderPrivate, OrderPublic, OrderWitness, Side};
use veilwatt_circuits::statement::PeriodStatement;
use veilwatt_params::ceremony::{ptau, MarketCircuit};
use veilwatt_params::qap::SnarkjsReduction;

/// The phase-1 power every market circuit fits in.
pub fn circuit_power() -> u32 {
    MarketCircuit::ALL
        .iter()
        .map(|c| ptau::phase1_power_for(c.r1cs().unwrap().domain_power()))
        .max()
        .unwrap()
}

/// Writes a prepared phase-1 file of `power` for secrets drawn from `seed`.
pub fn write_ptau(dir: &Path, name: &str, power: u32, seed: u64) -> PathBuf {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let secrets = ptau::InsecurePhase1Secrets {
        tau: Fr::rand(&mut rng),
        alpha: Fr::rand(&mut rng),
        beta: Fr::rand(&mut rng),
    };
    let path = dir.join(name);
    std::fs::write(&path, ptau::write_insecure(power, &secrets).unwrap()).unwrap();
    path
}

/// One phase-1 file for the whole test binary (power = what the circuits need).
pub fn shared_ptau() -> &'static Path {
    static P: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = P.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = write_ptau(dir.path(), "pot.ptau", circuit_power(), 1);
        (dir, path)
    });
    path
}

/// An honest sell order and its witness.
pub fn honest_order(seed: u64) -> (OrderPublic, OrderWitness) {
    let sk = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(seed));
    let statement = PeriodStatement {
        meter: sk.public_key(),
        period: 7,
        import_wh: 300,
        export_wh: 2_300,
        profile_digest: Fr::from_le_bytes_mod_order(&[seed as u8; 32]),
    };
    let signed = statement.sign(&sk);
    let public = OrderPublic {
        meter: sk.public_key(),
        period: 7,
        side: Side::Sell,
        quantity_wh: 1_500,
    };
    let witness = OrderWitness::new(&public, &OrderPrivate::from_statement(&signed));
    (public, witness)
}

/// Proves an honest order with `pk` (snarkjs' reduction, as every key from a ceremony needs).
pub fn prove(pk: &ProvingKey<Bn254>, seed: u64) -> (OrderPublic, Proof<Bn254>) {
    let (public, witness) = honest_order(seed);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let proof = Groth16::<Bn254, SnarkjsReduction>::prove(pk, OrderCircuit::new(witness), &mut rng)
        .unwrap();
    (public, proof)
}

/// Whether `proof` verifies for `public` under `vk`.
pub fn verifies(vk: &VerifyingKey<Bn254>, public: &OrderPublic, proof: &Proof<Bn254>) -> bool {
    Groth16::<Bn254>::verify(vk, &public.to_field_elements(), proof).unwrap_or(false)
}

/// Proves an honest join-split (one note of 10,000 spent into two, with a dummy input) with
/// `pk`; returns its public inputs.
pub fn prove_joinsplit(
    pk: &ProvingKey<Bn254>,
    seed: u64,
) -> (
    [Fr; veilwatt_circuits::joinsplit::public_input::COUNT],
    Proof<Bn254>,
) {
    use veilwatt_circuits::{
        joinsplit::{check_relation, JoinSplitCircuit, JoinSplitWitness, Spend},
        merkle::MemoryTree,
        note::{Note, SpendingKey},
    };
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let key = SpendingKey::generate(&mut rng);
    let vk = key.viewing_key();
    let d = vk.diversifier(0);
    let note = Note::new(10_000, vk.owner_tag(d), &mut rng);
    let mut tree = MemoryTree::new();
    tree.append(Fr::rand(&mut rng)).unwrap();
    let position = tree.append(note.commitment()).unwrap();
    let spends = [
        Spend {
            key: key.clone(),
            diversifier: d,
            value: note.value,
            rho: note.rho,
            path: tree.path(position).unwrap(),
        },
        Spend::dummy(&key, &mut rng),
    ];
    let outputs = [
        Note::new(7_000, Fr::rand(&mut rng), &mut rng),
        Note::new(2_990, vk.owner_tag(vk.diversifier(1)), &mut rng),
    ];
    let (_, w) = JoinSplitWitness::new(tree.root(), &spends, &outputs, 0, 10, Fr::rand(&mut rng));
    check_relation(&w).unwrap();
    let public = w.public;
    let proof =
        Groth16::<Bn254, SnarkjsReduction>::prove(pk, JoinSplitCircuit::new(w), &mut rng).unwrap();
    (public, proof)
}

/// Whether `proof` verifies for the public-input vector `public` under `vk`.
pub fn verifies_inputs(vk: &VerifyingKey<Bn254>, public: &[Fr], proof: &Proof<Bn254>) -> bool {
    Groth16::<Bn254>::verify(vk, public, proof).unwrap_or(false)
}

/// Proves an honest unlinkable sell order (a meter enrolled among others, its statement
/// signed for the market) with `pk`; returns its public inputs.
pub fn prove_order_v2(
    pk: &ProvingKey<Bn254>,
    seed: u64,
) -> (
    [Fr; veilwatt_circuits::order_v2::public_input::COUNT],
    Proof<Bn254>,
) {
    use veilwatt_circuits::order_v2::{self, check_relation};
    use veilwatt_circuits::registry::{self, MemoryRegistry};
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = SecretKey::generate(&mut rng);
    let nk = Fr::rand(&mut rng);
    let market = Fr::rand(&mut rng);
    let mut reg = MemoryRegistry::new();
    reg.enrol(Fr::rand(&mut rng)).unwrap();
    let position = reg
        .enrol(registry::leaf(
            &sk.public_key(),
            registry::nk_commitment(nk),
        ))
        .unwrap();
    let statement = PeriodStatement {
        meter: sk.public_key(),
        period: 7,
        import_wh: 300,
        export_wh: 2_300,
        profile_digest: Fr::rand(&mut rng),
    };
    let public = order_v2::OrderPublic {
        registry_root: reg.root(),
        order_nullifier: registry::order_nullifier(nk, sk.public_key().x(), Fr::from(7u64)),
        market,
        period: 7,
        side: Side::Sell,
        quantity_wh: 1_500,
        terms: Fr::rand(&mut rng),
    };
    let private = order_v2::OrderPrivate {
        nk,
        path: reg.path(u64::from(position)).unwrap(),
        statement: statement.sign_for_market(&sk, market),
    };
    let w = order_v2::OrderWitness::new(&public, &private);
    check_relation(&w).unwrap();
    let proof =
        Groth16::<Bn254, SnarkjsReduction>::prove(pk, order_v2::OrderCircuit::new(w), &mut rng)
            .unwrap();
    (public.to_field_elements(), proof)
}
