//! Link settings that make dns64d-xp.exe a Windows XP program.
//!
//! Rust's `*-pc-windows-gnu` targets are labelled Windows 10+, and their
//! start-up files (mingw's crt2.o) and std use newer APIs; this binary has
//! neither. For those targets only:
//! - `-nostartfiles` and the entry point `mainCRTStartup` defined in
//!   `src/windows/mod.rs` (no C runtime start-up code);
//! - the PE header's OS and subsystem versions set to 5.01 (XP, i686) and
//!   5.02 (XP x64 / Server 2003, x86_64): the Windows loader refuses a
//!   console program whose subsystem version is newer than the system.
//!
//! `xp/check-pe.py` verifies both in the built file, with its imports.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.ends_with("-pc-windows-gnu") {
        return;
    }
    let minor = if target.starts_with("i686") { 1 } else { 2 };
    let entry = if target.starts_with("i686") {
        "_mainCRTStartup"
    } else {
        "mainCRTStartup"
    };
    for argument in [
        "-nostartfiles".to_string(),
        format!("-Wl,--entry={entry}"),
        format!("-Wl,--major-os-version=5,--minor-os-version={minor}"),
        format!("-Wl,--major-subsystem-version=5,--minor-subsystem-version={minor}"),
        "-Wl,--subsystem,console".to_string(),
        // No symbol table in the file: it is a third of its size otherwise.
        "-Wl,--strip-all".to_string(),
    ] {
        println!("cargo:rustc-link-arg-bins={argument}");
    }
}
