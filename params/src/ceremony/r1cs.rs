//! Our circuits in circom's `.r1cs` format (iden3 binary container, version 1), so that
//! snarkjs can build and check phase-2 keys for them.
//!
//! Wires follow arkworks' variable order, which is circom's layout: wire 0 is the constant one,
//! wires `1..=n_public` are the public inputs in the circuit's public-input order, the rest are
//! witness variables. No wire is declared a public output or private input (circom's labels
//! are for debugging; each wire is its own label).

use super::binfile::{self, BinFile, Cursor};
use super::encoding::{fr_from_le, fr_to_le, modulus_le};
use super::CeremonyError;
use ark_bn254::Fr;
use ark_relations::gr1cs::{
    ConstraintSynthesizer, ConstraintSystem, OptimizationGoal, SynthesisMode, R1CS_PREDICATE_LABEL,
};

/// One linear combination: `(wire, coefficient)` terms.
pub type Lc = Vec<(u32, Fr)>;

/// A rank-1 constraint system: `A·w * B·w = C·w` per constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct R1cs {
    /// Total wires, including the constant one.
    pub n_wires: u32,
    /// Public inputs (wires `1..=n_public`).
    pub n_public: u32,
    /// The constraints, `[A, B, C]` each.
    pub constraints: Vec<[Lc; 3]>,
}

impl R1cs {
    /// Synthesizes `circuit` exactly as the Groth16 prover does (constraint-count optimization,
    /// linear combinations inlined) and takes its matrices.
    pub fn from_circuit<C: ConstraintSynthesizer<Fr>>(circuit: C) -> Result<Self, CeremonyError> {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        cs.set_mode(SynthesisMode::Setup);
        circuit.generate_constraints(cs.clone())?;
        cs.finalize();
        let matrices = cs.to_matrices()?;
        let m = matrices
            .get(R1CS_PREDICATE_LABEL)
            .ok_or_else(|| CeremonyError::Malformed("circuit has no R1CS constraints".into()))?;
        let n_instance = cs.num_instance_variables();
        let n_wires = n_instance + cs.num_witness_variables();
        let to_lc =
            |row: &Vec<(Fr, usize)>| -> Lc { row.iter().map(|(c, w)| (*w as u32, *c)).collect() };
        let constraints = (0..cs.num_constraints())
            .map(|i| [to_lc(&m[0][i]), to_lc(&m[1][i]), to_lc(&m[2][i])])
            .collect();
        Ok(Self {
            n_wires: n_wires as u32,
            n_public: (n_instance - 1) as u32,
            constraints,
        })
    }

    /// The `.r1cs` file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = Vec::new();
        header.extend_from_slice(&32u32.to_le_bytes());
        header.extend_from_slice(&modulus_le::<Fr>());
        header.extend_from_slice(&self.n_wires.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes()); // public outputs
        header.extend_from_slice(&self.n_public.to_le_bytes()); // public inputs
        header.extend_from_slice(&0u32.to_le_bytes()); // private inputs
        header.extend_from_slice(&(self.n_wires as u64).to_le_bytes()); // labels
        header.extend_from_slice(&(self.constraints.len() as u32).to_le_bytes());
        let mut body = Vec::new();
        for c in &self.constraints {
            for lc in c {
                body.extend_from_slice(&(lc.len() as u32).to_le_bytes());
                for (w, coef) in lc {
                    body.extend_from_slice(&w.to_le_bytes());
                    fr_to_le(coef, &mut body);
                }
            }
        }
        let map: Vec<u8> = (0..self.n_wires as u64)
            .flat_map(|i| i.to_le_bytes())
            .collect();
        binfile::write(b"r1cs", 1, &[(1, &header), (2, &body), (3, &map)])
    }

    /// Parses `.r1cs` bytes over BN254's scalar field.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CeremonyError> {
        let what = "r1cs";
        let mut f = BinFile::open(std::io::Cursor::new(bytes), b"r1cs", 1, what)?;
        let header = f.section(1)?;
        let mut h = Cursor::new(&header, what);
        if h.u32()? != 32 || h.take(32)? != modulus_le::<Fr>().as_slice() {
            return Err(CeremonyError::Malformed(
                "r1cs: not over BN254's scalar field".into(),
            ));
        }
        let n_wires = h.u32()?;
        let n_out = h.u32()?;
        let n_pub_in = h.u32()?;
        let _n_prv_in = h.u32()?;
        let _n_labels = h.u64()?;
        let n_constraints = h.u32()?;
        h.finish()?;
        let n_public = n_out
            .checked_add(n_pub_in)
            .filter(|p| *p < n_wires)
            .ok_or_else(|| CeremonyError::Malformed("r1cs: more public wires than wires".into()))?;
        let body = f.section(2)?;
        let mut b = Cursor::new(&body, what);
        let mut constraints = Vec::with_capacity(n_constraints.min(1 << 24) as usize);
        for _ in 0..n_constraints {
            let mut lcs: [Lc; 3] = Default::default();
            for lc in lcs.iter_mut() {
                let n = b.u32()?;
                if n as usize > b.remaining() / 36 {
                    return Err(CeremonyError::Malformed(
                        "r1cs: constraints end early".into(),
                    ));
                }
                for _ in 0..n {
                    let w = b.u32()?;
                    if w >= n_wires {
                        return Err(CeremonyError::Malformed(format!(
                            "r1cs: wire {w} out of range (the file has {n_wires} wires)"
                        )));
                    }
                    let coef = fr_from_le(b.take(32)?).ok_or_else(|| {
                        CeremonyError::Malformed("r1cs: non-canonical coefficient".into())
                    })?;
                    lc.push((w, coef));
                }
            }
            constraints.push(lcs);
        }
        b.finish()?;
        Ok(Self {
            n_wires,
            n_public,
            constraints,
        })
    }

    /// log2 of the QAP domain, as snarkjs computes it: the smallest power of two above
    /// `constraints + public inputs` (room for one extra row per public input and the one).
    pub fn domain_power(&self) -> u32 {
        let v = self.constraints.len() as u64 + self.n_public as u64;
        (u64::BITS - v.leading_zeros()).max(1)
    }
}
