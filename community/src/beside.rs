//! Attacks from outside the validators that `veilwatt-load --beside` runs while it measures, so
//! that the honest load's figures can be read with and without them (issue 17's benchmark,
//! docs/benchmarks.md):
//!
//! * [`Beside::ForwardReplay`]: a forwarding batch of one validator's, sealed once (what an
//!   eavesdropper on the validators' peer links captures), posted again to every other
//!   validator's peer listener every 100 ms. Each must refuse the copies before verifying
//!   anything in them.
//! * [`Beside::WalletSpam`]: one funded wallet sends 400 one-milli withdrawals at once, every
//!   second, to the first node. Each pays the genesis transaction fee, and the node's
//!   per-signer mempool quota refuses what is over it.
//!
//! Both count the answers they get, by status and error code, for the report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rand::RngCore;
use veilwatt_node::forward::{now_us, seal, ForwardBatch, PATH};
use veilwatt_prover::client::{ClientError, NodeClient};
use veilwatt_verifier::types::{Genesis, Transaction, TxBody, WalletKey};

/// An attack run beside the measured load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Beside {
    /// Replays one validator's forwarding batch to the other validators' peer listeners.
    ForwardReplay,
    /// Sends withdrawals from one wallet as fast as a node takes them.
    WalletSpam,
}

/// Withdrawals [`Beside::WalletSpam`] sends at once.
pub const SPAM_BURST: u64 = 400;
/// Between two bursts of [`Beside::WalletSpam`].
pub const SPAM_EVERY: Duration = Duration::from_secs(1);
/// Between two rounds of [`Beside::ForwardReplay`].
pub const REPLAY_EVERY: Duration = Duration::from_millis(100);

/// Answers received, keyed `"<status> <code>"` (`"202"` when taken, `"0 unreachable"` when
/// the request failed).
pub type Answers = BTreeMap<String, usize>;

/// A deposit from the registrar to a fresh wallet, with a random reference (unique on any
/// chain the load generator has funded before).
fn fresh_deposit(g: &Genesis, registrar: &SigningKey, to: &SigningKey, amount: u64) -> Transaction {
    Transaction::sign(
        &g.chain_id,
        TxBody::Deposit {
            to: WalletKey(to.verifying_key().to_bytes()),
            amount,
            reference: rand::rngs::OsRng.next_u64(),
        },
        g.tx_expiry(now_secs()),
        registrar,
    )
}

fn now_secs() -> u64 {
    now_us() / 1_000_000
}

/// The body of a forwarding batch sealed by `validator`: eight valid deposits, as it forwards
/// its clients' transactions to its peers.
pub fn captured_batch(g: &Genesis, validator: &SigningKey, registrar: &SigningKey) -> Vec<u8> {
    let to = SigningKey::from_bytes(&rand_bytes());
    seal(
        validator,
        &ForwardBatch {
            chain_id: g.chain_id.clone(),
            sender: WalletKey(validator.verifying_key().to_bytes()),
            sequence: now_us(),
            txs: (0..8)
                .map(|_| fresh_deposit(g, registrar, &to, 1_000))
                .collect(),
        },
    )
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Posts `body` to every peer listener in `peers` (base URLs) every [`REPLAY_EVERY`] until
/// `stop` is set.
pub async fn replay(
    http: reqwest::Client,
    body: Vec<u8>,
    peers: Vec<String>,
    stop: Arc<AtomicBool>,
) -> Answers {
    let mut answers = Answers::new();
    while !stop.load(Ordering::Relaxed) {
        for p in &peers {
            let key = match http
                .post(format!("{}{PATH}", p.trim_end_matches('/')))
                .body(body.clone())
                .send()
                .await
            {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let code = r
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v["code"].as_str().map(str::to_owned));
                    match code {
                        Some(code) if status != 202 => format!("{status} {code}"),
                        _ => status.to_string(),
                    }
                }
                Err(_) => "0 unreachable".to_owned(),
            };
            *answers.entry(key).or_default() += 1;
        }
        tokio::time::sleep(REPLAY_EVERY).await;
    }
    answers
}

/// The spamming wallet and the deposit that funds it (to be committed before [`spam`]).
pub fn spammer(g: &Genesis, registrar: &SigningKey) -> (SigningKey, Transaction) {
    let key = SigningKey::from_bytes(&rand_bytes());
    let fund = fresh_deposit(g, registrar, &key, 100_000_000);
    (key, fund)
}

/// Sends bursts of [`SPAM_BURST`] one-milli withdrawals from `key` to `node` every
/// [`SPAM_EVERY`] until `stop` is set. `node` should not wait out `429`s (`retries(0)`).
pub async fn spam(g: Genesis, node: NodeClient, key: SigningKey, stop: Arc<AtomicBool>) -> Answers {
    let mut answers = Answers::new();
    let mut nonce = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let next = tokio::time::Instant::now() + SPAM_EVERY;
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..SPAM_BURST {
            nonce += 1;
            let tx = Transaction::sign(
                &g.chain_id,
                TxBody::Withdraw { amount: 1, nonce },
                g.tx_expiry(now_secs()),
                &key,
            );
            let node = node.clone();
            burst.spawn(async move {
                match node.submit(&tx).await {
                    Ok(_) => "202".to_owned(),
                    Err(ClientError::Refused { status, code, .. }) => format!("{status} {code}"),
                    Err(_) => "0 unreachable".to_owned(),
                }
            });
        }
        while let Some(answer) = burst.join_next().await {
            if let Ok(key) = answer {
                *answers.entry(key).or_default() += 1;
            }
        }
        tokio::time::sleep_until(next).await;
    }
    answers
}
