//! Transaction forwarding between validators.
//!
//! The Malachite engine gossips consensus messages only, so a transaction a client submits to
//! one validator reaches the others here: after admission, the receiving validator batches what
//! its clients sent and POSTs each batch to every other validator's `/v1/peer/txs`. A batch is
//! signed with the sender's consensus key under its own domain and carries the chain id; a
//! receiver accepts it only from a genesis validator other than itself, then runs every
//! transaction through its own full admission (signature, proof, rules) and never forwards it
//! again. Replaying a batch is harmless: transactions are idempotent by id.
//!
//! Forwarding is best effort and never blocks admission: a peer that is down or slow loses
//! batches (counted in the metrics), and the transactions still reach the ledger when this
//! validator proposes.

use std::sync::Arc;
use std::time::Duration;

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use tokio::sync::mpsc;
use veilwatt_verifier::types::{decode, encode, Transaction, Validator, WalletKey};

use crate::metrics::NodeMetrics;

/// Signing domain of a forwarded batch.
pub const DOMAIN: &[u8] = b"veilwatt/forward/v1";
/// Largest forwarded body accepted, bytes.
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// Most transactions per forwarded batch.
const BATCH_TXS: usize = 512;
/// How long the first transaction of a batch waits for company.
const LINGER: Duration = Duration::from_millis(20);
/// Batches queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 64;
/// Attempts per batch and peer.
const ATTEMPTS: u32 = 3;
/// Time limit of one POST.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the receiving route.
pub const PATH: &str = "/v1/peer/txs";

/// What a forwarded body carries after its 64-byte signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ForwardBatch {
    /// Chain the transactions are for.
    pub chain_id: String,
    /// The forwarding validator's consensus key.
    pub sender: WalletKey,
    /// Transactions, in the order the sender admitted them.
    pub txs: Vec<Transaction>,
}

/// Why a forwarded body is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForwardError {
    /// Too short, or not a batch.
    #[error("malformed forwarded batch: {0}")]
    Malformed(String),
    /// For another chain.
    #[error("batch is for chain {0:?}")]
    WrongChain(String),
    /// The sender is not a genesis validator (or is this node).
    #[error("sender {0} is not another validator")]
    UnknownSender(WalletKey),
    /// The signature does not verify for the sender.
    #[error("bad batch signature")]
    BadSignature,
}

fn signing_bytes(batch: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + batch.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(batch);
    m
}

/// The body of a forwarded batch: the signature, then the encoded batch.
pub fn seal(key: &SigningKey, batch: &ForwardBatch) -> Vec<u8> {
    let encoded = encode(batch);
    let sig = key.sign(&signing_bytes(&encoded));
    let mut body = sig.to_bytes().to_vec();
    body.extend_from_slice(&encoded);
    body
}

/// Checks a forwarded body: from a validator of `validators` other than `me`, signed by it, for
/// `chain_id`.
pub fn open(
    body: &[u8],
    chain_id: &str,
    validators: &[Validator],
    me: &WalletKey,
) -> Result<ForwardBatch, ForwardError> {
    if body.len() < 64 {
        return Err(ForwardError::Malformed("shorter than a signature".into()));
    }
    let (sig, encoded) = body.split_at(64);
    let batch: ForwardBatch =
        decode(encoded).map_err(|e| ForwardError::Malformed(e.to_string()))?;
    if batch.chain_id != chain_id {
        return Err(ForwardError::WrongChain(batch.chain_id));
    }
    if batch.sender == *me || !validators.iter().any(|v| v.key == batch.sender) {
        return Err(ForwardError::UnknownSender(batch.sender));
    }
    let key = VerifyingKey::from_bytes(&batch.sender.0).map_err(|_| ForwardError::BadSignature)?;
    let sig = Signature::from_slice(sig).map_err(|_| ForwardError::BadSignature)?;
    key.verify_strict(&signing_bytes(encoded), &sig)
        .map_err(|_| ForwardError::BadSignature)?;
    Ok(batch)
}

/// The sending side: queue admitted client transactions with [`Forwarder::push`].
#[derive(Clone)]
pub struct Forwarder {
    queue: mpsc::Sender<Transaction>,
    metrics: NodeMetrics,
}

impl Forwarder {
    /// Starts forwarding to `peers` (API base URLs) as `key` on `chain_id`.
    pub fn start(
        key: SigningKey,
        chain_id: String,
        peers: Vec<String>,
        metrics: NodeMetrics,
    ) -> Self {
        let (queue, rx) = mpsc::channel(16 * 1024);
        let http = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .unwrap_or_default();
        let outlets: Vec<mpsc::Sender<Bytes>> = peers
            .into_iter()
            .map(|peer| {
                let (tx, rx) = mpsc::channel(PEER_QUEUE);
                tokio::spawn(send_to_peer(
                    http.clone(),
                    peer.trim_end_matches('/').to_owned(),
                    rx,
                    metrics.clone(),
                ));
                tx
            })
            .collect();
        tokio::spawn(batcher(key, chain_id, rx, outlets, metrics.clone()));
        Self { queue, metrics }
    }

    /// Queues an admitted transaction; dropped (and counted) if the queue is full.
    pub fn push(&self, tx: Transaction) {
        if self.queue.try_send(tx).is_err() {
            self.metrics.forward_dropped.inc();
        }
    }
}

async fn batcher(
    key: SigningKey,
    chain_id: String,
    mut rx: mpsc::Receiver<Transaction>,
    outlets: Vec<mpsc::Sender<Bytes>>,
    metrics: NodeMetrics,
) {
    let sender = WalletKey(key.verifying_key().to_bytes());
    let key = Arc::new(key);
    while let Some(first) = rx.recv().await {
        let mut txs = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while txs.len() < BATCH_TXS {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(tx)) => txs.push(tx),
                Ok(None) | Err(_) => break,
            }
        }
        let n = txs.len() as u64;
        let batch = ForwardBatch {
            chain_id: chain_id.clone(),
            sender,
            txs,
        };
        let k = Arc::clone(&key);
        let body = match tokio::task::spawn_blocking(move || seal(&k, &batch)).await {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "sealing a forwarded batch panicked");
                continue;
            }
        };
        for out in &outlets {
            if out.try_send(body.clone()).is_err() {
                metrics.forward_dropped.inc_by(n);
            }
        }
    }
}

async fn send_to_peer(
    http: reqwest::Client,
    peer: String,
    mut rx: mpsc::Receiver<Bytes>,
    metrics: NodeMetrics,
) {
    let url = format!("{peer}{PATH}");
    let mut failing = false;
    while let Some(body) = rx.recv().await {
        let mut delivered = false;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let sent = http
                .post(&url)
                .header("content-type", "application/octet-stream")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(r) if r.status().is_client_error() => {
                    // The peer refuses the batch itself (wrong chain, unknown sender): retrying
                    // cannot help.
                    tracing::warn!(%peer, status = %r.status(), "peer refused a forwarded batch");
                    break;
                }
                Ok(_) | Err(_) => {}
            }
        }
        if delivered {
            metrics.forwarded_batches.inc();
            if failing {
                tracing::info!(%peer, "forwarding to peer resumed");
                failing = false;
            }
        } else {
            metrics.forward_failed.inc();
            if !failing {
                tracing::warn!(%peer, "cannot forward transactions to peer; dropping batches until it is back");
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veilwatt_verifier::types::TxBody;

    fn validator(seed: u8) -> (SigningKey, Validator) {
        let k = SigningKey::from_bytes(&[seed; 32]);
        let v = Validator {
            name: format!("v{seed}"),
            key: WalletKey(k.verifying_key().to_bytes()),
            power: 1,
        };
        (k, v)
    }

    fn batch(sender: WalletKey) -> ForwardBatch {
        let payer = SigningKey::from_bytes(&[9; 32]);
        ForwardBatch {
            chain_id: "c".into(),
            sender,
            txs: vec![Transaction::sign(
                "c",
                TxBody::Deposit {
                    to: WalletKey([1; 32]),
                    amount: 5,
                    reference: 1,
                },
                100,
                &payer,
            )],
        }
    }

    #[test]
    fn a_sealed_batch_opens_only_for_its_chain_from_another_validator() {
        let (k1, v1) = validator(1);
        let (_, v2) = validator(2);
        let (k3, v3) = validator(3);
        let set = vec![v1.clone(), v2.clone()];
        let b = batch(v1.key);
        let body = seal(&k1, &b);
        assert_eq!(open(&body, "c", &set, &v2.key), Ok(b.clone()));
        // To itself, to another chain, from outside the set.
        assert_eq!(
            open(&body, "c", &set, &v1.key),
            Err(ForwardError::UnknownSender(v1.key))
        );
        assert_eq!(
            open(&body, "d", &set, &v2.key),
            Err(ForwardError::WrongChain("c".into()))
        );
        let outsider = seal(&k3, &batch(v3.key));
        assert_eq!(
            open(&outsider, "c", &set, &v2.key),
            Err(ForwardError::UnknownSender(v3.key))
        );
        // Claiming to be v1 but signed by k3; any flipped byte; truncated.
        let forged = seal(&k3, &b);
        assert_eq!(
            open(&forged, "c", &set, &v2.key),
            Err(ForwardError::BadSignature)
        );
        for i in [0, 63, 64 + 4, body.len() - 1] {
            let mut t = body.clone();
            t[i] ^= 1;
            assert!(open(&t, "c", &set, &v2.key).is_err(), "byte {i}");
        }
        assert!(matches!(
            open(&body[..40], "c", &set, &v2.key),
            Err(ForwardError::Malformed(_))
        ));
        assert!(matches!(
            open(&body[..body.len() - 1], "c", &set, &v2.key),
            Err(ForwardError::Malformed(_))
        ));
    }
}
