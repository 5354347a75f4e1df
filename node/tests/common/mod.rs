//! Helpers shared by the node's integration tests: a one-validator home with a short-period
//! genesis, signed transactions with real proofs, and a small HTTP client.
#![allow(dead_code)]

pub mod browser;
pub mod openapi;
pub mod tools;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use veilwatt_circuits::eddsa::SecretKey;
use veilwatt_circuits::statement::{profile_digest, PeriodStatement};
use veilwatt_node::config::{Home, LocalPorts, NodeConfig};
use veilwatt_params::{dev, MarketCircuit};
use veilwatt_prover::{OrderRequest, Prover};
use veilwatt_verifier::ledger::Ledger;
use veilwatt_verifier::state::MemoryState;
use veilwatt_verifier::types::*;
use veilwatt_verifier::OrderVerifier;

pub const VALIDATOR_SEED: [u8; 32] = [201; 32];
pub const REGISTRAR_SEED: [u8; 32] = [200; 32];

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

pub fn wallet(k: &SigningKey) -> WalletKey {
    WalletKey(k.verifying_key().to_bytes())
}

pub fn registrar() -> SigningKey {
    SigningKey::from_bytes(&REGISTRAR_SEED)
}

/// A one-validator genesis whose periods are `period` seconds with a `gate` second gate.
pub fn genesis(chain: &str, period: u64, gate: u64) -> Genesis {
    let t = now();
    Genesis {
        chain_id: chain.into(),
        genesis_time: t - t % period - 100 * period,
        validators: vec![Validator {
            name: "v0".into(),
            key: wallet(&SigningKey::from_bytes(&VALIDATOR_SEED)),
            power: 1,
        }],
        registrar: wallet(&registrar()),
        period_secs: period,
        gate_delay_secs: gate,
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
        max_tx_lifetime_secs: veilwatt_verifier::types::DEFAULT_MAX_TX_LIFETIME_SECS,
        result_retention_periods: veilwatt_verifier::types::DEFAULT_RESULT_RETENTION_PERIODS,
        shielded: None,
        anonymous: None,
        consensus: Default::default(),
        spam: Default::default(),
    }
}

/// `g` with a shielded pool on the development join-split key.
pub fn with_pool(mut g: Genesis, root_history: u64, min_fee: u64) -> Genesis {
    g.shielded = Some(ShieldedParams {
        vk_id: Hash32(dev::pinned_ids_of(MarketCircuit::JoinSplit).vk_id.0),
        root_history,
        min_fee,
    });
    g
}

/// `g` with a meter registry for unlinkable orders on the development order-v2 key.
pub fn with_registry(mut g: Genesis, registry_history: u64) -> Genesis {
    g.anonymous = Some(AnonymousParams {
        vk_id: Hash32(dev::pinned_ids_of(MarketCircuit::OrderV2).vk_id.0),
        registry_history,
    });
    g
}

/// Writes a home in `dir` for `genesis`: API and p2p on OS-chosen ports.
pub fn make_home(dir: &Path, genesis: &Genesis, tweak: impl FnOnce(&mut NodeConfig)) -> PathBuf {
    let home = dir.join("home");
    let mut cfg = NodeConfig::new("v0", "127.0.0.1:0".parse().unwrap(), 0);
    cfg.consensus.p2p_listen = "/ip4/127.0.0.1/tcp/0".into();
    cfg.consensus.block_interval_ms = 300;
    tweak(&mut cfg);
    Home::create(&home, &cfg, genesis, VALIDATOR_SEED).unwrap();
    home
}

pub fn meter(i: u8) -> SecretKey {
    SecretKey::from_bytes([i; 32])
}

pub fn meter_key(i: u8) -> MeterKey {
    MeterKey::from_public_key(&meter(i).public_key())
}

pub fn enroll(g: &Genesis, i: u8, owner: &SigningKey) -> Transaction {
    Transaction::sign(
        &g.chain_id,
        TxBody::EnrollMeter {
            meter: meter_key(i),
            owner: wallet(owner),
        },
        g.tx_expiry(now()),
        &registrar(),
    )
}

pub fn deposit(g: &Genesis, to: &SigningKey, amount: u64, reference: u64) -> Transaction {
    Transaction::sign(
        &g.chain_id,
        TxBody::Deposit {
            to: wallet(to),
            amount,
            reference,
        },
        g.tx_expiry(now()),
        &registrar(),
    )
}

/// An order by `owner` backed by meter `i`'s statement for `period` with the given import and
/// export, proving `quantity`.
#[allow(clippy::too_many_arguments)]
pub fn order(
    g: &Genesis,
    owner: &SigningKey,
    i: u8,
    period: u64,
    side: Side,
    import_wh: u32,
    export_wh: u32,
    quantity: u32,
    price: u64,
) -> Transaction {
    let keys = dev::keys().unwrap();
    let prover = Prover::new(keys.pk.clone(), keys.vk_id).unwrap();
    let st = PeriodStatement {
        meter: meter(i).public_key(),
        period,
        import_wh,
        export_wh,
        profile_digest: profile_digest(&[]),
    }
    .sign(&meter(i));
    let p = prover
        .prove(
            &st,
            &OrderRequest {
                side: side.into(),
                quantity_wh: quantity,
            },
            &mut ChaCha20Rng::seed_from_u64(u64::from(i) << 32 | period),
        )
        .unwrap();
    Transaction::sign(
        &g.chain_id,
        TxBody::Order {
            meter: meter_key(i),
            period,
            side,
            quantity_wh: quantity,
            limit_price: price,
            proof: p.proof,
        },
        g.tx_expiry(now()),
        owner,
    )
}

/// Blocking-free HTTP helpers on one base URL.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// GET `path`: the status and the JSON (or the text), checked against the OpenAPI
    /// document and the shared API types ([`openapi::check_answer`]).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, v) = self.get_unchecked(path).await;
        openapi::check_answer("get", path, status, &v);
        (status, v)
    }

    /// [`Api::get`] without the document check: for the bulk reads of the durability tests
    /// (thousands of statuses and blocks per run; every other test checks their shapes).
    pub async fn get_unchecked(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post_raw(&self, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/tx", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v = r.json().await.unwrap();
        openapi::check_answer("post", "/v1/tx", status, &v);
        (status, v)
    }

    pub async fn submit(&self, tx: &Transaction) -> (u16, Value) {
        self.post_raw(serde_json::to_vec(tx).unwrap()).await
    }

    /// Waits until `id` is committed; returns its height.
    pub async fn wait_committed(&self, id: &TxId, timeout: Duration) -> u64 {
        let t0 = Instant::now();
        loop {
            let (s, v) = self.get(&format!("/v1/tx/{id}")).await;
            if s == 200 && v["status"] == "committed" {
                return v["height"].as_u64().unwrap();
            }
            assert!(v["status"] != "rejected", "transaction {id} rejected: {v}");
            assert!(
                t0.elapsed() < timeout,
                "transaction {id} not committed: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `period` has cleared; returns its view (`/v1/periods/{period}`).
    pub async fn wait_cleared(&self, period: u64, timeout: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let (_, v) = self.get(&format!("/v1/periods/{period}")).await;
            if v["status"] == "cleared" {
                return v;
            }
            assert!(t0.elapsed() < timeout, "period {period} did not clear: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the ledger height reaches `h`.
    pub async fn wait_height(&self, h: u64, timeout: Duration) {
        let t0 = Instant::now();
        loop {
            let (_, v) = self.get("/v1/status").await;
            if v["height"].as_u64().unwrap_or(0) >= h {
                return;
            }
            assert!(t0.elapsed() < timeout, "height {h} not reached: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Sleeps until the wall clock reaches `t` (Unix seconds).
/// One period with one trade: enrols meters 1 (`seller`) and 2 (`buyer`), funds the buyer,
/// proves a sell of 1.5 kWh (of a 2 kWh surplus, limit 10) and a buy of 1 kWh (limit 20) for
/// the current period and submits them once it has ended. Returns the period and the two
/// orders; the period clears (1 kWh at 15) when its gate closes.
pub async fn one_trade(
    api: &Api,
    g: &Genesis,
    seller: &SigningKey,
    buyer: &SigningKey,
) -> (u64, [Transaction; 2]) {
    let setup = [
        enroll(g, 1, seller),
        enroll(g, 2, buyer),
        deposit(g, buyer, 10_000_000, 7),
    ];
    for tx in &setup {
        assert_eq!(api.submit(tx).await.0, 202);
    }
    for tx in &setup {
        api.wait_committed(&tx.id(), Duration::from_secs(60)).await;
    }
    let p = (now() - g.genesis_time) / g.period_secs;
    let sell = order(g, seller, 1, p, Side::Sell, 200, 2_200, 1_500, 10);
    let buy = order(g, buyer, 2, p, Side::Buy, 3_000, 0, 1_000, 20);
    sleep_until_unix(g.period_end(p).unwrap()).await;
    for tx in [&sell, &buy] {
        let r = api.submit(tx).await;
        assert_eq!(r.0, 202, "{r:?}");
    }
    (p, [sell, buy])
}

pub async fn sleep_until_unix(t: u64) {
    loop {
        let n = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        if n.as_secs() >= t {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Replays blocks 1..=`to` from the API through the state machine with real proof
/// verification; checks every state root; returns the final state.
pub async fn replay(api: &Api, g: &Genesis, to: u64) -> MemoryState {
    let verifier = market_verifier(g);
    let ledger = Ledger::new(g).unwrap();
    let mut state = MemoryState::default();
    state.commit(ledger.genesis_update(&state).unwrap());
    let mut from = 1;
    while from <= to {
        // Unchecked: the replay itself decodes every block, and a lost field fails it.
        let (s, r) = api
            .get_unchecked(&format!("/v1/blocks?from={from}&to={to}"))
            .await;
        assert_eq!(s, 200);
        for b in r["blocks"].as_array().unwrap() {
            let block: Block = serde_json::from_value(b.clone()).unwrap();
            let applied = ledger.apply_block(&state, &block, &verifier).unwrap();
            state.commit(applied.update);
            from = block.height + 1;
        }
    }
    state
}

/// The development keys' verifiers for `g` (the join-split's when it has a shielded pool, the
/// unlinkable order circuit's when it has a registry).
pub fn market_verifier(g: &Genesis) -> veilwatt_verifier::ledger::MarketVerifier {
    let keys = dev::keys().unwrap();
    let joinsplit = g.shielded.as_ref().map(|_| {
        let k = dev::keys_of(MarketCircuit::JoinSplit).unwrap();
        veilwatt_verifier::JoinSplitVerifier::new(&k.vk, k.vk_id).unwrap()
    });
    let unlinkable = g.anonymous.as_ref().map(|_| {
        let k = dev::keys_of(MarketCircuit::OrderV2).unwrap();
        veilwatt_verifier::UnlinkableOrderVerifier::new(&k.vk, k.vk_id).unwrap()
    });
    veilwatt_verifier::ledger::MarketVerifier {
        order: OrderVerifier::new(&keys.vk, keys.vk_id).unwrap(),
        joinsplit,
        unlinkable,
    }
}

/// Re-hashes the blocks of `e` from `pos` on, re-links them and re-signs their certificates
/// with the (single) validator's key: what a tamperer holding every validator key could do.
pub fn reseal(g: &Genesis, e: &mut veilwatt_verifier::audit::Export, pos: usize) {
    use ed25519_dalek::Signer;
    let key = SigningKey::from_bytes(&validator_seed(0));
    let me = WalletKey(key.verifying_key().to_bytes());
    for i in pos..e.blocks.len() {
        if i > 0 {
            e.blocks[i].block.prev_hash = e.blocks[i - 1].hash;
        }
        let b = &mut e.blocks[i];
        b.hash = b.block.hash();
        let mut cert = veilwatt_verifier::audit::Certificate {
            height: b.block.height,
            round: 0,
            block_hash: b.hash,
            signatures: vec![],
        };
        let sig = key.sign(&cert.signing_bytes(&g.chain_id, &me));
        cert.signatures = vec![(me, Signature64(sig.to_bytes()))];
        b.certificate = hex::encode(cert.encode());
    }
}

/// Seed of validator `i` in a multi-validator test network.
pub fn validator_seed(i: usize) -> [u8; 32] {
    [201u8.wrapping_add(i as u8); 32]
}

/// `genesis` with `n` equal-power validators.
pub fn genesis_n(chain: &str, period: u64, gate: u64, n: usize) -> Genesis {
    let mut g = genesis(chain, period, gate);
    g.validators = (0..n)
        .map(|i| Validator {
            name: format!("v{i}"),
            key: wallet(&SigningKey::from_bytes(&validator_seed(i))),
            power: 1,
        })
        .collect();
    g
}

/// A binary of another workspace crate (`veilwatt-prover`, `veilwatt-meter`,
/// `veilwatt-verifier`, `veilwatt-params`, `veilwatt-demo`, `veilwatt-load`), next to this crate's: `cargo test --release
/// --workspace` builds them because their crates have integration tests that run them.
pub fn sibling_bin(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_veilwatt-node")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is not built: run the workspace tests (`cargo test --release --workspace`) or \
         `cargo build --release --workspace --bins` first",
        p.display()
    );
    p
}

/// A free TCP port on 127.0.0.1 below the ephemeral range (see `free_local_port`: a restarted
/// validator must get its port back).
pub fn free_port() -> u16 {
    veilwatt_node::config::free_local_port().unwrap()
}

/// A local network of validator processes (`veilwatt-node run`), each in its own home, with
/// consensus peers and transaction forwarding wired between all of them.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub genesis: Genesis,
    pub homes: Vec<PathBuf>,
    pub apis: Vec<Api>,
    /// Each validator's listener for forwarded transactions.
    pub peers: Vec<Api>,
    children: Vec<Option<std::process::Child>>,
}

impl Net {
    /// Writes `n` homes; `tweak(i, cfg)` adjusts validator `i`'s config. Nothing is started.
    pub fn new(g: Genesis, tweak: impl Fn(usize, &mut NodeConfig)) -> Self {
        let n = g.validators.len();
        let dir = tempfile::tempdir().unwrap();
        let ports = LocalPorts::pick(n, || Ok::<_, Infallible>(free_port())).unwrap();
        let mut homes = Vec::new();
        for i in 0..n {
            let mut cfg = NodeConfig::local_network(&format!("v{i}"), i, &ports);
            cfg.consensus.block_interval_ms = 300;
            cfg.consensus.propose_timeout_ms = 1500;
            // Scaled to the block interval as the defaults are (1 s blocks, 1 s vote timeouts).
            cfg.consensus.vote_timeout_ms = 300;
            tweak(i, &mut cfg);
            let home = dir.path().join(format!("node{i}"));
            Home::create(&home, &cfg, &g, validator_seed(i)).unwrap();
            homes.push(home);
        }
        let local = |ports: &[u16]| {
            ports
                .iter()
                .map(|p| Api::new(format!("http://127.0.0.1:{p}")))
                .collect()
        };
        let (apis, peers) = (local(&ports.api), local(&ports.peer));
        Self {
            dir,
            genesis: g,
            homes,
            apis,
            peers,
            children: (0..n).map(|_| None).collect(),
        }
    }

    /// Starts validator `i` and waits for its API.
    pub fn start(&mut self, i: usize) {
        assert!(self.children[i].is_none(), "validator {i} is running");
        let addr_file = self.homes[i].join("data").join("api.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::File::create(self.dir.path().join(format!("node{i}.log"))).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_veilwatt-node"))
            .args(["run", "--home"])
            .arg(&self.homes[i])
            .env("RUST_LOG", "warn,veilwatt_node=info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
        let t0 = Instant::now();
        while !addr_file.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "validator {i} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts every validator.
    pub fn start_all(&mut self) {
        for i in 0..self.homes.len() {
            self.start(i);
        }
    }

    /// Kills validator `i` with SIGKILL and waits for it to exit.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last lines of validator `i`'s log (for failure messages).
    pub fn log_tail(&self, i: usize) -> String {
        let s = std::fs::read_to_string(self.dir.path().join(format!("node{i}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Validator `i`'s whole log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{i}.log"))).unwrap_or_default()
    }

    /// Height of validator `i`.
    pub async fn height(&self, i: usize) -> u64 {
        let (_, v) = self.apis[i].get("/v1/status").await;
        v["height"].as_u64().unwrap_or(0)
    }

    /// Blocks `1..=to` of validator `i` as JSON values.
    pub async fn blocks(&self, i: usize, to: u64) -> Vec<Value> {
        let mut out = Vec::new();
        let mut from = 1;
        while from <= to {
            let hi = (from + 99).min(to);
            let (s, r) = self.apis[i]
                .get(&format!("/v1/blocks?from={from}&to={hi}"))
                .await;
            assert_eq!(s, 200, "{r}");
            let got = r["blocks"].as_array().unwrap().clone();
            assert_eq!(
                got.len() as u64,
                hi - from + 1,
                "validator {i} lacks blocks"
            );
            out.extend(got);
            from = hi + 1;
        }
        out
    }

    /// Resident memory of validator `i`'s process, bytes (Linux).
    pub fn rss_bytes(&self, i: usize) -> u64 {
        let pid = self.children[i]
            .as_ref()
            .expect("validator is running")
            .id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    /// Bytes on disk under validator `i`'s home (its RocksDB, WAL and logs).
    pub fn disk_bytes(&self, i: usize) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p).map_or(0, |rd| {
                rd.flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
        }
        walk(&self.homes[i])
    }

    /// The value of the metric `name` (summed over labels) on validator `i`.
    pub async fn metric(&self, i: usize, name: &str) -> f64 {
        let r = self.apis[i]
            .http
            .get(format!("{}/metrics", self.apis[i].base))
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        text.lines()
            .filter(|l| {
                // Counters are exported with a `_total` suffix.
                let rest = l.strip_prefix(name).unwrap_or("#");
                let rest = rest.strip_prefix("_total").unwrap_or(rest);
                rest.starts_with(['{', ' '])
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Asserts validators `among` hold identical blocks (hence state roots) up to `to`.
    pub async fn assert_same_chain(&self, among: &[usize], to: u64) {
        let reference = self.blocks(among[0], to).await;
        for &i in &among[1..] {
            let other = self.blocks(i, to).await;
            for (a, b) in reference.iter().zip(&other) {
                // Everything but the certificate, whose set of precommits each validator
                // gathers itself (any > 2/3 is valid).
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    v.as_object_mut().unwrap().remove("certificate");
                    v
                };
                assert_eq!(
                    strip(a),
                    strip(b),
                    "validators {} and {i} differ at height {}",
                    among[0],
                    a["height"]
                );
                assert_eq!(
                    a["certificate"]["block_hash"],
                    b["certificate"]["block_hash"]
                );
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// A finished `veilwatt-demo --json` run and the ledger it left.
pub struct DemoRun {
    /// The demo's JSON report.
    pub report: Value,
    /// What it printed on stderr (progress, warnings).
    pub stderr: String,
    /// The validator's home.
    pub home: PathBuf,
    /// The validator's export of every block.
    pub export: veilwatt_verifier::audit::Export,
    /// The market's genesis.
    pub genesis: Genesis,
}

/// Runs the demo (the `veilwatt-demo` binary of the community crate) in `dir/demo` with
/// `households` x `periods` periods of `period_secs`, then exports its ledger to
/// `dir/export.jsonl` with `veilwatt-node export`.
pub fn run_demo(dir: &Path, households: u64, periods: u64, period_secs: u64) -> DemoRun {
    let node = env!("CARGO_BIN_EXE_veilwatt-node");
    let work = dir.join("demo");
    let n = |x: u64| x.to_string();
    let out = std::process::Command::new(sibling_bin("veilwatt-demo"))
        .args(["--households", &n(households), "--periods", &n(periods)])
        .args(["--period-secs", &n(period_secs), "--json", "--dir"])
        .arg(&work)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "demo failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let home = work.join("node0");
    let file = dir.join("export.jsonl");
    let st = std::process::Command::new(node)
        .args(["export", "--home"])
        .arg(&home)
        .arg("--out")
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success());
    let export = veilwatt_verifier::audit::Export::read_from(std::io::BufReader::new(
        std::fs::File::open(&file).unwrap(),
    ))
    .unwrap();
    let genesis =
        serde_json::from_slice(&std::fs::read(home.join("genesis.json")).unwrap()).unwrap();
    DemoRun {
        report,
        stderr,
        home,
        export,
        genesis,
    }
}
