#!/usr/bin/env bash
# Runs the built dns64d-xp.exe under Wine with an XP prefix and tests it over
# the wire: dig and xp/tests/dns_client.py through 127.0.0.1 to upstreams on
# ::1 (dns64d itself serving xp/tests/xp.test.zone, plus a silent and a
# SERVFAIL-only fake).
#
#   bash xp/tests/wine.sh [i686|x86_64]...      (default: both)
#
# Needs root: everything runs in a network namespace of its own (unshare -n),
# so the relay can take the default 127.0.0.1:53 and no port can collide with
# anything on the host; no traffic leaves that namespace. Needs wine (wine32 for
# i686), dig (bind9-dnsutils), python3, and target/debug/dns64d (cargo build).
#
# Wine is not Windows XP: it runs the program with an XP version string but
# implements a newer API, so the XP API check is xp/check-pe.py, not this.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

if [[ "${1:-}" != "--in-namespace" ]]; then
    if [[ $EUID -ne 0 ]]; then
        echo "wine.sh needs root (it runs in a network namespace of its own)" >&2
        exit 1
    fi
    exec unshare --net --mount -- bash "$0" --in-namespace "$@"
fi
shift
ip link set lo up

arches=("$@")
[[ ${#arches[@]} -eq 0 ]] && arches=(i686 x86_64)
dns64d=${DNS64D:-$root/target/debug/dns64d}
[[ -x $dns64d ]] || { echo "no $dns64d: run cargo build first" >&2; exit 1; }
client=(python3 "$root/xp/tests/dns_client.py")

work=$(mktemp -d /tmp/dns64d-xp-wine.XXXXXX)
# Wine gives every adapter the resolv.conf servers as its DNS servers; the
# namespace gets its own file (a private mount), so the discovery tests
# control what the relay finds and the host's file is untouched.
printf 'nameserver ::1\n' > "$work/resolv.conf"
mount --bind "$work/resolv.conf" /etc/resolv.conf
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ -n "${WINEPREFIX:-}" ]]; then wineserver -k 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
export WINEDEBUG=-all

failures=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# check NAME EXPECTED COMMAND...: the command's output (trimmed) must equal EXPECTED.
check() {
    local name=$1 expected=$2
    shift 2
    local got
    got=$("$@" 2>&1 | tr -s '\n' ' ' | sed 's/ $//') || true
    if [[ "$got" == "$expected" ]]; then pass "$name"; else fail "$name: expected [$expected], got [$got]"; fi
}

# wait_for_answer PORT: until the relay on 127.0.0.1:PORT answers (30 s at most).
wait_for_answer() {
    local deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        # +short prints errors to stdout as well: wait for the address itself.
        if dig @127.0.0.1 -p "$1" www.xp.test A +short +time=1 +tries=1 2>/dev/null | grep -qx '93.184.215.14'; then return 0; fi
        sleep 0.1
    done
    return 1
}

# The upstreams, all on ::1 inside the namespace.
UP=5300 SILENT=5301 SERVFAIL=5302 DEAD=5303
cat > "$work/upstream.toml" <<TOML
listen = ["[::1]:$UP", "[::1]:53"]
[upstream]
servers = ["[::1]:9"]
[dns64]
prefixes = ["64:ff9b::/96"]
[[zones]]
name = "xp.test"
file = "$root/xp/tests/xp.test.zone"
TOML
"$dns64d" --config "$work/upstream.toml" > "$work/upstream.log" 2>&1 & pids+=($!)
"${client[@]}" silent $SILENT & pids+=($!)
"${client[@]}" servfail $SERVFAIL & pids+=($!)
deadline=$((SECONDS + 30))
until dig @::1 -p $UP www.xp.test A +short +time=1 +tries=1 2>/dev/null | grep -qx '93.184.215.14'; do
    ((SECONDS < deadline)) || { cat "$work/upstream.log"; echo "upstream dns64d did not start" >&2; exit 1; }
    sleep 0.1
done

for arch in "${arches[@]}"; do
    case $arch in
        i686) target=i686-pc-windows-gnu winearch=win32 version=winxp ;;
        x86_64) target=x86_64-pc-windows-gnu winearch=win64 version=winxp64 ;;
        *) echo "unknown arch $arch" >&2; exit 1 ;;
    esac
    echo "== $arch: Wine prefix $version"
    export WINEARCH=$winearch WINEPREFIX=$work/prefix-$arch
    wineboot -i > "$work/wineboot-$arch.log" 2>&1
    wine reg add 'HKCU\Software\Wine' /v Version /d "$version" /f > /dev/null 2>&1
    # One wineserver for the whole arch, kept alive (-p): otherwise it and Wine's
    # services.exe shut down a few seconds after the last Wine program exits, and a
    # command started in that window meets a services.exe that is going away (sc query
    # said "no such service" right after install) or a new one that auto-starts the
    # installed service by itself, racing sc start.
    wineserver -k 2>/dev/null || true
    wineserver -w 2>/dev/null || true
    wineserver -p
    # Wine's system processes (services.exe, winedevice.exe) now live as long as that
    # server: start them here, with their output in a file, so none of them inherits
    # and holds open the pipe of a check's command substitution.
    wine cmd /c exit < /dev/null > "$work/wine-system-$arch.log" 2>&1
    check "$arch: Wine reports the XP version" \
        "$(if [[ $arch == i686 ]]; then echo 'Microsoft Windows 5.1.2600'; else echo 'Microsoft Windows 5.2.3790'; fi)" \
        bash -c "wine cmd /c ver | grep -o 'Microsoft.*' | tr -d '\r'"
    exe_dir="$WINEPREFIX/drive_c/dns64d-xp"
    mkdir -p "$exe_dir"
    cp "$root/target/$target/release/dns64d-xp.exe" "$exe_dir/"
    exe="$exe_dir/dns64d-xp.exe"
    relay_pid=

    start_relay() { # PORT ARGS...: relay in the foreground mode, ready when it answers
        local port=$1
        shift
        wine "$exe" run --listen 127.0.0.1:"$port" "$@" > "$work/relay-$arch-$port.log" 2>&1 &
        relay_pid=$!
        pids+=("$relay_pid")
    }
    stop_relay() { kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; }

    # Plain relay: UDP, TCP, TC then TCP, NXDOMAIN, AAAA as the DNS64 upstream made it.
    start_relay 5400 --upstream "[::1]:$UP"
    if wait_for_answer 5400; then pass "$arch: relay answers"; else fail "$arch: relay did not answer"; cat "$work/relay-$arch-5400.log"; fi
    check "$arch: UDP A" "93.184.215.14" dig @127.0.0.1 -p 5400 www.xp.test A +short
    check "$arch: UDP AAAA synthesized upstream" "64:ff9b::5db8:d70e" dig @127.0.0.1 -p 5400 www.xp.test AAAA +short
    check "$arch: TCP A" "93.184.215.14" dig @127.0.0.1 -p 5400 www.xp.test A +short +tcp
    check "$arch: NXDOMAIN passes" "status: NXDOMAIN" bash -c "dig @127.0.0.1 -p 5400 none.xp.test A | grep -o 'status: [A-Z]*'"
    check "$arch: UDP without EDNS is truncated" "flags: qr aa tc rd ra;" \
        bash -c "dig @127.0.0.1 -p 5400 big.xp.test TXT +noedns +ignore | grep -o 'flags: [a-z ]*;'"
    check "$arch: dig retries over TCP and gets all 6 TXT" "6" \
        bash -c "dig @127.0.0.1 -p 5400 big.xp.test TXT +noedns +short | wc -l"
    relay_rss() { awk '/VmRSS/ {print $2}' "/proc/$(pgrep -f "dns64d-xp.exe run --listen 127.0.0.1:5400" | head -1)/status" 2>/dev/null || echo "?"; }
    rss_before=$(relay_rss)
    if out=$("${client[@]}" flood 127.0.0.1 5400 400 www.xp.test 93.184.215.14); then pass "$arch: $out"; else fail "$arch: $out"; fi
    if out=$("${client[@]}" malformed 127.0.0.1 5400); then pass "$arch: $out"; else fail "$arch: $out"; fi
    if out=$("${client[@]}" tcp 127.0.0.1 5400 www.xp.test 93.184.215.14); then pass "$arch: $out"; else fail "$arch: $out"; fi
    echo "info $arch: resident memory of the Wine process (Wine's own DLLs included): ${rss_before} KiB idle, $(relay_rss) KiB after 400 concurrent queries"
    stop_relay

    # Failover: the first upstream's port is closed (ICMP unreachable).
    start_relay 5401 --upstream "[::1]:$DEAD" --upstream "[::1]:$UP"
    if wait_for_answer 5401; then pass "$arch: failover past a closed port"; else fail "$arch: no answer with a dead first upstream"; fi
    stop_relay

    # Failover: the first upstream never answers; the first query waits one
    # timeout, the next skips it at once.
    printf 'timeout_ms = 1500\n' > "$work/timeout.conf"
    start_relay 5402 --config "$(winepath -w "$work/timeout.conf" 2>/dev/null)" --upstream "[::1]:$SILENT" --upstream "[::1]:$UP"
    if wait_for_answer 5402; then pass "$arch: failover past a silent upstream"; else fail "$arch: no answer with a silent first upstream"; fi
    started=$(date +%s%N)
    check "$arch: the next query is answered" "93.184.215.14" dig @127.0.0.1 -p 5402 www.xp.test A +short +tries=1 +time=4
    elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
    if ((elapsed < 1500)); then pass "$arch: the silent upstream is skipped afterwards (${elapsed} ms < the 1500 ms timeout)"
    else fail "$arch: the next query took ${elapsed} ms: the silent upstream was asked again"; fi
    stop_relay

    # Failover over TCP too, with no hold-down (skip_failed_s = 0), so every
    # query goes through the closed port and the silent upstream first.
    printf 'timeout_ms = 1500\nskip_failed_s = 0\n' > "$work/no-skip.conf"
    start_relay 5411 --config "$(winepath -w "$work/no-skip.conf" 2>/dev/null)" \
        --upstream "[::1]:$DEAD" --upstream "[::1]:$SILENT" --upstream "[::1]:$UP"
    deadline=$((SECONDS + 30))
    until grep -q relaying "$work/relay-$arch-5411.log" 2>/dev/null || ((SECONDS >= deadline)); do sleep 0.1; done
    for transport in +notcp +tcp; do
        started=$(date +%s%N)
        check "$arch: $transport past a closed port and a silent upstream" "93.184.215.14" \
            dig @127.0.0.1 -p 5411 www.xp.test A +short $transport +tries=1 +time=6
        elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
        if ((elapsed >= 1400)); then pass "$arch: $transport waited out the silent one (${elapsed} ms)"
        else fail "$arch: $transport answered in ${elapsed} ms: the silent upstream was not asked"; fi
    done
    stop_relay

    # Failover on SERVFAIL.
    start_relay 5403 --upstream "[::1]:$SERVFAIL" --upstream "[::1]:$UP"
    if wait_for_answer 5403; then pass "$arch: failover past a SERVFAIL upstream"; else fail "$arch: no answer with a SERVFAIL first upstream"; fi
    stop_relay

    # Every upstream fails: SERVFAIL within timeout × upstreams.
    start_relay 5404 --config "$(winepath -w "$work/timeout.conf" 2>/dev/null)" --upstream "[::1]:$SILENT"
    deadline=$((SECONDS + 30))
    until grep -q relaying "$work/relay-$arch-5404.log" 2>/dev/null || ((SECONDS >= deadline)); do sleep 0.1; done
    started=$(date +%s%N)
    check "$arch: SERVFAIL when every upstream failed" "status: SERVFAIL" \
        bash -c "dig @127.0.0.1 -p 5404 www.xp.test A +tries=1 +time=4 | grep -o 'status: [A-Z]*'"
    elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
    if ((elapsed >= 1400 && elapsed < 3000)); then pass "$arch: SERVFAIL after ${elapsed} ms (timeout 1500 ms × 1 upstream)"; else fail "$arch: SERVFAIL after ${elapsed} ms, expected about 1500"; fi
    stop_relay

    # Start-up errors: their exit codes and messages.
    code=$(wine "$exe" run --listen 127.0.0.1:5405 --upstream 127.0.0.1 > "$work/ipv4.log" 2>&1; echo $?)
    out=$(tr -d '\r' < "$work/ipv4.log")
    check "$arch: an IPv4 upstream is refused (exit $code)" \
        "dns64d-xp: command line: --upstream \"127.0.0.1\": an upstream must be an IPv6 address (the relay forwards over IPv6)" echo "$out"
    [[ $code == 2 ]] && pass "$arch: configuration error exits 2" || fail "$arch: configuration error exited $code"
    "${client[@]}" hold 5406 & holder=$!
    pids+=("$holder")
    deadline=$((SECONDS + 10))
    until ss -lun | grep -q '127.0.0.1:5406' || ((SECONDS >= deadline)); do sleep 0.1; done
    code=$(wine "$exe" run --listen 127.0.0.1:5406 --upstream "[::1]:$UP" > "$work/busy.log" 2>&1; echo $?)
    [[ $code == 3 ]] && pass "$arch: a busy port exits 3" || fail "$arch: a busy port exited $code: $(cat "$work/busy.log")"
    grep -q "another program holds this port" "$work/busy.log" && pass "$arch: the busy-port message says what to do" \
        || fail "$arch: busy-port message: $(cat "$work/busy.log")"
    kill "$holder" 2>/dev/null || true

    # The default listen address, 127.0.0.1:53 (free inside this namespace).
    wine "$exe" run --upstream "[::1]:$UP" > "$work/relay-$arch-53.log" 2>&1 &
    relay_pid=$!
    pids+=("$relay_pid")
    if wait_for_answer 53; then pass "$arch: default 127.0.0.1:53 answers"; else fail "$arch: default 127.0.0.1:53: $(cat "$work/relay-$arch-53.log")"; fi
    stop_relay

    # No --upstream and no file: the adapters' IPv6 DNS servers (here ::1,
    # port 53, from the namespace's resolv.conf) ...
    printf 'nameserver ::1\n' > "$work/resolv.conf"
    start_relay 5409
    if wait_for_answer 5409; then pass "$arch: upstream discovered from the adapters"; else fail "$arch: discovery: $(cat "$work/relay-$arch-5409.log")"; fi
    check "$arch: ...and logged" "upstreams from the adapters' IPv6 DNS servers: [::1]:53" \
        bash -c "grep -o 'upstreams from.*' '$work/relay-$arch-5409.log' | tr -d '\r'"
    stop_relay
    # ... else XP's well-known site-local servers (no route to them in this
    # namespace, so every attempt fails at once and the answer is SERVFAIL).
    printf 'nameserver 192.0.2.1\n' > "$work/resolv.conf"
    start_relay 5410
    deadline=$((SECONDS + 30))
    until grep -q relaying "$work/relay-$arch-5410.log" 2>/dev/null || ((SECONDS >= deadline)); do sleep 0.1; done
    check "$arch: no IPv6 DNS server on any adapter: the well-known site-local ones" \
        "upstreams from well-known site-local: [fec0:0:0:ffff::1]:53 [fec0:0:0:ffff::2]:53 [fec0:0:0:ffff::3]:53" \
        bash -c "grep -o 'upstreams from.*' '$work/relay-$arch-5410.log' | tr -d '\r' | sed 's/ (.*)//'"
    check "$arch: ...unreachable here: SERVFAIL" "status: SERVFAIL" \
        bash -c "dig @127.0.0.1 -p 5410 www.xp.test A +tries=1 +time=8 | grep -o 'status: [A-Z]*'"
    stop_relay
    printf 'nameserver ::1\n' > "$work/resolv.conf"

    # The Windows service through Wine's sc and net.
    printf 'upstream = [::1]:%s\nlisten = 127.0.0.1:5407\n' "$UP" > "$exe_dir/dns64d-xp.conf"
    check "$arch: install" "service command line: C:\\dns64d-xp\\dns64d-xp.exe service installed the service dns64d-xp; start it with: net start dns64d-xp" \
        bash -c "wine '$exe' install | tr -d '\r'"
    # Wine's services.exe may start an automatic service by itself at once.
    check "$arch: sc query knows the installed service" "known" \
        bash -c "wine sc query dns64d-xp | tr -d '\r' | grep -qE 'STOPPED|START_PENDING|RUNNING' && echo known"
    wine sc start dns64d-xp > "$work/sc-start.log" 2>&1 || true
    if wait_for_answer 5407; then pass "$arch: the service answers after sc start"; else fail "$arch: the service does not answer: $(cat "$work/sc-start.log")"; fi
    check "$arch: sc query says RUNNING" "RUNNING" bash -c "wine sc query dns64d-xp | tr -d '\r' | grep -o RUNNING"
    wine sc stop dns64d-xp > "$work/sc-stop.log" 2>&1 || true
    deadline=$((SECONDS + 15))
    until grep -q stopped "$exe_dir/dns64d-xp.log" 2>/dev/null || ((SECONDS >= deadline)); do sleep 0.1; done
    check "$arch: the service logged its start and stop to dns64d-xp.log" "yes" \
        bash -c "grep -q 'relaying 127.0.0.1:5407' '$exe_dir/dns64d-xp.log' && grep -q stopped '$exe_dir/dns64d-xp.log' && echo yes"
    check "$arch: after sc stop nothing answers" "" \
        bash -c "dig @127.0.0.1 -p 5407 www.xp.test A +short +time=1 +tries=1 | grep -v '^;' || true"
    printf 'upstream = [::1]:%s\ntimeout_ms = 5\n' "$UP" > "$exe_dir/dns64d-xp.conf"
    wine sc start dns64d-xp > /dev/null 2>&1 || true
    deadline=$((SECONDS + 15))
    until grep -q 'timeout_ms' "$exe_dir/dns64d-xp.log" 2>/dev/null || ((SECONDS >= deadline)); do sleep 0.1; done
    check "$arch: a bad configuration file is logged with its line" \
        "dns64d-xp: C:\\dns64d-xp\\dns64d-xp.conf: line 2: timeout_ms = \"5\": expected a whole number from 100 to 30000" \
        bash -c "grep -o 'dns64d-xp: C:.*timeout_ms.*' '$exe_dir/dns64d-xp.log' | tr -d '\r' | tail -1"
    deadline=$((SECONDS + 15))
    until wine sc query dns64d-xp 2>/dev/null | grep -q STOPPED || ((SECONDS >= deadline)); do sleep 0.2; done
    check "$arch: ...and the service stops with exit code 2" "SERVICE_EXIT_CODE : 2" \
        bash -c "wine sc query dns64d-xp | tr -d '\r' | grep -o 'SERVICE_EXIT_CODE *: *[0-9]*' | sed 's/  */ /g'"
    check "$arch: uninstall" "removed the service dns64d-xp" bash -c "wine '$exe' uninstall | tr -d '\r'"
    check "$arch: sc query no longer knows it" "1" bash -c "wine sc query dns64d-xp > /dev/null 2>&1; echo \$?"
    rm -f "$exe_dir/dns64d-xp.conf"
    wineserver -k 2>/dev/null || true
done

if ((failures > 0)); then
    echo "$failures Wine test(s) failed"
    exit 1
fi
echo "all Wine tests passed (${arches[*]})"
