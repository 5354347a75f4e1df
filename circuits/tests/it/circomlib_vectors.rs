//! Compatibility with circomlib/circomlibjs: vectors produced by `tools/circomlib-vectors/gen.mjs`
//! (circomlibjs 0.1.7) must hash, verify and prove identically here, natively and in-circuit.

use ark_bn254::Fr;
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::BigInteger256;
use ark_r1cs_std::{alloc::AllocVar, fields::fp::FpVar, GR1CSVar};
use ark_relations::gr1cs::ConstraintSystem;
use serde::Deserialize;
use std::str::FromStr;
use veilwatt_circuits::{
    babyjub::{base8, Point},
    eddsa::{self, PublicKey, SecretKey, Signature},
    order::{check_relation, OrderCircuit, OrderPrivate, OrderPublic, OrderWitness, Side},
    order_v2, poseidon, registry,
    statement::{self, PeriodStatement, SignedPeriodStatement},
};

#[derive(Deserialize)]
struct Vectors {
    domain_period: String,
    domain_profile: String,
    poseidon: Vec<PoseidonVector>,
    babyjub: BabyJubVectors,
    eddsa: Vec<EddsaVector>,
    statements: Vec<StatementVector>,
    domain_period_v2: String,
    market_statements: Vec<MarketStatementVector>,
}

#[derive(Deserialize)]
struct PoseidonVector {
    inputs: Vec<String>,
    output: String,
}

#[derive(Deserialize)]
struct BabyJubVectors {
    base8: [String; 2],
    multiples: Vec<Multiple>,
}

#[derive(Deserialize)]
struct Multiple {
    k: String,
    point: [String; 2],
}

#[derive(Deserialize)]
struct EddsaVector {
    private_key: String,
    public_key: [String; 2],
    msg: String,
    r8: [String; 2],
    s: String,
}

#[derive(Deserialize)]
struct StatementVector {
    period: u64,
    import_wh: u32,
    export_wh: u32,
    readings: Vec<(u32, u32)>,
    profile_digest: String,
    #[serde(flatten)]
    signed: EddsaVector,
}

#[derive(Deserialize)]
struct MarketStatementVector {
    market: String,
    period: u64,
    import_wh: u32,
    export_wh: u32,
    profile_digest: String,
    nk: String,
    nk_commit: String,
    leaf: String,
    order_nullifier: String,
    #[serde(flatten)]
    signed: EddsaVector,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("../vectors/circomlib.json")).expect("vector file parses")
}

fn fr(s: &str) -> Fr {
    Fr::from_str(s).expect("decimal field element")
}

fn point(c: &[String; 2]) -> Point {
    Point::new_unchecked(fr(&c[0]), fr(&c[1]))
}

fn signature(v: &EddsaVector) -> Signature {
    let s = BigInteger256::from_str(&v.s).expect("decimal S");
    Signature {
        r8: point(&v.r8),
        s,
    }
}

fn secret(v: &EddsaVector) -> SecretKey {
    let bytes: [u8; 32] = hex::decode(&v.private_key).unwrap().try_into().unwrap();
    SecretKey::from_bytes(bytes)
}

#[test]
fn poseidon_matches_circomlibjs_for_every_width() {
    let v = vectors();
    let mut arities = std::collections::BTreeSet::new();
    for case in &v.poseidon {
        let inputs: Vec<Fr> = case.inputs.iter().map(|s| fr(s)).collect();
        let expected = fr(&case.output);
        let got = match inputs.len() {
            1 => poseidon::hash::<1>(&inputs.clone().try_into().unwrap()),
            2 => poseidon::hash::<2>(&inputs.clone().try_into().unwrap()),
            3 => poseidon::hash::<3>(&inputs.clone().try_into().unwrap()),
            4 => poseidon::hash::<4>(&inputs.clone().try_into().unwrap()),
            5 => poseidon::hash::<5>(&inputs.clone().try_into().unwrap()),
            6 => poseidon::hash::<6>(&inputs.clone().try_into().unwrap()),
            7 => poseidon::hash::<7>(&inputs.clone().try_into().unwrap()),
            n => panic!("unexpected arity {n}"),
        };
        assert_eq!(got, expected, "Poseidon({:?})", case.inputs);
        arities.insert(inputs.len());
    }
    assert_eq!(arities.len(), poseidon::MAX_INPUTS);
}

#[test]
fn poseidon_gadget_matches_circomlibjs() {
    for case in vectors().poseidon {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let vars: Vec<FpVar<Fr>> = case
            .inputs
            .iter()
            .map(|s| FpVar::new_witness(cs.clone(), || Ok(fr(s))).unwrap())
            .collect();
        let out = match vars.len() {
            1 => poseidon::gadget::hash::<1>(&vars.try_into().unwrap()),
            2 => poseidon::gadget::hash::<2>(&vars.try_into().unwrap()),
            3 => poseidon::gadget::hash::<3>(&vars.try_into().unwrap()),
            4 => poseidon::gadget::hash::<4>(&vars.try_into().unwrap()),
            5 => poseidon::gadget::hash::<5>(&vars.try_into().unwrap()),
            6 => poseidon::gadget::hash::<6>(&vars.try_into().unwrap()),
            7 => poseidon::gadget::hash::<7>(&vars.try_into().unwrap()),
            n => panic!("unexpected arity {n}"),
        }
        .unwrap();
        assert_eq!(out.value().unwrap(), fr(&case.output));
        assert!(cs.is_satisfied().unwrap());
    }
}

#[test]
fn baby_jubjub_coordinates_match_eip2494() {
    let v = vectors();
    assert_eq!(point(&v.babyjub.base8), base8());
    for m in &v.babyjub.multiples {
        let k = BigInteger256::from_str(&m.k).unwrap();
        assert_eq!(
            base8().mul_bigint(k).into_affine(),
            point(&m.point),
            "k = {}",
            m.k
        );
    }
}

#[test]
fn eddsa_keys_and_signatures_match_circomlibjs() {
    for v in vectors().eddsa {
        let sk = secret(&v);
        let pk = sk.public_key();
        assert_eq!(
            pk.point(),
            point(&v.public_key),
            "public key of {}",
            v.private_key
        );
        let msg = fr(&v.msg);
        let sig = sk.sign(msg);
        assert_eq!(sig, signature(&v), "signature by {}", v.private_key);
        let pk = PublicKey::from_coordinates(pk.x(), pk.y()).expect("valid key");
        assert_eq!(eddsa::verify(&pk, msg, &signature(&v)), Ok(()));
    }
}

#[test]
fn statements_signed_by_circomlibjs_verify_and_prove() {
    let v = vectors();
    assert_eq!(fr(&v.domain_period), statement::DOMAIN_PERIOD);
    assert_eq!(fr(&v.domain_profile), statement::DOMAIN_PROFILE);
    for s in &v.statements {
        let meter =
            PublicKey::from_coordinates(fr(&s.signed.public_key[0]), fr(&s.signed.public_key[1]))
                .unwrap();
        let digest = statement::profile_digest(&s.readings);
        assert_eq!(digest, fr(&s.profile_digest));
        let st = PeriodStatement {
            meter,
            period: s.period,
            import_wh: s.import_wh,
            export_wh: s.export_wh,
            profile_digest: digest,
        };
        assert_eq!(st.message(), fr(&s.signed.msg));
        let signed = SignedPeriodStatement {
            statement: st,
            signature: signature(&s.signed),
        };
        assert_eq!(signed.verify(), Ok(()));
        assert_eq!(st.sign(&secret(&s.signed)), signed);

        // The same signed statement satisfies the order relation natively and in-circuit.
        let (side, net) = if s.export_wh >= s.import_wh {
            (Side::Sell, s.export_wh - s.import_wh)
        } else {
            (Side::Buy, s.import_wh - s.export_wh)
        };
        let public = OrderPublic {
            meter,
            period: s.period,
            side,
            quantity_wh: net.max(1),
        };
        let w = OrderWitness::new(&public, &OrderPrivate::from_statement(&signed));
        if net == 0 {
            continue;
        }
        assert_eq!(check_relation(&w), Ok(()));
        let cs = ConstraintSystem::<Fr>::new_ref();
        ark_relations::gr1cs::ConstraintSynthesizer::generate_constraints(
            OrderCircuit::new(w),
            cs.clone(),
        )
        .unwrap();
        assert!(
            cs.is_satisfied().unwrap(),
            "{:?}",
            cs.which_is_unsatisfied()
        );
        println!("order circuit: {} constraints", cs.num_constraints());
    }
}

/// Market-bound statements signed by circomlibjs, with the registry leaf and order nullifier it
/// computes, verify here and satisfy the unlinkable order relation natively and in-circuit.
#[test]
fn market_statements_signed_by_circomlibjs_verify_and_prove() {
    let v = vectors();
    assert_eq!(fr(&v.domain_period_v2), statement::DOMAIN_PERIOD_V2);
    let mut reg = registry::MemoryRegistry::new();
    let mut enrolled = Vec::new();
    for s in &v.market_statements {
        let meter =
            PublicKey::from_coordinates(fr(&s.signed.public_key[0]), fr(&s.signed.public_key[1]))
                .expect("valid key");
        let st = PeriodStatement {
            meter,
            period: s.period,
            import_wh: s.import_wh,
            export_wh: s.export_wh,
            profile_digest: fr(&s.profile_digest),
        };
        let market = fr(&s.market);
        assert_eq!(st.market_message(market), fr(&s.signed.msg));
        let signed = SignedPeriodStatement {
            statement: st,
            signature: signature(&s.signed),
        };
        assert_eq!(signed.verify_for_market(market), Ok(()));
        assert_eq!(st.sign_for_market(&secret(&s.signed), market), signed);
        assert!(signed.verify_for_market(market + Fr::from(1u64)).is_err());
        let nk = fr(&s.nk);
        assert_eq!(registry::nk_commitment(nk), fr(&s.nk_commit));
        let leaf = registry::leaf(&meter, fr(&s.nk_commit));
        assert_eq!(leaf, fr(&s.leaf));
        let nf = registry::order_nullifier(nk, meter.x(), Fr::from(s.period));
        assert_eq!(nf, fr(&s.order_nullifier));
        enrolled.push((reg.enrol(leaf).expect("room"), nk, signed, nf));
    }
    for (position, nk, signed, nf) in enrolled {
        let st = signed.statement;
        let (side, net) = if st.export_wh >= st.import_wh {
            (Side::Sell, st.export_wh - st.import_wh)
        } else {
            (Side::Buy, st.import_wh - st.export_wh)
        };
        let public = order_v2::OrderPublic {
            registry_root: reg.root(),
            order_nullifier: nf,
            market: fr(&v.market_statements[position as usize].market),
            period: st.period,
            side,
            quantity_wh: net,
            terms: Fr::from(position),
        };
        let private = order_v2::OrderPrivate {
            nk,
            path: reg.path(u64::from(position)).expect("enrolled"),
            statement: signed,
        };
        let w = order_v2::OrderWitness::new(&public, &private);
        assert_eq!(order_v2::check_relation(&w), Ok(()));
        let cs = ConstraintSystem::<Fr>::new_ref();
        ark_relations::gr1cs::ConstraintSynthesizer::generate_constraints(
            order_v2::OrderCircuit::new(w),
            cs.clone(),
        )
        .expect("synthesis");
        assert!(
            cs.is_satisfied().expect("computable"),
            "{:?}",
            cs.which_is_unsatisfied()
        );
    }
}
