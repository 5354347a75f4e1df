//! Poseidon over BN254's scalar field, bit-for-bit compatible with circomlib's `Poseidon(n)`
//! template and circomlibjs' `poseidon` (same round constants, same MDS matrices, same
//! construction): width `t = n + 1`, state `[0, inputs...]`, 8 full rounds split 4/4 around
//! `N_ROUNDS_P[t - 2]` partial rounds, S-box `x^5`, output `state[0]`.
//!
//! The constants are exported from circomlibjs by `tools/circomlib-vectors/gen.mjs` into
//! [`constants`]; `tests/it/circomlib_vectors.rs` checks hashes for every supported width against
//! circomlibjs output.

mod constants;
pub mod gadget;

use ark_bn254::Fr;
use ark_ff::{Field, PrimeField, Zero};
use std::sync::LazyLock;

/// The widest hash supported: 7 inputs (width 8), used by the period statement.
pub const MAX_INPUTS: usize = constants::N_ROUNDS_P.len();

/// Parameters of one width, parsed once from the generated constants.
#[derive(Debug)]
pub struct Params {
    /// State width `t` (inputs + 1).
    pub width: usize,
    /// Partial rounds for this width.
    pub rounds_p: usize,
    /// Round constants, `(N_ROUNDS_F + rounds_p) * width` of them, round-major.
    pub round_constants: Vec<Fr>,
    /// MDS matrix, row-major.
    pub mds: Vec<Vec<Fr>>,
}

/// Number of full rounds (4 before and 4 after the partial rounds).
pub const N_ROUNDS_F: usize = constants::N_ROUNDS_F;

fn parse_hex(s: &str) -> Fr {
    // The generated file holds 64 hex digits per constant; anything else is a build defect that
    // the vector tests would expose, so a malformed constant is a programming error.
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("generated constant is hex"))
        .collect();
    Fr::from_be_bytes_mod_order(&bytes)
}

static PARAMS: LazyLock<Vec<Params>> = LazyLock::new(|| {
    (0..MAX_INPUTS)
        .map(|i| Params {
            width: i + 2,
            rounds_p: constants::N_ROUNDS_P[i],
            round_constants: constants::C[i].iter().map(|c| parse_hex(c)).collect(),
            mds: constants::M[i]
                .iter()
                .map(|row| row.iter().map(|c| parse_hex(c)).collect())
                .collect(),
        })
        .collect()
});

/// Parameters for hashing `n_inputs` field elements (width `n_inputs + 1`).
///
/// # Panics
/// If `n_inputs` is 0 or above [`MAX_INPUTS`]; every caller in Veilwatt hashes a fixed arity,
/// so this is a programming error, checked at compile time by [`hash`].
pub fn params(n_inputs: usize) -> &'static Params {
    assert!(
        (1..=MAX_INPUTS).contains(&n_inputs),
        "unsupported Poseidon arity {n_inputs}"
    );
    &PARAMS[n_inputs - 1]
}

/// Whether round `r` is a full round (S-box on every state element).
pub(crate) fn is_full_round(r: usize, rounds_p: usize) -> bool {
    r < N_ROUNDS_F / 2 || r >= N_ROUNDS_F / 2 + rounds_p
}

/// circomlib-compatible Poseidon hash of `N` field elements (1 <= N <= 7).
pub fn hash<const N: usize>(inputs: &[Fr; N]) -> Fr {
    const { assert!(N >= 1 && N <= MAX_INPUTS, "Poseidon arity must be 1..=7") };
    let p = params(N);
    let t = p.width;
    let mut state = Vec::with_capacity(t);
    state.push(Fr::zero());
    state.extend_from_slice(inputs);
    let mut next = vec![Fr::zero(); t];
    for r in 0..N_ROUNDS_F + p.rounds_p {
        for (s, c) in state.iter_mut().zip(&p.round_constants[r * t..(r + 1) * t]) {
            *s += c;
        }
        if is_full_round(r, p.rounds_p) {
            state.iter_mut().for_each(|s| *s = pow5(*s));
        } else {
            state[0] = pow5(state[0]);
        }
        for (n, row) in next.iter_mut().zip(&p.mds) {
            *n = row.iter().zip(&state).map(|(m, s)| *m * s).sum();
        }
        std::mem::swap(&mut state, &mut next);
    }
    state[0]
}

fn pow5(x: Fr) -> Fr {
    let x2 = x.square();
    x2.square() * x
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn known_circomlib_value() {
        // Poseidon([1, 2]) from circomlib's test suite.
        let expected = Fr::from_str(
            "7853200120776062878684798364095072458815029376092732009249414926327459813530",
        )
        .unwrap();
        assert_eq!(hash(&[Fr::from(1u64), Fr::from(2u64)]), expected);
    }

    #[test]
    fn constants_are_canonical_and_complete() {
        for n in 1..=MAX_INPUTS {
            let p = params(n);
            assert_eq!(p.round_constants.len(), (N_ROUNDS_F + p.rounds_p) * p.width);
            assert_eq!(p.mds.len(), p.width);
            assert!(p.mds.iter().all(|row| row.len() == p.width));
        }
        // Every constant is below the modulus (parse_hex would silently reduce otherwise).
        for (i, cs) in constants::C.iter().enumerate() {
            for c in cs.iter() {
                let round_trip = format!("{:064x}", BigHex(parse_hex(c)));
                assert_eq!(&round_trip, c, "width {} constant not canonical", i + 2);
            }
        }
    }

    struct BigHex(Fr);
    impl std::fmt::LowerHex for BigHex {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let limbs = self.0.into_bigint().0;
            let s: String = limbs.iter().rev().map(|l| format!("{l:016x}")).collect();
            f.pad_integral(true, "", &s)
        }
    }
}
