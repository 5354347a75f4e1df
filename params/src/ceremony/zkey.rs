//! snarkjs' Groth16 `.zkey` (binary container "zkey", version 1): the proving key of one
//! circuit together with its phase-2 transcript.
//!
//! Sections: 1 protocol (1 = Groth16); 2 header (`n8q q n8r r nVars nPublic domainSize`,
//! `[alpha]_1 [beta]_1 [beta]_2 [gamma]_2 [delta]_1 [delta]_2`); 3 IC (`nPublic + 1` G1);
//! 4 the QAP coefficients of A and B (`count`, then `matrix constraint signal value`); 5 A,
//! 6 B in G1, 7 B in G2 (`nVars` points each); 8 L (the "C" section, one point per private
//! wire, divided by delta); 9 H (`domainSize` points, divided by delta); 10 the MPC
//! parameters: the circuit hash (BLAKE2b-512) and the contributions.

use super::binfile::{self, BinFile, Cursor};
use super::encoding::{
    g1_from_lem, g1_to_lem, g1s_from_lem, g1s_to_lem, g2_from_lem, g2_to_lem, g2s_from_lem,
    g2s_to_lem, modulus_le, G1_BYTES, G2_BYTES,
};
use super::CeremonyError;
use ark_bn254::{Fq, Fr, G1Affine, G2Affine};

/// What kind of contribution a transcript entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContributionKind {
    /// A participant's secret (type 0).
    Secret,
    /// The public random beacon (type 1): the key follows from SHA-256 iterated
    /// `2^iterations_exp` times on `hash`.
    Beacon {
        /// The beacon value.
        hash: Vec<u8>,
        /// log2 of the number of SHA-256 iterations.
        iterations_exp: u8,
    },
}

/// One phase-2 contribution as the transcript records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    /// `[delta]_1` after this contribution.
    pub delta_after: G1Affine,
    /// Proof of knowledge: a random `[s]_1` ...
    pub g1_s: G1Affine,
    /// ... `[s x]_1` ...
    pub g1_sx: G1Affine,
    /// ... and `x` times the G2 point hashed from the transcript.
    pub g2_spx: G2Affine,
    /// BLAKE2b-512 of the transcript up to this contribution and its `g1_s`, `g1_sx`.
    pub transcript: [u8; 64],
    /// Secret or beacon.
    pub kind: ContributionKind,
    /// The contributor's name (at most 64 bytes).
    pub name: Option<String>,
}

/// The MPC section: circuit hash and contributions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpcParams {
    /// BLAKE2b-512 over the key as phase 1 fixed it (delta = 1), in snarkjs' order.
    pub cs_hash: [u8; 64],
    /// Contributions, oldest first.
    pub contributions: Vec<Contribution>,
}

/// A parsed Groth16 `.zkey`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zkey {
    /// Wires, including the constant one.
    pub n_vars: u32,
    /// Public inputs (not counting the one).
    pub n_public: u32,
    /// QAP domain size.
    pub domain_size: u32,
    /// `[alpha]_1`.
    pub alpha1: G1Affine,
    /// `[beta]_1`.
    pub beta1: G1Affine,
    /// `[beta]_2`.
    pub beta2: G2Affine,
    /// `[gamma]_2` (the generator: snarkjs fixes gamma = 1).
    pub gamma2: G2Affine,
    /// `[delta]_1`.
    pub delta1: G1Affine,
    /// `[delta]_2`.
    pub delta2: G2Affine,
    /// Public-input query.
    pub ic: Vec<G1Affine>,
    /// Raw section 4 (kept byte for byte; compared, never interpreted by the prover).
    pub coefs: Vec<u8>,
    /// A query, per wire.
    pub a: Vec<G1Affine>,
    /// B query in G1, per wire.
    pub b1: Vec<G1Affine>,
    /// B query in G2, per wire.
    pub b2: Vec<G2Affine>,
    /// L query, per private wire.
    pub l: Vec<G1Affine>,
    /// H query.
    pub h: Vec<G1Affine>,
    /// The transcript.
    pub mpc: MpcParams,
}

impl Zkey {
    /// Parses a `.zkey` file's bytes; `what` names it in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, CeremonyError> {
        let mut f = BinFile::open(std::io::Cursor::new(bytes), b"zkey", 1, what)?;
        let bad = |m: &str| CeremonyError::Malformed(format!("{what}: {m}"));
        let proto = f.section(1)?;
        let mut c = Cursor::new(&proto, what);
        if c.u32()? != 1 {
            return Err(bad("not a Groth16 key"));
        }
        c.finish()?;
        let header = f.section(2)?;
        let mut h = Cursor::new(&header, what);
        if h.u32()? != 32 || h.take(32)? != modulus_le::<Fq>().as_slice() {
            return Err(bad("not over BN254"));
        }
        if h.u32()? != 32 || h.take(32)? != modulus_le::<Fr>().as_slice() {
            return Err(bad("not over BN254"));
        }
        let n_vars = h.u32()?;
        let n_public = h.u32()?;
        let domain_size = h.u32()?;
        if n_public >= n_vars || !domain_size.is_power_of_two() {
            return Err(bad("inconsistent header"));
        }
        let alpha1 = g1_from_lem(h.take(G1_BYTES)?, what)?;
        let beta1 = g1_from_lem(h.take(G1_BYTES)?, what)?;
        let beta2 = g2_from_lem(h.take(G2_BYTES)?, what, true)?;
        let gamma2 = g2_from_lem(h.take(G2_BYTES)?, what, true)?;
        let delta1 = g1_from_lem(h.take(G1_BYTES)?, what)?;
        let delta2 = g2_from_lem(h.take(G2_BYTES)?, what, true)?;
        h.finish()?;

        let sized = |f: &mut BinFile<_>, ty: u32, count: u64, size: usize, name: &str| {
            let s = f.section(ty)?;
            if s.len() as u64 != count * size as u64 {
                return Err(bad(&format!(
                    "{name} section has {} bytes, expected {} (truncated or for another circuit)",
                    s.len(),
                    count * size as u64
                )));
            }
            Ok::<_, CeremonyError>(s)
        };
        let nv = n_vars as u64;
        let ic = g1s_from_lem(
            &sized(&mut f, 3, n_public as u64 + 1, G1_BYTES, "IC")?,
            what,
        )?;
        let coefs = f.section(4)?;
        let a = g1s_from_lem(&sized(&mut f, 5, nv, G1_BYTES, "A")?, what)?;
        let b1 = g1s_from_lem(&sized(&mut f, 6, nv, G1_BYTES, "B1")?, what)?;
        // B2 is only ever compared with a recomputation, so its (costly) subgroup check is
        // left out; on-curve is still checked.
        let b2 = g2s_from_lem(&sized(&mut f, 7, nv, G2_BYTES, "B2")?, what, false)?;
        let l = g1s_from_lem(
            &sized(&mut f, 8, nv - n_public as u64 - 1, G1_BYTES, "L")?,
            what,
        )?;
        let hq = g1s_from_lem(&sized(&mut f, 9, domain_size as u64, G1_BYTES, "H")?, what)?;
        let mpc = parse_mpc(&f.section(10)?, what)?;
        Ok(Self {
            n_vars,
            n_public,
            domain_size,
            alpha1,
            beta1,
            beta2,
            gamma2,
            delta1,
            delta2,
            ic,
            coefs,
            a,
            b1,
            b2,
            l,
            h: hq,
            mpc,
        })
    }

    /// The `.zkey` bytes (sections in numeric order).
    pub fn to_bytes(&self) -> Vec<u8> {
        let proto = 1u32.to_le_bytes();
        let mut header = Vec::new();
        header.extend_from_slice(&32u32.to_le_bytes());
        header.extend_from_slice(&modulus_le::<Fq>());
        header.extend_from_slice(&32u32.to_le_bytes());
        header.extend_from_slice(&modulus_le::<Fr>());
        header.extend_from_slice(&self.n_vars.to_le_bytes());
        header.extend_from_slice(&self.n_public.to_le_bytes());
        header.extend_from_slice(&self.domain_size.to_le_bytes());
        g1_to_lem(&self.alpha1, &mut header);
        g1_to_lem(&self.beta1, &mut header);
        g2_to_lem(&self.beta2, &mut header);
        g2_to_lem(&self.gamma2, &mut header);
        g1_to_lem(&self.delta1, &mut header);
        g2_to_lem(&self.delta2, &mut header);
        let ic = g1s_to_lem(&self.ic);
        let a = g1s_to_lem(&self.a);
        let b1 = g1s_to_lem(&self.b1);
        let b2 = g2s_to_lem(&self.b2);
        let l = g1s_to_lem(&self.l);
        let h = g1s_to_lem(&self.h);
        let mpc = write_mpc(&self.mpc);
        binfile::write(
            b"zkey",
            1,
            &[
                (1, &proto),
                (2, &header),
                (3, &ic),
                (4, &self.coefs),
                (5, &a),
                (6, &b1),
                (7, &b2),
                (8, &l),
                (9, &h),
                (10, &mpc),
            ],
        )
    }
}

fn parse_mpc(bytes: &[u8], what: &str) -> Result<MpcParams, CeremonyError> {
    let bad = |m: String| CeremonyError::Malformed(format!("{what}: {m}"));
    let mut c = Cursor::new(bytes, what);
    let mut cs_hash = [0u8; 64];
    cs_hash.copy_from_slice(c.take(64)?);
    let n = c.u32()?;
    let mut contributions = Vec::new();
    for i in 0..n {
        let delta_after = g1_from_lem(c.take(G1_BYTES)?, what)?;
        let g1_s = g1_from_lem(c.take(G1_BYTES)?, what)?;
        let g1_sx = g1_from_lem(c.take(G1_BYTES)?, what)?;
        let g2_spx = g2_from_lem(c.take(G2_BYTES)?, what, true)?;
        let mut transcript = [0u8; 64];
        transcript.copy_from_slice(c.take(64)?);
        let ty = c.u32()?;
        let plen = c.u32()? as usize;
        let params = c.take(plen)?;
        let mut p = Cursor::new(params, what);
        let (mut name, mut exp, mut beacon) = (None, None, None);
        let mut last = 0u8;
        while p.remaining() > 0 {
            let t = p.u8()?;
            if t <= last {
                return Err(bad(format!(
                    "contribution #{}: parameters out of order",
                    i + 1
                )));
            }
            last = t;
            match t {
                1 => {
                    let len = p.u8()? as usize;
                    name = Some(String::from_utf8_lossy(p.take(len)?).into_owned());
                }
                2 => exp = Some(p.u8()?),
                3 => {
                    let len = p.u8()? as usize;
                    beacon = Some(p.take(len)?.to_vec());
                }
                _ => {
                    return Err(bad(format!(
                        "contribution #{}: unknown parameter {t}",
                        i + 1
                    )))
                }
            }
        }
        let kind = match (ty, beacon, exp) {
            (0, _, _) => ContributionKind::Secret,
            (1, Some(hash), Some(iterations_exp)) => ContributionKind::Beacon {
                hash,
                iterations_exp,
            },
            _ => {
                return Err(bad(format!(
                    "contribution #{}: unknown type {ty} or beacon without its parameters",
                    i + 1
                )))
            }
        };
        contributions.push(Contribution {
            delta_after,
            g1_s,
            g1_sx,
            g2_spx,
            transcript,
            kind,
            name,
        });
    }
    c.finish()?;
    Ok(MpcParams {
        cs_hash,
        contributions,
    })
}

/// Truncates a name to at most 64 bytes on a character boundary (snarkjs keeps 64 characters;
/// the length is one byte).
pub fn clip_name(name: &str) -> String {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

fn write_mpc(m: &MpcParams) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&m.cs_hash);
    out.extend_from_slice(&(m.contributions.len() as u32).to_le_bytes());
    for c in &m.contributions {
        g1_to_lem(&c.delta_after, &mut out);
        g1_to_lem(&c.g1_s, &mut out);
        g1_to_lem(&c.g1_sx, &mut out);
        g2_to_lem(&c.g2_spx, &mut out);
        out.extend_from_slice(&c.transcript);
        let ty: u32 = match c.kind {
            ContributionKind::Secret => 0,
            ContributionKind::Beacon { .. } => 1,
        };
        out.extend_from_slice(&ty.to_le_bytes());
        let mut params = Vec::new();
        if let Some(name) = &c.name {
            let name = clip_name(name);
            params.push(1u8);
            params.push(name.len() as u8);
            params.extend_from_slice(name.as_bytes());
        }
        if let ContributionKind::Beacon {
            hash,
            iterations_exp,
        } = &c.kind
        {
            params.push(2);
            params.push(*iterations_exp);
            params.push(3);
            params.push(hash.len() as u8);
            params.extend_from_slice(hash);
        }
        out.extend_from_slice(&(params.len() as u32).to_le_bytes());
        out.extend_from_slice(&params);
    }
    out
}
