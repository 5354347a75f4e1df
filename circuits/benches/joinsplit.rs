//! Costs of shielded money: the join-split circuit (synthesis, Groth16 proving and
//! verification with a throwaway key) and the ledger's native work per note (tree append,
//! root, nullifier).
//!
//! `cargo bench -p veilwatt-circuits --bench joinsplit`

use ark_bn254::{Bn254, Fr};
use ark_ff::UniformRand;
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem, OptimizationGoal};
use ark_snark::SNARK;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::{
    joinsplit::{check_relation, JoinSplitCircuit, JoinSplitWitness, Spend},
    merkle::{Frontier, MemoryTree},
    note::{Note, SpendingKey},
};

/// A household spending two of its notes (among 1,000 others) into a payment and change.
fn fixture(rng: &mut ChaCha20Rng) -> JoinSplitWitness {
    let key = SpendingKey::generate(rng);
    let vk = key.viewing_key();
    let mut tree = MemoryTree::new();
    let mut owned = Vec::new();
    for i in 0..2u64 {
        for _ in 0..500 {
            tree.append(Fr::rand(rng)).expect("small tree");
        }
        let d = vk.diversifier(i);
        let note = Note::new(5_000 + i, vk.owner_tag(d), rng);
        let position = tree.append(note.commitment()).expect("small tree");
        owned.push((d, note, position));
    }
    let spends: [Spend; 2] = std::array::from_fn(|i| {
        let (d, note, position) = owned[i];
        Spend {
            key: key.clone(),
            diversifier: d,
            value: note.value,
            rho: note.rho,
            path: tree.path(position).expect("appended"),
        }
    });
    let recipient = SpendingKey::generate(rng).viewing_key();
    let outputs = [
        Note::new(7_000, recipient.owner_tag(recipient.diversifier(0)), rng),
        Note::new(2_991, vk.owner_tag(vk.diversifier(2)), rng),
    ];
    let (_, w) = JoinSplitWitness::new(tree.root(), &spends, &outputs, 0, 10, Fr::rand(rng));
    check_relation(&w).expect("honest fixture");
    w
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let w = fixture(&mut rng);
    let cs = ConstraintSystem::<Fr>::new_ref();
    JoinSplitCircuit::new(w.clone())
        .generate_constraints(cs.clone())
        .expect("synthesis");
    eprintln!("join-split circuit: {} constraints", cs.num_constraints());

    c.bench_function("joinsplit/synthesize", |b| {
        b.iter(|| {
            let cs = ConstraintSystem::<Fr>::new_ref();
            cs.set_optimization_goal(OptimizationGoal::Constraints);
            JoinSplitCircuit::new(w.clone())
                .generate_constraints(cs.clone())
                .expect("synthesis");
            cs.finalize();
            cs
        })
    });

    let (pk, vk) = Groth16::<Bn254>::circuit_specific_setup(JoinSplitCircuit::blank(), &mut rng)
        .expect("setup");
    let pvk = Groth16::<Bn254>::process_vk(&vk).expect("vk");
    let mut group = c.benchmark_group("joinsplit");
    group.sample_size(10);
    group.bench_function("prove", |b| {
        b.iter(|| Groth16::<Bn254>::prove(&pk, JoinSplitCircuit::new(w.clone()), &mut rng))
    });
    let proof =
        Groth16::<Bn254>::prove(&pk, JoinSplitCircuit::new(w.clone()), &mut rng).expect("prove");
    group.bench_function("verify", |b| {
        b.iter(|| Groth16::<Bn254>::verify_with_processed_vk(&pvk, &w.public, &proof))
    });
    group.finish();

    // A block's worth of appends to a tree of 200,000 notes (amortized one hash per append,
    // whatever the size).
    let mut big = Frontier::new();
    for i in 0..200_000u64 {
        big.append(Fr::from(i)).expect("room");
    }
    c.bench_function("note/frontier_append_1000", |b| {
        b.iter_batched(
            || big.clone(),
            |mut f| {
                for i in 0..1_000u64 {
                    f.append(Fr::from(i)).expect("room");
                }
                f
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("note/frontier_root", |b| b.iter(|| big.root()));
    let vk = SpendingKey::generate(&mut rng).viewing_key();
    c.bench_function("note/nullifier", |b| {
        b.iter(|| vk.nullifier(Fr::from(9u64), 12))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
