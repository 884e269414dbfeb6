#![no_main]
//! See `dns64d_fuzz::request_path` for the input format and the invariants checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dns64d_fuzz::request_path::check(data);
});
