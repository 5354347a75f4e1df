//! The state root's tree: a binary sparse Merkle tree over 256-bit key hashes, persistent
//! (an update shares every untouched subtree with the version it starts from) and batched
//! (an update walks each touched node once, whatever the number of keys below it, and the
//! two halves of a large update are hashed in parallel).
//!
//! Its hashes are those of the Jellyfish Merkle tree (the `jmt` crate; decision 0007): a
//! subtree without leaves hashes to jmt's placeholder, a subtree with exactly one leaf is that
//! leaf (`SHA-256("JMT::LeafNode" || key hash || value hash)`, wherever the leaf sits), any
//! other subtree is `SHA-256("JMT::IntrnalNode" || left || right)`. A jmt node of 16 children
//! is four levels of this binary tree, so both give one root for one set of entries, and a
//! proof from here is a jmt `SparseMerkleProof` (its borsh bytes), checked by jmt's own code.
//! The property tests compare roots and proof bytes with jmt's on generated change sets.

use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};
use rayon::slice::ParallelSliceMut;
use sha2::{Digest, Sha256};

const LEAF_DOMAIN: &[u8] = b"JMT::LeafNode";
const INTERNAL_DOMAIN: &[u8] = b"JMT::IntrnalNode";
/// The hash of an empty subtree (jmt's `SPARSE_MERKLE_PLACEHOLDER_HASH`).
pub const PLACEHOLDER: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

/// Updates touching at least this many keys split into two parallel halves.
const PARALLEL_CHANGES: usize = 64;

/// A 256-bit path in the tree: `SHA-256` of a state key.
pub type KeyHash = [u8; 32];
/// `SHA-256` of a state value.
pub type ValueHash = [u8; 32];

/// One version of the tree. Cloning is O(1): versions share their untouched subtrees.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    root: Link,
}

type Link = Option<Arc<Node>>;

#[derive(Debug)]
enum Node {
    Leaf {
        key: KeyHash,
        value: ValueHash,
    },
    /// At least two leaves below. Its hash is kept: every update reads the hashes of the
    /// untouched siblings on its paths.
    Internal {
        hash: [u8; 32],
        left: Link,
        right: Link,
    },
}

fn leaf_hash(key: &KeyHash, value: &ValueHash) -> [u8; 32] {
    Sha256::new()
        .chain_update(LEAF_DOMAIN)
        .chain_update(key)
        .chain_update(value)
        .finalize()
        .into()
}

fn internal_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(INTERNAL_DOMAIN)
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

fn hash_of(link: &Link) -> [u8; 32] {
    match link.as_deref() {
        None => PLACEHOLDER,
        Some(Node::Leaf { key, value }) => leaf_hash(key, value),
        Some(Node::Internal { hash, .. }) => *hash,
    }
}

/// Bit `depth` of `key`, most significant first: `true` goes right.
fn bit(key: &KeyHash, depth: usize) -> bool {
    key[depth / 8] & (0x80 >> (depth % 8)) != 0
}

/// The subtree of two children: nothing if both are empty, the leaf itself if it is alone
/// (a single leaf is hashed where it is, not at the bottom of its path).
fn join(left: Link, right: Link) -> Link {
    match (left, right) {
        (None, None) => None,
        (Some(only), None) | (None, Some(only)) if matches!(*only, Node::Leaf { .. }) => Some(only),
        (left, right) => Some(Arc::new(Node::Internal {
            hash: internal_hash(&hash_of(&left), &hash_of(&right)),
            left,
            right,
        })),
    }
}

/// Runs both halves of a large update in parallel.
fn both<A: Send, B: Send>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if parallel {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

/// The subtree at `depth` holding exactly `leaves` (sorted by key, distinct).
fn build(depth: usize, leaves: &[(KeyHash, ValueHash)]) -> Link {
    match leaves {
        [] => None,
        [(key, value)] => Some(Arc::new(Node::Leaf {
            key: *key,
            value: *value,
        })),
        // Distinct 256-bit keys part before depth 256; equal ones (a SHA-256 collision of two
        // state keys) keep the last rather than recurse past the last bit.
        _ if depth == 256 => build(depth, &leaves[leaves.len() - 1..]),
        _ => {
            let mid = leaves.partition_point(|(k, _)| !bit(k, depth));
            let (l, r) = leaves.split_at(mid);
            let (left, right) = both(
                leaves.len() >= PARALLEL_CHANGES,
                || build(depth + 1, l),
                || build(depth + 1, r),
            );
            join(left, right)
        }
    }
}

/// `node` (at `depth`) after `changes` (sorted by key, distinct, all below `node`'s position;
/// `None` deletes).
fn update(node: &Link, depth: usize, changes: &[(KeyHash, Option<ValueHash>)]) -> Link {
    if changes.is_empty() {
        return node.clone();
    }
    match node.as_deref() {
        Some(Node::Internal { left, right, .. }) => {
            let mid = changes.partition_point(|(k, _)| !bit(k, depth));
            let (l, r) = changes.split_at(mid);
            let (left, right) = both(
                changes.len() >= PARALLEL_CHANGES,
                || update(left, depth + 1, l),
                || update(right, depth + 1, r),
            );
            join(left, right)
        }
        // An empty subtree or a single leaf: what is left below is small enough to build
        // afresh (the leaf, unless a change overrides it, and the written keys).
        leaf_or_empty => {
            let existing = match leaf_or_empty {
                Some(Node::Leaf { key, value }) => Some((*key, *value)),
                _ => None,
            };
            let mut leaves: Vec<(KeyHash, ValueHash)> = changes
                .iter()
                .filter_map(|(k, v)| v.map(|v| (*k, v)))
                .collect();
            // The leaf stays unless a change names its key (with its new value or deletion).
            if let Some((key, value)) = existing {
                if changes.binary_search_by(|(k, _)| k.cmp(&key)).is_err() {
                    let at = leaves.partition_point(|(k, _)| *k < key);
                    leaves.insert(at, (key, value));
                }
            }
            build(depth, &leaves)
        }
    }
}

/// One step of a proof path, as jmt's `SparseMerkleNode` encodes it (variant order matters:
/// the bytes are jmt's).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
enum Sibling {
    Null,
    Internal { left: [u8; 32], right: [u8; 32] },
    Leaf { key: KeyHash, value: ValueHash },
}

/// jmt's `SparseMerkleProof` as borsh writes it: the leaf found on the key's path (if any),
/// then the siblings from the bottom level up (its hasher marker encodes to nothing).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct ProofBytes {
    leaf: Option<(KeyHash, ValueHash)>,
    siblings: Vec<Sibling>,
}

fn sibling(link: &Link) -> Sibling {
    match link.as_deref() {
        None => Sibling::Null,
        Some(Node::Leaf { key, value }) => Sibling::Leaf {
            key: *key,
            value: *value,
        },
        Some(Node::Internal { left, right, .. }) => Sibling::Internal {
            left: hash_of(left),
            right: hash_of(right),
        },
    }
}

impl Tree {
    /// The empty tree.
    pub fn empty() -> Self {
        Tree::default()
    }

    /// A tree holding exactly `leaves` (any order; a repeated key keeps its last value).
    pub fn from_leaves(mut leaves: Vec<(KeyHash, ValueHash)>) -> Self {
        leaves.reverse();
        leaves.par_sort_by_key(|leaf| leaf.0);
        leaves.dedup_by(|later, earlier| later.0 == earlier.0);
        Tree {
            root: build(0, &leaves),
        }
    }

    /// This tree after `changes` (`None` deletes; sorted by key, each key at most once).
    pub fn update(&self, changes: &[(KeyHash, Option<ValueHash>)]) -> Self {
        debug_assert!(changes.windows(2).all(|w| w[0].0 < w[1].0));
        Tree {
            root: update(&self.root, 0, changes),
        }
    }

    /// The root hash.
    pub fn root(&self) -> [u8; 32] {
        hash_of(&self.root)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// The value hash under `key`, if present.
    pub fn get(&self, key: &KeyHash) -> Option<ValueHash> {
        let (found, _) = self.path(key, false);
        found.filter(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The leaf on `key`'s path and, if asked, the siblings from the root down.
    fn path(&self, key: &KeyHash, siblings: bool) -> (Option<(KeyHash, ValueHash)>, Vec<Sibling>) {
        let mut path = Vec::new();
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match node.as_deref() {
                None => return (None, path),
                Some(Node::Leaf { key, value }) => return (Some((*key, *value)), path),
                Some(Node::Internal { left, right, .. }) => {
                    let (next, other) = if bit(key, depth) {
                        (right, left)
                    } else {
                        (left, right)
                    };
                    if siblings {
                        path.push(sibling(other));
                    }
                    node = next;
                    depth += 1;
                }
            }
        }
    }

    /// The proof for `key` (of its value or of its absence), as the borsh bytes of a jmt
    /// `SparseMerkleProof<Sha256>`.
    pub fn prove(&self, key: &KeyHash) -> Vec<u8> {
        let (leaf, mut siblings) = self.path(key, true);
        siblings.reverse();
        crate::types::encode(&ProofBytes { leaf, siblings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(first: u8, last: u8) -> KeyHash {
        let mut k = [0; 32];
        k[0] = first;
        k[31] = last;
        k
    }

    #[test]
    fn hashes_follow_jmt_layout() {
        assert_eq!(Tree::empty().root(), PLACEHOLDER);
        let (a, b) = (key(0x00, 1), key(0x80, 2));
        let (va, vb) = ([1; 32], [2; 32]);
        // One leaf: the root is the leaf, wherever its key points.
        let one = Tree::empty().update(&[(a, Some(va))]);
        assert_eq!(one.root(), leaf_hash(&a, &va));
        // Two leaves parting at the first bit: one internal node over them.
        let two = one.update(&[(b, Some(vb))]);
        assert_eq!(
            two.root(),
            internal_hash(&leaf_hash(&a, &va), &leaf_hash(&b, &vb))
        );
        // Parting at the second bit: the first level is an internal node over the pair and
        // an empty right half.
        let c = key(0x40, 3);
        let pair = Tree::from_leaves(vec![(a, va), (c, vb)]);
        let below = internal_hash(&leaf_hash(&a, &va), &leaf_hash(&c, &vb));
        assert_eq!(pair.root(), internal_hash(&below, &PLACEHOLDER));
        // Deleting collapses back to the single leaf, then to the empty tree.
        let back = two.update(&[(b, None)]);
        assert_eq!(back.root(), one.root());
        assert!(back.update(&[(a, None)]).is_empty());
        // The version updated from is untouched.
        assert_eq!(two.get(&b), Some(vb));
        assert_eq!(back.get(&b), None);
    }

    #[test]
    fn from_leaves_keeps_the_last_value_of_a_repeated_key() {
        let a = key(7, 7);
        let t = Tree::from_leaves(vec![(a, [1; 32]), (key(9, 9), [3; 32]), (a, [2; 32])]);
        assert_eq!(t.get(&a), Some([2; 32]));
        let direct = Tree::empty().update(&[(a, Some([2; 32])), (key(9, 9), Some([3; 32]))]);
        assert_eq!(t.root(), direct.root());
    }
}
