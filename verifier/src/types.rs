//! Protocol types: genesis, transactions, blocks. Every type has one canonical binary encoding
//! (borsh: fixed by the type, no maps, lengths as u32, `from_slice` rejects trailing bytes) used
//! for hashing and signing, and a JSON form (byte strings as lowercase hex) for the API.
//!
//! Units (see docs/spec/ledger.md): energy in Wh, prices in minor currency units per kWh, money
//! in *millis* (thousandths of a minor unit), so that `Wh x (minor/kWh)` is an exact integer
//! number of millis and trade values never round.

use crate::proof::{OrderProof, SpendProof};
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use veilwatt_circuits::joinsplit::JoinSplitPublic;
use veilwatt_circuits::order::OrderPublic;
pub use veilwatt_circuits::order_v2::OrderPublic as UnlinkableOrderPublic;
use veilwatt_circuits::{babyjub::PointError, eddsa::PublicKey};

/// Money in thousandths of a minor currency unit.
pub type Millis = u64;
/// Millis per minor currency unit.
pub const MILLIS_PER_MINOR: u64 = 1_000;

macro_rules! hex_bytes {
    ($(#[$m:meta])* $name:ident, $n:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
        pub struct $name(pub [u8; $n]);

        impl Default for $name {
            fn default() -> Self {
                Self([0u8; $n])
            }
        }
        impl $name {
            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// Parses hex of exactly the right length.
            pub fn from_hex(s: &str) -> Result<Self, String> {
                let v = hex::decode(s).map_err(|e| format!("invalid hex: {e}"))?;
                let len = v.len();
                Ok(Self(v.try_into().map_err(|_| format!("expected {} bytes, got {len}", $n))?))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_bytes!(
    /// An Ed25519 public key (wallets, the registrar, validators).
    WalletKey,
    32
);
hex_bytes!(
    /// An Ed25519 signature.
    Signature64,
    64
);
hex_bytes!(
    /// SHA-256 of a transaction's canonical encoding. An order's id is its transaction id.
    TxId,
    32
);
hex_bytes!(
    /// A 32-byte hash (block hashes, state roots, key ids).
    Hash32,
    32
);
hex_bytes!(
    /// A meter's Baby Jubjub public key: x then y, each 32 bytes little-endian canonical.
    MeterKey,
    64
);

hex_bytes!(
    /// A BN254 scalar field element (note commitments, nullifiers, note-tree roots, owner
    /// tags): 32 bytes little-endian. Canonical (below the modulus) when it came from
    /// [`FieldBytes::from_field`]; [`FieldBytes::to_field`] refuses any other.
    FieldBytes,
    32
);

impl FieldBytes {
    /// The canonical encoding of `x`.
    pub fn from_field(x: ark_bn254::Fr) -> Self {
        use ark_ff::{BigInteger, PrimeField};
        let mut out = [0u8; 32];
        out.copy_from_slice(&x.into_bigint().to_bytes_le());
        Self(out)
    }

    /// The field element, if the bytes are its canonical encoding.
    pub fn to_field(&self) -> Option<ark_bn254::Fr> {
        use ark_ff::{BigInteger, PrimeField};
        let x = ark_bn254::Fr::from_le_bytes_mod_order(&self.0);
        (x.into_bigint().to_bytes_le() == self.0).then_some(x)
    }
}

/// SHA-256.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The canonical bytes of any protocol value.
pub fn encode<T: BorshSerialize>(v: &T) -> Vec<u8> {
    // Sized exactly: `borsh::to_vec` starts every Vec at 1 KiB, which a stored value keeps
    // (most state entries are 8-80 bytes; the city-width audit's peak RSS fell from 2.19 to
    // 1.38 GB, docs/benchmarks.md).
    let mut out = Vec::with_capacity(borsh::object_length(v).unwrap_or(0));
    // Writing into a Vec cannot fail.
    v.serialize(&mut out).expect("borsh into Vec");
    out
}

/// Decodes canonical bytes, rejecting trailing bytes.
pub fn decode<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, std::io::Error> {
    borsh::from_slice(bytes)
}

impl MeterKey {
    /// The key of an EdDSA public key.
    pub fn from_public_key(pk: &PublicKey) -> Self {
        use ark_ff::{BigInteger, PrimeField};
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(&pk.x().into_bigint().to_bytes_le());
        b[32..].copy_from_slice(&pk.y().into_bigint().to_bytes_le());
        Self(b)
    }

    fn coordinates(&self) -> Option<(ark_bn254::Fr, ark_bn254::Fr)> {
        use ark_ff::{BigInteger, PrimeField};
        let fe = |b: &[u8]| {
            let x = ark_bn254::Fr::from_le_bytes_mod_order(b);
            // Non-canonical encodings (>= p) would give two encodings of one key.
            (x.into_bigint().to_bytes_le() == b).then_some(x)
        };
        Some((fe(&self.0[..32])?, fe(&self.0[32..])?))
    }

    /// The EdDSA public key, if the bytes are canonical field elements forming a point of the
    /// prime-order subgroup other than the identity.
    pub fn to_public_key(&self) -> Result<PublicKey, PointError> {
        let (x, y) = self.coordinates().ok_or(PointError::NotOnCurve)?;
        PublicKey::from_coordinates(x, y)
    }

    /// The key's coordinates without curve or subgroup checks (for public inputs: the order
    /// circuit enforces subgroup membership itself). `None` for non-canonical coordinates.
    pub fn to_public_key_unchecked(&self) -> Option<PublicKey> {
        let (x, y) = self.coordinates()?;
        Some(PublicKey::from_point_unchecked(
            veilwatt_circuits::babyjub::Point::new_unchecked(x, y),
        ))
    }
}

/// Order side.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Sell net export.
    Sell,
    /// Buy against net import.
    Buy,
}

impl From<Side> for veilwatt_circuits::order::Side {
    fn from(s: Side) -> Self {
        match s {
            Side::Sell => Self::Sell,
            Side::Buy => Self::Buy,
        }
    }
}

/// How a period's orders are cleared (docs/spec/market.md).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// Pay-as-clear: one price, the midpoint of the marginal ask and bid.
    Uniform,
    /// Each matched pair trades at the bid.
    PayAsBid,
    /// Each matched pair trades at the midpoint of its ask and bid.
    Midpoint,
}

/// Per-kWh fees, in minor units per kWh.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct FeeSchedule {
    /// Grid/wheeling fee, paid by the buyer, collected for the network operator.
    pub grid_fee_per_kwh: u64,
    /// Market (transaction) fee, split between buyer and seller.
    pub market_fee_per_kwh: u64,
    /// Buyer's share of the market fee in basis points (0..=10,000); the seller pays the rest.
    pub market_fee_buyer_share_bps: u16,
}

/// A consensus validator.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Validator {
    /// Human-readable name (utility, community, aggregator).
    pub name: String,
    /// Ed25519 consensus key.
    pub key: WalletKey,
    /// Voting power.
    pub power: u64,
}

/// The chain's constitution.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Genesis {
    /// Chain id; part of every signed message.
    pub chain_id: String,
    /// Start of period 0, Unix seconds.
    pub genesis_time: u64,
    /// Validator set.
    pub validators: Vec<Validator>,
    /// The registrar (distribution utility): enrols/revokes meters, credits deposits.
    pub registrar: WalletKey,
    /// Settlement period length L, seconds.
    pub period_secs: u64,
    /// Gate delay G: orders for period P are accepted until end(P) + G, seconds.
    pub gate_delay_secs: u64,
    /// Clearing mechanism.
    pub mechanism: Mechanism,
    /// Fees.
    pub fees: FeeSchedule,
    /// Price floor (the utility's feed-in tariff), minor units per kWh.
    pub price_floor: u64,
    /// Price cap (the utility's retail tariff), minor units per kWh.
    pub price_cap: u64,
    /// Id of the order circuit's verifying key (SHA-256 of `order.vk`).
    pub vk_id: Hash32,
    /// The market runs on the INSECURE development keys (anyone can forge their proofs): only
    /// for play markets (the demo, test networks, benchmarks). A genesis that pins the
    /// development keys without saying so is invalid, so every tool refuses it.
    #[serde(default)]
    pub insecure_dev_keys: bool,
    /// The longest a transaction may stay valid: its `expires_at` is at most this many seconds
    /// after the time of the block that includes it. Bounds the replay set to the transactions
    /// of this last stretch of time.
    #[serde(default = "default_max_tx_lifetime_secs")]
    pub max_tx_lifetime_secs: u64,
    /// Results of this many most recent cleared periods stay in the committed state; older
    /// ones move to the nodes' archive (still served by the API and the export).
    #[serde(default = "default_result_retention_periods")]
    pub result_retention_periods: u64,
    /// Shielded money (notes spent with join-split proofs); `None`: the market has no
    /// shielded pool and refuses its transactions.
    #[serde(default)]
    pub shielded: Option<ShieldedParams>,
    /// Unlinkable orders (decision 0008): the meter registry that their proofs open; `None`:
    /// the market has no registry and refuses its enrolments. Needs a shielded pool.
    #[serde(default)]
    pub anonymous: Option<AnonymousParams>,
    /// Limits every validator enforces on a proposed block (docs/spec/ledger.md, "Blocks").
    #[serde(default)]
    pub consensus: ConsensusParams,
    /// The price and quota of what a wallet may make validators do (docs/spec/ledger.md,
    /// "Spam").
    #[serde(default)]
    pub spam: SpamParams,
}

/// What a wallet's transactions cost and how often it may cancel: every wallet-signed order,
/// cancellation and withdrawal pays `tx_fee` into the fee totals (orders still pay their
/// market fee when they trade), and a meter's orders for one period may be cancelled at most
/// `max_cancels_per_period` times, so an order, its cancellation and the order again cannot
/// loop on one proof.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpamParams {
    /// Fee of every wallet-signed order, cancellation and withdrawal, millis, paid from the
    /// signer's available balance; at most [`MAX_TX_FEE`].
    #[serde(default)]
    pub tx_fee: Millis,
    /// Most cancellations of one meter's orders for one period; at most
    /// [`MAX_CANCELS_BOUND`].
    #[serde(default = "default_max_cancels_per_period")]
    pub max_cancels_per_period: u32,
}

impl Default for SpamParams {
    fn default() -> Self {
        Self {
            tx_fee: 0,
            max_cancels_per_period: DEFAULT_MAX_CANCELS_PER_PERIOD,
        }
    }
}

/// Default [`SpamParams::max_cancels_per_period`].
pub const DEFAULT_MAX_CANCELS_PER_PERIOD: u32 = 3;
/// Largest [`SpamParams::max_cancels_per_period`] a genesis may set.
pub const MAX_CANCELS_BOUND: u32 = 100;
/// Largest [`SpamParams::tx_fee`] a genesis may set, millis (one million minor units): far
/// above any sensible fee, far below any overflow.
pub const MAX_TX_FEE: Millis = 1_000_000_000;

fn default_max_cancels_per_period() -> u32 {
    DEFAULT_MAX_CANCELS_PER_PERIOD
}

/// Consensus-level limits, the same for every validator: a block over them is invalid
/// whoever proposed it, and a validator's sync response always carries at least one block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusParams {
    /// Most transactions in one block.
    #[serde(default = "default_max_block_txs")]
    pub max_block_txs: u32,
    /// Largest canonical (borsh) encoding of one block, bytes; at most
    /// [`MAX_BLOCK_BYTES_BOUND`].
    #[serde(default = "default_max_block_bytes")]
    pub max_block_bytes: u64,
    /// How far a live proposal's time may be from a validator's own clock, either way,
    /// seconds. Bounds how late after its gate an order can be admitted (at most this much,
    /// plus the validators' own clock error).
    #[serde(default = "default_max_clock_skew_secs")]
    pub max_clock_skew_secs: u64,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        Self {
            max_block_txs: DEFAULT_MAX_BLOCK_TXS,
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            max_clock_skew_secs: DEFAULT_MAX_CLOCK_SKEW_SECS,
        }
    }
}

/// Default [`ConsensusParams::max_block_txs`].
pub const DEFAULT_MAX_BLOCK_TXS: u32 = 4_000;
/// Default [`ConsensusParams::max_block_bytes`]: 4 MiB.
pub const DEFAULT_MAX_BLOCK_BYTES: u64 = 4 << 20;
/// Default [`ConsensusParams::max_clock_skew_secs`].
pub const DEFAULT_MAX_CLOCK_SKEW_SECS: u64 = 10;
/// Largest [`ConsensusParams::max_block_bytes`] a genesis may set: 8 MiB, so that one block
/// with its commit certificate always fits in a value-sync response (10 MiB).
pub const MAX_BLOCK_BYTES_BOUND: u64 = 8 << 20;
/// Smallest [`ConsensusParams::max_block_bytes`]: room for the largest transactions.
pub const MIN_BLOCK_BYTES: u64 = 64 << 10;
/// Largest [`ConsensusParams::max_block_txs`] a genesis may set.
pub const MAX_BLOCK_TXS_BOUND: u32 = 100_000;
/// Largest [`ConsensusParams::max_clock_skew_secs`] a genesis may set (ten minutes).
pub const MAX_CLOCK_SKEW_BOUND: u64 = 600;

fn default_max_block_txs() -> u32 {
    DEFAULT_MAX_BLOCK_TXS
}

fn default_max_block_bytes() -> u64 {
    DEFAULT_MAX_BLOCK_BYTES
}

fn default_max_clock_skew_secs() -> u64 {
    DEFAULT_MAX_CLOCK_SKEW_SECS
}

/// The parameters of unlinkable orders (docs/spec/ledger.md, "Meter registry").
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct AnonymousParams {
    /// Id of the unlinkable order circuit's verifying key (SHA-256 of `order_v2.vk`).
    pub vk_id: Hash32,
    /// How many recent registry roots an order may prove against (`K`); a revocation makes
    /// every earlier root invalid at once.
    pub registry_history: u64,
}

/// The shielded pool's parameters (docs/spec/notes.md).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ShieldedParams {
    /// Id of the join-split circuit's verifying key (SHA-256 of `joinsplit.vk`).
    pub vk_id: Hash32,
    /// How many recent note-tree roots a spend may prove against (`K`).
    pub root_history: u64,
    /// The smallest fee of a spend, millis, paid from its public amount out.
    pub min_fee: Millis,
}

/// Largest [`ShieldedParams::root_history`]: a spend may use a root up to this many
/// note-making blocks old.
pub const MAX_ROOT_HISTORY: u64 = 10_000;

/// Largest [`NoteOutput::memo`], bytes.
pub const MAX_NOTE_MEMO: usize = 256;

/// Hex in JSON for byte strings.
mod hex_vec {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        hex::decode(s.as_ref()).map_err(serde::de::Error::custom)
    }
}

/// A note a spend makes: its commitment and what its recipient needs to find and open it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct NoteOutput {
    /// The note commitment (appended to the note tree).
    pub cm: FieldBytes,
    /// The note's opening for its recipient, encrypted by the wallet that made it; opaque to
    /// the ledger, at most [`MAX_NOTE_MEMO`] bytes, covered by the binding hash.
    #[serde(with = "hex_vec")]
    pub memo: Vec<u8>,
}

/// Where the ledger pays an unlinkable order's money: a note it mints to this owner tag with
/// this `rho` (the household's wallet finds it by its tag; nobody else can link it).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct NoteTarget {
    /// The note's owner tag (a one-time tag of the household).
    pub owner: FieldBytes,
    /// The note's `rho`.
    pub rho: FieldBytes,
}

/// A buy order's escrow: a join-split (no money in) whose public amount out is the order's
/// maximum cost plus the spend's fee. Its binding hash names the order's nullifier, so it
/// pays for that order and no other.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Escrow {
    /// A recent note-tree root.
    pub anchor: FieldBytes,
    /// The spent notes' nullifiers.
    pub nullifiers: [FieldBytes; 2],
    /// The new notes (change, dummies).
    pub outputs: [NoteOutput; 2],
    /// Held for the order, millis: exactly its maximum cost (`buy_escrow`).
    pub amount: Millis,
    /// The spend's fee (at least the genesis `min_fee`), millis.
    pub fee: Millis,
    /// Groth16 proof of the join-split statement.
    pub proof: SpendProof,
}

/// Where a spend's public amount out goes (besides its fee).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Payout {
    /// Nowhere: the public amount out is exactly the fee.
    None,
    /// Credited to a wallet's (public) balance, which orders use until they use notes.
    Wallet {
        /// The wallet.
        wallet: WalletKey,
    },
    /// Paid out of the market to a bank account (a withdrawal), named by a reference the
    /// registrar's bank transfer carries.
    Bank {
        /// The payment reference.
        reference: u64,
    },
}

/// Default [`Genesis::max_tx_lifetime_secs`]: one hour.
pub const DEFAULT_MAX_TX_LIFETIME_SECS: u64 = 3_600;
/// Default [`Genesis::result_retention_periods`]: a day of 15-minute periods.
pub const DEFAULT_RESULT_RETENTION_PERIODS: u64 = 96;
/// How long the household and registrar tools make a transaction valid: ten minutes (or the
/// genesis maximum, if shorter).
pub const DEFAULT_TX_TTL_SECS: u64 = 600;

fn default_max_tx_lifetime_secs() -> u64 {
    DEFAULT_MAX_TX_LIFETIME_SECS
}

fn default_result_retention_periods() -> u64 {
    DEFAULT_RESULT_RETENTION_PERIODS
}

/// Why a genesis is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// A parameter is out of range.
    #[error("invalid genesis: {0}")]
    Invalid(&'static str),
}

/// Why a genesis file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisFileError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a genesis in JSON.
    #[error("{path} is not a genesis file: {source}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A genesis whose parameters the rules reject.
    #[error("{path} is not a valid genesis: {source}")]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: GenesisError,
    },
}

impl Genesis {
    /// Reads and validates a genesis file (JSON).
    pub fn read(path: &std::path::Path) -> Result<Self, GenesisFileError> {
        let path_buf = || path.to_owned();
        let bytes = std::fs::read(path).map_err(|source| GenesisFileError::Io {
            path: path_buf(),
            source,
        })?;
        let g: Genesis =
            serde_json::from_slice(&bytes).map_err(|source| GenesisFileError::Json {
                path: path_buf(),
                source,
            })?;
        g.validate().map_err(|source| GenesisFileError::Invalid {
            path: path_buf(),
            source,
        })?;
        Ok(g)
    }

    /// True if `vk_id` is the development keys' (forgeable by anyone).
    pub fn uses_development_keys(&self) -> bool {
        use veilwatt_params::{dev, MarketCircuit};
        self.vk_id.0 == dev::pinned_vk_id().0
            || self
                .shielded
                .as_ref()
                .is_some_and(|s| s.vk_id.0 == dev::pinned_ids_of(MarketCircuit::JoinSplit).vk_id.0)
            || self
                .anonymous
                .as_ref()
                .is_some_and(|a| a.vk_id.0 == dev::pinned_ids_of(MarketCircuit::OrderV2).vk_id.0)
    }

    /// The warning every tool prints for a market on development keys, `None` otherwise.
    pub fn insecure_keys_warning(&self) -> Option<String> {
        self.insecure_dev_keys.then(|| {
            format!(
                "WARNING: chain {} runs on INSECURE development keys (insecure_dev_keys: true): \
                 anyone can forge its proofs. A play market only; nothing on it is worth anything.",
                self.chain_id
            )
        })
    }

    /// Checks the parameters the rules rely on.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |m| Err(GenesisError::Invalid(m));
        if self.chain_id.is_empty() || self.chain_id.len() > 64 {
            return bad("chain_id must be 1..=64 bytes");
        }
        if self.uses_development_keys() && !self.insecure_dev_keys {
            return bad(
                "vk_id (or shielded.vk_id, anonymous.vk_id) pins the INSECURE development keys, whose proofs anyone can \
                 forge; a real \
                 market needs keys from a ceremony (veilwatt-params ceremony finalize), a play \
                 market must say \"insecure_dev_keys\": true",
            );
        }
        if self.validators.is_empty() || self.validators.iter().any(|v| v.power == 0) {
            return bad("at least one validator, each with positive power");
        }
        if self
            .validators
            .iter()
            .try_fold(0u64, |acc, v| acc.checked_add(v.power))
            .is_none()
        {
            return bad("the validators' total power must fit in 64 bits");
        }
        if self.period_secs == 0 {
            return bad("period_secs must be positive");
        }
        if self.price_floor > self.price_cap {
            return bad("price_floor must not exceed price_cap");
        }
        if self.fees.market_fee_buyer_share_bps > 10_000 {
            return bad("market_fee_buyer_share_bps must be <= 10000");
        }
        if self.price_floor < self.fees.market_fee_per_kwh {
            return bad("price_floor must cover the seller's market fee");
        }
        // Values are computed as Wh (u32) x (minor/kWh) in u64 millis; keep prices and fees
        // small enough that no product of a u32 quantity and a price can overflow.
        let max_price = self
            .price_cap
            .checked_add(self.fees.grid_fee_per_kwh)
            .and_then(|p| p.checked_add(self.fees.market_fee_per_kwh));
        if max_price.is_none_or(|p| p > u64::from(u32::MAX)) {
            return bad("prices and fees must be below 2^32 minor units per kWh");
        }
        if self.gate_close(0).is_none() {
            return bad("genesis_time + period_secs + gate_delay_secs must fit in 64 bits");
        }
        if self.max_tx_lifetime_secs == 0 || self.max_tx_lifetime_secs > MAX_TX_LIFETIME_BOUND {
            return bad("max_tx_lifetime_secs must be in 1..=31536000 (a year)");
        }
        if self.result_retention_periods == 0 {
            return bad("result_retention_periods must be positive");
        }
        if let Some(s) = &self.shielded {
            if s.root_history == 0 || s.root_history > MAX_ROOT_HISTORY {
                return bad("shielded.root_history must be in 1..=10000");
            }
        }
        if let Some(a) = &self.anonymous {
            if self.shielded.is_none() {
                return bad("anonymous orders need a shielded pool (their proceeds are notes)");
            }
            if a.registry_history == 0 || a.registry_history > MAX_ROOT_HISTORY {
                return bad("anonymous.registry_history must be in 1..=10000");
            }
        }
        let c = &self.consensus;
        if c.max_block_txs == 0 || c.max_block_txs > MAX_BLOCK_TXS_BOUND {
            return bad("consensus.max_block_txs must be in 1..=100000");
        }
        if c.max_block_bytes < MIN_BLOCK_BYTES || c.max_block_bytes > MAX_BLOCK_BYTES_BOUND {
            return bad("consensus.max_block_bytes must be in 65536..=8388608 (8 MiB)");
        }
        if c.max_clock_skew_secs == 0 || c.max_clock_skew_secs > MAX_CLOCK_SKEW_BOUND {
            return bad("consensus.max_clock_skew_secs must be in 1..=600");
        }
        if self.spam.tx_fee > MAX_TX_FEE {
            return bad("spam.tx_fee must be at most 1000000000 millis");
        }
        if self.spam.max_cancels_per_period > MAX_CANCELS_BOUND {
            return bad("spam.max_cancels_per_period must be in 0..=100");
        }
        Ok(())
    }

    /// SHA-256 of the canonical encoding.
    pub fn hash(&self) -> Hash32 {
        Hash32(sha256(&encode(self)))
    }

    /// The market's id, the field element every market-bound meter statement and unlinkable
    /// order names: SHA-256 of [`MARKET_ID_DOMAIN`] and the genesis hash (which covers the
    /// chain id), reduced into BN254 Fr. A meter signs a period for one market only, so one
    /// meter enrolled in two markets cannot sell one surplus twice.
    pub fn market_id(&self) -> ark_bn254::Fr {
        use ark_ff::PrimeField;
        let mut m = MARKET_ID_DOMAIN.to_vec();
        m.extend_from_slice(&self.hash().0);
        ark_bn254::Fr::from_le_bytes_mod_order(&sha256(&m))
    }

    /// End of period `p` (exclusive), Unix seconds; `None` on overflow.
    pub fn period_end(&self, p: u64) -> Option<u64> {
        p.checked_add(1)?
            .checked_mul(self.period_secs)?
            .checked_add(self.genesis_time)
    }

    /// The expiry a tool gives a transaction it signs at wall-clock time `now`:
    /// [`DEFAULT_TX_TTL_SECS`] later, or the genesis maximum if that is shorter.
    pub fn tx_expiry(&self, now: u64) -> u64 {
        now.saturating_add(DEFAULT_TX_TTL_SECS.min(self.max_tx_lifetime_secs))
    }

    /// When the gate of period `p` closes, Unix seconds; `None` on overflow.
    pub fn gate_close(&self, p: u64) -> Option<u64> {
        self.period_end(p)?.checked_add(self.gate_delay_secs)
    }
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TxBody {
    /// Registrar: register a meter key as owned by a wallet.
    EnrollMeter {
        /// The meter.
        meter: MeterKey,
        /// Its owner.
        owner: WalletKey,
    },
    /// Registrar: revoke a meter (no further orders).
    RevokeMeter {
        /// The meter.
        meter: MeterKey,
    },
    /// Registrar: credit a wallet (funds received off-ledger).
    Deposit {
        /// Credited wallet.
        to: WalletKey,
        /// Amount, millis.
        amount: Millis,
        /// The registrar's payment reference (makes repeated deposits distinct).
        reference: u64,
    },
    /// Wallet: an order with its proof.
    Order {
        /// The meter whose statement backs the order.
        meter: MeterKey,
        /// Settlement period.
        period: u64,
        /// Sell or buy.
        side: Side,
        /// Quantity, Wh.
        quantity_wh: u32,
        /// Limit price, minor units per kWh: minimum for sells, maximum for buys.
        limit_price: u64,
        /// Groth16 proof of the order statement.
        proof: OrderProof,
    },
    /// Wallet: cancel an own open order while its gate is open.
    CancelOrder {
        /// The order.
        order: TxId,
    },
    /// Wallet: withdraw from the available balance.
    Withdraw {
        /// Amount, millis.
        amount: Millis,
        /// Makes repeated withdrawals distinct.
        nonce: u64,
    },
    /// Registrar: mint a note for funds received off-ledger (a shielded deposit): the value is
    /// public, the owner tag is the one-time tag the household gave for this deposit.
    MintNote {
        /// Value, millis.
        value: Millis,
        /// The note's owner tag.
        owner: FieldBytes,
        /// The note's `rho`.
        rho: FieldBytes,
        /// The registrar's payment reference.
        reference: u64,
    },
    /// Anyone: spend two notes (either may be a dummy) into two new ones with a join-split
    /// proof, plus `public_in` from the signer's wallet balance and `public_out` to `fee` and
    /// `payout`. Signed by a one-time key; the proof's binding hash covers every term and the
    /// signer, so neither can be swapped.
    Spend {
        /// A recent note-tree root.
        anchor: FieldBytes,
        /// The spent notes' nullifiers.
        nullifiers: [FieldBytes; 2],
        /// The new notes.
        outputs: [NoteOutput; 2],
        /// Into the pool from the signer's balance, millis.
        public_in: Millis,
        /// Out of the pool, millis: `fee` plus what `payout` receives.
        public_out: Millis,
        /// The fee (at least the genesis `min_fee`), millis.
        fee: Millis,
        /// Where the rest of `public_out` goes.
        payout: Payout,
        /// Groth16 proof of the join-split statement.
        proof: SpendProof,
    },
    /// Registrar: enrol a meter in the registry of unlinkable orders with its household's
    /// nullifier-key commitment (a new leaf; a revoked meter may be enrolled again).
    EnrollHousehold {
        /// The meter.
        meter: MeterKey,
        /// `Poseidon(DOMAIN_NK_COMMIT, nk)` of the household's nullifier key `nk`.
        nk_commit: FieldBytes,
    },
    /// Anyone: an unlinkable order (docs/spec/ledger.md, "Unlinkable orders"). Names no meter
    /// and no wallet; its proof shows an enrolled meter's statement for this market and
    /// period covers it, and its nullifier makes it the meter's only order of the period.
    /// Signed by a one-time key.
    UnlinkableOrder {
        /// A recent registry root the proof opens.
        registry_root: FieldBytes,
        /// The order nullifier: one per (meter, period), unlinkable across periods.
        order_nf: FieldBytes,
        /// Settlement period.
        period: u64,
        /// Sell or buy.
        side: Side,
        /// Quantity, Wh.
        quantity_wh: u32,
        /// Limit price, minor units per kWh: minimum for sells, maximum for buys.
        limit_price: u64,
        /// Where proceeds (sell) or the unused escrow (buy) go.
        payout: NoteTarget,
        /// `SHA-256(CANCEL_DOMAIN || cancel_key)`: whoever knows the key may cancel.
        cancel_commit: Hash32,
        /// A buy order's escrow (none for a sell).
        escrow: Option<Box<Escrow>>,
        /// Groth16 proof of the unlinkable order statement.
        proof: OrderProof,
    },
    /// Anyone who knows its cancel key: cancel an open unlinkable order while its gate is
    /// open; a buy's escrow is refunded as a note to the order's payout target. The order's
    /// nullifier stays spent (one order per meter and period, cancelled or not).
    CancelUnlinkable {
        /// The order's period.
        period: u64,
        /// The order's nullifier.
        order_nf: FieldBytes,
        /// The preimage of the order's `cancel_commit`.
        cancel_key: Hash32,
    },
}

impl TxBody {
    /// The kind byte that domain-separates signatures.
    pub fn kind(&self) -> u8 {
        match self {
            TxBody::EnrollMeter { .. } => 1,
            TxBody::RevokeMeter { .. } => 2,
            TxBody::Deposit { .. } => 3,
            TxBody::Order { .. } => 4,
            TxBody::CancelOrder { .. } => 5,
            TxBody::Withdraw { .. } => 6,
            TxBody::MintNote { .. } => 7,
            TxBody::Spend { .. } => 8,
            TxBody::EnrollHousehold { .. } => 9,
            TxBody::UnlinkableOrder { .. } => 10,
            TxBody::CancelUnlinkable { .. } => 11,
        }
    }

    /// For an order: the proof and the public inputs the ledger derives for it (meter key as
    /// decoded by `decode`, period, side, quantity). `None` for other kinds.
    pub fn order_proof_item<E>(
        &self,
        decode: impl FnOnce(&MeterKey) -> Result<PublicKey, E>,
    ) -> Option<Result<(OrderPublic, OrderProof), E>> {
        let TxBody::Order {
            meter,
            period,
            side,
            quantity_wh,
            proof,
            ..
        } = self
        else {
            return None;
        };
        Some(decode(meter).map(|pk| {
            (
                OrderPublic {
                    meter: pk,
                    period: *period,
                    side: (*side).into(),
                    quantity_wh: *quantity_wh,
                },
                *proof,
            )
        }))
    }

    /// Whether the registrar must sign this kind.
    pub fn is_registrar_kind(&self) -> bool {
        matches!(
            self,
            TxBody::EnrollMeter { .. }
                | TxBody::RevokeMeter { .. }
                | TxBody::Deposit { .. }
                | TxBody::MintNote { .. }
                | TxBody::EnrollHousehold { .. }
        )
    }
}

/// A signed transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Transaction {
    /// What it does.
    pub body: TxBody,
    /// The last block time (Unix seconds) at which it may be applied; at most
    /// [`Genesis::max_tx_lifetime_secs`] after the time of the block that applies it.
    pub expires_at: u64,
    /// The signer's Ed25519 key.
    pub signer: WalletKey,
    /// Signature over [`Transaction::signing_bytes`].
    pub signature: Signature64,
}

/// Domain separator of transaction signatures.
pub const TX_SIGNING_DOMAIN: &[u8] = b"veilwatt.tx.v2";

/// Longest lifetime a genesis may allow, seconds (a year).
pub const MAX_TX_LIFETIME_BOUND: u64 = 365 * 24 * 3_600;

impl Transaction {
    /// `TX_SIGNING_DOMAIN || borsh(chain_id) || kind || u64le(expires_at) || borsh(body)`.
    pub fn signing_bytes(chain_id: &str, body: &TxBody, expires_at: u64) -> Vec<u8> {
        let mut m = TX_SIGNING_DOMAIN.to_vec();
        m.extend(encode(&chain_id.to_owned()));
        m.push(body.kind());
        m.extend(expires_at.to_le_bytes());
        m.extend(encode(body));
        m
    }

    /// Signs `body`, valid until block time `expires_at`, with `key` for `chain_id`.
    pub fn sign(chain_id: &str, body: TxBody, expires_at: u64, key: &SigningKey) -> Self {
        let sig = key.sign(&Self::signing_bytes(chain_id, &body, expires_at));
        Self {
            body,
            expires_at,
            signer: WalletKey(key.verifying_key().to_bytes()),
            signature: Signature64(sig.to_bytes()),
        }
    }

    /// Verifies the signature (strict Ed25519: no small-order keys, canonical S).
    pub fn verify_signature(&self, chain_id: &str) -> bool {
        let Ok(vk) = VerifyingKey::from_bytes(&self.signer.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        vk.verify_strict(
            &Self::signing_bytes(chain_id, &self.body, self.expires_at),
            &sig,
        )
        .is_ok()
    }

    /// SHA-256 of the canonical encoding.
    pub fn id(&self) -> TxId {
        TxId(sha256(&encode(self)))
    }
}

/// Domain separator of a spend's binding hash.
pub const SPEND_BINDING_DOMAIN: &[u8] = b"veilwatt.spend-binding.v1";

/// Domain separator of an unlinkable order's terms hash.
pub const ORDER_TERMS_DOMAIN: &[u8] = b"veilwatt.order-terms.v1";
/// Domain separator of a buy escrow's binding hash.
pub const ESCROW_BINDING_DOMAIN: &[u8] = b"veilwatt.escrow-binding.v1";
/// Domain separator of an unlinkable order's cancel commitment.
pub const CANCEL_DOMAIN: &[u8] = b"veilwatt.cancel.v1";

/// The cancel commitment of `cancel_key`.
pub fn cancel_commitment(cancel_key: &Hash32) -> Hash32 {
    let mut m = CANCEL_DOMAIN.to_vec();
    m.extend(cancel_key.0);
    Hash32(sha256(&m))
}

/// An unlinkable order's terms hash, its proof's `TERMS` input: SHA-256 of
/// `ORDER_TERMS_DOMAIN || borsh(chain_id) || borsh((limit_price, payout, cancel_commit))`,
/// reduced into Fr. A proof lifted onto another price, payout or cancel key verifies no more.
pub fn order_terms_hash(
    chain_id: &str,
    limit_price: u64,
    payout: &NoteTarget,
    cancel_commit: &Hash32,
) -> ark_bn254::Fr {
    use ark_ff::PrimeField;
    let mut m = ORDER_TERMS_DOMAIN.to_vec();
    m.extend(encode(&chain_id.to_owned()));
    m.extend(encode(&(limit_price, *payout, *cancel_commit)));
    ark_bn254::Fr::from_le_bytes_mod_order(&sha256(&m))
}

/// What a buy escrow's binding hash covers: every term of the escrow but its proof.
#[derive(BorshSerialize)]
struct EscrowTerms<'a> {
    anchor: &'a FieldBytes,
    nullifiers: &'a [FieldBytes; 2],
    outputs: &'a [NoteOutput; 2],
    amount: Millis,
    fee: Millis,
}

/// A buy escrow's binding hash, its join-split proof's `BINDING` input: SHA-256 of
/// `ESCROW_BINDING_DOMAIN || borsh(chain_id) || order_nf || borsh(escrow terms)`, reduced
/// into Fr. The escrow pays for the order with this nullifier only, which only the household
/// can prove.
pub fn escrow_binding(chain_id: &str, order_nf: &FieldBytes, escrow: &Escrow) -> ark_bn254::Fr {
    use ark_ff::PrimeField;
    let terms = EscrowTerms {
        anchor: &escrow.anchor,
        nullifiers: &escrow.nullifiers,
        outputs: &escrow.outputs,
        amount: escrow.amount,
        fee: escrow.fee,
    };
    let mut m = ESCROW_BINDING_DOMAIN.to_vec();
    m.extend(encode(&chain_id.to_owned()));
    m.extend(order_nf.0);
    m.extend(encode(&terms));
    ark_bn254::Fr::from_le_bytes_mod_order(&sha256(&m))
}

/// Domain of [`Genesis::market_id`].
pub const MARKET_ID_DOMAIN: &[u8] = b"veilwatt.market.v1";

/// A spend's terms as its binding hash covers them: everything but the proof.
#[derive(BorshSerialize)]
struct SpendTerms<'a> {
    anchor: &'a FieldBytes,
    nullifiers: &'a [FieldBytes; 2],
    outputs: &'a [NoteOutput; 2],
    public_in: Millis,
    public_out: Millis,
    fee: Millis,
    payout: &'a Payout,
}

impl Transaction {
    /// The binding hash a spend's proof carries as its `BINDING` input: SHA-256 of
    /// `SPEND_BINDING_DOMAIN || borsh(chain_id) || u64le(expires_at) || signer || borsh(terms)`
    /// (terms: every field of the spend but the proof), reduced into Fr. A proof made for one
    /// transaction therefore verifies for no other chain, expiry, signer, amounts, payout or
    /// memo. `None` for other kinds.
    pub fn spend_binding(
        chain_id: &str,
        body: &TxBody,
        expires_at: u64,
        signer: &WalletKey,
    ) -> Option<ark_bn254::Fr> {
        use ark_ff::PrimeField;
        let TxBody::Spend {
            anchor,
            nullifiers,
            outputs,
            public_in,
            public_out,
            fee,
            payout,
            ..
        } = body
        else {
            return None;
        };
        let terms = SpendTerms {
            anchor,
            nullifiers,
            outputs,
            public_in: *public_in,
            public_out: *public_out,
            fee: *fee,
            payout,
        };
        let mut m = SPEND_BINDING_DOMAIN.to_vec();
        m.extend(encode(&chain_id.to_owned()));
        m.extend(expires_at.to_le_bytes());
        m.extend(signer.0);
        m.extend(encode(&terms));
        Some(ark_bn254::Fr::from_le_bytes_mod_order(&sha256(&m)))
    }

    /// For a spend: its proof and the public inputs the ledger derives for it (anchor,
    /// nullifiers, output commitments, amounts, binding hash). `None` for other kinds;
    /// `Some(Err(bytes))` names a field element that is not canonical.
    pub fn spend_proof_item(
        &self,
        chain_id: &str,
    ) -> Option<Result<(JoinSplitPublic, SpendProof), FieldBytes>> {
        if let TxBody::UnlinkableOrder {
            order_nf,
            escrow: Some(e),
            ..
        } = &self.body
        {
            let public = join_split_public(
                &e.anchor,
                &e.nullifiers,
                &e.outputs,
                // An overflowing sum is refused by the rules (checked there).
                (0, e.amount.saturating_add(e.fee)),
                escrow_binding(chain_id, order_nf, e),
            );
            return Some(public.map(|p| (p, e.proof)));
        }
        let TxBody::Spend {
            anchor,
            nullifiers,
            outputs,
            public_in,
            public_out,
            proof,
            ..
        } = &self.body
        else {
            return None;
        };
        let binding = Self::spend_binding(chain_id, &self.body, self.expires_at, &self.signer)?;
        let public = join_split_public(
            anchor,
            nullifiers,
            outputs,
            (*public_in, *public_out),
            binding,
        );
        Some(public.map(|p| (p, *proof)))
    }
}

/// A join-split's public inputs from its wire terms; `Err` names a non-canonical element.
fn join_split_public(
    anchor: &FieldBytes,
    nullifiers: &[FieldBytes; 2],
    outputs: &[NoteOutput; 2],
    (public_in, public_out): (Millis, Millis),
    binding: ark_bn254::Fr,
) -> Result<JoinSplitPublic, FieldBytes> {
    let field = |x: &FieldBytes| x.to_field().ok_or(*x);
    Ok(JoinSplitPublic {
        anchor: field(anchor)?,
        nullifiers: [field(&nullifiers[0])?, field(&nullifiers[1])?],
        commitments: [field(&outputs[0].cm)?, field(&outputs[1].cm)?],
        public_in,
        public_out,
        binding,
    })
}

impl Transaction {
    /// For an unlinkable order: its proof and the public inputs the ledger derives for it
    /// (registry root, nullifier, the market's id `market`, period, side, quantity, terms
    /// hash). `None` for other kinds; `Some(Err(bytes))` names a non-canonical field element.
    pub fn unlinkable_order_item(
        &self,
        chain_id: &str,
        market: ark_bn254::Fr,
    ) -> Option<Result<(UnlinkableOrderPublic, OrderProof), FieldBytes>> {
        let TxBody::UnlinkableOrder {
            registry_root,
            order_nf,
            period,
            side,
            quantity_wh,
            limit_price,
            payout,
            cancel_commit,
            proof,
            ..
        } = &self.body
        else {
            return None;
        };
        let field = |x: &FieldBytes| x.to_field().ok_or(*x);
        Some((|| {
            Ok((
                UnlinkableOrderPublic {
                    registry_root: field(registry_root)?,
                    order_nullifier: field(order_nf)?,
                    market,
                    period: *period,
                    side: (*side).into(),
                    quantity_wh: *quantity_wh,
                    terms: order_terms_hash(chain_id, *limit_price, payout, cancel_commit),
                },
                *proof,
            ))
        })())
    }
}

/// A block of transactions.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Block {
    /// Height (genesis state is height 0; the first block is 1).
    pub height: u64,
    /// Hash of the previous block (zero for the first).
    pub prev_hash: Hash32,
    /// Consensus time, Unix seconds: the only clock the rules see.
    pub time: u64,
    /// Proposer's consensus key.
    pub proposer: WalletKey,
    /// Transactions, applied in order.
    pub txs: Vec<Transaction>,
    /// State root after applying this block.
    pub state_root: Hash32,
}

impl Block {
    /// SHA-256 of the canonical encoding.
    pub fn hash(&self) -> Hash32 {
        Hash32(sha256(&encode(self)))
    }

    /// Length of the canonical encoding, bytes (what [`ConsensusParams::max_block_bytes`]
    /// limits), counted without encoding.
    pub fn encoded_len(&self) -> u64 {
        encoded_len(self)
    }

    /// Length of the canonical encoding of a block with these header fields and no
    /// transactions; each transaction adds [`Transaction::encoded_len`].
    pub const EMPTY_ENCODED_LEN: u64 = 8 + 32 + 8 + 32 + 4 + 32;
}

impl Transaction {
    /// Length of the canonical encoding, bytes.
    pub fn encoded_len(&self) -> u64 {
        encoded_len(self)
    }
}

/// Length of `v`'s borsh encoding (which cannot fail for these in-memory types).
fn encoded_len<T: BorshSerialize>(v: &T) -> u64 {
    borsh::object_length(v).map_or(u64::MAX, |n| n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `encode` writes borsh's bytes into a buffer of exactly their length (a stored value
    /// keeps its buffer; `borsh::to_vec` would leave 1 KiB behind a 9-byte entry).
    #[test]
    fn encode_is_borsh_in_an_exact_buffer() {
        fn check<T: BorshSerialize>(v: &T) {
            let bytes = encode(v);
            assert_eq!(bytes, borsh::to_vec(v).unwrap());
            assert_eq!(bytes.capacity(), bytes.len());
        }
        check(&7u64);
        check(&(3u8, Hash32([9; 32])));
        check(&vec![5u8; 5_000]);
        check(&Vec::<u64>::new());
    }
}
