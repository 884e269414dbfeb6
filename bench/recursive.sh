#!/usr/bin/env bash
# bench/recursive.sh - dns64d in recursive mode side by side with Unbound, resolving from a
# root of its own: a hierarchy of TLDS top-level and SLDS second-level zones served by three
# NSD instances on loopback addresses (root, TLDs, second-level zones), in a private network
# namespace, so no query can leave the machine.
#
# As root on a Debian/Ubuntu machine with a Rust toolchain:
#   bench/recursive.sh                                   # 20 000 zones, 3 repeats
#   SLDS=2000 REPEATS=1 CACHED_DURATION=3 bench/recursive.sh   # a quick trial
#
# For each repeat, each server (order rotated) starts fresh with an empty cache and goes
# through three phases, each measured as server CPU per answered query, upstream queries
# per name (the NSDs' own query counters) and RSS:
#   cold    AAAA v4.sJ.tN for every second-level zone once: referrals from the root down
#   warm    AAAA for a new leaf name under every zone (the delegations are cached)
#   cached  the cold names again for CACHED_DURATION seconds (all from the cache)
# Both answer with synthesis: every name has only an A record (the wildcard for leaves).
#
# Settings (environment):
#   SLDS=20000 TLDS=20 SLD_ADDRESSES=50   the hierarchy (gen_hierarchy.py)
#   REPEATS=3 CACHED_DURATION=10 CLIENTS=4 OUTSTANDING=256 TIMEOUT=5
#   PIN=1 SERVER_CPU=1 CLIENT_CPU=0 NICE=0
#   UNBOUND_THREADS=1 UNBOUND_MSG_CACHE=32m UNBOUND_RRSET_CACHE=64m
#   PORT_UNBOUND=5501 PORT_DNS64D=5502 SERVERS="unbound dns64d"
#   INSTALL=auto|1|0  BUILD=1|0  KEEP_WORK=0|1  DNS64D_BIN=target/release/dns64d  DNS64D_TOML=""
#   (extra TOML lines for dns64d's configuration)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
SCRIPT="$BENCH_DIR/recursive.sh"

SLDS="${SLDS:-20000}"
TLDS="${TLDS:-20}"
SLD_ADDRESSES="${SLD_ADDRESSES:-50}"
REPEATS="${REPEATS:-3}"
CACHED_DURATION="${CACHED_DURATION:-10}"
CLIENTS="${CLIENTS:-4}"
OUTSTANDING="${OUTSTANDING:-256}"
TIMEOUT="${TIMEOUT:-5}"
PIN="${PIN:-1}"
NICE="${NICE:-0}"
SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
UNBOUND_THREADS="${UNBOUND_THREADS:-1}"
UNBOUND_MSG_CACHE="${UNBOUND_MSG_CACHE:-32m}"
UNBOUND_RRSET_CACHE="${UNBOUND_RRSET_CACHE:-64m}"
PORT_UNBOUND="${PORT_UNBOUND:-5501}"
PORT_DNS64D="${PORT_DNS64D:-5502}"
SERVERS="${SERVERS:-unbound dns64d}"
INSTALL="${INSTALL:-auto}"
BUILD="${BUILD:-1}"
KEEP_WORK="${KEEP_WORK:-0}"
DNS64D_BIN="${DNS64D_BIN:-$REPO_DIR/target/release/dns64d}"
DNS64D_TOML="${DNS64D_TOML:-}"
PACKAGES=(dnsperf nsd unbound python3 iproute2 util-linux)
RESULTS_DIR="$BENCH_DIR/results"
STAMP="${BENCH_STAMP:-$(date +%Y%m%d-%H%M%S)}"
export BENCH_STAMP="$STAMP"

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

H=""   # the generated hierarchy

# start_level NAME ZONELIST ADDRESS... : an NSD instance for one level of the hierarchy,
# on port 53 of each ADDRESS, with nsd-control on a port of its own (for its query count).
CONTROL_PORT=8960
start_level() {
  local name="$1" list="$2" d="$WORK/$1" address; shift 2
  mkdir -p "$d"
  CONTROL_PORT=$((CONTROL_PORT + 1))
  {
    echo "server:"
    for address in "$@"; do echo "    ip-address: $address"; done
    cat <<CONF
    port: 53
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    database: ""
    zonelistfile: "$d/zone.list"
    xfrdfile: "$d/xfrd.state"
    xfrdir: "$d"
    pidfile: "$d/nsd.pid"
    logfile: "$d/nsd.log"
    verbosity: 0
    minimal-responses: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    tcp-count: 256
remote-control:
    control-enable: yes
    control-interface: 127.0.0.1
    control-port: $CONTROL_PORT
    server-key-file: "$WORK/keys/nsd_server.key"
    server-cert-file: "$WORK/keys/nsd_server.pem"
    control-key-file: "$WORK/keys/nsd_control.key"
    control-cert-file: "$WORK/keys/nsd_control.pem"
CONF
    cat "$list"
  } > "$d/nsd.conf"
  nsd-checkconf "$d/nsd.conf"
  start_server "$name" client nsd -d -c "$d/nsd.conf"
  NSD_CONTROLS+=(--nsd-control "nsd-control -c $d/nsd.conf stats_noreset")
}

start_unbound() {  # start_unbound NAME PORT
  local name="$1" port="$2" d="$WORK/$1"
  mkdir -p "$d"
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
    module-config: "dns64 iterator"
    dns64-prefix: 64:ff9b::/96
    do-not-query-localhost: no
    root-hints: "$H/root.hints"
    msg-cache-size: $UNBOUND_MSG_CACHE
    rrset-cache-size: $UNBOUND_RRSET_CACHE
    prefetch: no
    outgoing-range: 4096
    num-queries-per-thread: 2048
remote-control:
    control-enable: no
CONF
  unbound-checkconf "$d/unbound.conf" >/dev/null
  start_server "$name" server unbound -d -c "$d/unbound.conf"
}

start_dns64d() {  # start_dns64d NAME PORT
  local d="$WORK/$1"
  mkdir -p "$d"
  cat > "$d/dns64d.toml" <<CONF
listen = ["127.0.0.1:$2"]
[upstream]
mode = "recursive"
root_hints = "$H/root.hints"
query_private_nameservers = true
$DNS64D_TOML
CONF
  start_server "$1" server "$DNS64D_BIN" --config "$d/dns64d.toml"
}

run_inside() {
  # dns64d rejects every unknown DNS64D_ variable: the settings stay shell variables here
  export -n DNS64D_BIN DNS64D_ARGS DNS64D_TOML
  ip link set lo up
  WORK="$(mktemp -d /tmp/dns64d-recursive.XXXXXX)"
  H="$WORK/hierarchy"
  mkdir -p "$RESULTS_DIR" "$WORK/keys" "$WORK/queries"
  trap cleanup EXIT
  trap 'log "interrupted"; exit 130' INT TERM
  log "work dir $WORK; generating $TLDS TLDs and $SLDS second-level zones"
  python3 "$BENCH_DIR/gen_hierarchy.py" --out "$H" --tlds "$TLDS" --slds "$SLDS" \
    --sld-addresses "$SLD_ADDRESSES"
  nsd-control-setup -d "$WORK/keys" >/dev/null 2>&1
  local i sld=()
  for ((i = 1; i <= SLD_ADDRESSES; i++)); do sld+=("127.0.3.$i"); done
  NSD_CONTROLS=()
  start_level nsd-root "$H/nsd-root.list" 127.0.1.1
  start_level nsd-tld "$H/nsd-tld.list" 127.0.2.1
  start_level nsd-sld "$H/nsd-sld.list" "${sld[@]}"
  local probe aaaa
  probe="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["probe"]["name"])' "$H/manifest.json")"
  aaaa="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["probe"]["aaaa"])' "$H/manifest.json")"
  for address in 127.0.1.1 127.0.2.1 127.0.3.1; do
    python3 - "$address" <<'PY' || die "the NSD on $address does not answer"
import socket, sys, time
deadline = time.time() + 120
while time.time() < deadline:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    s.sendto(bytes.fromhex("1234000000010000000000000000020001"), (sys.argv[1], 53))
    try:
        s.recv(512)
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
PY
  done
  log "hierarchy served: root 127.0.1.1, TLDs 127.0.2.1, second level 127.0.3.1-$SLD_ADDRESSES"

  local load=(--clients "$CLIENTS" --outstanding "$OUTSTANDING" --timeout "$TIMEOUT" --tmp-dir "$WORK/queries")
  [[ "$PIN" == 1 ]] && load+=(--client-cpu "$CLIENT_CPU" --server-cpu "$SERVER_CPU")
  [[ "$NICE" == 0 ]] || load+=(--nice "$NICE")
  local servers rep k s port jsons=()
  read -r -a servers <<<"$SERVERS"
  for ((rep = 1; rep <= REPEATS; rep++)); do
    k=$(((rep - 1) % ${#servers[@]}))
    for s in "${servers[@]:k}" "${servers[@]:0:k}"; do
      case "$s" in
        unbound) port="$PORT_UNBOUND"; start_unbound unbound "$port" ;;
        dns64d) port="$PORT_DNS64D"; start_dns64d dns64d "$port" ;;
        *) die "SERVERS: unknown server $s" ;;
      esac
      python3 "$BENCH_DIR/bench.py" probe "$port" "$probe" AAAA --expect "$aaaa" --wait 30 \
        --pid "$(server_pid "$s")" >/dev/null \
        || { tail -n 20 "$WORK/$s"/*.log >&2 || true; die "$s: no synthesized AAAA for $probe"; }
      run_py phases --server "$s=$port:$(server_pid "$s")" --rep "$rep" "${load[@]}" \
        "${NSD_CONTROLS[@]}" --duration "$CACHED_DURATION" \
        --phase "cold:$H/cold.txt:once" --phase "warm:$H/warm.txt:once" \
        --phase "cached:$H/cached.txt:duration" --out "$WORK/phases-$s-$rep.json"
      jsons+=(--phases-json "$WORK/phases-$s-$rep.json")
      stop_server "$s"
    done
  done
  local pinning="PIN=0: no pinning"
  [[ "$PIN" == 1 ]] && pinning="taskset: the servers under test on CPU $SERVER_CPU; dnsperf and the three NSDs on CPU $CLIENT_CPU"
  [[ "$NICE" == 0 ]] || pinning+="; at nice $NICE"
  local out="$RESULTS_DIR/recursive-$STAMP"
  python3 "$BENCH_DIR/bench.py" recursive-report "${jsons[@]}" --out "$out" --stamp "$STAMP" \
    --repo "$REPO_DIR" --dns64d "$DNS64D_BIN" --pinning "$pinning" \
    --hierarchy "root + $TLDS TLDs + $SLDS second-level zones on $SLD_ADDRESSES addresses (NSD, 3 instances)" \
    --server-notes "unbound ($UNBOUND_THREADS thread(s), dns64 iterator, msg/rrset cache $UNBOUND_MSG_CACHE/$UNBOUND_RRSET_CACHE, qname minimisation on (its default), no validation); dns64d (upstream.mode = recursive, defaults${DNS64D_TOML:+, $DNS64D_TOML})"
  FAILED=0
  log "results: ${out#"$REPO_DIR"/}.txt and .json"
}

main() {
  [[ "$(id -u)" == 0 ]] || die "run as root (apt-get, network namespace, port 53)"
  if [[ "${BENCH_INNER:-0}" != 1 ]]; then
    install_packages
    build_dns64d
    export BENCH_INNER=1
    # port 53 on 127.0.x.y for the hierarchy: only in a namespace of our own
    exec unshare --net bash "$SCRIPT"
  fi
  run_inside
}

main "$@"
