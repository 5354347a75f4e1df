//! Proving one order with ceremony keys (snarkjs' QAP reduction) against arkworks' own setup
//! and reduction (libsnark's), same circuit, same witness, same run:
//! `cargo bench -p veilwatt-params --bench reduction`.
//!
//! The libsnark-reduction keys come from `circuit_specific_setup` and exist only here, for the
//! comparison: every real key comes from the ceremony.

use ark_bn254::{Bn254, Fr};
use ark_ff::PrimeField;
use ark_groth16::Groth16;
use ark_snark::SNARK;
use criterion::{criterion_group, criterion_main, Criterion};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use veilwatt_circuits::eddsa::SecretKey;
use veilwatt_circuits::order::{OrderCircuit, OrderPrivate, OrderPublic, OrderWitness, Side};
use veilwatt_circuits::statement::PeriodStatement;
use veilwatt_params::{dev, qap::SnarkjsReduction};

fn witness() -> OrderWitness {
    let sk = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
    let signed = PeriodStatement {
        meter: sk.public_key(),
        period: 7,
        import_wh: 300,
        export_wh: 2_300,
        profile_digest: Fr::from_le_bytes_mod_order(&[3; 32]),
    }
    .sign(&sk);
    let public = OrderPublic {
        meter: sk.public_key(),
        period: 7,
        side: Side::Sell,
        quantity_wh: 1_500,
    };
    OrderWitness::new(&public, &OrderPrivate::from_statement(&signed))
}

fn bench(c: &mut Criterion) {
    let w = witness();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let ceremony = dev::keys().expect("development keys");
    let (libsnark_pk, _) =
        Groth16::<Bn254>::circuit_specific_setup(OrderCircuit::blank(), &mut rng).expect("setup");
    let mut g = c.benchmark_group("prove");
    g.sample_size(30);
    g.bench_function("snarkjs_reduction_ceremony_keys", |b| {
        b.iter(|| {
            Groth16::<Bn254, SnarkjsReduction>::prove(
                &ceremony.pk,
                OrderCircuit::new(w.clone()),
                &mut rng,
            )
            .expect("proof")
        })
    });
    g.bench_function("libsnark_reduction_setup_keys", |b| {
        b.iter(|| {
            Groth16::<Bn254>::prove(&libsnark_pk, OrderCircuit::new(w.clone()), &mut rng)
                .expect("proof")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
