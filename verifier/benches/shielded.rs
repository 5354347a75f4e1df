//! Validator-side costs of shielded money: verifying join-split proofs one at a time and in
//! batches, and applying a block of 1,000 spends (anchor lookup, two nullifier inserts, two
//! tree appends each, the new root; proofs excluded, as for orders in the `ledger` bench).
//!
//! `cargo bench -p veilwatt-verifier --bench shielded`

use ark_bn254::{Bn254, Fr};
use ark_groth16::Groth16;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::joinsplit::{JoinSplitPublic, Spend};
use veilwatt_circuits::merkle::MemoryTree;
use veilwatt_circuits::note::{Note, SpendingKey};
use veilwatt_circuits::order::OrderPublic;
use veilwatt_params::{dev, MarketCircuit};
use veilwatt_prover::spend::{SpendProver, SpendRequest};
use veilwatt_verifier::ledger::{Ledger, ProofCheck};
use veilwatt_verifier::state::{MemoryState, StateUpdate};
use veilwatt_verifier::types::*;
use veilwatt_verifier::{BatchFailure, Groth16Proof, JoinSplitVerifier, OrderProof, SpendProof};

/// Proofs already verified at admission (the block benchmark excludes proof verification).
struct VerifiedAtAdmission;

impl ProofCheck for VerifiedAtAdmission {
    fn check(&self, _: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure> {
        Ok(())
    }
    fn check_spends(&self, _: &[(JoinSplitPublic, SpendProof)]) -> Result<(), BatchFailure> {
        Ok(())
    }
}

fn genesis(vk_id: Hash32, registrar: &SigningKey, proposer: &SigningKey) -> Genesis {
    Genesis {
        chain_id: "bench".into(),
        genesis_time: 0,
        validators: vec![Validator {
            name: "v".into(),
            key: WalletKey(proposer.verifying_key().to_bytes()),
            power: 1,
        }],
        registrar: WalletKey(registrar.verifying_key().to_bytes()),
        period_secs: 900,
        gate_delay_secs: 600,
        mechanism: Mechanism::Uniform,
        fees: FeeSchedule {
            grid_fee_per_kwh: 5,
            market_fee_per_kwh: 2,
            market_fee_buyer_share_bps: 5_000,
        },
        price_floor: 8,
        price_cap: 30,
        vk_id: Hash32(dev::pinned_vk_id().0),
        insecure_dev_keys: true,
        max_tx_lifetime_secs: DEFAULT_MAX_TX_LIFETIME_SECS,
        result_retention_periods: DEFAULT_RESULT_RETENTION_PERIODS,
        shielded: Some(ShieldedParams {
            vk_id,
            root_history: 100,
            min_fee: 1,
        }),
        anonymous: None,
        consensus: Default::default(),
        spam: Default::default(),
    }
}

/// Real join-split proofs of four different spends.
fn proofs(
    prover: &SpendProver,
    g: &Genesis,
    rng: &mut ChaCha20Rng,
) -> Vec<(JoinSplitPublic, SpendProof)> {
    (0..4)
        .map(|_| {
            let key = SpendingKey::generate(rng);
            let vk = key.viewing_key();
            let d = vk.diversifier(0);
            let note = Note::new(1_000, vk.owner_tag(d), rng);
            let mut tree = MemoryTree::new();
            let position = tree.append(note.commitment()).expect("room");
            let request = SpendRequest {
                anchor: tree.root(),
                inputs: [
                    Spend {
                        key: key.clone(),
                        diversifier: d,
                        value: note.value,
                        rho: note.rho,
                        path: tree.path(position).expect("path"),
                    },
                    Spend::dummy(&key, rng),
                ],
                outputs: [
                    (
                        Note::new(600, vk.owner_tag(vk.diversifier(1)), rng),
                        vec![0; 112],
                    ),
                    (
                        Note::new(399, vk.owner_tag(vk.diversifier(2)), rng),
                        vec![1; 112],
                    ),
                ],
                public_in: 0,
                public_out: 1,
                fee: 1,
                payout: Payout::None,
            };
            let signer = SigningKey::from_bytes(&[7; 32]);
            let tx = prover
                .prove(&g.chain_id, 1_000, &signer, request, rng)
                .expect("proof");
            tx.spend_proof_item(&g.chain_id)
                .expect("a spend")
                .expect("canonical")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let keys = dev::keys_of(MarketCircuit::JoinSplit).expect("join-split keys");
    let registrar = SigningKey::from_bytes(&[200; 32]);
    let proposer = SigningKey::from_bytes(&[201; 32]);
    let g = genesis(Hash32(keys.vk_id.0), &registrar, &proposer);
    let prover = SpendProver::new(keys.pk.clone(), keys.vk_id).expect("prover");
    let verifier = JoinSplitVerifier::new(&keys.vk, keys.vk_id).expect("verifier");
    let base = proofs(&prover, &g, &mut rng);

    c.bench_function("joinsplit_verify/one", |b| {
        b.iter(|| verifier.verify(&base[0].0, &base[0].1).expect("valid"))
    });
    let mut group = c.benchmark_group("joinsplit_verify/batch");
    group.sample_size(10);
    for n in [16usize, 128] {
        let items: Vec<_> = (0..n)
            .map(|i| {
                let (public, proof) = base[i % base.len()];
                let p = Groth16::<Bn254>::rerandomize_proof(
                    &keys.vk,
                    &proof.decode().expect("valid"),
                    &mut rng,
                );
                (public, Groth16Proof::from_proof(&p))
            })
            .collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &items, |b, items| {
            b.iter(|| verifier.verify_batch(items, &mut rng).expect("valid batch"))
        });
    }
    group.finish();

    // A pool funded by one mint, then a block of 1,000 spends against the genesis root.
    let ledger = Ledger::new(&g).expect("valid genesis");
    let mut state = MemoryState::default();
    state.commit(ledger.genesis_update(&state).expect("genesis"));
    let proposer_key = WalletKey(proposer.verifying_key().to_bytes());
    let seal = |state: &MemoryState, mut block: Block| -> Block {
        let (changes, _) = ledger
            .execute(state, &block, &VerifiedAtAdmission)
            .expect("valid");
        block.state_root = StateUpdate::compute(state, block.height, changes)
            .expect("root")
            .root;
        block
    };
    let empty_root = FieldBytes::from_field(MemoryTree::new().root());
    let mint = Transaction::sign(
        &g.chain_id,
        TxBody::MintNote {
            value: 1_000_000_000,
            owner: FieldBytes::from_field(Fr::from(1u64)),
            rho: FieldBytes::from_field(Fr::from(2u64)),
            reference: 1,
        },
        600,
        &registrar,
    );
    let first = seal(
        &state,
        Block {
            height: 1,
            prev_hash: Hash32([0; 32]),
            time: 0,
            proposer: proposer_key,
            txs: vec![mint],
            state_root: Hash32([0; 32]),
        },
    );
    let applied = ledger
        .apply_block(&state, &first, &VerifiedAtAdmission)
        .expect("setup");
    state.commit(applied.update);
    let field = |x: u64| FieldBytes::from_field(Fr::from(x));
    let txs: Vec<Transaction> = (0..1_000u64)
        .map(|k| {
            let body = TxBody::Spend {
                anchor: empty_root,
                nullifiers: [field(10 + 2 * k), field(11 + 2 * k)],
                outputs: [0, 1].map(|j| NoteOutput {
                    cm: field(1_000_000 + 2 * k + j),
                    memo: vec![0; 112],
                }),
                public_in: 0,
                public_out: 1,
                fee: 1,
                payout: Payout::None,
                proof: Groth16Proof([0; 128]),
            };
            let mut seed = [9u8; 32];
            seed[..8].copy_from_slice(&k.to_le_bytes());
            Transaction::sign(&g.chain_id, body, 600, &SigningKey::from_bytes(&seed))
        })
        .collect();
    let block = seal(
        &state,
        Block {
            height: 2,
            prev_hash: first.hash(),
            time: 1,
            proposer: proposer_key,
            txs,
            state_root: Hash32([0; 32]),
        },
    );
    let mut group = c.benchmark_group("ledger");
    group.sample_size(10);
    group.bench_function("apply_block/1000_spends", |b| {
        b.iter(|| {
            ledger
                .apply_block(&state, &block, &VerifiedAtAdmission)
                .expect("valid block")
        })
    });
    group.bench_function("execute/1000_spends", |b| {
        b.iter(|| {
            ledger
                .execute(&state, &block, &VerifiedAtAdmission)
                .expect("valid block")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
