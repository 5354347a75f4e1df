//! Household-side costs: witness synthesis and Groth16 proving of one order.
//!
//! `cargo bench -p veilwatt-prover --bench prove`

use ark_bn254::Fr;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem, OptimizationGoal};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::{
    eddsa::SecretKey,
    order::{OrderCircuit, Side},
    statement::{profile_digest, PeriodStatement},
};
use veilwatt_params::dev;
use veilwatt_prover::{OrderRequest, Prover};

fn bench(c: &mut Criterion) {
    let keys = dev::keys().expect("development keys");
    let prover = Prover::new(keys.pk.clone(), keys.vk_id).expect("prover");
    let sk = SecretKey::from_bytes([7; 32]);
    let st = PeriodStatement {
        meter: sk.public_key(),
        period: 1,
        import_wh: 300,
        export_wh: 2_300,
        profile_digest: profile_digest(&[(300, 2_300)]),
    }
    .sign(&sk);
    let order = OrderRequest {
        side: Side::Sell,
        quantity_wh: 1_500,
    };
    eprintln!(
        "order circuit: {} constraints",
        veilwatt_params::constraint_count(veilwatt_params::MarketCircuit::Order).expect("count")
    );

    // What the Groth16 prover does before its FFTs and MSMs: synthesize the witness with the
    // constraint-count optimization goal and inline all linear combinations.
    c.bench_function("order/synthesize", |b| {
        b.iter(|| {
            let (_, w) = Prover::witness(&st, &order);
            let cs = ConstraintSystem::<Fr>::new_ref();
            cs.set_optimization_goal(OptimizationGoal::Constraints);
            OrderCircuit::new(w)
                .generate_constraints(cs.clone())
                .expect("synthesis");
            cs.finalize();
            cs
        })
    });

    let mut group = c.benchmark_group("order");
    group.sample_size(20);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    group.bench_function("prove_with_self_check", |b| {
        b.iter(|| prover.prove(&st, &order, &mut rng).expect("proof"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
