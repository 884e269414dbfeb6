#!/usr/bin/env bash
# CI for the NAT64 lab: build the release binary, `lab.sh up`, `lab.sh check`, and always
# `lab.sh down`. Exits with check's status. Skips (exit 0, with a message) only where network
# namespaces cannot be made: not root, or no CAP_SYS_ADMIN (e.g. an unprivileged container).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB=$HERE/lab.sh
t0=$EPOCHREALTIME
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

if [[ $(id -u) != 0 ]]; then
    echo "nat64-lab: SKIPPED: needs root to create network namespaces (running as uid $(id -u))"
    exit 0
fi
if ! unshare --net true 2>/dev/null; then
    echo "nat64-lab: SKIPPED: network namespaces are unavailable here (unshare --net failed)"
    exit 0
fi

if [[ -z ${DNS64D_BIN:-} ]]; then
    echo "== cargo build --release"
    (cd "$REPO" && cargo build --release --locked) || { echo "nat64-lab: cargo build --release failed"; exit 1; }
fi
echo "== build took $(elapsed "$t0") s"

# A lab left over from an interrupted run would make `up` refuse: take it down first.
"$LAB" down
rc=0 summary="0 passed, 1 failed"
out=$(mktemp)
t1=$EPOCHREALTIME
if "$LAB" up; then
    "$LAB" check | tee "$out"
    rc=${PIPESTATUS[0]}
    summary=$(tail -n 1 "$out")
else
    rc=1
    echo "nat64-lab: up failed"
fi
rm -f "$out"
"$LAB" down || rc=1
echo "== nat64-lab: up + check + down took $(elapsed "$t1") s, total $(elapsed "$t0") s, exit $rc"
echo "$summary"
exit "$rc"
