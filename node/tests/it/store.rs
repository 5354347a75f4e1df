//! The RocksDB ledger: round trips, ordering, and crash consistency under `kill -9`.

use ed25519_dalek::SigningKey;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use veilwatt_node::store::{RocksStore, StoreError, TxLocation};
use veilwatt_verifier::ledger::{Applied, Ledger, LedgerRead, ProofCheck};
use veilwatt_verifier::state::{tree, MemoryState, StateRead};
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
        max_tx_lifetime_secs: veilwatt_verifier::types::DEFAULT_MAX_TX_LIFETIME_SECS,
        result_retention_periods: veilwatt_verifier::types::DEFAULT_RESULT_RETENTION_PERIODS,
        shielded: None,
        anonymous: None,
        consensus: Default::default(),
        spam: Default::default(),
    };
    (g, registrar, validator)
}

/// Block `h` on top of the committed state of `store`: three deposits.
fn next_block(
    g: &Genesis,
    registrar: &SigningKey,
    validator: &SigningKey,
    store: &RocksStore,
) -> (Block, Applied) {
    let view = store.live();
    let h = view.meta().unwrap().height + 1;
    let txs = (0..3u64)
        .map(|k| {
            let body = TxBody::Deposit {
                to: WalletKey([k as u8; 32]),
                amount: 1_000 + h,
                reference: h * 10 + k,
            };
            Transaction::sign(&g.chain_id, body, h + 60, registrar)
        })
        .collect();
    let mut b = Block {
        height: h,
        prev_hash: view.last_block_hash().unwrap(),
        time: h,
        proposer: WalletKey(validator.verifying_key().to_bytes()),
        txs,
        state_root: Hash32([0; 32]),
    };
    let ledger = Ledger::new(g).expect("genesis");
    let (changes, _) = ledger.execute(&view, &b, &NoOrders).expect("valid");
    b.state_root = veilwatt_verifier::state::StateUpdate::compute(&view, h, changes)
        .expect("root")
        .root;
    let applied = ledger.apply_block(&view, &b, &NoOrders).expect("valid");
    (b, applied)
}

/// A store with its genesis state written.
fn open(g: &Genesis, path: &std::path::Path) -> RocksStore {
    let store = RocksStore::open(path).unwrap();
    if !store.is_initialized().unwrap() {
        let genesis = Ledger::new(g)
            .unwrap()
            .genesis_update(&store.live())
            .unwrap();
        store.init_genesis(&genesis).unwrap();
    }
    store
}

/// Every entry of the store's state.
fn contents(store: &RocksStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    store.live().scan(&[0x00], &[0xff], usize::MAX).unwrap()
}

/// The state replayed in memory from the store's blocks, checking every root.
fn replay(g: &Genesis, store: &RocksStore, to: u64) -> MemoryState {
    let ledger = Ledger::new(g).unwrap();
    let mut m = MemoryState::default();
    m.commit(ledger.genesis_update(&m).unwrap());
    for h in 1..=to {
        let b = store
            .block(h)
            .unwrap()
            .expect("every block up to the state's height");
        let applied = ledger
            .apply_block(&m, &b, &NoOrders)
            .expect("stored blocks are valid");
        m.commit(applied.update);
    }
    m
}

#[test]
fn commits_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (g, r, v) = genesis();
    let mut blocks = Vec::new();
    {
        let store = RocksStore::open(dir.path()).unwrap();
        assert!(!store.is_initialized().unwrap());
        drop(store);
        let store = open(&g, dir.path());
        assert_eq!(store.height().unwrap(), 0);
        for _ in 0..5 {
            let (b, applied) = next_block(&g, &r, &v, &store);
            store.commit_decided(&b, &applied.update, &[]).unwrap();
            blocks.push(b);
        }
    }
    let store = open(&g, dir.path());
    assert_eq!(store.height().unwrap(), 5);
    let replayed = replay(&g, &store, 5);
    let want: Vec<(Vec<u8>, Vec<u8>)> = replayed
        .entries()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(contents(&store), want);
    assert_eq!(tree::root(&store.live()).unwrap(), blocks[4].state_root);
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

/// `get_many` (RocksDB batches, a part per thread) reads what `get` reads, key by key, in a
/// live view and in a snapshot that later commits do not change; present and absent keys,
/// sorted or not, with archive keys or not.
#[test]
fn many_keys_read_at_once_are_what_one_at_a_time_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (g, r, v) = genesis();
    let store = open(&g, dir.path());
    for _ in 0..40 {
        let (b, applied) = next_block(&g, &r, &v, &store);
        store.commit_decided(&b, &applied.update, &[]).unwrap();
    }
    let present: Vec<Vec<u8>> = contents(&store).into_iter().map(|(k, _)| k).collect();
    assert!(present.len() > 100, "{} entries", present.len());
    // Each present key, a key just after it (absent), and keys of empty tables.
    let mut keys: Vec<Vec<u8>> = present
        .iter()
        .flat_map(|k| [k.clone(), [k.as_slice(), &[0]].concat()])
        .chain((0..50u8).map(|i| vec![0x01, i, 0xee]))
        .collect();
    keys.sort();
    let one_at_a_time = |view: &dyn StateRead, keys: &[Vec<u8>]| -> Vec<Option<Vec<u8>>> {
        keys.iter().map(|k| view.get(k).unwrap()).collect()
    };
    let snapshot = store.snapshot();
    let before = one_at_a_time(&snapshot, &keys);
    assert!(before.iter().any(Option::is_some) && before.iter().any(Option::is_none));
    for _ in 0..3 {
        let (b, applied) = next_block(&g, &r, &v, &store);
        store.commit_decided(&b, &applied.update, &[]).unwrap();
    }
    assert_eq!(snapshot.get_many(&keys).unwrap(), before);
    let live = store.live();
    let now = one_at_a_time(&live, &keys);
    assert_ne!(now, before, "the later commits changed some of the keys");
    assert_eq!(live.get_many(&keys).unwrap(), now);
    // Unsorted, and with an archive key: read one at a time, the same values.
    let mut mixed = keys.clone();
    mixed.reverse();
    mixed.push(veilwatt_verifier::state::keys::archived_result(3));
    assert_eq!(live.get_many(&mixed).unwrap(), one_at_a_time(&live, &mixed));
    assert_eq!(live.get_many(&[]).unwrap(), Vec::<Option<Vec<u8>>>::new());
}

#[test]
fn out_of_order_commits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (g, r, v) = genesis();
    let store = open(&g, dir.path());
    let (b1, a1) = next_block(&g, &r, &v, &store);
    let mut a2 = a1.clone();
    a2.update.version = 2;
    let mut b2 = b1.clone();
    b2.height = 2;
    assert!(matches!(
        store.commit_decided(&b2, &a2.update, &[]),
        Err(StoreError::OutOfOrder { at: 0, got: 2 })
    ));
    store.commit_decided(&b1, &a1.update, &[]).unwrap();
    assert!(matches!(
        store.commit_decided(&b1, &a1.update, &[]),
        Err(StoreError::OutOfOrder { at: 1, got: 1 })
    ));
    let (b2, a2) = next_block(&g, &r, &v, &store);
    store.commit_decided(&b2, &a2.update, &[]).unwrap();
    assert_eq!(store.height().unwrap(), 2);
}

/// Child mode: commit blocks forever, printing each committed height.
fn writer(path: &str) -> ! {
    let (g, r, v) = genesis();
    let store = open(&g, std::path::Path::new(path));
    loop {
        let (b, applied) = next_block(&g, &r, &v, &store);
        store.commit_decided(&b, &applied.update, &[]).unwrap();
        println!("{}", b.height);
    }
}

#[test]
fn kill_9_leaves_every_reported_commit_and_a_consistent_state() {
    if let Ok(path) = std::env::var("VEILWATT_STORE_WRITER") {
        writer(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let (g, _, _) = genesis();
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

        let store = open(&g, dir.path());
        let height = store.height().unwrap();
        assert!(
            height >= reported,
            "reported {reported}, recovered {height}"
        );
        // The state equals a replay of the stored blocks, and so does its root.
        let replayed = replay(&g, &store, height);
        let want: Vec<(Vec<u8>, Vec<u8>)> = replayed
            .entries()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(contents(&store), want);
        assert_eq!(tree::root(&store.live()).unwrap(), replayed.root());
        assert_eq!(
            store.block(height + 1).unwrap(),
            None,
            "no block beyond the state"
        );
    }
}

/// The store's database opened directly, with every column family it has.
fn raw_db(path: &std::path::Path) -> rocksdb::DB {
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
    let mut opts = rocksdb::Options::default();
    opts.create_missing_column_families(true);
    rocksdb::DB::open_cf(&opts, path, cfs).unwrap()
}

/// A store holding genesis and `blocks` committed blocks, closed; its last block.
fn store_with_blocks(path: &std::path::Path, blocks: u64) -> Block {
    let (g, r, v) = genesis();
    let store = open(&g, path);
    let mut last = None;
    for _ in 0..blocks {
        let (b, applied) = next_block(&g, &r, &v, &store);
        store.commit_decided(&b, &applied.update, &[]).unwrap();
        last = Some(b);
    }
    last.expect("at least one block")
}

#[test]
fn a_store_whose_entries_do_not_give_the_last_blocks_root_is_refused() {
    // The tree is built from the committed entries when the store opens; an entry changed
    // behind the ledger's back (a damaged or edited database) gives another root.
    let dir = tempfile::tempdir().unwrap();
    store_with_blocks(dir.path(), 3);
    {
        let db = raw_db(dir.path());
        let kv = db.cf_handle("kv").unwrap();
        // A committed entry other than the chain's totals (which the store reads first).
        let (key, value) = db
            .iterator_cf(kv, rocksdb::IteratorMode::Start)
            .map(Result::unwrap)
            .find(|(k, _)| {
                veilwatt_verifier::state::keys::is_committed(k)
                    && **k != veilwatt_verifier::state::keys::meta()[..]
            })
            .unwrap();
        let mut tampered = value.to_vec();
        *tampered.last_mut().unwrap() ^= 1;
        db.put_cf(kv, &key, tampered).unwrap();
    }
    let e = RocksStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(e, StoreError::Corrupt { what: "state", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("block 3 commits"), "{e}");
    let e = RocksStore::open_read_only(dir.path()).unwrap_err();
    assert!(
        matches!(e, StoreError::Corrupt { what: "state", .. }),
        "{e}"
    );
}

#[test]
fn a_store_with_stored_tree_nodes_opens_and_drops_them() {
    // Until 2026-12-06 the store kept jmt's tree nodes in a `tree` column family. Its entries
    // and root are this version's: it opens, and the column is dropped.
    let dir = tempfile::tempdir().unwrap();
    let last = store_with_blocks(dir.path(), 2);
    {
        let mut opts = rocksdb::Options::default();
        opts.create_missing_column_families(true);
        let mut cfs = rocksdb::DB::list_cf(&opts, dir.path()).unwrap();
        cfs.push("tree".into());
        let db = rocksdb::DB::open_cf(&opts, dir.path(), cfs).unwrap();
        db.put_cf(db.cf_handle("tree").unwrap(), b"node", b"bytes")
            .unwrap();
    }
    // Read-only, it opens without touching the column.
    let ro = RocksStore::open_read_only(dir.path()).unwrap();
    assert_eq!(tree::root(&ro.live()).unwrap(), last.state_root);
    drop(ro);
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(store.height().unwrap(), 2);
    assert_eq!(tree::root(&store.live()).unwrap(), last.state_root);
    drop(store);
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
    assert!(!cfs.iter().any(|c| c == "tree"), "{cfs:?}");
}

#[test]
fn databases_of_earlier_formats_are_refused_with_a_clear_error() {
    // Version 1 (one state value) and the keyed state before transactions expired.
    for cfs in [&["blocks", "state"][..], &["blocks", "kv", "tree"][..]] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut opts = rocksdb::Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let db = rocksdb::DB::open_cf(&opts, dir.path(), cfs).unwrap();
            drop(db);
        }
        let e = RocksStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::OldFormat(_)), "{e}");
        assert!(e.to_string().contains("earlier format"), "{e}");
    }
}

#[test]
fn a_state_with_committed_order_indexes_is_refused_as_an_earlier_format() {
    // Until 2026-12-06 an open order's id index (0x04) and its owner's side (0x12) were
    // committed: a state holding either has another root than this version computes.
    for tag in veilwatt_verifier::state::keys::RETIRED {
        let dir = tempfile::tempdir().unwrap();
        drop(RocksStore::open(dir.path()).unwrap());
        {
            let db = raw_db(dir.path());
            db.put_cf(db.cf_handle("kv").unwrap(), [tag, 1, 2, 3], b"x")
                .unwrap();
        }
        let e = RocksStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::OldFormat(_)), "{e}");
        let e = RocksStore::open_read_only(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::OldFormat(_)), "{e}");
    }
    // A fresh store opens again (the check does not refuse its own format).
    let dir = tempfile::tempdir().unwrap();
    drop(RocksStore::open(dir.path()).unwrap());
    RocksStore::open(dir.path()).unwrap();
}
