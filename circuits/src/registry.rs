//! The meter registry (design section 11, "Unlinkable orders"; spec in
//! `docs/spec/order-circuit.md`): a binary Merkle tree of height [`DEPTH`] whose leaves are the
//! enrolled meters, with the note tree's node hash `Poseidon(left, right)`.
//!
//! * A household's nullifier key `nk` (the one of its notes, `docs/spec/notes.md`) is enrolled
//!   as `nk_commit = Poseidon(DOMAIN_NK_COMMIT, nk)`: the registrar sees the meter key (it
//!   checks the meter is real and enrolled once) but never `nk`.
//! * The meter's leaf is `Poseidon(DOMAIN_METER_LEAF, A.x, A.y, nk_commit)`. An empty or revoked
//!   position holds `0`, which no membership proof can open (it would be a Poseidon preimage).
//!   Revocation replaces the leaf with `0`; re-enrolment appends a new leaf.
//! * An order for period `P` reveals `order_nf = Poseidon(DOMAIN_ORDER, nk, A.x, P)`: one value
//!   per (meter, period), which nobody without `nk` can compute, so the orders of one meter in
//!   different periods cannot be linked. `A.x` determines `A` within the prime-order subgroup
//!   (the other point with that `x` is `A + (0, -1)`, outside it), so one key means one
//!   nullifier per period.
//!
//! The tree's nodes live in a [`NodeStore`]: [`MemoryRegistry`] holds them in memory (wallets,
//! tests); the ledger keeps them under keys in its state. [`Registry`] is the algorithm over
//! any store: [`DEPTH`] hashes per enrolment or revocation, no hash to read the root.

use crate::eddsa::PublicKey;
use crate::merkle::{self, EMPTY};
use crate::poseidon;
use ark_bn254::Fr;
use ark_ff::{MontFp, Zero};
use std::collections::BTreeMap;

/// Height of the registry: 2^20 (1,048,576) meter enrolments, ten times a city's households.
pub const DEPTH: usize = 20;

/// Number of positions.
pub const CAPACITY: u64 = 1 << DEPTH;

/// Domain tag of the nullifier-key commitment: ASCII `veilwatt.nkc.v1`, big-endian.
pub const DOMAIN_NK_COMMIT: Fr = MontFp!("614747905202845927617173926135625265");
/// Domain tag of a registry leaf: ASCII `veilwatt.meter.v1`, big-endian.
pub const DOMAIN_METER_LEAF: Fr = MontFp!("40288118715373710712319036695708292773425");
/// Domain tag of order nullifiers: ASCII `veilwatt.order.v1`, big-endian.
pub const DOMAIN_ORDER: Fr = MontFp!("40288118715373710712319184452478879823409");

/// `Poseidon(DOMAIN_NK_COMMIT, nk)`: what enrolment publishes of the household's key.
pub fn nk_commitment(nk: Fr) -> Fr {
    poseidon::hash(&[DOMAIN_NK_COMMIT, nk])
}

/// The leaf of meter `(meter_x, meter_y)` enrolled with `nk_commit`.
pub fn leaf_from_fields(meter_x: Fr, meter_y: Fr, nk_commit: Fr) -> Fr {
    poseidon::hash(&[DOMAIN_METER_LEAF, meter_x, meter_y, nk_commit])
}

/// The leaf of `meter` enrolled with `nk_commit`.
pub fn leaf(meter: &PublicKey, nk_commit: Fr) -> Fr {
    leaf_from_fields(meter.x(), meter.y(), nk_commit)
}

/// The order nullifier of (household key `nk`, meter x coordinate, period).
pub fn order_nullifier(nk: Fr, meter_x: Fr, period: Fr) -> Fr {
    poseidon::hash(&[DOMAIN_ORDER, nk, meter_x, period])
}

/// The root of the empty registry.
pub fn empty_root() -> Fr {
    EMPTY[DEPTH]
}

/// Why a registry update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Every position has been used.
    #[error("the meter registry is full ({CAPACITY} enrolments)")]
    Full,
    /// The position has never been enrolled.
    #[error("registry position {0} is not enrolled")]
    NoSuchPosition(u64),
    /// `0` marks an empty position; no meter can be enrolled as it.
    #[error("a registry leaf cannot be 0")]
    ZeroLeaf,
}

/// A leaf's authentication path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryPath {
    /// The leaf's position.
    pub position: u32,
    /// Siblings from the leaf's level up to the root's children.
    pub siblings: [Fr; DEPTH],
}

impl RegistryPath {
    /// The root that `leaf` at this path hashes to.
    pub fn root(&self, leaf: Fr) -> Fr {
        merkle::root_from_fields(leaf, u64::from(self.position), &self.siblings)
    }
}

/// Where the registry's nodes live. Level 0 holds the leaves, level [`DEPTH`] the root; a node
/// that was never written is the empty subtree's root `EMPTY[level]`.
pub trait NodeStore {
    /// The node at (`level`, `index`), if it was written.
    fn node(&self, level: usize, index: u64) -> Option<Fr>;
    /// Writes the node at (`level`, `index`).
    fn set_node(&mut self, level: usize, index: u64, value: Fr);
    /// Number of positions enrolled so far (the next enrolment's position).
    fn size(&self) -> u64;
    /// Records the number of positions enrolled.
    fn set_size(&mut self, size: u64);
}

/// The registry algorithm over a [`NodeStore`].
#[derive(Clone, Debug)]
pub struct Registry<S>(pub S);

impl<S: NodeStore> Registry<S> {
    fn get(&self, level: usize, index: u64) -> Fr {
        self.0.node(level, index).unwrap_or(EMPTY[level])
    }

    /// Number of positions enrolled (live or revoked).
    pub fn size(&self) -> u64 {
        self.0.size()
    }

    /// The root.
    pub fn root(&self) -> Fr {
        self.get(DEPTH, 0)
    }

    /// The leaf at `position` (`0` if empty or revoked).
    pub fn leaf(&self, position: u64) -> Fr {
        self.get(0, position)
    }

    /// Enrols `leaf` at the next position and returns that position.
    pub fn enrol(&mut self, leaf: Fr) -> Result<u32, RegistryError> {
        if leaf.is_zero() {
            return Err(RegistryError::ZeroLeaf);
        }
        let position = self.size();
        let p = u32::try_from(position)
            .ok()
            .filter(|_| position < CAPACITY)
            .ok_or(RegistryError::Full)?;
        self.0.set_size(position + 1);
        self.write(position, leaf);
        Ok(p)
    }

    /// Revokes the meter at `position`: its leaf becomes `0`, and no proof against a later
    /// root can open it.
    pub fn revoke(&mut self, position: u64) -> Result<(), RegistryError> {
        if position >= self.size() {
            return Err(RegistryError::NoSuchPosition(position));
        }
        self.write(position, Fr::zero());
        Ok(())
    }

    /// Writes the leaf and the [`DEPTH`] nodes above it.
    fn write(&mut self, position: u64, leaf: Fr) {
        let mut cur = leaf;
        let mut index = position;
        self.0.set_node(0, index, cur);
        for level in 0..DEPTH {
            let sibling = self.get(level, index ^ 1);
            cur = if index & 1 == 1 {
                merkle::node(sibling, cur)
            } else {
                merkle::node(cur, sibling)
            };
            index >>= 1;
            self.0.set_node(level + 1, index, cur);
        }
    }

    /// The path of `position`, if it has been enrolled.
    pub fn path(&self, position: u64) -> Option<RegistryPath> {
        if position >= self.size() {
            return None;
        }
        let mut siblings = [Fr::zero(); DEPTH];
        for (level, sibling) in siblings.iter_mut().enumerate() {
            *sibling = self.get(level, (position >> level) ^ 1);
        }
        Some(RegistryPath {
            position: u32::try_from(position).ok()?,
            siblings,
        })
    }
}

/// A [`NodeStore`] in memory: every written node, by level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryNodes {
    levels: Vec<BTreeMap<u64, Fr>>,
    size: u64,
}

impl Default for MemoryNodes {
    fn default() -> Self {
        Self {
            levels: vec![BTreeMap::new(); DEPTH + 1],
            size: 0,
        }
    }
}

impl NodeStore for MemoryNodes {
    fn node(&self, level: usize, index: u64) -> Option<Fr> {
        self.levels.get(level)?.get(&index).copied()
    }

    fn set_node(&mut self, level: usize, index: u64, value: Fr) {
        if let Some(l) = self.levels.get_mut(level) {
            l.insert(index, value);
        }
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn set_size(&mut self, size: u64) {
        self.size = size;
    }
}

/// The registry in memory.
pub type MemoryRegistry = Registry<MemoryNodes>;

impl MemoryRegistry {
    /// The empty registry.
    pub fn new() -> Self {
        Registry(MemoryNodes::default())
    }
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::new()
    }
}

/// The R1CS side.
pub mod gadget {
    use super::{DOMAIN_METER_LEAF, DOMAIN_NK_COMMIT, DOMAIN_ORDER};
    use crate::poseidon;
    use ark_bn254::Fr;
    use ark_r1cs_std::fields::fp::FpVar;
    use ark_relations::gr1cs::SynthesisError;

    /// In-circuit [`super::nk_commitment`].
    pub fn nk_commitment(nk: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
        poseidon::gadget::hash(&[FpVar::Constant(DOMAIN_NK_COMMIT), nk.clone()])
    }

    /// In-circuit [`super::leaf_from_fields`].
    pub fn leaf(
        meter_x: &FpVar<Fr>,
        meter_y: &FpVar<Fr>,
        nk_commit: &FpVar<Fr>,
    ) -> Result<FpVar<Fr>, SynthesisError> {
        poseidon::gadget::hash(&[
            FpVar::Constant(DOMAIN_METER_LEAF),
            meter_x.clone(),
            meter_y.clone(),
            nk_commit.clone(),
        ])
    }

    /// In-circuit [`super::order_nullifier`].
    pub fn order_nullifier(
        nk: &FpVar<Fr>,
        meter_x: &FpVar<Fr>,
        period: &FpVar<Fr>,
    ) -> Result<FpVar<Fr>, SynthesisError> {
        poseidon::gadget::hash(&[
            FpVar::Constant(DOMAIN_ORDER),
            nk.clone(),
            meter_x.clone(),
            period.clone(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::PrimeField;

    #[test]
    fn domain_tags_are_their_ascii_names() {
        let as_int = |tag: &[u8]| Fr::from_be_bytes_mod_order(tag);
        assert_eq!(DOMAIN_NK_COMMIT, as_int(b"veilwatt.nkc.v1"));
        assert_eq!(DOMAIN_METER_LEAF, as_int(b"veilwatt.meter.v1"));
        assert_eq!(DOMAIN_ORDER, as_int(b"veilwatt.order.v1"));
    }

    /// The root recomputed from every live leaf, the reference for the incremental updates.
    fn reference_root(leaves: &[Fr]) -> Fr {
        let mut level: Vec<Fr> = leaves.to_vec();
        for l in 0..DEPTH {
            level = level
                .chunks(2)
                .map(|p| merkle::node(p[0], p.get(1).copied().unwrap_or(EMPTY[l])))
                .collect();
        }
        level.first().copied().unwrap_or(EMPTY[DEPTH])
    }

    #[test]
    fn enrolment_and_revocation_match_a_recomputed_tree() {
        let mut r = MemoryRegistry::new();
        let mut leaves = Vec::new();
        assert_eq!(r.root(), empty_root());
        for i in 0..40u64 {
            let leaf = Fr::from(1000 + i);
            assert_eq!(r.enrol(leaf), Ok(i as u32));
            leaves.push(leaf);
            if i % 7 == 3 {
                let victim = i / 2;
                r.revoke(victim).expect("enrolled");
                leaves[victim as usize] = Fr::zero();
            }
            assert_eq!(
                r.root(),
                reference_root(&leaves),
                "after {} enrolments",
                i + 1
            );
            for p in [0, i / 3, i] {
                let path = r.path(p).expect("enrolled");
                assert_eq!(path.root(leaves[p as usize]), r.root());
            }
        }
        assert_eq!(r.path(40), None);
        assert_eq!(r.revoke(40), Err(RegistryError::NoSuchPosition(40)));
        assert_eq!(r.enrol(Fr::zero()), Err(RegistryError::ZeroLeaf));
    }

    #[test]
    fn a_revoked_leaf_has_no_path_to_the_new_root() {
        let mut r = MemoryRegistry::new();
        let leaf = Fr::from(77u64);
        let p = u64::from(r.enrol(leaf).expect("room"));
        r.enrol(Fr::from(78u64)).expect("room");
        let before = r.path(p).expect("enrolled");
        assert_eq!(before.root(leaf), r.root());
        r.revoke(p).expect("enrolled");
        assert_ne!(before.root(leaf), r.root());
        assert_ne!(r.path(p).expect("position kept").root(leaf), r.root());
    }
}
