//! dns64d-xp: a tiny native DNS relay for Windows XP and Vista. XP's
//! resolver sends DNS only over IPv4, so on an IPv6-only network the host
//! points its DNS at 127.0.0.1 and this relay forwards to the network's
//! (DNS64) resolvers over IPv6.
//!
//! On Windows this is a `no_std`, `no_main` program (see `windows/mod.rs`
//! for the entry point and why); the decisions live in the `dns64d_xp`
//! library. On other systems the binary only says what it is, so the
//! workspace builds and the library's tests run everywhere.

#![cfg_attr(windows, no_std)]
#![cfg_attr(windows, no_main)]

#[cfg(windows)]
mod windows;

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "dns64d-xp is a Windows program (XP and later); build it with \
         `cargo build --release -p dns64d-xp --target i686-pc-windows-gnu`"
    );
    std::process::ExitCode::from(2)
}
