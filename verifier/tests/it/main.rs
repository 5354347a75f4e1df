//! The verifier's integration tests, one module per file.
//!
//! One test binary per crate, not one per file: each binary links arkworks (the node's also
//! Malachite and RocksDB) and instantiates their generic code again, which made the build of
//! 35 binaries most of CI's time (docs/benchmarks.md, "CI time").

#[path = "../common/mod.rs"]
mod common;

mod clearing;
mod ledger_props;
mod ledger_rules;
mod registry;
mod shielded;
mod state_tree;
mod unlinkable;
mod verify;
