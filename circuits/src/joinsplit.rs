//! The join-split statement (spec: `docs/spec/notes.md`):
//!
//! > "I can spend two notes (each either in the tree under `anchor` or of value 0), whose
//! >  nullifiers are `nf_0 != nf_1`; I created two notes with commitments `cm_0`, `cm_1`; and
//! >  `v_in_0 + v_in_1 + public_in = v_out_0 + v_out_1 + public_out`, every amount a u64."
//!
//! The proof is bound to the transaction's public terms by `binding`, a public input the
//! ledger derives from them (so nobody can lift a proof onto other terms).
//!
//! As for the order circuit, the relation exists twice: [`check_relation`] (native) and
//! [`JoinSplitCircuit`] (R1CS), both over a field-level [`JoinSplitWitness`] that can also hold
//! values no honest prover would produce.

use crate::merkle::{self, MerklePath, DEPTH};
use crate::note::{self, Note, SpendingKey};
use crate::range::{enforce_bits, fits_bits, get};
use ark_bn254::Fr;
use ark_ff::{UniformRand, Zero};
use ark_r1cs_std::{fields::fp::FpVar, prelude::*};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use rand_core::{CryptoRng, RngCore};

/// Indices of the public inputs, in the order the verifier supplies them.
pub mod public_input {
    /// The note-tree root both inputs are proven against.
    pub const ANCHOR: usize = 0;
    /// Nullifier of input 0.
    pub const NULLIFIER_0: usize = 1;
    /// Nullifier of input 1.
    pub const NULLIFIER_1: usize = 2;
    /// Commitment of output 0.
    pub const COMMITMENT_0: usize = 3;
    /// Commitment of output 1.
    pub const COMMITMENT_1: usize = 4;
    /// Value entering the shielded pool (minor units).
    pub const PUBLIC_IN: usize = 5;
    /// Value leaving the shielded pool (minor units).
    pub const PUBLIC_OUT: usize = 6;
    /// Hash of the transaction's public terms.
    pub const BINDING: usize = 7;
    /// Number of public inputs (excluding Groth16's constant one).
    pub const COUNT: usize = 8;
}

/// Bits of every amount.
pub const VALUE_BITS: usize = 64;

/// The public part of a join-split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinSplitPublic {
    /// Root of the note tree the inputs are proven against.
    pub anchor: Fr,
    /// Nullifiers of the two inputs.
    pub nullifiers: [Fr; 2],
    /// Commitments of the two outputs.
    pub commitments: [Fr; 2],
    /// Value entering the pool.
    pub public_in: u64,
    /// Value leaving the pool.
    pub public_out: u64,
    /// Hash of the transaction's public terms.
    pub binding: Fr,
}

impl JoinSplitPublic {
    /// The public-input vector, in the order fixed by [`public_input`]; the only place that
    /// builds it.
    pub fn to_field_elements(&self) -> [Fr; public_input::COUNT] {
        use public_input::*;
        let mut v = [Fr::zero(); COUNT];
        v[ANCHOR] = self.anchor;
        v[NULLIFIER_0] = self.nullifiers[0];
        v[NULLIFIER_1] = self.nullifiers[1];
        v[COMMITMENT_0] = self.commitments[0];
        v[COMMITMENT_1] = self.commitments[1];
        v[PUBLIC_IN] = Fr::from(self.public_in);
        v[PUBLIC_OUT] = Fr::from(self.public_out);
        v[BINDING] = self.binding;
        v
    }
}

/// A note being spent and what shows it is the spender's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spend {
    /// The owner's spending key.
    pub key: SpendingKey,
    /// The diversifier behind the note's owner tag.
    pub diversifier: Fr,
    /// The note's value.
    pub value: u64,
    /// The note's randomness.
    pub rho: Fr,
    /// Where the note is in the tree.
    pub path: MerklePath,
}

impl Spend {
    /// A zero-value input that fills an unused slot: fresh randomness and a random position,
    /// so that its nullifier is as unlinkable as a real one.
    pub fn dummy<R: RngCore + CryptoRng>(key: &SpendingKey, rng: &mut R) -> Self {
        Self {
            key: key.clone(),
            diversifier: Fr::rand(rng),
            value: 0,
            rho: Fr::rand(rng),
            path: MerklePath {
                position: rng.next_u32(),
                siblings: [Fr::zero(); DEPTH],
            },
        }
    }

    /// The note being spent.
    pub fn note(&self) -> Note {
        Note {
            value: self.value,
            owner: self.key.viewing_key().owner_tag(self.diversifier),
            rho: self.rho,
        }
    }

    /// The nullifier this spend reveals.
    pub fn nullifier(&self) -> Fr {
        let vk = self.key.viewing_key();
        let cm = note::commitment(
            Fr::from(self.value),
            vk.owner_tag(self.diversifier),
            self.rho,
        );
        vk.nullifier(cm, self.path.position)
    }
}

/// One input at field level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputWitness {
    /// Spending key.
    pub sk: Fr,
    /// Value.
    pub value: Fr,
    /// Diversifier of the owner tag.
    pub diversifier: Fr,
    /// Note randomness.
    pub rho: Fr,
    /// Tree position (must be below 2^32).
    pub position: Fr,
    /// Authentication path, bottom up.
    pub siblings: [Fr; DEPTH],
}

/// One output at field level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputWitness {
    /// Value.
    pub value: Fr,
    /// Owner tag.
    pub owner: Fr,
    /// Note randomness.
    pub rho: Fr,
}

/// A full assignment at field level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinSplitWitness {
    /// Public inputs, indexed by [`public_input`].
    pub public: [Fr; public_input::COUNT],
    /// The two inputs.
    pub inputs: [InputWitness; 2],
    /// The two outputs.
    pub outputs: [OutputWitness; 2],
}

impl JoinSplitWitness {
    /// The honest statement and assignment for spending `spends` into `outputs` under
    /// `anchor`. Whether it holds (values conserved, notes in the tree) is for
    /// [`check_relation`] to say.
    pub fn new(
        anchor: Fr,
        spends: &[Spend; 2],
        outputs: &[Note; 2],
        public_in: u64,
        public_out: u64,
        binding: Fr,
    ) -> (JoinSplitPublic, Self) {
        let public = JoinSplitPublic {
            anchor,
            nullifiers: [spends[0].nullifier(), spends[1].nullifier()],
            commitments: [outputs[0].commitment(), outputs[1].commitment()],
            public_in,
            public_out,
            binding,
        };
        let input = |s: &Spend| InputWitness {
            sk: s.key.to_field(),
            value: Fr::from(s.value),
            diversifier: s.diversifier,
            rho: s.rho,
            position: Fr::from(s.path.position),
            siblings: s.path.siblings,
        };
        let output = |n: &Note| OutputWitness {
            value: Fr::from(n.value),
            owner: n.owner,
            rho: n.rho,
        };
        let witness = Self {
            public: public.to_field_elements(),
            inputs: [input(&spends[0]), input(&spends[1])],
            outputs: [output(&outputs[0]), output(&outputs[1])],
        };
        (public, witness)
    }
}

/// Why an assignment does not satisfy the join-split relation (native check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelationError {
    /// J1: an amount is not a u64, or a position not a u32.
    #[error("{0} is out of range")]
    OutOfRange(&'static str),
    /// J2: inputs plus public_in differ from outputs plus public_out.
    #[error("values are not conserved")]
    NotConserved,
    /// J3: an input with value is not in the tree under the anchor.
    #[error("input {0} is not a note under the anchor")]
    NotInTree(usize),
    /// J4: an input's nullifier is not the one its note and key give.
    #[error("nullifier {0} does not belong to input {0}")]
    WrongNullifier(usize),
    /// J5: both inputs reveal the same nullifier (one note spent twice).
    #[error("both inputs have the same nullifier")]
    DuplicateNullifier,
    /// J6: an output's commitment does not open to its note.
    #[error("commitment {0} does not open to output {0}")]
    WrongCommitment(usize),
}

const INPUT_VALUE: [&str; 2] = ["input 0 value", "input 1 value"];
const INPUT_POSITION: [&str; 2] = ["input 0 position", "input 1 position"];
const OUTPUT_VALUE: [&str; 2] = ["output 0 value", "output 1 value"];
const NULLIFIER: [usize; 2] = [public_input::NULLIFIER_0, public_input::NULLIFIER_1];
const COMMITMENT: [usize; 2] = [public_input::COMMITMENT_0, public_input::COMMITMENT_1];

/// The native predicate: the join-split relation checked outside any circuit.
pub fn check_relation(w: &JoinSplitWitness) -> Result<(), RelationError> {
    use public_input::*;
    let u64_of = |x: &Fr, what| fits_bits(x, 64).ok_or(RelationError::OutOfRange(what));
    // J1
    let public_in = u64_of(&w.public[PUBLIC_IN], "public_in")?;
    let public_out = u64_of(&w.public[PUBLIC_OUT], "public_out")?;
    let mut v_in = [0u64; 2];
    let mut position = [0u64; 2];
    for (i, input) in w.inputs.iter().enumerate() {
        v_in[i] = u64_of(&input.value, INPUT_VALUE[i])?;
        position[i] = fits_bits(&input.position, merkle::DEPTH as u32)
            .ok_or(RelationError::OutOfRange(INPUT_POSITION[i]))?;
    }
    let mut v_out = [0u64; 2];
    for (j, output) in w.outputs.iter().enumerate() {
        v_out[j] = u64_of(&output.value, OUTPUT_VALUE[j])?;
    }
    // J2, in integers (no wrap: every term is below 2^64).
    let total_in = u128::from(v_in[0]) + u128::from(v_in[1]) + u128::from(public_in);
    let total_out = u128::from(v_out[0]) + u128::from(v_out[1]) + u128::from(public_out);
    if total_in != total_out {
        return Err(RelationError::NotConserved);
    }
    for (i, input) in w.inputs.iter().enumerate() {
        let sk = SpendingKey::from_field(input.sk);
        let vk = sk.viewing_key();
        let owner = vk.owner_tag(input.diversifier);
        let cm = note::commitment(input.value, owner, input.rho);
        // J3: only an input with value needs to be in the tree.
        if v_in[i] != 0
            && merkle::root_from_fields(cm, position[i], &input.siblings) != w.public[ANCHOR]
        {
            return Err(RelationError::NotInTree(i));
        }
        // J4
        if note::nullifier(vk.nk, cm, input.position) != w.public[NULLIFIER[i]] {
            return Err(RelationError::WrongNullifier(i));
        }
    }
    // J5
    if w.public[NULLIFIER_0] == w.public[NULLIFIER_1] {
        return Err(RelationError::DuplicateNullifier);
    }
    // J6
    for (j, output) in w.outputs.iter().enumerate() {
        if note::commitment(output.value, output.owner, output.rho) != w.public[COMMITMENT[j]] {
            return Err(RelationError::WrongCommitment(j));
        }
    }
    Ok(())
}

/// The join-split circuit. `witness` is `None` only for key generation.
#[derive(Clone, Debug)]
pub struct JoinSplitCircuit {
    witness: Option<JoinSplitWitness>,
}

impl JoinSplitCircuit {
    /// A circuit with a full assignment, for proving or for `is_satisfied` checks.
    pub fn new(witness: JoinSplitWitness) -> Self {
        Self {
            witness: Some(witness),
        }
    }

    /// A circuit without an assignment, for key generation.
    pub fn blank() -> Self {
        Self { witness: None }
    }
}

impl ConstraintSynthesizer<Fr> for JoinSplitCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        use public_input::*;
        let w = self.witness.as_ref();

        // Public inputs, allocated in index order: this order is the verifier's input order.
        let public = (0..COUNT)
            .map(|i| FpVar::new_input(cs.clone(), || get(w.map(|w| w.public[i]))))
            .collect::<Result<Vec<_>, _>>()?;
        let anchor = &public[ANCHOR];

        // J7: the binding input takes part in a constraint of its own, so that the proof
        // depends on it whatever the QAP reduction does with unused inputs.
        let _binding_squared = public[BINDING].square()?;

        // J1: the public amounts are u64.
        enforce_bits(&cs, &public[PUBLIC_IN], VALUE_BITS)?;
        enforce_bits(&cs, &public[PUBLIC_OUT], VALUE_BITS)?;

        let mut in_values = Vec::with_capacity(2);
        for i in 0..2 {
            let input = w.map(|w| &w.inputs[i]);
            let witness =
                |f: fn(&InputWitness) -> Fr| FpVar::new_witness(cs.clone(), || get(input.map(f)));
            let sk = witness(|x| x.sk)?;
            let value = witness(|x| x.value)?;
            let diversifier = witness(|x| x.diversifier)?;
            let rho = witness(|x| x.rho)?;
            let position = witness(|x| x.position)?;
            let siblings = (0..DEPTH)
                .map(|l| FpVar::new_witness(cs.clone(), || get(input.map(|x| x.siblings[l]))))
                .collect::<Result<Vec<_>, _>>()?;

            // J1: the value is a u64 and the position a u32 (its bits give the path's turns).
            enforce_bits(&cs, &value, VALUE_BITS)?;
            let bits = enforce_bits(&cs, &position, DEPTH)?;

            // J3/J4: the note is owned by this spending key.
            let (ak, nk) = note::gadget::viewing_key(&sk)?;
            let owner = note::gadget::owner_tag(&ak, &diversifier)?;
            let cm = note::gadget::commitment(&value, &owner, &rho)?;

            // J3: value * (root - anchor) = 0: an input with value is in the tree.
            let root = merkle::gadget::root(&cm, &siblings, &bits)?;
            value.mul_equals(&(root - anchor), &FpVar::zero())?;

            // J4: the revealed nullifier is this note's, under this key, at this position.
            note::gadget::nullifier(&nk, &cm, &position)?.enforce_equal(&public[NULLIFIER[i]])?;
            in_values.push(value);
        }

        // J5: one note cannot be spent twice in one proof.
        public[NULLIFIER_0].enforce_not_equal(&public[NULLIFIER_1])?;

        let mut out_values = Vec::with_capacity(2);
        for j in 0..2 {
            let output = w.map(|w| w.outputs[j]);
            let value = FpVar::new_witness(cs.clone(), || get(output.map(|o| o.value)))?;
            let owner = FpVar::new_witness(cs.clone(), || get(output.map(|o| o.owner)))?;
            let rho = FpVar::new_witness(cs.clone(), || get(output.map(|o| o.rho)))?;
            // J1
            enforce_bits(&cs, &value, VALUE_BITS)?;
            // J6: the public commitment opens to this output.
            note::gadget::commitment(&value, &owner, &rho)?
                .enforce_equal(&public[COMMITMENT[j]])?;
            out_values.push(value);
        }

        // J2: conservation. Every term is below 2^64 (J1), so neither side wraps the field.
        let total_in = &in_values[0] + &in_values[1] + &public[PUBLIC_IN];
        let total_out = &out_values[0] + &out_values[1] + &public[PUBLIC_OUT];
        total_in.enforce_equal(&total_out)
    }
}
