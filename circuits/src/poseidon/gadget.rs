//! The R1CS side of [`super::hash`]: `3` constraints per S-box (`x^2`, `x^4`, `x^5`); round
//! constants and the MDS layer are linear.
//!
//! Linear is not free for everyone: in a partial round only `state[0]` becomes a fresh
//! variable, so the other elements stay linear combinations that gain a term every round and
//! are used three times per S-box. Every [`MATERIALIZE_EVERY`] partial rounds the state is
//! therefore copied into fresh variables (`t` equality constraints), which caps the
//! combinations and the circuit's nonzero coefficients (what a ceremony's initial key costs).

use super::{is_full_round, params, MAX_INPUTS, N_ROUNDS_F};
use ark_bn254::Fr;
use ark_r1cs_std::{
    alloc::AllocVar,
    eq::EqGadget,
    fields::{fp::FpVar, FieldVar},
    GR1CSVar,
};
use ark_relations::gr1cs::SynthesisError;

/// Partial rounds between two copies of the state into fresh variables.
pub const MATERIALIZE_EVERY: usize = 8;

/// In-circuit circomlib Poseidon of `N` variables (1 <= N <= 7); equals [`super::hash`].
pub fn hash<const N: usize>(inputs: &[FpVar<Fr>; N]) -> Result<FpVar<Fr>, SynthesisError> {
    const { assert!(N >= 1 && N <= MAX_INPUTS, "Poseidon arity must be 1..=7") };
    let p = params(N);
    let t = p.width;
    let mut state: Vec<FpVar<Fr>> = Vec::with_capacity(t);
    state.push(FpVar::zero());
    state.extend(inputs.iter().cloned());
    for r in 0..N_ROUNDS_F + p.rounds_p {
        for (s, c) in state.iter_mut().zip(&p.round_constants[r * t..(r + 1) * t]) {
            *s += *c;
        }
        if is_full_round(r, p.rounds_p) {
            for s in state.iter_mut() {
                *s = pow5(s)?;
            }
        } else {
            state[0] = pow5(&state[0])?;
        }
        state = p
            .mds
            .iter()
            .map(|row| row.iter().zip(&state).map(|(m, s)| s * *m).sum())
            .collect();
        let partial = r + 1 - N_ROUNDS_F / 2;
        let last_partial = r + 1 == N_ROUNDS_F / 2 + p.rounds_p;
        if !is_full_round(r, p.rounds_p) && partial % MATERIALIZE_EVERY == 0 && !last_partial {
            state = state.iter().map(materialize).collect::<Result<_, _>>()?;
        }
    }
    Ok(state.swap_remove(0))
}

/// `x` as a fresh witness variable equal to it (constants stay constants).
fn materialize(x: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
    if x.is_constant() {
        return Ok(x.clone());
    }
    let copy = FpVar::new_witness(x.cs(), || x.value())?;
    copy.enforce_equal(x)?;
    Ok(copy)
}

fn pow5(x: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
    let x2 = x.square()?;
    let x4 = x2.square()?;
    Ok(x4 * x)
}
