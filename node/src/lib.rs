//! The Veilwatt validator node: admission, mempool, RocksDB ledger, Malachite consensus and the
//! HTTP API.

pub mod admission;
pub mod api;
#[cfg(feature = "byzantine")]
pub mod byzantine;
pub mod config;
pub mod consensus;
pub mod core;
pub mod forward;
pub mod mempool;
pub mod metrics;
pub mod run;
pub mod serve;
pub mod store;
