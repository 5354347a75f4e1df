//! The state root: a sparse Merkle tree with the Jellyfish Merkle tree's hashes ([`smt`],
//! decision 0007) over the committed entries. A leaf is keyed by `SHA-256(key)` and holds
//! `SHA-256(value)`. An update hashes each node on the changed keys' paths once, so a block
//! costs O(changed keys x log n) hashes, whatever the size of the state.
//!
//! Inclusion and non-inclusion proofs are jmt's sparse Merkle proofs, carried as their borsh
//! bytes; [`verify_proof`] checks one with jmt's own code against a root a block commits, so
//! anybody holding a block header can check a balance, a meter or a period result a node
//! serves, or that a key is absent.

use jmt::{KeyHash, RootHash};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::keys::is_committed;
use super::smt::{self, Tree};
use super::{ChangeSet, StateError};
use crate::types::{decode, sha256, Hash32};

/// A backend's committed tree: the tree of the state every [`super::StateRead`] of it sees.
pub trait TreeRead {
    /// The tree of the committed state (an O(1) handle; versions share their nodes).
    fn tree(&self) -> Result<Tree, StateError>;
}

impl<T: TreeRead + ?Sized> TreeRead for &T {
    fn tree(&self) -> Result<Tree, StateError> {
        (**self).tree()
    }
}

/// The tree's key for a state key.
pub fn key_hash(key: &[u8]) -> smt::KeyHash {
    sha256(key)
}

/// The tree's leaf for a committed entry: its key hash and value hash.
pub fn leaf(key: &[u8], value: &[u8]) -> (smt::KeyHash, smt::ValueHash) {
    (key_hash(key), sha256(value))
}

/// The tree's changes for the committed part of a change set, sorted by key hash.
fn tree_changes(changes: &ChangeSet) -> Vec<(smt::KeyHash, Option<smt::ValueHash>)> {
    let mut set: Vec<_> = changes
        .par_iter()
        .filter(|(k, _)| is_committed(k))
        .map(|(k, v)| match v {
            Some(v) => {
                let (k, v) = leaf(k, v);
                (k, Some(v))
            }
            None => (key_hash(k), None),
        })
        .collect();
    set.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
    set
}

/// The tree after applying the committed part of `changes` to the tree `reader` holds.
pub fn update<R: TreeRead + ?Sized>(reader: &R, changes: &ChangeSet) -> Result<Tree, StateError> {
    Ok(reader.tree()?.update(&tree_changes(changes)))
}

/// The tree holding exactly the committed part of `entries` (every value `Some`).
pub fn from_entries(entries: &ChangeSet) -> Tree {
    Tree::empty().update(&tree_changes(entries))
}

/// The root of the tree `reader` holds.
pub fn root<R: TreeRead + ?Sized>(reader: &R) -> Result<Hash32, StateError> {
    Ok(Hash32(reader.tree()?.root()))
}

/// A state entry (or its absence) with the proof that ties it to a root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateProof {
    /// The height whose state this is.
    pub height: u64,
    /// That state's root (the `state_root` of the block at `height`).
    pub root: Hash32,
    /// The key, hex.
    pub key: String,
    /// The value, hex; `None` if the key is absent.
    pub value: Option<String>,
    /// The sparse Merkle proof, hex of its borsh encoding.
    pub proof: String,
}

/// Proves that `key` holds `value` (or, for `None`, is absent) in the state at `height`,
/// whose tree `reader` holds. `value` must be what the state holds under `key`.
pub fn prove<R: TreeRead + ?Sized>(
    reader: &R,
    height: u64,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<StateProof, StateError> {
    if !is_committed(key) {
        return Err(StateError::Storage(format!(
            "key {} is a local index, not part of the state root",
            hex::encode(key)
        )));
    }
    let tree = reader.tree()?;
    let kh = key_hash(key);
    if tree.get(&kh) != value.map(sha256) {
        return Err(StateError::Storage(format!(
            "the state and its tree disagree on key {}",
            hex::encode(key)
        )));
    }
    Ok(StateProof {
        height,
        root: Hash32(tree.root()),
        key: hex::encode(key),
        value: value.map(hex::encode),
        proof: hex::encode(tree.prove(&kh)),
    })
}

/// Why a state proof does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// A field is not valid hex or the proof does not decode.
    #[error("malformed state proof: {0}")]
    Malformed(String),
    /// The proof is for another root than the one trusted.
    #[error("the proof is for root {claimed}, not the trusted {trusted}")]
    WrongRoot {
        /// In the proof.
        claimed: Hash32,
        /// Trusted.
        trusted: Hash32,
    },
    /// The proof does not tie this key and value to the root.
    #[error("the proof does not hold: {0}")]
    Invalid(String),
}

/// Checks `proof` against `trusted_root` (taken from a block the chain committed): `Ok` with
/// the proven value (`None`: the key is absent) if it holds.
pub fn verify_proof(
    trusted_root: &Hash32,
    proof: &StateProof,
) -> Result<Option<Vec<u8>>, ProofError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| ProofError::Malformed(format!("{what}: {e}"));
    if proof.root != *trusted_root {
        return Err(ProofError::WrongRoot {
            claimed: proof.root,
            trusted: *trusted_root,
        });
    }
    let key = hex::decode(&proof.key).map_err(|e| bad("key", &e))?;
    let value = proof
        .value
        .as_deref()
        .map(hex::decode)
        .transpose()
        .map_err(|e| bad("value", &e))?;
    let bytes = hex::decode(&proof.proof).map_err(|e| bad("proof", &e))?;
    let smp: jmt::proof::SparseMerkleProof<sha2::Sha256> =
        decode(&bytes).map_err(|e| bad("proof", &e))?;
    smp.verify(
        RootHash(trusted_root.0),
        KeyHash(key_hash(&key)),
        value.as_deref(),
    )
    .map_err(|e| ProofError::Invalid(format!("{e:#}")))?;
    Ok(value)
}
