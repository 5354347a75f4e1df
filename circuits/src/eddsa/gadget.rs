//! In-circuit EdDSA-Poseidon verification, enforcing what [`super::verify`] checks natively.

use crate::babyjub::{base8, gadget::PointVar, PointProjective, Scalar};
use crate::poseidon;
use ark_bn254::Fr;
use ark_ec::AffineRepr;
use ark_ff::{One, PrimeField};
use ark_r1cs_std::{fields::fp::FpVar, prelude::*};
use ark_relations::gr1cs::SynthesisError;
use std::sync::LazyLock;

/// `2^i * Base8` for `i < S_BITS`: the table for the fixed-base multiplication `S * Base8`.
static BASE8_POWERS: LazyLock<Vec<PointProjective>> = LazyLock::new(|| {
    let mut acc = base8().into_group();
    (0..super::S_BITS)
        .map(|_| {
            let cur = acc;
            acc = acc + acc;
            cur
        })
        .collect()
});

/// A signature inside the circuit: `R8` (already constrained to the prime-order subgroup by
/// [`crate::babyjub::gadget::alloc_subgroup_point`]) and the little-endian bits of `S`.
pub struct SignatureVar {
    /// Nonce commitment.
    pub r8: PointVar,
    /// `S`, [`super::S_BITS`] little-endian bits.
    pub s_bits: Vec<Boolean<Fr>>,
}

/// Enforces that `sig` is a valid signature on `msg` under `a`.
///
/// The caller has constrained `a` and `sig.r8` to the prime-order subgroup; this enforces
/// `A != identity`, `S < l` and `S * Base8 == R8 + 8 * hm * A`.
pub fn enforce_verify(
    a: &PointVar,
    msg: &FpVar<Fr>,
    sig: &SignatureVar,
) -> Result<(), SynthesisError> {
    // I2 (key): in the prime-order subgroup the only point with x = 0 is the identity, so
    // x != 0 rules the identity key out (1 constraint).
    a.x.enforce_not_equal(&FpVar::zero())?;

    // I2 (canonical S): S <= l - 1.
    let l_minus_one = (-Scalar::one()).into_bigint();
    Boolean::enforce_smaller_or_equal_than_le(&sig.s_bits, l_minus_one)?;

    // I2 (challenge): hm = Poseidon(R8.x, R8.y, A.x, A.y, m), decomposed into its unique
    // (strictly < p) 254-bit representation so the prover has no choice of challenge.
    let hm = poseidon::gadget::hash(&[
        sig.r8.x.clone(),
        sig.r8.y.clone(),
        a.x.clone(),
        a.y.clone(),
        msg.clone(),
    ])?;
    let hm_bits = hm.to_bits_le()?;

    // I2 (equation): S * Base8 == R8 + 8 * (hm * A).
    // A shorter table would silently drop high bits of S in the zip below.
    if sig.s_bits.len() != BASE8_POWERS.len() {
        return Err(SynthesisError::Unsatisfiable);
    }
    let mut lhs = PointVar::zero();
    lhs.precomputed_base_scalar_mul_le(sig.s_bits.iter().zip(BASE8_POWERS.iter()))?;
    let mut hm_a = a.scalar_mul_le(hm_bits.iter())?;
    for _ in 0..3 {
        hm_a.double_in_place()?;
    }
    let rhs = sig.r8.clone() + hm_a;
    lhs.enforce_equal(&rhs)
}
