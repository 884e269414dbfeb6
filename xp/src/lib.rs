//! dns64d-xp's platform-free part: everything the relay decides, as plain
//! `no_std` code without an allocator, so it is unit-tested on Linux while the
//! Windows edge (`main.rs` and `windows/`: Winsock, the Service Control
//! Manager, files) stays thin.
//!
//! The relay forwards, it does not resolve: the network's DNS64 server
//! synthesizes (as `dns64d --shim` does by default). So nothing here reads a
//! DNS message beyond its 12-byte header and the length of its one question.
//!
//! Layers, each using only those above it in this list:
//! - [`header`]: the 12-byte header (ID, flags, counts), query shape and size
//!   checks, the SERVFAIL reply;
//! - [`address`]: listen and upstream addresses as written (`127.0.0.1:53`,
//!   `[2001:db8::53]:53`, `2001:db8::53`) and the loop checks;
//! - [`settings`]: the command line and the `key = value` file beside the exe;
//! - [`upstreams`]: the upstream list, first-healthy choice, hold-down of a
//!   failing server;
//! - [`exchange`]: one query's life: fresh ID, failover on timeout or
//!   SERVFAIL/REFUSED, the client's ID restored, a bounded end;
//! - [`text`]: fixed-buffer text (log lines, UTF-16 conversion, the Windows
//!   command-line split).

#![no_std]

pub mod address;
pub mod exchange;
pub mod header;
pub mod settings;
pub mod text;
pub mod upstreams;

/// A time on the millisecond tick that wraps every 49.7 days (XP's
/// `GetTickCount`; `GetTickCount64` is Vista and later).
pub type Tick = u32;

/// Whether tick `now` is at or past `deadline`, correct across the wrap as
/// long as the two are less than 24.8 days apart.
pub fn is_due(now: Tick, deadline: Tick) -> bool {
    // Reinterpreting the wrapped difference as signed is the point.
    (now.wrapping_sub(deadline) as i32) >= 0
}

/// Milliseconds from `now` until `deadline`, 0 when due.
pub fn until(now: Tick, deadline: Tick) -> u32 {
    if is_due(now, deadline) {
        0
    } else {
        deadline.wrapping_sub(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_compare_across_the_wrap() {
        let cases: &[(&str, Tick, Tick, bool, u32)] = &[
            ("equal", 100, 100, true, 0),
            ("before", 100, 150, false, 50),
            ("after", 150, 100, true, 0),
            ("deadline past the wrap", u32::MAX - 10, 20, false, 31),
            ("now past the wrap", 5, u32::MAX - 10, true, 0),
        ];
        for &(name, now, deadline, due, left) in cases {
            assert_eq!(is_due(now, deadline), due, "{name}");
            assert_eq!(until(now, deadline), left, "{name}");
        }
    }
}
