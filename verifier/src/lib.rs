//! The rules every validator and regulator checks. For now: Groth16 verification of order
//! proofs, one at a time or in batches.

pub mod address;
pub mod api;
pub mod audit;
pub mod audit_html;
pub mod certificate;
pub mod clearing;
pub mod client;
mod curve;
pub mod ledger;
pub mod linkage;
pub mod pool;
pub mod proof;
pub mod registry;
pub mod snapshot;
pub mod state;
pub mod types;
pub mod units;

pub use proof::{
    BatchFailure, Groth16Proof, JoinSplitVerifier, OrderProof, OrderVerifier, ProofError,
    PublicStatement, SpendProof, UnlinkableOrderVerifier, Verifier, VerifyError, PROOF_BYTES,
};
