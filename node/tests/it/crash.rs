//! Crash safety of a real node process: under load it is killed with SIGKILL at 20 random
//! points, restarted each time, and every transaction it had reported committed is still
//! committed at the same height, the blocks replay through the state machine to the stored
//! state roots, and blocks keep coming.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use veilwatt_verifier::types::*;

const T: Duration = Duration::from_secs(60);

fn spawn(home: &Path) -> (Child, Api) {
    let addr_file = home.join("data").join("api.addr");
    let _ = std::fs::remove_file(&addr_file);
    let child = Command::new(env!("CARGO_BIN_EXE_veilwatt-node"))
        .args(["run", "--home"])
        .arg(home)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            if !a.is_empty() {
                break a;
            }
        }
        assert!(t0.elapsed() < T, "node did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    (child, Api::new(format!("http://{addr}")))
}

/// What a round of load saw: every transaction the node reported committed, with its height.
type Committed = Arc<Mutex<BTreeMap<TxId, u64>>>;

/// One round of load.
struct Round {
    /// Its number (makes its deposits distinct).
    number: u64,
    /// Sent first by client 0.
    first: Vec<Transaction>,
    /// When to kill the node, from the start of the load.
    kill_after: Duration,
    /// Commits this round must have seen before the kill.
    min_committed: usize,
}

/// Loads the node with deposits from four concurrent clients (client 0 also sends the round's
/// first transactions), while a watcher records what the node reports committed; after the
/// round's delay (and its minimum of commits) kills it with SIGKILL mid-load.
async fn load_then_kill(
    child: &mut Child,
    api: &Api,
    g: &Genesis,
    r: Round,
    committed: &Committed,
) {
    let Round {
        number: round,
        first,
        kill_after,
        min_committed,
    } = r;
    let submitted: Arc<Mutex<Vec<TxId>>> = Arc::default();
    let seen_before = committed.lock().unwrap().len();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..4u64 {
        let (api, g, submitted, stop) = (api.clone(), g.clone(), submitted.clone(), stop.clone());
        let first = if c == 0 { first.clone() } else { Vec::new() };
        tasks.push(tokio::spawn(async move {
            for tx in first {
                if api.submit(&tx).await.0 == 202 {
                    submitted.lock().unwrap().push(tx.id());
                }
            }
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 100_000 {
                let reference = (round << 40) | (c << 32) | n;
                let tx = deposit(&g, &key(50 + c as u8), 1_000 + n, reference);
                let r = api
                    .http
                    .post(format!("{}/v1/tx", api.base))
                    .json(&tx)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 202 => submitted.lock().unwrap().push(tx.id()),
                    Ok(_) => {}
                    Err(_) => break, // the node is gone
                }
                n += 1;
            }
        }));
    }
    let watcher = {
        let (api, committed, submitted, stop) = (
            api.clone(),
            committed.clone(),
            submitted.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // The oldest submissions not yet seen committed: the mempool is FIFO, so they
                // commit first (the newest may wait behind a backlog for the whole round).
                // A few hundred per round are enough to check after the restart.
                let ids: Vec<TxId> = {
                    let seen = committed.lock().unwrap();
                    if seen.len() >= seen_before + 500 {
                        break;
                    }
                    let submitted = submitted.lock().unwrap();
                    submitted
                        .iter()
                        .filter(|id| !seen.contains_key(id))
                        .take(200)
                        .copied()
                        .collect()
                };
                for id in &ids {
                    let Ok(r) = api
                        .http
                        .get(format!("{}/v1/tx/{id}", api.base))
                        .send()
                        .await
                    else {
                        return;
                    };
                    let Ok(v) = r.json::<serde_json::Value>().await else {
                        return;
                    };
                    if v["status"] == "committed" {
                        committed
                            .lock()
                            .unwrap()
                            .insert(*id, v["height"].as_u64().unwrap());
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let t0 = Instant::now();
    while (t0.elapsed() < kill_after
        || committed.lock().unwrap().len() < seen_before + min_committed)
        && t0.elapsed() < T
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = watcher.await;
}

/// After a restart: everything reported committed is there at the same height, and the stored
/// state is what a replay of the blocks gives, root for root. Returns the height.
async fn check_recovered(api: &Api, g: &Genesis, committed: &Committed) -> u64 {
    let committed = committed.lock().unwrap().clone();
    for (id, h) in &committed {
        let (s, v) = api.get_unchecked(&format!("/v1/tx/{id}")).await;
        assert_eq!(s, 200, "{id} lost after kill -9");
        assert_eq!(v["status"], "committed", "{id}: {v}");
        assert_eq!(v["height"].as_u64(), Some(*h), "{id} moved");
    }
    let (_, st) = api.get("/v1/status").await;
    let height = st["height"].as_u64().unwrap();
    let (_, b) = api.get(&format!("/v1/blocks/{height}")).await;
    let replayed = replay(api, g, height).await;
    assert_eq!(replayed.root().to_hex(), b["state_root"].as_str().unwrap());
    assert_eq!(st["state_root"], b["state_root"]);
    height
}

/// Kill -9 a loaded node at 20 random points (seeded, so a failure replays): after every
/// restart nothing it reported committed is lost or moved and its state equals a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_committed() {
    use rand::{Rng, SeedableRng};
    const ROUNDS: u64 = 20;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(16);
    let dir = tempfile::tempdir().unwrap();
    let g = genesis("crash-test", 4, 40);
    // The load is four clients flooding from one address; the per-client rate limit (tested
    // in api_limits.rs) would turn most of it into 429s.
    let home = make_home(dir.path(), &g, |c| {
        c.consensus.block_interval_ms = 200;
        c.api.rate_per_sec = 0;
    });
    let (mut child, api) = spawn(&home);

    // Meters and a few real orders for the last ended period, sent in the first round.
    let owners: Vec<_> = (1..=3u8).map(|i| key(20 + i)).collect();
    for (i, o) in owners.iter().enumerate() {
        let tx = enroll(&g, i as u8 + 1, o);
        assert_eq!(api.submit(&tx).await.0, 202);
        api.wait_committed(&tx.id(), T).await;
    }
    let p = (now() - g.genesis_time) / g.period_secs - 1;
    let orders: Vec<Transaction> = owners
        .iter()
        .enumerate()
        .map(|(i, o)| order(&g, o, i as u8 + 1, p, Side::Sell, 10, 1_010, 1_000, 9))
        .collect();

    let committed: Committed = Arc::default();
    let mut api = api;
    let mut height = 0;
    for round in 0..ROUNDS {
        let first = if round == 0 {
            orders.clone()
        } else {
            Vec::new()
        };
        // A random point of the commit cycle: anywhere from before the first block of the
        // round to well into it.
        let kill_after = Duration::from_millis(rng.gen_range(0..1_500));
        let min_committed = if round == 0 { 100 } else { 1 };
        let r = Round {
            number: round,
            first,
            kill_after,
            min_committed,
        };
        load_then_kill(&mut child, &api, &g, r, &committed).await;
        let (c, a) = spawn(&home);
        (child, api) = (c, a);
        let h = check_recovered(&api, &g, &committed).await;
        assert!(
            h >= height,
            "round {round}: height went back from {height} to {h}"
        );
        height = h;
    }
    assert!(committed.lock().unwrap().len() >= 100 + ROUNDS as usize - 1);
    // And the node keeps producing blocks.
    api.wait_height(height + 3, T).await;

    // `export` reads the ledger while the node runs: blocks with their certificates.
    let out = dir.path().join("export.json");
    let st = Command::new(env!("CARGO_BIN_EXE_veilwatt-node"))
        .args(["export", "--home"])
        .arg(&home)
        .args(["--from", "1", "--to", &height.to_string(), "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let doc = veilwatt_verifier::audit::Export::read_from(std::io::BufReader::new(
        std::fs::File::open(&out).unwrap(),
    ))
    .unwrap();
    assert_eq!(doc.format, "veilwatt-export/2");
    assert_eq!(doc.genesis_hash, g.hash());
    assert_eq!(doc.blocks.len() as u64, height);
    for b in &doc.blocks {
        let cert = hex::decode(&b.certificate).unwrap();
        let cert = veilwatt_node::consensus::codec::decode_commit_certificate(&cert).unwrap();
        assert_eq!(cert.value_id.0, b.block.hash().0);
        assert_eq!(b.hash, b.block.hash());
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
