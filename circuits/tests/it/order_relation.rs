//! The order relation checked twice, natively (`check_relation`) and in R1CS
//! (`cs.is_satisfied()`), on the same property-test statements: honest statements pass both,
//! and one malicious strategy per invariant fails both.

use ark_bn254::Fr;
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{BigInteger, One, PrimeField, Zero};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use proptest::{prelude::*, strategy::ValueTree};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::{
    babyjub::{base8, Point, Scalar},
    eddsa::{SecretKey, SignatureError},
    order::{
        check_relation, public_input as pi, OrderCircuit, OrderPrivate, OrderPublic, OrderWitness,
        RelationError, Side,
    },
    statement::{self, PeriodStatement},
};

/// An honest household: a meter key, its signed statement and an order it may place.
#[derive(Clone, Debug)]
struct Honest {
    sk: SecretKey,
    public: OrderPublic,
    witness: OrderWitness,
}

fn honest() -> impl Strategy<Value = Honest> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<u32>(),
    )
        .prop_filter("net must be nonzero", |(_, _, i, e, _, _)| i != e)
        .prop_map(|(seed, period, import_wh, export_wh, digest, q)| {
            let sk = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(seed));
            let statement = PeriodStatement {
                meter: sk.public_key(),
                period,
                import_wh,
                export_wh,
                profile_digest: Fr::from_le_bytes_mod_order(&digest),
            };
            let signed = statement.sign(&sk);
            let (side, net) = if export_wh > import_wh {
                (Side::Sell, export_wh - import_wh)
            } else {
                (Side::Buy, import_wh - export_wh)
            };
            let public = OrderPublic {
                meter: sk.public_key(),
                period,
                side,
                quantity_wh: 1 + q % net,
            };
            let witness = OrderWitness::new(&public, &OrderPrivate::from_statement(&signed));
            Honest {
                sk,
                public,
                witness,
            }
        })
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

/// Re-signs `w`'s statement fields (as a colluding meter would), so that only the invariant the
/// test breaks is broken.
fn resign(sk: &SecretKey, w: &mut OrderWitness) {
    let msg = statement::message_from_fields(
        w.public[pi::METER_X],
        w.public[pi::METER_Y],
        w.public[pi::PERIOD],
        w.import_wh,
        w.export_wh,
        w.profile_digest,
    );
    let sig = sk.sign(msg);
    w.r8 = sig.r8;
    w.s = sig.s;
}

fn order_of_two() -> Point {
    Point::new_unchecked(Fr::zero(), -Fr::one())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn honest_orders_pass_both(h in honest()) {
        prop_assert_eq!(check_relation(&h.witness), Ok(()));
        prop_assert!(circuit_accepts(&h.witness));
    }

    // ---- I3: net covers quantity -------------------------------------------------------

    #[test]
    fn quantity_above_net_fails_both(h in honest(), extra in 1u32..=u32::MAX) {
        let mut w = h.witness.clone();
        let (i, e) = (w.import_wh, w.export_wh);
        let net = if h.public.side == Side::Sell { e - i } else { i - e };
        let net = net.into_bigint().0[0];
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
    /// number: only the u32 range checks stand between them and a fake surplus.
    #[test]
    fn field_wrapping_amounts_fail_both(h in honest(), x in 1u32..1 << 30, which in 0u8..2) {
        let mut w = h.witness.clone();
        let sell = h.public.side == Side::Sell;
        match which {
            // "import" of -x on a sell (or "export" of -x on a buy) adds x to the net.
            0 if sell => w.import_wh = -Fr::from(x),
            0 => w.export_wh = -Fr::from(x),
            // A quantity of -x: net - quantity = net + x stays small.
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

    // ---- I2: the meter's signature ---------------------------------------------------

    #[test]
    fn signature_by_another_key_fails_both(h in honest(), seed in any::<u64>()) {
        let other = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(seed ^ 0x5eed));
        let mut w = h.witness.clone();
        resign(&other, &mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::Mismatch)))?;
    }

    #[test]
    fn signature_over_another_period_or_meter_fails_both(h in honest(), seed in any::<u64>(), meter in any::<bool>()) {
        let mut w = h.witness.clone();
        if meter {
            // The statement was signed for another meter's key (by that meter), presented
            // under this meter's key.
            let other = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(seed ^ 0xbeef)).public_key();
            let mut signed = w.clone();
            signed.public[pi::METER_X] = other.x();
            signed.public[pi::METER_Y] = other.y();
            resign(&h.sk, &mut signed);
            w.r8 = signed.r8;
            w.s = signed.s;
        } else {
            w.public[pi::PERIOD] += Fr::from(1 + seed % 1000);
        }
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
            1 if sell => w.import_wh = w.import_wh.into_bigint().0[0].saturating_sub(u64::from(delta)).into(),
            1 => w.export_wh = w.export_wh.into_bigint().0[0].saturating_sub(u64::from(delta)).into(),
            _ => w.profile_digest += Fr::from(delta),
        }
        prop_assume!(w != h.witness);
        // Keep the tampered amounts in range so that only the signature is at stake.
        prop_assume!(w.import_wh.into_bigint().num_bits() <= 32 && w.export_wh.into_bigint().num_bits() <= 32);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::Mismatch)))?;
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

    #[test]
    fn meter_key_off_curve_fails_both(h in honest(), dy in 1u64..1000) {
        let mut w = h.witness.clone();
        w.public[pi::METER_Y] += Fr::from(dy);
        resign(&h.sk, &mut w);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::PublicKey(_))))?;
    }

    /// A key with a small-order component, A' = A + T: the cofactored equation
    /// S B = R + 8 hm A' holds for a signature that hashes A', so only the subgroup check
    /// catches it.
    #[test]
    fn meter_key_of_small_order_component_fails_both(h in honest()) {
        let mut w = h.witness.clone();
        let claimed = (h.public.meter.point().into_group() + order_of_two()).into_affine();
        w.public[pi::METER_X] = claimed.x;
        w.public[pi::METER_Y] = claimed.y;
        let msg = statement::message_from_fields(
            claimed.x, claimed.y, w.public[pi::PERIOD], w.import_wh, w.export_wh, w.profile_digest,
        );
        let sig = h.sk.sign_with_claimed_key(&claimed, msg);
        w.r8 = sig.r8;
        w.s = sig.s;
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::PublicKey(_))))?;
    }

    /// The identity key: (R8, S) = (r B, r) satisfies S B = R8 + 8 hm A for every message.
    #[test]
    fn identity_meter_key_fails_both(h in honest(), r in any::<[u8; 32]>()) {
        let mut w = h.witness.clone();
        w.public[pi::METER_X] = Fr::zero();
        w.public[pi::METER_Y] = Fr::one();
        let r = Scalar::from_le_bytes_mod_order(&r);
        w.r8 = (base8() * r).into_affine();
        w.s = r.into_bigint();
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::PublicKey(_))))?;
    }

    /// S + l satisfies the verification equation; only the canonicity check rejects it.
    #[test]
    fn s_not_canonical_fails_both(h in honest()) {
        let mut w = h.witness.clone();
        w.s.add_with_carry(&Scalar::MODULUS);
        assert_rejected(&w, |e| matches!(e, RelationError::Signature(SignatureError::NonCanonicalS)))?;
    }
}

/// Key generation must see the same circuit shape as proving: equal constraint counts for a
/// blank circuit and for honest and malicious witnesses.
#[test]
fn circuit_shape_does_not_depend_on_the_witness() {
    let count = |c: OrderCircuit| {
        let cs = ConstraintSystem::<Fr>::new_ref();
        c.generate_constraints(cs.clone()).unwrap();
        (
            cs.num_constraints(),
            cs.num_instance_variables(),
            cs.num_witness_variables(),
        )
    };
    let blank = {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_mode(ark_relations::gr1cs::SynthesisMode::Setup);
        OrderCircuit::blank()
            .generate_constraints(cs.clone())
            .unwrap();
        (
            cs.num_constraints(),
            cs.num_instance_variables(),
            cs.num_witness_variables(),
        )
    };
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..4 {
        let h = honest().new_tree(&mut runner).unwrap().current();
        assert_eq!(count(OrderCircuit::new(h.witness.clone())), blank);
        let mut bad = h.witness.clone();
        bad.public[pi::QUANTITY_WH] = -Fr::one();
        bad.s.add_with_carry(&Scalar::MODULUS);
        assert_eq!(count(OrderCircuit::new(bad)), blank);
    }
    assert_eq!(
        blank.1,
        1 + pi::COUNT,
        "public inputs plus Groth16's constant one"
    );
}
