//! Payment addresses (docs/spec/notes.md): where to pay a household once. The wallets make
//! them (veilwatt-prover's note book); the registrar's mint and a spend's recipient read them.

use ark_bn254::Fr;

use crate::types::FieldBytes;

/// Prefix of an encoded payment address.
pub const ADDRESS_PREFIX: &str = "vwpay1";

/// A string that is not a payment address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a payment address: {0}")]
pub struct AddressError(pub String);

/// Where to pay a household once: a one-time owner tag and the key of the memo its wallet
/// reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PaymentAddress {
    /// The owner tag.
    pub owner: Fr,
    /// The memo key.
    pub memo_key: [u8; 32],
}

impl std::fmt::Debug for PaymentAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentAddress")
            .field("owner", &FieldBytes::from_field(self.owner))
            .finish_non_exhaustive()
    }
}

impl PaymentAddress {
    /// `vwpay1` then hex of the owner tag and the memo key.
    pub fn encode(&self) -> String {
        let mut b = FieldBytes::from_field(self.owner).0.to_vec();
        b.extend(self.memo_key);
        format!("{ADDRESS_PREFIX}{}", hex::encode(b))
    }

    /// Parses [`PaymentAddress::encode`]'s form.
    pub fn decode(s: &str) -> Result<Self, AddressError> {
        let bad = |m: &str| AddressError(m.to_owned());
        let body = s
            .trim()
            .strip_prefix(ADDRESS_PREFIX)
            .ok_or_else(|| bad("missing the vwpay1 prefix"))?;
        let bytes = hex::decode(body).map_err(|_| bad("not hex"))?;
        if bytes.len() != 64 {
            return Err(bad("wrong length"));
        }
        let owner = FieldBytes(bytes[..32].try_into().map_err(|_| bad("wrong length"))?)
            .to_field()
            .ok_or_else(|| bad("owner tag is not a field element"))?;
        let memo_key = bytes[32..].try_into().map_err(|_| bad("wrong length"))?;
        Ok(Self { owner, memo_key })
    }
}
