//! Admission: every error code, batching, de-duplication, the bounded mempool and the proof cache,
//! with real proofs under the development keys.

use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use veilwatt_circuits::{eddsa::SecretKey, statement::PeriodStatement};
use veilwatt_node::admission::{Admission, AdmissionConfig, AdmitError, ProofCache};
use veilwatt_node::mempool::Mempool;
use veilwatt_params::dev;
use veilwatt_prover::{OrderRequest, Prover};
use veilwatt_verifier::ledger::{Ledger, LedgerRead, ProofCheck, TxError};
use veilwatt_verifier::state::{MemoryState, Overlay, StateUpdate};
use veilwatt_verifier::types::*;
use veilwatt_verifier::OrderVerifier;

const T0: u64 = 1_000_000;

fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

fn wallet(k: &SigningKey) -> WalletKey {
    WalletKey(k.verifying_key().to_bytes())
}

fn genesis() -> Genesis {
    Genesis {
        chain_id: "admission-test".into(),
        genesis_time: T0,
        validators: vec![Validator {
            name: "v".into(),
            key: wallet(&key(201)),
            power: 1,
        }],
        registrar: wallet(&key(200)),
        period_secs: 60,
        gate_delay_secs: 30,
        mechanism: Mechanism::Uniform,
        fees: FeeSchedule {
            grid_fee_per_kwh: 5,
            market_fee_per_kwh: 2,
            market_fee_buyer_share_bps: 5_000,
        },
        price_floor: 8,
        price_cap: 30,
        vk_id: Hash32(dev::keys().unwrap().vk_id.0),
        insecure_dev_keys: true,
        max_tx_lifetime_secs: veilwatt_verifier::types::DEFAULT_MAX_TX_LIFETIME_SECS,
        result_retention_periods: veilwatt_verifier::types::DEFAULT_RESULT_RETENTION_PERIODS,
        shielded: None,
        anonymous: None,
        consensus: Default::default(),
        spam: Default::default(),
    }
}

fn meter(i: u8) -> SecretKey {
    SecretKey::from_bytes([i; 32])
}

fn order(g: &Genesis, i: u8, q: u32, proven_q: u32, price: u64) -> Transaction {
    let keys = dev::keys().unwrap();
    let prover = Prover::new(keys.pk.clone(), keys.vk_id).unwrap();
    let st = PeriodStatement {
        meter: meter(i).public_key(),
        period: 0,
        import_wh: 10,
        export_wh: 10 + proven_q,
        profile_digest: veilwatt_circuits::statement::profile_digest(&[]),
    }
    .sign(&meter(i));
    let p = prover
        .prove(
            &st,
            &OrderRequest {
                side: veilwatt_circuits::order::Side::Sell,
                quantity_wh: proven_q,
            },
            &mut ChaCha20Rng::seed_from_u64(i.into()),
        )
        .unwrap();
    let body = TxBody::Order {
        meter: MeterKey::from_public_key(&meter(i).public_key()),
        period: 0,
        side: Side::Sell,
        quantity_wh: q,
        limit_price: price,
        proof: p.proof,
    };
    Transaction::sign(&g.chain_id, body, T0 + 600, &key(i))
}

/// The state after block 1, which enrols households 1..=3.
fn state(g: &Genesis) -> MemoryState {
    let ledger = Ledger::new(g).unwrap();
    let mut s = MemoryState::default();
    s.commit(ledger.genesis_update(&s).unwrap());
    let txs = (1..=3u8)
        .map(|i| {
            let enroll = TxBody::EnrollMeter {
                meter: MeterKey::from_public_key(&meter(i).public_key()),
                owner: wallet(&key(i)),
            };
            Transaction::sign(&g.chain_id, enroll, T0 + 600, &key(200))
        })
        .collect();
    let block = Block {
        height: 1,
        prev_hash: Hash32::default(),
        time: T0,
        proposer: wallet(&key(201)),
        txs,
        state_root: Hash32::default(),
    };
    let (changes, _) = ledger.execute(&s, &block, &NoProofs).unwrap();
    let update = StateUpdate::compute(&s, 1, changes).unwrap();
    s.commit(update);
    s
}

/// Enrolment blocks carry no proofs.
struct NoProofs;

impl ProofCheck for NoProofs {
    fn check(
        &self,
        items: &[(
            veilwatt_circuits::order::OrderPublic,
            veilwatt_verifier::OrderProof,
        )],
    ) -> Result<(), veilwatt_verifier::BatchFailure> {
        assert!(items.is_empty());
        Ok(())
    }
}

const IN_GATE: u64 = T0 + 61;

/// A cache of `capacity` verified proofs on the development keys.
fn proof_cache(capacity: usize) -> ProofCache {
    let k = dev::keys().unwrap();
    ProofCache::new(OrderVerifier::new(&k.vk, k.vk_id).unwrap(), capacity)
}

/// The admission pipeline of `g` with the default config.
fn admission<'g>(g: &'g Genesis, cache: &'g ProofCache) -> Admission<'g> {
    Admission::new(
        Ledger::new(g).unwrap(),
        g.chain_id.clone(),
        AdmissionConfig::default(),
        cache,
    )
}

#[test]
fn every_error_has_its_code_and_status() {
    let g = genesis();
    let k = dev::keys().unwrap();
    let cache = ProofCache::new(OrderVerifier::new(&k.vk, k.vk_id).unwrap(), 1_000);
    let adm = Admission::new(
        Ledger::new(&g).unwrap(),
        g.chain_id.clone(),
        AdmissionConfig {
            max_body_bytes: 4_096,
        },
        &cache,
    );
    let s = state(&g);
    let mut pool = Mempool::new(2);

    let big = vec![b' '; 4_097];
    let e = adm.decode(&big).unwrap_err();
    assert_eq!((e.http_status(), e.code()), (413, "too_large"));
    let e = adm.decode(b"{\"body\": 1}").unwrap_err();
    assert_eq!((e.http_status(), e.code()), (400, "malformed"));
    let good = order(&g, 1, 100, 100, 10);
    let json = serde_json::to_vec(&good).unwrap();
    assert_eq!(adm.decode(&json).unwrap(), good);

    let mut forged = good.clone();
    forged.signature.0[0] ^= 1;
    let wrong_proof = order(&g, 2, 101, 100, 10); // proof for 100 Wh, order for 101
    let unknown_meter = order(&g, 9, 100, 100, 10);
    let too_cheap = order(&g, 3, 100, 100, 7);
    let r = adm.admit(
        vec![forged, wrong_proof, unknown_meter, too_cheap, good.clone()],
        &s,
        IN_GATE,
        &mut pool,
    );
    let codes: Vec<(u16, &str)> = r
        .iter()
        .map(|x| {
            x.as_ref()
                .map_or_else(|e| (e.http_status(), e.code()), |_| (202, "ok"))
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (422, "bad_signature"),
            (422, "invalid_proof"),
            (422, "rule_violation"),
            (422, "rule_violation"),
            (202, "ok")
        ]
    );
    assert_eq!(r[2], Err(AdmitError::Rule(TxError::UnknownMeter)));
    assert!(matches!(
        r[3],
        Err(AdmitError::Rule(TxError::PriceOutOfRange { .. }))
    ));
    assert_eq!(pool.len(), 1);

    // The same transaction again: 409; a second order for the same meter and period: 422.
    let r = adm.admit(
        vec![good.clone(), order(&g, 1, 50, 50, 12)],
        &s,
        IN_GATE,
        &mut pool,
    );
    assert_eq!(r[0], Err(AdmitError::Duplicate(good.id())));
    assert_eq!(r[0].as_ref().unwrap_err().http_status(), 409);
    assert!(matches!(
        r[1],
        Err(AdmitError::Rule(TxError::DuplicateOrder(_)))
    ));

    // Capacity 2: one more fits, then 429.
    let d1 = Transaction::sign(
        &g.chain_id,
        TxBody::Deposit {
            to: wallet(&key(1)),
            amount: 5,
            reference: 1,
        },
        T0 + 600,
        &key(200),
    );
    let d2 = Transaction::sign(
        &g.chain_id,
        TxBody::Deposit {
            to: wallet(&key(1)),
            amount: 5,
            reference: 2,
        },
        T0 + 600,
        &key(200),
    );
    let r = adm.admit(vec![d1, d2], &s, IN_GATE, &mut pool);
    assert!(r[0].is_ok());
    assert_eq!(r[1], Err(AdmitError::MempoolFull));
    assert_eq!(r[1].as_ref().unwrap_err().http_status(), 429);

    // Committed transactions are duplicates too.
    let mut committed = Overlay::new(&s);
    Ledger::new(&g)
        .unwrap()
        .apply_tx(&mut committed, &good, IN_GATE)
        .unwrap();
    let mut fresh = Mempool::new(10);
    assert_eq!(
        adm.admit(vec![good.clone()], &committed, IN_GATE, &mut fresh)[0],
        Err(AdmitError::Duplicate(good.id()))
    );
}

#[test]
fn verified_proofs_are_remembered_for_block_execution() {
    let g = genesis();
    let cache = proof_cache(2);
    let adm = admission(&g, &cache);
    let s = state(&g);
    let mut pool = Mempool::new(10);
    let txs: Vec<Transaction> = (1..=3).map(|i| order(&g, i, 100, 100, 10)).collect();
    assert!(adm
        .admit(txs.clone(), &s, IN_GATE, &mut pool)
        .iter()
        .all(|r| r.is_ok()));
    assert_eq!(cache.len(), 2, "bounded: the oldest entry was evicted");
    // Executing a block of these orders verifies (only the unknown) proofs and accepts.
    let items: Vec<_> = txs
        .iter()
        .map(|t| match &t.body {
            TxBody::Order {
                meter,
                period,
                side,
                quantity_wh,
                proof,
                ..
            } => (
                veilwatt_circuits::order::OrderPublic {
                    meter: meter.to_public_key().unwrap(),
                    period: *period,
                    side: (*side).into(),
                    quantity_wh: *quantity_wh,
                },
                *proof,
            ),
            _ => unreachable!(),
        })
        .collect();
    assert!(cache.check(&items).is_ok());
    // A wrong public input is still caught even though the proof bytes are cached.
    let mut bad = items.clone();
    bad[1].0.quantity_wh += 1;
    let f = cache.check(&bad).unwrap_err();
    assert_eq!(
        f.invalid.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![1]
    );
}

#[test]
fn only_signatures_that_verified_at_admission_are_remembered() {
    let g = genesis();
    let cache = proof_cache(10);
    let adm = admission(&g, &cache);
    let good = Transaction::sign(
        &g.chain_id,
        TxBody::Deposit {
            to: wallet(&key(5)),
            amount: 1,
            reference: 1,
        },
        T0 + 600,
        &key(200),
    );
    // The same body and signer with another signature; and a good signature for another chain.
    let mut forged = good.clone();
    forged.signature.0[0] ^= 1;
    let other_chain = Transaction::sign("elsewhere", good.body.clone(), T0 + 600, &key(200));
    let pre = adm.check_stateless(&[good.clone(), forged.clone(), other_chain.clone()]);
    assert_eq!(pre[0], None);
    assert_eq!(pre[1], Some(AdmitError::BadSignature));
    assert_eq!(pre[2], Some(AdmitError::BadSignature));
    assert!(cache.signature_known(&good.id()));
    assert_ne!(forged.id(), good.id());
    assert!(!cache.signature_known(&forged.id()));
    assert!(!cache.signature_known(&other_chain.id()));

    // Block execution still refuses the forged one although its body was seen.
    let ledger = Ledger::new(&g).unwrap();
    let s = state(&g);
    let block = Block {
        height: s.meta().unwrap().height + 1,
        prev_hash: s.last_block_hash().unwrap(),
        time: IN_GATE,
        proposer: wallet(&key(201)),
        txs: vec![forged],
        state_root: Hash32::default(),
    };
    assert!(matches!(
        ledger.execute(&s, &block, &cache),
        Err(veilwatt_verifier::ledger::BlockError::Tx {
            error: TxError::BadSignature,
            ..
        })
    ));
}

#[test]
fn mempool_is_fifo_and_forgets_committed() {
    let g = genesis();
    let mut pool = Mempool::new(3);
    let txs: Vec<Transaction> = (0..3u64)
        .map(|r| {
            Transaction::sign(
                &g.chain_id,
                TxBody::Deposit {
                    to: wallet(&key(1)),
                    amount: 1,
                    reference: r,
                },
                T0 + 600,
                &key(200),
            )
        })
        .collect();
    for t in &txs {
        pool.insert(t.clone()).unwrap();
    }
    assert_eq!(pool.peek(2), txs[..2].to_vec());
    pool.remove(&[txs[0].id()]);
    assert_eq!(pool.peek(5), txs[1..].to_vec());
    assert!(!pool.contains(&txs[0].id()));
}

/// One signer holds at most its quota of the mempool (so one wallet cannot fill it for
/// everyone); the registrar, which enrols and funds a community at once, is exempt; a
/// committed transaction frees its signer's place.
#[test]
fn a_signer_over_its_mempool_quota_gets_429() {
    let g = genesis();
    let cache = proof_cache(10);
    let adm = admission(&g, &cache);
    let s = state(&g);
    let mut pool = Mempool::new(100).with_signer_quota(1, Some(g.registrar));
    let first = order(&g, 1, 100, 100, 10);
    let withdraw = |nonce| {
        Transaction::sign(
            &g.chain_id,
            TxBody::Withdraw { amount: 1, nonce },
            T0 + 600,
            &key(1),
        )
    };
    let deposits: Vec<Transaction> = (0..5)
        .map(|n| {
            Transaction::sign(
                &g.chain_id,
                TxBody::Deposit {
                    to: wallet(&key(1)),
                    amount: 1_000,
                    reference: n,
                },
                T0 + 600,
                &key(200),
            )
        })
        .collect();
    let mut txs = vec![first.clone(), withdraw(1)];
    txs.extend(deposits.clone());
    let r = adm.admit(txs, &s, IN_GATE, &mut pool);
    assert!(r[0].is_ok(), "{:?}", r[0]);
    let e = r[1].as_ref().unwrap_err();
    assert_eq!((e.http_status(), e.code()), (429, "signer_quota"), "{e}");
    assert!(
        r[2..].iter().all(|r| r.is_ok()),
        "the registrar is exempt: {r:?}"
    );
    assert_eq!(pool.len(), 6);
    // Once its order is committed (removed from the pool), household 1 has room again.
    pool.remove(&[first.id()]);
    let r = adm.admit(vec![withdraw(2)], &s, IN_GATE, &mut pool);
    assert!(
        !matches!(r[0], Err(AdmitError::SignerQuota(_))),
        "{:?}",
        r[0]
    );
}
