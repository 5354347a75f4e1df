//! The household's prover: from a meter-signed period statement and an order to a Groth16 proof
//! that the statement covers the order, without revealing the readings.

pub mod accounting;
pub mod client;
pub mod household;
pub mod interval;
pub mod notes;
pub mod simulate;
pub mod spend;
pub mod statement_file;
pub mod ui;
pub mod unlinkable;
pub mod wallet;

use ark_bn254::Bn254;
use ark_groth16::{Groth16, ProvingKey};
use ark_relations::gr1cs::SynthesisError;
use ark_snark::SNARK;
use rand_core::{CryptoRng, RngCore};
use veilwatt_circuits::order::{
    check_relation, OrderCircuit, OrderPrivate, OrderPublic, OrderWitness, RelationError, Side,
};
use veilwatt_circuits::statement::SignedPeriodStatement;
use veilwatt_params::qap::SnarkjsReduction;
use veilwatt_params::KeyId;
use veilwatt_verifier::{OrderProof, OrderVerifier, VerifyError};

pub use veilwatt_circuits::order::Side as OrderSide;

/// What the household wants to trade against a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRequest {
    /// Sell surplus or buy against demand.
    pub side: Side,
    /// Quantity, Wh.
    pub quantity_wh: u32,
}

/// Why no proof was produced.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The statement does not support the order (e.g. not enough surplus, or a statement whose
    /// signature does not verify): no valid proof exists.
    #[error("the statement does not support this order")]
    Relation(#[from] RelationError),
    /// The notes do not support the spend (not in the tree under the anchor, values not
    /// conserved, ...): no valid proof exists.
    #[error("the notes do not support this spend: {0}")]
    Spend(#[from] veilwatt_circuits::joinsplit::RelationError),
    /// A spend was asked of a transaction body that is not one (a bug in the caller).
    #[error("not a spend")]
    NotASpend,
    /// The proving system failed.
    #[error("proving failed")]
    Synthesis(#[from] SynthesisError),
    /// The proof did not verify under the proving key's own verifying key (a key/circuit
    /// mismatch): never hand out such a proof.
    #[error("self-check of the fresh proof failed: {0}")]
    SelfCheck(VerifyError),
}

/// A proving key with the verifier for its own verifying key, for self-checks.
pub struct Prover {
    pk: ProvingKey<Bn254>,
    self_check: OrderVerifier,
}

impl std::fmt::Debug for Prover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prover")
            .field("vk_id", &self.self_check.vk_id())
            .finish_non_exhaustive()
    }
}

/// A proof with the public inputs it proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvenOrder {
    /// The public statement: meter key, period, side, quantity.
    pub public: OrderPublic,
    /// The proof.
    pub proof: OrderProof,
}

impl Prover {
    /// Wraps a proving key whose verifying key has id `vk_id`.
    pub fn new(pk: ProvingKey<Bn254>, vk_id: KeyId) -> Result<Self, VerifyError> {
        let self_check = OrderVerifier::new(&pk.vk, vk_id)?;
        Ok(Self { pk, self_check })
    }

    /// The public inputs and witness for `order` against `statement`.
    pub fn witness(
        statement: &SignedPeriodStatement,
        order: &OrderRequest,
    ) -> (OrderPublic, OrderWitness) {
        let public = OrderPublic {
            meter: statement.statement.meter,
            period: statement.statement.period,
            side: order.side,
            quantity_wh: order.quantity_wh,
        };
        let witness = OrderWitness::new(&public, &OrderPrivate::from_statement(statement));
        (public, witness)
    }

    /// Proves that `statement` covers `order`.
    ///
    /// The relation is checked natively first, so an unsupported order gets a precise error
    /// instead of a proof that would not verify (Groth16's prover does not check the witness),
    /// and the fresh proof is verified before it is returned.
    pub fn prove<R: RngCore + CryptoRng>(
        &self,
        statement: &SignedPeriodStatement,
        order: &OrderRequest,
        rng: &mut R,
    ) -> Result<ProvenOrder, ProveError> {
        let (public, witness) = Self::witness(statement, order);
        check_relation(&witness)?;
        let proof =
            Groth16::<Bn254, SnarkjsReduction>::prove(&self.pk, OrderCircuit::new(witness), rng)?;
        let proof = OrderProof::from_proof(&proof);
        self.self_check
            .verify(&public, &proof)
            .map_err(ProveError::SelfCheck)?;
        Ok(ProvenOrder { public, proof })
    }
}
