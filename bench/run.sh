#!/usr/bin/env bash
# bench/run.sh - dns64d side by side with Unbound (and NSD as the ceiling), on loopback.
#
# As root on a Debian/Ubuntu machine with a Rust toolchain, from anywhere:
#   bench/run.sh                       # full run: 5 repeats x 10 s, ~45 minutes + build
#   DURATION=3 REPEATS=1 MEM_NAMES=100000 bench/run.sh     # quick trial, ~2 minutes
#
# What it does, in order (bench/README.md explains every number it reports):
#   1. installs dnsperf, nsd, unbound (apt-get, daemons kept from starting), if missing
#   2. builds dns64d (cargo build --release)
#   3. re-runs itself in a private network namespace that has only loopback
#      (unshare --net), so no query can leave the machine whatever a server does
#   4. generates the test zone bench.test and its statically synthesized twin
#   5. starts: nsd-auth (the upstream, CPU 0), unbound (dns64 module), dns64d and
#      nsd-static (the ceiling), the last three pinned to CPU 1
#   6. checks that all three give the same answers, then runs the workloads
#      (warm, mixed, miss) against them, interleaved and repeated (bench.py)
#   7. memory check: a fresh dns64d (and Unbound) flooded with MEM_NAMES unique names
#   8. writes bench/results/bench-YYYYMMDD-HHMMSS.txt and .json
#   Every process it started is stopped by PID on exit, also on failure or Ctrl-C.
#
# Settings (environment):
#   DURATION=10 REPEATS=5 WORKLOADS=warm,mixed,miss,rate10000,rate30000,rate50000,tcp,tcp10,tcp1
#                                                      seconds per run, repeats, workloads
#                                                      (bench/README.md: what each one is)
#   CLIENTS=4 OUTSTANDING=256 TIMEOUT=2                dnsperf -c / -q / -t at full load
#   LAT_RATE=1000 LAT_DURATION=5                       the fixed-rate latency run
#   MISS_LINES=DURATION*100000                         unique names per miss run
#   MEM_NAMES=1000000 MEM_CHUNKS=4 MEM_SERVERS="dns64d unbound"   memory check (0 = skip)
#   PIN=1 SERVER_CPU=1 CLIENT_CPU=0                    CPU pinning (taskset)
#   NICE=-10                  priority of servers and dnsperf (0 = unchanged): other work
#                             on the machine, a compiler say, then disturbs them less
#   PORT_AUTH=5400 PORT_UNBOUND=5401 PORT_DNS64D=5402 PORT_STATIC=5403 PORT_CONTROL=5404
#   UNBOUND_THREADS=2 UNBOUND_MSG_CACHE=32m UNBOUND_RRSET_CACHE=64m
#   INSTALL=auto|1|0  BUILD=1|0  ISOLATE=1|0  KEEP_WORK=0|1
#   DNS64D_BIN=target/release/dns64d  DNS64D_ARGS=""  (extra dns64d arguments)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
SCRIPT="$BENCH_DIR/run.sh"

# ------------------------------------------------------------------ settings
DURATION="${DURATION:-10}"
REPEATS="${REPEATS:-5}"
WORKLOADS="${WORKLOADS:-warm,mixed,miss,rate10000,rate30000,rate50000,tcp,tcp10,tcp1}"
CLIENTS="${CLIENTS:-4}"
OUTSTANDING="${OUTSTANDING:-256}"
TIMEOUT="${TIMEOUT:-2}"
LAT_RATE="${LAT_RATE:-1000}"
LAT_DURATION="${LAT_DURATION:-5}"
MISS_LINES="${MISS_LINES:-$((DURATION * 100000))}"
MEM_NAMES="${MEM_NAMES:-1000000}"
MEM_CHUNKS="${MEM_CHUNKS:-4}"
MEM_SERVERS="${MEM_SERVERS:-dns64d unbound}"
PIN="${PIN:-1}"
NICE="${NICE:--10}"
SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
PORT_AUTH="${PORT_AUTH:-5400}"
PORT_UNBOUND="${PORT_UNBOUND:-5401}"
PORT_DNS64D="${PORT_DNS64D:-5402}"
PORT_STATIC="${PORT_STATIC:-5403}"
PORT_CONTROL="${PORT_CONTROL:-5404}"  # the memory check: dns64d's metrics, unbound-control
UNBOUND_THREADS="${UNBOUND_THREADS:-2}"
UNBOUND_MSG_CACHE="${UNBOUND_MSG_CACHE:-32m}"
UNBOUND_RRSET_CACHE="${UNBOUND_RRSET_CACHE:-64m}"
INSTALL="${INSTALL:-auto}"
BUILD="${BUILD:-1}"
ISOLATE="${ISOLATE:-1}"
KEEP_WORK="${KEEP_WORK:-0}"
DNS64D_BIN="${DNS64D_BIN:-$REPO_DIR/target/release/dns64d}"
DNS64D_ARGS="${DNS64D_ARGS:-}"
PREFIX="64:ff9b::/96"
WARM_NAMES=1000
PACKAGES=(dnsperf nsd unbound python3 iproute2 util-linux)

RESULTS_DIR="$BENCH_DIR/results"
STAMP="${BENCH_STAMP:-$(date +%Y%m%d-%H%M%S)}"
export BENCH_STAMP="$STAMP"

# ------------------------------------------------------------------ helpers
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

# ------------------------------------------------------------------ 5. the servers
write_nsd_conf() {  # write_nsd_conf NAME PORT ZONEFILE
  local name="$1" port="$2" zonefile="$3" d="$WORK/$1"
  cat > "$d/nsd.conf" <<CONF
server:
    ip-address: 127.0.0.1@$port
    port: $port
    do-ip6: no
    server-count: 1
    reuseport: no
    username: ""
    chroot: ""
    database: ""
    zonesdir: "$WORK/zones"
    zonelistfile: "$d/zone.list"
    xfrdfile: "$d/xfrd.state"
    xfrdir: "$d"
    pidfile: "$d/nsd.pid"
    logfile: "$d/nsd.log"
    verbosity: 0
    hide-version: yes
    minimal-responses: yes
    # NSD limits responses to 200 qps per source /24 by default; every query here
    # comes from 127.0.0.1, so rate limiting must be off.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: "bench.test"
    zonefile: "$zonefile"
CONF
  nsd-checkconf "$d/nsd.conf"
}

start_nsd() {  # start_nsd NAME PORT ZONEFILE ROLE
  mkdir -p "$WORK/$1"
  write_nsd_conf "$1" "$2" "$3"
  start_server "$1" "$4" nsd -d -c "$WORK/$1/nsd.conf"
}

start_unbound() {  # start_unbound NAME PORT
  local name="$1" port="$2" d="$WORK/$1"
  mkdir -p "$d"
  printf '. 3600000 IN NS a.root.\na.root. 3600000 IN A 127.0.0.1\n' > "$d/root.hints"
  cat > "$d/unbound.conf" <<CONF
server:
    verbosity: 0
    use-syslog: no
    logfile: "$d/unbound.log"
    username: ""
    chroot: ""
    directory: "$d"
    pidfile: "$d/unbound.pid"
    interface: 127.0.0.1@$port
    port: $port
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    num-threads: $UNBOUND_THREADS
    so-reuseport: yes
    # DNS64 in front of the iterator; no validator module, so no DNSSEC validation
    module-config: "dns64 iterator"
    dns64-prefix: $PREFIX
    # the upstream is on 127.0.0.1
    do-not-query-localhost: no
    # Unbound serves .test as an empty local zone by default (RFC 6761)
    local-zone: "test." nodefault
    root-hints: "$d/root.hints"
    msg-cache-size: $UNBOUND_MSG_CACHE
    rrset-cache-size: $UNBOUND_RRSET_CACHE
    prefetch: no
    qname-minimisation: no
    # TCP workloads: room for every dnsperf connection (the default is 10 per thread)
    incoming-num-tcp: 256
    # The memory check reads msg.cache.count and rrset.cache.count, which only
    # extended statistics count.
    extended-statistics: ${UNBOUND_CONTROL:-no}
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@$PORT_AUTH
remote-control:
    # The memory check asks for the cache counts (unbound-control stats_noreset).
    control-enable: ${UNBOUND_CONTROL:-no}
    control-interface: 127.0.0.1
    control-port: $PORT_CONTROL
    control-use-cert: no
CONF
  unbound-checkconf "$d/unbound.conf" >/dev/null
  start_server "$name" server unbound -d -c "$d/unbound.conf"
}

start_dns64d() {  # start_dns64d NAME PORT
  mkdir -p "$WORK/$1"
  # shellcheck disable=SC2086  # DNS64D_ARGS is a list of words
  start_server "$1" server "$DNS64D_BIN" --listen "127.0.0.1:$2" \
    --upstream "127.0.0.1:$PORT_AUTH" --prefix "$PREFIX" $DNS64D_ARGS
}

# check_answers NAME PORT: the server answers, and answers the workloads' questions right.
check_answers() {
  local name="$1" port="$2"
  local py=(python3 "$BENCH_DIR/bench.py" probe "$port")
  "${py[@]}" v4only-1.bench.test AAAA --expect "$(manifest probe aaaa)" --wait 30 \
    --pid "$(server_pid "$name")" \
    || { tail -n 20 "$WORK/$name"/*.log >&2 || true; die "$name: no synthesized AAAA"; }
  "${py[@]}" dual-1.bench.test AAAA --expect 2001:db8:1::1 || die "$name: no native AAAA"
  "${py[@]}" v4only-1.bench.test A --expect "$(manifest probe ipv4)" || die "$name: no A"
  "${py[@]}" nodata-1.bench.test AAAA --rcode NOERROR || die "$name: NODATA"
  "${py[@]}" nx-1.bench.test AAAA --rcode NXDOMAIN || die "$name: NXDOMAIN"
  "${py[@]}" probe.miss.bench.test AAAA --expect "$(manifest miss_probe aaaa)" \
    || die "$name: no AAAA synthesized from the wildcard"
}

manifest() {  # manifest KEY SUBKEY: a value from zones/manifest.json
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])' \
    "$WORK/zones/manifest.json" "$1" "$2"
}

# ------------------------------------------------------------------ the measuring part
load_args() {
  local a=(--clients "$CLIENTS" --outstanding "$OUTSTANDING" --timeout "$TIMEOUT" --tmp-dir "$WORK/queries")
  [[ "$PIN" == 1 ]] && a+=(--client-cpu "$CLIENT_CPU" --server-cpu "$SERVER_CPU")
  [[ "$NICE" == 0 ]] || a+=(--nice "$NICE")
  printf '%s\n' "${a[@]}"
}

run_inside() {
  # dns64d rejects every unknown DNS64D_ variable: the settings stay shell variables here
  export -n DNS64D_BIN DNS64D_ARGS DNS64D_TOML
  if [[ "${BENCH_NETNS:-0}" == 1 ]]; then
    ip link set lo up
    # The tcp1 workload opens a connection per query, about 80 000 a run:
    # their ports would wait in TIME_WAIT for a minute, and dnsperf (which
    # binds its own sockets) would fail every later run with "bind: Address
    # already in use". Here (this namespace only) few TIME_WAIT sockets are
    # kept and the whole port range is used.
    sysctl -qw net.ipv4.tcp_max_tw_buckets=1024 net.ipv4.ip_local_port_range="1024 65535" || true
    NETWORK="private network namespace (unshare --net), loopback only"
  else
    NETWORK="host network namespace; every server listens on and forwards to 127.0.0.1 only"
  fi
  WORK="$(mktemp -d /tmp/dns64d-bench.XXXXXX)"
  mkdir -p "$RESULTS_DIR" "$WORK/queries"
  local out="$RESULTS_DIR/bench-$STAMP"
  trap cleanup EXIT
  trap 'log "interrupted"; exit 130' INT TERM

  log "work dir $WORK; network: $NETWORK"
  if [[ "$PIN" == 1 ]]; then
    [[ "$(nproc --all)" -ge 2 ]] || die "PIN=1 needs 2 CPUs (set PIN=0 on a 1-CPU machine)"
  fi
  python3 "$BENCH_DIR/gen_zone.py" --out "$WORK/zones" --v4only "$WARM_NAMES"

  # upstream on the load generator's CPU, everything under test on the server CPU
  start_nsd nsd-auth "$PORT_AUTH" "$WORK/zones/bench.test.zone" client
  python3 "$BENCH_DIR/bench.py" probe "$PORT_AUTH" v4only-1.bench.test A --wait 30 \
    --pid "$(server_pid nsd-auth)" --expect "$(manifest probe ipv4)" \
    || die "the upstream NSD does not answer"
  start_unbound unbound "$PORT_UNBOUND"
  start_dns64d dns64d "$PORT_DNS64D"
  start_nsd nsd-static "$PORT_STATIC" "$WORK/zones/bench.test.static.zone" server
  check_answers unbound "$PORT_UNBOUND"
  check_answers dns64d "$PORT_DNS64D"
  check_answers nsd-static "$PORT_STATIC"

  local pinning="PIN=0: no pinning"
  [[ "$PIN" == 1 ]] && pinning="taskset: unbound, dns64d and nsd-static on CPU $SERVER_CPU; dnsperf and the upstream nsd-auth on CPU $CLIENT_CPU"
  [[ "$NICE" == 0 ]] || pinning+="; all of them at nice $NICE"
  local notes="unbound ($UNBOUND_THREADS threads, dns64 iterator, msg/rrset cache $UNBOUND_MSG_CACHE/$UNBOUND_RRSET_CACHE, validation off) :$PORT_UNBOUND; dns64d (defaults${DNS64D_ARGS:+, $DNS64D_ARGS}) :$PORT_DNS64D; nsd-static (1 server process, synthesized AAAA as static records) :$PORT_STATIC; all forward to nsd-auth :$PORT_AUTH"
  log "$pinning"

  local servers=(--server "unbound=$PORT_UNBOUND:$(server_pid unbound)"
                 --server "dns64d=$PORT_DNS64D:$(server_pid dns64d)"
                 --server "nsd-static=$PORT_STATIC:$(server_pid nsd-static)")
  mapfile -t load < <(load_args)
  log "workloads $WORKLOADS: $REPEATS repeats x $DURATION s full load + $LAT_DURATION s at $LAT_RATE qps, per server"
  run_py workloads "${servers[@]}" "${load[@]}" --zone-dir "$WORK/zones" --static nsd-static \
    --workloads "$WORKLOADS" --duration "$DURATION" --repeats "$REPEATS" \
    --lat-rate "$LAT_RATE" --lat-duration "$LAT_DURATION" --miss-lines "$MISS_LINES" \
    --out "$WORK/workloads.json"
  stop_server unbound
  stop_server dns64d
  stop_server nsd-static

  # memory check: each server fresh, alone on its CPU, flooded with unique names
  local mem_json=() s port entries
  if [[ "$MEM_NAMES" -gt 0 ]]; then
    for s in $MEM_SERVERS; do
      # How each tells the answers its cache holds: dns64d's metrics, unbound-control.
      case "$s" in
        dns64d) port="$PORT_DNS64D"
          DNS64D_METRICS__LISTEN="127.0.0.1:$PORT_CONTROL" start_dns64d dns64d "$port"
          entries=(--metrics-url "http://127.0.0.1:$PORT_CONTROL/metrics") ;;
        unbound) port="$PORT_UNBOUND"
          UNBOUND_CONTROL=yes start_unbound unbound "$port"
          entries=(--unbound-control "$WORK/unbound/unbound.conf") ;;
        *) die "MEM_SERVERS: unknown server $s" ;;
      esac
      python3 "$BENCH_DIR/bench.py" probe "$port" v4only-1.bench.test AAAA --wait 30 \
        --pid "$(server_pid "$s")" --expect "$(manifest probe aaaa)" >/dev/null \
        || die "$s did not come up for the memory check"
      local note="cache.max_entries at its default"
      [[ "$s" == unbound ]] && note="msg/rrset cache $UNBOUND_MSG_CACHE/$UNBOUND_RRSET_CACHE"
      log "memory check: $s, $MEM_NAMES unique names"
      run_py memcheck --server "$s=$port:$(server_pid "$s")" "${load[@]}" --names "$MEM_NAMES" \
        --chunks "$MEM_CHUNKS" --note "$note" "${entries[@]}" --out "$WORK/memcheck-$s.json"
      mem_json+=(--memcheck-json "$WORK/memcheck-$s.json")
      stop_server "$s"
    done
  fi

  python3 "$BENCH_DIR/bench.py" report --workloads-json "$WORK/workloads.json" "${mem_json[@]}" \
    --out "$out" --stamp "$STAMP" --repo "$REPO_DIR" --dns64d "$DNS64D_BIN" \
    --warm-names "$WARM_NAMES" --pinning "$pinning" --network "$NETWORK" --server-notes "$notes"
  FAILED=0
  log "results: ${out#"$REPO_DIR"/}.txt and .json"
}

main() {
  [[ "$(id -u)" == 0 ]] || die "run as root (apt-get, network namespace)"
  if [[ "${BENCH_INNER:-0}" != 1 ]]; then
    install_packages
    build_dns64d
    export BENCH_INNER=1
    if [[ "$ISOLATE" == 1 ]]; then
      if unshare --net true 2>/dev/null; then
        exec unshare --net env BENCH_NETNS=1 bash "$SCRIPT"
      fi
      log "cannot create a network namespace; running in the host namespace (loopback only)"
    fi
  fi
  run_inside
}

main "$@"
