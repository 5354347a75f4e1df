//! The state root: a Jellyfish Merkle tree (the `jmt` crate, SHA-256; decision 0007) over the
//! committed entries. A leaf is keyed by `SHA-256(key)` and holds `SHA-256(value)`; version
//! `h` of the tree is the state after block `h` (version 0: genesis). Updating the tree costs
//! O(changed keys x log n) node reads and writes, whatever the size of the state.
//!
//! Inclusion and non-inclusion proofs are jmt's sparse Merkle proofs, carried as their borsh
//! bytes; [`verify_proof`] checks one against a root a block commits, so anybody holding a
//! block header can check a balance, a meter or a period result a node serves, or that a key
//! is absent.

use jmt::storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, RootHash, Sha256Jmt, Version};
use serde::{Deserialize, Serialize};

use super::keys::is_committed;
use super::{ChangeSet, StateError};
use crate::types::{decode, encode, sha256, Hash32};

#[doc(hidden)]
pub mod __reexport {
    pub use anyhow;
    pub use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
    pub use jmt::{KeyHash, OwnedValue, Version};
}

/// Implements jmt's `TreeReader` for a state backend from how it reads one tree node:
/// `impl_tree_reader!(Type, |this, key| expression)` where the expression (with `this: &Type`
/// and `key: &NodeKey`) is an `anyhow::Result<Option<Node>>`. The ledger reads values by
/// state key, never by key hash, and never asks the tree for its rightmost leaf (a snapshot is
/// restored from its entries), so those two reads are refused.
#[macro_export]
macro_rules! impl_tree_reader {
    ($ty:ty, |$this:ident, $key:ident| $node:expr) => {
        impl $crate::state::tree::__reexport::TreeReader for $ty {
            fn get_node_option(
                &self,
                node_key: &$crate::state::tree::__reexport::NodeKey,
            ) -> $crate::state::tree::__reexport::anyhow::Result<
                Option<$crate::state::tree::__reexport::Node>,
            > {
                let ($this, $key) = (self, node_key);
                $node
            }

            fn get_value_option(
                &self,
                _max_version: $crate::state::tree::__reexport::Version,
                _key_hash: $crate::state::tree::__reexport::KeyHash,
            ) -> $crate::state::tree::__reexport::anyhow::Result<
                Option<$crate::state::tree::__reexport::OwnedValue>,
            > {
                $crate::state::tree::__reexport::anyhow::bail!(
                    "the state is read by key, not by key hash"
                )
            }

            fn get_rightmost_leaf(
                &self,
            ) -> $crate::state::tree::__reexport::anyhow::Result<
                Option<(
                    $crate::state::tree::__reexport::NodeKey,
                    $crate::state::tree::__reexport::LeafNode,
                )>,
            > {
                $crate::state::tree::__reexport::anyhow::bail!("not supported")
            }
        }
    };
}

/// The tree's key for a state key.
pub fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash(sha256(key))
}

fn tree_error(e: anyhow::Error) -> StateError {
    StateError::Storage(format!("state tree: {e:#}"))
}

/// The root after applying the committed part of `changes` as version `version` on top of
/// version `version - 1` (read through `reader`), and the tree nodes to store with it.
pub fn update<R: TreeReader>(
    reader: &R,
    version: Version,
    changes: &ChangeSet,
) -> Result<(Hash32, TreeUpdateBatch), StateError> {
    let set = changes
        .iter()
        .filter(|(k, _)| is_committed(k))
        .map(|(k, v)| (key_hash(k), v.clone()));
    let (root, batch) = Sha256Jmt::new(reader)
        .put_value_set(set, version)
        .map_err(tree_error)?;
    Ok((Hash32(root.0), batch))
}

/// The root of version `version`.
pub fn root<R: TreeReader>(reader: &R, version: Version) -> Result<Hash32, StateError> {
    let root = Sha256Jmt::new(reader)
        .get_root_hash(version)
        .map_err(tree_error)?;
    Ok(Hash32(root.0))
}

/// Reads tree nodes through `inner` and answers the one value lookup a proof makes: the tree
/// stores value hashes, the state stores values.
struct ProofReader<'a, R> {
    inner: &'a R,
    key: KeyHash,
    value: Option<&'a [u8]>,
}

impl<R: TreeReader> TreeReader for ProofReader<'_, R> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        self.inner.get_node_option(node_key)
    }

    fn get_value_option(
        &self,
        _max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok((key_hash == self.key)
            .then(|| self.value.map(<[u8]>::to_vec))
            .flatten())
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        self.inner.get_rightmost_leaf()
    }
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

/// Proves that `key` holds `value` (or, for `None`, is absent) in version `version`, whose
/// committed entries `reader` holds. `value` must be what the state holds under `key`.
pub fn prove<R: TreeReader>(
    reader: &R,
    version: Version,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<StateProof, StateError> {
    if !is_committed(key) {
        return Err(StateError::Storage(format!(
            "key {} is a local index, not part of the state root",
            hex::encode(key)
        )));
    }
    let kh = key_hash(key);
    let reader = ProofReader {
        inner: reader,
        key: kh,
        value,
    };
    let tree = Sha256Jmt::new(&reader);
    let (_, proof) = tree.get_with_proof(kh, version).map_err(tree_error)?;
    let root = tree.get_root_hash(version).map_err(tree_error)?;
    Ok(StateProof {
        height: version,
        root: Hash32(root.0),
        key: hex::encode(key),
        value: value.map(hex::encode),
        proof: hex::encode(encode(&proof)),
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
    smp.verify(RootHash(trusted_root.0), key_hash(&key), value.as_deref())
        .map_err(|e| ProofError::Invalid(format!("{e:#}")))?;
    Ok(value)
}
