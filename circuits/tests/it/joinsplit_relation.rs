//! The join-split relation checked twice, natively (`check_relation`) and in R1CS
//! (`cs.is_satisfied()`), on the same property-test statements: honest join-splits pass both,
//! and one malicious strategy per invariant fails both. A Groth16 round trip shows that the
//! proof is bound to its public inputs, the binding hash of the terms included.

use ark_bn254::{Bn254, Fr};
use ark_ff::{One, PrimeField, UniformRand, Zero};
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem, SynthesisMode};
use ark_snark::SNARK;
use proptest::{prelude::*, strategy::ValueTree};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::{
    joinsplit::{
        check_relation, public_input as pi, JoinSplitCircuit, JoinSplitWitness, RelationError,
        Spend,
    },
    merkle::{MemoryTree, DEPTH},
    note::{self, Note, SpendingKey},
};

/// An honest join-split and what it was built from.
#[derive(Clone, Debug)]
struct Honest {
    key: SpendingKey,
    spends: [Spend; 2],
    outputs: [Note; 2],
    tree: MemoryTree,
    witness: JoinSplitWitness,
}

impl Honest {
    /// Whether input `i` is a note of the tree with value (a dummy is not in the tree).
    fn real_with_value(&self, i: usize) -> bool {
        self.spends[i].value != 0
    }
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1u64..1_000_000, any::<u64>()]
}

/// A value in `[lo, hi]` picked by `r`.
fn pick(r: u64, lo: u128, hi: u128) -> u128 {
    lo + u128::from(r) % (hi - lo + 1)
}

fn honest() -> impl Strategy<Value = Honest> {
    (
        any::<u64>(),
        0usize..6,
        any::<[bool; 2]>(),
        [amount(), amount()],
        amount(),
        any::<[u64; 2]>(),
    )
        .prop_map(|(seed, others, real, values, public_in, split)| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let key = SpendingKey::generate(&mut rng);
            let vk = key.viewing_key();
            // The household's notes sit among other households' notes.
            let mut tree = MemoryTree::new();
            let mut positions = [0u32; 2];
            let mut notes = [None, None];
            for i in 0..2 {
                for _ in 0..=(others + i) % 4 {
                    tree.append(Fr::rand(&mut rng)).expect("small tree");
                }
                if real[i] {
                    let d = vk.diversifier(i as u64);
                    let n = Note::new(values[i], vk.owner_tag(d), &mut rng);
                    positions[i] = tree.append(n.commitment()).expect("small tree");
                    notes[i] = Some((d, n));
                }
            }
            let spends: [Spend; 2] = std::array::from_fn(|i| match notes[i] {
                Some((d, n)) => Spend {
                    key: key.clone(),
                    diversifier: d,
                    value: n.value,
                    rho: n.rho,
                    path: tree.path(positions[i]).expect("appended"),
                },
                None => Spend::dummy(&key, &mut rng),
            });
            // Outputs to another household and back to this one (change), and what leaves the
            // pool: any split of the total with every part a u64.
            let total =
                u128::from(spends[0].value) + u128::from(spends[1].value) + u128::from(public_in);
            let max = u128::from(u64::MAX);
            let out0 = pick(split[0], total.saturating_sub(2 * max), total.min(max));
            let rest = total - out0;
            let out1 = pick(split[1], rest.saturating_sub(max), rest.min(max));
            let public_out = u64::try_from(rest - out1).expect("at most u64::MAX");
            let recipient = SpendingKey::generate(&mut rng).viewing_key();
            let outputs = [
                Note::new(
                    u64::try_from(out0).expect("u64"),
                    recipient.owner_tag(recipient.diversifier(7)),
                    &mut rng,
                ),
                Note::new(
                    u64::try_from(out1).expect("u64"),
                    vk.owner_tag(vk.diversifier(2)),
                    &mut rng,
                ),
            ];
            let (_, witness) = JoinSplitWitness::new(
                tree.root(),
                &spends,
                &outputs,
                public_in,
                public_out,
                Fr::rand(&mut rng),
            );
            Honest {
                key,
                spends,
                outputs,
                tree,
                witness,
            }
        })
}

/// Satisfiability of the circuit on `w`.
fn circuit_accepts(w: &JoinSplitWitness) -> bool {
    let cs = ConstraintSystem::<Fr>::new_ref();
    match JoinSplitCircuit::new(w.clone()).generate_constraints(cs.clone()) {
        Ok(()) => cs.is_satisfied().expect("satisfiability is computable"),
        Err(_) => false,
    }
}

/// Both checks reject `w`; the native one with the expected reason.
fn assert_rejected(w: &JoinSplitWitness, expected: RelationError) -> Result<(), TestCaseError> {
    prop_assert_eq!(check_relation(w), Err(expected));
    prop_assert!(
        !circuit_accepts(w),
        "circuit accepted a witness the native check rejects ({expected})"
    );
    Ok(())
}

const NF: [usize; 2] = [pi::NULLIFIER_0, pi::NULLIFIER_1];
const CM: [usize; 2] = [pi::COMMITMENT_0, pi::COMMITMENT_1];

/// The public nullifier input `i` gets from its witness (as a cheating prover would compute it).
fn renullify(w: &mut JoinSplitWitness, i: usize) {
    let input = &w.inputs[i];
    let vk = SpendingKey::from_field(input.sk).viewing_key();
    let cm = note::commitment(input.value, vk.owner_tag(input.diversifier), input.rho);
    w.public[NF[i]] = note::nullifier(vk.nk, cm, input.position);
}

/// The public commitment output `j` gets from its witness.
fn recommit(w: &mut JoinSplitWitness, j: usize) {
    let o = w.outputs[j];
    w.public[CM[j]] = note::commitment(o.value, o.owner, o.rho);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn honest_join_splits_pass_both(h in honest()) {
        prop_assert_eq!(check_relation(&h.witness), Ok(()));
        prop_assert!(circuit_accepts(&h.witness));
    }

    // ---- J1: every amount a u64, every position a u32 ---------------------------------

    /// Inflation by field wrap: an output of `v + x` paid for by another output (or a public
    /// out) of `-r`, `x` chosen so that value is conserved in the field; only the range
    /// checks stop it.
    #[test]
    fn field_wrapping_amounts_fail_both(h in honest(), r in 0u64..1 << 62, which in 0u8..2) {
        let mut w = h.witness.clone();
        // The victim term goes to -(1 + r); the other output gains what it had plus 1 + r.
        let (victim, had) = match which {
            0 => (&mut w.outputs[1].value, h.outputs[1].value),
            _ => (&mut w.public[pi::PUBLIC_OUT], h.witness.public[pi::PUBLIC_OUT].into_bigint().0[0]),
        };
        *victim = -Fr::from(1 + r);
        w.outputs[0].value += Fr::from(had) + Fr::from(1 + r);
        recommit(&mut w, 0);
        recommit(&mut w, 1);
        let native = check_relation(&w);
        prop_assert!(matches!(native, Err(RelationError::OutOfRange(_))), "{:?}", native);
        prop_assert!(!circuit_accepts(&w));
    }

    /// A position of `pos + k 2^32` has the same path turns but another nullifier: without
    /// the range check one note would have 2^222 nullifiers and be spent again and again.
    #[test]
    fn position_beyond_the_tree_fails_both(h in honest(), k in 1u64..1 << 20, i in 0usize..2) {
        prop_assume!(h.real_with_value(i));
        let mut w = h.witness.clone();
        w.inputs[i].position += Fr::from(k << DEPTH);
        renullify(&mut w, i);
        let what = ["input 0 position", "input 1 position"][i];
        assert_rejected(&w, RelationError::OutOfRange(what))?;
    }

    // ---- J2: conservation ------------------------------------------------------------

    #[test]
    fn more_out_than_in_fails_both(h in honest(), delta in 1u64..1000, which in 0u8..3) {
        let mut w = h.witness.clone();
        match which {
            0 => w.outputs[0].value += Fr::from(delta),
            1 => w.outputs[1].value += Fr::from(delta),
            _ => w.public[pi::PUBLIC_OUT] += Fr::from(delta),
        }
        recommit(&mut w, 0);
        recommit(&mut w, 1);
        prop_assume!(check_relation(&w) != Err(RelationError::OutOfRange("output 0 value")));
        prop_assume!(check_relation(&w) != Err(RelationError::OutOfRange("output 1 value")));
        prop_assume!(check_relation(&w) != Err(RelationError::OutOfRange("public_out")));
        assert_rejected(&w, RelationError::NotConserved)?;
    }

    // ---- J3: an input with value is a note under the anchor ----------------------------

    #[test]
    fn wrong_anchor_fails_both(h in honest(), other in any::<u64>()) {
        let i = (0..2).find(|&i| h.real_with_value(i));
        prop_assume!(i.is_some());
        let i = i.unwrap_or(0);
        let mut w = h.witness.clone();
        w.public[pi::ANCHOR] = if other % 2 == 0 {
            Fr::from(other)
        } else {
            // A real root, but of the tree before the note was appended.
            let mut t = MemoryTree::new();
            for leaf in &h.tree.leaves()[..h.spends[i].path.position as usize] {
                t.append(*leaf).expect("small tree");
            }
            t.root()
        };
        assert_rejected(&w, RelationError::NotInTree(i))?;
    }

    /// A dummy input (not in the tree) given a value, paid out to an output.
    #[test]
    fn dummy_input_with_value_fails_both(h in honest(), v in 1u64..1_000_000, i in 0usize..2) {
        // An input of value 0 (a dummy, or a note of value 0) gets a value.
        prop_assume!(!h.real_with_value(i));
        let mut w = h.witness.clone();
        w.inputs[i].value = Fr::from(v);
        renullify(&mut w, i);
        let (j, room) = (0..2)
            .map(|j| (j, u64::MAX - h.outputs[j].value))
            .max_by_key(|(_, room)| *room)
            .unwrap_or((0, 0));
        prop_assume!(room >= v);
        w.outputs[j].value += Fr::from(v);
        recommit(&mut w, j);
        assert_rejected(&w, RelationError::NotInTree(i))?;
    }

    /// Somebody else's note: the spender's key does not own it, so the commitment it computes
    /// is not in the tree.
    #[test]
    fn spending_another_households_note_fails_both(h in honest(), seed in any::<u64>(), i in 0usize..2) {
        prop_assume!(h.real_with_value(i));
        let thief = SpendingKey::generate(&mut ChaCha20Rng::seed_from_u64(seed));
        let mut w = h.witness.clone();
        w.inputs[i].sk = thief.to_field();
        renullify(&mut w, i);
        assert_rejected(&w, RelationError::NotInTree(i))?;
    }

    // ---- J4: the nullifier is the note's ------------------------------------------------

    #[test]
    fn nullifier_of_another_note_fails_both(h in honest(), which in 0u8..3, i in 0usize..2) {
        let mut w = h.witness.clone();
        let vk = h.key.viewing_key();
        let cm = h.spends[i].note().commitment();
        let position = h.spends[i].path.position;
        w.public[NF[i]] = match which {
            // Another leaf's nullifier under this key.
            0 => vk.nullifier(h.tree.leaves()[0], 0),
            // This note at another position.
            1 => vk.nullifier(cm, position.wrapping_add(1)),
            // This note under another nullifier key.
            _ => note::nullifier(vk.ak, cm, Fr::from(position)),
        };
        prop_assume!(w.public[NF[i]] != h.witness.public[NF[i]] && w.public[NF[0]] != w.public[NF[1]]);
        assert_rejected(&w, RelationError::WrongNullifier(i))?;
    }

    // ---- J5: one note, one spend per proof ----------------------------------------------

    #[test]
    fn one_note_spent_twice_in_one_proof_fails_both(h in honest(), i in 0usize..2) {
        prop_assume!(h.real_with_value(i));
        let other = 1 - i;
        let mut w = h.witness.clone();
        w.inputs[other] = w.inputs[i].clone();
        w.public[NF[other]] = w.public[NF[i]];
        // The duplicate's value is paid out, so that value is conserved.
        let delta = i128::from(h.spends[i].value) - i128::from(h.spends[other].value);
        let out = i128::from(h.outputs[0].value) + delta;
        prop_assume!((0..=i128::from(u64::MAX)).contains(&out));
        w.outputs[0].value = Fr::from(out as u64);
        recommit(&mut w, 0);
        assert_rejected(&w, RelationError::DuplicateNullifier)?;
    }

    // ---- J6: outputs open to their commitments ------------------------------------------

    #[test]
    fn commitment_to_another_note_fails_both(h in honest(), j in 0usize..2, which in 0u8..3) {
        let mut w = h.witness.clone();
        let n = h.outputs[j];
        let forged = match which {
            // The same value to another owner (a payment redirected).
            0 => Note { owner: n.owner + Fr::one(), ..n },
            // More value than was proven.
            1 => Note { value: n.value.wrapping_add(1), ..n },
            _ => Note { rho: n.rho + Fr::one(), ..n },
        };
        w.public[CM[j]] = forged.commitment();
        assert_rejected(&w, RelationError::WrongCommitment(j))?;
    }
}

/// Key generation must see the same circuit shape as proving.
#[test]
fn circuit_shape_does_not_depend_on_the_witness() {
    let count = |c: JoinSplitCircuit, setup: bool| {
        let cs = ConstraintSystem::<Fr>::new_ref();
        if setup {
            cs.set_mode(SynthesisMode::Setup);
        }
        c.generate_constraints(cs.clone()).expect("synthesis");
        (
            cs.num_constraints(),
            cs.num_instance_variables(),
            cs.num_witness_variables(),
        )
    };
    let blank = count(JoinSplitCircuit::blank(), true);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..3 {
        let h = honest().new_tree(&mut runner).expect("strategy").current();
        assert_eq!(
            count(JoinSplitCircuit::new(h.witness.clone()), false),
            blank
        );
        let mut bad = h.witness.clone();
        bad.outputs[0].value = -Fr::one();
        bad.inputs[1].position = -Fr::one();
        assert_eq!(count(JoinSplitCircuit::new(bad), false), blank);
    }
    assert_eq!(
        blank.1,
        1 + pi::COUNT,
        "public inputs plus Groth16's constant one"
    );
    eprintln!("join-split: {} constraints", blank.0);
}

/// A real Groth16 proof verifies for its own public inputs only: another binding hash (the
/// proof lifted onto other terms), another amount, anchor, nullifier or commitment fails.
#[test]
fn proofs_are_bound_to_every_public_input() {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let (pk, vk) = Groth16::<Bn254>::circuit_specific_setup(JoinSplitCircuit::blank(), &mut rng)
        .expect("setup");
    let pvk = Groth16::<Bn254>::process_vk(&vk).expect("vk");
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let h = loop {
        let h = honest().new_tree(&mut runner).expect("strategy").current();
        if h.real_with_value(0) || h.real_with_value(1) {
            break h;
        }
    };
    let proof = Groth16::<Bn254>::prove(&pk, JoinSplitCircuit::new(h.witness.clone()), &mut rng)
        .expect("prove");
    let public = h.witness.public;
    assert!(Groth16::<Bn254>::verify_with_processed_vk(&pvk, &public, &proof).expect("verify"));
    for i in 0..pi::COUNT {
        let mut other = public;
        other[i] += Fr::one();
        assert!(
            !Groth16::<Bn254>::verify_with_processed_vk(&pvk, &other, &proof).expect("verify"),
            "the proof verified with public input {i} changed"
        );
    }
    assert!(Fr::zero() != public[pi::BINDING]);
}
