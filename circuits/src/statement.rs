//! The meter's period statement (design section 3): what a meter signs once per period.
//!
//! `message = Poseidon(DOMAIN_PERIOD, A.x, A.y, period, import_wh, export_wh, profile_digest)`,
//! where `A` is the meter's public key (a meter is identified by its key), and
//! `profile_digest` chains the sub-interval readings:
//! `d_0 = Poseidon(DOMAIN_PROFILE, n)`, `d_{i+1} = Poseidon(d_i, import_i, export_i)`.
//!
//! The market-bound message (design section 11, "Market binding"; what the unlinkable order
//! circuit verifies) also names the market the meter signs the period for:
//! `message = Poseidon(DOMAIN_PERIOD_V2, market, A.x, A.y, period, amounts, profile_digest)`
//! with `amounts = import_wh + 2^32 * export_wh` (both u32, so the packing is injective).

use crate::eddsa::{self, PublicKey, SecretKey, Signature, SignatureError};
use crate::poseidon;
use ark_bn254::Fr;
use ark_ff::MontFp;

/// Domain tag of the period-statement message: the ASCII bytes `veilwatt.period.v1` read as a
/// big-endian integer.
pub const DOMAIN_PERIOD: Fr = MontFp!("10313758391135669942353728733774980188108337");
/// Domain tag of the market-bound period-statement message: ASCII `veilwatt.period.v2`,
/// big-endian.
pub const DOMAIN_PERIOD_V2: Fr = MontFp!("10313758391135669942353728733774980188108338");
/// Domain tag of the profile digest: ASCII `veilwatt.profile.v1`, big-endian.
pub const DOMAIN_PROFILE: Fr = MontFp!("2640322148130731505242554795437044117544007217");

/// What the meter attests for one settlement period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodStatement {
    /// The meter's EdDSA public key (its identity).
    pub meter: PublicKey,
    /// Settlement period index.
    pub period: u64,
    /// Energy drawn from the grid during the period, Wh.
    pub import_wh: u32,
    /// Energy fed into the grid during the period, Wh.
    pub export_wh: u32,
    /// Commitment to the sub-interval readings ([`profile_digest`]).
    pub profile_digest: Fr,
}

/// A period statement with the meter's signature over [`PeriodStatement::message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedPeriodStatement {
    /// The statement.
    pub statement: PeriodStatement,
    /// The meter's EdDSA-Poseidon signature.
    pub signature: Signature,
}

/// The signed message for raw field values (shared by the typed API and the native relation).
pub fn message_from_fields(
    meter_x: Fr,
    meter_y: Fr,
    period: Fr,
    import_wh: Fr,
    export_wh: Fr,
    profile_digest: Fr,
) -> Fr {
    poseidon::hash(&[
        DOMAIN_PERIOD,
        meter_x,
        meter_y,
        period,
        import_wh,
        export_wh,
        profile_digest,
    ])
}

/// `import_wh + 2^32 * export_wh`: both amounts in one field element. Injective for u32
/// amounts; the circuit range-checks both before packing them.
pub fn pack_amounts(import_wh: Fr, export_wh: Fr) -> Fr {
    import_wh + export_wh * Fr::from(1u64 << 32)
}

/// The market-bound signed message for raw field values (shared by the typed API and the
/// native relation of the unlinkable order circuit).
pub fn market_message_from_fields(
    market: Fr,
    meter_x: Fr,
    meter_y: Fr,
    period: Fr,
    import_wh: Fr,
    export_wh: Fr,
    profile_digest: Fr,
) -> Fr {
    poseidon::hash(&[
        DOMAIN_PERIOD_V2,
        market,
        meter_x,
        meter_y,
        period,
        pack_amounts(import_wh, export_wh),
        profile_digest,
    ])
}

/// Poseidon chain over `(import_wh, export_wh)` sub-interval readings.
pub fn profile_digest(readings: &[(u32, u32)]) -> Fr {
    readings.iter().fold(
        poseidon::hash(&[DOMAIN_PROFILE, Fr::from(readings.len() as u64)]),
        |acc, (imp, exp)| poseidon::hash(&[acc, Fr::from(*imp), Fr::from(*exp)]),
    )
}

impl PeriodStatement {
    /// The field element the meter signs.
    pub fn message(&self) -> Fr {
        message_from_fields(
            self.meter.x(),
            self.meter.y(),
            Fr::from(self.period),
            Fr::from(self.import_wh),
            Fr::from(self.export_wh),
            self.profile_digest,
        )
    }

    /// The field element the meter signs when it signs the period for `market` only.
    pub fn market_message(&self, market: Fr) -> Fr {
        market_message_from_fields(
            market,
            self.meter.x(),
            self.meter.y(),
            Fr::from(self.period),
            Fr::from(self.import_wh),
            Fr::from(self.export_wh),
            self.profile_digest,
        )
    }

    /// Signs the statement for `market` with the meter's key.
    pub fn sign_for_market(self, sk: &SecretKey, market: Fr) -> SignedPeriodStatement {
        SignedPeriodStatement {
            signature: sk.sign(self.market_message(market)),
            statement: self,
        }
    }

    /// Signs the statement with the meter's key. The statement's `meter` must be `sk`'s key for
    /// the result to verify.
    pub fn sign(self, sk: &SecretKey) -> SignedPeriodStatement {
        SignedPeriodStatement {
            signature: sk.sign(self.message()),
            statement: self,
        }
    }
}

impl SignedPeriodStatement {
    /// Verifies the meter's signature.
    pub fn verify(&self) -> Result<(), SignatureError> {
        eddsa::verify(
            &self.statement.meter,
            self.statement.message(),
            &self.signature,
        )
    }

    /// Verifies the meter's signature over the statement for `market`.
    pub fn verify_for_market(&self, market: Fr) -> Result<(), SignatureError> {
        eddsa::verify(
            &self.statement.meter,
            self.statement.market_message(market),
            &self.signature,
        )
    }
}

/// The statement hash in R1CS.
pub mod gadget {
    use super::{DOMAIN_PERIOD, DOMAIN_PERIOD_V2};
    use crate::poseidon;
    use ark_bn254::Fr;
    use ark_r1cs_std::fields::fp::FpVar;
    use ark_relations::gr1cs::SynthesisError;

    /// In-circuit [`super::message_from_fields`].
    pub fn message(
        meter_x: &FpVar<Fr>,
        meter_y: &FpVar<Fr>,
        period: &FpVar<Fr>,
        import_wh: &FpVar<Fr>,
        export_wh: &FpVar<Fr>,
        profile_digest: &FpVar<Fr>,
    ) -> Result<FpVar<Fr>, SynthesisError> {
        poseidon::gadget::hash(&[
            FpVar::Constant(DOMAIN_PERIOD),
            meter_x.clone(),
            meter_y.clone(),
            period.clone(),
            import_wh.clone(),
            export_wh.clone(),
            profile_digest.clone(),
        ])
    }

    /// In-circuit [`super::market_message_from_fields`]. The caller range-checks both amounts
    /// below 2^32 (the packing is injective only then).
    pub fn market_message(
        market: &FpVar<Fr>,
        meter_x: &FpVar<Fr>,
        meter_y: &FpVar<Fr>,
        period: &FpVar<Fr>,
        import_wh: &FpVar<Fr>,
        export_wh: &FpVar<Fr>,
        profile_digest: &FpVar<Fr>,
    ) -> Result<FpVar<Fr>, SynthesisError> {
        let amounts = import_wh + export_wh * Fr::from(1u64 << 32);
        poseidon::gadget::hash(&[
            FpVar::Constant(DOMAIN_PERIOD_V2),
            market.clone(),
            meter_x.clone(),
            meter_y.clone(),
            period.clone(),
            amounts,
            profile_digest.clone(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{BigInteger, PrimeField};

    #[test]
    fn domain_tags_are_their_ascii_names() {
        let as_int = |tag: &[u8]| Fr::from_be_bytes_mod_order(tag);
        assert_eq!(DOMAIN_PERIOD, as_int(b"veilwatt.period.v1"));
        assert_eq!(DOMAIN_PROFILE, as_int(b"veilwatt.profile.v1"));
        assert_eq!(DOMAIN_PERIOD_V2, as_int(b"veilwatt.period.v2"));
        assert!(DOMAIN_PERIOD.into_bigint().num_bits() < 250);
    }
}
