//! Simulated Veilwatt communities against real validators, apart from the validator's crate
//! so that a validator build never compiles the household stack (provers, wallets, meter
//! simulation): the demo (`veilwatt-demo`, [`demo`]) and the load generator (`veilwatt-load`).

pub mod demo;
