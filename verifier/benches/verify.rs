//! Validator-side costs: verifying one order proof and batches of 16, 128 and 1,024.
//!
//! `cargo bench -p veilwatt-verifier --bench verify`
//!
//! Batches are built from 8 real proofs, each re-randomized (a fresh, independently valid proof
//! of the same statement), so every proof in a batch has distinct points.

use ark_bn254::Bn254;
use ark_groth16::Groth16;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::{
    eddsa::SecretKey,
    order::{OrderPublic, Side},
    statement::{profile_digest, PeriodStatement},
};
use veilwatt_params::dev;
use veilwatt_prover::{OrderRequest, Prover};
use veilwatt_verifier::{OrderProof, OrderVerifier};

fn batch(
    n: usize,
    base: &[(OrderPublic, OrderProof)],
    rng: &mut ChaCha20Rng,
) -> Vec<(OrderPublic, OrderProof)> {
    let vk = &dev::keys().expect("keys").vk;
    (0..n)
        .map(|i| {
            let (public, proof) = base[i % base.len()];
            let p = Groth16::<Bn254>::rerandomize_proof(vk, &proof.decode().expect("valid"), rng);
            (public, OrderProof::from_proof(&p))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let keys = dev::keys().expect("development keys");
    let prover = Prover::new(keys.pk.clone(), keys.vk_id).expect("prover");
    let verifier = OrderVerifier::new(&keys.vk, keys.vk_id).expect("verifier");
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let base: Vec<_> = (0..8u8)
        .map(|i| {
            let sk = SecretKey::from_bytes([i; 32]);
            let st = PeriodStatement {
                meter: sk.public_key(),
                period: u64::from(i),
                import_wh: 100,
                export_wh: 5_000,
                profile_digest: profile_digest(&[]),
            }
            .sign(&sk);
            let p = prover
                .prove(
                    &st,
                    &OrderRequest {
                        side: Side::Sell,
                        quantity_wh: 4_000,
                    },
                    &mut rng,
                )
                .expect("proof");
            (p.public, p.proof)
        })
        .collect();

    c.bench_function("verify/one", |b| {
        b.iter(|| verifier.verify(&base[0].0, &base[0].1).expect("valid"))
    });

    let mut group = c.benchmark_group("verify/batch");
    group.sample_size(10);
    for n in [16usize, 128, 1024] {
        let items = batch(n, &base, &mut rng);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &items, |b, items| {
            b.iter(|| verifier.verify_batch(items, &mut rng).expect("valid batch"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
