//! Single integration-test binary for dns64d: `cargo test --test integration`.

mod binary_smoke;
mod common;
mod config_example;
mod discovery;
mod harness_selftest;
mod limits;
mod malformed_flood;
mod operations;
mod policy;
mod recursion;
mod shim;
mod synthesis;
mod upstream_faults;
mod wire;
mod zones;
