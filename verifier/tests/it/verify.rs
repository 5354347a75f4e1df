//! Proof verification, single and batched, against real proofs under the development keys.

use ark_bn254::{Fq, Fq2, G2Affine};
use ark_ec::AffineRepr;
use ark_serialize::CanonicalSerialize;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::sync::OnceLock;
use veilwatt_circuits::{
    eddsa::SecretKey,
    order::{OrderPublic, Side},
    statement::{PeriodStatement, SignedPeriodStatement},
};
use veilwatt_params::dev;
use veilwatt_prover::{OrderRequest, ProveError, ProvenOrder, Prover};
use veilwatt_verifier::{OrderProof, OrderVerifier, ProofError, VerifyError, PROOF_BYTES};

fn prover() -> &'static Prover {
    static P: OnceLock<Prover> = OnceLock::new();
    P.get_or_init(|| {
        let keys = dev::keys().expect("development keys");
        Prover::new(keys.pk.clone(), keys.vk_id).expect("prover")
    })
}

fn verifier() -> OrderVerifier {
    let keys = dev::keys().expect("development keys");
    OrderVerifier::new(&keys.vk, keys.vk_id).expect("verifier")
}

fn statement(seed: u64, import_wh: u32, export_wh: u32) -> SignedPeriodStatement {
    let sk = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(seed));
    PeriodStatement {
        meter: sk.public_key(),
        period: 40_000 + seed,
        import_wh,
        export_wh,
        profile_digest: veilwatt_circuits::statement::profile_digest(&[(import_wh, export_wh)]),
    }
    .sign(&sk)
}

/// A few honest proofs, made once: sells and buys from different meters.
fn proofs() -> &'static Vec<ProvenOrder> {
    static P: OnceLock<Vec<ProvenOrder>> = OnceLock::new();
    P.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        (0..6u64)
            .map(|i| {
                let (st, order) = if i % 2 == 0 {
                    (
                        statement(i, 100, 2_500 + i as u32),
                        OrderRequest {
                            side: Side::Sell,
                            quantity_wh: 1_000,
                        },
                    )
                } else {
                    (
                        statement(i, 3_000, 200),
                        OrderRequest {
                            side: Side::Buy,
                            quantity_wh: 2_800,
                        },
                    )
                };
                prover().prove(&st, &order, &mut rng).expect("honest proof")
            })
            .collect()
    })
}

#[test]
fn honest_proofs_verify_and_have_canonical_encoding() {
    let v = verifier();
    for p in proofs() {
        assert_eq!(v.verify(&p.public, &p.proof), Ok(()));
        assert_eq!(p.proof.0.len(), PROOF_BYTES);
        let decoded = p.proof.decode().unwrap();
        assert_eq!(OrderProof::from_proof(&decoded), p.proof);
        let json = serde_json::to_string(&p.proof).unwrap();
        assert_eq!(json, format!("\"{}\"", p.proof.to_hex()));
        assert_eq!(serde_json::from_str::<OrderProof>(&json).unwrap(), p.proof);
    }
}

#[test]
fn proof_does_not_verify_for_any_other_public_inputs() {
    let v = verifier();
    let other_meter = SecretKey::generate(&mut ChaCha20Rng::seed_from_u64(1234)).public_key();
    for p in proofs() {
        let base = p.public;
        let flipped = match base.side {
            Side::Sell => Side::Buy,
            Side::Buy => Side::Sell,
        };
        let variants = [
            OrderPublic {
                quantity_wh: base.quantity_wh - 1,
                ..base
            },
            OrderPublic {
                quantity_wh: base.quantity_wh + 1,
                ..base
            },
            OrderPublic {
                period: base.period + 1,
                ..base
            },
            OrderPublic {
                period: base.period - 1,
                ..base
            },
            OrderPublic {
                side: flipped,
                ..base
            },
            OrderPublic {
                meter: other_meter,
                ..base
            },
        ];
        for (k, public) in variants.iter().enumerate() {
            assert_eq!(
                v.verify(public, &p.proof),
                Err(VerifyError::Rejected),
                "variant {k}"
            );
        }
    }
}

#[test]
fn proofs_are_not_interchangeable_between_orders() {
    let v = verifier();
    let ps = proofs();
    for (i, a) in ps.iter().enumerate() {
        for (j, b) in ps.iter().enumerate() {
            if i != j {
                assert_eq!(v.verify(&a.public, &b.proof), Err(VerifyError::Rejected));
            }
        }
    }
}

#[test]
fn prover_refuses_orders_the_statement_does_not_cover() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let st = statement(77, 100, 600);
    let too_much = OrderRequest {
        side: Side::Sell,
        quantity_wh: 501,
    };
    assert!(matches!(
        prover().prove(&st, &too_much, &mut rng),
        Err(ProveError::Relation(_))
    ));
    let wrong_side = OrderRequest {
        side: Side::Buy,
        quantity_wh: 1,
    };
    assert!(matches!(
        prover().prove(&st, &wrong_side, &mut rng),
        Err(ProveError::Relation(_))
    ));
    let mut forged = st;
    forged.statement.export_wh += 1_000;
    let order = OrderRequest {
        side: Side::Sell,
        quantity_wh: 1_000,
    };
    assert!(matches!(
        prover().prove(&forged, &order, &mut rng),
        Err(ProveError::Relation(_))
    ));
    // Exactly the net is fine.
    let exact = OrderRequest {
        side: Side::Sell,
        quantity_wh: 500,
    };
    assert!(prover().prove(&st, &exact, &mut rng).is_ok());
}

#[test]
fn malformed_proofs_get_typed_errors() {
    let v = verifier();
    let p = proofs()[0];
    assert!(matches!(
        OrderProof::from_hex("zz"),
        Err(ProofError::Length(_))
    ));
    assert!(matches!(
        OrderProof::from_hex(&"zz".repeat(PROOF_BYTES)),
        Err(ProofError::Hex(_))
    ));
    assert!(matches!(
        OrderProof::from_slice(&[0u8; 127]),
        Err(ProofError::Length(127))
    ));
    assert!(serde_json::from_str::<OrderProof>("\"00\"").is_err());
    assert!(serde_json::from_str::<OrderProof>("17").is_err());

    // All-ones bytes: coordinates above the modulus.
    let ones = veilwatt_verifier::Groth16Proof([0xff; PROOF_BYTES]);
    assert!(matches!(
        v.verify(&p.public, &ones),
        Err(VerifyError::Malformed(ProofError::Encoding(_)))
    ));

    // Every single-bit flip is either rejected as malformed or fails verification; never Ok,
    // never a panic.
    for byte in 0..PROOF_BYTES {
        for bit in [0, 3, 7] {
            let mut bad = p.proof;
            bad.0[byte] ^= 1 << bit;
            match v.verify(&p.public, &bad) {
                Err(VerifyError::Malformed(_)) | Err(VerifyError::Rejected) => {}
                other => panic!("byte {byte} bit {bit}: {other:?}"),
            }
        }
    }

    // B on the G2 curve but outside the prime-order subgroup.
    let mut x = Fq2::new(Fq::from(1u64), Fq::from(0u64));
    let off_subgroup = loop {
        if let Some(q) = G2Affine::get_point_from_x_unchecked(x, false) {
            if !q.is_in_correct_subgroup_assuming_on_curve() {
                break q;
            }
        }
        x.c0 += Fq::from(1u64);
    };
    let mut proof = p.proof.decode().unwrap();
    proof.b = off_subgroup;
    let mut bytes = [0u8; PROOF_BYTES];
    proof.serialize_compressed(&mut bytes[..]).unwrap();
    assert!(matches!(
        v.verify(&p.public, &veilwatt_verifier::Groth16Proof(bytes)),
        Err(VerifyError::Malformed(ProofError::Encoding(_)))
    ));
    // The identity in place of A.
    let mut proof = p.proof.decode().unwrap();
    proof.a = ark_bn254::G1Affine::zero();
    assert_eq!(
        v.verify(&p.public, &OrderProof::from_proof(&proof)),
        Err(VerifyError::Rejected)
    );
}

#[test]
fn batch_accepts_valid_proofs() {
    let v = verifier();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    assert_eq!(v.verify_batch(&[], &mut rng), Ok(()));
    let batch: Vec<_> = proofs()
        .iter()
        .cycle()
        .take(16)
        .map(|p| (p.public, p.proof))
        .collect();
    assert_eq!(v.verify_batch(&batch, &mut rng), Ok(()));
}

#[test]
fn batch_names_exactly_the_bad_proofs() {
    let v = verifier();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let good: Vec<_> = proofs()
        .iter()
        .cycle()
        .take(16)
        .map(|p| (p.public, p.proof))
        .collect();

    // One proof presented for another quantity, at every position.
    for k in 0..good.len() {
        let mut batch = good.clone();
        batch[k].0.quantity_wh -= 1;
        let err = v.verify_batch(&batch, &mut rng).unwrap_err();
        assert_eq!(
            err.invalid,
            vec![(k, VerifyError::Rejected)],
            "bad proof at {k}"
        );
    }

    // Several at once, including a malformed encoding and a swapped proof.
    let mut batch = good.clone();
    batch[2].0.period += 1;
    batch[7].1 = veilwatt_verifier::Groth16Proof([0xff; PROOF_BYTES]);
    batch[11].1 = good[12].1;
    batch[15].0.side = Side::Buy;
    batch[15].0.meter = good[1].0.meter;
    let err = v.verify_batch(&batch, &mut rng).unwrap_err();
    let idx: Vec<usize> = err.invalid.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, vec![2, 7, 11, 15]);
    assert!(matches!(err.invalid[1].1, VerifyError::Malformed(_)));

    // Two bad proofs whose errors might cancel in an unweighted sum: A_1 + d and A_2 - d.
    let mut batch = good.clone();
    let mut p1 = batch[0].1.decode().unwrap();
    let mut p2 = batch[1].1.decode().unwrap();
    let d = ark_bn254::G1Affine::generator();
    p1.a = (p1.a + d).into();
    p2.a = (p2.a - d).into();
    batch[0].1 = OrderProof::from_proof(&p1);
    batch[1].1 = OrderProof::from_proof(&p2);
    let err = v.verify_batch(&batch, &mut rng).unwrap_err();
    assert_eq!(
        err.invalid.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0, 1]
    );
}

#[test]
fn verifier_rejects_a_key_for_another_circuit() {
    let keys = dev::keys().unwrap();
    let mut vk = keys.vk.clone();
    vk.gamma_abc_g1.pop();
    assert!(matches!(
        OrderVerifier::new(&vk, keys.vk_id),
        Err(VerifyError::InputCount { .. })
    ));
}
