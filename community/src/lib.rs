//! Simulated Veilwatt communities against real validators, apart from the validator's crate
//! so that a validator build never compiles the household stack (provers, wallets, meter
//! simulation): the demo (`veilwatt-demo`, [`demo`]) and the load generator (`veilwatt-load`,
//! with the attacks it can run beside its load, [`beside`]).

pub mod beside;
pub mod demo;
