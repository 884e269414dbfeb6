#!/usr/bin/env bash
# Fuzzes dns64d for a fixed budget: every cargo-fuzz target in fuzz/ runs for
# FUZZ_SECONDS (default 60) under libFuzzer with AddressSanitizer, seeded from
# the committed fuzz/seeds/<target>/ and fuzz/regressions/<target>/ inputs,
# growing the git-ignored working corpus fuzz/corpus/<target>/.
#
# Prints, per target, libFuzzer's executions and the corpus size. Exits
# non-zero if any target crashed (or leaked, ran out of memory or timed
# out); the input is left in fuzz/artifacts/<target>/ and the log beside it.
#
# cargo-fuzz needs nightly rustc flags (-Zsanitizer). The nightly toolchain
# is used when rustup has it or can install it; otherwise the targets are
# built with the stable toolchain and RUSTC_BOOTSTRAP=1, which lets stable
# rustc accept the -Z flags (its rust-std ships the ASan runtime).
#
# Environment:
#   FUZZ_SECONDS    time per target (default 60)
#   FUZZ_TARGETS    space-separated targets (default: all of `cargo fuzz list`)
#   FUZZ_TOOLCHAIN  "nightly" or "stable-bootstrap" to force one (default: auto)
#   FUZZ_SANITIZER  address (default) or none
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"

echo "== cargo-fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

echo "== toolchain for fuzzing"
toolchain=()
use_nightly() {
    toolchain=(+nightly)
    unset RUSTC_BOOTSTRAP
}
use_stable_bootstrap() {
    toolchain=()
    export RUSTC_BOOTSTRAP=1
    echo "no nightly toolchain: building on $(rustc --version) with RUSTC_BOOTSTRAP=1"
}
case "${FUZZ_TOOLCHAIN:-auto}" in
    nightly) use_nightly ;;
    stable-bootstrap) use_stable_bootstrap ;;
    auto)
        if rustup run nightly rustc --version >/dev/null 2>&1; then
            use_nightly
        elif command -v rustup >/dev/null 2>&1 &&
            timeout 600 rustup toolchain install nightly --profile minimal; then
            use_nightly
        else
            use_stable_bootstrap
        fi
        ;;
    *)
        echo "FUZZ_TOOLCHAIN must be auto, nightly or stable-bootstrap" >&2
        exit 2
        ;;
esac
cargo "${toolchain[@]}" --version
rustc "${toolchain[@]}" --version

if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi

echo "== build (${targets[*]}, sanitizer $sanitizer)"
build_start=$SECONDS
cargo "${toolchain[@]}" fuzz build --sanitizer "$sanitizer"
echo "built in $((SECONDS - build_start)) s"

failed=()
summary=()
for target in "${targets[@]}"; do
    echo "== fuzz $target for $seconds s"
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    log="fuzz/artifacts/$target.log"
    mkdir -p "$corpus" "$artifacts"
    inputs=("$corpus")
    for dir in "fuzz/seeds/$target" "fuzz/regressions/$target"; do
        if [ -d "$dir" ]; then
            inputs+=("$dir")
        fi
    done
    stamp=$(mktemp)
    status=0
    cargo "${toolchain[@]}" fuzz run --sanitizer "$sanitizer" "$target" "${inputs[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        >"$log" 2>&1 || status=$?
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$done_line")
    files=$(find "$corpus" -type f | wc -l)
    line="$target: executions ${executions:-?}, corpus ${corp:-?} (entries/bytes in memory), $files files in $corpus"
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        artifact=$(find "$artifacts" -type f -newer "$stamp" | head -n 1)
        line="$line -- FAILED (exit $status), input: ${artifact:-(none written)}, log: $log"
        echo "---- last lines of $log"
        grep -v 'Uses: ' "$log" | tail -n 60
    fi
    rm -f "$stamp"
    echo "$line"
    summary+=("$line")
done

echo "== fuzz summary ($seconds s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing found a crash in: ${failed[*]}" >&2
    fuzz="cargo ${toolchain[*]:+${toolchain[*]} }fuzz"
    if [ -n "${RUSTC_BOOTSTRAP:-}" ]; then
        fuzz="RUSTC_BOOTSTRAP=1 $fuzz"
    fi
    echo "reproduce: $fuzz run <target> <input>; minimize: $fuzz tmin <target> <input>" >&2
    exit 1
fi
