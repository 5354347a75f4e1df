//! Shielded spends on the household's side: from the notes it spends and makes to a signed
//! `Spend` transaction whose join-split proof is bound to every one of its terms
//! (docs/spec/notes.md).

use ark_bn254::{Bn254, Fr};
use ark_groth16::{Groth16, ProvingKey};
use ark_snark::SNARK;
use ed25519_dalek::SigningKey;
use rand_core::{CryptoRng, RngCore};
use veilwatt_circuits::joinsplit::{check_relation, JoinSplitCircuit, JoinSplitWitness, Spend};
use veilwatt_circuits::note::Note;
use veilwatt_params::qap::SnarkjsReduction;
use veilwatt_params::KeyId;
use veilwatt_verifier::types::{
    FieldBytes, Millis, NoteOutput, Payout, Transaction, TxBody, WalletKey,
};
use veilwatt_verifier::{Groth16Proof, JoinSplitVerifier, VerifyError, PROOF_BYTES};

use crate::ProveError;

/// What a spend does, before its proof.
#[derive(Clone, Debug)]
pub struct SpendRequest {
    /// The recent note-tree root the inputs' paths lead to.
    pub anchor: Fr,
    /// The notes spent (either may be [`Spend::dummy`]).
    pub inputs: [Spend; 2],
    /// The notes made, each with the memo its recipient will read.
    pub outputs: [(Note, Vec<u8>); 2],
    /// Into the pool from the signer's wallet balance, millis.
    pub public_in: Millis,
    /// Out of the pool: the fee plus what `payout` receives, millis.
    pub public_out: Millis,
    /// The fee, millis.
    pub fee: Millis,
    /// Where the rest of `public_out` goes.
    pub payout: Payout,
}

/// A join-split proving key with the verifier of its own verifying key, for self-checks.
pub struct SpendProver {
    pk: ProvingKey<Bn254>,
    self_check: JoinSplitVerifier,
}

impl std::fmt::Debug for SpendProver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpendProver")
            .field("vk_id", &self.self_check.vk_id())
            .finish_non_exhaustive()
    }
}

impl SpendProver {
    /// Wraps a join-split proving key whose verifying key has id `vk_id`.
    pub fn new(pk: ProvingKey<Bn254>, vk_id: KeyId) -> Result<Self, VerifyError> {
        let self_check = JoinSplitVerifier::new(&pk.vk, vk_id)?;
        Ok(Self { pk, self_check })
    }

    /// Proves `request` for chain `chain_id` and signs it with `signer` (a one-time key: the
    /// binding hash covers it, so nobody can re-sign the proof under another key), valid until
    /// block time `expires_at`.
    ///
    /// The relation is checked natively first (an unsupported spend gets a precise error
    /// instead of a proof that would not verify), and the fresh proof is verified before the
    /// transaction is returned.
    pub fn prove<R: RngCore + CryptoRng>(
        &self,
        chain_id: &str,
        expires_at: u64,
        signer: &SigningKey,
        request: SpendRequest,
        rng: &mut R,
    ) -> Result<Transaction, ProveError> {
        let notes = [request.outputs[0].0, request.outputs[1].0];
        let [(_, memo_0), (_, memo_1)] = request.outputs;
        let mut body = TxBody::Spend {
            anchor: FieldBytes::from_field(request.anchor),
            nullifiers: [
                FieldBytes::from_field(request.inputs[0].nullifier()),
                FieldBytes::from_field(request.inputs[1].nullifier()),
            ],
            outputs: [
                NoteOutput {
                    cm: FieldBytes::from_field(notes[0].commitment()),
                    memo: memo_0,
                },
                NoteOutput {
                    cm: FieldBytes::from_field(notes[1].commitment()),
                    memo: memo_1,
                },
            ],
            public_in: request.public_in,
            public_out: request.public_out,
            fee: request.fee,
            payout: request.payout,
            proof: Groth16Proof([0; PROOF_BYTES]),
        };
        let signer_key = WalletKey(signer.verifying_key().to_bytes());
        let binding = Transaction::spend_binding(chain_id, &body, expires_at, &signer_key)
            .ok_or(ProveError::NotASpend)?;
        let proof = self.prove_join_split(
            request.anchor,
            &request.inputs,
            &notes,
            (request.public_in, request.public_out),
            binding,
            rng,
        )?;
        if let TxBody::Spend { proof: p, .. } = &mut body {
            *p = proof;
        }
        Ok(Transaction::sign(chain_id, body, expires_at, signer))
    }

    /// Proves the join-split spending `inputs` into `notes` with `(public_in, public_out)`
    /// under `binding` (whatever terms the caller's transaction binds): checked natively
    /// first, verified under the key's own verifying key after.
    pub fn prove_join_split<R: RngCore + CryptoRng>(
        &self,
        anchor: Fr,
        inputs: &[Spend; 2],
        notes: &[Note; 2],
        (public_in, public_out): (Millis, Millis),
        binding: Fr,
        rng: &mut R,
    ) -> Result<Groth16Proof, ProveError> {
        let (public, witness) =
            JoinSplitWitness::new(anchor, inputs, notes, public_in, public_out, binding);
        check_relation(&witness)?;
        let proof = Groth16::<Bn254, SnarkjsReduction>::prove(
            &self.pk,
            JoinSplitCircuit::new(witness),
            rng,
        )?;
        let proof = Groth16Proof::from_proof(&proof);
        self.self_check
            .verify(&public, &proof)
            .map_err(ProveError::SelfCheck)?;
        Ok(proof)
    }
}
