//! Gadget equals native, on property tests: Poseidon, the statement hash and EdDSA verification.

use ark_bn254::Fr;
use ark_ff::PrimeField;
use ark_r1cs_std::{alloc::AllocVar, fields::fp::FpVar, prelude::Boolean, GR1CSVar};
use ark_relations::gr1cs::{ConstraintSystem, ConstraintSystemRef};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::{
    babyjub::{gadget::alloc_subgroup_point, Scalar},
    eddsa::{self, gadget::SignatureVar, SecretKey, S_BITS},
    poseidon,
    statement::{self, PeriodStatement},
};

fn field() -> impl Strategy<Value = Fr> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|b| Fr::from_le_bytes_mod_order(&b)),
        any::<u64>().prop_map(Fr::from),
        (0u64..4).prop_map(|k| -Fr::from(k)),
    ]
}

fn witnesses<const N: usize>(cs: &ConstraintSystemRef<Fr>, xs: &[Fr; N]) -> [FpVar<Fr>; N] {
    xs.map(|x| FpVar::new_witness(cs.clone(), || Ok(x)).unwrap())
}

fn check_poseidon<const N: usize>(xs: [Fr; N]) -> Result<(), TestCaseError> {
    let cs = ConstraintSystem::<Fr>::new_ref();
    let out = poseidon::gadget::hash(&witnesses(&cs, &xs)).unwrap();
    prop_assert_eq!(out.value().unwrap(), poseidon::hash(&xs));
    prop_assert!(cs.is_satisfied().unwrap());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn poseidon_gadget_equals_native(
        a in field(), b in field(), c in field(), d in field(), e in field(), f in field(),
        g in field(),
    ) {
        check_poseidon([a])?;
        check_poseidon([a, b])?;
        check_poseidon([a, b, c])?;
        check_poseidon([a, b, c, d])?;
        check_poseidon([a, b, c, d, e])?;
        check_poseidon([a, b, c, d, e, f])?;
        check_poseidon([a, b, c, d, e, f, g])?;
    }

    #[test]
    fn statement_hash_gadget_equals_native(
        seed in any::<u64>(), period in any::<u64>(), import in any::<u32>(),
        export in any::<u32>(), digest in field(),
    ) {
        let sk = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(seed));
        let st = PeriodStatement {
            meter: sk.public_key(), period, import_wh: import, export_wh: export,
            profile_digest: digest,
        };
        let cs = ConstraintSystem::<Fr>::new_ref();
        let [x, y, p, i, e, dg] = witnesses(&cs, &[
            st.meter.x(), st.meter.y(), Fr::from(period), Fr::from(import), Fr::from(export),
            digest,
        ]);
        let msg = statement::gadget::message(&x, &y, &p, &i, &e, &dg).unwrap();
        prop_assert_eq!(msg.value().unwrap(), st.message());
        prop_assert!(cs.is_satisfied().unwrap());
    }

    /// The gadget accepts exactly what native verification accepts: honest signatures, and
    /// signatures checked against a different message, key, or with S + l.
    #[test]
    fn eddsa_gadget_equals_native(
        seed in any::<u64>(), msg in field(), other in field(), tamper in 0u8..4,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let sk = SecretKey::generate(&mut rng);
        let mut pk = sk.public_key();
        let mut sig = sk.sign(msg);
        let mut signed_msg = msg;
        match tamper {
            0 => {}
            1 => signed_msg = other,
            2 => pk = SecretKey::generate(&mut rng).public_key(),
            _ => { ark_ff::BigInteger::add_with_carry(&mut sig.s, &Scalar::MODULUS); }
        }
        let native = eddsa::verify(&pk, signed_msg, &sig);

        let cs = ConstraintSystem::<Fr>::new_ref();
        let a = alloc_subgroup_point(cs.clone(), Some(pk.point())).unwrap();
        let r8 = alloc_subgroup_point(cs.clone(), Some(sig.r8)).unwrap();
        let bits = ark_ff::BigInteger::to_bits_le(&sig.s);
        let s_bits = (0..S_BITS)
            .map(|i| Boolean::new_witness(cs.clone(), || Ok(bits[i])).unwrap())
            .collect();
        let m = FpVar::new_witness(cs.clone(), || Ok(signed_msg)).unwrap();
        eddsa::gadget::enforce_verify(&a, &m, &SignatureVar { r8, s_bits }).unwrap();
        prop_assert_eq!(native.is_ok(), cs.is_satisfied().unwrap(), "native: {:?}", native);
        prop_assert_eq!(native.is_ok(), tamper == 0 || (tamper == 1 && other == msg));
    }
}
