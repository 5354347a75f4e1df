//! Baby Jubjub points in R1CS: arkworks' twisted Edwards gadget over our EIP-2494 config, plus a
//! cheap subgroup-membership check.

use super::{cofactor_preimage, BabyJubConfig, Point};
use ark_bn254::Fr;
use ark_r1cs_std::{
    alloc::AllocationMode, fields::fp::FpVar, groups::curves::twisted_edwards::AffineVar,
    prelude::*,
};
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};

/// A Baby Jubjub point variable.
pub type PointVar = AffineVar<BabyJubConfig, FpVar<Fr>>;

/// Enforces that `(x, y)` is a point of the prime-order subgroup and returns it as a point.
///
/// The group is cyclic of order `8 l`, so `8 E` is exactly the order-`l` subgroup: we allocate a
/// witness `q` (checked on the curve, 3 constraints), double it three times (15 constraints) and
/// enforce `8 q == (x, y)` (2 constraints). That also proves `(x, y)` is on the curve, and is far
/// cheaper than multiplying by `l`.
pub fn enforce_subgroup_point(
    cs: ConstraintSystemRef<Fr>,
    x: &FpVar<Fr>,
    y: &FpVar<Fr>,
) -> Result<PointVar, SynthesisError> {
    let value = x
        .value()
        .and_then(|x| Ok(Point::new_unchecked(x, y.value()?)))
        .ok();
    let mut q = PointVar::new_variable_omit_prime_order_check(
        cs,
        || {
            value
                .map(|v| cofactor_preimage(&v).into())
                .ok_or(SynthesisError::AssignmentMissing)
        },
        AllocationMode::Witness,
    )?;
    for _ in 0..3 {
        q.double_in_place()?;
    }
    q.x.enforce_equal(x)?;
    q.y.enforce_equal(y)?;
    Ok(PointVar::new(x.clone(), y.clone()))
}

/// Allocates a witness point and enforces that it lies in the prime-order subgroup
/// ([`enforce_subgroup_point`]). `value` is `None` during key generation.
pub fn alloc_subgroup_point(
    cs: ConstraintSystemRef<Fr>,
    value: Option<Point>,
) -> Result<PointVar, SynthesisError> {
    let missing = || SynthesisError::AssignmentMissing;
    let x = FpVar::new_witness(cs.clone(), || value.map(|p| p.x).ok_or_else(missing))?;
    let y = FpVar::new_witness(cs.clone(), || value.map(|p| p.y).ok_or_else(missing))?;
    enforce_subgroup_point(cs, &x, &y)
}
