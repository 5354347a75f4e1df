//! The R1CS-to-QAP reduction of snarkjs, for arkworks' Groth16 prover.
//!
//! arkworks' default (libsnark's) reduction pairs an H query of `[tau^i t(tau) / delta]_1` with
//! the coefficients of `h = (AB - C) / t`. Keys from a snarkjs-style ceremony instead hold the
//! odd-indexed Lagrange points of the domain twice the circuit's size (`[L'_{2i+1}(tau) /
//! delta]_1`, straight from a prepared Powers of Tau), so the prover must supply `AB - C`
//! evaluated on that odd coset: interpolate A, B and C on the circuit's domain, shift by the
//! primitive root of the doubled domain, evaluate again, and subtract. The A, B, C rows are
//! the same as libsnark's (one extra A row per public input), so instance maps are shared.
//!
//! We write this ourselves instead of depending on `ark-circom` (which has the same reduction):
//! that crate pulls a WebAssembly runtime and compiler into every crate that proves, the
//! household's among them (docs/decisions/0006-ceremony.md).

use ark_ff::PrimeField;
use ark_groth16::r1cs_to_qap::{evaluate_constraint, LibsnarkReduction, R1CSToQAP};
use ark_poly::EvaluationDomain;
use ark_relations::gr1cs::{ConstraintSystemRef, Matrix, SynthesisError};
use rayon::prelude::*;

/// snarkjs' reduction (see the module documentation).
pub struct SnarkjsReduction;

/// Moves evaluations on `domain` to evaluations on the coset `shift * domain`.
fn to_coset<F: PrimeField, D: EvaluationDomain<F>>(domain: &D, shift: F, v: &mut Vec<F>) {
    domain.ifft_in_place(v);
    D::distribute_powers_and_mul_by_const(v, shift, F::one());
    domain.fft_in_place(v);
}

impl R1CSToQAP for SnarkjsReduction {
    #[allow(clippy::type_complexity)]
    fn instance_map_with_evaluation<F: PrimeField, D: EvaluationDomain<F>>(
        cs: ConstraintSystemRef<F>,
        t: &F,
    ) -> Result<(Vec<F>, Vec<F>, Vec<F>, F, usize, usize), SynthesisError> {
        LibsnarkReduction::instance_map_with_evaluation::<F, D>(cs, t)
    }

    fn witness_map_from_matrices<F: PrimeField, D: EvaluationDomain<F>>(
        matrices: &[Matrix<F>],
        num_inputs: usize,
        num_constraints: usize,
        full_assignment: &[F],
    ) -> Result<Vec<F>, SynthesisError> {
        let domain =
            D::new(num_constraints + num_inputs).ok_or(SynthesisError::PolynomialDegreeTooLarge)?;
        let n = domain.size();
        let shift = D::new(2 * n)
            .ok_or(SynthesisError::PolynomialDegreeTooLarge)?
            .element(1);
        let mut a = vec![F::zero(); n];
        let mut b = vec![F::zero(); n];
        a[..num_constraints]
            .par_iter_mut()
            .zip(b[..num_constraints].par_iter_mut())
            .zip(matrices[0].par_iter().zip(matrices[1].par_iter()))
            .for_each(|((a, b), (at, bt))| {
                *a = evaluate_constraint(at, full_assignment);
                *b = evaluate_constraint(bt, full_assignment);
            });
        // The extra rows: input i times 1 equals 0 (C is zero there).
        a[num_constraints..num_constraints + num_inputs]
            .copy_from_slice(&full_assignment[..num_inputs]);
        let mut c: Vec<F> = a
            .par_iter()
            .zip(b.par_iter())
            .map(|(a, b)| *a * b)
            .collect();
        c[num_constraints..].iter_mut().for_each(|x| *x = F::zero());
        to_coset(&domain, shift, &mut a);
        to_coset(&domain, shift, &mut b);
        to_coset(&domain, shift, &mut c);
        Ok(a.par_iter()
            .zip(b.par_iter())
            .zip(c.par_iter())
            .map(|((a, b), c)| *a * b - c)
            .collect())
    }

    fn h_query_scalars<F: PrimeField, D: EvaluationDomain<F>>(
        max_power: usize,
        t: F,
        _zt: F,
        delta_inverse: F,
    ) -> Result<Vec<F>, SynthesisError> {
        // `max_power` is the circuit domain's size minus one or two; the H query has one
        // point per domain element: L'_{2i+1}(t) / delta over the doubled domain.
        let n = D::new(max_power + 1)
            .ok_or(SynthesisError::PolynomialDegreeTooLarge)?
            .size();
        let double = D::new(2 * n).ok_or(SynthesisError::PolynomialDegreeTooLarge)?;
        Ok(double
            .evaluate_all_lagrange_coefficients(t)
            .into_iter()
            .skip(1)
            .step_by(2)
            .map(|l| l * delta_inverse)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{Bn254, Fr};
    use ark_groth16::Groth16;
    use ark_r1cs_std::{alloc::AllocVar, eq::EqGadget, fields::fp::FpVar};
    use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef};
    use ark_snark::SNARK;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// x^3 + x + 5 == y with y public.
    #[derive(Clone)]
    struct Cube {
        x: Fr,
        y: Fr,
    }

    impl ConstraintSynthesizer<Fr> for Cube {
        fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
            let y = FpVar::new_input(cs.clone(), || Ok(self.y))?;
            let x = FpVar::new_witness(cs, || Ok(self.x))?;
            let x3 = &x * &x * &x;
            (x3 + &x + Fr::from(5u64)).enforce_equal(&y)
        }
    }

    #[test]
    fn proofs_with_the_snarkjs_reduction_verify_and_bind_the_input() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let x = Fr::from(3u64);
        let y = Fr::from(35u64);
        let (pk, vk) =
            Groth16::<Bn254, SnarkjsReduction>::circuit_specific_setup(Cube { x, y }, &mut rng)
                .unwrap();
        let proof =
            Groth16::<Bn254, SnarkjsReduction>::prove(&pk, Cube { x, y }, &mut rng).unwrap();
        assert!(Groth16::<Bn254>::verify(&vk, &[y], &proof).unwrap());
        assert!(!Groth16::<Bn254>::verify(&vk, &[y + Fr::from(1u64)], &proof).unwrap());
        // The default reduction does not fit these keys.
        let other = Groth16::<Bn254>::prove(&pk, Cube { x, y }, &mut rng).unwrap();
        assert!(!Groth16::<Bn254>::verify(&vk, &[y], &other).unwrap());
    }
}
