//! Single integration-test binary for dns64d: `cargo test --test integration`.

mod common;
mod harness_selftest;
mod synthesis;
