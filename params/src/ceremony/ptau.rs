//! Phase 1: snarkjs / Perpetual Powers of Tau `.ptau` files.
//!
//! Sections (points in LEM form, see [`super::encoding`]): 1 header (`n8`, `q`, `power`,
//! `ceremonyPower`); 2 `[tau^i]_1` for `i < 2^(power+1) - 1`; 3 `[tau^i]_2`, 4 `[alpha tau^i]_1`,
//! 5 `[beta tau^i]_1` for `i < 2^power`; 6 `[beta]_2`; 7 the phase-1 contributions; and, in a
//! file prepared for phase 2 (`snarkjs powersoftau prepare phase2`), 12-15: the same four
//! series in Lagrange form for every domain `2^0 .. 2^power` (section 12 also `2^(power+1)`),
//! concatenated, so domain `2^k` starts at point `2^k - 1`.
//!
//! [`Phase1File`] reads only the ranges a circuit needs (a public file can be gigabytes);
//! [`write_insecure`] writes a prepared file from known secrets, for development keys and tests.

use super::binfile::{self, BinFile, Cursor};
use super::encoding::{
    g1_from_lem, g1s_from_lem, g1s_to_lem, g2_from_lem, g2s_from_lem, g2s_to_lem, modulus_le,
    G1_BYTES, G2_BYTES,
};
use super::CeremonyError;
use ark_bn254::{Fq, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::scalar_mul::ScalarMul;
use ark_ec::PrimeGroup;
use ark_ff::{One, Zero};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use blake2::{Blake2b512, Digest};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// Largest phase-1 power we handle: BN254's scalar field has 2^28-th roots of unity, and the
/// H query needs the domain twice the circuit's.
pub const MAX_POWER: u32 = 27;

/// What a circuit of domain `2^k` needs from phase 1.
#[derive(Clone, Debug)]
pub struct Phase1Slice {
    /// `[alpha]_1`.
    pub alpha1: G1Affine,
    /// `[beta]_1`.
    pub beta1: G1Affine,
    /// `[beta]_2`.
    pub beta2: G2Affine,
    /// `[L_i(tau)]_1` over the domain of size `2^k`.
    pub tau_g1: Vec<G1Affine>,
    /// `[L_i(tau)]_2`.
    pub tau_g2: Vec<G2Affine>,
    /// `[alpha L_i(tau)]_1`.
    pub alpha_tau_g1: Vec<G1Affine>,
    /// `[beta L_i(tau)]_1`.
    pub beta_tau_g1: Vec<G1Affine>,
    /// The H query of snarkjs: odd-indexed Lagrange points of the domain of size `2^(k+1)`.
    pub h_lagrange: Vec<G1Affine>,
    /// `[tau^i]_1` for `i < n + hashed_h_points(n)` (snarkjs hashes H in this monomial form).
    pub tau_monomial: Vec<G1Affine>,
    /// BLAKE2b-512 over the power and every byte this slice was read from: two slices with
    /// one digest hold the same points.
    pub digest: [u8; 64],
}

/// snarkjs (0.7) hashes the H query into the circuit hash in chunks of this many points.
pub const SNARKJS_H_CHUNK: u64 = 1 << 14;

/// How many H points snarkjs hashes into the circuit hash of a domain of `n` rows: the `n - 1`
/// points of the query, except that above one chunk its loop hashes whole chunks
/// (`zkey_new.js`, `hashHPoints`: every chunk is `min(n - 1, 2^14)` points long), i.e. `n`
/// points, the last one `[tau^(2n-1)] - [tau^(n-1)]`. A key is only interoperable if its
/// circuit hash is snarkjs', so we hash the same points.
pub fn hashed_h_points(n: u64) -> u64 {
    if n - 1 <= SNARKJS_H_CHUNK {
        n - 1
    } else {
        (n - 1).div_ceil(SNARKJS_H_CHUNK) * SNARKJS_H_CHUNK
    }
}

/// The smallest phase-1 power that serves a circuit of `2^k` rows: `k`, or `k + 1` above
/// `2^14` rows, where the circuit hash needs `[tau^(2^(k+1) - 1)]` ([`hashed_h_points`]), one
/// point beyond a power-`k` file (snarkjs would read the next section's bytes as a point
/// there).
pub fn phase1_power_for(k: u32) -> u32 {
    let n = 1u64 << k;
    if hashed_h_points(n) > n - 1 {
        k + 1
    } else {
        k
    }
}

/// An opened `.ptau` file (on disk, or in memory for development keys).
pub struct Phase1File<R> {
    file: BinFile<R>,
    /// The file's power: it serves circuits of up to `2^power` rows.
    pub power: u32,
    what: String,
}

impl Phase1File<BufReader<File>> {
    /// Opens the file at `path` (see [`Phase1File::new`]).
    pub fn open(path: &Path) -> Result<Self, CeremonyError> {
        let f = File::open(path).map_err(|source| CeremonyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::new(BufReader::new(f), &path.display().to_string())
    }
}

impl Phase1File<std::io::Cursor<Vec<u8>>> {
    /// Reads a phase-1 file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, CeremonyError> {
        Self::new(std::io::Cursor::new(bytes), "phase 1 (in memory)")
    }
}

impl<R: Read + Seek> Phase1File<R> {
    /// Checks the header, that every section has the size its power implies, and that the
    /// file is prepared for phase 2.
    pub fn new(source: R, what: &str) -> Result<Self, CeremonyError> {
        let what = what.to_owned();
        let mut file = BinFile::open(source, b"ptau", 1, &what)?;
        let header = file.section(1)?;
        let mut h = Cursor::new(&header, &what);
        if h.u32()? != 32 || h.take(32)? != modulus_le::<Fq>().as_slice() {
            return Err(CeremonyError::Malformed(format!(
                "{what}: not a Powers of Tau file over BN254"
            )));
        }
        let power = h.u32()?;
        let _ceremony_power = h.u32()?;
        if power == 0 || power > MAX_POWER {
            return Err(CeremonyError::Malformed(format!(
                "{what}: power {power} is outside 1..={MAX_POWER}"
            )));
        }
        let n = 1u64 << power;
        let g1 = G1_BYTES as u64;
        let g2 = G2_BYTES as u64;
        let expect = [
            (2, (2 * n - 1) * g1),
            (3, n * g2),
            (4, n * g1),
            (5, n * g1),
            (6, g2),
        ];
        for (ty, size) in expect {
            let actual = file.size(ty)?;
            if actual != size {
                return Err(CeremonyError::Malformed(format!(
                    "{what}: section {ty} has {actual} bytes, a power-{power} file has {size} \
                     (truncated or inconsistent)"
                )));
            }
        }
        if !(12..=15).all(|s| file.has(s)) {
            return Err(CeremonyError::Malformed(format!(
                "{what}: not prepared for phase 2 (no Lagrange sections 12-15); run \
                 `snarkjs powersoftau prepare phase2` on it first"
            )));
        }
        let prepared = [
            (12, (4 * n - 1) * g1),
            (13, (2 * n - 1) * g2),
            (14, (2 * n - 1) * g1),
            (15, (2 * n - 1) * g1),
        ];
        for (ty, size) in prepared {
            let actual = file.size(ty)?;
            if actual != size {
                return Err(CeremonyError::Malformed(format!(
                    "{what}: section {ty} has {actual} bytes, a prepared power-{power} file has \
                     {size} (truncated or inconsistent)"
                )));
            }
        }
        Ok(Self { file, power, what })
    }

    /// Reads what a circuit with a domain of `2^k` rows needs.
    pub fn slice(&mut self, k: u32) -> Result<Phase1Slice, CeremonyError> {
        let needed = phase1_power_for(k);
        if needed > self.power {
            return Err(CeremonyError::Phase1TooSmall {
                needed,
                power: self.power,
            });
        }
        let n = 1u64 << k;
        let g1 = G1_BYTES as u64;
        let g2 = G2_BYTES as u64;
        let what = self.what.clone();
        let mut digest = Blake2b512::new();
        digest.update(k.to_le_bytes());
        let mut read = |ty: u32, offset: u64, len: u64| -> Result<Vec<u8>, CeremonyError> {
            let bytes = self.file.read(ty, offset, len)?;
            digest.update(ty.to_le_bytes());
            digest.update(offset.to_le_bytes());
            digest.update(&bytes);
            Ok(bytes)
        };
        let alpha1 = g1_from_lem(&read(4, 0, g1)?, &what)?;
        let beta1 = g1_from_lem(&read(5, 0, g1)?, &what)?;
        let beta2 = g2_from_lem(&read(6, 0, g2)?, &what, true)?;
        let tau_g1 = g1s_from_lem(&read(12, (n - 1) * g1, n * g1)?, &what)?;
        // Phase-1 G2 points only enter the B query, never a pairing check, and the file is
        // trusted by its published hash: on-curve only (the subgroup check is costly).
        let tau_g2 = g2s_from_lem(&read(13, (n - 1) * g2, n * g2)?, &what, false)?;
        let alpha_tau_g1 = g1s_from_lem(&read(14, (n - 1) * g1, n * g1)?, &what)?;
        let beta_tau_g1 = g1s_from_lem(&read(15, (n - 1) * g1, n * g1)?, &what)?;
        let double = read(12, (2 * n - 1) * g1, 2 * n * g1)?;
        let odd: Vec<u8> = double
            .chunks(G1_BYTES)
            .skip(1)
            .step_by(2)
            .flatten()
            .copied()
            .collect();
        let h_lagrange = g1s_from_lem(&odd, &what)?;
        let monomials = n + hashed_h_points(n);
        let tau_monomial = g1s_from_lem(&read(2, 0, monomials * g1)?, &what)?;
        Ok(Phase1Slice {
            alpha1,
            beta1,
            beta2,
            tau_g1,
            tau_g2,
            alpha_tau_g1,
            beta_tau_g1,
            h_lagrange,
            tau_monomial,
            digest: digest.finalize().into(),
        })
    }
}

/// BLAKE2b-512 of a whole file, streamed (phase-1 files can be large).
pub fn file_hash(path: &Path) -> Result<[u8; 64], CeremonyError> {
    let io = |source| CeremonyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = BufReader::new(File::open(path).map_err(io)?);
    let mut h = Blake2b512::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// The secrets of a phase 1. Whoever knows them can forge proofs for every circuit built on it:
/// only for development keys and tests.
#[derive(Clone, Copy, Debug)]
pub struct InsecurePhase1Secrets {
    /// tau.
    pub tau: Fr,
    /// alpha.
    pub alpha: Fr,
    /// beta.
    pub beta: Fr,
}

/// Lagrange coefficients over the domain of size `len` as ffjavascript's `lagrangeEvaluations`
/// computes them: the inverse FFT of `powers` (which may have a zeroed tail).
fn lagrange(powers: &[Fr]) -> Vec<Fr> {
    let domain = Radix2EvaluationDomain::<Fr>::new(powers.len())
        .filter(|d| d.size() == powers.len())
        .unwrap_or_else(|| unreachable!("power-of-two size within the two-adicity"));
    let mut v = powers.to_vec();
    domain.ifft_in_place(&mut v);
    v
}

/// A prepared `.ptau` file of `power` for known secrets (byte for byte what snarkjs'
/// `powersoftau prepare phase2` would write for a ceremony that ended in these secrets, with no
/// recorded contributions).
pub fn write_insecure(power: u32, s: &InsecurePhase1Secrets) -> Result<Vec<u8>, CeremonyError> {
    if power == 0 || power > MAX_POWER {
        return Err(CeremonyError::Malformed(format!(
            "phase-1 power {power} is outside 1..={MAX_POWER}"
        )));
    }
    let n = 1usize << power;
    let mut powers = Vec::with_capacity(2 * n);
    let mut acc = Fr::one();
    for _ in 0..2 * n {
        powers.push(acc);
        acc *= s.tau;
    }
    let g1 = G1Projective::generator();
    let g2 = G2Projective::generator();
    let scaled = |k: Fr, v: &[Fr]| -> Vec<Fr> { v.iter().map(|x| k * x).collect() };

    let tau_g1 = g1.batch_mul(&powers[..2 * n - 1]);
    let tau_g2 = g2.batch_mul(&powers[..n]);
    let alpha_tau = g1.batch_mul(&scaled(s.alpha, &powers[..n]));
    let beta_tau = g1.batch_mul(&scaled(s.beta, &powers[..n]));
    let beta_g2 = (g2 * s.beta).into();

    // Lagrange sections: every domain 2^0..=2^power; section 12 also 2^(power+1), from the
    // 2^(power+1) - 1 monomials with the missing last one taken as zero (as snarkjs does).
    let (mut l12, mut l13, mut l14, mut l15) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in 0..=power + 1 {
        let m = 1usize << p;
        let mut pw = powers[..m].to_vec();
        if p == power + 1 {
            pw[m - 1] = Fr::zero();
        }
        let lag = lagrange(&pw);
        l12.extend(g1.batch_mul(&lag));
        if p <= power {
            l13.extend(g2.batch_mul(&lag));
            l14.extend(g1.batch_mul(&scaled(s.alpha, &lag)));
            l15.extend(g1.batch_mul(&scaled(s.beta, &lag)));
        }
    }

    let mut header = Vec::new();
    header.extend_from_slice(&32u32.to_le_bytes());
    header.extend_from_slice(&modulus_le::<Fq>());
    header.extend_from_slice(&power.to_le_bytes());
    header.extend_from_slice(&power.to_le_bytes());
    let s2 = g1s_to_lem(&tau_g1);
    let s3 = g2s_to_lem(&tau_g2);
    let s4 = g1s_to_lem(&alpha_tau);
    let s5 = g1s_to_lem(&beta_tau);
    let s6 = g2s_to_lem(&[beta_g2]);
    let s7 = 0u32.to_le_bytes();
    let (s12, s13, s14, s15) = (
        g1s_to_lem(&l12),
        g2s_to_lem(&l13),
        g1s_to_lem(&l14),
        g1s_to_lem(&l15),
    );
    Ok(binfile::write(
        b"ptau",
        1,
        &[
            (1, &header),
            (2, &s2),
            (3, &s3),
            (4, &s4),
            (5, &s5),
            (6, &s6),
            (7, &s7),
            (12, &s12),
            (13, &s13),
            (14, &s14),
            (15, &s15),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// snarkjs' H hashing (`hashHPoints`): one chunk of `min(n - 1, 2^14)` points per started
    /// chunk of the `n - 1`.
    #[test]
    fn h_points_hashed_follow_the_snarkjs_chunk_loop() {
        let snarkjs = |n: u64| {
            let mut hashed = 0;
            let mut i = 0;
            while i < n - 1 {
                hashed += (n - 1).min(SNARKJS_H_CHUNK);
                i += SNARKJS_H_CHUNK;
            }
            hashed
        };
        for k in 1..=20 {
            assert_eq!(hashed_h_points(1 << k), snarkjs(1 << k), "2^{k} rows");
        }
        assert_eq!(hashed_h_points(1 << 13), (1 << 13) - 1);
        assert_eq!(hashed_h_points(1 << 14), (1 << 14) - 1);
        assert_eq!(hashed_h_points(1 << 15), 1 << 15);
        assert_eq!(
            (13..=17).map(phase1_power_for).collect::<Vec<_>>(),
            [13, 14, 16, 17, 18]
        );
    }
}
