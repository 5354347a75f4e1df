//! BGM17 phase 2 over snarkjs' `.zkey`: the initial key from a circuit and phase 1, a
//! contribution (secret or beacon), and verification of a whole transcript.
//!
//! A contribution with secret `x` multiplies `[delta]_1`, `[delta]_2` by `x` and the L and H
//! queries by `1/x`, and publishes a proof of knowledge of `x`: `([s]_1, [s x]_1, [x] H2(t))`,
//! where `t` is the BLAKE2b-512 transcript hash over the circuit hash, every earlier
//! contribution and `[s]_1, [s x]_1`, and `H2` is snarkjs' `hashToG2`. Everything here
//! reproduces snarkjs' definitions so that either tool can contribute to and check the other's
//! transcripts (`docs/spec/ceremony.md`).

use super::encoding::{g1_to_u, g2_to_u, zkey_coef_to_bytes};
use super::ptau::{self, Phase1Slice};
use super::r1cs::R1cs;
use super::rng::{beacon_rng, hash_to_g2};
use super::zkey::{clip_name, Contribution, ContributionKind, MpcParams, Zkey};
use super::CeremonyError;
use ark_bn254::{Bn254, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{pairing::Pairing, AffineRepr, CurveGroup, VariableBaseMSM};
use ark_ff::{Field, PrimeField, UniformRand, Zero};
use blake2::{Blake2b512, Digest};
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use zeroize::Zeroize;

/// BLAKE2b-512 output.
pub type Hash64 = [u8; 64];

fn hash_u32(h: &mut Blake2b512, n: usize) {
    h.update((n as u32).to_be_bytes());
}

fn hash_g1s(h: &mut Blake2b512, points: &[G1Affine]) {
    let mut buf = Vec::with_capacity(points.len() * 64);
    points.iter().for_each(|p| g1_to_u(p, &mut buf));
    h.update(&buf);
}

fn hash_g2s(h: &mut Blake2b512, points: &[G2Affine]) {
    let mut buf = Vec::with_capacity(points.len() * 128);
    points.iter().for_each(|p| g2_to_u(p, &mut buf));
    h.update(&buf);
}

/// snarkjs' `hashPubKey`: what each contribution adds to later transcripts.
fn hash_pub_key(h: &mut Blake2b512, c: &Contribution) {
    hash_g1s(h, &[c.delta_after, c.g1_s, c.g1_sx]);
    hash_g2s(h, &[c.g2_spx]);
    h.update(c.transcript);
}

/// The hash a contributor publishes: BLAKE2b-512 of its public key and transcript hash.
pub fn contribution_hash(c: &Contribution) -> Hash64 {
    let mut h = Blake2b512::new();
    hash_pub_key(&mut h, c);
    h.finalize().into()
}

/// `e(a1, b2) == e(b1, a2)`, i.e. `b1 / a1 == b2 / a2` in the exponent; false if any is zero.
pub fn same_ratio(a1: &G1Affine, b1: &G1Affine, a2: &G2Affine, b2: &G2Affine) -> bool {
    if a1.is_zero() || b1.is_zero() || a2.is_zero() || b2.is_zero() {
        return false;
    }
    Bn254::multi_pairing([*a1, -*b1], [*b2, *a2]).is_zero()
}

/// `c * base`, cheaply when `c` or `-c` fits in 64 bits (most R1CS coefficients: 1, -1,
/// powers of two).
fn mul_coef<G: CurveGroup<ScalarField = Fr>>(base: &G::Affine, c: &Fr) -> G {
    let small = |x: &Fr| {
        let b = x.into_bigint();
        (b.0[1..].iter().all(|l| *l == 0)).then_some(b.0[0])
    };
    if let Some(k) = small(c) {
        base.mul_bigint([k])
    } else if let Some(k) = small(&-*c) {
        -base.mul_bigint([k])
    } else {
        *base * c
    }
}

/// Per wire, the `(row, coefficient)` terms of one matrix.
type WireTerms = [Vec<(usize, Fr)>];

/// Wires with at least this many terms go through a (parallel) Pippenger MSM; the rest are
/// summed term by term inside a parallel loop over wires.
const MSM_TERMS: usize = 64;

/// `sum coef * bases[row]` over one wire's terms.
fn combine_terms<G: CurveGroup<ScalarField = Fr>>(bases: &[G::Affine], terms: &[(usize, Fr)]) -> G {
    if terms.len() >= MSM_TERMS {
        let b: Vec<G::Affine> = terms.iter().map(|(row, _)| bases[*row]).collect();
        let s: Vec<Fr> = terms.iter().map(|(_, c)| *c).collect();
        return G::msm_unchecked(&b, &s);
    }
    terms.iter().fold(G::zero(), |acc, (row, c)| {
        acc + mul_coef::<G>(&bases[*row], c)
    })
}

/// For every wire, `sum coef * bases[row]` over each `(bases, terms)` pair. Large wires use
/// Pippenger one at a time (it parallelizes inside); small ones run in parallel across wires,
/// sequentially each, since nesting arkworks' parallel MSM in a parallel loop exhausts rayon
/// stacks.
fn per_wire<G: CurveGroup<ScalarField = Fr>>(
    parts: &[(&[G::Affine], &WireTerms)],
) -> Vec<G::Affine> {
    let nv = parts[0].1.len();
    let big = |w: usize| parts.iter().any(|(_, t)| t[w].len() >= MSM_TERMS);
    let mut out: Vec<G> = (0..nv)
        .into_par_iter()
        .map(|w| {
            if big(w) {
                return G::zero();
            }
            parts
                .iter()
                .fold(G::zero(), |acc, (b, t)| acc + combine_terms::<G>(b, &t[w]))
        })
        .collect();
    for (w, o) in out.iter_mut().enumerate() {
        if big(w) {
            *o = parts
                .iter()
                .fold(G::zero(), |acc, (b, t)| acc + combine_terms::<G>(b, &t[w]));
        }
    }
    G::normalize_batch(&out)
}

/// The initial key (delta = 1, no contributions) of `r1cs` over `phase1`, byte for byte what
/// `snarkjs zkey new` writes.
pub fn new_zkey(r1cs: &R1cs, p1: &Phase1Slice) -> Result<Zkey, CeremonyError> {
    let n = 1usize << r1cs.domain_power();
    if p1.tau_g1.len() != n {
        return Err(CeremonyError::Malformed(format!(
            "phase-1 slice is for a domain of {}, the circuit needs {n}",
            p1.tau_g1.len()
        )));
    }
    let nv = r1cs.n_wires as usize;
    let np = r1cs.n_public as usize;
    let nc = r1cs.constraints.len();
    // Per wire: (row, coefficient) terms of A, B and C.
    let mut a_terms = vec![Vec::new(); nv];
    let mut b_terms = vec![Vec::new(); nv];
    let mut c_terms = vec![Vec::new(); nv];
    let mut coefs = Vec::new();
    let mut n_coefs = 0u32;
    let mut push_coef = |m: u32, row: usize, w: u32, v: &Fr, out: &mut Vec<u8>| {
        out.extend_from_slice(&m.to_le_bytes());
        out.extend_from_slice(&(row as u32).to_le_bytes());
        out.extend_from_slice(&w.to_le_bytes());
        zkey_coef_to_bytes(v, out);
        n_coefs += 1;
    };
    let mut body = Vec::new();
    for (row, [a, b, c]) in r1cs.constraints.iter().enumerate() {
        for (w, v) in a {
            a_terms[*w as usize].push((row, *v));
            push_coef(0, row, *w, v, &mut body);
        }
        for (w, v) in b {
            b_terms[*w as usize].push((row, *v));
            push_coef(1, row, *w, v, &mut body);
        }
        for (w, v) in c {
            c_terms[*w as usize].push((row, *v));
        }
    }
    // One extra A row per public wire (and the one) keeps their polynomials independent.
    for (s, terms) in a_terms.iter_mut().enumerate().take(np + 1) {
        terms.push((nc + s, Fr::from(1u64)));
        push_coef(0, nc + s, s as u32, &Fr::from(1u64), &mut body);
    }
    coefs.extend_from_slice(&n_coefs.to_le_bytes());
    coefs.extend_from_slice(&body);

    let a = per_wire::<G1Projective>(&[(&p1.tau_g1, &a_terms)]);
    let b1 = per_wire::<G1Projective>(&[(&p1.tau_g1, &b_terms)]);
    let b2 = per_wire::<G2Projective>(&[(&p1.tau_g2, &b_terms)]);
    // beta A(tau) + alpha B(tau) + C(tau) per wire: IC for public wires, L for the others.
    let abc = per_wire::<G1Projective>(&[
        (&p1.beta_tau_g1, &a_terms),
        (&p1.alpha_tau_g1, &b_terms),
        (&p1.tau_g1, &c_terms),
    ]);
    let ic = abc[..=np].to_vec();
    let l = abc[np + 1..].to_vec();
    let h = p1.h_lagrange.clone();

    let g1 = G1Affine::generator();
    let g2 = G2Affine::generator();
    let mut hs = Blake2b512::new();
    hash_g1s(&mut hs, &[p1.alpha1, p1.beta1]);
    hash_g2s(&mut hs, &[p1.beta2, g2]);
    hash_g1s(&mut hs, &[g1]);
    hash_g2s(&mut hs, &[g2]);
    hash_u32(&mut hs, ic.len());
    hash_g1s(&mut hs, &ic);
    // H is hashed in monomial form: [tau^(i+n) - tau^i]_1 for i < n - 1, and one more point
    // above 2^14 rows, as snarkjs does (`ptau::hashed_h_points`).
    let hashed = ptau::hashed_h_points(n as u64) as usize;
    let h_mono: Vec<G1Projective> = (0..hashed)
        .into_par_iter()
        .map(|i| p1.tau_monomial[i + n].into_group() - p1.tau_monomial[i])
        .collect();
    hash_u32(&mut hs, n - 1);
    hash_g1s(&mut hs, &G1Projective::normalize_batch(&h_mono));
    hash_u32(&mut hs, l.len());
    hash_g1s(&mut hs, &l);
    hash_u32(&mut hs, a.len());
    hash_g1s(&mut hs, &a);
    hash_u32(&mut hs, b1.len());
    hash_g1s(&mut hs, &b1);
    hash_u32(&mut hs, b2.len());
    hash_g2s(&mut hs, &b2);

    Ok(Zkey {
        n_vars: r1cs.n_wires,
        n_public: r1cs.n_public,
        domain_size: n as u32,
        alpha1: p1.alpha1,
        beta1: p1.beta1,
        beta2: p1.beta2,
        gamma2: g2,
        delta1: g1,
        delta2: g2,
        ic,
        coefs,
        a,
        b1,
        b2,
        l,
        h,
        mpc: MpcParams {
            cs_hash: hs.finalize().into(),
            contributions: Vec::new(),
        },
    })
}

fn scale_all(points: &[G1Affine], k: Fr) -> Vec<G1Affine> {
    let scaled: Vec<G1Projective> = points.par_iter().map(|p| *p * k).collect();
    G1Projective::normalize_batch(&scaled)
}

/// Applies a contribution with secret `x` and proof-of-knowledge base `g1_s` to `z`.
fn apply(
    z: &Zkey,
    x: Fr,
    g1_s: G1Affine,
    kind: ContributionKind,
    name: Option<&str>,
) -> Result<(Zkey, Hash64), CeremonyError> {
    let inv = x
        .inverse()
        .ok_or_else(|| CeremonyError::Malformed("contribution secret is zero".into()))?;
    let mut t = Blake2b512::new();
    t.update(z.mpc.cs_hash);
    z.mpc
        .contributions
        .iter()
        .for_each(|c| hash_pub_key(&mut t, c));
    let g1_sx: G1Affine = (g1_s * x).into_affine();
    hash_g1s(&mut t, &[g1_s, g1_sx]);
    let transcript: Hash64 = t.finalize().into();
    let g2_spx = (hash_to_g2(&transcript) * x).into_affine();
    let delta1 = (z.delta1 * x).into_affine();
    let delta2 = (z.delta2 * x).into_affine();
    let c = Contribution {
        delta_after: delta1,
        g1_s,
        g1_sx,
        g2_spx,
        transcript,
        kind,
        name: name.map(clip_name),
    };
    let hash = contribution_hash(&c);
    let mut out = z.clone();
    out.delta1 = delta1;
    out.delta2 = delta2;
    out.l = scale_all(&z.l, inv);
    out.h = scale_all(&z.h, inv);
    out.mpc.contributions.push(c);
    Ok((out, hash))
}

/// A contribution with a fresh secret from `rng`. The secret lives only in this call.
pub fn contribute<R: RngCore + CryptoRng>(
    z: &Zkey,
    name: Option<&str>,
    rng: &mut R,
) -> Result<(Zkey, Hash64), CeremonyError> {
    let mut x = Fr::zero();
    while x.is_zero() {
        x = Fr::rand(rng);
    }
    let mut g1_s = G1Affine::zero();
    while g1_s.is_zero() {
        g1_s = G1Projective::rand(rng).into_affine();
    }
    let out = apply(z, x, g1_s, ContributionKind::Secret, name);
    // Overwrite the secret before returning (best effort: copies made by arithmetic are
    // temporaries on the stack).
    x.zeroize();
    out
}

/// Bounds snarkjs puts on the beacon's iteration exponent.
pub const BEACON_ITERATIONS_EXP: std::ops::RangeInclusive<u8> = 10..=63;

/// The public random beacon's contribution: the secret follows from the beacon value.
pub fn beacon(
    z: &Zkey,
    beacon_hash: &[u8],
    iterations_exp: u8,
    name: Option<&str>,
) -> Result<(Zkey, Hash64), CeremonyError> {
    if beacon_hash.is_empty() || beacon_hash.len() > 255 {
        return Err(CeremonyError::Beacon(
            "the beacon must be 1 to 255 bytes".into(),
        ));
    }
    if !BEACON_ITERATIONS_EXP.contains(&iterations_exp) {
        return Err(CeremonyError::Beacon(format!(
            "iterations exponent {iterations_exp} is outside 10..=63"
        )));
    }
    let mut rng = beacon_rng(beacon_hash, iterations_exp);
    let x = rng.fr();
    let g1_s = rng.g1();
    apply(
        z,
        x,
        g1_s,
        ContributionKind::Beacon {
            hash: beacon_hash.to_vec(),
            iterations_exp,
        },
        name,
    )
}

/// One verified contribution, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedContribution {
    /// 1-based position in the chain.
    pub index: usize,
    /// The contributor's name, if given.
    pub name: Option<String>,
    /// The hash the contributor published.
    pub hash: Hash64,
    /// Secret or beacon.
    pub kind: ContributionKind,
}

fn label(i: usize, c: &Contribution) -> String {
    match &c.name {
        Some(n) => format!("contribution #{} ({n})", i + 1),
        None => format!("contribution #{}", i + 1),
    }
}

/// Random 128-bit combination of the pairs `(before_i, after_i)`, for a same-ratio check of
/// whole queries in one pairing.
fn combine(before: &[G1Affine], after: &[G1Affine]) -> (G1Affine, G1Affine) {
    let mut rng = rand_core::OsRng;
    let r: Vec<Fr> = (0..before.len())
        .map(|_| {
            let mut b = [0u8; 16];
            rng.fill_bytes(&mut b);
            Fr::from(u128::from_le_bytes(b))
        })
        .collect();
    (
        G1Projective::msm_unchecked(before, &r).into_affine(),
        G1Projective::msm_unchecked(after, &r).into_affine(),
    )
}

/// Checks `z` against the initial key `init` recomputed from the circuit and phase 1: every
/// contribution's transcript hash, proof of knowledge and delta update (and a beacon's key
/// from its beacon), the header against the chain, every query phase 2 must not touch
/// byte-identical, and the L and H queries scaled by exactly the final delta.
pub fn verify(z: &Zkey, init: &Zkey) -> Result<Vec<VerifiedContribution>, CeremonyError> {
    let fail = |m: String| Err(CeremonyError::Verify(m));
    if z.mpc.cs_hash != init.mpc.cs_hash
        || (z.n_vars, z.n_public, z.domain_size) != (init.n_vars, init.n_public, init.domain_size)
    {
        return fail(
            "the key is for another circuit or another phase 1 (circuit hash differs)".into(),
        );
    }
    let mut acc = Blake2b512::new();
    acc.update(z.mpc.cs_hash);
    let mut delta = G1Affine::generator();
    let mut report = Vec::new();
    for (i, c) in z.mpc.contributions.iter().enumerate() {
        let who = label(i, c);
        let mut t = acc.clone();
        hash_g1s(&mut t, &[c.g1_s, c.g1_sx]);
        let transcript: Hash64 = t.finalize().into();
        if transcript != c.transcript {
            return fail(format!(
                "{who}: its proof of knowledge is bound to another transcript"
            ));
        }
        let g2_sp = hash_to_g2(&c.transcript);
        if !same_ratio(&c.g1_s, &c.g1_sx, &g2_sp, &c.g2_spx) {
            return fail(format!("{who}: its proof of knowledge does not verify"));
        }
        if !same_ratio(&delta, &c.delta_after, &g2_sp, &c.g2_spx) {
            return fail(format!(
                "{who}: its delta does not follow from the previous one by its proven secret"
            ));
        }
        if let ContributionKind::Beacon {
            hash,
            iterations_exp,
        } = &c.kind
        {
            if !BEACON_ITERATIONS_EXP.contains(iterations_exp) {
                return fail(format!("{who}: beacon iterations exponent out of range"));
            }
            let mut rng = beacon_rng(hash, *iterations_exp);
            let x = rng.fr();
            let g1_s = rng.g1();
            if g1_s != c.g1_s || (g1_s * x).into_affine() != c.g1_sx {
                return fail(format!("{who}: the key does not follow from the beacon"));
            }
        }
        hash_pub_key(&mut acc, c);
        report.push(VerifiedContribution {
            index: i + 1,
            name: c.name.clone(),
            hash: contribution_hash(c),
            kind: c.kind.clone(),
        });
        delta = c.delta_after;
    }
    let last = z
        .mpc
        .contributions
        .last()
        .map(|c| label(z.mpc.contributions.len() - 1, c))
        .unwrap_or_else(|| "the initial key".into());
    if (z.alpha1, z.beta1, z.beta2, z.gamma2) != (init.alpha1, init.beta1, init.beta2, init.gamma2)
    {
        return fail("alpha, beta or gamma differ from phase 1".into());
    }
    if z.delta1 != delta {
        return fail(format!("[delta]_1 is not the delta after {last}"));
    }
    if !same_ratio(
        &G1Affine::generator(),
        &z.delta1,
        &G2Affine::generator(),
        &z.delta2,
    ) {
        return fail(format!("[delta]_2 does not match [delta]_1 after {last}"));
    }
    for (name, same) in [
        ("IC", z.ic == init.ic),
        ("coefficient", z.coefs == init.coefs),
        ("A", z.a == init.a),
        ("B1", z.b1 == init.b1),
        ("B2", z.b2 == init.b2),
    ] {
        if !same {
            return fail(format!(
                "the {name} section differs from the one the circuit and phase 1 give"
            ));
        }
    }
    if z.l.len() != init.l.len() || z.h.len() != init.h.len() {
        return fail("L or H has the wrong number of points".into());
    }
    let g2 = G2Affine::generator();
    for (name, before, after) in [("L", &init.l, &z.l), ("H", &init.h, &z.h)] {
        if before.is_empty() {
            continue;
        }
        let (b, a) = combine(before, after);
        // after = before / delta  <=>  e(after, delta) == e(before, 1).
        if !same_ratio(&a, &b, &g2, &z.delta2) {
            return fail(format!(
                "the {name} query is not the initial one divided by the delta after {last} \
                 (a contribution changed delta without rescaling {name}, or {name} was altered)"
            ));
        }
    }
    Ok(report)
}
