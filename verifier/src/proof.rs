//! Groth16 proofs of the market's circuits (orders, join-splits): the canonical wire form and
//! verification, one at a time or in batches, by a [`Verifier`] per circuit.
//!
//! A proof travels as its arkworks canonical compressed encoding (128 bytes: A in G1, B in G2,
//! C in G1), hex in JSON. Decoding checks that every point is on its curve and in the
//! prime-order subgroup; anything else is a typed [`ProofError`].
//!
//! Batch verification checks n proofs with one multi-Miller loop and one final exponentiation:
//! with 128-bit scalars `r_i`,
//!
//! `prod_i e(r_i A_i, B_i) * e(-sum_i r_i IC_i, gamma) * e(-sum_i r_i C_i, delta)
//!      == e(alpha, beta)^(sum_i r_i)`
//!
//! where `IC_i = gamma_abc[0] + sum_j x_ij gamma_abc[j]`. The `r_i` come from a merlin
//! transcript over the verifying-key id, every proof and every public input, rekeyed with the
//! caller's RNG (so an adversary who controls the proofs cannot predict them, and a broken RNG
//! still leaves Fiat-Shamir-strength scalars). A batch containing an invalid proof fails except
//! with probability about 2^-128; on failure the batch is bisected to name exactly the invalid
//! proofs.

use crate::curve;
use ark_bn254::{Bn254, Fr, G1Affine, G1Projective, G2Affine};
use ark_ec::{
    pairing::{Pairing, PairingOutput},
    CurveGroup, VariableBaseMSM,
};
use ark_ff::{BigInteger, PrimeField, Zero};
use ark_groth16::{prepare_verifying_key, Groth16, PreparedVerifyingKey, Proof, VerifyingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use merlin::Transcript;
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use std::fmt;
use std::marker::PhantomData;
use veilwatt_circuits::joinsplit::{self, JoinSplitPublic};
use veilwatt_circuits::order::{self, OrderPublic};
use veilwatt_circuits::order_v2;
use veilwatt_params::KeyId;

/// Bytes of a compressed BN254 Groth16 proof.
pub const PROOF_BYTES: usize = 128;

/// A proof in its canonical wire form. Holding one says nothing about validity: decode or verify
/// it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct Groth16Proof(pub [u8; PROOF_BYTES]);

/// An order's proof.
pub type OrderProof = Groth16Proof;
/// A join-split's proof.
pub type SpendProof = Groth16Proof;

/// A circuit's public statement, as its verifier sees it.
pub trait PublicStatement: Sync {
    /// Number of public inputs (Groth16's constant one excluded).
    const COUNT: usize;
    /// Domain separator of this circuit's batch transcript.
    const BATCH_LABEL: &'static [u8];
    /// The public inputs, in the circuit's order.
    fn inputs(&self) -> Vec<Fr>;
}

impl PublicStatement for OrderPublic {
    const COUNT: usize = order::public_input::COUNT;
    const BATCH_LABEL: &'static [u8] = b"veilwatt.order-proof-batch.v1";
    fn inputs(&self) -> Vec<Fr> {
        self.to_field_elements().to_vec()
    }
}

impl PublicStatement for order_v2::OrderPublic {
    const COUNT: usize = order_v2::public_input::COUNT;
    const BATCH_LABEL: &'static [u8] = b"veilwatt.order-v2-proof-batch.v1";
    fn inputs(&self) -> Vec<Fr> {
        self.to_field_elements().to_vec()
    }
}

impl PublicStatement for JoinSplitPublic {
    const COUNT: usize = joinsplit::public_input::COUNT;
    const BATCH_LABEL: &'static [u8] = b"veilwatt.joinsplit-proof-batch.v1";
    fn inputs(&self) -> Vec<Fr> {
        self.to_field_elements().to_vec()
    }
}

/// Why bytes are not a well-formed proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not hex.
    #[error("proof is not hex: {0}")]
    Hex(String),
    /// Wrong number of bytes.
    #[error("proof must be {PROOF_BYTES} bytes, got {0}")]
    Length(usize),
    /// A point does not decode, is off its curve or outside the prime-order subgroup.
    #[error("proof encoding is invalid: {0}")]
    Encoding(String),
}

/// Why a proof is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The proof is malformed.
    #[error(transparent)]
    Malformed(#[from] ProofError),
    /// The public inputs are not valid field elements for this circuit (cannot happen for an
    /// `OrderPublic`, kept for key mismatches).
    #[error("verifying key expects {expected} public inputs, got {got}")]
    InputCount {
        /// Inputs the key has.
        expected: usize,
        /// Inputs supplied.
        got: usize,
    },
    /// The proof is well formed but does not verify for these public inputs under this key.
    #[error("proof does not verify for these public inputs")]
    Rejected,
    /// This verifier has no key for the proof's circuit.
    #[error("no verifying key for the {0} circuit")]
    NoKey(&'static str),
}

impl Groth16Proof {
    /// The canonical encoding of an arkworks proof.
    pub fn from_proof(p: &Proof<Bn254>) -> Self {
        let mut out = [0u8; PROOF_BYTES];
        // A compressed BN254 proof is exactly PROOF_BYTES; writing into a fixed slice of that
        // size cannot fail.
        p.serialize_compressed(&mut out[..])
            .expect("compressed proof is 128 bytes");
        Self(out)
    }

    /// Decodes with full validation: every point on its curve and in the prime-order subgroup
    /// (B's subgroup check uses the fast endomorphism test of [`crate::curve`]).
    pub fn decode(&self) -> Result<Proof<Bn254>, ProofError> {
        let p = Proof::<Bn254>::deserialize_with_mode(&self.0[..], Compress::Yes, Validate::No)
            .map_err(|e| ProofError::Encoding(e.to_string()))?;
        if !curve::is_valid_g1(&p.a) || !curve::is_valid_g1(&p.c) {
            return Err(ProofError::Encoding("G1 point not on the curve".into()));
        }
        if !curve::is_valid_g2(&p.b) {
            return Err(ProofError::Encoding(
                "G2 point not on the curve or not in the prime-order subgroup".into(),
            ));
        }
        Ok(p)
    }

    /// Parses bytes of any length (from the network).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ProofError> {
        let arr: [u8; PROOF_BYTES] = bytes
            .try_into()
            .map_err(|_| ProofError::Length(bytes.len()))?;
        Ok(Self(arr))
    }

    /// Parses lowercase or uppercase hex.
    pub fn from_hex(s: &str) -> Result<Self, ProofError> {
        if s.len() != 2 * PROOF_BYTES {
            return Err(ProofError::Length(s.len() / 2));
        }
        Self::from_slice(&hex::decode(s).map_err(|e| ProofError::Hex(e.to_string()))?)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Groth16Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Groth16Proof({})", self.to_hex())
    }
}

impl serde::Serialize for Groth16Proof {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Groth16Proof {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Which proofs of a batch failed and why (indices into the batch, ascending).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} of the batch's proofs are invalid (first: #{})", .invalid.len(), .invalid.first().map_or(0, |(i, _)| *i))]
pub struct BatchFailure {
    /// `(index, reason)` for every invalid proof.
    pub invalid: Vec<(usize, VerifyError)>,
}

/// A circuit's verifying key prepared for repeated use, with its id.
pub struct Verifier<S> {
    pvk: PreparedVerifyingKey<Bn254>,
    vk_id: KeyId,
    statement: PhantomData<fn(&S)>,
}

/// The order circuit's verifier.
pub type OrderVerifier = Verifier<OrderPublic>;
/// The join-split circuit's verifier.
pub type JoinSplitVerifier = Verifier<JoinSplitPublic>;
/// The unlinkable order circuit's verifier.
pub type UnlinkableOrderVerifier = Verifier<order_v2::OrderPublic>;

impl<S> Clone for Verifier<S> {
    fn clone(&self) -> Self {
        Self {
            pvk: self.pvk.clone(),
            vk_id: self.vk_id,
            statement: PhantomData,
        }
    }
}

impl<S> fmt::Debug for Verifier<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("vk_id", &self.vk_id)
            .finish_non_exhaustive()
    }
}

impl<S: PublicStatement> Verifier<S> {
    /// Prepares `vk`, whose content id is `vk_id` (see [`veilwatt_params::vk_id`]).
    pub fn new(vk: &VerifyingKey<Bn254>, vk_id: KeyId) -> Result<Self, VerifyError> {
        if vk.gamma_abc_g1.len() != S::COUNT + 1 {
            return Err(VerifyError::InputCount {
                expected: vk.gamma_abc_g1.len().saturating_sub(1),
                got: S::COUNT,
            });
        }
        Ok(Self {
            pvk: prepare_verifying_key(vk),
            vk_id,
            statement: PhantomData,
        })
    }

    /// The verifying key's id.
    pub fn vk_id(&self) -> KeyId {
        self.vk_id
    }

    /// Verifies one proof.
    pub fn verify(&self, public: &S, proof: &Groth16Proof) -> Result<(), VerifyError> {
        let p = proof.decode()?;
        self.verify_decoded(&public.inputs(), &p)
    }

    fn verify_decoded(&self, inputs: &[Fr], p: &Proof<Bn254>) -> Result<(), VerifyError> {
        // `verify_proof` would treat missing inputs as zero; the length is fixed by the type, and
        // checked in `new` against the key.
        match Groth16::<Bn254>::verify_proof(&self.pvk, p, inputs) {
            Ok(true) => Ok(()),
            _ => Err(VerifyError::Rejected),
        }
    }

    /// Verifies a batch of proofs under this key. `Ok` means every proof is valid; otherwise the
    /// failure lists exactly the invalid ones, so that a node can drop only those.
    pub fn verify_batch<R: RngCore + CryptoRng>(
        &self,
        items: &[(S, Groth16Proof)],
        rng: &mut R,
    ) -> Result<(), BatchFailure> {
        let scalars = self.batch_scalars(items, rng);
        // Decoding (point decompression, subgroup checks) and G2 preparation dominate the
        // per-proof cost besides the Miller loop; both are independent per proof.
        let decoded: Vec<Result<(Prepared, G2Prepared), (usize, VerifyError)>> = items
            .par_iter()
            .zip(scalars.par_iter())
            .enumerate()
            .map(|(index, ((public, proof), r))| {
                let p = proof
                    .decode()
                    .map_err(|e| (index, VerifyError::Malformed(e)))?;
                let prepared = Prepared {
                    index,
                    a_r: curve::mul_glv_128(&p.a, r.a, r.b).into_affine(),
                    b: p.b,
                    c: p.c,
                    inputs: public.inputs(),
                    r: curve::glv_scalar(r.a, r.b),
                };
                Ok((prepared, p.b.into()))
            })
            .collect();
        let mut invalid = Vec::new();
        let mut prepared = Vec::with_capacity(decoded.len());
        let mut g2 = Vec::with_capacity(decoded.len());
        for d in decoded {
            match d {
                Ok((p, b)) => {
                    prepared.push(p);
                    g2.push(b);
                }
                Err(bad) => invalid.push(bad),
            }
        }
        self.bisect(&prepared, Some(g2), &mut invalid);
        invalid.sort_by_key(|(i, _)| *i);
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(BatchFailure { invalid })
        }
    }

    /// [`Verifier::verify_batch`] with scalars from the transcript alone (Fiat-Shamir over
    /// the key id, every proof and every public input): deterministic, for consensus code.
    pub fn verify_batch_deterministic(
        &self,
        items: &[(S, Groth16Proof)],
    ) -> Result<(), BatchFailure> {
        self.verify_batch(items, &mut TranscriptOnly)
    }

    /// One 128-bit scalar `a + lambda b` per item, from the transcript over key id, proofs and
    /// public inputs.
    fn batch_scalars<R: RngCore + CryptoRng>(
        &self,
        items: &[(S, Groth16Proof)],
        rng: &mut R,
    ) -> Vec<BatchScalar> {
        let mut t = Transcript::new(S::BATCH_LABEL);
        t.append_message(b"vk-id", &self.vk_id.0);
        t.append_u64(b"n", items.len() as u64);
        for (public, proof) in items {
            t.append_message(b"proof", &proof.0);
            for x in public.inputs() {
                t.append_message(b"input", &x.into_bigint().to_bytes_le());
            }
        }
        let mut trng = t.build_rng().finalize(rng);
        (0..items.len())
            .map(|_| {
                let a = trng.next_u64();
                let b = trng.next_u64();
                // A zero scalar would drop a proof from the check; 2^-128, but free to exclude.
                BatchScalar {
                    a: if a == 0 && b == 0 { 1 } else { a },
                    b,
                }
            })
            .collect()
    }

    /// Checks `batch` as a whole; if it fails, splits it until every invalid proof is isolated.
    ///
    /// `g2` holds the prepared B points of `batch` when the caller has them (the first, whole
    /// batch); sub-batches prepare theirs again, which only happens when something is invalid.
    fn bisect(
        &self,
        batch: &[Prepared],
        g2: Option<Vec<G2Prepared>>,
        invalid: &mut Vec<(usize, VerifyError)>,
    ) {
        if batch.is_empty() {
            return;
        }
        let g2 = g2.unwrap_or_else(|| batch.par_iter().map(|p| p.b.into()).collect());
        if self.combined_check(batch, g2) {
            return;
        }
        if batch.len() == 1 {
            invalid.push((batch[0].index, VerifyError::Rejected));
            return;
        }
        let (left, right) = batch.split_at(batch.len() / 2);
        self.bisect(left, None, invalid);
        self.bisect(right, None, invalid);
    }

    /// The randomized combined pairing check over `batch`.
    fn combined_check(&self, batch: &[Prepared], mut g2: Vec<G2Prepared>) -> bool {
        let vk = &self.pvk.vk;
        // sum_i r_i IC_i as one small MSM: gamma_abc[0] * sum r_i + sum_j gamma_abc[j] * s_j
        // with s_j = sum_i r_i x_ij.
        let mut ic_scalars = vec![Fr::zero(); S::COUNT + 1];
        for p in batch {
            ic_scalars[0] += p.r;
            for (s, x) in ic_scalars[1..].iter_mut().zip(&p.inputs) {
                *s += p.r * x;
            }
        }
        let r_sum = ic_scalars[0];
        let Ok(ic) = G1Projective::msm(&vk.gamma_abc_g1, &ic_scalars) else {
            return false;
        };
        let cs: Vec<G1Affine> = batch.iter().map(|p| p.c).collect();
        let rs: Vec<Fr> = batch.iter().map(|p| p.r).collect();
        let Ok(c) = G1Projective::msm(&cs, &rs) else {
            return false;
        };

        let mut g1: Vec<<Bn254 as Pairing>::G1Prepared> =
            batch.iter().map(|p| p.a_r.into()).collect();
        g1.push(ic.into_affine().into());
        g2.push(self.pvk.gamma_g2_neg_pc.clone());
        g1.push(c.into_affine().into());
        g2.push(self.pvk.delta_g2_neg_pc.clone());

        let ml = Bn254::multi_miller_loop(g1, g2);
        let Some(lhs) = Bn254::final_exponentiation(ml) else {
            return false;
        };
        lhs == PairingOutput::<Bn254>(self.pvk.alpha_g1_beta_g2) * r_sum
    }
}

/// A batch scalar `a + lambda b` (see [`crate::curve::mul_glv_128`]).
struct BatchScalar {
    a: u64,
    b: u64,
}

type G2Prepared = <Bn254 as Pairing>::G2Prepared;

struct Prepared {
    index: usize,
    a_r: G1Affine,
    b: G2Affine,
    c: G1Affine,
    inputs: Vec<Fr>,
    r: Fr,
}

/// An RNG that adds no entropy, so batch scalars come from the merlin transcript alone.
struct TranscriptOnly;

impl RngCore for TranscriptOnly {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        dest.fill(0);
        Ok(())
    }
}

impl CryptoRng for TranscriptOnly {}
