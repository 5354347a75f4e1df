//! The authenticated state: incremental roots equal roots computed from scratch and jmt's, its
//! proofs are byte for byte jmt's, and inclusion and non-inclusion proofs hold for present and
//! absent keys and fail when tampered with.

use jmt::mock::MockTreeStore;
use jmt::{KeyHash, Sha256Jmt};
use proptest::prelude::*;
use std::collections::BTreeMap;
use veilwatt_verifier::state::{
    tree, verify_proof, ChangeSet, MemoryState, ProofError, StateProof, StateUpdate,
};
use veilwatt_verifier::types::{sha256, Hash32};

/// The `jmt` crate itself over its in-memory store: the reference the state tree must match
/// (same hashes, same proofs), updated version by version with jmt's own algorithm.
#[derive(Default)]
struct Jmt {
    store: MockTreeStore,
    version: Option<u64>,
}

impl Jmt {
    fn commit(&mut self, set: &ChangeSet) -> Hash32 {
        let version = self.version.map_or(0, |v| v + 1);
        let values = set.iter().map(|(k, v)| (KeyHash(sha256(k)), v.clone()));
        let (root, batch) = Sha256Jmt::new(&self.store)
            .put_value_set(values, version)
            .unwrap();
        self.store.write_tree_update_batch(batch).unwrap();
        self.version = Some(version);
        Hash32(root.0)
    }

    /// jmt's proof for `key`, as the borsh bytes a `StateProof` carries in hex.
    fn proof(&self, key: &[u8]) -> String {
        let version = self.version.unwrap();
        let (_, proof) = Sha256Jmt::new(&self.store)
            .get_with_proof(KeyHash(sha256(key)), version)
            .unwrap();
        hex::encode(borsh::to_vec(&proof).unwrap())
    }
}

/// The root of a fresh tree holding exactly `entries`.
fn scratch_root(entries: &BTreeMap<Vec<u8>, Vec<u8>>) -> Hash32 {
    let changes: ChangeSet = entries
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    StateUpdate::compute(&MemoryState::default(), 0, changes)
        .unwrap()
        .root
}

/// A committed key: tag below 0x80, then a few bytes.
fn key() -> impl Strategy<Value = Vec<u8>> {
    (0u8..8, prop::collection::vec(any::<u8>(), 0..6)).prop_map(|(t, mut rest)| {
        rest.insert(0, t);
        rest
    })
}

/// A write (`Some`) or deletion (`None`) of a key.
type Change = (Vec<u8>, Option<Vec<u8>>);

fn change() -> impl Strategy<Value = Change> {
    (
        key(),
        prop::option::weighted(0.7, prop::collection::vec(any::<u8>(), 0..12)),
    )
}

/// A state built version by version from `versions` of changes, with the model of its
/// committed entries; `each` sees both after every version.
fn build_checking(
    versions: &[Vec<Change>],
    mut each: impl FnMut(u64, &MemoryState, &BTreeMap<Vec<u8>, Vec<u8>>),
) -> (MemoryState, BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut state = MemoryState::default();
    let mut model = BTreeMap::new();
    state.commit(StateUpdate::compute(&state, 0, ChangeSet::new()).unwrap());
    for (v, changes) in versions.iter().enumerate() {
        let set: ChangeSet = changes.iter().cloned().collect();
        for (k, val) in &set {
            match val {
                Some(x) => model.insert(k.clone(), x.clone()),
                None => model.remove(k),
            };
        }
        let version = v as u64 + 1;
        state.commit(StateUpdate::compute(&state, version, set).unwrap());
        each(version, &state, &model);
    }
    (state, model)
}

fn build(versions: &[Vec<Change>]) -> (MemoryState, BTreeMap<Vec<u8>, Vec<u8>>) {
    build_checking(versions, |_, _, _| {})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Version by version, the tree's root is jmt's root over the same changes, and its proof
    /// of every present and of absent keys is jmt's proof, byte for byte.
    #[test]
    fn roots_and_proofs_are_jmts(
        versions in prop::collection::vec(prop::collection::vec(change(), 0..120), 1..8),
        absent in prop::collection::vec(key(), 1..8),
    ) {
        let mut reference = Jmt::default();
        prop_assert_eq!(
            reference.commit(&ChangeSet::new()),
            scratch_root(&BTreeMap::new())
        );
        let mut jmt_roots = Vec::new();
        let (state, model) = build_checking(&versions, |_, state, _| {
            jmt_roots.push(state.root());
        });
        for (changes, root) in versions.iter().zip(jmt_roots) {
            let set: ChangeSet = changes.iter().cloned().collect();
            prop_assert_eq!(reference.commit(&set), root);
        }
        for k in model.keys().chain(absent.iter()) {
            prop_assert_eq!(&state.prove(k).unwrap().proof, &reference.proof(k));
        }
    }

    /// Inserting, overwriting and deleting keys over many versions gives, at every version,
    /// the root of a fresh tree holding the same entries; deleting everything gives the empty
    /// tree's root.
    #[test]
    fn incremental_roots_equal_roots_from_scratch(
        versions in prop::collection::vec(prop::collection::vec(change(), 0..12), 1..10),
    ) {
        let mut roots = Vec::new();
        let (mut state, model) = build_checking(&versions, |_, state, model| {
            roots.push((state.root(), scratch_root(model), tree::root(state).unwrap()));
        });
        for (incremental, scratch, stored) in roots {
            prop_assert_eq!(incremental, scratch);
            prop_assert_eq!(stored, incremental);
        }
        let clear: ChangeSet = model.keys().map(|k| (k.clone(), None)).collect();
        let v = versions.len() as u64 + 1;
        state.commit(StateUpdate::compute(&state, v, clear).unwrap());
        prop_assert_eq!(state.root(), scratch_root(&BTreeMap::new()));
    }

    /// A state restored from its entries alone at version `v` (a snapshot) has the same root,
    /// proves the same values, and stays equal to the original under the same later changes.
    #[test]
    fn a_restored_snapshot_continues_like_the_original(
        versions in prop::collection::vec(prop::collection::vec(change(), 1..12), 1..6),
        later in prop::collection::vec(prop::collection::vec(change(), 0..12), 1..4),
    ) {
        let (mut state, model) = build(&versions);
        let v = versions.len() as u64;
        let entries: ChangeSet = model.iter().map(|(k, x)| (k.clone(), Some(x.clone()))).collect();
        let mut restored = MemoryState::restore(v, entries).unwrap();
        prop_assert_eq!(restored.root(), state.root());
        prop_assert_eq!(restored.version(), Some(v));
        for (k, x) in &model {
            let p = restored.prove(k).unwrap();
            prop_assert_eq!(verify_proof(&state.root(), &p).unwrap(), Some(x.clone()));
        }
        for (i, changes) in later.iter().enumerate() {
            let set: ChangeSet = changes.iter().cloned().collect();
            let version = v + 1 + i as u64;
            state.commit(StateUpdate::compute(&state, version, set.clone()).unwrap());
            restored.commit(StateUpdate::compute(&restored, version, set).unwrap());
            prop_assert_eq!(restored.root(), state.root());
        }
    }

    /// Every present key proves its value, every absent key proves its absence, against the
    /// root; no proof survives a change of value, presence, key or root.
    #[test]
    fn proofs_hold_for_present_and_absent_keys_and_fail_when_tampered(
        versions in prop::collection::vec(prop::collection::vec(change(), 1..12), 1..6),
        absent in prop::collection::vec(key(), 1..6),
        flip in any::<(usize, u8)>(),
    ) {
        let (state, model) = build(&versions);
        let root = state.root();
        for (k, v) in &model {
            let p = state.prove(k).unwrap();
            prop_assert_eq!(verify_proof(&root, &p).unwrap(), Some(v.clone()));
            // Another value.
            let mut other = v.clone();
            other.push(1);
            let forged = StateProof { value: Some(hex::encode(&other)), ..p.clone() };
            prop_assert!(verify_proof(&root, &forged).is_err());
            // Claimed absent.
            let forged = StateProof { value: None, ..p.clone() };
            prop_assert!(verify_proof(&root, &forged).is_err());
            // Another key.
            let mut k2 = k.clone();
            k2.push(0);
            let forged = StateProof { key: hex::encode(&k2), ..p.clone() };
            prop_assert!(verify_proof(&root, &forged).is_err());
            // A flipped byte of the proof itself (it may then not even decode).
            let mut bytes = hex::decode(&p.proof).unwrap();
            let i = flip.0 % bytes.len();
            bytes[i] ^= flip.1.max(1);
            let forged = StateProof { proof: hex::encode(&bytes), ..p.clone() };
            prop_assert!(verify_proof(&root, &forged).is_err());
        }
        for k in absent.iter().filter(|k| !model.contains_key(*k)) {
            let p = state.prove(k).unwrap();
            prop_assert_eq!(verify_proof(&root, &p).unwrap(), None);
            // Claimed present, with any value.
            let forged = StateProof { value: Some("00".into()), ..p.clone() };
            prop_assert!(verify_proof(&root, &forged).is_err());
        }
        // A proof against another root (say, a later state's) is refused.
        if let Some((k, _)) = model.iter().next() {
            let p = state.prove(k).unwrap();
            let other = Hash32([7; 32]);
            let wrong_root = matches!(verify_proof(&other, &p), Err(ProofError::WrongRoot { .. }));
            prop_assert!(wrong_root);
            let lying = StateProof { root: other, ..p };
            prop_assert!(matches!(verify_proof(&other, &lying), Err(ProofError::Invalid(_))));
        }
    }
}

#[test]
fn a_stale_proof_does_not_hold_against_a_later_root() {
    let (mut state, _) = build(&[vec![
        (vec![1, 1], Some(vec![5])),
        (vec![1, 2], Some(vec![6])),
    ]]);
    let old = state.prove(&[1, 1]).unwrap();
    let update = StateUpdate::compute(
        &state,
        2,
        [(vec![1, 1], Some(vec![9]))].into_iter().collect(),
    )
    .unwrap();
    state.commit(update);
    let new_root = state.root();
    let replayed = StateProof {
        root: new_root,
        height: 2,
        ..old
    };
    assert!(verify_proof(&new_root, &replayed).is_err());
    let fresh = state.prove(&[1, 1]).unwrap();
    assert_eq!(verify_proof(&new_root, &fresh).unwrap(), Some(vec![9]));
}

#[test]
fn malformed_proofs_are_refused_not_panicked_on() {
    let (state, _) = build(&[vec![(vec![1, 1], Some(vec![5]))]]);
    let root = state.root();
    let good = state.prove(&[1, 1]).unwrap();
    for bad in [
        StateProof {
            key: "zz".into(),
            ..good.clone()
        },
        StateProof {
            value: Some("0".into()),
            ..good.clone()
        },
        StateProof {
            proof: "".into(),
            ..good.clone()
        },
        StateProof {
            proof: "00ff".into(),
            ..good.clone()
        },
    ] {
        assert!(
            matches!(verify_proof(&root, &bad), Err(ProofError::Malformed(_))),
            "{bad:?}"
        );
    }
    // Local indexes are not in the root and cannot be proven.
    assert!(state.prove(&[0x81, 1]).is_err());
}
