//! No code: this crate exists for its `Cargo.toml`, which turns on, in every build of the
//! validator, the third-party features the tests' dev-dependencies turn on, so that the tests'
//! build reuses the binaries' artifacts (docs/decisions/0009-workspace-hack.md).
