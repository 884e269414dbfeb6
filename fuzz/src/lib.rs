//! Shared code of the dns64d fuzz targets: the in-memory zone, and one
//! `check` function per target so that the libFuzzer binaries, the seed
//! generator and the stable replay test (`tests/replay.rs`) run the very
//! same code on an input.

pub mod request_path;
pub mod synthesis;
pub mod zone;

/// The NAT64 prefixes the targets use: the well-known /96, a /40 and a
/// network-specific /96 (the request path's configuration); the synthesis
/// target adds one of every other RFC 6052 length.
pub const CONFIG_PREFIXES: [&str; 3] = ["64:ff9b::/96", "2001:db8:100::/40", "2001:db8:64::/96"];

/// Every RFC 6052 length once more, for the synthesis target.
pub const EXTRA_PREFIXES: [&str; 4] = [
    "2001:db8::/32",
    "2001:db8:122::/48",
    "2001:db8:122:300::/56",
    "2001:db8:122:344::/64",
];

/// Open findings in dns64d that the targets tolerate, narrowly, so that
/// fuzzing goes on past them (each has a minimized input and a note in
/// `fuzz/regressions/`). With `DNS64D_FUZZ_STRICT=1` they fail again: use
/// it to check a fix, then delete the tolerance.
pub fn strict() -> bool {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("DNS64D_FUZZ_STRICT").is_some_and(|v| v == "1"))
}
