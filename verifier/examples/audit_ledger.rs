//! Builds a large ledger export for benchmarking `veilwatt-verifier audit`:
//! `audit_ledger HOUSEHOLDS PERIODS OUT_DIR [RETENTION]` writes `OUT_DIR/genesis.json` and
//! `OUT_DIR/export.json` with HOUSEHOLDS x PERIODS orders (docs/benchmarks.md), streaming each
//! block to the file as it is sealed (a city-day, 100,000 x 96, does not fit in memory as one
//! value). RETENTION is the genesis `result_retention_periods` (default 96).
//!
//! Proving 100,000 orders honestly takes hours on the benchmark machine, so this tool forges
//! the proofs instead, which is possible only because the *insecure development keys* come from
//! a ceremony whose every secret follows from a public seed: `veilwatt_params::dev::forge` uses
//! that trapdoor to make, for any public inputs, a proof that satisfies the verification
//! equation. The verifier's work per proof is identical to a real proof's. Never use
//! development keys for a real market (genesis `insecure_dev_keys` says when a chain does).
//!
//! The ledger otherwise follows the node's shape: four validators (certificates signed by three),
//! blocks enrolling and funding every household, then per period blocks with every household's
//! order (half sell, half buy), the first of which also clears the previous period, and a last
//! block clearing the last period. Blocks are as full as the genesis' default consensus limits
//! allow (`max_block_txs`, `max_block_bytes`) and no fuller, as a node's would be: a city's
//! period of 100,000 orders takes 25 blocks of 4,000.

use std::path::PathBuf;
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use veilwatt_circuits::eddsa::SecretKey;
use veilwatt_circuits::order::OrderPublic;
use veilwatt_verifier::audit::{
    Certificate, ExportHeader, ExportWriter, ExportedBlock, EXPORT_FORMAT,
};
use veilwatt_verifier::ledger::{Ledger, LedgerRead, ProofCheck};
use veilwatt_verifier::state::{keys, MemoryState, StateUpdate};
use veilwatt_verifier::types::*;
use veilwatt_verifier::{BatchFailure, OrderProof, OrderVerifier};

/// Accepts every proof: the forged proofs are valid by construction and the audit re-verifies
/// them all; building the ledger need not.
struct Unchecked;
impl ProofCheck for Unchecked {
    fn check(&self, _: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure> {
        Ok(())
    }
}

struct Forger {
    vk: ark_groth16::VerifyingKey<ark_bn254::Bn254>,
    trapdoor: veilwatt_params::dev::Trapdoor,
}

impl Forger {
    fn new() -> Self {
        let keys = veilwatt_params::dev::keys().expect("development keys");
        Self {
            vk: keys.vk.clone(),
            trapdoor: veilwatt_params::dev::trapdoor(
                veilwatt_params::dev::DEFAULT_SEED,
                veilwatt_params::MarketCircuit::Order,
            ),
        }
    }

    fn forge(&self, public: &OrderPublic, rng: &mut ChaCha20Rng) -> OrderProof {
        let proof =
            veilwatt_params::dev::forge(&self.vk, &self.trapdoor, &public.to_field_elements(), rng);
        OrderProof::from_proof(&proof)
    }
}

/// Transactions per block: as many as the genesis' limits allow when each is at most
/// `max_tx_len` bytes.
fn per_block(g: &Genesis, max_tx_len: u64) -> usize {
    let limits = &g.consensus;
    let by_bytes = (limits.max_block_bytes - Block::EMPTY_ENCODED_LEN) / max_tx_len;
    by_bytes.min(u64::from(limits.max_block_txs)).max(1) as usize
}

/// Blocks needed for `n` transactions, `per` a block.
fn blocks_for(n: usize, per: usize) -> u64 {
    n.div_ceil(per) as u64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (households, periods, out, retention) = match args.as_slice() {
        [_, h, p, o, rest @ ..] if rest.len() <= 1 => (
            h.parse::<usize>().expect("HOUSEHOLDS"),
            p.parse::<u64>().expect("PERIODS"),
            PathBuf::from(o),
            rest.first().map_or(DEFAULT_RESULT_RETENTION_PERIODS, |r| {
                r.parse().expect("RETENTION")
            }),
        ),
        _ => {
            eprintln!("usage: audit_ledger HOUSEHOLDS PERIODS OUT_DIR [RETENTION]");
            std::process::exit(2);
        }
    };
    let t0 = Instant::now();
    let forger = Forger::new();
    let keys = veilwatt_params::dev::keys().expect("development keys");
    let validators: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let registrar = SigningKey::from_bytes(&[9; 32]);
    let g = Genesis {
        chain_id: "veilwatt-audit-bench".into(),
        genesis_time: 1_795_500_000,
        validators: validators
            .iter()
            .enumerate()
            .map(|(i, k)| Validator {
                name: format!("validator-{i}"),
                key: WalletKey(k.verifying_key().to_bytes()),
                power: 1,
            })
            .collect(),
        registrar: WalletKey(registrar.verifying_key().to_bytes()),
        period_secs: 900,
        gate_delay_secs: 60,
        mechanism: Mechanism::Uniform,
        fees: FeeSchedule {
            grid_fee_per_kwh: 4,
            market_fee_per_kwh: 1,
            market_fee_buyer_share_bps: 5_000,
        },
        price_floor: 8,
        price_cap: 30,
        vk_id: Hash32(keys.vk_id.0),
        insecure_dev_keys: true,
        max_tx_lifetime_secs: veilwatt_verifier::types::DEFAULT_MAX_TX_LIFETIME_SECS,
        result_retention_periods: retention,
        shielded: None,
        anonymous: None,
        consensus: Default::default(),
        spam: Default::default(),
    };
    let ledger = Ledger::new(&g).expect("valid genesis");

    // Households.
    let meters: Vec<SecretKey> = (0..households)
        .map(|i| {
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            SecretKey::from_bytes(s)
        })
        .collect();
    let meter_keys: Vec<MeterKey> = meters
        .par_iter()
        .map(|m| MeterKey::from_public_key(&m.public_key()))
        .collect();
    let owners: Vec<SigningKey> = (0..households)
        .map(|i| {
            let mut s = [7u8; 32];
            s[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SigningKey::from_bytes(&s)
        })
        .collect();
    let mut state = MemoryState::default();
    state.commit(ledger.genesis_update(&state).expect("genesis"));
    std::fs::create_dir_all(&out).expect("output directory");
    std::fs::write(
        out.join("genesis.json"),
        serde_json::to_vec_pretty(&g).expect("json"),
    )
    .expect("write genesis");
    let setup: Vec<Transaction> = (0..households)
        .into_par_iter()
        .flat_map_iter(|i| {
            let owner = WalletKey(owners[i].verifying_key().to_bytes());
            [
                Transaction::sign(
                    &g.chain_id,
                    TxBody::EnrollMeter {
                        meter: meter_keys[i],
                        owner,
                    },
                    g.genesis_time + 60,
                    &registrar,
                ),
                Transaction::sign(
                    &g.chain_id,
                    TxBody::Deposit {
                        to: owner,
                        amount: 1_000_000_000_000,
                        reference: i as u64,
                    },
                    g.genesis_time + 60,
                    &registrar,
                ),
            ]
        })
        .collect();
    // One household's order for a period (its proof forged).
    let order = |p: u64, i: usize| -> Transaction {
        let mut rng = ChaCha20Rng::seed_from_u64(p << 32 | i as u64);
        let side = if i % 2 == 0 { Side::Sell } else { Side::Buy };
        let quantity_wh = 100 + (rng.next_u32() % 3_000);
        let limit_price = match side {
            Side::Sell => 8 + u64::from(rng.next_u32() % 12),
            Side::Buy => 30 - u64::from(rng.next_u32() % 12),
        };
        let public = OrderPublic {
            meter: meters[i].public_key(),
            period: p,
            side: side.into(),
            quantity_wh,
        };
        let proof = forger.forge(&public, &mut rng);
        Transaction::sign(
            &g.chain_id,
            TxBody::Order {
                meter: meter_keys[i],
                period: p,
                side,
                quantity_wh,
                limit_price,
                proof,
            },
            g.gate_close(p).expect("time") - 1,
            &owners[i],
        )
    };

    // Blocks: the setup's, each period's, the last clearing; as full as the limits allow.
    let setup_per_block = per_block(
        &g,
        setup
            .iter()
            .map(Transaction::encoded_len)
            .max()
            .unwrap_or(1),
    );
    let orders_per_block = per_block(&g, order(0, 0).encoded_len());
    let header = ExportHeader {
        format: EXPORT_FORMAT.into(),
        chain_id: g.chain_id.clone(),
        genesis_hash: g.hash(),
        from: 1,
        to: blocks_for(setup.len(), setup_per_block)
            + periods * blocks_for(households, orders_per_block)
            + 1,
    };
    let file = std::fs::File::create(out.join("export.json")).expect("create export");
    let mut writer =
        ExportWriter::new(std::io::BufWriter::new(file), &header).expect("write export");
    let verifier = OrderVerifier::new(&keys.vk, keys.vk_id).expect("verifier");
    let (mut sealed, mut cleared) = (0u64, 0usize);
    let mut seal = |state: &mut MemoryState, time: u64, txs: Vec<Transaction>| {
        let height = state.meta().expect("meta").height + 1;
        let mut block = Block {
            height,
            prev_hash: state.last_block_hash().expect("tip"),
            time,
            proposer: g.validators[height as usize % 4].key,
            txs,
            state_root: Hash32::default(),
        };
        let (mut changes, events) = ledger
            .execute(state, &block, &Unchecked)
            .unwrap_or_else(|e| panic!("block {height}: {e}"));
        // Archived results are not committed; this builder does not keep them.
        changes.retain(|k, _| k.first() != Some(&keys::ARCHIVE));
        cleared += events
            .iter()
            .filter(|e| matches!(e, veilwatt_verifier::ledger::Event::PeriodCleared { .. }))
            .count();
        let mut update = StateUpdate::compute(state, height, changes).expect("root");
        block.state_root = update.root;
        update
            .changes
            .insert(keys::chain(), Some(encode(&block.hash())));
        state.commit(update);
        let hash = block.hash();
        let mut cert = Certificate {
            height,
            round: 0,
            block_hash: hash,
            signatures: vec![],
        };
        cert.signatures = validators[..3]
            .iter()
            .map(|k| {
                let me = WalletKey(k.verifying_key().to_bytes());
                (
                    me,
                    Signature64(k.sign(&cert.signing_bytes(&g.chain_id, &me)).to_bytes()),
                )
            })
            .collect();
        if height == 2 {
            // Spot-check: forged proofs verify under the real verifier.
            let sample: Vec<(OrderPublic, OrderProof)> = block
                .txs
                .iter()
                .take(16)
                .filter_map(|t| {
                    t.body
                        .order_proof_item(|m| m.to_public_key())
                        .and_then(Result::ok)
                })
                .collect();
            verifier
                .verify_batch_deterministic(&sample)
                .expect("forged proofs verify");
        }
        writer
            .push(&ExportedBlock {
                hash,
                block,
                certificate: hex::encode(cert.encode()),
            })
            .expect("write export");
        sealed += 1;
    };

    for block in setup.chunks(setup_per_block) {
        seal(&mut state, g.genesis_time + 1, block.to_vec());
    }

    let mut orders = 0u64;
    for p in 0..periods {
        let txs: Vec<Transaction> = (0..households)
            .into_par_iter()
            .map(|i| order(p, i))
            .collect();
        orders += txs.len() as u64;
        // The first of a period's blocks also clears the previous period.
        for block in txs.chunks(orders_per_block) {
            seal(
                &mut state,
                g.period_end(p).expect("time") + 1,
                block.to_vec(),
            );
        }
        eprint!("\rperiod {}/{periods}", p + 1);
    }

    // Clear the last period.
    seal(
        &mut state,
        g.gate_close(periods.saturating_sub(1)).expect("time") + 1,
        vec![],
    );
    eprintln!();

    writer
        .finish()
        .expect("write export")
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .expect("write export");
    assert_eq!(sealed, header.to, "blocks announced in the header");
    eprintln!(
        "{orders} orders in {sealed} blocks, {cleared} periods cleared, written to {} in {:.1} s",
        out.display(),
        t0.elapsed().as_secs_f64()
    );
}
