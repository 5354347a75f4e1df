//! Settlement costs: clearing a period of 10,000 orders, and applying a block of 1,000 orders
//! with proof verification excluded (a node verifies proofs at admission, in batches; see the
//! `verify` bench for that cost).
//!
//! `cargo bench -p veilwatt-verifier --bench ledger`

use criterion::{criterion_group, criterion_main, Criterion};
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::{eddsa::SecretKey, order::OrderPublic};
use veilwatt_verifier::clearing::{clear, BookOrder};
use veilwatt_verifier::ledger::{Ledger, ProofCheck};
use veilwatt_verifier::state::{MemoryState, StateUpdate};
use veilwatt_verifier::types::*;
use veilwatt_verifier::{BatchFailure, OrderProof};

/// Proofs already verified at admission (the benchmark excludes proof verification).
struct VerifiedAtAdmission;

impl ProofCheck for VerifiedAtAdmission {
    fn check(&self, _: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure> {
        Ok(())
    }
}

const FEES: FeeSchedule = FeeSchedule {
    grid_fee_per_kwh: 5,
    market_fee_per_kwh: 2,
    market_fee_buyer_share_bps: 5_000,
};

fn book(n: usize, rng: &mut ChaCha20Rng) -> Vec<BookOrder> {
    (0..n)
        .map(|_| BookOrder {
            id: TxId(rng.gen()),
            side: if rng.gen() { Side::Sell } else { Side::Buy },
            quantity_wh: rng.gen_range(100..5_000),
            limit_price: rng.gen_range(8..=30),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let orders = book(10_000, &mut rng);
    let mut group = c.benchmark_group("clearing");
    group.sample_size(20);
    for mech in [Mechanism::Uniform, Mechanism::PayAsBid, Mechanism::Midpoint] {
        group.bench_function(format!("{mech:?}/10000_orders"), |b| {
            b.iter(|| clear(&orders, mech, &FEES))
        });
    }
    group.finish();

    // A community of 1,000 households, enrolled and funded; one block carries an order from each.
    let registrar = SigningKey::from_bytes(&[200; 32]);
    let proposer = SigningKey::from_bytes(&[201; 32]);
    let g = Genesis {
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
        fees: FEES,
        price_floor: 8,
        price_cap: 30,
        vk_id: Hash32([0; 32]),
        insecure_dev_keys: true,
        max_tx_lifetime_secs: veilwatt_verifier::types::DEFAULT_MAX_TX_LIFETIME_SECS,
        result_retention_periods: veilwatt_verifier::types::DEFAULT_RESULT_RETENTION_PERIODS,
        shielded: None,
        anonymous: None,
        consensus: Default::default(),
        spam: Default::default(),
    };
    let ledger = Ledger::new(&g).expect("valid genesis");
    let households: Vec<(SigningKey, MeterKey)> = (0..1_000u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            (
                SigningKey::from_bytes(&seed),
                MeterKey::from_public_key(&SecretKey::from_bytes(seed).public_key()),
            )
        })
        .collect();
    let mut state = MemoryState::default();
    state.commit(ledger.genesis_update(&state).expect("genesis"));
    let setup: Vec<Transaction> = households
        .iter()
        .enumerate()
        .flat_map(|(k, (w, m))| {
            let owner = WalletKey(w.verifying_key().to_bytes());
            [
                TxBody::EnrollMeter { meter: *m, owner },
                TxBody::Deposit {
                    to: owner,
                    amount: 10_000_000,
                    reference: k as u64,
                },
            ]
        })
        .map(|body| Transaction::sign(&g.chain_id, body, 600, &registrar))
        .collect();
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
    let first = seal(
        &state,
        Block {
            height: 1,
            prev_hash: Hash32([0; 32]),
            time: 0,
            proposer: proposer_key,
            txs: setup,
            state_root: Hash32([0; 32]),
        },
    );
    let applied = ledger
        .apply_block(&state, &first, &VerifiedAtAdmission)
        .expect("setup");
    state.commit(applied.update);
    let txs: Vec<Transaction> = households
        .iter()
        .enumerate()
        .map(|(k, (w, m))| {
            let body = TxBody::Order {
                meter: *m,
                period: 0,
                side: if k % 2 == 0 { Side::Sell } else { Side::Buy },
                quantity_wh: rng.gen_range(100..5_000),
                limit_price: rng.gen_range(8..=30),
                proof: veilwatt_verifier::Groth16Proof([0; 128]),
            };
            Transaction::sign(&g.chain_id, body, 1_500, w)
        })
        .collect();
    let block = seal(
        &state,
        Block {
            height: 2,
            prev_hash: first.hash(),
            time: 901,
            proposer: proposer_key,
            txs,
            state_root: Hash32([0; 32]),
        },
    );

    let mut group = c.benchmark_group("ledger");
    group.sample_size(20);
    // Pure: the state is only read, so nothing is cloned per iteration.
    group.bench_function("apply_block/1000_orders", |b| {
        b.iter(|| {
            ledger
                .apply_block(&state, &block, &VerifiedAtAdmission)
                .expect("valid block")
        })
    });
    group.bench_function("execute/1000_orders", |b| {
        b.iter(|| {
            ledger
                .execute(&state, &block, &VerifiedAtAdmission)
                .expect("valid block")
        })
    });
    let (changes, _) = ledger
        .execute(&state, &block, &VerifiedAtAdmission)
        .expect("valid block");
    group.bench_function("state_root/1000_orders", |b| {
        b.iter(|| StateUpdate::compute(&state, 2, changes.clone()).expect("root"))
    });
    // And the period those orders form, cleared by the next block after the gate.
    let mut after = state.clone();
    after.commit(
        ledger
            .apply_block(&state, &block, &VerifiedAtAdmission)
            .expect("valid")
            .update,
    );
    let clearing_block = seal(
        &after,
        Block {
            height: 3,
            prev_hash: block.hash(),
            time: 1_800 + 600,
            proposer: block.proposer,
            txs: vec![],
            state_root: Hash32([0; 32]),
        },
    );
    group.bench_function("apply_block/clearing_1000_orders", |b| {
        b.iter(|| {
            ledger
                .apply_block(&after, &clearing_block, &VerifiedAtAdmission)
                .expect("valid block")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
