//! Veilwatt's zero-knowledge statements, native code and R1CS gadgets side by side.
//!
//! * [`poseidon`]: circomlib-compatible Poseidon over BN254 Fr.
//! * [`babyjub`]: Baby Jubjub in EIP-2494 coordinates (`a = 168700`, `d = 168696`).
//! * [`eddsa`]: EdDSA-Poseidon as in circomlib/circomlibjs.
//! * [`statement`]: the meter's signed period statement.
//! * [`order`]: the order circuit proven by households and verified by validators.
//! * [`registry`], [`order_v2`]: the meter registry and the unlinkable order circuit that proves
//!   membership in it without naming the meter (design section 11).
//! * [`note`], [`merkle`], [`joinsplit`]: shielded money: keys, notes, the note commitment
//!   tree and the join-split circuit that spends notes.
//!
//! The protocol-level descriptions (statements, public inputs in order, invariants and the
//! tests that cover them) are `docs/spec/order-circuit.md` and `docs/spec/notes.md`.

pub mod babyjub;
pub mod eddsa;
pub mod joinsplit;
pub mod merkle;
pub mod note;
pub mod order;
pub mod order_v2;
pub mod poseidon;
mod range;
pub mod registry;
pub mod statement;
