//! Commit certificates and the bytes validators sign for votes: the one definition the
//! node's consensus engine (node/src/consensus: it converts its vote and certificate types to
//! these) and the audit share, so a certificate a validator stores is the certificate a
//! regulator checks.

use std::collections::BTreeSet;

use crate::types::{Genesis, Hash32, Signature64, WalletKey};

/// Domain tag of votes.
pub const VOTE_DOMAIN: &str = "veilwatt/vote/v1";

/// A vote's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteType {
    /// First-phase vote.
    Prevote,
    /// Second-phase vote; a certificate is a quorum of these for one block.
    Precommit,
}

/// What a vote says: its signed fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteBody {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height.
    pub height: u64,
    /// Consensus round (`-1`: none).
    pub round: i64,
    /// The block voted for (`None`: nil).
    pub value: Option<Hash32>,
    /// The voting validator's key.
    pub validator: WalletKey,
}

fn tag(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// What a validator signs for a vote: the vote domain and the chain id (each length-prefixed,
/// u32 BE), the vote type (0 prevote, 1 precommit), height (u64 BE), round (i64 BE), 0 for nil
/// or 1 and the block hash, and the validator's key.
pub fn vote_signing_bytes(chain_id: &str, vote: &VoteBody) -> Vec<u8> {
    let mut w = Vec::with_capacity(160);
    tag(&mut w, VOTE_DOMAIN.as_bytes());
    tag(&mut w, chain_id.as_bytes());
    w.push(match vote.vote_type {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    });
    w.extend_from_slice(&vote.height.to_be_bytes());
    w.extend_from_slice(&vote.round.to_be_bytes());
    match &vote.value {
        None => w.push(0),
        Some(h) => {
            w.push(1);
            w.extend_from_slice(&h.0);
        }
    }
    w.extend_from_slice(&vote.validator.0);
    w
}

/// A commit certificate: precommit signatures of validators for one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// Height.
    pub height: u64,
    /// Consensus round the block was decided in.
    pub round: i64,
    /// The decided block's hash.
    pub block_hash: Hash32,
    /// `(validator key, Ed25519 signature)`.
    pub signatures: Vec<(WalletKey, Signature64)>,
}

impl Certificate {
    /// Canonical encoding: height (u64 BE), round (i64 BE), block hash, count (u32 BE), then
    /// per signature the validator key and the 64-byte signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(52 + 96 * self.signatures.len());
        w.extend_from_slice(&self.height.to_be_bytes());
        w.extend_from_slice(&self.round.to_be_bytes());
        w.extend_from_slice(&self.block_hash.0);
        w.extend_from_slice(&(self.signatures.len() as u32).to_be_bytes());
        for (k, s) in &self.signatures {
            w.extend_from_slice(&k.0);
            w.extend_from_slice(&s.0);
        }
        w
    }

    /// Decodes [`Certificate::encode`]'s bytes exactly (no trailing bytes).
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        let fixed = |r: std::ops::Range<usize>| -> Result<&[u8], String> {
            b.get(r).ok_or_else(|| "truncated".to_owned())
        };
        let u64_at = |i: usize| -> Result<[u8; 8], String> {
            fixed(i..i + 8)?
                .try_into()
                .map_err(|_| "truncated".to_owned())
        };
        let height = u64::from_be_bytes(u64_at(0)?);
        let round = i64::from_be_bytes(u64_at(8)?);
        let mut block_hash = [0u8; 32];
        block_hash.copy_from_slice(fixed(16..48)?);
        let n = u32::from_be_bytes(fixed(48..52)?.try_into().map_err(|_| "truncated")?) as usize;
        if b.len() != 52 + n.saturating_mul(96) {
            return Err(format!(
                "{} bytes for {n} signatures (expected {})",
                b.len(),
                52usize.saturating_add(n.saturating_mul(96))
            ));
        }
        let signatures = b[52..]
            .chunks_exact(96)
            .map(|c| {
                let mut k = [0u8; 32];
                let mut s = [0u8; 64];
                k.copy_from_slice(&c[..32]);
                s.copy_from_slice(&c[32..]);
                (WalletKey(k), Signature64(s))
            })
            .collect();
        Ok(Self {
            height,
            round,
            block_hash: Hash32(block_hash),
            signatures,
        })
    }

    /// What validator `validator` signed to precommit the block ([`vote_signing_bytes`] of
    /// a precommit for it).
    pub fn signing_bytes(&self, chain_id: &str, validator: &WalletKey) -> Vec<u8> {
        vote_signing_bytes(
            chain_id,
            &VoteBody {
                vote_type: VoteType::Precommit,
                height: self.height,
                round: self.round,
                value: Some(self.block_hash),
                validator: *validator,
            },
        )
    }

    /// Checks the certificate commits `block_hash` at `height` with more than 2/3 of the
    /// genesis voting power, every signature valid and from a distinct genesis validator.
    pub fn verify(&self, g: &Genesis, height: u64, block_hash: &Hash32) -> Result<(), CertError> {
        if self.height != height {
            return Err(CertError::Height(self.height));
        }
        if self.block_hash != *block_hash {
            return Err(CertError::OtherBlock(self.block_hash));
        }
        let total: u128 = g.validators.iter().map(|v| u128::from(v.power)).sum();
        let mut seen = BTreeSet::new();
        let mut power: u128 = 0;
        for (key, sig) in &self.signatures {
            let v = g
                .validators
                .iter()
                .find(|v| v.key == *key)
                .ok_or(CertError::NotAValidator(*key))?;
            if !seen.insert(*key) {
                return Err(CertError::Duplicate(v.name.clone()));
            }
            let ok = ed25519_dalek::VerifyingKey::from_bytes(&key.0).is_ok_and(|vk| {
                vk.verify_strict(
                    &self.signing_bytes(&g.chain_id, key),
                    &ed25519_dalek::Signature::from_bytes(&sig.0),
                )
                .is_ok()
            });
            if !ok {
                return Err(CertError::BadSignature(v.name.clone()));
            }
            power += u128::from(v.power);
        }
        if power * 3 <= total * 2 {
            return Err(CertError::NotEnoughPower { power, total });
        }
        Ok(())
    }
}

/// Why a commit certificate does not commit a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The certificate is for another height.
    #[error("the certificate is for height {0}")]
    Height(u64),
    /// The certificate commits another block.
    #[error("the certificate commits block {0}, not this one")]
    OtherBlock(Hash32),
    /// A signer outside the genesis validator set.
    #[error("signed by {0}, which is not a genesis validator")]
    NotAValidator(WalletKey),
    /// Two signatures by one validator.
    #[error("validator {0} signed twice")]
    Duplicate(String),
    /// A signature does not verify.
    #[error("the signature of validator {0} does not verify")]
    BadSignature(String),
    /// Too little voting power signed.
    #[error("signatures carry {power} of {total} voting power; more than 2/3 is needed")]
    NotEnoughPower {
        /// Signed.
        power: u128,
        /// Total.
        total: u128,
    },
    /// The certificate bytes do not decode.
    #[error("undecodable certificate: {0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FeeSchedule, Mechanism, Validator};
    use ed25519_dalek::{Signer, SigningKey};

    fn keys() -> Vec<SigningKey> {
        (1..=4u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect()
    }

    fn genesis(powers: [u64; 4]) -> Genesis {
        Genesis {
            chain_id: "cert".into(),
            genesis_time: 0,
            validators: keys()
                .iter()
                .zip(powers)
                .enumerate()
                .map(|(i, (k, power))| Validator {
                    name: format!("v{i}"),
                    key: WalletKey(k.verifying_key().to_bytes()),
                    power,
                })
                .collect(),
            registrar: WalletKey([9; 32]),
            period_secs: 60,
            gate_delay_secs: 60,
            mechanism: Mechanism::Uniform,
            fees: FeeSchedule {
                grid_fee_per_kwh: 1,
                market_fee_per_kwh: 1,
                market_fee_buyer_share_bps: 5_000,
            },
            price_floor: 1,
            price_cap: 2,
            vk_id: Hash32([0; 32]),
            insecure_dev_keys: true,
            max_tx_lifetime_secs: crate::types::DEFAULT_MAX_TX_LIFETIME_SECS,
            result_retention_periods: crate::types::DEFAULT_RESULT_RETENTION_PERIODS,
            shielded: None,
            anonymous: None,
            consensus: Default::default(),
            spam: Default::default(),
        }
    }

    fn signed_by(g: &Genesis, who: &[usize]) -> Certificate {
        let mut c = Certificate {
            height: 7,
            round: 2,
            block_hash: Hash32([5; 32]),
            signatures: vec![],
        };
        let ks = keys();
        c.signatures = who
            .iter()
            .map(|i| {
                let me = WalletKey(ks[*i].verifying_key().to_bytes());
                let sig = ks[*i].sign(&c.signing_bytes(&g.chain_id, &me));
                (me, Signature64(sig.to_bytes()))
            })
            .collect();
        c
    }

    #[test]
    fn encoding_round_trips_exactly() {
        let g = genesis([1; 4]);
        let c = signed_by(&g, &[0, 2, 3]);
        let b = c.encode();
        assert_eq!(b.len(), 52 + 3 * 96);
        assert_eq!(Certificate::decode(&b).unwrap(), c);
        assert!(Certificate::decode(&b[..b.len() - 1]).is_err());
        let mut longer = b.clone();
        longer.push(0);
        assert!(Certificate::decode(&longer).is_err());
        assert!(Certificate::decode(&b[..40]).is_err());
    }

    #[test]
    fn more_than_two_thirds_of_the_power_must_sign() {
        let g = genesis([1; 4]);
        let h = Hash32([5; 32]);
        assert!(signed_by(&g, &[0, 1, 2]).verify(&g, 7, &h).is_ok());
        assert_eq!(
            signed_by(&g, &[0, 1]).verify(&g, 7, &h),
            Err(CertError::NotEnoughPower { power: 2, total: 4 })
        );
        // Weighted: one validator with 3 of 6 plus one more is 4/6 = 2/3 exactly: not enough.
        let w = genesis([3, 1, 1, 1]);
        assert!(matches!(
            signed_by(&w, &[0, 1]).verify(&w, 7, &h),
            Err(CertError::NotEnoughPower { power: 4, total: 6 })
        ));
        assert!(signed_by(&w, &[0, 1, 2]).verify(&w, 7, &h).is_ok());
        // Duplicates do not add power.
        let mut dup = signed_by(&g, &[0, 1]);
        dup.signatures.push(dup.signatures[0]);
        assert_eq!(
            dup.verify(&g, 7, &h),
            Err(CertError::Duplicate("v0".into()))
        );
        // Wrong height, other block, outsider, other chain.
        assert_eq!(
            signed_by(&g, &[0, 1, 2]).verify(&g, 8, &h),
            Err(CertError::Height(7))
        );
        assert!(matches!(
            signed_by(&g, &[0, 1, 2]).verify(&g, 7, &Hash32([6; 32])),
            Err(CertError::OtherBlock(_))
        ));
        let mut outsider = signed_by(&g, &[0, 1, 2]);
        outsider.signatures[2].0 = WalletKey([8; 32]);
        assert!(matches!(
            outsider.verify(&g, 7, &h),
            Err(CertError::NotAValidator(_))
        ));
        let mut other_chain = g.clone();
        other_chain.chain_id = "other".into();
        let c = signed_by(&other_chain, &[0, 1, 2]);
        assert!(matches!(
            c.verify(&g, 7, &h),
            Err(CertError::BadSignature(_))
        ));
    }
}
