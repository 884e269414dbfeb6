#!/usr/bin/env bash
# lab.sh -- dns64d end to end: an IPv6-only client reaches an IPv4-only web server by name,
# through dns64d (DNS64) and Tayga (NAT64), in three network namespaces made here.
#
#   d64-client (IPv6 only) --veth-- d64-gw (dns64d + tayga) --veth-- d64-server (IPv4 only: NSD, HTTP)
#
# Usage: lab.sh up | check | down | status
#   up      install missing Debian packages, build dns64d if needed, make the namespaces, start
#           NSD, the web server, tayga and dns64d
#   check   from the client: dig through dns64d, curl through tayga. Last line "N passed, N failed";
#           exit 1 on any failure
#   down    stop what `up` started (by PID and start time), delete the namespaces and every file
#           it wrote; also after a failed `up`; safe to run twice
#   status  what is running
#
# Only documentation addresses (2001:db8::/32, 198.51.100.0/24, 203.0.113.0/24) inside the lab's
# own namespaces; no namespace is linked to the host, and gw has no default route.
#
# Environment:
#   DNS64D_BIN        dns64d binary (default: <repo>/target/release/dns64d, built with
#                     `cargo build --release` when missing)
#   LAB_NS_PREFIX     namespace name prefix (default "d64-"): client, gw, server
#   LAB_STATE         state directory: configs, logs, PIDs (default /run/dns64d-lab)
#   LAB_NO_INSTALL=1  never run apt-get; fail when a tool is missing
#   LAB_KEEP_ON_FAIL=1  leave a failed `up` in place for debugging (then run `down`)
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DNS64D_BIN=${DNS64D_BIN:-$REPO/target/release/dns64d}

PFX=${LAB_NS_PREFIX:-d64-}
NS_C=${PFX}client
NS_G=${PFX}gw
NS_S=${PFX}server
LAB_STATE=${LAB_STATE:-/run/dns64d-lab}
NETNS_ETC=/etc/netns/$NS_C     # `ip netns exec $NS_C` bind-mounts its resolv.conf

CLIENT_NET=2001:db8:1::/64
CLIENT6=2001:db8:1::2
GW6=2001:db8:1::1
GW4=203.0.113.1
WEB4=203.0.113.10
NAT64_PREFIX=2001:db8:64::/96
WEB_SYNTH=2001:db8:64::cb00:710a         # 203.0.113.10 under the prefix (RFC 6052, /96)
POOL4=198.51.100.0/24                    # tayga's dynamic pool (IPv4 sources for IPv6 clients)
TAYGA4=198.51.100.1
TAYGA6=2001:db8:ffff::1
DUAL6=2001:db8:2::10
TUN=nat64
ZONE=lab.test
HTTP_PORT=8000
METRICS=127.0.0.1:9153                   # inside gw only (its own loopback)
PACKAGES=(tayga nsd bind9-dnsutils curl iproute2 procps python3)
PYTHON=/usr/bin/python3; [[ -x $PYTHON ]] || PYTHON=python3

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }
need_root() { [[ $(id -u) == 0 ]] || die "must run as root (namespaces, tun device)"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# ---------------------------------------------------------------- tools
missing_tools() {
    local t
    for t in ip tayga nsd dig curl ss sysctl setsid stdbuf "$PYTHON"; do
        command -v "$t" >/dev/null 2>&1 || echo "$t"
    done
}

# Debian packages, with maintainer scripts kept from starting daemons in the host namespace
# (a policy-rc.d that says 101 for the length of the install, unless the machine has one).
install_tools() {
    [[ -z $(missing_tools) ]] && return 0
    [[ ${LAB_NO_INSTALL:-0} == 1 ]] && die "missing tools: $(missing_tools | xargs)"
    local policy=/usr/sbin/policy-rc.d made=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made=1; fi
    log "apt-get install ${PACKAGES[*]}"
    local rc=0
    { { apt-get update -qq || true; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${PACKAGES[@]}"; } >&2 || rc=$?
    [[ $made == 1 ]] && rm -f "$policy"
    [[ $rc == 0 ]] || die "apt-get failed"
    [[ -z $(missing_tools) ]] || die "still missing after install: $(missing_tools | xargs)"
}

ensure_binary() {
    [[ -x $DNS64D_BIN ]] && return 0
    [[ $DNS64D_BIN == "$REPO/target/release/dns64d" ]] || die "DNS64D_BIN=$DNS64D_BIN is not executable"
    log "building dns64d (cargo build --release)"
    (cd "$REPO" && cargo build --release --locked >&2) || die "cargo build --release failed"
}

# ---------------------------------------------------------------- processes
# start time of a process (field 22 of /proc/PID/stat): with the PID it names one process for good
starttime() {
    local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }; set -- $s; echo "${20}"
}

# spawn NAME NETNS CMD...: run CMD in NETNS in its own session, output to NAME.log, no inherited
# descriptors above 2; every step execs, so $! is the daemon itself. Records "PID START NAME".
spawn() {
    local name=$1 ns=$2; shift 2
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}; ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
        done
        exec setsid ip netns exec "$ns" "$@"
    ) >"$LAB_STATE/$name.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid $(starttime "$pid") $name" >>"$LAB_STATE/pids"
    echo "$pid"
}

running() { # running NAME: its recorded process is still the one we started
    local pid st
    read -r pid st < <(awk -v n="$1" '$3 == n { print $1, $2 }' "$LAB_STATE/pids" 2>/dev/null) || return 1
    [[ -n ${st:-} && $(starttime "$pid" 2>/dev/null) == "$st" ]]
}

# wait_socket NAME NETNS udp|tcp ADDR:PORT: up to 10 s, failing at once if NAME exited
wait_socket() {
    local name=$1 ns=$2 proto=$3 sock=$4 i
    for ((i = 0; i < 200; i++)); do
        ip netns exec "$ns" ss -Hln --"$proto" | awk '{ print $4 }' | grep -qxF "$sock" && return 0
        running "$name" || { tail -n 20 "$LAB_STATE/$name.log" >&2; die "$name exited during start-up"; }
        sleep 0.05
    done
    tail -n 20 "$LAB_STATE/$name.log" >&2
    die "$name is not listening on $sock/$proto after 10 s"
}

# A veth end can stay operstate DOWN for a moment after `ip link set up` and drop what it sends
# (a lost neighbour advertisement costs the first query a second): wait until all are UP.
wait_links_up() {
    local i l pending
    for ((i = 0; i < 100; i++)); do
        pending=
        for l in "$NS_C eth0" "$NS_G to-client" "$NS_G to-server" "$NS_G $TUN" "$NS_S eth0"; do
            set -- $l
            ip -n "$1" -o link show dev "$2" 2>/dev/null | grep -q ' state UP ' || pending+=" $1/$2"
        done
        [[ -z $pending ]] && return 0
        sleep 0.05
    done
    die "interfaces not up after 5 s:$pending"
}

# ---------------------------------------------------------------- configuration files
# dns64d reads every DNS64D_* environment variable as configuration and rejects unknown keys
# (DNS64D_BIN included): run it without them, on the lab's config file alone.
CLEAN_ENV=(env)
for v in $(compgen -e); do [[ $v == DNS64D_* ]] && CLEAN_ENV+=(-u "$v"); done
dns64d_env() { "${CLEAN_ENV[@]}" "$@"; }

# Does this dns64d know the [metrics] section? (It is being added; older builds reject it.)
supports_metrics() {
    printf '[metrics]\nlisten = "%s"\n' "$METRICS" >"$LAB_STATE/probe.toml"
    dns64d_env "$DNS64D_BIN" --check-config --config "$LAB_STATE/probe.toml" >/dev/null 2>&1
}

write_configs() {
    local d=$LAB_STATE
    mkdir -p "$d/www" "$d/tayga" "$d/nsd"
    printf '<!doctype html><title>d64-server</title>\n<p>hello from the IPv4-only web server %s</p>\n' \
        "$WEB4" >"$d/www/index.html"
    cat >"$d/nsd/$ZONE.zone" <<EOF
\$ORIGIN $ZONE.
\$TTL 300
@     SOA   ns.$ZONE. hostmaster.$ZONE. 1 3600 600 86400 300
@     NS    ns.$ZONE.
ns    A     $WEB4
web   A     $WEB4
www   CNAME web
dual  A     $WEB4
dual  AAAA  $DUAL6
EOF
    cat >"$d/nsd/rev.zone" <<EOF
\$ORIGIN 113.0.203.in-addr.arpa.
\$TTL 300
@     SOA   ns.$ZONE. hostmaster.$ZONE. 1 3600 600 86400 300
@     NS    ns.$ZONE.
10    PTR   web.$ZONE.
EOF
    cat >"$d/nsd/nsd.conf" <<EOF
server:
    ip-address: $WEB4
    port: 53
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$d/nsd"
    database: ""
    zonelistfile: "$d/nsd/zone.list"
    xfrdfile: "$d/nsd/xfrd.state"
    xfrdir: "$d/nsd"
    pidfile: "$d/nsd/nsd.pid"
    logfile: "$d/nsd.log"
remote-control:
    control-enable: no
zone:
    name: "$ZONE"
    zonefile: "$ZONE.zone"
zone:
    name: "113.0.203.in-addr.arpa"
    zonefile: "rev.zone"
EOF
    cat >"$d/tayga.conf" <<EOF
tun-device $TUN
ipv4-addr $TAYGA4
ipv6-addr $TAYGA6
prefix $NAT64_PREFIX
dynamic-pool $POOL4
data-dir $d/tayga
EOF
    cat >"$d/dns64d.toml" <<EOF
# written by deploy/nat64-lab/lab.sh
listen = ["[$GW6]:53"]
[upstream]
servers = ["$WEB4:53"]          # NSD in $NS_S, authoritative for $ZONE and 113.0.203.in-addr.arpa
timeout_ms = 1000
attempts = 2
[dns64]
prefixes = ["$NAT64_PREFIX"]    # tayga's prefix; a network-specific one may embed 203.0.113.0/24
[access]
clients = ["$CLIENT_NET", "::1/128"]
EOF
    if supports_metrics; then
        printf '[metrics]\nlisten = "%s"\n' "$METRICS" >>"$d/dns64d.toml"
    fi
}

# ---------------------------------------------------------------- up
on_up_exit() {
    local rc=$?
    trap - EXIT ERR
    [[ $rc == 0 ]] && return 0
    if [[ ${LAB_KEEP_ON_FAIL:-0} == 1 ]]; then
        log "up failed (exit $rc); LAB_KEEP_ON_FAIL=1: left in place, run '$0 down' when done"
    else
        log "up failed (exit $rc): taking down what was made"; cmd_down || true
    fi
    exit "$rc"
}

cmd_up() {
    need_root
    local t0=$EPOCHREALTIME ns pid i
    install_tools
    ensure_binary
    DNS64D_BIN=$(realpath "$DNS64D_BIN")
    [[ -e $LAB_STATE ]] && die "$LAB_STATE exists: the lab is up (or was not taken down); run '$0 down'"
    for ns in $NS_C $NS_G $NS_S; do
        [[ -e /run/netns/$ns ]] && die "namespace $ns exists and is not this lab's; not touching it"
    done
    [[ -e $NETNS_ETC ]] && die "$NETNS_ETC exists and is not this lab's"

    mkdir -p "$LAB_STATE"; chmod 700 "$LAB_STATE"
    : >"$LAB_STATE/pids"; : >"$LAB_STATE/netns"
    [[ -d /etc/netns ]] || touch "$LAB_STATE/made-etc-netns"
    trap on_up_exit EXIT
    trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

    for ns in $NS_C $NS_G $NS_S; do
        ip netns add "$ns"; echo "$ns" >>"$LAB_STATE/netns"   # recorded at once: a failed up cleans it
        ip -n "$ns" link set lo up
    done
    # veth pairs made directly inside the namespaces: nothing appears in the host's, even briefly
    ip link add eth0 netns $NS_C type veth peer name to-client netns $NS_G
    ip link add to-server netns $NS_G type veth peer name eth0 netns $NS_S

    # client: IPv6 only, default route to gw
    ip netns exec $NS_C sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    ip -n $NS_C addr add $CLIENT6/64 dev eth0 nodad
    ip -n $NS_C link set eth0 up
    ip -n $NS_C -6 route add default via $GW6
    # server: IPv4 only
    ip netns exec $NS_S sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n $NS_S addr add $WEB4/24 dev eth0
    ip -n $NS_S link set eth0 up
    ip -n $NS_S route add default via $GW4
    # gw: routes both families between its two links and tayga; no default route at all
    ip netns exec $NS_G sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1 \
        net.ipv6.conf.to-server.disable_ipv6=1
    ip -n $NS_G addr add $GW6/64 dev to-client nodad
    ip -n $NS_G addr add $GW4/24 dev to-server
    ip -n $NS_G link set to-client up
    ip -n $NS_G link set to-server up

    write_configs

    # NAT64: tayga's tun device in gw; the NAT64 prefix, the pool and tayga's address route into it
    ip netns exec $NS_G tayga --config "$LAB_STATE/tayga.conf" --mktun >"$LAB_STATE/tayga-mktun.log" 2>&1 ||
        { cat "$LAB_STATE/tayga-mktun.log" >&2; die "tayga --mktun failed"; }
    ip -n $NS_G link set $TUN up
    ip -n $NS_G route add $NAT64_PREFIX dev $TUN
    ip -n $NS_G route add $POOL4 dev $TUN
    ip -n $NS_G route add $TAYGA6/128 dev $TUN
    # -d keeps it in the foreground and logging to stdout; stdbuf line-buffers that into the log
    spawn tayga $NS_G stdbuf -oL tayga --config "$LAB_STATE/tayga.conf" -d \
        --pidfile "$LAB_STATE/tayga.pid" >/dev/null
    for ((i = 0; i < 200; i++)); do          # no socket to wait for: its pidfile comes once the tun is open
        [[ -s $LAB_STATE/tayga.pid ]] && break
        running tayga || { cat "$LAB_STATE/tayga.log" >&2; die "tayga exited during start-up"; }
        sleep 0.05
    done
    [[ -s $LAB_STATE/tayga.pid ]] || die "tayga did not start within 10 s"

    # server: authoritative DNS and the web page
    spawn nsd $NS_S nsd -d -c "$LAB_STATE/nsd/nsd.conf" >/dev/null
    wait_socket nsd $NS_S udp "$WEB4:53"
    spawn http $NS_S "$PYTHON" -m http.server $HTTP_PORT --bind "$WEB4" --directory "$LAB_STATE/www" >/dev/null
    wait_socket http $NS_S tcp "$WEB4:$HTTP_PORT"

    # gw: dns64d
    spawn dns64d $NS_G "${CLEAN_ENV[@]}" "$DNS64D_BIN" --config "$LAB_STATE/dns64d.toml" >/dev/null
    wait_socket dns64d $NS_G udp "[$GW6]:53"
    wait_socket dns64d $NS_G tcp "[$GW6]:53"

    # the client's resolver is dns64d
    mkdir -p "$NETNS_ETC"; touch "$LAB_STATE/made-netns-etc"
    printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$GW6" >"$NETNS_ETC/resolv.conf"

    wait_links_up
    trap - EXIT ERR
    log "up in $(elapsed "$t0") s"
    log "  $NS_C  $CLIENT6/64, resolver $GW6"
    log "  $NS_G      $GW6 / $GW4: dns64d [$GW6]:53, tayga $NAT64_PREFIX, pool $POOL4"
    log "  $NS_S  $WEB4: nsd ($ZONE) :53, http :$HTTP_PORT"
    log "try: ip netns exec $NS_C curl http://web.$ZONE:$HTTP_PORT/"
}

# ---------------------------------------------------------------- check
cmd_check() {
    need_root
    [[ -d $LAB_STATE ]] || die "the lab is not up ($LAB_STATE missing); run '$0 up'"
    local pass=0 fail=0 skip=0 out t0=$EPOCHREALTIME
    ok() { printf 'PASS  %s\n' "$*"; pass=$((pass + 1)); }
    ko() { printf 'FAIL  %s\n' "$*"; fail=$((fail + 1)); }
    sk() { printf 'SKIP  %s\n' "$*"; skip=$((skip + 1)); }
    c() { ip netns exec $NS_C "$@"; }
    q() { c dig +time=2 +tries=2 @$GW6 "$@" 2>&1 || true; }   # a query from the client to dns64d
    one_line() { tr '\n' ' ' <<<"$1" | sed 's/ *$//'; }

    echo "== the lab's shape"
    if [[ -z $(ip -n $NS_C -4 addr show scope global)$(ip -n $NS_C -4 route show) ]]; then
        ok "$NS_C has no IPv4 address or route"; else ko "$NS_C has IPv4"; fi
    if [[ -z $(ip -n $NS_S -6 addr show) ]]; then ok "$NS_S has no IPv6"; else ko "$NS_S has IPv6"; fi
    if [[ -z $(ip -n $NS_G route show default)$(ip -n $NS_G -6 route show default) ]]; then
        ok "$NS_G has no default route (nothing leaves the lab)"; else ko "$NS_G has a default route"; fi
    local name
    for name in tayga nsd http dns64d; do
        running $name || ko "$name is not running (log: $LAB_STATE/$name.log)"
    done

    echo "== dig AAAA web.$ZONE (from $NS_C, resolver from its resolv.conf: $GW6)"
    out=$(c dig +time=2 +tries=2 AAAA web.$ZONE +noall +comments +answer 2>&1 || true)
    grep -E 'status:|IN' <<<"$out" || echo "$out"
    if grep -q 'status: NOERROR' <<<"$out" && [[ $(awk '$4 == "AAAA" { print $5 }' <<<"$out") == "$WEB_SYNTH" ]]; then
        ok "AAAA web.$ZONE = $WEB_SYNTH ($WEB4 synthesized under $NAT64_PREFIX)"
    else ko "AAAA web.$ZONE is not $WEB_SYNTH"; fi

    out=$(q +tcp +short AAAA web.$ZONE)
    [[ $out == "$WEB_SYNTH" ]] && ok "the same over TCP" || ko "AAAA web.$ZONE over TCP: $(one_line "$out")"

    out=$(q +short A web.$ZONE)
    [[ $out == "$WEB4" ]] && ok "A web.$ZONE = $WEB4 (passed through)" || ko "A web.$ZONE: $(one_line "$out")"

    out=$(q +short AAAA www.$ZONE)
    [[ $out == "web.$ZONE."$'\n'"$WEB_SYNTH" ]] && ok "AAAA www.$ZONE = CNAME web.$ZONE. + $WEB_SYNTH" \
        || ko "AAAA www.$ZONE: $(one_line "$out")"

    out=$(q +short AAAA dual.$ZONE)
    [[ $out == "$DUAL6" ]] && ok "AAAA dual.$ZONE = $DUAL6 (native AAAA kept, nothing synthesized)" \
        || ko "AAAA dual.$ZONE: $(one_line "$out")"

    out=$(q AAAA nope.$ZONE)
    grep -q 'status: NXDOMAIN' <<<"$out" && ok "AAAA nope.$ZONE: NXDOMAIN" \
        || ko "AAAA nope.$ZONE: $(grep -o 'status: [A-Z]*' <<<"$out" || echo no answer)"

    # NSD refuses names outside its zones: dns64d tries its attempts, counts upstream errors and
    # fails the query (this also puts dns64d_upstream_errors_total on /metrics, checked below)
    out=$(q A outside.example)
    local status; status=$(grep -o 'status: [A-Z]*' <<<"$out" | cut -d' ' -f2)
    [[ $status == SERVFAIL || $status == REFUSED ]] \
        && ok "A outside.example: $status (the upstream refuses it; nothing leaves the lab)" \
        || ko "A outside.example: ${status:-no answer}"

    out=$(q +short AAAA ipv4only.arpa)
    [[ $(sort <<<"$out") == $'2001:db8:64::c000:aa\n2001:db8:64::c000:ab' ]] \
        && ok "AAAA ipv4only.arpa = 2001:db8:64::c000:aa, ::c000:ab (prefix discovery, RFC 7050)" \
        || ko "AAAA ipv4only.arpa: $(one_line "$out")"

    out=$(q +short -x $WEB_SYNTH)
    [[ $out == "10.113.0.203.in-addr.arpa."$'\n'"web.$ZONE." ]] \
        && ok "PTR of $WEB_SYNTH = CNAME 10.113.0.203.in-addr.arpa. + PTR web.$ZONE. (RFC 6147 5.3.1)" \
        || ko "PTR of $WEB_SYNTH: $(one_line "$out")"

    echo "== curl http://web.$ZONE:$HTTP_PORT/ (from $NS_C, through tayga)"
    local before; before=$(wc -l <"$LAB_STATE/http.log")
    out=$(c curl -sS --max-time 10 -w 'HTTP %{http_code} from [%{remote_ip}]:%{remote_port}\n' \
        "http://web.$ZONE:$HTTP_PORT/" 2>&1 || true)
    echo "$out"
    if grep -qF "hello from the IPv4-only web server $WEB4" <<<"$out" &&
        grep -qF "HTTP 200 from [$WEB_SYNTH]:$HTTP_PORT" <<<"$out"; then
        ok "page fetched from [$WEB_SYNTH]:$HTTP_PORT through the NAT64"
    else ko "curl http://web.$ZONE:$HTTP_PORT/"; fi
    out=$(tail -n +$((before + 1)) "$LAB_STATE/http.log")
    echo "${out:-(nothing new in http.log)}"
    grep -qE '^198\.51\.100\.[0-9]+ .*"GET / HTTP' <<<"$out" \
        && ok "the IPv4-only server saw the request from tayga's pool ($POOL4)" \
        || ko "no request from $POOL4 in $LAB_STATE/http.log"

    echo "== metrics and health (inside $NS_G, http://$METRICS)"
    if grep -q '^\[metrics\]' "$LAB_STATE/dns64d.toml"; then
        out=$(ip netns exec $NS_G curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://$METRICS/healthz" 2>&1 || true)
        [[ $out == 200 ]] && ok "GET /healthz: 200" || ko "GET /healthz: $out"
        out=$(ip netns exec $NS_G curl -sS --max-time 5 "http://$METRICS/metrics" 2>&1 || true)
        local synth; synth=$(awk '$1 ~ /^dns64d_synthesized_answers_total/ { s += $2 } END { print s + 0 }' <<<"$out")
        [[ $synth -ge 1 ]] 2>/dev/null && ok "dns64d_synthesized_answers_total = $synth" \
            || ko "dns64d_synthesized_answers_total not found or 0 in /metrics"
        if ip netns exec $NS_G "$PYTHON" "$HERE/../grafana/check_dashboard.py" \
            "$HERE/../grafana/dns64d.json" "http://$METRICS/metrics" >"$LAB_STATE/dashboard-check.log" 2>&1; then
            ok "every metric in deploy/grafana/dns64d.json is exported"
        else
            cat "$LAB_STATE/dashboard-check.log"; ko "the dashboard uses metrics dns64d does not export"
        fi
    else
        sk "this dns64d has no [metrics] section yet"
    fi

    echo "== check took $(elapsed "$t0") s"
    printf '\n%d passed, %d failed' "$pass" "$fail"
    ((skip)) && printf ', %d skipped' "$skip"
    printf '\n'
    [[ $fail == 0 ]]
}

# ---------------------------------------------------------------- down
cmd_down() {
    need_root
    if [[ ! -d $LAB_STATE ]]; then
        log "nothing to take down ($LAB_STATE does not exist)"
        return 0
    fi
    local t0=$EPOCHREALTIME pid st name ns i left
    if [[ -s $LAB_STATE/pids ]]; then
        while read -r pid st name; do
            [[ $(starttime "$pid" 2>/dev/null) == "$st" ]] && kill -TERM "$pid" 2>/dev/null || true
        done <"$LAB_STATE/pids"
        for ((i = 0; i < 100; i++)); do          # up to 5 s for a clean exit
            left=0
            while read -r pid st name; do
                [[ $(starttime "$pid" 2>/dev/null) == "$st" ]] && left=1
            done <"$LAB_STATE/pids"
            ((left)) || break
            sleep 0.05
        done
        while read -r pid st name; do
            if [[ $(starttime "$pid" 2>/dev/null) == "$st" ]]; then
                log "$name (pid $pid) ignored SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$LAB_STATE/pids"
    fi
    # whatever is left inside our own namespaces (NSD's children) can only be ours
    if [[ -s $LAB_STATE/netns ]]; then
        while read -r ns; do
            [[ -e /run/netns/$ns ]] || continue
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        done <"$LAB_STATE/netns"
        while read -r ns; do
            [[ -e /run/netns/$ns ]] || continue
            ip -n "$ns" link del $TUN 2>/dev/null || true
            ip netns del "$ns"            # also removes its veth ends
        done <"$LAB_STATE/netns"
    fi
    if [[ -e $LAB_STATE/made-netns-etc ]]; then
        rm -f "$NETNS_ETC/resolv.conf"; rmdir "$NETNS_ETC" 2>/dev/null || true
    fi
    [[ -e $LAB_STATE/made-etc-netns ]] && { rmdir /etc/netns 2>/dev/null || true; }
    rm -rf "$LAB_STATE"
    log "down in $(elapsed "$t0") s"
}

cmd_status() {
    [[ -d $LAB_STATE ]] || { echo "down"; return 0; }
    local pid st name ns
    while read -r pid st name; do
        if [[ $(starttime "$pid" 2>/dev/null) == "$st" ]]; then echo "running  $name (pid $pid)"
        else echo "exited   $name (pid $pid), log $LAB_STATE/$name.log"; fi
    done <"$LAB_STATE/pids"
    while read -r ns; do [[ -e /run/netns/$ns ]] && echo "namespace $ns"; done <"$LAB_STATE/netns"
    return 0
}

case ${1:-} in
    up) cmd_up ;;
    check) cmd_check ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
