//! Transaction forwarding between validators.
//!
//! The Malachite engine gossips consensus messages only, so a transaction a client submits to
//! one validator reaches the others here: after admission, the receiving validator batches what
//! its clients sent and POSTs each batch to every other validator's `/v1/peer/txs`. A batch is
//! signed with the sender's consensus key under its own domain and carries the chain id; a
//! receiver accepts it only from a genesis validator other than itself, then runs every
//! transaction through its own full admission (signature, proof, rules) and never forwards it
//! again. Each batch carries a sequence number, the sender's clock in microseconds when it
//! sealed it (strictly increasing per sender, also across its restarts); a receiver refuses a
//! batch whose sequence is not above the last one it took from that sender, or whose time is
//! more than [`MAX_BATCH_AGE`] from its own clock, so a captured batch replayed (by anyone on
//! the path) costs one signature check, not a batch of proof verifications.
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

/// How far a batch's sequence time may be from the receiver's clock, either way.
pub const MAX_BATCH_AGE: Duration = Duration::from_secs(60);

/// Path of the receiving route.
pub const PATH: &str = "/v1/peer/txs";

/// What a forwarded body carries after its 64-byte signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ForwardBatch {
    /// Chain the transactions are for.
    pub chain_id: String,
    /// The forwarding validator's consensus key.
    pub sender: WalletKey,
    /// The sender's clock when it sealed the batch, Unix microseconds; strictly increasing
    /// over the batches of one sender.
    pub sequence: u64,
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
    /// Not newer than the last batch taken from this sender: a replay.
    #[error("batch {sequence} from {sender} is not newer than its last ({last}): a replay")]
    Replayed {
        /// The sender.
        sender: WalletKey,
        /// This batch's sequence.
        sequence: u64,
        /// The last one taken.
        last: u64,
    },
    /// Sealed too long ago, or in the future, by the receiver's clock.
    #[error("batch sealed at {sequence} us is more than {MAX_BATCH_AGE:?} from this validator's clock ({now} us)")]
    Stale {
        /// This batch's sequence (Unix microseconds).
        sequence: u64,
        /// The receiver's clock, Unix microseconds.
        now: u64,
    },
}

/// The receiving side's memory of the last batch taken from each sender.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    last: std::collections::BTreeMap<WalletKey, u64>,
}

impl ReplayGuard {
    /// Takes `batch` (opened, so its sender is a validator) if it is fresh and newer than the
    /// last one from its sender at receiver time `now_us` (Unix microseconds).
    pub fn admit(&mut self, batch: &ForwardBatch, now_us: u64) -> Result<(), ForwardError> {
        let window = MAX_BATCH_AGE.as_micros() as u64;
        if batch.sequence.abs_diff(now_us) > window {
            return Err(ForwardError::Stale {
                sequence: batch.sequence,
                now: now_us,
            });
        }
        let last = self.last.entry(batch.sender).or_default();
        if batch.sequence <= *last {
            return Err(ForwardError::Replayed {
                sender: batch.sender,
                sequence: batch.sequence,
                last: *last,
            });
        }
        *last = batch.sequence;
        Ok(())
    }
}

/// Unix time, microseconds (forwarding telemetry, never consensus input).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
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
    let mut sequence = 0u64;
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
        // The clock, but never the same number twice (two batches in one microsecond, or a
        // clock stepped back).
        sequence = now_us().max(sequence + 1);
        let batch = ForwardBatch {
            chain_id: chain_id.clone(),
            sender,
            sequence,
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
                // 409: the peer already took this batch (an earlier attempt arrived but its
                // answer did not).
                Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::CONFLICT => {
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
            sequence: 1_000_000_000,
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

    #[test]
    fn a_replayed_or_stale_batch_is_refused() {
        let (_, v1) = validator(1);
        let (_, v2) = validator(2);
        let now = 5_000_000_000;
        let mut guard = ReplayGuard::default();
        let mut b = batch(v1.key);
        b.sequence = now;
        assert_eq!(guard.admit(&b, now), Ok(()));
        // The same batch again, or an older one: a replay.
        assert!(matches!(
            guard.admit(&b, now + 10),
            Err(ForwardError::Replayed { .. })
        ));
        b.sequence = now - 1;
        assert!(matches!(
            guard.admit(&b, now + 10),
            Err(ForwardError::Replayed { .. })
        ));
        // A newer one is taken; another sender's sequence is its own.
        b.sequence = now + 1;
        assert_eq!(guard.admit(&b, now + 10), Ok(()));
        let mut other = batch(v2.key);
        other.sequence = now - 5;
        assert_eq!(guard.admit(&other, now + 10), Ok(()));
        // Sealed more than a minute before (a capture replayed after the receiver restarted
        // and forgot) or after the receiver's clock.
        let window = MAX_BATCH_AGE.as_micros() as u64;
        let mut fresh = ReplayGuard::default();
        b.sequence = now;
        assert!(matches!(
            fresh.admit(&b, now + window + 1),
            Err(ForwardError::Stale { .. })
        ));
        assert!(matches!(
            fresh.admit(&b, now - window - 1),
            Err(ForwardError::Stale { .. })
        ));
        assert_eq!(fresh.admit(&b, now + window), Ok(()));
    }
}
