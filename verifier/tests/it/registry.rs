//! The meter registry of unlinkable orders at the ledger (docs/spec/ledger.md, "Meter
//! registry"): enrolment and revocation by the registrar through blocks, the tree against the
//! circuits crate's reference registry, the root history and its cut at revocation, and every
//! rule refusing with its own error and changing nothing.

use crate::common;

use ark_bn254::Fr;
use common::*;
use veilwatt_circuits::registry::{self as reg, MemoryRegistry};
use veilwatt_params::{dev, MarketCircuit};
use veilwatt_verifier::ledger::{Ledger, LedgerRead, TxError};
use veilwatt_verifier::registry::{self, Enrolment};
use veilwatt_verifier::state::Overlay;
use veilwatt_verifier::types::*;

fn anonymous_genesis(registry_history: u64) -> Genesis {
    let mut g = genesis(Mechanism::Uniform);
    g.shielded = Some(ShieldedParams {
        vk_id: Hash32(dev::pinned_ids_of(MarketCircuit::JoinSplit).vk_id.0),
        root_history: 10,
        min_fee: 0,
    });
    g.anonymous = Some(AnonymousParams {
        vk_id: Hash32(dev::pinned_ids_of(MarketCircuit::OrderV2).vk_id.0),
        registry_history,
    });
    g.validate().expect("valid genesis");
    g
}

/// Household `i`'s nullifier-key commitment (any field element stands in for `nk` here).
fn nk_commit(i: u8) -> FieldBytes {
    FieldBytes::from_field(reg::nk_commitment(Fr::from(1_000 + u64::from(i))))
}

fn enrol_household(g: &Genesis, i: u8) -> Transaction {
    sign(
        g,
        TxBody::EnrollHousehold {
            meter: meter_key(i),
            nk_commit: nk_commit(i),
        },
        &registrar(),
    )
}

fn revoke(g: &Genesis, i: u8) -> Transaction {
    sign(
        g,
        TxBody::RevokeMeter {
            meter: meter_key(i),
        },
        &registrar(),
    )
}

fn leaf_of(i: u8) -> Fr {
    reg::leaf(
        &meter_secret(i).public_key(),
        nk_commit(i).to_field().unwrap(),
    )
}

/// Applies `tx` alone at `time` and returns its error, checking it changed nothing.
fn reject(g: &Genesis, state: &St, tx: Transaction) -> TxError {
    let mut s = Overlay::new(&state.0);
    let err = Ledger::new(g)
        .expect("valid genesis")
        .apply_tx(&mut s, &tx, in_gate(0))
        .expect_err("must be rejected");
    assert!(
        s.changes().is_empty(),
        "a rejected transaction changes nothing"
    );
    err
}

#[test]
fn enrolments_build_the_reference_tree_and_open_against_a_recent_root() {
    let g = anonymous_genesis(4);
    let mut s = St::genesis(&g);
    let mut reference = MemoryRegistry::new();
    assert!(registry::is_recent_root(&s.0, &FieldBytes::from_field(reference.root())).unwrap());
    for batch in [vec![1u8, 2, 3], vec![4], vec![5, 6], vec![7]] {
        let txs = batch.iter().map(|i| enrol_household(&g, *i)).collect();
        s = apply(&g, &s, in_gate(0), txs);
        for i in &batch {
            let p = reference.enrol(leaf_of(*i)).unwrap();
            assert_eq!(
                s.0.enrolment(&meter_key(*i)).unwrap(),
                Some(Enrolment {
                    position: p,
                    nk_commit: nk_commit(*i),
                    revoked: false,
                })
            );
        }
        let root = FieldBytes::from_field(reference.root());
        assert_eq!(registry::root(&s.0).unwrap(), root);
        assert!(registry::is_recent_root(&s.0, &root).unwrap());
    }
    // A household's path from the ledger opens its leaf to the current root, and so does the
    // path it rebuilds from the public leaves alone.
    let root = registry::root(&s.0).unwrap();
    let mut rebuilt = MemoryRegistry::new();
    for (p, leaf) in registry::leaves(&s.0, 0, 100).unwrap() {
        assert_eq!(rebuilt.enrol(leaf.to_field().unwrap()).unwrap() as u64, p);
    }
    for i in 1..=7u8 {
        let e = s.0.enrolment(&meter_key(i)).unwrap().unwrap();
        let path = registry::path(&s.0, u64::from(e.position))
            .unwrap()
            .unwrap();
        assert_eq!(FieldBytes::from_field(path.root(leaf_of(i))), root);
        assert_eq!(rebuilt.path(u64::from(e.position)), Some(path));
    }
    // Four blocks changed the registry after genesis: the empty root is too old for K = 4.
    let recent = registry::recent_roots(&s.0).unwrap();
    assert_eq!(recent.len(), 4);
    assert!(!recent.contains(&FieldBytes::from_field(reg::empty_root())));
}

#[test]
fn a_revocation_zeroes_the_leaf_and_invalidates_every_earlier_root() {
    let g = anonymous_genesis(100);
    let mut s = St::genesis(&g);
    let mut roots = vec![registry::root(&s.0).unwrap()];
    for i in 1..=3u8 {
        s = apply(&g, &s, in_gate(0), vec![enrol_household(&g, i)]);
        roots.push(registry::root(&s.0).unwrap());
    }
    for r in &roots {
        assert!(registry::is_recent_root(&s.0, r).unwrap());
    }
    let position = s.0.enrolment(&meter_key(2)).unwrap().unwrap().position;
    s = apply(&g, &s, in_gate(0), vec![revoke(&g, 2)]);
    assert_eq!(
        registry::leaf(&s.0, u64::from(position)).unwrap(),
        FieldBytes::from_field(Fr::from(0u64))
    );
    assert!(s.0.enrolment(&meter_key(2)).unwrap().unwrap().revoked);
    // Every root in which meter 2 was live (or any earlier one) is no anchor any more.
    for r in &roots {
        assert!(!registry::is_recent_root(&s.0, r).unwrap());
    }
    let after = registry::root(&s.0).unwrap();
    assert_eq!(registry::recent_roots(&s.0).unwrap(), vec![after]);
    // The others' paths open to the new root; the revoked leaf opens to nothing.
    for i in [1u8, 3] {
        let e = s.0.enrolment(&meter_key(i)).unwrap().unwrap();
        let path = registry::path(&s.0, u64::from(e.position))
            .unwrap()
            .unwrap();
        assert_eq!(FieldBytes::from_field(path.root(leaf_of(i))), after);
    }
    let path = registry::path(&s.0, u64::from(position)).unwrap().unwrap();
    assert_ne!(FieldBytes::from_field(path.root(leaf_of(2))), after);
    // Revoked twice: refused. Enrolled again (a new household key, say): a new position.
    let again = |tx| resign(&g, tx, EXPIRY - 1, &registrar());
    assert_eq!(reject(&g, &s, again(revoke(&g, 2))), TxError::MeterRevoked);
    s = apply(&g, &s, in_gate(0), vec![again(enrol_household(&g, 2))]);
    let again = s.0.enrolment(&meter_key(2)).unwrap().unwrap();
    assert_eq!(again.position, 3);
    assert!(!again.revoked);
    assert_eq!(registry::record(&s.0).unwrap().size, 4);
}

#[test]
fn revoke_covers_both_kinds_of_enrolment() {
    let g = anonymous_genesis(10);
    let s = St::genesis(&g);
    // Meter 1 enrolled for wallet-signed orders and in the registry; meter 2 only in the
    // registry; meter 3 only for wallet-signed orders.
    let s = apply(
        &g,
        &s,
        in_gate(0),
        vec![
            enroll(&g, 1),
            enrol_household(&g, 1),
            enrol_household(&g, 2),
            enroll(&g, 3),
        ],
    );
    let s = apply(
        &g,
        &s,
        in_gate(0),
        vec![revoke(&g, 1), revoke(&g, 2), revoke(&g, 3)],
    );
    for i in 1..=3u8 {
        if let Some(m) = s.0.meter(&meter_key(i)).unwrap() {
            assert!(m.revoked, "meter {i}");
        }
        if let Some(e) = s.0.enrolment(&meter_key(i)).unwrap() {
            assert!(e.revoked, "meter {i}");
        }
        let again = resign(&g, revoke(&g, i), EXPIRY - 1, &registrar());
        assert_eq!(reject(&g, &s, again), TxError::MeterRevoked);
    }
    assert_eq!(reject(&g, &s, revoke(&g, 9)), TxError::UnknownMeter);
    // Meter 1 is revoked for wallet orders for good, but may enrol in the registry again.
    let again = resign(&g, enrol_household(&g, 1), EXPIRY - 1, &registrar());
    let s = apply(&g, &s, in_gate(0), vec![again]);
    assert!(!s.0.enrolment(&meter_key(1)).unwrap().unwrap().revoked);
    assert!(s.0.meter(&meter_key(1)).unwrap().unwrap().revoked);
}

#[test]
fn the_rules_of_enrolment() {
    let g = anonymous_genesis(10);
    let s = St::genesis(&g);
    // Only the registrar enrols.
    let tx = sign(
        &g,
        TxBody::EnrollHousehold {
            meter: meter_key(1),
            nk_commit: nk_commit(1),
        },
        &owner(1),
    );
    assert_eq!(reject(&g, &s, tx), TxError::NotRegistrar);
    // The meter key must be a subgroup point.
    let tx = sign(
        &g,
        TxBody::EnrollHousehold {
            meter: MeterKey([7; 64]),
            nk_commit: nk_commit(1),
        },
        &registrar(),
    );
    assert!(matches!(reject(&g, &s, tx), TxError::InvalidMeterKey(_)));
    // The commitment must be a canonical field element.
    let bad = FieldBytes([0xff; 32]);
    let tx = sign(
        &g,
        TxBody::EnrollHousehold {
            meter: meter_key(1),
            nk_commit: bad,
        },
        &registrar(),
    );
    assert_eq!(reject(&g, &s, tx), TxError::NotAField(bad));
    // One live enrolment per meter, whatever the household key.
    let s = apply(&g, &s, in_gate(0), vec![enrol_household(&g, 1)]);
    let tx = sign(
        &g,
        TxBody::EnrollHousehold {
            meter: meter_key(1),
            nk_commit: nk_commit(2),
        },
        &registrar(),
    );
    assert_eq!(reject(&g, &s, tx), TxError::MeterAlreadyEnrolled);
    // A market without a registry refuses enrolments.
    let plain = genesis(Mechanism::Uniform);
    let s = St::genesis(&plain);
    assert_eq!(
        reject(&plain, &s, enrol_household(&plain, 1)),
        TxError::AnonymousDisabled
    );
}

#[test]
fn registry_genesis_parameters_are_validated() {
    let mut g = anonymous_genesis(10);
    for bad in [0, 10_001] {
        g.anonymous = Some(AnonymousParams {
            vk_id: Hash32(dev::pinned_ids_of(MarketCircuit::OrderV2).vk_id.0),
            registry_history: bad,
        });
        assert!(g.validate().is_err(), "registry_history {bad}");
    }
    g.anonymous = Some(AnonymousParams {
        vk_id: Hash32(dev::pinned_ids_of(MarketCircuit::OrderV2).vk_id.0),
        registry_history: 10_000,
    });
    assert!(g.validate().is_ok());
    g.shielded = None;
    assert!(
        g.validate().is_err(),
        "unlinkable orders need a shielded pool"
    );
}

#[test]
fn the_registry_is_part_of_the_state_root() {
    let g = anonymous_genesis(10);
    let s = St::genesis(&g);
    let a = apply(&g, &s, in_gate(0), vec![enrol_household(&g, 1)]);
    let tx = sign(
        &g,
        TxBody::EnrollHousehold {
            meter: meter_key(1),
            nk_commit: nk_commit(2),
        },
        &registrar(),
    );
    let b = apply(&g, &s, in_gate(0), vec![tx]);
    assert_ne!(
        a.root(),
        b.root(),
        "another key commitment, another state root"
    );
    // The empty registry's root is recorded at genesis.
    let mut shielded_only = g.clone();
    shielded_only.anonymous = None;
    assert_ne!(St::genesis(&g).root(), St::genesis(&shielded_only).root());
}
