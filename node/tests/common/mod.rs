//! Helpers shared by the node's integration tests: a one-validator home with a short-period
//! genesis, signed transactions with real proofs, and a small HTTP client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use veilwatt_circuits::eddsa::SecretKey;
use veilwatt_circuits::statement::{profile_digest, PeriodStatement};
use veilwatt_node::config::{Home, NodeConfig};
use veilwatt_params::dev;
use veilwatt_prover::{OrderRequest, Prover};
use veilwatt_verifier::ledger::{Ledger, LedgerState};
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
    }
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

    pub async fn get(&self, path: &str) -> (u16, Value) {
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
        (status, r.json().await.unwrap())
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
pub async fn replay(api: &Api, g: &Genesis, to: u64) -> LedgerState {
    let keys = veilwatt_params::dev::keys().unwrap();
    let verifier = OrderVerifier::new(&keys.vk, keys.vk_id).unwrap();
    let ledger = Ledger::new(g).unwrap();
    let mut state = LedgerState::default();
    let mut from = 1;
    while from <= to {
        let (s, r) = api.get(&format!("/v1/blocks?from={from}&to={to}")).await;
        assert_eq!(s, 200);
        for b in r["blocks"].as_array().unwrap() {
            let block: Block = serde_json::from_value(b.clone()).unwrap();
            let (next, _) = ledger.apply_block(&state, &block, &verifier).unwrap();
            state = next;
            from = block.height + 1;
        }
    }
    state
}
