//! Byte encodings shared with snarkjs (ffjavascript's "LEM" and "U" forms).
//!
//! * **LEM** (little-endian Montgomery): what `.ptau` and `.zkey` files store. A coordinate is
//!   its Montgomery representation, 32 bytes little-endian; a point is `x || y`; an `Fq2`
//!   coordinate is `c0 || c1`; the point at infinity is all zeros.
//! * **U** (uncompressed): what snarkjs hashes. A coordinate is its standard value, big-endian;
//!   an `Fq2` coordinate is `c1 || c0` (the 64-byte little-endian pair, byte-reversed); the point
//!   at infinity is all zeros.
//! * Constraint coefficients in a `.zkey` (section 4) are the standard little-endian bytes of
//!   `n * R^2 mod r`; `.r1cs` coefficients are plain standard little-endian values.

use super::CeremonyError;
use ark_bn254::{Fq, Fq2, Fr, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{BigInteger, BigInteger256, Field, PrimeField, Zero};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Bytes of one G1 point in LEM or U form.
pub const G1_BYTES: usize = 64;
/// Bytes of one G2 point in LEM or U form.
pub const G2_BYTES: usize = 128;
/// Bytes of one scalar or base-field element.
pub const FIELD_BYTES: usize = 32;

fn bigint_from_le(bytes: &[u8]) -> BigInteger256 {
    let mut limbs = [0u64; 4];
    for (i, limb) in limbs.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        *limb = u64::from_le_bytes(w);
    }
    BigInteger256::new(limbs)
}

/// An `Fq` from its LEM bytes; `None` unless the Montgomery value is canonical (< q).
pub fn fq_from_lem(bytes: &[u8]) -> Option<Fq> {
    let v = bigint_from_le(bytes);
    (v < Fq::MODULUS).then(|| Fq::new_unchecked(v))
}

fn fq_to_lem(x: &Fq, out: &mut Vec<u8>) {
    out.extend_from_slice(&x.0.to_bytes_le());
}

fn fq_to_be(x: &Fq, out: &mut Vec<u8>) {
    out.extend_from_slice(&x.into_bigint().to_bytes_be());
}

/// Appends a G1 point in LEM form.
pub fn g1_to_lem(p: &G1Affine, out: &mut Vec<u8>) {
    match p.xy() {
        None => out.extend_from_slice(&[0u8; G1_BYTES]),
        Some((x, y)) => {
            fq_to_lem(&x, out);
            fq_to_lem(&y, out);
        }
    }
}

/// Appends a G2 point in LEM form.
pub fn g2_to_lem(p: &G2Affine, out: &mut Vec<u8>) {
    match p.xy() {
        None => out.extend_from_slice(&[0u8; G2_BYTES]),
        Some((x, y)) => {
            for c in [x.c0, x.c1, y.c0, y.c1] {
                fq_to_lem(&c, out);
            }
        }
    }
}

/// Appends a G1 point in U form.
pub fn g1_to_u(p: &G1Affine, out: &mut Vec<u8>) {
    match p.xy() {
        None => out.extend_from_slice(&[0u8; G1_BYTES]),
        Some((x, y)) => {
            fq_to_be(&x, out);
            fq_to_be(&y, out);
        }
    }
}

/// Appends a G2 point in U form.
pub fn g2_to_u(p: &G2Affine, out: &mut Vec<u8>) {
    match p.xy() {
        None => out.extend_from_slice(&[0u8; G2_BYTES]),
        Some((x, y)) => {
            for c in [x.c1, x.c0, y.c1, y.c0] {
                fq_to_be(&c, out);
            }
        }
    }
}

/// A G1 point from LEM bytes: canonical coordinates on the curve, or all zeros for infinity.
/// (BN254's G1 has cofactor 1, so a point on the curve is in the group.)
pub fn g1_from_lem(bytes: &[u8], what: &str) -> Result<G1Affine, CeremonyError> {
    if bytes.iter().all(|b| *b == 0) {
        return Ok(G1Affine::zero());
    }
    let bad = || CeremonyError::Malformed(format!("{what}: not a BN254 G1 point"));
    let x = fq_from_lem(&bytes[..32]).ok_or_else(bad)?;
    let y = fq_from_lem(&bytes[32..64]).ok_or_else(bad)?;
    let p = G1Affine::new_unchecked(x, y);
    if !p.is_on_curve() {
        return Err(bad());
    }
    Ok(p)
}

/// A G2 point from LEM bytes: canonical coordinates on the curve (all zeros for infinity).
/// `check_subgroup` adds the prime-order subgroup check, needed for any point whose pairing
/// is evaluated and that is not compared byte for byte against a recomputation.
pub fn g2_from_lem(
    bytes: &[u8],
    what: &str,
    check_subgroup: bool,
) -> Result<G2Affine, CeremonyError> {
    if bytes.iter().all(|b| *b == 0) {
        return Ok(G2Affine::zero());
    }
    let bad = || CeremonyError::Malformed(format!("{what}: not a BN254 G2 point"));
    let c = |i: usize| fq_from_lem(&bytes[i * 32..i * 32 + 32]).ok_or_else(bad);
    let p = G2Affine::new_unchecked(Fq2::new(c(0)?, c(1)?), Fq2::new(c(2)?, c(3)?));
    if !p.is_on_curve() || (check_subgroup && !p.is_in_correct_subgroup_assuming_on_curve()) {
        return Err(bad());
    }
    Ok(p)
}

/// A run of G1 points in LEM form, parsed and checked in parallel.
pub fn g1s_from_lem(bytes: &[u8], what: &str) -> Result<Vec<G1Affine>, CeremonyError> {
    bytes
        .par_chunks(G1_BYTES)
        .map(|c| g1_from_lem(c, what))
        .collect()
}

/// A run of G2 points in LEM form, parsed and checked (on the curve; in the subgroup too if
/// `check_subgroup`) in parallel.
pub fn g2s_from_lem(
    bytes: &[u8],
    what: &str,
    check_subgroup: bool,
) -> Result<Vec<G2Affine>, CeremonyError> {
    bytes
        .par_chunks(G2_BYTES)
        .map(|c| g2_from_lem(c, what, check_subgroup))
        .collect()
}

/// G1 points in LEM form, concatenated.
pub fn g1s_to_lem(points: &[G1Affine]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * G1_BYTES);
    points.iter().for_each(|p| g1_to_lem(p, &mut out));
    out
}

/// G2 points in LEM form, concatenated.
pub fn g2s_to_lem(points: &[G2Affine]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * G2_BYTES);
    points.iter().for_each(|p| g2_to_lem(p, &mut out));
    out
}

/// `R = 2^256 mod r` as a field element (the Montgomery radix of `Fr`).
fn fr_radix() -> Fr {
    static R: OnceLock<Fr> = OnceLock::new();
    *R.get_or_init(|| Fr::from(2u64).pow([256u64]))
}

/// Appends a `.zkey` section-4 coefficient: standard bytes of `n * R^2 mod r`.
pub fn zkey_coef_to_bytes(n: &Fr, out: &mut Vec<u8>) {
    // The element n*R has Montgomery representation n*R^2.
    out.extend_from_slice(&(*n * fr_radix()).0.to_bytes_le());
}

/// Appends an `.r1cs` coefficient: standard little-endian bytes.
pub fn fr_to_le(n: &Fr, out: &mut Vec<u8>) {
    out.extend_from_slice(&n.into_bigint().to_bytes_le());
}

/// An `Fr` from standard little-endian bytes; `None` unless canonical.
pub fn fr_from_le(bytes: &[u8]) -> Option<Fr> {
    Fr::from_bigint(bigint_from_le(bytes))
}

/// The field modulus in 32 little-endian bytes, as file headers carry it.
pub fn modulus_le<F: PrimeField>() -> Vec<u8> {
    F::MODULUS.to_bytes_le()
}

/// True if every byte is zero (the encoding of the point at infinity).
pub fn is_zero_encoding(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

/// `x` is "negative" in ffjavascript's sense: its standard value exceeds `(q - 1) / 2`.
pub fn fq_is_negative(x: &Fq) -> bool {
    let half = {
        let mut m = Fq::MODULUS;
        m.div2();
        m
    };
    x.into_bigint() > half
}

/// ffjavascript's sign of an `Fq2` element: the sign of `c1`, or of `c0` when `c1` is zero.
pub fn fq2_is_negative(x: &Fq2) -> bool {
    if x.c1.is_zero() {
        fq_is_negative(&x.c0)
    } else {
        fq_is_negative(&x.c1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::AffineRepr;
    use ark_ff::UniformRand;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn lem_round_trips_and_rejects_off_curve_points() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let p = (G1Affine::generator() * Fr::rand(&mut rng)).into();
        let mut b = Vec::new();
        g1_to_lem(&p, &mut b);
        assert_eq!(g1_from_lem(&b, "p").unwrap(), p);
        b[0] ^= 1;
        assert!(g1_from_lem(&b, "p").is_err());
        let q: G2Affine = (G2Affine::generator() * Fr::rand(&mut rng)).into();
        let mut b = Vec::new();
        g2_to_lem(&q, &mut b);
        assert_eq!(g2_from_lem(&b, "q", true).unwrap(), q);
        b[100] ^= 1;
        assert!(g2_from_lem(&b, "q", true).is_err());
        assert!(g1_from_lem(&[0u8; 64], "z").unwrap().is_zero());
    }

    #[test]
    fn u_form_of_the_generator_is_big_endian_x_then_y() {
        let mut b = Vec::new();
        g1_to_u(&G1Affine::generator(), &mut b);
        assert_eq!(b[31], 1);
        assert_eq!(b[63], 2);
        assert!(b[..31].iter().all(|x| *x == 0));
    }

    #[test]
    fn coefficient_encoding_is_n_times_r_squared() {
        let n = Fr::from(5u64);
        let mut b = Vec::new();
        zkey_coef_to_bytes(&n, &mut b);
        let r = fr_radix();
        assert_eq!(fr_from_le(&b).unwrap(), n * r * r);
    }
}
