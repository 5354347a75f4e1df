//! Test-only misbehaviour, compiled only with the `byzantine` cargo feature (the integration
//! tests enable it; release builds of the node cannot contain it). A validator configured with
//! a [`Mode`] proposes blocks an honest validator must refuse; everything else it does honestly,
//! including validating and voting on the blocks of others.

use serde::{Deserialize, Serialize};
use veilwatt_circuits::order::OrderPublic;
use veilwatt_verifier::ledger::{LedgerState, ProofCheck};
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

/// Alters the most recent cleared period's trades: one more Wh and one more minor unit on
/// its first trade (or its volume, if nothing traded). Returns whether anything was cleared.
pub fn tamper_clearing(state: &mut LedgerState) -> bool {
    let Some(result) = state.results.values_mut().next_back() else {
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
    true
}
