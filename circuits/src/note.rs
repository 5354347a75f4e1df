//! Shielded money (design section 11, spec in `docs/spec/notes.md`): household keys, notes,
//! note commitments and nullifiers.
//!
//! * A household holds one [`SpendingKey`] `sk` (a field element). From it derive the
//!   authorizing key `ak = Poseidon(DOMAIN_AK, sk)` and the nullifier key
//!   `nk = Poseidon(DOMAIN_NK, sk)`; together they form the [`ViewingKey`], which finds and
//!   follows the household's notes but cannot spend them (that needs a preimage of `ak`).
//! * Diversifier `i` of a household is `d_i = Poseidon(DOMAIN_DIV, nk, i)` and its one-time
//!   owner tag is `owner_i = Poseidon(DOMAIN_OWNER, ak, d_i)`: a fresh pseudorandom value per
//!   note that nobody without the viewing key can link to another tag of the same household,
//!   while a wallet restored from its key finds its tags again by counting.
//! * A [`Note`] is `(value, owner, rho)` with a random `rho` chosen by whoever creates it; its
//!   commitment `cm = Poseidon(DOMAIN_NOTE, value, owner, rho)` is what the ledger stores.
//! * Spending the note at tree position `pos` reveals `nf = Poseidon(DOMAIN_NF, nk, cm, pos)`.
//!   The position makes the nullifier unique per ledger entry, so two notes with equal openings
//!   (a sender reusing `rho`) are both spendable; only `nk`'s holder can compute `nf` from `cm`.

use crate::poseidon;
use ark_bn254::Fr;
use ark_ff::{BigInteger, MontFp, PrimeField, UniformRand};
use rand_core::{CryptoRng, RngCore};

/// Domain tag of the authorizing key: ASCII `veilwatt.ak.v1`, big-endian.
pub const DOMAIN_AK: Fr = MontFp!("2401359004698616904754529810937393");
/// Domain tag of the nullifier key: ASCII `veilwatt.nk.v1`, big-endian.
pub const DOMAIN_NK: Fr = MontFp!("2401359004698616904754585645512241");
/// Domain tag of diversifiers: ASCII `veilwatt.div.v1`, big-endian.
pub const DOMAIN_DIV: Fr = MontFp!("614747905202845927617162922748180017");
/// Domain tag of owner tags: ASCII `veilwatt.owner.v1`, big-endian.
pub const DOMAIN_OWNER: Fr = MontFp!("40288118715373710712319185870848879654449");
/// Domain tag of note commitments: ASCII `veilwatt.note.v1`, big-endian.
pub const DOMAIN_NOTE: Fr = MontFp!("157375463731928557469996529562699068977");
/// Domain tag of nullifiers: ASCII `veilwatt.nf.v1`, big-endian.
pub const DOMAIN_NF: Fr = MontFp!("2401359004698616904754585561626161");

/// Why key bytes were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The bytes are not the canonical little-endian encoding of a field element.
    #[error("spending key bytes are not a canonical field element")]
    NonCanonical,
}

/// A household's spending key. Whoever holds it can spend every note of the household.
#[derive(Clone, PartialEq, Eq)]
pub struct SpendingKey(Fr);

impl std::fmt::Debug for SpendingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpendingKey(..)")
    }
}

impl SpendingKey {
    /// A fresh key, uniform over the field.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(Fr::rand(rng))
    }

    /// The key from its canonical 32-byte little-endian encoding ([`SpendingKey::to_bytes`]).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        let x = Fr::from_le_bytes_mod_order(&bytes);
        if x.into_bigint().to_bytes_le() != bytes {
            return Err(KeyError::NonCanonical);
        }
        Ok(Self(x))
    }

    /// The canonical 32-byte little-endian encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.0.into_bigint().to_bytes_le());
        out
    }

    /// The key with field value `x` (every field element is a key).
    pub fn from_field(x: Fr) -> Self {
        Self(x)
    }

    /// The key as the circuit sees it.
    pub fn to_field(&self) -> Fr {
        self.0
    }

    /// The viewing key derived from this key.
    pub fn viewing_key(&self) -> ViewingKey {
        ViewingKey {
            ak: poseidon::hash(&[DOMAIN_AK, self.0]),
            nk: poseidon::hash(&[DOMAIN_NK, self.0]),
        }
    }
}

/// What finds and follows a household's notes: it derives the owner tags and computes the
/// nullifiers, so it sees which notes are the household's and when they are spent. It cannot
/// spend: a spend proves knowledge of the spending key behind `ak`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewingKey {
    /// Authorizing key `Poseidon(DOMAIN_AK, sk)`.
    pub ak: Fr,
    /// Nullifier key `Poseidon(DOMAIN_NK, sk)`.
    pub nk: Fr,
}

impl ViewingKey {
    /// Diversifier number `index`.
    pub fn diversifier(&self, index: u64) -> Fr {
        poseidon::hash(&[DOMAIN_DIV, self.nk, Fr::from(index)])
    }

    /// The owner tag for diversifier `d`.
    pub fn owner_tag(&self, diversifier: Fr) -> Fr {
        owner_tag(self.ak, diversifier)
    }

    /// The nullifier of the note with commitment `cm` at tree position `position`.
    pub fn nullifier(&self, cm: Fr, position: u32) -> Fr {
        nullifier(self.nk, cm, Fr::from(position))
    }
}

/// `Poseidon(DOMAIN_OWNER, ak, d)`.
pub fn owner_tag(ak: Fr, diversifier: Fr) -> Fr {
    poseidon::hash(&[DOMAIN_OWNER, ak, diversifier])
}

/// `Poseidon(DOMAIN_NOTE, value, owner, rho)` at field level.
pub fn commitment(value: Fr, owner: Fr, rho: Fr) -> Fr {
    poseidon::hash(&[DOMAIN_NOTE, value, owner, rho])
}

/// `Poseidon(DOMAIN_NF, nk, cm, position)` at field level.
pub fn nullifier(nk: Fr, cm: Fr, position: Fr) -> Fr {
    poseidon::hash(&[DOMAIN_NF, nk, cm, position])
}

/// An amount of money owned by whoever can open `owner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note {
    /// Value in minor currency units.
    pub value: u64,
    /// The owner's one-time tag.
    pub owner: Fr,
    /// Randomness chosen by the note's creator; it also hides the value.
    pub rho: Fr,
}

impl Note {
    /// A note of `value` to `owner` with fresh randomness.
    pub fn new<R: RngCore + CryptoRng>(value: u64, owner: Fr, rng: &mut R) -> Self {
        Self {
            value,
            owner,
            rho: Fr::rand(rng),
        }
    }

    /// The commitment the ledger stores.
    pub fn commitment(&self) -> Fr {
        commitment(Fr::from(self.value), self.owner, self.rho)
    }
}

/// The R1CS side of the derivations above.
pub mod gadget {
    use super::*;
    use ark_r1cs_std::fields::fp::FpVar;
    use ark_relations::gr1cs::SynthesisError;

    fn constant(x: Fr) -> FpVar<Fr> {
        FpVar::Constant(x)
    }

    /// `(ak, nk)` of the spending key `sk`.
    pub fn viewing_key(sk: &FpVar<Fr>) -> Result<(FpVar<Fr>, FpVar<Fr>), SynthesisError> {
        Ok((
            poseidon::gadget::hash(&[constant(DOMAIN_AK), sk.clone()])?,
            poseidon::gadget::hash(&[constant(DOMAIN_NK), sk.clone()])?,
        ))
    }

    /// The owner tag for `ak` and diversifier `d`.
    pub fn owner_tag(ak: &FpVar<Fr>, d: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
        poseidon::gadget::hash(&[constant(DOMAIN_OWNER), ak.clone(), d.clone()])
    }

    /// The note commitment.
    pub fn commitment(
        value: &FpVar<Fr>,
        owner: &FpVar<Fr>,
        rho: &FpVar<Fr>,
    ) -> Result<FpVar<Fr>, SynthesisError> {
        poseidon::gadget::hash(&[
            constant(DOMAIN_NOTE),
            value.clone(),
            owner.clone(),
            rho.clone(),
        ])
    }

    /// The nullifier.
    pub fn nullifier(
        nk: &FpVar<Fr>,
        cm: &FpVar<Fr>,
        position: &FpVar<Fr>,
    ) -> Result<FpVar<Fr>, SynthesisError> {
        poseidon::gadget::hash(&[
            constant(DOMAIN_NF),
            nk.clone(),
            cm.clone(),
            position.clone(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::Zero;

    #[test]
    fn domain_tags_are_their_ascii_names() {
        let tag = |s: &str| Fr::from_be_bytes_mod_order(s.as_bytes());
        assert_eq!(DOMAIN_AK, tag("veilwatt.ak.v1"));
        assert_eq!(DOMAIN_NK, tag("veilwatt.nk.v1"));
        assert_eq!(DOMAIN_DIV, tag("veilwatt.div.v1"));
        assert_eq!(DOMAIN_OWNER, tag("veilwatt.owner.v1"));
        assert_eq!(DOMAIN_NOTE, tag("veilwatt.note.v1"));
        assert_eq!(DOMAIN_NF, tag("veilwatt.nf.v1"));
    }

    #[test]
    fn spending_key_bytes_round_trip_and_refuse_non_canonical() {
        let sk = SpendingKey(Fr::from(12345u64));
        assert_eq!(SpendingKey::from_bytes(sk.to_bytes()), Ok(sk));
        assert_eq!(
            SpendingKey::from_bytes([0xff; 32]),
            Err(KeyError::NonCanonical)
        );
        assert_eq!(format!("{:?}", SpendingKey(Fr::zero())), "SpendingKey(..)");
    }
}
