//! The unlinkable order statement (design section 11; spec in `docs/spec/order-circuit.md`,
//! "Order circuit v2"):
//!
//! > "A leaf of the meter registry under `root` holds a meter key A and my nullifier-key
//! >  commitment; A signed my statement for this market and period; the statement covers the
//! >  order (sell: export - import >= quantity; buy: import - export >= quantity); and
//! >  `order_nf = Poseidon(DOMAIN_ORDER, nk, A.x, period)`."
//!
//! Neither the meter key nor the leaf's position is public: the order names a market, a
//! period, a side and a quantity, and nothing that groups it with the same household's other
//! orders. The proof is bound to the order's terms (limit price, payout and refund owner tags,
//! cancel-key commitment) by `terms`, a public input the ledger derives from them.
//!
//! As for the other circuits, the relation exists twice: [`check_relation`] (native) and
//! [`OrderCircuit`] (R1CS), over a field-level [`OrderWitness`] that can also hold values no
//! honest prover would produce. Invariants I1-I3 are the first order circuit's (shared code in
//! [`crate::order`]); I4-I6 are new.

use crate::babyjub::Point;
use crate::eddsa;
use crate::merkle;
use crate::order::{
    alloc_signature, check_amounts, check_net, check_signature, enforce_amounts,
    enforce_net_covers, RelationError, Side,
};
use crate::range::{enforce_bits, fits_bits, get};
use crate::registry::{self, RegistryPath, DEPTH};
use crate::statement::{self, SignedPeriodStatement};
use ark_bn254::Fr;
use ark_ff::{BigInteger256, Zero};
use ark_r1cs_std::{fields::fp::FpVar, prelude::*};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};

/// Indices of the public inputs, in the order the verifier supplies them.
pub mod public_input {
    /// Root of the meter registry the membership is proven against.
    pub const REGISTRY_ROOT: usize = 0;
    /// The order nullifier: one per (meter, period).
    pub const ORDER_NULLIFIER: usize = 1;
    /// The market's id (a hash of its chain id and genesis).
    pub const MARKET: usize = 2;
    /// Settlement period index.
    pub const PERIOD: usize = 3;
    /// Order side: 0 = sell, 1 = buy.
    pub const SIDE: usize = 4;
    /// Order quantity, Wh.
    pub const QUANTITY_WH: usize = 5;
    /// Hash of the order's terms.
    pub const TERMS: usize = 6;
    /// Number of public inputs (excluding Groth16's constant one).
    pub const COUNT: usize = 7;
}

/// The public part of an unlinkable order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderPublic {
    /// The registry root the proof is made against.
    pub registry_root: Fr,
    /// The order nullifier.
    pub order_nullifier: Fr,
    /// The market's id.
    pub market: Fr,
    /// Settlement period.
    pub period: u64,
    /// Sell or buy.
    pub side: Side,
    /// Quantity offered or bid, Wh.
    pub quantity_wh: u32,
    /// Hash of the order's terms.
    pub terms: Fr,
}

impl OrderPublic {
    /// The public-input vector, in the order fixed by [`public_input`]; the only place that
    /// builds it.
    pub fn to_field_elements(&self) -> [Fr; public_input::COUNT] {
        use public_input::*;
        let mut v = [Fr::zero(); COUNT];
        v[REGISTRY_ROOT] = self.registry_root;
        v[ORDER_NULLIFIER] = self.order_nullifier;
        v[MARKET] = self.market;
        v[PERIOD] = Fr::from(self.period);
        v[SIDE] = self.side.as_field();
        v[QUANTITY_WH] = Fr::from(self.quantity_wh);
        v[TERMS] = self.terms;
        v
    }
}

/// The private part: the household's key, its meter's enrolment and the signed statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderPrivate {
    /// The household's nullifier key.
    pub nk: Fr,
    /// The path of the meter's registry leaf.
    pub path: RegistryPath,
    /// The meter's statement for the period, signed for this market.
    pub statement: SignedPeriodStatement,
}

/// A full assignment at field level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderWitness {
    /// Public inputs, indexed by [`public_input`].
    pub public: [Fr; public_input::COUNT],
    /// Meter key, x.
    pub meter_x: Fr,
    /// Meter key, y.
    pub meter_y: Fr,
    /// The household's nullifier key.
    pub nk: Fr,
    /// The leaf's registry position.
    pub position: Fr,
    /// The leaf's siblings, bottom up.
    pub siblings: [Fr; DEPTH],
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
        let s = &private.statement;
        Self {
            public: public.to_field_elements(),
            meter_x: s.statement.meter.x(),
            meter_y: s.statement.meter.y(),
            nk: private.nk,
            position: Fr::from(private.path.position),
            siblings: private.path.siblings,
            import_wh: Fr::from(s.statement.import_wh),
            export_wh: Fr::from(s.statement.export_wh),
            profile_digest: s.statement.profile_digest,
            r8: s.signature.r8,
            s: s.signature.s,
        }
    }
}

/// The native predicate: the unlinkable order relation checked outside any circuit.
pub fn check_relation(w: &OrderWitness) -> Result<(), RelationError> {
    use public_input::*;
    // I1
    let amounts = check_amounts(
        &w.public[QUANTITY_WH],
        &w.import_wh,
        &w.export_wh,
        &w.public[SIDE],
    )?;
    let position = fits_bits(&w.position, DEPTH as u32).ok_or(RelationError::PositionOutOfRange)?;
    // I2: the meter signed this statement for this market and period.
    let msg = statement::market_message_from_fields(
        w.public[MARKET],
        w.meter_x,
        w.meter_y,
        w.public[PERIOD],
        w.import_wh,
        w.export_wh,
        w.profile_digest,
    );
    check_signature(w.meter_x, w.meter_y, msg, w.r8, w.s)?;
    // I3
    check_net(&amounts)?;
    // I4: the meter is enrolled with this household's key under the public root.
    let leaf = registry::leaf_from_fields(w.meter_x, w.meter_y, registry::nk_commitment(w.nk));
    if merkle::root_from_fields(leaf, position, &w.siblings) != w.public[REGISTRY_ROOT] {
        return Err(RelationError::NotEnrolled);
    }
    // I5: the nullifier is this meter's for this period under this household key.
    if registry::order_nullifier(w.nk, w.meter_x, w.public[PERIOD]) != w.public[ORDER_NULLIFIER] {
        return Err(RelationError::WrongNullifier);
    }
    // I6 (terms) constrains nothing natively: every field element is a terms hash.
    Ok(())
}

/// The unlinkable order circuit. `witness` is `None` only for key generation.
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

impl ConstraintSynthesizer<Fr> for OrderCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        use public_input::*;
        let w = self.witness.as_ref();

        // Public inputs, allocated in index order: this order is the verifier's input order.
        let public = (0..COUNT)
            .map(|i| FpVar::new_input(cs.clone(), || get(w.map(|w| w.public[i]))))
            .collect::<Result<Vec<_>, _>>()?;
        let (period, side, quantity) = (&public[PERIOD], &public[SIDE], &public[QUANTITY_WH]);

        // I6: the terms input takes part in a constraint of its own, so that the proof depends
        // on it whatever the QAP reduction does with otherwise unused inputs.
        let _terms_squared = public[TERMS].square()?;

        let witness = |f: fn(&OrderWitness) -> Fr| FpVar::new_witness(cs.clone(), || get(w.map(f)));
        let meter_x = witness(|w| w.meter_x)?;
        let meter_y = witness(|w| w.meter_y)?;
        let nk = witness(|w| w.nk)?;
        let position = witness(|w| w.position)?;
        let siblings = (0..DEPTH)
            .map(|l| FpVar::new_witness(cs.clone(), || get(w.map(|w| w.siblings[l]))))
            .collect::<Result<Vec<_>, _>>()?;
        let import = witness(|w| w.import_wh)?;
        let export = witness(|w| w.export_wh)?;
        let digest = witness(|w| w.profile_digest)?;

        // I1: amounts are u32, quantity > 0, side is a bit.
        enforce_amounts(&cs, &import, &export, quantity, side)?;

        // I2: the (private) meter key signed the statement for this market and period.
        let (meter, signature) =
            alloc_signature(&cs, &meter_x, &meter_y, w.map(|w| w.r8), w.map(|w| &w.s))?;
        let msg = statement::gadget::market_message(
            &public[MARKET],
            &meter_x,
            &meter_y,
            period,
            &import,
            &export,
            &digest,
        )?;
        eddsa::gadget::enforce_verify(&meter, &msg, &signature)?;

        // I3: the side's net covers the quantity.
        enforce_net_covers(&cs, &import, &export, quantity, side)?;

        // I4: a leaf under the public root holds this meter key and this household's key;
        // the position is a DEPTH-bit number whose bits are the path's turns.
        let bits = enforce_bits(&cs, &position, DEPTH)?;
        let nk_commit = registry::gadget::nk_commitment(&nk)?;
        let leaf = registry::gadget::leaf(&meter_x, &meter_y, &nk_commit)?;
        merkle::gadget::root(&leaf, &siblings, &bits)?.enforce_equal(&public[REGISTRY_ROOT])?;

        // I5: the public order nullifier is this meter's for this period under this key.
        registry::gadget::order_nullifier(&nk, &meter_x, period)?
            .enforce_equal(&public[ORDER_NULLIFIER])
    }
}
