#!/usr/bin/env bash
# bench/soak.sh - a soak test of the release build: SOAK_SECONDS (60) of mixed load
# at SOAK_LOAD (70) % of the measured maximum, then a verdict on lost answers and RSS.
#
# As root (for taskset/nice; dnsperf is installed with apt-get if missing), from anywhere:
#   bench/soak.sh
#   SOAK_SECONDS=300 SOAK_LOAD=70 bench/soak.sh
#
# dns64d serves a generated local zone (soak.test) with DNS64 on, so the run needs no
# upstream and sends nothing beyond 127.0.0.1. The query mix: 60 % AAAA for 1000 A-only
# names (synthesized), 10 % AAAA for dual-stack names, 10 % A, 5 % NODATA, 5 % NXDOMAIN,
# 10 % AAAA for names under a wildcard that never repeat (every one a response-cache miss).
# The caches are bounded at cache.max_entries = 50000 and filled with 100000 other unique
# names before the soak, so RSS after the first 10 s is already that of full caches.
# Pass: zero lost answers and RSS at the end within 10 % (+2 MB) of RSS after the first 10 s.
set -euo pipefail

SOAK_SECONDS="${SOAK_SECONDS:-60}"
SOAK_LOAD="${SOAK_LOAD:-70}"
PORT="${PORT:-5410}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DNS64D_BIN:-$REPO_DIR/target/release/dns64d}"
export -n DNS64D_BIN 2>/dev/null || true   # dns64d rejects unknown DNS64D_ variables
WORK="$(mktemp -d /tmp/dns64d-soak.XXXXXX)"
echo "work directory: $WORK"
PID=""

cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill "$PID"
        wait "$PID" 2>/dev/null || true
    fi
    [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

command -v dnsperf >/dev/null || { { apt-get update -qq || true; } && apt-get install -y -qq dnsperf >/dev/null; }
[ -x "$BIN" ] || (cd "$REPO_DIR" && cargo build --release)

python3 - "$WORK" "$SOAK_SECONDS" <<'PY'
import random, sys
work, seconds = sys.argv[1], int(sys.argv[2])
with open(f"{work}/soak.test.zone", "w") as zone:
    zone.write("$ORIGIN soak.test.\n@ 3600 IN SOA ns hostmaster 1 3600 900 604800 300\n@ 3600 IN NS ns\nns 3600 IN A 93.184.216.1\n")
    for i in range(1, 1001):
        zone.write(f"v4-{i} 3600 IN A 93.184.{i // 250}.{i % 250 + 1}\n")
        zone.write(f"dual-{i} 3600 IN A 93.184.{i // 250}.{i % 250 + 1}\ndual-{i} 3600 IN AAAA 2001:db8::{i:x}\n")
        zone.write(f"text-{i} 3600 IN TXT \"t\"\n")
    zone.write("*.wild 3600 IN A 93.184.216.99\n")
rng = random.Random(64)
# Enough lines that the unique wildcard names do not repeat within the run at 300k qps.
with open(f"{work}/queries.txt", "w") as queries:
    for n in range(max(seconds, 10) * 60000):
        roll = rng.random()
        i = rng.randint(1, 1000)
        if roll < 0.60: queries.write(f"v4-{i}.soak.test AAAA\n")
        elif roll < 0.70: queries.write(f"dual-{i}.soak.test AAAA\n")
        elif roll < 0.80: queries.write(f"v4-{i}.soak.test A\n")
        elif roll < 0.85: queries.write(f"text-{i}.soak.test AAAA\n")
        elif roll < 0.90: queries.write(f"nope-{i}.soak.test AAAA\n")
        else: queries.write(f"u{n}.wild.soak.test AAAA\n")
# Twice cache.max_entries unique names, sent once before the soak to fill the caches.
with open(f"{work}/fill.txt", "w") as fill:
    for n in range(100000):
        fill.write(f"fill{n}.wild.soak.test AAAA\n")
PY

cat > "$WORK/dns64d.toml" <<TOML
listen = ["127.0.0.1:$PORT"]
[upstream]
servers = ["127.0.0.1:9"]    # never used: every name is in the local zone
[cache]
max_entries = 50000          # small enough for the fill below to fill it
[[zones]]
name = "soak.test"
file = "$WORK/soak.test.zone"
TOML

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
taskset -c 1 nice -n -10 "$BIN" --config "$WORK/dns64d.toml" 2>"$WORK/dns64d.log" &
PID=$!
for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" A v4-1.soak.test >/dev/null 2>&1 && break; sleep 0.1; done

echo "== measuring the maximum (5 s, full load)"
max=$(taskset -c 0 dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries.txt" -l 5 -c 4 -q 256 -T 1 2>&1 \
      | awk '/Queries per second/ {printf "%d", $4}')
rate=$(( max * SOAK_LOAD / 100 ))
echo "maximum ${max} qps; soak at ${SOAK_LOAD} % = ${rate} qps for ${SOAK_SECONDS} s"
echo "== filling the caches (100000 unique names, full load)"
taskset -c 0 dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/fill.txt" -n 1 -c 4 -q 256 -T 1 2>&1 \
    | grep -E "Queries (completed|lost)"

taskset -c 0 dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries.txt" -l "$SOAK_SECONDS" -c 4 -q 512 -T 1 -Q "$rate" \
    >"$WORK/dnsperf.txt" 2>&1 &
PERF=$!
samples=()
for second in $(seq 1 "$SOAK_SECONDS"); do
    sleep 1   # a sampling interval for the RSS readings, not a synchronisation
    if (( second % 10 == 0 )); then samples+=("$(rss_kb)"); echo "t=${second}s VmRSS $(( $(rss_kb) / 1024 )) MB"; fi
done
wait "$PERF"
grep -E "Queries (sent|completed|lost)|Queries per second|Average Latency" "$WORK/dnsperf.txt"
lost=$(awk '/Queries lost/ {print $3}' "$WORK/dnsperf.txt")
first=${samples[0]}
last=${samples[-1]}
limit=$(( first + first / 10 + 2048 ))
echo "RSS after 10 s: $(( first / 1024 )) MB; at the end: $(( last / 1024 )) MB (limit $(( limit / 1024 )) MB)"
if [ "$lost" = "0" ] && (( last <= limit )); then
    echo "soak PASSED: 0 lost answers, flat RSS"
else
    echo "soak FAILED: lost=$lost, RSS $(( last / 1024 )) MB"
    exit 1
fi
