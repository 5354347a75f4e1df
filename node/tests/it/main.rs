//! The node's integration tests, one module per file, except three kept in processes of their
//! own: the multi-validator network tests (`tests/network.rs`) compare commit latencies with a
//! control run, and the market page (`tests/web.rs`) and the API limits (`tests/api_limits.rs`)
//! read the node's `/metrics`, whose registry is the process's, shared by every node a test
//! binary starts.
//!
//! One test binary per crate, not one per file: each binary links arkworks (the node's also
//! Malachite and RocksDB) and instantiates their generic code again, which made the build of
//! 35 binaries most of CI's time (docs/benchmarks.md, "CI time").

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod api;
mod audit;
mod cli;
mod consensus_codec;
mod crash;
mod demo;
mod household;
mod household_page;
mod keys;
mod linkage;
mod shielded;
mod store;
mod tls;
