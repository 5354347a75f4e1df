//! The household tools' integration tests, one module per file.
//!
//! One test binary per crate, not one per file: each binary links arkworks (the node's also
//! Malachite and RocksDB) and instantiates their generic code again, which made the build of
//! 35 binaries most of CI's time (docs/benchmarks.md, "CI time").

mod cli;
mod notes_wallet;
