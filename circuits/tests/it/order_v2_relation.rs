//! The unlinkable order relation (order circuit v2) checked twice, natively (`check_relation`)
//! and in R1CS (`cs.is_satisfied()`), on the same property-test statements: honest statements
//! pass both, and one malicious strategy per invariant fails both. Malicious witnesses are
//! repaired everywhere except at the invariant under test (re-signed by a colluding meter,
//! re-enrolled by a colluding registrar, nullifier recomputed), so each test shows that one
//! constraint block, and only it, stands between the cheat and a valid proof.

use ark_bn254::{Bn254, Fr};
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{BigInteger, One, PrimeField, Zero};
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem, SynthesisMode};
use ark_snark::SNARK;
use proptest::{prelude::*, strategy::ValueTree};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::{
    babyjub::{base8, Point, Scalar},
    eddsa::{SecretKey, SignatureError},
    order::{RelationError, Side},
    order_v2::{
        check_relation, public_input as pi, OrderCircuit, OrderPrivate, OrderPublic, OrderWitness,
    },
    registry::{self, MemoryRegistry, DEPTH},
    statement::{self, PeriodStatement},
};

/// An honest household: its meter key, its nullifier key, the registry it is enrolled in and
/// an order it may place.
#[derive(Clone, Debug)]
struct Honest {
    sk: SecretKey,
    nk: Fr,
    /// Leaves enrolled besides the household's, to rebuild registries around malicious keys.
    decoys: Vec<Fr>,
    public: OrderPublic,
    witness: OrderWitness,
}

fn field() -> impl Strategy<Value = Fr> {
    any::<[u8; 32]>().prop_map(|b| Fr::from_le_bytes_mod_order(&b))
}

/// A registry holding `decoys[..before]`, then `leaf`, then the other decoys; returns it and
/// the leaf's position.
fn registry_with(leaf: Fr, decoys: &[Fr], before: usize) -> (MemoryRegistry, u32) {
    let mut r = MemoryRegistry::new();
    for d in &decoys[..before] {
        r.enrol(*d).expect("room");
    }
    let position = r.enrol(leaf).expect("room");
    for d in &decoys[before..] {
        r.enrol(*d).expect("room");
    }
    (r, position)
}

fn honest() -> impl Strategy<Value = Honest> {
    (
        (any::<u64>(), field(), field(), any::<u64>()),
        (any::<u32>(), any::<u32>(), field(), any::<u32>()),
        (
            prop::collection::vec(field(), 0..6),
            any::<usize>(),
            field(),
        ),
    )
        .prop_filter("net must be nonzero", |(_, (i, e, _, _), _)| i != e)
        .prop_map(
            |(
                (seed, nk, market, period),
                (import_wh, export_wh, digest, q),
                (decoys, before, terms),
            )| {
                let sk = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(seed));
                let meter = sk.public_key();
                let signed = PeriodStatement {
                    meter,
                    period,
                    import_wh,
                    export_wh,
                    profile_digest: digest,
                }
                .sign_for_market(&sk, market);
                let leaf = registry::leaf(&meter, registry::nk_commitment(nk));
                let (reg, position) = registry_with(leaf, &decoys, before % (decoys.len() + 1));
                let (side, net) = if export_wh > import_wh {
                    (Side::Sell, export_wh - import_wh)
                } else {
                    (Side::Buy, import_wh - export_wh)
                };
                let public = OrderPublic {
                    registry_root: reg.root(),
                    order_nullifier: registry::order_nullifier(nk, meter.x(), Fr::from(period)),
                    market,
                    period,
                    side,
                    quantity_wh: 1 + q % net,
                    terms,
                };
                let private = OrderPrivate {
                    nk,
                    path: reg.path(u64::from(position)).expect("enrolled"),
                    statement: signed,
                };
                let witness = OrderWitness::new(&public, &private);
                Honest {
                    sk,
                    nk,
                    decoys,
                    public,
                    witness,
                }
            },
        )
}

/// Satisfiability of the circuit on `w`.
fn circuit_accepts(w: &OrderWitness) -> bool {
    let cs = ConstraintSystem::<Fr>::new_ref();
    match OrderCircuit::new(w.clone()).generate_constraints(cs.clone()) {
        Ok(()) => cs.is_satisfied().expect("satisfiability is computable"),
        // A witness the gadgets cannot even assign (e.g. a division by zero) is rejected too.
        Err(_) => false,
    }
}

/// Both checks reject `w`; the native one with the expected reason.
fn assert_rejected(
    w: &OrderWitness,
    expected: impl Fn(&RelationError) -> bool,
) -> Result<(), TestCaseError> {
    let native = check_relation(w);
    prop_assert!(
        matches!(&native, Err(e) if expected(e)),
        "native: {:?}",
        native
    );
    prop_assert!(
        !circuit_accepts(w),
        "circuit accepted a witness the native check rejects: {native:?}"
    );
    Ok(())
}

/// A colluding meter: re-signs `w`'s statement fields with `sk`, for `w`'s market, period and
/// the key in `w` (whether or not it is `sk`'s).
fn resign(sk: &SecretKey, w: &mut OrderWitness) {
    let claimed = Point::new_unchecked(w.meter_x, w.meter_y);
    let sig = sk.sign_with_claimed_key(&claimed, message(w));
    w.r8 = sig.r8;
    w.s = sig.s;
}

fn message(w: &OrderWitness) -> Fr {
    statement::market_message_from_fields(
        w.public[pi::MARKET],
        w.meter_x,
        w.meter_y,
        w.public[pi::PERIOD],
        w.import_wh,
        w.export_wh,
        w.profile_digest,
    )
}

/// A colluding registrar: enrols `w`'s meter key with `w`'s household key (among the decoys)
/// and points `w` at the new root and path; then recomputes the order nullifier.
fn reenrol(h: &Honest, w: &mut OrderWitness) {
    let leaf = registry::leaf_from_fields(w.meter_x, w.meter_y, registry::nk_commitment(w.nk));
    let (reg, position) = registry_with(leaf, &h.decoys, h.decoys.len() / 2);
    let path = reg.path(u64::from(position)).expect("enrolled");
    w.public[pi::REGISTRY_ROOT] = reg.root();
    w.position = Fr::from(position);
    w.siblings = path.siblings;
    renullify(w);
}

fn renullify(w: &mut OrderWitness) {
    w.public[pi::ORDER_NULLIFIER] =
        registry::order_nullifier(w.nk, w.meter_x, w.public[pi::PERIOD]);
}

fn order_of_two() -> Point {
    Point::new_unchecked(Fr::zero(), -Fr::one())
}

fn low_u64(x: Fr) -> u64 {
    x.into_bigint().0[0]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn honest_orders_pass_both(h in honest()) {
        prop_assert_eq!(check_relation(&h.witness), Ok(()));
        prop_assert!(circuit_accepts(&h.witness));
        prop_assert_eq!(h.witness.public, h.public.to_field_elements());
    }

    // ---- I3: net covers quantity -------------------------------------------------------

    /// Inflated surplus: a quantity above the signed net.
    #[test]
    fn quantity_above_net_fails_both(h in honest(), extra in 1u32..=u32::MAX) {
        let mut w = h.witness.clone();
        let net = if h.public.side == Side::Sell {
            low_u64(w.export_wh - w.import_wh)
        } else {
            low_u64(w.import_wh - w.export_wh)
        };
        let quantity = (net + u64::from(extra)).min(u64::from(u32::MAX));
        prop_assume!(quantity > net);
        w.public[pi::QUANTITY_WH] = Fr::from(quantity);
        assert_rejected(&w, |e| matches!(e, RelationError::InsufficientNet { .. }))?;
    }

    #[test]
    fn side_flipped_fails_both(h in honest()) {
        let mut w = h.witness.clone();
        w.public[pi::SIDE] = Fr::one() - w.public[pi::SIDE];
        assert_rejected(&w, |e| matches!(e, RelationError::InsufficientNet { .. }))?;
    }

    // ---- I1: ranges, positive quantity, side bit --------------------------------------

    /// Overflow: an amount at or above 2^32, signed by a colluding meter.
    #[test]
    fn amount_at_or_above_2_pow_32_fails_both(h in honest(), k in 1u64..1 << 20, which in 0u8..3) {
        let mut w = h.witness.clone();
        let big = Fr::from(k << 32);
        match which {
            0 => w.import_wh += big,
            1 => w.export_wh += big,
            _ => w.public[pi::QUANTITY_WH] += big,
        }
        resign(&h.sk, &mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::OutOfRange(_)))?;
    }

    /// Amounts chosen so that the side's net wraps around the field into a small positive
    /// number (and, for the statement, so that the packed amounts wrap): only the u32 range
    /// checks stand between them and a fake surplus.
    #[test]
    fn field_wrapping_amounts_fail_both(h in honest(), x in 1u32..1 << 30, which in 0u8..2) {
        let mut w = h.witness.clone();
        let sell = h.public.side == Side::Sell;
        match which {
            0 if sell => w.import_wh = -Fr::from(x),
            0 => w.export_wh = -Fr::from(x),
            _ => w.public[pi::QUANTITY_WH] = -Fr::from(x),
        }
        resign(&h.sk, &mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::OutOfRange(_)))?;
    }

    #[test]
    fn zero_quantity_fails_both(h in honest()) {
        let mut w = h.witness.clone();
        w.public[pi::QUANTITY_WH] = Fr::zero();
        assert_rejected(&w, |e| matches!(e, RelationError::ZeroQuantity))?;
    }

    /// side = 2 turns a buy's factor (1 - 2 side) into -3, tripling the net import.
    #[test]
    fn side_not_a_bit_fails_both(h in honest(), side in 2u64..1000) {
        let mut w = h.witness.clone();
        w.public[pi::SIDE] = Fr::from(side);
        assert_rejected(&w, |e| matches!(e, RelationError::SideNotABit))?;
    }

    // ---- I2: the meter's signature for this market and period --------------------------

    /// Forged signature: another key signs the statement under the enrolled meter's key.
    #[test]
    fn signature_by_another_key_fails_both(h in honest(), seed in any::<u64>()) {
        let other = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(seed ^ 0x5eed));
        let mut w = h.witness.clone();
        resign(&other, &mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::Mismatch)))?;
    }

    /// Market binding: a statement the meter signed for another market (the same meter
    /// enrolled in two markets cannot sell one surplus twice), or signed with the first
    /// protocol's message that names no market.
    #[test]
    fn statement_signed_for_another_market_fails_both(h in honest(), other in any::<u64>(), v1 in any::<bool>()) {
        let mut w = h.witness.clone();
        let (r8, s) = if v1 {
            let signed = PeriodStatement {
                meter: h.sk.public_key(),
                period: h.public.period,
                import_wh: low_u64(w.import_wh) as u32,
                export_wh: low_u64(w.export_wh) as u32,
                profile_digest: w.profile_digest,
            }
            .sign(&h.sk);
            (signed.signature.r8, signed.signature.s)
        } else {
            let mut there = w.clone();
            there.public[pi::MARKET] += Fr::from(1 + other);
            resign(&h.sk, &mut there);
            (there.r8, there.s)
        };
        w.r8 = r8;
        w.s = s;
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::Mismatch)))?;
    }

    /// Replayed signature: the statement of another period presented for this one (with the
    /// nullifier of the claimed period, so that only the signature is at stake).
    #[test]
    fn signature_over_another_period_fails_both(h in honest(), delta in 1u64..1000) {
        let mut w = h.witness.clone();
        w.public[pi::PERIOD] += Fr::from(delta);
        renullify(&mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::Mismatch)))?;
    }

    #[test]
    fn tampered_statement_field_fails_both(h in honest(), field in 0u8..3, delta in 1u32..100) {
        let mut w = h.witness.clone();
        let sell = h.public.side == Side::Sell;
        match field {
            // Tamper in the direction that would help the cheater.
            0 if sell => w.export_wh += Fr::from(delta),
            0 => w.import_wh += Fr::from(delta),
            1 if sell => w.import_wh = low_u64(w.import_wh).saturating_sub(u64::from(delta)).into(),
            1 => w.export_wh = low_u64(w.export_wh).saturating_sub(u64::from(delta)).into(),
            _ => w.profile_digest += Fr::from(delta),
        }
        prop_assume!(w != h.witness);
        prop_assume!(w.import_wh.into_bigint().num_bits() <= 32 && w.export_wh.into_bigint().num_bits() <= 32);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::Mismatch)))?;
    }

    /// Packing: moving 2^32 Wh between the packed halves keeps `import + 2^32 export` but is
    /// refused by the range checks before the message is hashed.
    #[test]
    fn amounts_that_pack_to_the_same_value_fail_both(h in honest()) {
        let mut w = h.witness.clone();
        prop_assume!(!w.export_wh.is_zero());
        w.export_wh -= Fr::one();
        w.import_wh += Fr::from(1u64 << 32);
        prop_assert_eq!(message(&w), message(&h.witness));
        assert_rejected(&w, |e| matches!(e, RelationError::OutOfRange("import")))?;
    }

    #[test]
    fn r8_off_curve_or_small_order_fails_both(h in honest(), off in any::<bool>(), dy in 1u64..1000) {
        let mut w = h.witness.clone();
        w.r8 = if off {
            Point::new_unchecked(w.r8.x, w.r8.y + Fr::from(dy))
        } else {
            (w.r8.into_group() + order_of_two()).into_affine()
        };
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::R8(_))))?;
    }

    /// An off-curve meter key, enrolled by a colluding registrar and "signed" for.
    #[test]
    fn meter_key_off_curve_fails_both(h in honest(), dy in 1u64..1000) {
        let mut w = h.witness.clone();
        w.meter_y += Fr::from(dy);
        resign(&h.sk, &mut w);
        reenrol(&h, &mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::PublicKey(_))))?;
    }

    /// A key with a small-order component, A' = A + T: the cofactored equation holds for a
    /// signature that hashes A', so only the subgroup check catches it.
    #[test]
    fn meter_key_of_small_order_component_fails_both(h in honest()) {
        let mut w = h.witness.clone();
        let claimed = (h.sk.public_key().point().into_group() + order_of_two()).into_affine();
        w.meter_x = claimed.x;
        w.meter_y = claimed.y;
        resign(&h.sk, &mut w);
        reenrol(&h, &mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::PublicKey(_))))?;
    }

    /// The identity key: (R8, S) = (r B, r) satisfies S B = R8 + 8 hm A for every message.
    #[test]
    fn identity_meter_key_fails_both(h in honest(), r in any::<[u8; 32]>()) {
        let mut w = h.witness.clone();
        w.meter_x = Fr::zero();
        w.meter_y = Fr::one();
        let r = Scalar::from_le_bytes_mod_order(&r);
        w.r8 = (base8() * r).into_affine();
        w.s = r.into_bigint();
        reenrol(&h, &mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::PublicKey(_))))?;
    }

    /// S + l satisfies the verification equation; only the canonicity check rejects it.
    #[test]
    fn s_not_canonical_fails_both(h in honest()) {
        let mut w = h.witness.clone();
        w.s.add_with_carry(&Scalar::MODULUS);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::NonCanonicalS)))?;
    }

    // ---- I4: enrolled under the public root with this household's key -------------------

    /// Wrong meter: a real meter with a valid signed statement that was never enrolled (the
    /// public root is the registry without it).
    #[test]
    fn meter_not_enrolled_fails_both(h in honest(), seed in any::<u64>()) {
        let outsider = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(seed ^ 0x0075));
        let mut w = h.witness.clone();
        w.meter_x = outsider.public_key().x();
        w.meter_y = outsider.public_key().y();
        resign(&outsider, &mut w);
        renullify(&mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::NotEnrolled))?;
    }

    /// A thief who holds the meter's signed statement (e.g. from the head-end) but not the
    /// household's key: any other nk opens no leaf.
    #[test]
    fn another_households_key_fails_both(h in honest(), nk in field()) {
        prop_assume!(nk != h.nk);
        let mut w = h.witness.clone();
        w.nk = nk;
        renullify(&mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::NotEnrolled))?;
    }

    /// A revoked meter: against the root after its revocation, its old path opens nothing.
    #[test]
    fn revoked_meter_fails_both(h in honest()) {
        let mut w = h.witness.clone();
        let leaf = registry::leaf_from_fields(w.meter_x, w.meter_y, registry::nk_commitment(h.nk));
        let (mut reg, position) = registry_with(leaf, &h.decoys, h.decoys.len() / 2);
        w.position = Fr::from(position);
        w.siblings = reg.path(u64::from(position)).expect("enrolled").siblings;
        reg.revoke(u64::from(position)).expect("enrolled");
        w.public[pi::REGISTRY_ROOT] = reg.root();
        assert_rejected(&w, |e| matches!(e, RelationError::NotEnrolled))?;
        // Its path under the new root opens the empty leaf, not the meter's.
        w.siblings = reg.path(u64::from(position)).expect("position kept").siblings;
        assert_rejected(&w, |e| matches!(e, RelationError::NotEnrolled))?;
    }

    /// Wrong public input: another registry root (one that does not hold the meter).
    #[test]
    fn another_root_fails_both(h in honest(), root in field()) {
        let mut w = h.witness.clone();
        prop_assume!(root != w.public[pi::REGISTRY_ROOT]);
        w.public[pi::REGISTRY_ROOT] = root;
        assert_rejected(&w, |e| matches!(e, RelationError::NotEnrolled))?;
    }

    /// A position with bits above the tree's height: the path would use only its low bits.
    #[test]
    fn position_beyond_the_tree_fails_both(h in honest(), k in 1u64..1 << 20) {
        let mut w = h.witness.clone();
        w.position += Fr::from(k << DEPTH);
        assert_rejected(&w, |e| matches!(e, RelationError::PositionOutOfRange))?;
    }

    /// The path of the leaf at another position.
    #[test]
    fn wrong_position_fails_both(h in honest(), flip in 0usize..DEPTH) {
        let mut w = h.witness.clone();
        w.position = Fr::from(low_u64(w.position) ^ (1 << flip));
        assert_rejected(&w, |e| matches!(e, RelationError::NotEnrolled))?;
    }

    // ---- I5: the order nullifier -------------------------------------------------------

    /// A nullifier that is not this meter's for this period under this key: another
    /// period's (a second order in one period), another meter's, another key's, or random.
    #[test]
    fn nullifier_of_another_period_meter_or_key_fails_both(h in honest(), which in 0u8..4, r in field()) {
        let mut w = h.witness.clone();
        let period = w.public[pi::PERIOD];
        w.public[pi::ORDER_NULLIFIER] = match which {
            0 => registry::order_nullifier(w.nk, w.meter_x, period + Fr::one()),
            1 => registry::order_nullifier(w.nk, w.meter_y, period),
            2 => registry::order_nullifier(r, w.meter_x, period),
            _ => r,
        };
        prop_assume!(w.public[pi::ORDER_NULLIFIER] != h.witness.public[pi::ORDER_NULLIFIER]);
        assert_rejected(&w, |e| matches!(e, RelationError::WrongNullifier))?;
    }
}

fn shape(c: OrderCircuit, setup: bool) -> (usize, usize, usize) {
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
}

/// Key generation must see the same circuit shape as proving; and the circuit stays within
/// the budget of 14,000 constraints.
#[test]
fn circuit_shape_does_not_depend_on_the_witness() {
    let blank = shape(OrderCircuit::blank(), true);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..3 {
        let h = honest().new_tree(&mut runner).expect("strategy").current();
        assert_eq!(shape(OrderCircuit::new(h.witness.clone()), false), blank);
        let mut bad = h.witness.clone();
        bad.public[pi::QUANTITY_WH] = -Fr::one();
        bad.position = -Fr::one();
        bad.s.add_with_carry(&Scalar::MODULUS);
        assert_eq!(shape(OrderCircuit::new(bad), false), blank);
    }
    assert_eq!(
        blank.1,
        1 + pi::COUNT,
        "public inputs plus Groth16's constant one"
    );
    eprintln!("order v2: {} constraints", blank.0);
    assert!(blank.0 <= 14_000, "{} constraints", blank.0);
}

/// A real Groth16 proof verifies for its own public inputs only: another terms hash (the
/// proof lifted onto other terms), root, nullifier, market, period, side or quantity fails.
#[test]
fn proofs_are_bound_to_every_public_input() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (pk, vk) =
        Groth16::<Bn254>::circuit_specific_setup(OrderCircuit::blank(), &mut rng).expect("setup");
    let pvk = Groth16::<Bn254>::process_vk(&vk).expect("vk");
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let h = honest().new_tree(&mut runner).expect("strategy").current();
    let proof = Groth16::<Bn254>::prove(&pk, OrderCircuit::new(h.witness.clone()), &mut rng)
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
}

/// Every public input takes part in a constraint of the R1CS as the prover synthesizes it (so
/// the proof depends on it under any QAP reduction, not only those that add an input
/// constraint per public input, as arkworks' and snarkjs' do). The terms hash would otherwise
/// appear in none: only its own squaring constraint (I6) puts it there.
#[test]
fn every_public_input_is_in_a_constraint() {
    use ark_relations::gr1cs::{OptimizationGoal, R1CS_PREDICATE_LABEL};
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    cs.set_mode(SynthesisMode::Setup);
    OrderCircuit::blank()
        .generate_constraints(cs.clone())
        .expect("synthesis");
    cs.finalize();
    let matrices = cs.to_matrices().expect("matrices");
    let m = &matrices[R1CS_PREDICATE_LABEL];
    for input in 0..pi::COUNT {
        // Instance wire 0 is Groth16's constant one; input i is wire i + 1.
        let wire = input + 1;
        let used = m
            .iter()
            .any(|matrix| matrix.iter().any(|row| row.iter().any(|(_, w)| *w == wire)));
        assert!(used, "public input {input} appears in no constraint");
    }
}
