//! The note commitment tree: an append-only binary Merkle tree of depth [`DEPTH`] over BN254 Fr
//! with `node = Poseidon(left, right)` (spec: `docs/spec/notes.md`).
//!
//! An empty leaf is `0`: a commitment equal to `0` would be a Poseidon preimage, so no
//! membership proof can claim an empty slot. `EMPTY[l]` is the root of an empty subtree of
//! height `l`.
//!
//! * [`Frontier`]: what the ledger keeps: the tree's size and one completed left subtree per
//!   level (at most [`DEPTH`] field elements). An append costs two hashes amortized; the root
//!   costs [`DEPTH`] hashes and is taken once per block.
//! * [`MerklePath`]: a position and its [`DEPTH`] siblings, bottom up; what a spend proves.
//! * [`gadget::root`]: the path's root in R1CS (one constraint per level plus the hashes).

use crate::poseidon;
use ark_bn254::Fr;
use ark_ff::Zero;
use std::sync::LazyLock;

/// Height of the tree: 2^32 notes.
pub const DEPTH: usize = 32;

/// Number of leaves the tree can hold.
pub const CAPACITY: u64 = 1 << DEPTH;

/// `Poseidon(left, right)`, the inner node hash.
pub fn node(left: Fr, right: Fr) -> Fr {
    poseidon::hash(&[left, right])
}

/// Roots of empty subtrees: `EMPTY[0] = 0` (an empty leaf), `EMPTY[l + 1] = node(EMPTY[l], EMPTY[l])`.
pub static EMPTY: LazyLock<[Fr; DEPTH + 1]> = LazyLock::new(|| {
    let mut e = [Fr::zero(); DEPTH + 1];
    for l in 0..DEPTH {
        e[l + 1] = node(e[l], e[l]);
    }
    e
});

/// The root of the empty tree.
pub fn empty_root() -> Fr {
    EMPTY[DEPTH]
}

/// Why an append was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// All 2^32 positions are used.
    #[error("the note commitment tree is full ({CAPACITY} notes)")]
    Full,
}

/// A leaf's authentication path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerklePath {
    /// The leaf's position (its index from the left).
    pub position: u32,
    /// Siblings from the leaf's level up to the root's children.
    pub siblings: [Fr; DEPTH],
}

impl MerklePath {
    /// The root that `leaf` at this path hashes to.
    pub fn root(&self, leaf: Fr) -> Fr {
        root_from_fields(leaf, u64::from(self.position), &self.siblings)
    }
}

/// The root of `leaf` at `position` (its low `siblings.len()` bits) under `siblings`, for a
/// tree of any height with this node hash (the note tree and the meter registry).
pub(crate) fn root_from_fields(leaf: Fr, position: u64, siblings: &[Fr]) -> Fr {
    let mut cur = leaf;
    for (l, sib) in siblings.iter().enumerate() {
        cur = if (position >> l) & 1 == 1 {
            node(*sib, cur)
        } else {
            node(cur, *sib)
        };
    }
    cur
}

/// The append-only tree's frontier: enough to append and to compute the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `filled[l]` is the root of the completed height-`l` left subtree whose right sibling
    /// holds the next position; meaningful only where bit `l` of `size` is 1.
    /// `filled[DEPTH]` is the root once the tree is full.
    filled: [Fr; DEPTH + 1],
}

impl Default for Frontier {
    fn default() -> Self {
        Self::new()
    }
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self {
            size: 0,
            filled: [Fr::zero(); DEPTH + 1],
        }
    }

    /// Rebuilds a frontier from its stored parts; `None` if `size` exceeds the capacity.
    pub fn from_parts(size: u64, filled: [Fr; DEPTH + 1]) -> Option<Self> {
        (size <= CAPACITY).then_some(Self { size, filled })
    }

    /// The stored parts: `(size, filled)`.
    pub fn parts(&self) -> (u64, &[Fr; DEPTH + 1]) {
        (self.size, &self.filled)
    }

    /// Number of leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `leaf` and returns its position.
    pub fn append(&mut self, leaf: Fr) -> Result<u32, TreeError> {
        let position = u32::try_from(self.size).map_err(|_| TreeError::Full)?;
        let mut cur = leaf;
        let mut level = 0;
        // A binary-counter carry: every trailing 1 bit of the position is a completed left
        // sibling at that level, which the new leaf's subtree now completes.
        while (u64::from(position) >> level) & 1 == 1 {
            cur = node(self.filled[level], cur);
            level += 1;
        }
        self.filled[level] = cur;
        self.size += 1;
        Ok(position)
    }

    /// The root: the completed left subtrees along the next position's path, padded with
    /// empty subtrees.
    pub fn root(&self) -> Fr {
        self.root_of_height(DEPTH)
    }

    /// The root of the subtree of the first `2^height` positions (the whole tree at
    /// [`DEPTH`]); the frontier must hold at most that many leaves.
    fn root_of_height(&self, height: usize) -> Fr {
        if self.size == 1 << height {
            return self.filled[height];
        }
        // `None`: the subtree holding the next position is still empty at this height, and
        // its root is EMPTY[l] without hashing.
        let mut cur: Option<Fr> = None;
        for l in 0..height {
            if (self.size >> l) & 1 == 1 {
                cur = Some(node(self.filled[l], cur.unwrap_or(EMPTY[l])));
            } else if let Some(c) = cur {
                cur = Some(node(c, EMPTY[l]));
            }
        }
        cur.unwrap_or(EMPTY[height])
    }
}

/// A wallet's up-to-date path for one of its notes: created when the note is appended, then
/// fed every later leaf. It keeps the left siblings from the tree at creation, the roots of the
/// right-sibling subtrees completed since (lowest level first) and a frontier of the one being
/// filled, so an append costs what a frontier append costs and the path is always at hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    leaf: Fr,
    /// The tree right after the leaf was appended (its `filled` holds the left siblings).
    base: Frontier,
    /// Roots of completed right-sibling subtrees, by increasing level.
    right: Vec<Fr>,
    /// The right-sibling subtree being filled, if it has leaves.
    cursor: Option<Frontier>,
    /// Leaves appended after the note.
    appended: u64,
}

impl Witness {
    /// The witness of `leaf`, the last leaf appended to `tree`; `None` if `tree` is empty.
    pub fn new(tree: &Frontier, leaf: Fr) -> Option<Self> {
        (tree.size > 0).then(|| Self {
            leaf,
            base: tree.clone(),
            right: Vec::new(),
            cursor: None,
            appended: 0,
        })
    }

    /// The note's position.
    pub fn position(&self) -> u32 {
        // `new` requires a nonempty tree of at most CAPACITY leaves, so this fits.
        (self.base.size - 1) as u32
    }

    /// Levels whose right sibling is still to come, lowest first.
    fn pending_levels(&self) -> impl Iterator<Item = usize> + '_ {
        let p = u64::from(self.position());
        (0..DEPTH).filter(move |&l| (p >> l) & 1 == 0)
    }

    /// Appends the next leaf of the tree.
    pub fn append(&mut self, leaf: Fr) -> Result<(), TreeError> {
        if self.base.size + self.appended >= CAPACITY {
            return Err(TreeError::Full);
        }
        let height = self
            .pending_levels()
            .nth(self.right.len())
            .ok_or(TreeError::Full)?;
        let cursor = self.cursor.get_or_insert_with(Frontier::new);
        cursor.append(leaf)?;
        if cursor.size == 1 << height {
            self.right.push(cursor.root_of_height(height));
            self.cursor = None;
        }
        self.appended += 1;
        Ok(())
    }

    /// The note's current path.
    pub fn path(&self) -> MerklePath {
        let p = u64::from(self.position());
        let mut siblings = [Fr::zero(); DEPTH];
        let mut right = self.right.iter();
        let mut cursor_used = false;
        for (l, sib) in siblings.iter_mut().enumerate() {
            *sib = if (p >> l) & 1 == 1 {
                self.base.filled[l]
            } else if let Some(r) = right.next() {
                *r
            } else if let (Some(c), false) = (&self.cursor, cursor_used) {
                cursor_used = true;
                c.root_of_height(l)
            } else {
                EMPTY[l]
            };
        }
        MerklePath {
            position: self.position(),
            siblings,
        }
    }

    /// The root the path gives, which is the tree's current root.
    pub fn root(&self) -> Fr {
        self.path().root(self.leaf)
    }

    /// The note's commitment (the leaf).
    pub fn leaf(&self) -> Fr {
        self.leaf
    }

    /// The stored form (a wallet keeps its witnesses across runs).
    pub fn parts(&self) -> WitnessParts {
        WitnessParts {
            leaf: self.leaf,
            base: (self.base.size, self.base.filled),
            right: self.right.clone(),
            cursor: self.cursor.as_ref().map(|c| (c.size, c.filled)),
            appended: self.appended,
        }
    }

    /// Rebuilds a witness from [`Witness::parts`]; `None` if the parts cannot be one (sizes
    /// beyond the tree, more completed subtrees than levels still open, a cursor as big as a
    /// completed subtree).
    pub fn from_parts(p: WitnessParts) -> Option<Self> {
        let base = Frontier::from_parts(p.base.0, p.base.1)?;
        if base.size == 0 || base.size.checked_add(p.appended)? > CAPACITY {
            return None;
        }
        let cursor = match p.cursor {
            Some((size, filled)) => Some(Frontier::from_parts(size, filled)?),
            None => None,
        };
        let w = Self {
            leaf: p.leaf,
            base,
            right: p.right,
            cursor,
            appended: p.appended,
        };
        let open = w.pending_levels().count();
        if w.right.len() > open {
            return None;
        }
        if let Some(c) = &w.cursor {
            let height = w.pending_levels().nth(w.right.len())?;
            if c.size == 0 || c.size >= 1 << height {
                return None;
            }
        }
        Some(w)
    }
}

/// A [`Witness`] as plain data: the leaf, the tree at its creation (`size`, `filled`), the
/// completed right-sibling subtree roots, the subtree being filled, the leaves appended since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessParts {
    /// The note's commitment.
    pub leaf: Fr,
    /// The frontier right after the leaf was appended.
    pub base: (u64, [Fr; DEPTH + 1]),
    /// Roots of completed right-sibling subtrees, by increasing level.
    pub right: Vec<Fr>,
    /// The right-sibling subtree being filled.
    pub cursor: Option<(u64, [Fr; DEPTH + 1])>,
    /// Leaves appended after the note.
    pub appended: u64,
}

/// Every leaf in memory, for wallets' and tests' path computation and as the reference the
/// [`Frontier`] is tested against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTree {
    leaves: Vec<Fr>,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `leaf` and returns its position.
    pub fn append(&mut self, leaf: Fr) -> Result<u32, TreeError> {
        let position = u32::try_from(self.leaves.len()).map_err(|_| TreeError::Full)?;
        self.leaves.push(leaf);
        Ok(position)
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The leaves, by position.
    pub fn leaves(&self) -> &[Fr] {
        &self.leaves
    }

    /// The nodes of level `l` that are not empty subtrees.
    fn levels(&self) -> Vec<Vec<Fr>> {
        let mut levels = vec![self.leaves.clone()];
        for l in 0..DEPTH {
            let below = &levels[l];
            let above = below
                .chunks(2)
                .map(|pair| node(pair[0], pair.get(1).copied().unwrap_or(EMPTY[l])))
                .collect();
            levels.push(above);
        }
        levels
    }

    /// The root, recomputed from every leaf.
    pub fn root(&self) -> Fr {
        self.levels()[DEPTH]
            .first()
            .copied()
            .unwrap_or(EMPTY[DEPTH])
    }

    /// The path of the leaf at `position`, if there is one.
    pub fn path(&self, position: u32) -> Option<MerklePath> {
        let p = position as usize;
        if p >= self.leaves.len() {
            return None;
        }
        let levels = self.levels();
        let mut siblings = [Fr::zero(); DEPTH];
        for (l, sib) in siblings.iter_mut().enumerate() {
            let i = (p >> l) ^ 1;
            *sib = levels[l].get(i).copied().unwrap_or(EMPTY[l]);
        }
        Some(MerklePath { position, siblings })
    }
}

/// The R1CS side.
pub mod gadget {
    use ark_bn254::Fr;
    use ark_r1cs_std::{boolean::Boolean, fields::fp::FpVar};
    use ark_relations::gr1cs::SynthesisError;

    /// The root of `leaf` under `siblings`, with the position given by its little-endian
    /// `bits` (bit `l` set: the node at level `l` is a right child). One constraint per level
    /// orders the pair (`d = bit * (sibling - cur)`, `left = cur + d`, `right = sibling - d`),
    /// plus one Poseidon per level. The tree's height is `siblings.len()`, which must equal
    /// `bits.len()`.
    pub fn root(
        leaf: &FpVar<Fr>,
        siblings: &[FpVar<Fr>],
        bits: &[Boolean<Fr>],
    ) -> Result<FpVar<Fr>, SynthesisError> {
        if siblings.len() != bits.len() {
            return Err(SynthesisError::Unsatisfiable);
        }
        let mut cur = leaf.clone();
        for (sib, bit) in siblings.iter().zip(bits) {
            let d = FpVar::from(bit.clone()) * (sib - &cur);
            let left = &cur + &d;
            let right = sib - &d;
            cur = crate::poseidon::gadget::hash(&[left, right])?;
        }
        Ok(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_matches_the_full_tree() {
        let mut f = Frontier::new();
        let mut t = MemoryTree::new();
        assert_eq!(f.root(), empty_root());
        assert_eq!(t.root(), empty_root());
        for i in 0..70u64 {
            let leaf = Fr::from(1000 + i);
            assert_eq!(f.append(leaf), t.append(leaf));
            assert_eq!(f.root(), t.root(), "after {} leaves", i + 1);
            for p in [0, i / 2, i] {
                let path = t.path(p as u32).expect("appended");
                assert_eq!(path.root(t.leaves()[p as usize]), t.root());
            }
        }
        assert_eq!(t.path(70), None);
    }

    #[test]
    fn witnesses_follow_the_tree() {
        let mut f = Frontier::new();
        let mut t = MemoryTree::new();
        let mut witnesses: Vec<Witness> = Vec::new();
        for i in 0..150u64 {
            let leaf = Fr::from(7 * i + 1);
            f.append(leaf).expect("room");
            t.append(leaf).expect("room");
            for w in &mut witnesses {
                w.append(leaf).expect("room");
            }
            // A witness for some positions: every one below 20, then a sparse set.
            if i < 20 || i % 13 == 0 || i == 63 || i == 127 {
                witnesses.push(Witness::new(&f, leaf).expect("nonempty"));
            }
            for w in &witnesses {
                assert_eq!(
                    Some(w.path()),
                    t.path(w.position()),
                    "after {} leaves",
                    i + 1
                );
                assert_eq!(w.root(), f.root());
                // The stored form rebuilds the same witness.
                assert_eq!(Witness::from_parts(w.parts()).as_ref(), Some(w));
            }
        }
        assert_eq!(Witness::new(&Frontier::new(), Fr::zero()), None);
    }

    #[test]
    fn impossible_witness_parts_are_refused() {
        let mut f = Frontier::new();
        for i in 0..5u64 {
            f.append(Fr::from(i)).expect("room");
        }
        let w = Witness::new(&f, Fr::from(4u64)).expect("nonempty");
        // Position 4 = 0b100: levels 0, 1 and 3.. still wait for a right sibling. More right
        // roots than open levels is impossible, as are an empty base, a cursor as big as the
        // subtree it fills, and more leaves than the tree holds.
        let mut p = w.parts();
        p.right = vec![Fr::zero(); DEPTH];
        assert_eq!(Witness::from_parts(p), None);
        let mut p = w.parts();
        p.base.0 = 0;
        assert_eq!(Witness::from_parts(p), None);
        let mut p = w.parts();
        p.cursor = Some((1, [Fr::zero(); DEPTH + 1]));
        assert_eq!(
            Witness::from_parts(p),
            None,
            "a level-0 subtree holds one leaf"
        );
        let mut p = w.parts();
        p.appended = CAPACITY;
        assert_eq!(Witness::from_parts(p), None);
    }
}
