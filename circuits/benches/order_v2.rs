//! Costs of the unlinkable order (order circuit v2): synthesis, Groth16 proving and verification
//! with a throwaway key, and the registry's native work (an enrolment in a registry of 100,000
//! meters, a path).
//!
//! `cargo bench -p veilwatt-circuits --bench order_v2`

use ark_bn254::{Bn254, Fr};
use ark_ff::UniformRand;
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem, OptimizationGoal};
use ark_snark::SNARK;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::{
    eddsa::SecretKey,
    order::Side,
    order_v2::{check_relation, OrderCircuit, OrderPrivate, OrderPublic, OrderWitness},
    registry::{self, MemoryRegistry},
    statement::PeriodStatement,
};

/// Meters in the benchmark's registry: a city.
const METERS: u64 = 100_000;

/// A household selling 1.2 kWh of a 1.5 kWh surplus, its meter enrolled among a city's.
fn fixture(rng: &mut ChaCha20Rng) -> (MemoryRegistry, OrderWitness) {
    let sk = SecretKey::generate(rng);
    let nk = Fr::rand(rng);
    let market = Fr::rand(rng);
    let mut reg = MemoryRegistry::new();
    for _ in 0..METERS / 2 {
        reg.enrol(Fr::rand(rng)).expect("room");
    }
    let position = reg
        .enrol(registry::leaf(
            &sk.public_key(),
            registry::nk_commitment(nk),
        ))
        .expect("room");
    for _ in 0..METERS / 2 {
        reg.enrol(Fr::rand(rng)).expect("room");
    }
    let statement = PeriodStatement {
        meter: sk.public_key(),
        period: 4_000,
        import_wh: 300,
        export_wh: 1_800,
        profile_digest: Fr::rand(rng),
    }
    .sign_for_market(&sk, market);
    let public = OrderPublic {
        registry_root: reg.root(),
        order_nullifier: registry::order_nullifier(nk, sk.public_key().x(), Fr::from(4_000u64)),
        market,
        period: 4_000,
        side: Side::Sell,
        quantity_wh: 1_200,
        terms: Fr::rand(rng),
    };
    let private = OrderPrivate {
        nk,
        path: reg.path(u64::from(position)).expect("enrolled"),
        statement,
    };
    let w = OrderWitness::new(&public, &private);
    check_relation(&w).expect("honest fixture");
    (reg, w)
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (reg, w) = fixture(&mut rng);
    let cs = ConstraintSystem::<Fr>::new_ref();
    OrderCircuit::new(w.clone())
        .generate_constraints(cs.clone())
        .expect("synthesis");
    eprintln!("order circuit v2: {} constraints", cs.num_constraints());

    c.bench_function("order_v2/synthesize", |b| {
        b.iter(|| {
            let cs = ConstraintSystem::<Fr>::new_ref();
            cs.set_optimization_goal(OptimizationGoal::Constraints);
            OrderCircuit::new(w.clone())
                .generate_constraints(cs.clone())
                .expect("synthesis");
            cs.finalize();
            cs
        })
    });

    let (pk, vk) =
        Groth16::<Bn254>::circuit_specific_setup(OrderCircuit::blank(), &mut rng).expect("setup");
    let pvk = Groth16::<Bn254>::process_vk(&vk).expect("vk");
    let mut group = c.benchmark_group("order_v2");
    group.sample_size(10);
    group.bench_function("prove", |b| {
        b.iter(|| Groth16::<Bn254>::prove(&pk, OrderCircuit::new(w.clone()), &mut rng))
    });
    let proof =
        Groth16::<Bn254>::prove(&pk, OrderCircuit::new(w.clone()), &mut rng).expect("prove");
    group.bench_function("verify", |b| {
        b.iter(|| Groth16::<Bn254>::verify_with_processed_vk(&pvk, &w.public, &proof))
    });
    group.finish();

    c.bench_function("registry/enrol_at_100k", |b| {
        b.iter_batched(
            || reg.clone(),
            // Returned, so that dropping the copy is not timed.
            |mut r| {
                r.enrol(Fr::from(7u64)).expect("room");
                r
            },
            BatchSize::LargeInput,
        )
    });
    c.bench_function("registry/path_at_100k", |b| b.iter(|| reg.path(METERS / 3)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
