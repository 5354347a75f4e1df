//! EdDSA-Poseidon over Baby Jubjub, as circomlib's `EdDSAPoseidonVerifier` and circomlibjs'
//! `eddsa.signPoseidon` / `verifyPoseidon` define it:
//!
//! * key: `h = blake512(sk)`, `s = prune(h[0..32])` (clear bits 0-2 and 255, set bit 254),
//!   `A = (s >> 3) * Base8`;
//! * sign `m`: `r = blake512(h[32..64] || le32(m)) mod l`, `R8 = r * Base8`,
//!   `hm = Poseidon(R8.x, R8.y, A.x, A.y, m)`, `S = r + hm * s mod l`;
//! * verify: `S * Base8 == R8 + 8 * hm * A`, with `hm` taken as the full 254-bit integer.
//!
//! Veilwatt's verification is strict where circomlibjs is lenient: `A` and `R8` must be on the
//! curve and in the prime-order subgroup, `A` must not be the identity, and `S < l`. Signatures
//! made by circomlibjs always pass these checks (see `tests/it/circomlib_vectors.rs`).

pub mod gadget;

use crate::babyjub::{self, base8, check_subgroup_point, Point, PointError, Scalar};
use crate::poseidon;
use ark_bn254::Fr;
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{AdditiveGroup, BigInteger, BigInteger256, PrimeField, Zero};
use blake_hash::{Blake512, Digest};
use rand_core::{CryptoRng, RngCore};

/// A meter's 32-byte EdDSA secret (circomlibjs' `prv`).
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A public key: the point `A`. Keys built with [`PublicKey::from_coordinates`] are validated;
/// [`PublicKey::from_point_unchecked`] exists for tests of the checks themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(Point);

/// A signature `(R8, S)`. `s` is kept as a 256-bit integer so that non-canonical values from
/// outside can be represented and rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The nonce commitment `R8 = r * Base8`.
    pub r8: Point,
    /// The response `S`, which must be below `l`.
    pub s: BigInteger256,
}

/// Why a signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The public key is not an acceptable point.
    #[error("invalid public key: {0}")]
    PublicKey(PointError),
    /// `R8` is not an acceptable point.
    #[error("invalid nonce commitment R8: {0}")]
    R8(PointError),
    /// `S >= l`: a malleated or malformed signature.
    #[error("S is not a canonical scalar (S >= l)")]
    NonCanonicalS,
    /// The verification equation does not hold.
    #[error("signature does not match the message and key")]
    Mismatch,
}

impl SecretKey {
    /// Wraps 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// The secret bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// `(pruned scalar s as little-endian bytes, nonce prefix)`.
    fn expand(&self) -> ([u8; 32], [u8; 32]) {
        let h = Blake512::digest(&self.0);
        let mut s = [0u8; 32];
        s.copy_from_slice(&h[..32]);
        s[0] &= 0xF8;
        s[31] &= 0x7F;
        s[31] |= 0x40;
        let mut prefix = [0u8; 32];
        prefix.copy_from_slice(&h[32..]);
        (s, prefix)
    }

    /// The public key `A = (s >> 3) * Base8`.
    pub fn public_key(&self) -> PublicKey {
        let (s, _) = self.expand();
        let s_big = BigInteger256::from_bits_le(&bytes_to_bits_le(&s)) >> 3;
        PublicKey(base8().mul_bigint(s_big).into_affine())
    }

    /// Signs a field element exactly as circomlibjs' `signPoseidon`.
    pub fn sign(&self, msg: Fr) -> Signature {
        self.sign_with_claimed_key(&self.public_key().0, msg)
    }

    /// Signs as [`SecretKey::sign`] but hashes `claimed` in place of the real public key.
    /// Only for tests that build signatures under malformed keys (e.g. the real key plus a
    /// small-order point, which the cofactored equation alone would accept).
    #[doc(hidden)]
    pub fn sign_with_claimed_key(&self, claimed: &Point, msg: Fr) -> Signature {
        let (s_bytes, prefix) = self.expand();
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&prefix);
        buf[32..].copy_from_slice(&msg.into_bigint().to_bytes_le());
        let r = Scalar::from_le_bytes_mod_order(&Blake512::digest(&buf));
        let r8 = (base8() * r).into_affine();
        let hm = challenge(&r8, claimed, msg);
        let hm_l = Scalar::from_le_bytes_mod_order(&hm.into_bigint().to_bytes_le());
        let s = Scalar::from_le_bytes_mod_order(&s_bytes);
        Signature {
            r8,
            s: (r + hm_l * s).into_bigint(),
        }
    }
}

fn bytes_to_bits_le(bytes: &[u8]) -> Vec<bool> {
    bytes
        .iter()
        .flat_map(|b| (0..8).map(move |i| (b >> i) & 1 == 1))
        .collect()
}

/// The challenge `hm = Poseidon(R8.x, R8.y, A.x, A.y, m)`.
pub fn challenge(r8: &Point, a: &Point, msg: Fr) -> Fr {
    poseidon::hash(&[r8.x, r8.y, a.x, a.y, msg])
}

impl PublicKey {
    /// A validated key from EIP-2494 coordinates: on the curve, in the prime-order subgroup, not
    /// the identity.
    pub fn from_coordinates(x: Fr, y: Fr) -> Result<Self, PointError> {
        let p = Point::new_unchecked(x, y);
        check_public_key(&p)?;
        Ok(Self(p))
    }

    /// Wraps any point without checks; [`verify`] still rejects bad keys.
    pub fn from_point_unchecked(p: Point) -> Self {
        Self(p)
    }

    /// The point `A`.
    pub fn point(&self) -> Point {
        self.0
    }

    /// `A.x`.
    pub fn x(&self) -> Fr {
        self.0.x
    }

    /// `A.y`.
    pub fn y(&self) -> Fr {
        self.0.y
    }
}

fn check_public_key(p: &Point) -> Result<(), PointError> {
    check_subgroup_point(p)?;
    if p.is_zero() {
        return Err(PointError::Identity);
    }
    Ok(())
}

/// Verifies `sig` on `msg` under `pk` with every check listed in the module docs.
pub fn verify(pk: &PublicKey, msg: Fr, sig: &Signature) -> Result<(), SignatureError> {
    check_public_key(&pk.0).map_err(SignatureError::PublicKey)?;
    check_subgroup_point(&sig.r8).map_err(SignatureError::R8)?;
    if sig.s >= Scalar::MODULUS {
        return Err(SignatureError::NonCanonicalS);
    }
    let hm = challenge(&sig.r8, &pk.0, msg);
    let lhs = base8().mul_bigint(sig.s);
    let hm_a = pk.0.mul_bigint(babyjub::field_to_bigint(&hm));
    let rhs = sig.r8.into_group() + hm_a.double().double().double();
    // Both sides are in the subgroup, so comparing projective points is exact.
    if (lhs - rhs).is_zero() {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// How many bits of `S` the circuit allocates: one more than `l` has, so that every
/// `S < 2 l` (in particular a malleated `S + l`) is represented exactly and rejected by the
/// canonicity check rather than by accident.
pub const S_BITS: usize = babyjub::SCALAR_BITS + 1;

/// The bits of `S` the circuit allocates (little-endian, [`S_BITS`] of them).
pub(crate) fn s_bits(s: &BigInteger256) -> Vec<bool> {
    let mut bits = s.to_bits_le();
    bits.truncate(S_BITS);
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn sign_then_verify() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let sk = SecretKey::generate(&mut rng);
        let pk = sk.public_key();
        let msg = Fr::from(42u64);
        let sig = sk.sign(msg);
        assert_eq!(verify(&pk, msg, &sig), Ok(()));
        assert_eq!(
            verify(&pk, msg + Fr::from(1u64), &sig),
            Err(SignatureError::Mismatch)
        );
        let mut bad = sig;
        bad.s.add_with_carry(&Scalar::MODULUS);
        assert_eq!(verify(&pk, msg, &bad), Err(SignatureError::NonCanonicalS));
        let other = SecretKey::generate(&mut rng).public_key();
        assert_eq!(verify(&other, msg, &sig), Err(SignatureError::Mismatch));
    }
}
