//! Shared helpers: assignment access, and range checks by bit decomposition in R1CS with
//! their native twin.

use ark_bn254::Fr;
use ark_ff::{BigInteger, PrimeField};
use ark_r1cs_std::{fields::fp::FpVar, prelude::*};
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};

/// The assignment, or `AssignmentMissing` during key generation.
pub(crate) fn get<T>(v: Option<T>) -> Result<T, SynthesisError> {
    v.ok_or(SynthesisError::AssignmentMissing)
}

/// Enforces `0 <= v < 2^n` (`n <= 64`) by an `n`-bit decomposition: `n` boolean constraints
/// and one equality. Returns the bits, least significant first.
///
/// A value outside the range gets its low `n` bits as witness, which then differ from `v`, so
/// the equality fails: the decomposition is a check, not a truncation.
pub(crate) fn enforce_bits(
    cs: &ConstraintSystemRef<Fr>,
    v: &FpVar<Fr>,
    n: usize,
) -> Result<Vec<Boolean<Fr>>, SynthesisError> {
    debug_assert!(n <= 64, "range checks are at most 64 bits");
    let value = v.value().ok().map(|x| x.into_bigint().0[0]);
    let bits = (0..n)
        .map(|i| Boolean::new_witness(cs.clone(), || get(value.map(|x| (x >> i) & 1 == 1))))
        .collect::<Result<Vec<_>, _>>()?;
    Boolean::le_bits_to_fp(&bits)?.enforce_equal(v)?;
    Ok(bits)
}

/// The native side of [`enforce_bits`]: `x` as an integer if `0 <= x < 2^n` (`n <= 64`).
pub(crate) fn fits_bits(x: &Fr, n: u32) -> Option<u64> {
    let b = x.into_bigint();
    (b.num_bits() <= n).then_some(b.0[0])
}
