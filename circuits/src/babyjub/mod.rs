//! Baby Jubjub (EIP-2494) as an arkworks twisted Edwards curve, in the EIP's own coordinates:
//! `168700 x^2 + y^2 = 1 + 168696 x^2 y^2` over BN254's scalar field.
//!
//! `ark-ed-on-bn254` implements the isomorphic `a = 1` form, whose x coordinates differ by a
//! constant factor; meters and circomlib use EIP-2494 coordinates, so Veilwatt defines the curve
//! itself and reuses only ark-ed-on-bn254's prime-order scalar field `l`.

pub mod gadget;

use ark_bn254::Fr;
use ark_ec::{
    models::CurveConfig,
    twisted_edwards::{Affine, MontCurveConfig, Projective, TECurveConfig},
    AffineRepr, CurveGroup,
};
use ark_ff::{MontFp, PrimeField};

/// The prime-order subgroup's scalar field (order `l`, 251 bits).
pub type Scalar = ark_ed_on_bn254::Fr;
/// An affine Baby Jubjub point in EIP-2494 coordinates. May hold any (x, y) pair: points from
/// outside are validated with [`check_subgroup_point`] before use.
pub type Point = Affine<BabyJubConfig>;
/// A projective Baby Jubjub point.
pub type PointProjective = Projective<BabyJubConfig>;

/// Bit length of the subgroup order `l`.
pub const SCALAR_BITS: usize = 251;

/// Curve parameters of EIP-2494 Baby Jubjub, with `Base8` as the generator of the subgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BabyJubConfig;

impl CurveConfig for BabyJubConfig {
    type BaseField = Fr;
    type ScalarField = Scalar;
    /// The full group has order `8 l`.
    const COFACTOR: &'static [u64] = &[8];
    /// `8^-1 mod l`.
    const COFACTOR_INV: Scalar =
        MontFp!("2394026564107420727433200628387514462817212225638746351800188703329891451411");
}

impl TECurveConfig for BabyJubConfig {
    const COEFF_A: Fr = MontFp!("168700");
    const COEFF_D: Fr = MontFp!("168696");
    /// EIP-2494 `Base8`, the generator circomlib signs with.
    const GENERATOR: Point = Point::new_unchecked(
        MontFp!("5299619240641551281634865583518297030282874472190772894086521144482721001553"),
        MontFp!("16950150798460657717958625567821834550301663161624707787222815936182638968203"),
    );
    type MontCurveConfig = BabyJubConfig;
}

impl MontCurveConfig for BabyJubConfig {
    /// `A = 2 (a + d) / (a - d)`.
    const COEFF_A: Fr = MontFp!("168698");
    /// `B = 4 / (a - d)`.
    const COEFF_B: Fr = MontFp!("1");
    type TECurveConfig = BabyJubConfig;
}

/// EIP-2494 `Base8`, generator of the prime-order subgroup.
pub fn base8() -> Point {
    BabyJubConfig::GENERATOR
}

/// Why a point from outside is not an acceptable subgroup point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PointError {
    /// The coordinates do not satisfy the curve equation.
    #[error("point is not on the Baby Jubjub curve")]
    NotOnCurve,
    /// On the curve but with a small-order component (not in the order-`l` subgroup).
    #[error("point is not in the prime-order subgroup")]
    NotInSubgroup,
    /// The identity, which no honest key or nonce commitment is.
    #[error("point is the identity")]
    Identity,
}

/// Checks that `p` is on the curve and in the prime-order subgroup (the identity is allowed).
pub fn check_subgroup_point(p: &Point) -> Result<(), PointError> {
    if !p.is_on_curve() {
        return Err(PointError::NotOnCurve);
    }
    if !p.is_in_correct_subgroup_assuming_on_curve() {
        return Err(PointError::NotInSubgroup);
    }
    Ok(())
}

/// Interprets a BN254 field element (e.g. a Poseidon output) as an integer scalar for scalar
/// multiplication; the full 254-bit value is used, exactly as circomlib does.
pub(crate) fn field_to_bigint(x: &Fr) -> <Fr as PrimeField>::BigInt {
    x.into_bigint()
}

/// A point `q` with `8 q = p` when `p` is in the subgroup (witness for the in-circuit subgroup
/// check). For points outside the subgroup no such `q` exists; any point is returned and the
/// circuit's check then fails, as it must.
pub(crate) fn cofactor_preimage(p: &Point) -> Point {
    if p.is_on_curve() {
        (p.into_group() * BabyJubConfig::COFACTOR_INV).into_affine()
    } else {
        Point::zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::PrimeGroup;
    use ark_ff::{Field, One};

    #[test]
    fn generator_is_in_subgroup_of_order_l() {
        let g = base8();
        assert!(g.is_on_curve());
        assert!(g.is_in_correct_subgroup_assuming_on_curve());
        assert_eq!(check_subgroup_point(&g), Ok(()));
        assert!((g.into_group() * (-Scalar::one())).into_affine() == (-g));
        assert_eq!(PointProjective::generator(), g.into_group());
    }

    #[test]
    fn cofactor_inverse_is_correct() {
        assert_eq!(
            BabyJubConfig::COFACTOR_INV * Scalar::from(8u64),
            Scalar::one()
        );
    }

    #[test]
    fn montgomery_form_matches() {
        let a = <BabyJubConfig as TECurveConfig>::COEFF_A;
        let d = <BabyJubConfig as TECurveConfig>::COEFF_D;
        let two = Fr::from(2u64);
        let four = Fr::from(4u64);
        let diff_inv = (a - d).inverse().unwrap();
        assert_eq!(
            <BabyJubConfig as MontCurveConfig>::COEFF_A,
            two * (a + d) * diff_inv
        );
        assert_eq!(<BabyJubConfig as MontCurveConfig>::COEFF_B, four * diff_inv);
    }

    #[test]
    fn small_order_points_are_rejected() {
        // (0, -1) has order 2.
        let t = Point::new_unchecked(Fr::from(0u64), -Fr::one());
        assert!(t.is_on_curve());
        assert_eq!(check_subgroup_point(&t), Err(PointError::NotInSubgroup));
        let off = Point::new_unchecked(Fr::from(1u64), Fr::from(2u64));
        assert_eq!(check_subgroup_point(&off), Err(PointError::NotOnCurve));
    }
}
