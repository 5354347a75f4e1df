//! The order statement (design section 4; spec in `docs/spec/order-circuit.md`):
//!
//! > "I hold a period statement for (meter key, period) signed by that meter key, and
//! >  sell: export_wh - import_wh >= quantity_wh; buy: import_wh - export_wh >= quantity_wh."
//!
//! The same relation exists twice: [`check_relation`] (native) and [`OrderCircuit`] (R1CS). Both
//! take an [`OrderWitness`], a field-level assignment that can also hold values no honest prover
//! would produce, so that the tests run both on the same malicious statements.

use crate::babyjub::{
    gadget::{alloc_subgroup_point, enforce_subgroup_point, PointVar},
    Point,
};
use crate::eddsa::{self, gadget::SignatureVar, PublicKey, Signature, SignatureError};
use crate::range::{enforce_bits, fits_bits, get};
use crate::statement::{self, SignedPeriodStatement};
use ark_bn254::Fr;
use ark_ff::BigInteger256;
use ark_r1cs_std::{fields::fp::FpVar, prelude::*};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};

/// Indices of the public inputs, in the order the verifier supplies them.
pub mod public_input {
    /// Meter public key, x coordinate (EIP-2494).
    pub const METER_X: usize = 0;
    /// Meter public key, y coordinate.
    pub const METER_Y: usize = 1;
    /// Settlement period index.
    pub const PERIOD: usize = 2;
    /// Order side: 0 = sell, 1 = buy.
    pub const SIDE: usize = 3;
    /// Order quantity, Wh.
    pub const QUANTITY_WH: usize = 4;
    /// Number of public inputs (excluding Groth16's constant one).
    pub const COUNT: usize = 5;
}

/// Which way an order trades.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Sell net export.
    Sell,
    /// Buy against net import.
    Buy,
}

impl Side {
    /// The public-input encoding: sell = 0, buy = 1.
    pub fn as_field(self) -> Fr {
        match self {
            Side::Sell => Fr::from(0u64),
            Side::Buy => Fr::from(1u64),
        }
    }
}

/// The public part of an order statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderPublic {
    /// The meter's public key.
    pub meter: PublicKey,
    /// Settlement period.
    pub period: u64,
    /// Sell or buy.
    pub side: Side,
    /// Quantity offered or bid, Wh.
    pub quantity_wh: u32,
}

impl OrderPublic {
    /// The public-input vector, in the order fixed by [`public_input`]. This is the only place
    /// that builds it; the prover, the verifier and the circuit all go through here.
    pub fn to_field_elements(&self) -> [Fr; public_input::COUNT] {
        let mut v = [Fr::from(0u64); public_input::COUNT];
        v[public_input::METER_X] = self.meter.x();
        v[public_input::METER_Y] = self.meter.y();
        v[public_input::PERIOD] = Fr::from(self.period);
        v[public_input::SIDE] = self.side.as_field();
        v[public_input::QUANTITY_WH] = Fr::from(self.quantity_wh);
        v
    }
}

/// The private part: the meter's statement fields and its signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderPrivate {
    /// Metered import for the period, Wh.
    pub import_wh: u32,
    /// Metered export for the period, Wh.
    pub export_wh: u32,
    /// The statement's profile digest.
    pub profile_digest: Fr,
    /// The meter's signature over the statement.
    pub signature: Signature,
}

impl OrderPrivate {
    /// The private inputs held in a signed period statement.
    pub fn from_statement(s: &SignedPeriodStatement) -> Self {
        Self {
            import_wh: s.statement.import_wh,
            export_wh: s.statement.export_wh,
            profile_digest: s.statement.profile_digest,
            signature: s.signature,
        }
    }
}

/// A full assignment at field level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderWitness {
    /// Public inputs, indexed by [`public_input`].
    pub public: [Fr; public_input::COUNT],
    /// `import_wh` as a field element.
    pub import_wh: Fr,
    /// `export_wh` as a field element.
    pub export_wh: Fr,
    /// The statement's profile digest.
    pub profile_digest: Fr,
    /// Signature nonce commitment (any coordinates).
    pub r8: Point,
    /// Signature response (any 256-bit integer).
    pub s: BigInteger256,
}

impl OrderWitness {
    /// The honest assignment for typed inputs.
    pub fn new(public: &OrderPublic, private: &OrderPrivate) -> Self {
        Self {
            public: public.to_field_elements(),
            import_wh: Fr::from(private.import_wh),
            export_wh: Fr::from(private.export_wh),
            profile_digest: private.profile_digest,
            r8: private.signature.r8,
            s: private.signature.s,
        }
    }
}

/// Why an assignment does not satisfy the order relation (native check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelationError {
    /// I1: an amount is not below 2^32.
    #[error("{0} is not a u32 amount")]
    OutOfRange(&'static str),
    /// I1: zero quantity.
    #[error("quantity must be positive")]
    ZeroQuantity,
    /// I1: side is neither 0 nor 1.
    #[error("side is not a bit")]
    SideNotABit,
    /// I2: the meter's signature does not verify.
    #[error("meter signature: {0}")]
    Signature(#[from] SignatureError),
    /// I3: the metered net does not cover the quantity.
    #[error("net {net} Wh does not cover quantity {quantity} Wh")]
    InsufficientNet {
        /// Side-dependent net (export - import for sells, import - export for buys).
        net: i64,
        /// Requested quantity.
        quantity: u32,
    },
    /// I4 (unlinkable orders): the registry position is not a [`crate::registry::DEPTH`]-bit
    /// number.
    #[error("registry position is out of range")]
    PositionOutOfRange,
    /// I4 (unlinkable orders): no leaf of the registry under the public root holds this meter
    /// key with this household's nullifier key.
    #[error("the meter is not enrolled under this registry root with this household key")]
    NotEnrolled,
    /// I5 (unlinkable orders): the public order nullifier is not this meter's for this period
    /// under this household key.
    #[error("the order nullifier is not this meter's for this period")]
    WrongNullifier,
}

fn as_u32(x: &Fr) -> Option<u32> {
    fits_bits(x, 32).and_then(|v| u32::try_from(v).ok())
}

/// The native predicate: the order relation checked outside any circuit.
pub fn check_relation(w: &OrderWitness) -> Result<(), RelationError> {
    use public_input::*;
    let checked = check_amounts(
        &w.public[QUANTITY_WH],
        &w.import_wh,
        &w.export_wh,
        &w.public[SIDE],
    )?;
    // I2
    let msg = statement::message_from_fields(
        w.public[METER_X],
        w.public[METER_Y],
        w.public[PERIOD],
        w.import_wh,
        w.export_wh,
        w.profile_digest,
    );
    check_signature(w.public[METER_X], w.public[METER_Y], msg, w.r8, w.s)?;
    check_net(&checked)
}

/// I1's amounts, checked: `quantity`, `import_wh`, `export_wh` and whether the order sells.
pub(crate) struct Amounts {
    quantity: u32,
    import: u32,
    export: u32,
    sell: bool,
}

/// Native I1: every amount a u32, a positive quantity, the side a bit.
pub(crate) fn check_amounts(
    quantity: &Fr,
    import_wh: &Fr,
    export_wh: &Fr,
    side: &Fr,
) -> Result<Amounts, RelationError> {
    let quantity = as_u32(quantity).ok_or(RelationError::OutOfRange("quantity"))?;
    let import = as_u32(import_wh).ok_or(RelationError::OutOfRange("import"))?;
    let export = as_u32(export_wh).ok_or(RelationError::OutOfRange("export"))?;
    if quantity == 0 {
        return Err(RelationError::ZeroQuantity);
    }
    let sell = match as_u32(side) {
        Some(0) => true,
        Some(1) => false,
        _ => return Err(RelationError::SideNotABit),
    };
    Ok(Amounts {
        quantity,
        import,
        export,
        sell,
    })
}

/// Native I2: `(r8, s)` is the meter's signature on `msg` (strict EdDSA-Poseidon).
pub(crate) fn check_signature(
    meter_x: Fr,
    meter_y: Fr,
    msg: Fr,
    r8: Point,
    s: BigInteger256,
) -> Result<(), RelationError> {
    let meter = PublicKey::from_point_unchecked(Point::new_unchecked(meter_x, meter_y));
    eddsa::verify(&meter, msg, &Signature { r8, s })?;
    Ok(())
}

/// Native I3: the side's net covers the quantity.
pub(crate) fn check_net(a: &Amounts) -> Result<(), RelationError> {
    let net = if a.sell {
        i64::from(a.export) - i64::from(a.import)
    } else {
        i64::from(a.import) - i64::from(a.export)
    };
    if net < i64::from(a.quantity) {
        return Err(RelationError::InsufficientNet {
            net,
            quantity: a.quantity,
        });
    }
    Ok(())
}

/// The order circuit. `witness` is `None` only for key generation.
#[derive(Clone, Debug)]
pub struct OrderCircuit {
    witness: Option<OrderWitness>,
}

impl OrderCircuit {
    /// A circuit with a full assignment, for proving or for `is_satisfied` checks.
    pub fn new(witness: OrderWitness) -> Self {
        Self {
            witness: Some(witness),
        }
    }

    /// A circuit without an assignment, for key generation.
    pub fn blank() -> Self {
        Self { witness: None }
    }
}

/// Enforces `0 <= v < 2^32` (33 constraints).
fn enforce_u32(cs: &ConstraintSystemRef<Fr>, v: &FpVar<Fr>) -> Result<(), SynthesisError> {
    enforce_bits(cs, v, 32).map(drop)
}

/// R1CS I1: `import`, `export` and `quantity` are u32, `quantity > 0`, `side` is a bit.
pub(crate) fn enforce_amounts(
    cs: &ConstraintSystemRef<Fr>,
    import: &FpVar<Fr>,
    export: &FpVar<Fr>,
    quantity: &FpVar<Fr>,
    side: &FpVar<Fr>,
) -> Result<(), SynthesisError> {
    enforce_u32(cs, import)?;
    enforce_u32(cs, export)?;
    enforce_u32(cs, quantity)?;
    quantity.enforce_not_equal(&FpVar::zero())?;
    side.mul_equals(&(side - Fr::from(1u64)), &FpVar::zero())
}

/// R1CS I2, allocation: enforces that the meter key `(meter_x, meter_y)` and the witness
/// `r8` are subgroup points and allocates the bits of `s`; the caller then hashes the message
/// and calls [`eddsa::gadget::enforce_verify`] (`A != O`, `S < l`, the equation).
pub(crate) fn alloc_signature(
    cs: &ConstraintSystemRef<Fr>,
    meter_x: &FpVar<Fr>,
    meter_y: &FpVar<Fr>,
    r8: Option<Point>,
    s: Option<&BigInteger256>,
) -> Result<(PointVar, SignatureVar), SynthesisError> {
    // I2: the meter key is a subgroup point.
    let meter = enforce_subgroup_point(cs.clone(), meter_x, meter_y)?;
    // I2: R8 is a subgroup point; S is S_BITS bits (canonicity enforced by the verifier
    // gadget).
    let r8 = alloc_subgroup_point(cs.clone(), r8)?;
    let s_bits = s.map(eddsa::s_bits);
    let s_bits = (0..eddsa::S_BITS)
        .map(|i| Boolean::new_witness(cs.clone(), || get(s_bits.as_ref().map(|b| b[i]))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((meter, SignatureVar { r8, s_bits }))
}

/// R1CS I3: `(export - import) * (1 - 2 side) - quantity` is a 32-bit number. With all three
/// amounts below 2^32 (I1), the integer value lies in (-2^33, 2^32); a negative value wraps to
/// p - |v| > 2^32 and fails the range check.
pub(crate) fn enforce_net_covers(
    cs: &ConstraintSystemRef<Fr>,
    import: &FpVar<Fr>,
    export: &FpVar<Fr>,
    quantity: &FpVar<Fr>,
    side: &FpVar<Fr>,
) -> Result<(), SynthesisError> {
    let one_minus_two_side = FpVar::one() - side.double()?;
    let net = (export - import) * one_minus_two_side;
    enforce_u32(cs, &(net - quantity))
}

impl ConstraintSynthesizer<Fr> for OrderCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        use public_input::*;
        let w = self.witness.as_ref();

        // Public inputs, allocated in index order: this order is the verifier's input order.
        let public = (0..COUNT)
            .map(|i| FpVar::new_input(cs.clone(), || get(w.map(|w| w.public[i]))))
            .collect::<Result<Vec<_>, _>>()?;
        let (meter_x, meter_y) = (&public[METER_X], &public[METER_Y]);
        let (period, side, quantity) = (&public[PERIOD], &public[SIDE], &public[QUANTITY_WH]);

        let import = FpVar::new_witness(cs.clone(), || get(w.map(|w| w.import_wh)))?;
        let export = FpVar::new_witness(cs.clone(), || get(w.map(|w| w.export_wh)))?;
        let digest = FpVar::new_witness(cs.clone(), || get(w.map(|w| w.profile_digest)))?;

        // I1: amounts are u32, quantity > 0, side is a bit.
        enforce_amounts(&cs, &import, &export, quantity, side)?;

        // I2: the meter signed the statement message for this meter and period.
        let (meter, signature) =
            alloc_signature(&cs, meter_x, meter_y, w.map(|w| w.r8), w.map(|w| &w.s))?;
        let msg = statement::gadget::message(meter_x, meter_y, period, &import, &export, &digest)?;
        eddsa::gadget::enforce_verify(&meter, &msg, &signature)?;

        // I3: the side's net covers the quantity.
        enforce_net_covers(&cs, &import, &export, quantity, side)
    }
}
