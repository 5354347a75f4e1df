//! Veilwatt's zero-knowledge statements, native code and R1CS gadgets side by side.
//!
//! * [`poseidon`]: circomlib-compatible Poseidon over BN254 Fr.
//! * [`babyjub`]: Baby Jubjub in EIP-2494 coordinates (`a = 168700`, `d = 168696`).
//! * [`eddsa`]: EdDSA-Poseidon as in circomlib/circomlibjs.
//! * [`statement`]: the meter's signed period statement.
//! * [`order`]: the order circuit proven by households and verified by validators.
//!
//! The protocol-level description (statements, public inputs in order, invariants and the tests
//! that cover them) is `docs/spec/order-circuit.md`.

pub mod babyjub;
pub mod eddsa;
pub mod order;
pub mod poseidon;
pub mod statement;
