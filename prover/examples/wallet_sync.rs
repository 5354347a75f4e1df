//! How long a household's wallet takes to scan a ledger of N notes while holding K of them:
//! the cost of `veilwatt-prover balance` after being away, and of restoring a wallet from its
//! key (docs/benchmarks.md, "Shielded money").
//!
//! `cargo run --release -p veilwatt-prover --example wallet_sync -- [N] [K]` (default
//! 1,000,000 notes, 10 own). The ledger is synthetic: a first block mints the K notes to the
//! wallet's addresses, then blocks of 1,000 spends with two outputs each carry other
//! households' notes (random commitments and memos, as an observer sees them). Blocks are made
//! as the scan goes, so memory holds the wallet and one block.

use std::time::{Duration, Instant};

use ark_bn254::Fr;
use ark_ff::UniformRand;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use veilwatt_circuits::note::SpendingKey;
use veilwatt_prover::notes::{NoteBook, MEMO_BYTES};
use veilwatt_verifier::types::*;
use veilwatt_verifier::Groth16Proof;

fn block(height: u64, txs: Vec<Transaction>) -> Block {
    Block {
        height,
        prev_hash: Hash32::default(),
        time: height,
        proposer: WalletKey::default(),
        txs,
        state_root: Hash32::default(),
    }
}

/// A market for the scan (its periods matter only to wallets following unlinkable orders,
/// which this synthetic ledger has none of).
fn market() -> Genesis {
    Genesis {
        chain_id: "wallet-sync".into(),
        genesis_time: 0,
        validators: vec![],
        registrar: WalletKey::default(),
        period_secs: 900,
        gate_delay_secs: 60,
        mechanism: Mechanism::Uniform,
        fees: FeeSchedule {
            grid_fee_per_kwh: 0,
            market_fee_per_kwh: 0,
            market_fee_buyer_share_bps: 0,
        },
        price_floor: 1,
        price_cap: 1,
        vk_id: Hash32::default(),
        insecure_dev_keys: true,
        max_tx_lifetime_secs: DEFAULT_MAX_TX_LIFETIME_SECS,
        result_retention_periods: DEFAULT_RESULT_RETENTION_PERIODS,
        shielded: None,
        anonymous: None,
        consensus: Default::default(),
        spam: Default::default(),
    }
}

fn unsigned(body: TxBody) -> Transaction {
    Transaction {
        body,
        expires_at: 0,
        signer: WalletKey::default(),
        signature: Signature64([0; 64]),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let notes: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let own: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut book = NoteBook::new(SpendingKey::generate(&mut rng));
    let g = market();
    let mints: Vec<Transaction> = (0..own)
        .map(|i| {
            let to = book.address(i);
            unsigned(TxBody::MintNote {
                value: 1_000 + i,
                owner: FieldBytes::from_field(to.owner),
                rho: FieldBytes::from_field(Fr::rand(&mut rng)),
                reference: i,
            })
        })
        .collect();
    let t0 = Instant::now();
    book.scan(&g, &block(1, mints), &[]).expect("in order");
    let (mut height, mut seen, mut building) = (1u64, own, Duration::ZERO);
    while seen < notes {
        let built = Instant::now();
        let spends = ((notes - seen).div_ceil(2)).min(1_000);
        let txs: Vec<Transaction> = (0..spends)
            .map(|_| {
                let output = |rng: &mut ChaCha20Rng| {
                    let mut memo = vec![0u8; MEMO_BYTES];
                    rng.fill_bytes(&mut memo);
                    NoteOutput {
                        cm: FieldBytes::from_field(Fr::rand(rng)),
                        memo,
                    }
                };
                unsigned(TxBody::Spend {
                    anchor: FieldBytes::default(),
                    nullifiers: [
                        FieldBytes::from_field(Fr::rand(&mut rng)),
                        FieldBytes::from_field(Fr::rand(&mut rng)),
                    ],
                    outputs: [output(&mut rng), output(&mut rng)],
                    public_in: 0,
                    public_out: 1,
                    fee: 1,
                    payout: Payout::None,
                    proof: Groth16Proof([0; 128]),
                })
            })
            .collect();
        height += 1;
        let b = block(height, txs);
        building += built.elapsed();
        book.scan(&g, &b, &[]).expect("in order");
        seen += 2 * spends;
    }
    let total = t0.elapsed().saturating_sub(building);
    assert_eq!(book.balance(), (0..own).map(|i| 1_000 + i).sum::<u64>());
    println!(
        "scanned {seen} notes in {height} blocks holding {own} own notes: {:.1} s ({:.1} us per note; making the blocks took {:.1} s more)",
        total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / seen as f64,
        building.as_secs_f64()
    );
}
