//! The file a meter hands to its household: one signed period statement as JSON
//! (docs/spec/household.md).
//!
//! ```json
//! {"format": "veilwatt-statement/1", "meter": "<64-byte key hex>", "period": 42,
//!  "import_wh": 310, "export_wh": 1250, "profile_digest": "<32-byte LE hex>",
//!  "signature": {"r8": "<64-byte point hex>", "s": "<32-byte LE hex>"}}
//! ```
//!
//! `veilwatt-statement/1` is signed for any market (wallet-signed orders);
//! `veilwatt-statement/2` adds `"market": "<32-byte LE hex>"`, the id of the one market the
//! meter signed the period for (unlinkable orders: the signed message names the market, so a
//! statement cannot be replayed in another market).
//!
//! Parsing checks every field's encoding, that the statement is bound as the household's
//! market needs, and the meter's signature; a file that parses is a statement the meter really
//! signed for that market.

use ark_bn254::Fr;
use ark_ff::{BigInteger, BigInteger256, PrimeField};
use serde::{Deserialize, Serialize};
use veilwatt_circuits::babyjub::Point;
use veilwatt_circuits::eddsa::{Signature, SignatureError};
use veilwatt_circuits::statement::{PeriodStatement, SignedPeriodStatement};
use veilwatt_verifier::types::MeterKey;

/// The format tag of a statement signed for any market.
pub const STATEMENT_FORMAT: &str = "veilwatt-statement/1";
/// The format tag of a statement signed for one market.
pub const MARKET_STATEMENT_FORMAT: &str = "veilwatt-statement/2";

/// The JSON form of a signed period statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementFile {
    /// Always [`STATEMENT_FORMAT`].
    pub format: String,
    /// The meter's public key.
    pub meter: MeterKey,
    /// The market the meter signed the period for (`veilwatt-statement/2` only): its id,
    /// 32 bytes little-endian, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<String>,
    /// Settlement period.
    pub period: u64,
    /// Energy drawn from the grid, Wh.
    pub import_wh: u32,
    /// Energy fed into the grid, Wh.
    pub export_wh: u32,
    /// Commitment to the sub-interval readings, 32 bytes little-endian, hex.
    pub profile_digest: String,
    /// The meter's EdDSA-Poseidon signature.
    pub signature: SignatureJson,
}

/// An EdDSA signature as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureJson {
    /// `R8`: x then y, 32 bytes little-endian each, hex.
    pub r8: String,
    /// `S`, 32 bytes little-endian, hex.
    pub s: String,
}

/// Why a statement file was refused.
#[derive(Debug, thiserror::Error)]
pub enum StatementFileError {
    /// Not JSON of the right shape.
    #[error("not a statement file: {0}")]
    Json(#[from] serde_json::Error),
    /// Another format or version.
    #[error("unsupported format {0:?} (expected {STATEMENT_FORMAT:?} or {MARKET_STATEMENT_FORMAT:?} with a market)")]
    Format(String),
    /// The statement is not bound the way this market needs: signed for any market where the
    /// market takes only statements signed for it (unlinkable orders), for another market, or
    /// for one market where the market takes statements signed for any.
    #[error("{0}")]
    Market(String),
    /// A field's encoding is wrong.
    #[error("field {field}: {why}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The meter key is not a valid public key.
    #[error("meter key is not a valid Baby Jubjub public key: {0}")]
    MeterKey(veilwatt_circuits::babyjub::PointError),
    /// The signature does not verify: the statement was altered or not signed by this meter.
    #[error("the meter's signature does not verify: {0}")]
    Signature(#[from] SignatureError),
}

fn field_error(field: &'static str, why: impl Into<String>) -> StatementFileError {
    StatementFileError::Field {
        field,
        why: why.into(),
    }
}

fn hex_array<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], StatementFileError> {
    let v = hex::decode(s).map_err(|e| field_error(field, format!("invalid hex: {e}")))?;
    let len = v.len();
    v.try_into()
        .map_err(|_| field_error(field, format!("expected {N} bytes, got {len}")))
}

/// A field element from its canonical 32-byte little-endian encoding.
fn fr(field: &'static str, b: &[u8]) -> Result<Fr, StatementFileError> {
    let x = Fr::from_le_bytes_mod_order(b);
    if x.into_bigint().to_bytes_le() != b {
        return Err(field_error(field, "not a canonical field element"));
    }
    Ok(x)
}

fn fr_hex(x: &Fr) -> String {
    hex::encode(x.into_bigint().to_bytes_le())
}

/// What a market needs of a statement: signed for any market (`None`), or for the market with
/// this id.
pub type Binding = Option<Fr>;

fn describe(b: Binding) -> String {
    match b {
        None => "signed for any market".into(),
        Some(m) => format!("signed for market {}", fr_hex(&m)),
    }
}

impl StatementFile {
    /// The file for a statement signed as `market` says (`None`: for any market; `Some(id)`:
    /// for that market, with [`veilwatt_circuits::statement::PeriodStatement::sign_for_market`]).
    pub fn from_signed(s: &SignedPeriodStatement, market: Binding) -> Self {
        let st = &s.statement;
        Self {
            format: match market {
                None => STATEMENT_FORMAT,
                Some(_) => MARKET_STATEMENT_FORMAT,
            }
            .to_owned(),
            meter: MeterKey::from_public_key(&st.meter),
            market: market.map(|m| fr_hex(&m)),
            period: st.period,
            import_wh: st.import_wh,
            export_wh: st.export_wh,
            profile_digest: fr_hex(&st.profile_digest),
            signature: SignatureJson {
                r8: format!("{}{}", fr_hex(&s.signature.r8.x), fr_hex(&s.signature.r8.y)),
                s: hex::encode(s.signature.s.to_bytes_le()),
            },
        }
    }

    /// Parses a statement file for a market that needs `market` ([`Binding`]) and verifies
    /// the meter's signature.
    pub fn parse(
        json: &[u8],
        market: Binding,
    ) -> Result<SignedPeriodStatement, StatementFileError> {
        let f: StatementFile = serde_json::from_slice(json)?;
        f.to_signed(market)
    }

    /// The market this file's statement is signed for.
    pub fn binding(&self) -> Result<Binding, StatementFileError> {
        match (self.format.as_str(), &self.market) {
            (STATEMENT_FORMAT, None) => Ok(None),
            (MARKET_STATEMENT_FORMAT, Some(m)) => {
                let bytes: [u8; 32] = hex_array("market", m)?;
                Ok(Some(fr("market", &bytes)?))
            }
            (MARKET_STATEMENT_FORMAT, None) => Err(field_error("market", "missing")),
            (STATEMENT_FORMAT, Some(_)) => Err(field_error(
                "market",
                format!("not part of {STATEMENT_FORMAT}"),
            )),
            (other, _) => Err(StatementFileError::Format(other.to_owned())),
        }
    }

    /// The signed statement for a market that needs `market`, with every encoding, the binding
    /// and the signature checked.
    pub fn to_signed(&self, market: Binding) -> Result<SignedPeriodStatement, StatementFileError> {
        let bound = self.binding()?;
        if bound != market {
            return Err(StatementFileError::Market(format!(
                "the statement is {}, but this market needs statements {} (sign with the \
                 market's genesis: veilwatt-meter sign --genesis)",
                describe(bound),
                describe(market)
            )));
        }
        let meter = self
            .meter
            .to_public_key()
            .map_err(StatementFileError::MeterKey)?;
        let digest: [u8; 32] = hex_array("profile_digest", &self.profile_digest)?;
        let r8: [u8; 64] = hex_array("signature.r8", &self.signature.r8)?;
        let s: [u8; 32] = hex_array("signature.s", &self.signature.s)?;
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(s.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(b);
        }
        let signed = SignedPeriodStatement {
            statement: PeriodStatement {
                meter,
                period: self.period,
                import_wh: self.import_wh,
                export_wh: self.export_wh,
                profile_digest: fr("profile_digest", &digest)?,
            },
            signature: Signature {
                // Curve and subgroup membership are checked by `verify`.
                r8: Point::new_unchecked(
                    fr("signature.r8", &r8[..32])?,
                    fr("signature.r8", &r8[32..])?,
                ),
                s: BigInteger256::new(limbs),
            },
        };
        match bound {
            None => signed.verify()?,
            Some(m) => signed.verify_for_market(m)?,
        }
        Ok(signed)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veilwatt_circuits::eddsa::SecretKey;
    use veilwatt_circuits::statement::profile_digest;

    fn signed(period: u64) -> SignedPeriodStatement {
        let sk = SecretKey::from_bytes([7u8; 32]);
        PeriodStatement {
            meter: sk.public_key(),
            period,
            import_wh: 310,
            export_wh: 1250,
            profile_digest: profile_digest(&[(100, 400), (210, 850)]),
        }
        .sign(&sk)
    }

    #[test]
    fn round_trips_and_verifies() {
        let s = signed(42);
        let json = StatementFile::from_signed(&s, None).to_json();
        assert_eq!(StatementFile::parse(json.as_bytes(), None).unwrap(), s);
        let market = Fr::from(77u64);
        let bound = signed_for(42, market);
        let json = StatementFile::from_signed(&bound, Some(market)).to_json();
        assert!(json.contains(MARKET_STATEMENT_FORMAT) && json.contains("\"market\""));
        assert_eq!(
            StatementFile::parse(json.as_bytes(), Some(market)).unwrap(),
            bound
        );
    }

    fn signed_for(period: u64, market: Fr) -> SignedPeriodStatement {
        let sk = SecretKey::from_bytes([7u8; 32]);
        signed(period).statement.sign_for_market(&sk, market)
    }

    #[test]
    fn a_statement_is_accepted_only_by_the_market_it_is_signed_for() {
        let (a, b) = (Fr::from(77u64), Fr::from(78u64));
        let for_a = StatementFile::from_signed(&signed_for(42, a), Some(a)).to_json();
        let for_any = StatementFile::from_signed(&signed(42), None).to_json();
        let market_error = |r: Result<SignedPeriodStatement, StatementFileError>| {
            assert!(matches!(r, Err(StatementFileError::Market(_))), "{r:?}")
        };
        market_error(StatementFile::parse(for_a.as_bytes(), Some(b)));
        market_error(StatementFile::parse(for_a.as_bytes(), None));
        market_error(StatementFile::parse(for_any.as_bytes(), Some(a)));
        // The market named in the file is bound by the signature: renamed, it does not verify.
        let mut f: StatementFile = serde_json::from_str(&for_a).unwrap();
        f.market = Some(fr_hex(&b));
        assert!(matches!(
            f.to_signed(Some(b)),
            Err(StatementFileError::Signature(SignatureError::Mismatch))
        ));
        // A statement signed for any market, relabelled as one market's, does not verify.
        let mut f: StatementFile = serde_json::from_str(&for_any).unwrap();
        f.format = MARKET_STATEMENT_FORMAT.into();
        f.market = Some(fr_hex(&a));
        assert!(matches!(
            f.to_signed(Some(a)),
            Err(StatementFileError::Signature(SignatureError::Mismatch))
        ));
        // A format without its market, or with one it does not have.
        let mut f: StatementFile = serde_json::from_str(&for_a).unwrap();
        f.market = None;
        assert!(matches!(
            f.to_signed(Some(a)),
            Err(StatementFileError::Field {
                field: "market",
                ..
            })
        ));
        let mut f: StatementFile = serde_json::from_str(&for_any).unwrap();
        f.market = Some(fr_hex(&a));
        assert!(matches!(
            f.to_signed(None),
            Err(StatementFileError::Field {
                field: "market",
                ..
            })
        ));
    }

    fn tampered(edit: impl Fn(&mut StatementFile)) -> StatementFileError {
        let mut f = StatementFile::from_signed(&signed(42), None);
        edit(&mut f);
        StatementFile::parse(serde_json::to_string(&f).unwrap().as_bytes(), None).unwrap_err()
    }

    #[test]
    fn every_signed_field_is_bound_by_the_signature() {
        let mismatch = |e: StatementFileError| {
            assert!(
                matches!(e, StatementFileError::Signature(SignatureError::Mismatch)),
                "{e}"
            )
        };
        mismatch(tampered(|f| f.export_wh += 1));
        mismatch(tampered(|f| f.import_wh -= 1));
        mismatch(tampered(|f| f.period += 1));
        mismatch(tampered(|f| {
            f.profile_digest = fr_hex(&profile_digest(&[(1, 2)]));
        }));
        // Another (valid) meter key.
        mismatch(tampered(|f| {
            f.meter = MeterKey::from_public_key(&SecretKey::from_bytes([8u8; 32]).public_key());
        }));
    }

    #[test]
    fn bad_encodings_are_named() {
        assert!(matches!(
            tampered(|f| f.format = "veilwatt-statement/0".into()),
            StatementFileError::Format(_)
        ));
        assert!(matches!(
            tampered(|f| f.signature.s.push_str("00")),
            StatementFileError::Field {
                field: "signature.s",
                ..
            }
        ));
        assert!(matches!(
            tampered(|f| f.profile_digest = "ff".repeat(32)),
            StatementFileError::Field {
                field: "profile_digest",
                ..
            }
        ));
        assert!(matches!(
            tampered(|f| f.meter = MeterKey([1u8; 64])),
            StatementFileError::MeterKey(_)
        ));
        let e = tampered(|f| f.signature.r8 = format!("{}{}", "00".repeat(32), "02".repeat(32)));
        assert!(
            matches!(e, StatementFileError::Signature(SignatureError::R8(_))),
            "{e}"
        );
        assert!(matches!(
            StatementFile::parse(b"{\"format\": 1}", None),
            Err(StatementFileError::Json(_))
        ));
        assert!(matches!(
            StatementFile::parse(
                &serde_json::to_vec(&{
                    let mut v =
                        serde_json::to_value(StatementFile::from_signed(&signed(1), None)).unwrap();
                    v["extra"] = 1.into();
                    v
                })
                .unwrap(),
                None
            ),
            Err(StatementFileError::Json(_))
        ));
    }
}
