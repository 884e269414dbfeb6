#!/usr/bin/env bash
# bench/encrypted.sh - DoT and DoH: dns64d against Unbound (dns64 module), both with
# the same certificate, both forwarding to one NSD, warm AAAA queries (synthesized from
# cache) with dnsperf -m dot / -m doh, on loopback only.
#
#   each server pinned to CPU $SERVER_CPU, dnsperf and NSD to CPU $CLIENT_CPU;
#   per mode, connection policy and repeat: Unbound then dns64d, $DURATION s each;
#   figures: qps, server CPU-seconds (utime+stime from /proc), q/CPU-s, average latency;
#   DoH with dnsperf -m doh and with h2load (bench/README.md).
#
# As root with dnsperf (2.10+), nsd, unbound (1.17, built with nghttp2 as Debian's is),
# openssl, python3, kdig and dig installed (bench/run.sh's install step and .ci/run bring
# them), and h2load for DoH (apt-get install nghttp2-client; skipped when missing).
#   DURATION=10 REPEATS=3 PER_CONN="0 100" DNSPERF_MODES="dot doh" bench/encrypted.sh
# LAT_RATE (1000) and LAT_DURATION (5 s): the latency run per mode and round (p50, p99).
# PER_CONN: 0 = persistent connections; N = a new connection every N queries.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
REPEATS="${REPEATS:-3}"
PER_CONN="${PER_CONN:-0 100}"
DNSPERF_MODES="${DNSPERF_MODES:-dot doh}"   # dnsperf -m modes
CLIENTS="${CLIENTS:-4}"
OUTSTANDING="${OUTSTANDING:-256}"
# DoH: about one query in flight per connection. dnsperf 2.10 hands nghttp2 one TLS
# record at a time and loses a second response in the same record; dns64d ends a
# record with each response (src/edge/server/response_records.rs), as Unbound does.
DOH_CLIENTS="${DOH_CLIENTS:-64}"
DOH_OUTSTANDING="${DOH_OUTSTANDING:-64}"
SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
DNS64D_BIN="${DNS64D_BIN:-target/release/dns64d}"
export -n DNS64D_BIN 2>/dev/null || true   # dns64d rejects unknown DNS64D_ variables
[[ -x "$DNS64D_BIN" ]] || cargo build --release --locked
WORK="$(mktemp -d /tmp/dns64d-bench-tls.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
RESULT="bench/results/encrypted-$(date -u +%Y%m%d-%H%M%S).txt"

python3 bench/gen_zone.py --out "$WORK/zones" --v4only 1000 >/dev/null
# One certificate for both servers, from a throw-away CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=dns.bench.test \
  -addext "subjectAltName=DNS:dns.bench.test,IP:127.0.0.1" 2>/dev/null

mkdir -p "$WORK/nsd" "$WORK/unbound" "$WORK/dns64d"
cat > "$WORK/nsd/nsd.conf" <<CONF
server:
    ip-address: 127.0.0.1@5500
    port: 5500
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    database: ""
    zonesdir: "$WORK/zones"
    zonelistfile: "$WORK/nsd/zone.list"
    xfrdfile: "$WORK/nsd/xfrd.state"
    xfrdir: "$WORK/nsd"
    pidfile: "$WORK/nsd/nsd.pid"
    logfile: "$WORK/nsd/nsd.log"
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: "bench.test"
    zonefile: "$WORK/zones/bench.test.zone"
CONF
cat > "$WORK/unbound/unbound.conf" <<CONF
server:
    verbosity: 0
    use-syslog: no
    logfile: "$WORK/unbound/unbound.log"
    username: ""
    chroot: ""
    directory: "$WORK/unbound"
    pidfile: "$WORK/unbound/unbound.pid"
    interface: 127.0.0.1@5510
    interface: 127.0.0.1@5511
    interface: 127.0.0.1@5512
    tls-port: 5511
    https-port: 5512
    http-endpoint: "/dns-query"
    tls-service-key: "$WORK/key.pem"
    tls-service-pem: "$WORK/cert.pem"
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    num-threads: 2
    so-reuseport: yes
    incoming-num-tcp: 1024
    module-config: "dns64 iterator"
    dns64-prefix: 64:ff9b::/96
    do-not-query-localhost: no
    local-zone: "test." nodefault
    msg-cache-size: 32m
    rrset-cache-size: 64m
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@5500
remote-control:
    control-enable: no
CONF
cat > "$WORK/dns64d/dns64d.toml" <<CONF
listen = ["127.0.0.1:5520"]
[upstream]
servers = ["127.0.0.1:5500"]
[[listeners]]
address = "127.0.0.1:5521"
protocols = ["tls"]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
[[listeners]]
address = "127.0.0.1:5522"
protocols = ["https"]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
CONF

declare -A PID=()  # server name -> PID
start() {  # start CPU NAME COMMAND...: runs it in the background, records the PID
  local cpu="$1" name="$2"; shift 2
  taskset -c "$cpu" "$@" >"$WORK/$name.out" 2>&1 &
  PIDS+=("$!")
  PID[$name]=$!
}
start "$CLIENT_CPU" nsd nsd -d -c "$WORK/nsd/nsd.conf"
start "$SERVER_CPU" unbound unbound -d -c "$WORK/unbound/unbound.conf"
start "$SERVER_CPU" dns64d "$DNS64D_BIN" --config "$WORK/dns64d/dns64d.toml"
for port in 5500 5510 5520; do   # ready: each answers over UDP
  for _ in $(seq 50); do
    dig +short +tries=1 +timeout=1 @127.0.0.1 -p "$port" SOA bench.test >/dev/null 2>&1 && break
    sleep 0.2
  done
done
# Warm both caches over UDP, then check the encrypted answers match.
sed 's/ .*//' "$WORK/zones/warm.txt" | sort -u > "$WORK/names.txt"
for port in 5510 5520; do
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/zones/warm.txt" -n 3 >/dev/null
done
name="$(head -1 "$WORK/names.txt")"
for spec in "unbound 5511 5512" "dns64d 5521 5522"; do
  read -r server dot doh <<<"$spec"
  a="$(kdig +short @127.0.0.1 -p "$dot" +tls AAAA "$name" 2>/dev/null || true)"
  b="$(dig +short @127.0.0.1 -p "$doh" +https AAAA "$name" 2>/dev/null || true)"
  echo "check $server: DoT $a, DoH $b" | tee -a "$WORK/checks.txt"
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() {  # run SERVER PID MODE PORT PER_CONN
  local server="$1" pid="$2" mode="$3" port="$4" per="$5" extra=() clients="$CLIENTS" outstanding="$OUTSTANDING"
  if [[ "$mode" == doh ]]; then
    extra+=(-O "doh-uri=https://127.0.0.1:$port/dns-query" -O doh-method=GET)
    clients="$DOH_CLIENTS" outstanding="$DOH_OUTSTANDING"
  fi
  [[ "$per" != 0 ]] && extra+=(-O "num-queries-per-conn=$per")
  local before after out
  before="$(cpu_ticks "$pid")"
  out="$(taskset -c "$CLIENT_CPU" dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$WORK/zones/warm.txt" \
         -l "$DURATION" -c "$clients" -q "$outstanding" -t 2 "${extra[@]}" 2>&1)"
  after="$(cpu_ticks "$pid")"
  local completed qps latency
  completed="$(awk '/Queries completed:/ {print $3}' <<<"$out")"
  qps="$(awk '/Queries per second:/ {print $4}' <<<"$out")"
  latency="$(awk '/Average Latency/ {print $4; exit}' <<<"$out")"
  python3 - "$server" "$mode" "$per" "$completed" "$qps" "$latency" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import sys
server, mode, per, completed, qps, latency, before, after, hz = sys.argv[1:]
cpu = (int(after) - int(before)) / int(hz)
completed = int(completed or 0)
print(f"{mode} per_conn={per} {server}: completed {completed} qps {float(qps or 0):.0f} "
      f"cpu_s {cpu:.2f} q_per_cpu_s {completed / cpu if cpu else 0:.0f} avg_latency_s {latency}")
PY
}
# Latency below saturation: LAT_RATE queries a second for LAT_DURATION seconds over one
# persistent connection, every answer's latency printed by dnsperf -v; p50 and p99 of them.
LAT_RATE="${LAT_RATE:-1000}"
LAT_DURATION="${LAT_DURATION:-5}"
run_latency() {  # run_latency SERVER MODE PORT
  local server="$1" mode="$2" port="$3" extra=()
  if [[ "$mode" == doh ]]; then
    extra+=(-O "doh-uri=https://127.0.0.1:$port/dns-query" -O doh-method=GET)
  fi
  taskset -c "$CLIENT_CPU" dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$WORK/zones/warm.txt" \
    -l "$LAT_DURATION" -Q "$LAT_RATE" -c 1 -q 64 -t 2 -v "${extra[@]}" 2>&1 |
    python3 -c '
import re, sys
server, mode, rate = sys.argv[1:]
latencies = sorted(1000 * float(m.group(1)) for m in re.finditer(r"^> \S+ \S+ \S+ ([\d.]+)$", sys.stdin.read(), re.M))
def percentile(p):
    return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] if latencies else 0.0
print(f"latency {mode} @{rate}qps {server}: p50_ms {percentile(50):.3f} p99_ms {percentile(99):.3f} samples {len(latencies)}")
' "$server" "$mode" "$LAT_RATE"
}
# DoH with h2load (nghttp2-client): POST of one warm query, -c H2_CLIENTS connections
# with -m H2_STREAMS streams each, persistent: HTTP/2 with many streams per connection.
H2_CLIENTS="${H2_CLIENTS:-4}"
H2_STREAMS="${H2_STREAMS:-16}"
python3 - "$name" "$WORK/query.bin" <<'PY'
import struct, sys
name, out = sys.argv[1], sys.argv[2]
wire = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0)
for label in name.rstrip(".").split("."):
    wire += bytes([len(label)]) + label.encode()
wire += b"\0" + struct.pack(">HH", 28, 1)
open(out, "wb").write(wire)
PY
run_h2load() {  # run_h2load SERVER PID PORT
  local server="$1" pid="$2" port="$3" before after out
  before="$(cpu_ticks "$pid")"
  out="$(taskset -c "$CLIENT_CPU" h2load -D "$DURATION" -c "$H2_CLIENTS" -m "$H2_STREAMS" \
         -d "$WORK/query.bin" -H 'content-type: application/dns-message' \
         "https://127.0.0.1:$port/dns-query" 2>&1)"
  after="$(cpu_ticks "$pid")"
  local succeeded mean
  succeeded="$(awk '/^requests:/ {print $8}' <<<"$out")"
  mean="$(awk '/time for request:/ {print $6}' <<<"$out")"
  python3 - "$server" "$succeeded" "$DURATION" "$mean" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import sys
server, succeeded, duration, mean, before, after, hz = sys.argv[1:]
cpu = (int(after) - int(before)) / int(hz)
succeeded = int(succeeded or 0)
print(f"doh-h2load persistent {server}: succeeded {succeeded} "
      f"qps {succeeded / int(duration):.0f} cpu_s {cpu:.2f} "
      f"q_per_cpu_s {succeeded / cpu if cpu else 0:.0f} mean_request_time {mean}")
PY
}
{
  echo "# bench/encrypted.sh $(date -u +%FT%TZ) git $(git rev-parse --short HEAD)"
  echo "# DURATION=$DURATION REPEATS=$REPEATS DoT: -c $CLIENTS -q $OUTSTANDING, DoH: -c $DOH_CLIENTS -q $DOH_OUTSTANDING; servers on CPU $SERVER_CPU, dnsperf and nsd on CPU $CLIENT_CPU"
  cat "$WORK/checks.txt"
  for _ in $(seq "$REPEATS"); do
    for per in $PER_CONN; do
      for mode in $DNSPERF_MODES; do
        if [[ "$mode" == dot ]]; then ports=(5511 5521); else ports=(5512 5522); fi
        run unbound "${PID[unbound]}" "$mode" "${ports[0]}" "$per"
        run dns64d "${PID[dns64d]}" "$mode" "${ports[1]}" "$per"
      done
    done
    for mode in $DNSPERF_MODES; do
      if [[ "$mode" == dot ]]; then ports=(5511 5521); else ports=(5512 5522); fi
      run_latency unbound "$mode" "${ports[0]}"
      run_latency dns64d "$mode" "${ports[1]}"
    done
    if command -v h2load >/dev/null; then
      run_h2load unbound "${PID[unbound]}" 5512
      run_h2load dns64d "${PID[dns64d]}" 5522
    fi
  done
} | tee "$RESULT"
echo "written: $RESULT"
