//! Two BN254 speed-ups for batch verification, each tested against arkworks' reference
//! computation.
//!
//! * [`is_in_g2_subgroup`]: G2 membership by Scott's endomorphism test (eprint 2022/348,
//!   sections 3 and 5.1; also used by gnark-crypto): `P` is in the order-r subgroup iff
//!   `[x+1]P + psi([x]P) + psi^2([x]P) == psi^3([2x]P)`, where `x` is the 63-bit BN seed and
//!   `psi` the untwist-Frobenius-twist endomorphism. One 63-bit multiplication instead of
//!   arkworks' 127-bit `[6x^2]P == psi(P)`: about half the cost of validating a proof's B.
//! * [`mul_glv_128`]: `(a + lambda b) * P` for 64-bit `a`, `b` by a joint double-and-add on `P`
//!   and `phi(P) = lambda P` (64 doublings instead of 128). Batch scalars are drawn as such
//!   pairs: the map `(a, b) -> a + lambda b mod r` is injective on 64-bit pairs (the shortest
//!   nonzero vectors of the GLV lattice have ~127-bit entries), so the scalars still range over
//!   2^128 distinct values.

use ark_bn254::{Fq, Fq2, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{
    scalar_mul::glv::GLVConfig, short_weierstrass::SWCurveConfig, AdditiveGroup, AffineRepr,
    CurveGroup,
};
use ark_ff::{Field, PrimeField};
use std::sync::LazyLock;

/// The BN254 seed `x` (positive, 63 bits).
const SEED: u64 = 4_965_661_367_192_848_881;

/// `(xi^((p-1)/3), xi^((p-1)/2))` with `xi = 9 + u`: the coefficients of `psi`.
static PSI_COEFFS: LazyLock<(Fq2, Fq2)> = LazyLock::new(|| {
    let xi = Fq2::new(Fq::from(9u64), Fq::from(1u64));
    let p_minus_1 = {
        let mut m = Fq::MODULUS;
        m.sub_with_borrow(&1u64.into());
        m
    };
    let mut third = p_minus_1;
    // (p - 1) is divisible by 6 for BN254.
    div_small(&mut third, 3);
    let mut half = p_minus_1;
    div_small(&mut half, 2);
    (xi.pow(third), xi.pow(half))
});

fn div_small(n: &mut <Fq as PrimeField>::BigInt, d: u64) {
    let mut rem: u128 = 0;
    for limb in n.0.iter_mut().rev() {
        let cur = (rem << 64) | u128::from(*limb);
        *limb = (cur / u128::from(d)) as u64;
        rem = cur % u128::from(d);
    }
    debug_assert_eq!(rem, 0);
}

use ark_ff::BigInteger;

/// `psi` on Jacobian coordinates: conjugate every coordinate (the p-power Frobenius on Fq2),
/// then scale x and y. Frobenius is a field automorphism, so it commutes with the Jacobian
/// quotients.
fn psi(p: &G2Projective) -> G2Projective {
    let (cx, cy) = *PSI_COEFFS;
    let conj = |a: &Fq2| Fq2::new(a.c0, -a.c1);
    let mut q = *p;
    q.x = conj(&p.x) * cx;
    q.y = conj(&p.y) * cy;
    q.z = conj(&p.z);
    q
}

/// Whether an on-curve G2 point is in the prime-order subgroup.
pub fn is_in_g2_subgroup(p: &G2Affine) -> bool {
    if p.is_zero() {
        return true;
    }
    let xp = p.mul_bigint([SEED]);
    let psi_xp = psi(&xp);
    let lhs = xp + p + psi_xp + psi(&psi_xp);
    let rhs = psi(&psi(&psi(&xp.double())));
    lhs == rhs
}

/// Whether `p` is a valid G2 point: on the curve and in the subgroup.
pub fn is_valid_g2(p: &G2Affine) -> bool {
    p.is_on_curve() && is_in_g2_subgroup(p)
}

/// The scalar `a + lambda b` that [`mul_glv_128`] multiplies by.
pub fn glv_scalar(a: u64, b: u64) -> Fr {
    Fr::from(a) + <ark_bn254::g1::Config as GLVConfig>::LAMBDA * Fr::from(b)
}

/// `(a + lambda b) * p` (see module docs).
pub fn mul_glv_128(p: &G1Affine, a: u64, b: u64) -> G1Projective {
    let phi = <ark_bn254::g1::Config as GLVConfig>::endomorphism_affine(p);
    let both = (p.into_group() + phi).into_affine();
    let mut acc = G1Projective::ZERO;
    for i in (0..64).rev() {
        acc.double_in_place();
        match ((a >> i) & 1, (b >> i) & 1) {
            (1, 1) => acc += both,
            (1, 0) => acc += p,
            (0, 1) => acc += phi,
            _ => {}
        }
    }
    acc
}

/// G1 points from a compressed encoding are on the curve by construction and G1 has cofactor
/// 1; this re-checks both explicitly.
pub fn is_valid_g1(p: &G1Affine) -> bool {
    p.is_on_curve() && ark_bn254::g1::Config::is_in_correct_subgroup_assuming_on_curve(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::PrimeGroup;
    use ark_std::UniformRand;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn psi_acts_as_p_on_the_subgroup() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let p_mod_r = Fr::from_le_bytes_mod_order(&Fq::MODULUS.to_bytes_le());
        for _ in 0..8 {
            let g = G2Projective::generator() * Fr::rand(&mut rng);
            assert_eq!(psi(&g), g * p_mod_r);
        }
    }

    #[test]
    fn subgroup_test_agrees_with_arkworks() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        assert!(is_in_g2_subgroup(&G2Affine::zero()));
        for _ in 0..64 {
            let g = (G2Projective::generator() * Fr::rand(&mut rng)).into_affine();
            assert!(g.is_in_correct_subgroup_assuming_on_curve());
            assert!(is_valid_g2(&g));
        }
        let mut outside = 0;
        while outside < 256 {
            let x = Fq2::rand(&mut rng);
            if let Some(p) = G2Affine::get_point_from_x_unchecked(x, rng.gen()) {
                let expected = p.is_in_correct_subgroup_assuming_on_curve();
                assert_eq!(is_in_g2_subgroup(&p), expected);
                if !expected {
                    outside += 1;
                }
                // Also points with a subgroup part plus a non-subgroup part.
                let g = G2Projective::generator() * Fr::rand(&mut rng);
                let mixed = (g + p).into_affine();
                assert_eq!(
                    is_in_g2_subgroup(&mixed),
                    mixed.is_in_correct_subgroup_assuming_on_curve()
                );
            }
        }
    }

    #[test]
    fn glv_multiplication_matches_scalar_multiplication() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for _ in 0..32 {
            let p = (G1Projective::generator() * Fr::rand(&mut rng)).into_affine();
            let (a, b): (u64, u64) = (rng.gen(), rng.gen());
            assert_eq!(mul_glv_128(&p, a, b), p * glv_scalar(a, b));
        }
        let p = G1Affine::generator();
        assert_eq!(
            mul_glv_128(&p, u64::MAX, u64::MAX),
            p * glv_scalar(u64::MAX, u64::MAX)
        );
        assert_eq!(mul_glv_128(&p, 0, 0), G1Projective::ZERO);
    }
}
