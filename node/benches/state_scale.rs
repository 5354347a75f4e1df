//! How the cost of a block grows with the size of the ledger: apply (rules + state root) and
//! commit (one synced RocksDB write batch) of blocks of 1,000 orders on a RocksDB store holding
//! N funded accounts, for each N given. Proofs and signatures are excluded, as in a validator,
//! which verified both at admission. Also the bytes written per order, and the time to open the
//! store again (a restart: the state's tree is built from the committed entries).
//!
//! `cargo bench -p veilwatt-node --bench state_scale -- 10000 100000 1000000`
//! (default: 10,000 and 100,000). Figures go to docs/benchmarks.md. Bytes per order are the
//! write batches of a period's order block and clearing block (blocks, index, state entries),
//! divided by its orders: what the ledger writes, before RocksDB's compression and compaction.

/// The node's allocator (node/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rayon::prelude::*;
use veilwatt_circuits::eddsa::SecretKey;
use veilwatt_circuits::order::OrderPublic;
use veilwatt_node::store::RocksStore;
use veilwatt_verifier::ledger::{Ledger, LedgerRead, ProofCheck};
use veilwatt_verifier::state::{keys, StateReadExt, StateUpdate};
use veilwatt_verifier::types::*;
use veilwatt_verifier::{BatchFailure, OrderProof};

/// A validator's view: every proof and signature was verified when the transaction was
/// admitted to its mempool.
struct VerifiedAtAdmission;

impl ProofCheck for VerifiedAtAdmission {
    fn check(&self, _: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure> {
        Ok(())
    }
    fn signature_known(&self, _: &TxId) -> bool {
        true
    }
}

const ORDERS: usize = 1_000;
const MEASURED_BLOCKS: u64 = 24;
const WARMUP_PERIODS: u64 = 2;
const SETUP_BLOCK: usize = 20_000;
const PERIOD: u64 = 900;

fn genesis(registrar: &SigningKey, proposer: &SigningKey) -> Genesis {
    Genesis {
        chain_id: "state-scale".into(),
        genesis_time: 0,
        validators: vec![Validator {
            name: "v".into(),
            key: WalletKey(proposer.verifying_key().to_bytes()),
            power: 1,
        }],
        registrar: WalletKey(registrar.verifying_key().to_bytes()),
        period_secs: PERIOD,
        gate_delay_secs: 600,
        mechanism: Mechanism::Uniform,
        fees: FeeSchedule {
            grid_fee_per_kwh: 5,
            market_fee_per_kwh: 2,
            market_fee_buyer_share_bps: 5_000,
        },
        price_floor: 8,
        price_cap: 30,
        vk_id: Hash32([0; 32]),
        insecure_dev_keys: true,
        max_tx_lifetime_secs: veilwatt_verifier::types::DEFAULT_MAX_TX_LIFETIME_SECS,
        result_retention_periods: veilwatt_verifier::types::DEFAULT_RESULT_RETENTION_PERIODS,
        shielded: None,
        anonymous: None,
        // Setup blocks of `SETUP_BLOCK` deposits (a real genesis would fund its accounts in
        // blocks of the default size; the measured blocks are far below either limit).
        consensus: ConsensusParams {
            max_block_txs: SETUP_BLOCK as u32,
            max_block_bytes: MAX_BLOCK_BYTES_BOUND,
            ..Default::default()
        },
        spam: Default::default(),
    }
}

struct Chain<'g> {
    g: &'g Genesis,
    ledger: Ledger<'g>,
    store: RocksStore,
    proposer: WalletKey,
}

impl Chain<'_> {
    /// Proposes, applies and commits a block; returns (apply, commit) times and the bytes of
    /// its write batch.
    fn block(&self, time: u64, txs: Vec<Transaction>) -> (Duration, Duration, usize) {
        let view = self.store.live();
        let meta = view.meta().expect("meta");
        let mut block = Block {
            height: meta.height + 1,
            prev_hash: view.last_block_hash().expect("tip"),
            time,
            proposer: self.proposer,
            txs,
            state_root: Hash32::default(),
        };
        // The proposer's work gives the root; the measured part is a validator's.
        let t = Instant::now();
        let (changes, _) = self
            .ledger
            .execute(&view, &block, &VerifiedAtAdmission)
            .expect("valid block");
        let rules = t.elapsed();
        let t = Instant::now();
        block.state_root = StateUpdate::compute(&view, block.height, changes)
            .expect("root")
            .root;
        if std::env::var_os("STATE_SCALE_SPLIT").is_some() {
            eprintln!("rules {rules:?} root {:?}", t.elapsed());
        }
        let t0 = Instant::now();
        let applied = self
            .ledger
            .apply_block(&view, &block, &VerifiedAtAdmission)
            .expect("valid block");
        let apply = t0.elapsed();
        let t1 = Instant::now();
        let bytes = self
            .store
            .commit_decided(&block, &applied.update, &[])
            .expect("commit");
        (apply, t1.elapsed(), bytes)
    }
}

fn wallet_key(i: u64) -> SigningKey {
    let mut seed = [3u8; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(accounts: u64) {
    let registrar = SigningKey::from_bytes(&[200; 32]);
    let proposer = SigningKey::from_bytes(&[201; 32]);
    let g = genesis(&registrar, &proposer);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RocksStore::open(dir.path()).expect("store");
    let ledger = Ledger::new(&g).expect("genesis");
    store
        .init_genesis(&ledger.genesis_update(&store.live()).expect("genesis"))
        .expect("init");
    let chain = Chain {
        g: &g,
        ledger,
        store,
        proposer: WalletKey(proposer.verifying_key().to_bytes()),
    };

    // Setup: `accounts` funded wallets; the first 1,000 also own an enrolled meter.
    let t0 = Instant::now();
    let traders: Vec<(SigningKey, MeterKey)> = (0..ORDERS as u64)
        .into_par_iter()
        .map(|i| {
            let mut seed = [5u8; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            (
                wallet_key(i),
                MeterKey::from_public_key(&SecretKey::from_bytes(seed).public_key()),
            )
        })
        .collect();
    let enrol: Vec<Transaction> = traders
        .iter()
        .map(|(w, m)| {
            let body = TxBody::EnrollMeter {
                meter: *m,
                owner: WalletKey(w.verifying_key().to_bytes()),
            };
            Transaction::sign(&chain.g.chain_id, body, 600, &registrar)
        })
        .collect();
    chain.block(0, enrol);
    let mut next = 0u64;
    while next < accounts {
        let end = (next + SETUP_BLOCK as u64).min(accounts);
        let txs: Vec<Transaction> = (next..end)
            .into_par_iter()
            .map(|i| {
                let body = TxBody::Deposit {
                    to: WalletKey(wallet_key(i).verifying_key().to_bytes()),
                    amount: 100_000_000,
                    reference: i,
                };
                Transaction::sign(&chain.g.chain_id, body, 600, &registrar)
            })
            .collect();
        chain.block(0, txs);
        next = end;
    }
    // The setup's deposit ids expire at 600; empty blocks forget them (at most
    // `max_pruned_per_block` a block), a one-off cost of the setup, not measured.
    let view = chain.store.live();
    while view
        .first_key(&keys::all_applied())
        .expect("applied ids")
        .is_some()
    {
        chain.block(601, Vec::new());
    }
    drop(view);
    let setup = t0.elapsed();
    // A validator's compactions follow its blocks; the backlog of a setup that wrote a
    // million accounts in a minute is not what a block costs.
    let settled = chain
        .store
        .settle(Duration::from_secs(600))
        .expect("rocksdb properties");
    if !settled {
        eprintln!("RocksDB still compacting after 10 minutes; measuring anyway");
    }

    // Per period, a block with one order from each trader, then a block after the gate that
    // clears them (so the book does not grow with the run). The first `WARMUP_PERIODS` are
    // not measured (caches, and the first period's pruning of nothing).
    let (mut apply, mut commit, mut clear_apply, mut clear_commit) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for period in 0..WARMUP_PERIODS + MEASURED_BLOCKS {
        let time = (period + 1) * PERIOD + 1;
        let txs: Vec<Transaction> = traders
            .par_iter()
            .enumerate()
            .map(|(i, (w, m))| {
                let body = TxBody::Order {
                    meter: *m,
                    period,
                    side: if i % 2 == 0 { Side::Sell } else { Side::Buy },
                    quantity_wh: 500 + (i as u32 * 37) % 2_000,
                    limit_price: 8 + (i as u64 * 13) % 23,
                    proof: veilwatt_verifier::Groth16Proof([0; 128]),
                };
                // Valid for ten minutes: pruned from the replay set in the next period's block.
                Transaction::sign(&chain.g.chain_id, body, time + 600, w)
            })
            .collect();
        let (a, c, b) = chain.block(time, txs);
        let (ca, cc, b2) = chain.block(time + 600, Vec::new());
        if period >= WARMUP_PERIODS {
            apply.push(a);
            commit.push(c);
            clear_apply.push(ca);
            clear_commit.push(cc);
            bytes += b + b2;
        }
    }
    // A restart: open the store again, which builds the tree from the committed entries.
    let Chain { store, .. } = chain;
    drop(store);
    let t = Instant::now();
    let store = RocksStore::open(dir.path()).expect("reopen");
    let reopen = t.elapsed();
    drop(store);
    let orders = MEASURED_BLOCKS as usize * ORDERS;
    let ms = |v: &[Duration]| median(v.to_vec()).as_secs_f64() * 1e3;
    let total = |a: &[Duration], c: &[Duration]| {
        median(a.iter().zip(c).map(|(a, c)| *a + *c).collect()).as_secs_f64() * 1e3
    };
    println!(
        "| {accounts} | {:.1} | {:.1} | **{:.1}** | {:.1} | {:.1} | {:.0} | {:.0} s | {:.1} s |",
        ms(&apply),
        ms(&commit),
        total(&apply, &commit),
        ms(&clear_apply),
        ms(&clear_commit),
        bytes as f64 / orders as f64,
        setup.as_secs_f64(),
        reopen.as_secs_f64(),
    );
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    println!(
        "| accounts | 1,000-order block: apply (rules + root) ms | commit ms | total ms | clearing block: apply ms | commit ms | RocksDB bytes written per order (order + its clearing, write batches) | setup | reopen |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        run(n);
    }
}
