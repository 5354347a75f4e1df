//! The BFT validator network, as real `veilwatt-node` processes on 127.0.0.1: four validators
//! agree on every block and state root under orders submitted to any of them; a killed
//! validator is not needed and catches up through sync; Byzantine proposers (the test-only
//! `byzantine` build) are refused; without a quorum nothing commits until one returns.
//!
//! The tests take turns (one network at a time on a 2-core machine).

mod common;

use std::time::{Duration, Instant};

use common::*;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use veilwatt_node::byzantine::Mode;
use veilwatt_verifier::ledger::LedgerRead;
use veilwatt_verifier::types::*;

const T: Duration = Duration::from_secs(120);

static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until every validator of `among` has height >= `h`.
async fn wait_height(net: &Net, among: &[usize], h: u64) {
    let t0 = Instant::now();
    loop {
        let mut lowest = u64::MAX;
        for &i in among {
            lowest = lowest.min(net.height(i).await);
        }
        if lowest >= h {
            return;
        }
        if t0.elapsed() > T {
            let logs: Vec<String> = among.iter().map(|&i| net.log_tail(i)).collect();
            panic!("height {h} not reached (lowest {lowest}); logs:\n{logs:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Lowest height among `among`.
async fn lowest_height(net: &Net, among: &[usize]) -> u64 {
    let mut lowest = u64::MAX;
    for &i in among {
        lowest = lowest.min(net.height(i).await);
    }
    lowest
}

/// Submits `tx` to validator `i`, expecting it admitted.
async fn submit(net: &Net, i: usize, tx: &Transaction) {
    let r = net.apis[i].submit(tx).await;
    assert_eq!(r.0, 202, "validator {i}: {r:?}");
}

/// Enrols meters `first..first+n` (owners `key(100 + meter)`), funds the buyers among them,
/// submitting round robin to `among`; waits until all are committed on `among[0]`.
async fn setup_meters(net: &Net, among: &[usize], first: u8, n: u8) -> Vec<SigningKey> {
    let g = &net.genesis;
    let owners: Vec<SigningKey> = (first..first + n).map(|m| key(100 + m)).collect();
    let mut txs = Vec::new();
    for (k, m) in (first..first + n).enumerate() {
        txs.push(enroll(g, m, &owners[k]));
        txs.push(deposit(g, &owners[k], 1_000_000, u64::from(m)));
    }
    for (k, tx) in txs.iter().enumerate() {
        submit(net, among[k % among.len()], tx).await;
    }
    for tx in &txs {
        net.apis[among[0]].wait_committed(&tx.id(), T).await;
    }
    owners
}

/// Waits until `period` is cleared on validator `i`; returns its view.
async fn wait_cleared(net: &Net, i: usize, period: u64) -> Value {
    net.apis[i].wait_cleared(period, T).await
}

/// The current period of `g`'s clock, and when it ends.
fn current_period(g: &Genesis) -> (u64, u64) {
    let p = (now() - g.genesis_time) / g.period_secs;
    (p, g.period_end(p).unwrap())
}

/// Proposers of blocks `from..=to` on validator `i`.
async fn proposers(net: &Net, i: usize, from: u64, to: u64) -> Vec<String> {
    net.blocks(i, to).await[(from - 1) as usize..]
        .iter()
        .map(|b| b["proposer"].as_str().unwrap().to_owned())
        .collect()
}

fn validator_hex(i: usize) -> String {
    wallet(&SigningKey::from_bytes(&validator_seed(i))).to_hex()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_commit_identical_blocks_under_orders() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut net = Net::new(genesis_n("net-agree", 4, 6, 4), |_, _| {});
    net.start_all();
    let all = [0, 1, 2, 3];
    let g = net.genesis.clone();

    // Meters 1-4 sell, 5-8 buy; set up through every validator (forwarding carries each
    // transaction to the others).
    let owners = setup_meters(&net, &all, 1, 8).await;

    // A stream of deposits to all four validators while orders for one period go in.
    let stream = {
        let apis = net.apis.clone();
        let g = g.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..200u64 {
                let tx = deposit(&g, &key(60), 1 + n, 10_000 + n);
                let r = apis[n as usize % 4].submit(&tx).await;
                assert_eq!(r.0, 202, "{r:?}");
                ids.push(tx.id());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ids
        })
    };
    let (p, end) = current_period(&g);
    let orders: Vec<Transaction> = (0..8u8)
        .map(|k| {
            let m = k + 1;
            if k < 4 {
                order(
                    &g,
                    &owners[k as usize],
                    m,
                    p,
                    Side::Sell,
                    100,
                    1_600,
                    1_500,
                    9 + u64::from(k),
                )
            } else {
                order(
                    &g,
                    &owners[k as usize],
                    m,
                    p,
                    Side::Buy,
                    2_000,
                    0,
                    1_200,
                    20 + u64::from(k),
                )
            }
        })
        .collect();
    sleep_until_unix(end).await;
    for (k, tx) in orders.iter().enumerate() {
        submit(&net, k % 4, tx).await;
    }
    let deposits = stream.await.unwrap();

    // Every transaction commits, as seen from a validator other than the one it went to.
    for (k, tx) in orders.iter().enumerate() {
        net.apis[(k + 1) % 4].wait_committed(&tx.id(), T).await;
    }
    for (n, id) in deposits.iter().enumerate() {
        net.apis[(n + 2) % 4].wait_committed(id, T).await;
    }
    let cleared = wait_cleared(&net, 0, p).await;
    // Every bid is above every ask: all 4 x 1,200 Wh of demand is met.
    assert_eq!(cleared["volume_wh"], 4_800, "{cleared}");

    // Identical blocks and state roots everywhere; the same period view everywhere.
    let h = lowest_height(&net, &all).await;
    net.assert_same_chain(&all, h).await;
    for i in 1..4 {
        assert_eq!(wait_cleared(&net, i, p).await, cleared, "validator {i}");
    }
    // The chain replays through the state machine (real proof checks) to the stored roots.
    let replayed = replay(&net.apis[2], &g, h).await;
    let (_, top) = net.apis[3].get(&format!("/v1/blocks/{h}")).await;
    assert_eq!(
        replayed.root().to_hex(),
        top["state_root"].as_str().unwrap()
    );
    assert_eq!(
        serde_json::to_value(replayed.period_result(p).unwrap().unwrap().trades).unwrap(),
        cleared["trades"]
    );

    // Every validator proposed, and every one received forwarded transactions.
    let who: std::collections::BTreeSet<String> =
        proposers(&net, 0, 1, h).await.into_iter().collect();
    for i in all {
        assert!(
            who.contains(&validator_hex(i)),
            "validator {i} never proposed"
        );
        assert!(
            net.metric(i, "veilwatt_forward_received").await > 0.0,
            "validator {i} received nothing forwarded"
        );
        assert_eq!(net.metric(i, "veilwatt_proposals_refused").await, 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_validator_is_not_needed_and_catches_up_after_restart() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut net = Net::new(genesis_n("net-restart", 4, 6, 4), |_, _| {});
    net.start_all();
    let g = net.genesis.clone();
    wait_height(&net, &[0, 1, 2, 3], 2).await;

    net.kill(3);
    let killed_at = lowest_height(&net, &[0, 1, 2]).await;
    // The other three keep committing, including transactions submitted meanwhile.
    let owners = setup_meters(&net, &[0, 1, 2], 1, 2).await;
    let mut txs = Vec::new();
    for n in 0..30u64 {
        let tx = deposit(&g, &owners[0], 100 + n, 500 + n);
        submit(&net, n as usize % 3, &tx).await;
        txs.push(tx);
    }
    for tx in &txs {
        net.apis[1].wait_committed(&tx.id(), T).await;
    }
    wait_height(&net, &[0, 1, 2], killed_at + 8).await;

    // Restarted, it syncs to the others' height and holds the same blocks and roots.
    net.start(3);
    let target = lowest_height(&net, &[0, 1, 2]).await;
    wait_height(&net, &[3], target).await;
    net.assert_same_chain(&[0, 1, 2, 3], target).await;
    let (_, status) = net.apis[3].get("/v1/status").await;
    assert!(
        status["sync"].is_object() || status["sync"].is_null(),
        "{status}"
    );

    // And it takes part again: a transaction submitted to it commits everywhere.
    let tx = deposit(&g, &owners[1], 7, 9_999);
    submit(&net, 3, &tx).await;
    let at = net.apis[0].wait_committed(&tx.id(), T).await;
    wait_height(&net, &[0, 1, 2, 3], at).await;
    net.assert_same_chain(&[0, 1, 2, 3], at).await;
}

/// Runs a network whose validator 0 proposes per `mode`; returns it with the order setup.
async fn byzantine_net(chain: &str, mode: Mode) -> (Net, Vec<SigningKey>) {
    let mut net = Net::new(genesis_n(chain, 4, 6, 4), |i, c| {
        if i == 0 {
            c.byzantine = Some(mode);
        }
    });
    net.start_all();
    let owners = setup_meters(&net, &[1, 2, 3], 1, 2).await;
    (net, owners)
}

/// After height `from`, validator 0 proposes nothing that commits; the honest validators
/// refused its proposals for `reason` (a fragment of the error they log); all four hold the
/// same chain, which replays to its roots.
async fn assert_byzantine_refused(net: &Net, from: u64, reason: &str) -> u64 {
    let all = [0, 1, 2, 3];
    // Long enough for validator 0 to have had several turns as proposer.
    wait_height(net, &all, from + 12).await;
    let h = lowest_height(net, &all).await;
    let byz = validator_hex(0);
    for (k, p) in proposers(net, 1, from + 1, h).await.iter().enumerate() {
        assert_ne!(
            p,
            &byz,
            "block {} by the Byzantine proposer committed",
            from + 1 + k as u64
        );
    }
    for i in 1..4 {
        assert!(
            net.metric(i, "veilwatt_proposals_refused").await >= 1.0,
            "validator {i} never refused a proposal"
        );
        let log = net.log(i);
        assert!(
            log.lines()
                .any(|l| l.contains("voting against it") && l.contains(reason)),
            "validator {i} refused for another reason than {reason:?}:\n{}",
            net.log_tail(i)
        );
    }
    net.assert_same_chain(&all, h).await;
    let replayed = replay(&net.apis[1], &net.genesis, h).await;
    let (_, top) = net.apis[2].get(&format!("/v1/blocks/{h}")).await;
    assert_eq!(
        replayed.root().to_hex(),
        top["state_root"].as_str().unwrap()
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposer_including_an_invalid_proof_is_refused() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let (net, owners) = byzantine_net("net-byz-proof", Mode::InvalidProof).await;
    let g = net.genesis.clone();
    let (p, end) = current_period(&g);
    // Meter 1 proves a 1,000 Wh sale but offers 5,000 Wh with that proof (inflated surplus).
    let honest = order(&g, &owners[0], 1, p, Side::Sell, 100, 1_100, 1_000, 9);
    let TxBody::Order { proof, .. } = honest.body.clone() else {
        unreachable!()
    };
    let inflated = Transaction::sign(
        &g.chain_id,
        TxBody::Order {
            meter: meter_key(1),
            period: p,
            side: Side::Sell,
            quantity_wh: 5_000,
            limit_price: 9,
            proof,
        },
        g.tx_expiry(now()),
        &owners[0],
    );
    let buy = order(&g, &owners[1], 2, p, Side::Buy, 6_000, 0, 5_000, 25);
    sleep_until_unix(end).await;
    // Honest validators refuse it at admission; the Byzantine one takes it.
    for i in 1..4 {
        let (s, v) = net.apis[i].submit(&inflated).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("invalid_proof")), "{v}");
    }
    submit(&net, 0, &inflated).await;
    submit(&net, 1, &buy).await;
    let from = net.height(0).await;
    net.apis[2].wait_committed(&buy.id(), T).await;

    let h = assert_byzantine_refused(&net, from, "proof invalid for this order").await;
    for i in 0..4 {
        let (_, v) = net.apis[i].get(&format!("/v1/tx/{}", inflated.id())).await;
        assert_ne!(v["status"], "committed", "validator {i}: {v}");
    }
    for b in net.blocks(3, h).await {
        for tx in b["txs"].as_array().unwrap() {
            assert_ne!(tx["id"].as_str(), Some(inflated.id().to_hex().as_str()));
        }
    }
    // The buy order is on the ledger and the period clears with nothing to match it.
    let cleared = wait_cleared(&net, 1, p).await;
    assert_eq!(cleared["volume_wh"], 0, "{cleared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposer_with_trades_that_differ_from_the_clearing_is_refused() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let (net, owners) = byzantine_net("net-byz-trades", Mode::WrongTrades).await;
    let g = net.genesis.clone();
    let (p, end) = current_period(&g);
    let sell = order(&g, &owners[0], 1, p, Side::Sell, 100, 1_100, 1_000, 9);
    let buy = order(&g, &owners[1], 2, p, Side::Buy, 2_000, 0, 1_000, 25);
    sleep_until_unix(end).await;
    submit(&net, 1, &sell).await;
    submit(&net, 2, &buy).await;
    let cleared = wait_cleared(&net, 1, p).await;
    assert_eq!(cleared["volume_wh"], 1_000, "{cleared}");
    let from = cleared["cleared_at"].as_u64().unwrap_or_else(|| {
        panic!("period view without cleared_at: {cleared}");
    });

    assert_byzantine_refused(&net, from, "state root mismatch").await;
    // Every validator, the Byzantine one included, holds the true clearing.
    for i in [0, 2, 3] {
        assert_eq!(wait_cleared(&net, i, p).await, cleared, "validator {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_nothing_commits_until_a_validator_returns() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut net = Net::new(genesis_n("net-quorum", 4, 6, 4), |_, _| {});
    net.start_all();
    let g = net.genesis.clone();
    wait_height(&net, &[0, 1, 2, 3], 2).await;

    net.kill(2);
    net.kill(3);
    // A decision already under way may still land; after that the height must not move.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stalled = [net.height(0).await, net.height(1).await];
    let tx = deposit(&g, &key(9), 5, 1);
    submit(&net, 0, &tx).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!([net.height(0).await, net.height(1).await], stalled);
    let (_, v) = net.apis[0].get(&format!("/v1/tx/{}", tx.id())).await;
    assert_eq!(v["status"], "pending", "{v}");

    // Three of four again: progress resumes and the pending transaction commits.
    net.start(2);
    let at = net.apis[1].wait_committed(&tx.id(), T).await;
    assert!(at > stalled[0].max(stalled[1]));
    wait_height(&net, &[0, 1, 2], at).await;
    net.assert_same_chain(&[0, 1, 2], at).await;
}

/// A validator that cannot listen for peers stops with a clear error instead of running deaf
/// (the engine itself only logs a failed listen: it would dial out but never be reached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_whose_p2p_port_is_taken_stops_with_a_clear_error() {
    let holder = std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let port = holder.local_addr().unwrap().port();
    let net = Net::new(genesis_n("net-port-taken", 4, 6, 1), |_, cfg| {
        cfg.consensus.p2p_listen = format!("/ip4/127.0.0.1/tcp/{port}");
    });
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_veilwatt-node"))
        .args(["run", "--home"])
        .arg(&net.homes[0])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > T {
            let _ = child.kill();
            panic!("the validator kept running without its p2p port");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "cannot listen for peers on /ip4/127.0.0.1/tcp/{port}"
        )),
        "{err}"
    );
    assert!(!net.homes[0].join("data").join("api.addr").exists());
    drop(holder);
}

// ---- Chaos: one Byzantine validator per attack, honest clients throughout ----
//
// Each run prints the honest transactions' commit latency; `the_control_run_without_an_attack`
// is the same load with four honest validators, and each attack's p99 must stay within 3x of
// its p99 (docs/benchmarks.md).

/// What the honest validators may hold while validator 0 attacks: unfinished proposal streams
/// (the node's cap), candidate blocks for undecided heights, resident memory and disk.
const MAX_STREAMS_HELD: f64 = 64.0;
const MAX_CANDIDATES: f64 = 16.0;
const MAX_RSS: u64 = 600 << 20;
const MAX_DISK: u64 = 400 << 20;

/// Honest deposits submitted while the attack runs.
const HONEST_TXS: u64 = 48;

/// The bound on the honest p99 commit latency under attack, as a multiple of the
/// control run's.
const P99_FACTOR: u64 = 3;

/// The control run's p99 commit latency, ms: measured once per test process (by
/// `the_control_run_without_an_attack`, or by the first attack that needs it).
static CONTROL_P99_MS: tokio::sync::OnceCell<u64> = tokio::sync::OnceCell::const_new();

/// The control run's p99 commit latency, ms. Call it holding `ONE_NETWORK_AT_A_TIME`.
async fn control_p99_ms() -> u64 {
    *CONTROL_P99_MS
        .get_or_init(|| async { under_attack("chaos-control", None, |_| {}).await.p99_ms() })
        .await
}

/// What an attack run observed.
struct Attack {
    net: Net,
    /// Height when the honest transactions started.
    from: u64,
    /// Lowest honest height at the end.
    to: u64,
    /// Commit latency of each honest transaction (submit to seen committed), ms, sorted.
    latencies_ms: Vec<u64>,
    /// The answers the side attack got (status, error code or ""), in order.
    side: Vec<(u16, String)>,
}

/// An attack from outside the validator set, run beside the honest clients.
#[derive(Clone, Copy, Debug)]
enum OutsideAttack {
    /// A forwarding batch of validator 0's, captured on the wire and posted again to every
    /// honest validator's peer listener every 100 ms.
    ForwardReplay,
    /// One wallet sends 400 one-milli withdrawals at once to validator 1 (pools of 200, a
    /// per-signer quota of 16).
    OneWalletSpam,
}

fn withdrawal(g: &Genesis, k: &SigningKey, nonce: u64) -> Transaction {
    Transaction::sign(
        &g.chain_id,
        TxBody::Withdraw { amount: 1, nonce },
        g.tx_expiry(now()),
        k,
    )
}

/// Starts `side` against `net`; its task returns the answers it got.
fn start_side(side: OutsideAttack, net: &Net) -> tokio::task::JoinHandle<Vec<(u16, String)>> {
    let g = net.genesis.clone();
    let (apis, peers) = (net.apis.clone(), net.peers.clone());
    let answer = |(s, v): (u16, Value)| (s, v["code"].as_str().unwrap_or_default().to_owned());
    tokio::spawn(async move {
        match side {
            OutsideAttack::ForwardReplay => {
                use veilwatt_node::forward::{now_us, seal, ForwardBatch, PATH};
                let v0 = SigningKey::from_bytes(&validator_seed(0));
                let txs = (0..8)
                    .map(|n| deposit(&g, &key(62), 1 + n, 70_000 + n))
                    .collect();
                let captured = seal(
                    &v0,
                    &ForwardBatch {
                        chain_id: g.chain_id.clone(),
                        sender: wallet(&v0),
                        sequence: now_us(),
                        txs,
                    },
                );
                let mut answers = Vec::new();
                for _ in 0..40 {
                    for p in &peers[1..] {
                        let r = p
                            .http
                            .post(format!("{}{PATH}", p.base))
                            .body(captured.clone())
                            .send()
                            .await
                            .unwrap();
                        let status = r.status().as_u16();
                        answers.push(answer((status, r.json().await.unwrap())));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                answers
            }
            OutsideAttack::OneWalletSpam => {
                let spammer = key(63);
                let fund = deposit(&g, &spammer, 10_000_000, 80_000);
                assert_eq!(apis[1].submit(&fund).await.0, 202);
                apis[1].wait_committed(&fund.id(), T).await;
                let spam: Vec<Transaction> =
                    (0..400).map(|n| withdrawal(&g, &spammer, n)).collect();
                futures::future::join_all(spam.iter().map(|tx| apis[1].submit(tx)))
                    .await
                    .into_iter()
                    .map(answer)
                    .collect()
            }
        }
    })
}

/// Runs four validators with validator 0 in `mode` (honest if `None`; `tweak` adjusts the genesis), submits
/// [`HONEST_TXS`] deposits to the three honest validators over several of validator 0's turns
/// as proposer, and checks what every attack must leave intact: every honest transaction is
/// committed, the honest validators keep committing the same chain (which replays to its
/// roots), and their streams, candidates, memory and disk stay bounded.
async fn under_attack(chain: &str, mode: Option<Mode>, tweak: impl FnOnce(&mut Genesis)) -> Attack {
    attack_run(chain, mode, None, tweak).await
}

/// [`under_attack`], with `side` run from outside the validators beside the honest clients.
async fn attack_run(
    chain: &str,
    mode: Option<Mode>,
    side: Option<OutsideAttack>,
    tweak: impl FnOnce(&mut Genesis),
) -> Attack {
    let mut g = genesis_n(chain, 6, 4, 4);
    tweak(&mut g);
    let mut net = Net::new(g, |i, c| {
        if i == 0 {
            c.byzantine = mode;
        }
        if matches!(side, Some(OutsideAttack::OneWalletSpam)) {
            c.mempool.capacity = 200;
            c.mempool.per_signer = 16;
        }
    });
    net.start_all();
    let honest = [1, 2, 3];
    wait_height(&net, &honest, 2).await;
    let from = lowest_height(&net, &honest).await;
    let g = net.genesis.clone();
    let side_task = side.map(|s| start_side(s, &net));

    // Clients: a deposit every 250 ms, round robin over the honest validators, each watched
    // until committed.
    let mut watchers = Vec::new();
    for n in 0..HONEST_TXS {
        let tx = deposit(&g, &key(61), 1 + n, 50_000 + n);
        let api = net.apis[1 + (n as usize % 3)].clone();
        let watch = net.apis[1 + ((n as usize + 1) % 3)].clone();
        watchers.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = api.submit(&tx).await;
            assert_eq!(r.0, 202, "honest transaction refused: {r:?}");
            watch.wait_committed(&tx.id(), T).await;
            t0.elapsed().as_millis() as u64
        }));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut latencies_ms = Vec::new();
    for w in watchers {
        latencies_ms.push(w.await.expect("an honest transaction was lost"));
    }
    latencies_ms.sort_unstable();
    let side = match side_task {
        Some(t) => t.await.expect("the side attack failed"),
        None => Vec::new(),
    };
    // Long enough for validator 0 to have had several turns as proposer.
    wait_height(&net, &honest, from + 12).await;
    let to = lowest_height(&net, &honest).await;
    net.assert_same_chain(&honest, to).await;
    let replayed = replay(&net.apis[1], &net.genesis, to).await;
    let (_, top) = net.apis[2].get(&format!("/v1/blocks/{to}")).await;
    assert_eq!(
        replayed.root().to_hex(),
        top["state_root"].as_str().unwrap()
    );
    for i in honest {
        let streams = net.metric(i, "veilwatt_proposal_streams_held").await;
        let candidates = net.metric(i, "veilwatt_consensus_candidates").await;
        let (rss, disk) = (net.rss_bytes(i), net.disk_bytes(i));
        eprintln!(
            "{chain}: validator {i}: {streams} streams, {candidates} candidates, RSS {} MB, disk {} MB",
            rss >> 20,
            disk >> 20
        );
        assert!(
            streams <= MAX_STREAMS_HELD,
            "validator {i}: {streams} streams held"
        );
        assert!(
            candidates <= MAX_CANDIDATES,
            "validator {i}: {candidates} candidates"
        );
        assert!(rss <= MAX_RSS, "validator {i}: RSS {rss}");
        assert!(disk <= MAX_DISK, "validator {i}: {disk} bytes on disk");
    }
    let a = Attack {
        net,
        from,
        to,
        latencies_ms,
        side,
    };
    eprintln!(
        "{chain}: {:?}: heights {from}..{to}, honest commit latency p50 {} ms, p99 {} ms",
        mode,
        a.percentile_ms(50),
        a.p99_ms()
    );
    a
}

impl Attack {
    /// The `q`th percentile of the honest commit latencies, ms.
    fn percentile_ms(&self, q: usize) -> u64 {
        let l = &self.latencies_ms;
        l[(l.len() * q / 100).min(l.len() - 1)]
    }

    fn p99_ms(&self) -> u64 {
        self.percentile_ms(99)
    }

    /// The honest p99 stayed within [`P99_FACTOR`] times the control run's.
    async fn assert_p99_within_bound(&self) {
        let control = control_p99_ms().await;
        let bound = P99_FACTOR * control;
        eprintln!(
            "p99 {} ms against the control's {control} ms (bound {bound} ms)",
            self.p99_ms()
        );
        assert!(
            self.p99_ms() <= bound,
            "honest p99 {} ms over {bound} ms ({P99_FACTOR} x the control's {control} ms)",
            self.p99_ms()
        );
    }

    /// Every honest validator logged `fragment` (what it refused the attack with).
    fn assert_logged(&self, fragment: &str) {
        for i in 1..4 {
            assert!(
                self.net.log(i).contains(fragment),
                "validator {i} never logged {fragment:?}:\n{}",
                self.net.log_tail(i)
            );
        }
    }

    /// No block proposed by validator 0 committed after the attack began.
    async fn assert_no_byzantine_block(&self) {
        let byz = validator_hex(0);
        for (k, p) in proposers(&self.net, 1, self.from + 1, self.to)
            .await
            .iter()
            .enumerate()
        {
            assert_ne!(
                p,
                &byz,
                "block {} by the attacker committed",
                self.from + 1 + k as u64
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_flood_for_its_rounds_and_far_heights_is_dropped_on_the_header() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let a = under_attack("chaos-flood", Some(Mode::ProposalFlood), |_| {}).await;
    // Its variants for one round are reassembled; a few are checked, the rest wait unchecked,
    // and the one its signed `Proposal` names is checked and goes to the engine whenever it
    // arrives. Those a million heights ahead stop at their header.
    a.assert_logged("the proposer equivocates");
    a.assert_logged("more than 2 beyond the next one");
    for i in 1..4 {
        assert!(a.net.metric(i, "veilwatt_proposal_streams_dropped").await >= 1.0);
    }
    assert_eq!(a.latencies_ms.len() as u64, HONEST_TXS);
    a.assert_p99_within_bound().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_over_the_transaction_limit_is_voted_against() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let a = under_attack("chaos-oversized", Some(Mode::OversizedBlock), |g| {
        g.consensus.max_block_txs = 64;
    })
    .await;
    // Reassembled within the byte limit (a stream over it is dropped: streams.rs) and refused
    // by the ledger's count rule, so the honest validators prevote nil at once.
    a.assert_logged("block carries 65 transactions, the genesis allows at most 64");
    a.assert_no_byzantine_block().await;
    a.assert_p99_within_bound().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_dated_and_forward_dated_blocks_are_refused() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    for (chain, mode) in [
        ("chaos-backdated", Mode::BackdatedTime),
        ("chaos-forward", Mode::ForwardDatedTime),
    ] {
        let a = under_attack(chain, Some(mode), |g| g.consensus.max_clock_skew_secs = 5).await;
        a.assert_logged("max_clock_skew_secs");
        a.assert_no_byzantine_block().await;
        a.assert_p99_within_bound().await;
        // Every committed block's time is within the skew of its parent's successor clock:
        // the chain's clock never went back, nor a minute ahead.
        let blocks = a.net.blocks(1, a.to).await;
        for w in blocks.windows(2) {
            let (t0, t1) = (
                w[0]["time"].as_u64().unwrap(),
                w[1]["time"].as_u64().unwrap(),
            );
            assert!(t1 >= t0 && t1 <= now() + 5, "block times {t0} -> {t1}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_streams_of_one_peer_do_not_evict_the_proposers() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let a = under_attack("chaos-streams", Some(Mode::OpenStreams), |_| {}).await;
    // It opened 65 streams a round; each honest validator held at most its share of them, and
    // the honest proposers' blocks kept committing (checked by `under_attack`).
    for i in 1..4 {
        let held = a.net.metric(i, "veilwatt_proposal_streams_held").await;
        // Its share plus at most one unfinished stream of each honest proposer.
        let share = veilwatt_node::consensus::streams::STREAMS_PER_PUBLISHER as f64;
        assert!(held <= share + 3.0, "validator {i} holds {held} streams");
    }
    let byz = validator_hex(0);
    let honest_blocks = proposers(&a.net, 1, a.from + 1, a.to)
        .await
        .iter()
        .filter(|p| **p != byz)
        .count();
    assert!(honest_blocks >= 9, "{honest_blocks} honest blocks");
    a.assert_p99_within_bound().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_run_without_an_attack() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let a = under_attack("chaos-control", None, |_| {}).await;
    // The yardstick of the attack runs, unless one of them measured it first.
    let _ = CONTROL_P99_MS.set(a.p99_ms());
    for i in 1..4 {
        assert_eq!(
            a.net.metric(i, "veilwatt_proposal_streams_dropped").await,
            0.0
        );
        assert_eq!(a.net.metric(i, "veilwatt_proposals_refused").await, 0.0);
    }
}

/// A forwarding batch captured on the wire and posted again is refused on its sequence number
/// (409, nothing re-admitted), also when re-signed batches of another validator are fine; a
/// batch sealed over a minute ago is refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_forwarding_batch_is_refused() {
    use veilwatt_node::forward::{now_us, seal, ForwardBatch, PATH};
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut net = Net::new(genesis_n("chaos-forward-replay", 6, 4, 4), |_, _| {});
    net.start_all();
    wait_height(&net, &[0, 1, 2, 3], 2).await;
    let g = net.genesis.clone();
    let v0 = SigningKey::from_bytes(&validator_seed(0));
    let txs: Vec<Transaction> = (0..8)
        .map(|n| deposit(&g, &key(62), 1 + n, 70_000 + n))
        .collect();
    let batch = |sequence| ForwardBatch {
        chain_id: g.chain_id.clone(),
        sender: wallet(&v0),
        sequence,
        txs: txs.clone(),
    };
    let post = |body: Vec<u8>| {
        let api = net.peers[1].clone();
        async move {
            let r = api
                .http
                .post(format!("{}{PATH}", api.base))
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let captured = seal(&v0, &batch(now_us()));
    let (s, v) = post(captured.clone()).await;
    assert_eq!((s, v["admitted"].as_u64()), (200, Some(8)), "{v}");
    // Forwarded batches have a listener of their own: the clients' one does not know the route.
    let public = &net.apis[1];
    let r = public
        .http
        .post(format!("{}{PATH}", public.base))
        .body(captured.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let received = net.metric(1, "veilwatt_forward_received").await;
    for _ in 0..3 {
        let (s, v) = post(captured.clone()).await;
        assert_eq!((s, v["code"].as_str()), (409, Some("replayed")), "{v}");
    }
    // An old capture, validly signed, is stale even to a receiver that never saw it.
    let stale = seal(&v0, &batch(now_us() - 61_000_000));
    let (s, v) = post(stale).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("replayed")), "{v}");
    assert_eq!(net.metric(1, "veilwatt_forward_received").await, received);
    for tx in &txs {
        net.apis[2].wait_committed(&tx.id(), T).await;
    }
}

/// Mempool spam through one wallet: it gets its quota of the pool (429 `signer_quota` beyond),
/// not the pool; other wallets' transactions submitted meanwhile are admitted and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_wallet_cannot_fill_the_mempool() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut net = Net::new(genesis_n("chaos-mempool-spam", 6, 4, 4), |_, c| {
        c.mempool.capacity = 200;
        c.mempool.per_signer = 16;
    });
    net.start_all();
    let g = net.genesis.clone();
    let spammer = key(63);
    let honest: Vec<SigningKey> = (70..80).map(key).collect();
    let mut funding = vec![deposit(&g, &spammer, 10_000_000, 80_000)];
    funding.extend(
        honest
            .iter()
            .enumerate()
            .map(|(k, h)| deposit(&g, h, 1_000, 80_001 + k as u64)),
    );
    for tx in &funding {
        submit(&net, 1, tx).await;
    }
    for tx in &funding {
        net.apis[1].wait_committed(&tx.id(), T).await;
    }
    // 400 withdrawals of one milli at once, against a pool of 200.
    let spam: Vec<Transaction> = (0..400).map(|n| withdrawal(&g, &spammer, n)).collect();
    let api = net.apis[1].clone();
    let spam_task = tokio::spawn(async move {
        let sent = futures::future::join_all(spam.iter().map(|tx| api.submit(tx))).await;
        sent.into_iter()
            .map(|(s, v)| (s, v["code"].clone()))
            .collect::<Vec<_>>()
    });
    let mut ours = Vec::new();
    for (k, h) in honest.iter().enumerate() {
        let tx = withdrawal(&g, h, 1);
        let (s, v) = net.apis[1 + k % 3].submit(&tx).await;
        assert_eq!(s, 202, "honest withdrawal refused during the spam: {v}");
        ours.push(tx);
    }
    let spam = spam_task.await.unwrap();
    let quota = spam
        .iter()
        .filter(|(s, c)| *s == 429 && c == "signer_quota")
        .count();
    let full = spam.iter().filter(|(_, c)| c == "mempool_full").count();
    eprintln!(
        "spam: {} admitted, {quota} refused for the signer quota, {full} for a full pool",
        spam.iter().filter(|(s, _)| *s == 202).count()
    );
    assert!(quota > 0, "no spam refused for its quota: {spam:?}");
    assert_eq!(full, 0, "the spam filled the pool");
    for tx in &ours {
        net.apis[2].wait_committed(&tx.id(), T).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_clients_under_a_forwarding_replay_keep_their_latency() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let a = attack_run(
        "chaos-replay-load",
        None,
        Some(OutsideAttack::ForwardReplay),
        |_| {},
    )
    .await;
    // Each honest validator took the capture at most once (if it had not seen a newer batch
    // of validator 0's yet); every other delivery was refused as a replay.
    let taken = a.side.iter().filter(|(s, _)| *s == 200).count();
    let replayed = a
        .side
        .iter()
        .filter(|(s, c)| *s == 409 && c == "replayed")
        .count();
    eprintln!("replay: {taken} deliveries taken, {replayed} refused as replays");
    assert!(taken <= 3, "{:?}", a.side);
    assert_eq!(taken + replayed, a.side.len(), "{:?}", a.side);
    a.assert_p99_within_bound().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_clients_beside_one_spamming_wallet_keep_their_latency() {
    let _turn = ONE_NETWORK_AT_A_TIME.lock().await;
    let a = attack_run(
        "chaos-spam-load",
        None,
        Some(OutsideAttack::OneWalletSpam),
        |_| {},
    )
    .await;
    let quota = a
        .side
        .iter()
        .filter(|(s, c)| *s == 429 && c == "signer_quota")
        .count();
    let admitted = a.side.iter().filter(|(s, _)| *s == 202).count();
    // Admitted up to its quota (more as its first ones commit), refused for it otherwise; the
    // pool never filled.
    eprintln!("spam: {admitted} admitted, {quota} refused for the signer quota");
    assert!(quota > 0, "{:?}", a.side);
    assert_eq!(admitted + quota, 400, "{:?}", a.side);
    a.assert_p99_within_bound().await;
}
