//! The RocksDB ledger: round trips, ordering, and crash consistency under `kill -9`.

use ed25519_dalek::SigningKey;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use veilwatt_node::store::{RocksStore, StoreError, TxLocation};
use veilwatt_verifier::ledger::{Ledger, LedgerState, ProofCheck};
use veilwatt_verifier::store::LedgerStore;
use veilwatt_verifier::types::*;
use veilwatt_verifier::{BatchFailure, OrderProof};

/// Blocks in these tests carry no orders, so there is nothing to verify.
struct NoOrders;

impl ProofCheck for NoOrders {
    fn check(
        &self,
        items: &[(veilwatt_circuits::order::OrderPublic, OrderProof)],
    ) -> Result<(), BatchFailure> {
        assert!(items.is_empty());
        Ok(())
    }
}

fn genesis() -> (Genesis, SigningKey, SigningKey) {
    let registrar = SigningKey::from_bytes(&[1; 32]);
    let validator = SigningKey::from_bytes(&[2; 32]);
    let g = Genesis {
        chain_id: "store-test".into(),
        genesis_time: 0,
        validators: vec![Validator {
            name: "v".into(),
            key: WalletKey(validator.verifying_key().to_bytes()),
            power: 1,
        }],
        registrar: WalletKey(registrar.verifying_key().to_bytes()),
        period_secs: 60,
        gate_delay_secs: 30,
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
    };
    (g, registrar, validator)
}

/// Block `h` on top of `state`: three deposits.
fn next_block(
    g: &Genesis,
    registrar: &SigningKey,
    validator: &SigningKey,
    state: &LedgerState,
) -> (Block, LedgerState) {
    let h = state.height + 1;
    let txs = (0..3u64)
        .map(|k| {
            let body = TxBody::Deposit {
                to: WalletKey([k as u8; 32]),
                amount: 1_000 + h,
                reference: h * 10 + k,
            };
            Transaction::sign(&g.chain_id, body, registrar)
        })
        .collect();
    let mut b = Block {
        height: h,
        prev_hash: state.last_block_hash,
        time: h,
        proposer: WalletKey(validator.verifying_key().to_bytes()),
        txs,
        state_root: Hash32([0; 32]),
    };
    let ledger = Ledger::new(g).expect("genesis");
    b.state_root = ledger
        .execute(state, &b, &NoOrders)
        .expect("valid")
        .0
        .root();
    let (next, _) = ledger.apply_block(state, &b, &NoOrders).expect("valid");
    (b, next)
}

#[test]
fn commits_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (g, r, v) = genesis();
    let mut state = LedgerState::default();
    let mut blocks = Vec::new();
    {
        let mut store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(store.state().unwrap(), None);
        for _ in 0..5 {
            let (b, s) = next_block(&g, &r, &v, &state);
            store.commit(&b, &s).unwrap();
            blocks.push(b);
            state = s;
        }
    }
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(store.state().unwrap().as_ref(), Some(&state));
    assert_eq!(store.height().unwrap(), 5);
    for b in &blocks {
        assert_eq!(store.block(b.height).unwrap().as_ref(), Some(b));
        for (i, tx) in b.txs.iter().enumerate() {
            assert_eq!(
                store.tx_location(&tx.id()).unwrap(),
                Some(TxLocation {
                    height: b.height,
                    index: i as u32
                })
            );
        }
    }
    assert_eq!(store.block(6).unwrap(), None);
    assert_eq!(store.block(0).unwrap(), None);
}

#[test]
fn out_of_order_commits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (g, r, v) = genesis();
    let mut store = RocksStore::open(dir.path()).unwrap();
    let (b1, s1) = next_block(&g, &r, &v, &LedgerState::default());
    let (b2, s2) = next_block(&g, &r, &v, &s1);
    assert!(matches!(
        store.commit(&b2, &s2),
        Err(StoreError::OutOfOrder { at: 0, got: 2 })
    ));
    store.commit(&b1, &s1).unwrap();
    assert!(matches!(
        store.commit(&b1, &s1),
        Err(StoreError::OutOfOrder { at: 1, got: 1 })
    ));
    store.commit(&b2, &s2).unwrap();
}

/// Child mode: commit blocks forever, printing each committed height.
fn writer(path: &str) -> ! {
    let (g, r, v) = genesis();
    let mut store = RocksStore::open(std::path::Path::new(path)).unwrap();
    let mut state = store.state().unwrap().unwrap_or_default();
    loop {
        let (b, s) = next_block(&g, &r, &v, &state);
        store.commit(&b, &s).unwrap();
        println!("{}", b.height);
        state = s;
    }
}

#[test]
fn kill_9_leaves_every_reported_commit_and_a_consistent_state() {
    if let Ok(path) = std::env::var("VEILWATT_STORE_WRITER") {
        writer(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let (g, r, v) = genesis();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill_9_leaves_every_reported_commit_and_a_consistent_state",
                "--nocapture",
            ])
            .env("VEILWATT_STORE_WRITER", dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the writer reports some commits, then kill it mid-stream.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut reported = 0u64;
        while let Some(Ok(line)) = lines.next() {
            if let Ok(h) = line.trim().parse::<u64>() {
                reported = h;
                if h >= 20 * (round + 1) {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = RocksStore::open(dir.path()).unwrap();
        let state = store.state().unwrap().expect("state");
        assert!(
            state.height >= reported,
            "reported {reported}, recovered {}",
            state.height
        );
        // The state equals a replay of the stored blocks, block by block.
        let ledger = Ledger::new(&g).unwrap();
        let mut replay = LedgerState::default();
        for h in 1..=state.height {
            let b = store
                .block(h)
                .unwrap()
                .expect("every block up to the state's height");
            replay = ledger
                .apply_block(&replay, &b, &NoOrders)
                .expect("stored blocks are valid")
                .0;
        }
        assert_eq!(replay, state);
        assert_eq!(
            store.block(state.height + 1).unwrap(),
            None,
            "no block beyond the state"
        );
        let _ = (&r, &v);
    }
}
