//! Single integration-test binary for dns64d: `cargo test --test integration`.

mod binary_smoke;
mod common;
mod config_example;
mod cookies;
mod day2;
mod discovery;
mod dnssec;
mod encrypted;
mod encrypted_upstream;
mod harness_selftest;
mod layers;
mod limits;
mod malformed_flood;
mod memory;
mod operations;
mod policy;
mod recursion;
mod reply_source;
mod shim;
mod stale;
mod synthesis;
mod tcp;
mod upstream_faults;
mod validating;
mod wire;
mod zones;
