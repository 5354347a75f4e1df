//! Test-only misbehaviour, compiled only with the `byzantine` cargo feature (the integration
//! tests enable it; release builds of the node cannot contain it). A validator configured with
//! a [`Mode`] proposes blocks an honest validator must refuse; everything else it does honestly,
//! including validating and voting on the blocks of others.

use serde::{Deserialize, Serialize};
use veilwatt_circuits::order::OrderPublic;
use veilwatt_verifier::ledger::{LedgerRead, PeriodResult, ProofCheck};
use veilwatt_verifier::state::{keys, ChangeSet, StateRead};
use veilwatt_verifier::types::{decode, encode};
use veilwatt_verifier::{BatchFailure, OrderProof};

use crate::admission::AdmitError;

/// How a Byzantine proposer misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Admits orders whose proof does not verify and proposes them.
    InvalidProof,
    /// Proposes blocks whose state commits to trades that differ from the true clearing.
    WrongTrades,
    /// For each of its rounds, streams many distinct signed proposals (besides its honest one),
    /// and proposals for a height a million blocks ahead.
    ProposalFlood,
    /// Proposes blocks with more transactions than the genesis allows.
    OversizedBlock,
    /// Proposes blocks dated a minute before its clock.
    BackdatedTime,
    /// Proposes blocks dated a minute after its clock.
    ForwardDatedTime,
    /// Every round, opens many proposal streams it never finishes (only data parts, no header
    /// and no end), to evict the honest proposer's stream.
    OpenStreams,
}

/// How far [`Mode::BackdatedTime`] and [`Mode::ForwardDatedTime`] move a block's time, seconds.
pub const TIME_SHIFT_SECS: u64 = 60;
/// Extra proposals [`Mode::ProposalFlood`] streams per round.
pub const FLOOD_PER_ROUND: u64 = 24;
/// Unfinished streams [`Mode::OpenStreams`] opens per round (one more than the total the
/// engine's streams once held).
pub const OPEN_STREAMS_PER_ROUND: u64 = 65;

/// `n` signed registrar-less deposits (valid encodings, invalid transactions) to pad a block.
pub fn padding(chain_id: &str, n: usize) -> Vec<veilwatt_verifier::types::Transaction> {
    use veilwatt_verifier::types::{Transaction, TxBody, WalletKey};
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    (0..n as u64)
        .map(|reference| {
            Transaction::sign(
                chain_id,
                TxBody::Deposit {
                    to: WalletKey([7u8; 32]),
                    amount: 1,
                    reference,
                },
                u64::MAX,
                &key,
            )
        })
        .collect()
}

/// Accepts every proof.
pub struct AcceptAll;

impl ProofCheck for AcceptAll {
    fn check(&self, _: &[(OrderPublic, OrderProof)]) -> Result<(), BatchFailure> {
        Ok(())
    }
}

/// Forgets the proof failures found at admission.
pub fn ignore_invalid_proofs(pre: &mut [Option<AdmitError>]) {
    for p in pre {
        if matches!(p, Some(AdmitError::InvalidProof(_))) {
            *p = None;
        }
    }
}

/// Alters the most recent cleared period (in the block's changes, else in the committed
/// state): one more Wh and one more minor unit on its first trade (or its volume, if nothing
/// traded), written into the block's changes. Returns whether any period was cleared yet.
pub fn tamper_clearing(changes: &mut ChangeSet, committed: &dyn StateRead) -> bool {
    let prefix = keys::all_results();
    let end = keys::prefix_end(&prefix);
    let in_block = changes
        .range(prefix..end)
        .next_back()
        .and_then(|(_, v)| v.as_deref().and_then(|b| decode::<PeriodResult>(b).ok()));
    // Test-only code: reading every result is fine for the handful a test network clears.
    let latest = in_block.or_else(|| {
        committed
            .period_results(0, u64::MAX)
            .ok()
            .and_then(|mut r| r.pop())
    });
    let Some(mut result) = latest else {
        return false;
    };
    match result.trades.first_mut() {
        Some(t) => {
            t.quantity_wh = t.quantity_wh.saturating_add(1);
            t.price = t.price.saturating_add(1);
        }
        None => result.volume_wh = result.volume_wh.saturating_add(1),
    }
    tracing::warn!(
        period = result.period,
        "byzantine: proposing a tampered clearing"
    );
    changes.insert(keys::result(result.period), Some(encode(&result)));
    true
}
