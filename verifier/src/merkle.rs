//! The state root: a binary SHA-256 Merkle tree over the state's entries (docs/spec/ledger.md).
//!
//! Entries are `(key, value)` byte strings sorted by key (keys are unique). Leaves are
//! `H(0x00 || u32_le(len key) || key || value)`, inner nodes `H(0x01 || left || right)`; a level
//! with an odd number of nodes carries its last node up unchanged. The empty tree's root is
//! `H(0x02)`. An inclusion proof lists the sibling hashes from leaf to root, each tagged with
//! the side it sits on, so a household can check a balance or a trade against a committed root.

use crate::types::{sha256, Hash32};
use serde::{Deserialize, Serialize};

/// Hash of a leaf.
pub fn leaf_hash(key: &[u8], value: &[u8]) -> [u8; 32] {
    let mut b = Vec::with_capacity(5 + key.len() + value.len());
    b.push(0);
    b.extend((key.len() as u32).to_le_bytes());
    b.extend(key);
    b.extend(value);
    sha256(&b)
}

fn node_hash(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut b = [0u8; 65];
    b[0] = 1;
    b[1..33].copy_from_slice(l);
    b[33..].copy_from_slice(r);
    sha256(&b)
}

/// Root over leaves given in key order.
pub fn root(leaves: &[[u8; 32]]) -> Hash32 {
    if leaves.is_empty() {
        return Hash32(sha256(&[2]));
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|c| {
                if c.len() == 2 {
                    node_hash(&c[0], &c[1])
                } else {
                    c[0]
                }
            })
            .collect();
    }
    Hash32(level[0])
}

/// One step of an inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofStep {
    /// The sibling's hash.
    pub sibling: Hash32,
    /// Whether the sibling is on the left.
    pub sibling_is_left: bool,
}

/// Sibling path for leaf `index` (steps where the node is carried up are omitted).
pub fn prove(leaves: &[[u8; 32]], mut index: usize) -> Option<Vec<ProofStep>> {
    if index >= leaves.len() {
        return None;
    }
    let mut steps = Vec::new();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let sib = index ^ 1;
        if sib < level.len() {
            steps.push(ProofStep {
                sibling: Hash32(level[sib]),
                sibling_is_left: sib < index,
            });
        }
        level = level
            .chunks(2)
            .map(|c| {
                if c.len() == 2 {
                    node_hash(&c[0], &c[1])
                } else {
                    c[0]
                }
            })
            .collect();
        index /= 2;
    }
    Some(steps)
}

/// Checks that `(key, value)` is in the tree with root `root`.
pub fn verify(root: &Hash32, key: &[u8], value: &[u8], proof: &[ProofStep]) -> bool {
    let mut h = leaf_hash(key, value);
    for s in proof {
        h = if s.sibling_is_left {
            node_hash(&s.sibling.0, &h)
        } else {
            node_hash(&h, &s.sibling.0)
        };
    }
    h == root.0
}
