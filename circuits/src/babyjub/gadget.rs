//! Baby Jubjub points in R1CS: arkworks' twisted Edwards gadget over our EIP-2494 config, plus a
//! cheap subgroup-membership allocation.

use super::{cofactor_preimage, BabyJubConfig, Point};
use ark_bn254::Fr;
use ark_r1cs_std::{
    alloc::AllocationMode, fields::fp::FpVar,
    groups::curves::twisted_edwards::AffineVar, prelude::*,
};
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};

/// A Baby Jubjub point variable.
pub type PointVar = AffineVar<BabyJubConfig, FpVar<Fr>>;

/// Allocates a witness point and enforces that it lies in the prime-order subgroup.
///
/// The group is cyclic of order `8 l`, so `8 E` is exactly the order-`l` subgroup: we allocate a
/// witness `q` (checked on the curve, 3 constraints) and return `p = 8 q` (three doublings,
/// 15 constraints), far cheaper than multiplying by `l`. `value` is `None` during key generation.
pub fn alloc_subgroup_point(
    cs: ConstraintSystemRef<Fr>,
    value: Option<Point>,
) -> Result<PointVar, SynthesisError> {
    let mut p = PointVar::new_variable_omit_prime_order_check(
        cs,
        || {
            value
                .map(|v| cofactor_preimage(&v).into())
                .ok_or(SynthesisError::AssignmentMissing)
        },
        AllocationMode::Witness,
    )?;
    for _ in 0..3 {
        p.double_in_place()?;
    }
    Ok(p)
}
