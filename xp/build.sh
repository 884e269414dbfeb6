#!/usr/bin/env bash
# Builds dns64d-xp.exe for Windows XP/Vista (i686 and x86_64) and checks
# each PE file (xp/check-pe.py): OS/subsystem version 5.01/5.02 and every
# import on the XP SP3 allowlist (xp/xp-sp3-imports.txt).
#
# The release profile is adjusted through Cargo's environment variables for
# this build only: panic=abort (there is no unwinding without std), LTO and
# opt-level z (tens of KB instead of hundreds). The main crate's profile is
# untouched. Output: target/{i686,x86_64}-pc-windows-gnu/release/dns64d-xp.exe
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_PROFILE_RELEASE_PANIC=abort
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
for target in "${@:-i686-pc-windows-gnu x86_64-pc-windows-gnu}"; do
    for one in $target; do
        cargo build --locked --release -p dns64d-xp --features exe --target "$one"
        python3 xp/check-pe.py "target/$one/release/dns64d-xp.exe"
    done
done
