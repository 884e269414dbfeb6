#!/usr/bin/env bash
# deploy/check.sh -- verify the deploy files as far as this machine allows.
#
#   bash deploy/check.sh [--no-lab] [--no-container] [--no-install]
#
# systemd    systemd-analyze verify of both units (in a temporary root), their hardening kept in
#            step, exposure score; the example configuration accepted by dns64d --check-config
# grafana    check_dashboard.py against metrics.txt and against a live dns64d's /metrics (loopback)
# container  Dockerfile and tayga Dockerfile parsed; compose.yaml validated (docker-compose
#            config); static musl build ("statically linked", no ELF interpreter); the image
#            built with podman from that binary and run: queried with dig inside its own network
#            namespace (port 53, uid 65532) and on 127.0.0.1 with host networking
# kubernetes YAML parsed, kubernetes-validate --strict (bundled schemas), structure (dnsPolicy,
#            probes, replicas, Service ports), the ConfigMap's config accepted by dns64d
# lab        deploy/nat64-lab/ci.sh (namespaces, tayga, dns64d, NSD; end to end)
#
# Missing tools are installed with apt-get / pip / rustup unless --no-install (then their checks
# are SKIPped). Traffic goes only to loopback and to namespaces made here. Last line:
# "N passed, N failed, N skipped"; exit 1 if anything failed.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DNS64D_BIN=${DNS64D_BIN:-$REPO/target/release/dns64d}
MUSL_TARGET_DIR=${MUSL_TARGET_DIR:-/tmp/musl-target}
MUSL_BIN=$MUSL_TARGET_DIR/x86_64-unknown-linux-musl/release/dns64d
IMAGE=localhost/dns64d:deploy-check
RUN_LAB=1 RUN_CONTAINER=1 INSTALL=1
for arg in "$@"; do
    case $arg in
        --no-lab) RUN_LAB=0 ;;
        --no-container) RUN_CONTAINER=0 ;;
        --no-install) INSTALL=0 ;;
        *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done

pass=0 fail=0 skip=0
ok() { printf 'PASS  %s\n' "$*"; pass=$((pass + 1)); }
ko() { printf 'FAIL  %s\n' "$*"; fail=$((fail + 1)); }
sk() { printf 'SKIP  %s\n' "$*"; skip=$((skip + 1)); }
section() { printf '\n== %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
t_start=$EPOCHREALTIME
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

WORK=$(mktemp -d /tmp/dns64d-deploy-check.XXXXXX)
PIDS=() CONTAINERS=()
cleanup() {
    local p c
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for c in "${CONTAINERS[@]}"; do podman rm -f "$c" >/dev/null 2>&1; done
    have podman && podman image exists "$IMAGE" 2>/dev/null && podman rmi -f "$IMAGE" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

apt_install() { # apt_install PACKAGE...: only when allowed, quietly; daemons kept from starting
    ((INSTALL)) || return 1
    [[ $(id -u) == 0 ]] || return 1
    local policy=/usr/sbin/policy-rc.d made=0 rc=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made=1; fi
    if [[ -z ${APT_UPDATED:-} ]]; then apt-get update -qq >/dev/null 2>&1; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 || rc=$?
    ((made)) && rm -f "$policy"
    ((rc == 0)) || { tail -5 "$WORK/apt.log" >&2; return 1; }
}
pip_install() { ((INSTALL)) && python3 -m pip install -q "$@" >"$WORK/pip.log" 2>&1; }
free_port() { # a TCP and UDP port free on loopback
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        ss -Hltun "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
}

# dns64d reads every DNS64D_* environment variable as configuration and rejects unknown keys
# (DNS64D_BIN too): run it without them.
CLEAN_ENV=(env)
for v in $(compgen -e); do [[ $v == DNS64D_* ]] && CLEAN_ENV+=(-u "$v"); done
dns64d() { "${CLEAN_ENV[@]}" "$DNS64D_BIN" "$@"; }

# check_config NAME FILE: dns64d --check-config; SKIP when this build predates a section
# (the [metrics] section is being added), FAIL on any other error
check_config() {
    local name=$1 file=$2 out
    if [[ ! -x $DNS64D_BIN ]]; then sk "$name: no dns64d binary at $DNS64D_BIN"; return; fi
    if out=$(dns64d --check-config --config "$file" 2>&1); then
        ok "$name: accepted by dns64d --check-config"
    elif grep -q 'unknown field: found `\(metrics\|log\)`' <<<"$out"; then
        sk "$name: this dns64d build does not know the [metrics]/[log] section yet"
    else
        ko "$name: dns64d --check-config: $(head -3 <<<"$out")"
    fi
}
binary_knows_metrics() {
    printf '[metrics]\nlisten = "127.0.0.1:9153"\n' >"$WORK/probe.toml"
    dns64d --check-config --config "$WORK/probe.toml" >/dev/null 2>&1
}

# ---------------------------------------------------------------- build
section "dns64d binary ($DNS64D_BIN)"
if [[ $DNS64D_BIN == "$REPO/target/release/dns64d" ]]; then
    # always: a no-op when up to date, and the checks below then test the current source
    (cd "$REPO" && cargo build --release --locked) || ko "cargo build --release"
fi
[[ -x $DNS64D_BIN ]] && dns64d --version

# ---------------------------------------------------------------- systemd
section "systemd"
if ! have systemd-analyze; then apt_install systemd; fi
if have systemd-analyze; then
    # verify needs the binaries the units run: a temporary root with the host's unit tree
    root=$WORK/root
    mkdir -p "$root"/usr/local/bin "$root"/usr/bin "$root"/etc/systemd/system "$root"/usr/lib/systemd
    ln -s usr/bin "$root/bin"; ln -s usr/lib "$root/lib"
    cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
    if [[ -x $DNS64D_BIN ]]; then cp "$DNS64D_BIN" "$root/usr/local/bin/dns64d"
    else printf '#!/bin/sh\n' >"$root/usr/local/bin/dns64d"; chmod 755 "$root/usr/local/bin/dns64d"; fi
    cp /bin/kill "$root/usr/bin/kill"
    cp "$HERE"/systemd/*.service "$root/etc/systemd/system/"
    for unit in dns64d.service dns64d-shim.service; do
        out=$(systemd-analyze verify --root="$root" "/etc/systemd/system/$unit" 2>&1); rc=$?
        if [[ $rc == 0 && -z $out ]]; then ok "systemd-analyze verify $unit: clean"
        else ko "systemd-analyze verify $unit (exit $rc): $out"; fi
        out=$(systemd-analyze security --offline=true --root="$root" "$unit" 2>&1 | grep 'Overall exposure')
        score=$(grep -oE '[0-9]+\.[0-9]+' <<<"$out" | head -1)
        if [[ -n $score ]] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
            ok "systemd-analyze security $unit: exposure $score (<= 2.0)"
        else ko "systemd-analyze security $unit: ${out:-no score}"; fi
    done
else
    sk "systemd-analyze not available"
fi
unit=$HERE/systemd/dns64d.service
missing=()
for line in 'Type=notify' 'ExecStart=/usr/local/bin/dns64d --config /etc/dns64d/dns64d.toml' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'DynamicUser=yes' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' \
    'ProtectSystem=strict' 'ConfigurationDirectory=dns64d'; do
    grep -qxF "$line" "$unit" || missing+=("$line")
done
((${#missing[@]} == 0)) && ok "dns64d.service has Type=notify, ExecStart, ExecReload (SIGHUP), DynamicUser, ..." \
    || ko "dns64d.service lacks: ${missing[*]}"
# every hardening line of the shim unit is in the network unit too
missing=()
while IFS= read -r line; do
    grep -qxF "$line" "$unit" || missing+=("$line")
done < <(grep -E '^(DynamicUser|AmbientCapabilities|CapabilityBoundingSet|NoNewPrivileges|Protect|Private|Restrict|Lock|Memory|SystemCall|UMask)' \
    "$HERE/systemd/dns64d-shim.service")
((${#missing[@]} == 0)) && ok "dns64d.service keeps every hardening line of dns64d-shim.service" \
    || ko "dns64d.service differs from the shim's hardening: ${missing[*]}"
check_config "deploy/systemd/dns64d.toml" "$HERE/systemd/dns64d.toml"

# ---------------------------------------------------------------- grafana
section "grafana"
if python3 "$HERE/grafana/check_dashboard.py" "$HERE/grafana/dns64d.json" "$HERE/grafana/metrics.txt" >"$WORK/dash.log" 2>&1; then
    ok "dns64d.json: valid, $(tail -1 "$WORK/dash.log" | sed 's/^[^:]*: //')"
else cat "$WORK/dash.log"; ko "dns64d.json against metrics.txt"; fi
schema=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("schemaVersion"))' "$HERE/grafana/dns64d.json" 2>/dev/null)
[[ $schema =~ ^(3[6-9]|4[0-9])$ ]] && ok "schemaVersion $schema, Prometheus datasource variable" \
    && grep -q '"uid": "${datasource}"' "$HERE/grafana/dns64d.json" || ko "schemaVersion $schema / datasource variable"
if [[ -x $DNS64D_BIN ]] && binary_knows_metrics; then
    dns_port=$(free_port) metrics_port=$(free_port) stub_port=$(free_port)
    # a stub upstream on loopback: A 192.0.2.1 for every name, NODATA for AAAA (so dns64d
    # synthesizes), REFUSED for names under refuse.test (an upstream error); ends by itself
    python3 - "$stub_port" >"$WORK/stub.log" 2>&1 <<'PY' &
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(120)
while True:
    try:
        q, peer = s.recvfrom(4096)
    except socket.timeout:
        break
    if len(q) < 17:
        continue
    end = 12
    while end < len(q) and q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    name = q[12:end + 1].lower()
    qtype = struct.unpack("!H", q[end + 1:end + 3])[0]
    rcode, answer, soa = 0, b"", b""
    if b"\x06refuse\x04test" in name:
        rcode = 5
    elif qtype == 1:
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
    else:
        soa = (b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 60, 22) + b"\x00\x00"
               + struct.pack("!IIIII", 1, 60, 60, 60, 60))
    flags = 0x8480 | (0x0100 & struct.unpack("!H", q[2:4])[0]) | rcode
    header = q[:2] + struct.pack("!HHHHH", flags, 1, 1 if answer else 0, 1 if soa else 0, 0)
    s.sendto(header + question + answer + soa, peer)
PY
    PIDS+=($!)
    for _ in $(seq 100); do ss -Hlun "sport = :$stub_port" | grep -q . && break; sleep 0.1; done
    cat >"$WORK/live.toml" <<EOF
listen = ["127.0.0.1:$dns_port"]
[upstream]
servers = ["127.0.0.1:$stub_port"]
timeout_ms = 500
attempts = 1
[dns64]
prefixes = ["2001:db8:64::/96"]     # network-specific: may embed 192.0.2.1
[access]
clients = ["127.0.0.1/32"]
[metrics]
listen = "127.0.0.1:$metrics_port"
EOF
    # Not through the dns64d function: in the background that would be a subshell, and
    # killing its PID would leave dns64d running. env execs the binary, keeping the PID.
    "${CLEAN_ENV[@]}" "$DNS64D_BIN" --config "$WORK/live.toml" >"$WORK/live.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$metrics_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/healthz")
    [[ $code == 200 ]] && ok "live dns64d: GET /healthz 200" || ko "live dns64d: GET /healthz: $code; $(tail -3 "$WORK/live.log")"
    a=$(dig +time=2 +tries=1 @127.0.0.1 -p "$dns_port" AAAA www.example.test +short 2>&1)
    [[ $a == 2001:db8:64::c000:201 ]] && ok "live dns64d: AAAA www.example.test synthesized from the stub's A 192.0.2.1: $a" \
        || ko "live dns64d: AAAA www.example.test: '$a'; stub: $(tail -3 "$WORK/stub.log"); dns64d: $(tail -3 "$WORK/live.log")"
    dig +time=1 +tries=1 @127.0.0.1 -p "$dns_port" AAAA ipv4only.arpa >/dev/null        # answered locally
    dig +time=2 +tries=1 @127.0.0.1 -p "$dns_port" A x.refuse.test >/dev/null           # upstream error
    dig +time=1 +tries=1 -b 127.0.0.2 @127.0.0.1 -p "$dns_port" A example.test >/dev/null  # refused client
    if python3 "$HERE/grafana/check_dashboard.py" "$HERE/grafana/dns64d.json" \
        "http://127.0.0.1:$metrics_port/metrics" >"$WORK/dash-live.log" 2>&1; then
        ok "every metric on the dashboard is exported by a running dns64d (/metrics)"
    else cat "$WORK/dash-live.log"; ko "dashboard vs live /metrics"; fi
    kill "${PIDS[-1]}" "${PIDS[-2]}" 2>/dev/null
else
    sk "live /metrics: this dns64d build has no [metrics] section yet"
fi

# ---------------------------------------------------------------- container
section "container"
if ! python3 -c 'import dockerfile' 2>/dev/null; then pip_install dockerfile; fi
if python3 -c 'import dockerfile' 2>/dev/null; then
    if python3 - "$HERE/container/Dockerfile" >"$WORK/df.log" 2>&1 <<'EOF'; then
import sys, dockerfile
cmds = dockerfile.parse_file(sys.argv[1])
froms = [i for i, c in enumerate(cmds) if c.cmd == "FROM"]
last = cmds[froms[-1]:]
def has(cmd, *value):
    return any(c.cmd == cmd and tuple(c.value) == value for c in last)
problems = []
if tuple(cmds[froms[-1]].value) != ("scratch",): problems.append("final stage is not FROM scratch")
if not has("USER", "65532:65532") and not has("USER", "65532"): problems.append("no USER 65532")
if not any(c.cmd == "EXPOSE" and {"53/udp", "53/tcp"} <= set(c.value) for c in last): problems.append("no EXPOSE 53/udp 53/tcp")
if not any(c.cmd == "ENTRYPOINT" and c.json and list(c.value) == ["/dns64d"] for c in last): problems.append('no ENTRYPOINT ["/dns64d"]')
if not any(c.cmd == "COPY" and c.value[-1] == "/etc/dns64d/dns64d.toml" for c in last): problems.append("no /etc/dns64d/dns64d.toml")
if not any("x86_64-unknown-linux-musl" in " ".join(c.value) for c in cmds if c.cmd == "RUN"): problems.append("builder does not build for musl")
print("; ".join(problems) or f"{len(cmds)} instructions, {len(froms)} stages")
sys.exit(1 if problems else 0)
EOF
        ok "Dockerfile parses (BuildKit's parser): $(cat "$WORK/df.log"); final stage scratch, USER 65532, EXPOSE 53, ENTRYPOINT /dns64d"
    else ko "Dockerfile: $(cat "$WORK/df.log")"; fi
    python3 -c 'import sys, dockerfile; dockerfile.parse_file(sys.argv[1])' "$HERE/container/tayga/Dockerfile" 2>"$WORK/df2.log" \
        && ok "tayga/Dockerfile parses" || ko "tayga/Dockerfile: $(cat "$WORK/df2.log")"
else
    sk "Dockerfile parser (pip package dockerfile) not available"
fi
sh -n "$HERE/container/tayga/entrypoint.sh" && ok "tayga/entrypoint.sh: sh -n" || ko "tayga/entrypoint.sh: sh -n"
if ! have shellcheck; then apt_install shellcheck; fi
if have shellcheck; then
    out=$(shellcheck -s sh "$HERE/container/tayga/entrypoint.sh" 2>&1) && ok "tayga/entrypoint.sh: shellcheck clean" \
        || ko "tayga/entrypoint.sh: shellcheck: $out"
    out=$(shellcheck -S warning "$HERE/check.sh" "$HERE/nat64-lab/lab.sh" "$HERE/nat64-lab/ci.sh" 2>&1) \
        && ok "check.sh, lab.sh, ci.sh: shellcheck (warnings) clean" || ko "shellcheck: $out"
else sk "shellcheck not available"; fi
if ! have docker-compose; then apt_install docker-compose; fi
if have docker-compose; then
    out=$(cd "$HERE/container" && docker-compose -f compose.yaml config -q 2>&1) \
        && ok "compose.yaml: docker-compose config (Compose schema) accepts it" || ko "compose.yaml: $out"
else sk "docker-compose not available"; fi
if out=$(python3 - "$HERE/container/compose.yaml" 2>&1 <<'EOF'
import json, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
d, t = s["dns64d"], s["tayga"]
problems = []
if d["build"]["dockerfile"] != "deploy/container/Dockerfile": problems.append("dns64d not built from deploy/container/Dockerfile")
if "NET_ADMIN" not in t.get("cap_add", []): problems.append("tayga lacks NET_ADMIN")
if not any("/dev/net/tun" in x for x in t.get("devices", [])): problems.append("tayga lacks /dev/net/tun")
prefixes = json.loads(d["environment"]["DNS64D_DNS64__PREFIXES"])
if prefixes != [t["environment"]["TAYGA_PREFIX"]]: problems.append(f"prefixes differ: dns64d {prefixes}, tayga {t['environment']['TAYGA_PREFIX']}")
if not c["networks"]["nat64"].get("enable_ipv6"): problems.append("network without IPv6")
print("; ".join(problems) or f"dns64d and tayga share prefix {prefixes[0]}")
sys.exit(1 if problems else 0)
EOF
); then ok "compose.yaml: $out"; else ko "compose.yaml: $out"; fi

if ((RUN_CONTAINER)); then
    # the static binary
    if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        ((INSTALL)) && rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1
    fi
    if ! have musl-gcc; then apt_install musl-tools; fi
    if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl && have musl-gcc; then
        t0=$EPOCHREALTIME
        if (cd "$REPO" && CARGO_TARGET_DIR=$MUSL_TARGET_DIR cargo build --release --locked \
            --target x86_64-unknown-linux-musl) >"$WORK/musl.log" 2>&1; then
            desc=$(file -b "$MUSL_BIN")
            if [[ $desc =~ static(-pie)?\ linked|statically\ linked ]] && ! readelf -lW "$MUSL_BIN" | grep -q INTERP; then
                ok "musl build ($(elapsed "$t0") s): file says \"$(grep -oE 'stat[a-z-]+ linked' <<<"$desc")\", no ELF interpreter (readelf), $(du -h "$MUSL_BIN" | cut -f1)"
            else ko "musl binary is not static: $desc"; fi
        else tail -20 "$WORK/musl.log"; ko "cargo build --target x86_64-unknown-linux-musl"; fi
    else sk "musl build: x86_64-unknown-linux-musl target or musl-gcc unavailable"; fi

    # podman: build the image from that binary, run it, query it
    if ! have podman; then apt_install podman runc; fi
    if [[ -x $MUSL_BIN ]] && have podman; then
        # This machine's quirks (see deploy/README.md): crun refuses hybrid cgroup v1/v2
        # hierarchies (runc works), and raising RLIMIT_NOFILE/NPROC needs CAP_SYS_RESOURCE.
        PODMAN=(podman)
        if [[ -d /sys/fs/cgroup/unified ]]; then
            have runc || apt_install runc
            have runc && PODMAN+=(--runtime "$(command -v runc)")
        fi
        RUNOPTS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
        ctx=$WORK/ctx; mkdir -p "$ctx/deploy/container"
        cp "$MUSL_BIN" "$ctx/dns64d"; cp "$HERE/container/dns64d.toml" "$ctx/deploy/container/"
        t0=$EPOCHREALTIME
        # (--layers=false would leave no intermediate images, but buildah 1.28 then exits 125,
        # "identifier is not an image", after tagging: remove the ones this build made instead)
        podman images -aq --no-trunc | sort -u >"$WORK/images.before"
        "${PODMAN[@]}" build -f "$HERE/container/Dockerfile" --build-arg BINARY_FROM=prebuilt \
            --build-arg PREBUILT=dns64d -t "$IMAGE" "$ctx" >"$WORK/build.log" 2>&1; rc=$?
        final=$(podman image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null)
        for id in $(podman images -aq --no-trunc | sort -u | comm -13 "$WORK/images.before" -); do
            [[ $id == *"$final"* ]] || podman rmi "$id" >/dev/null 2>&1
        done
        if [[ $rc == 0 && -n $final ]]; then
            info=$(podman image inspect "$IMAGE" --format '{{.Config.User}} {{json .Config.Entrypoint}} {{.Size}} {{range $k, $v := .Config.ExposedPorts}}{{$k}} {{end}}')
            read -r user entry size ports <<<"$info"
            if [[ $user == 65532:65532 && $entry == '["/dns64d"]' && $ports == *53/udp* && $ports == *53/tcp* ]]; then
                ok "podman build ($(elapsed "$t0") s): user $user, entrypoint $entry, $((size / 1024 / 1024)) MB, exposes $ports"
            else ko "image config: $info"; fi

            # 1. the image as shipped (its own config) in a network namespace of its own
            if binary_knows_metrics; then
                name=dns64d-check-$$-a; CONTAINERS+=("$name")
                if "${PODMAN[@]}" run -d --name "$name" "${RUNOPTS[@]}" --network none \
                    --sysctl net.ipv4.ip_unprivileged_port_start=53 "$IMAGE" >"$WORK/run-a.log" 2>&1; then
                    pid=$(podman inspect -f '{{.State.Pid}}' "$name")
                    for _ in $(seq 50); do
                        nsenter --net="/proc/$pid/ns/net" ss -Hlnu 2>/dev/null | grep -q ':53 ' && break; sleep 0.1
                    done
                    a=$(nsenter --net="/proc/$pid/ns/net" dig +time=1 +tries=2 @::1 AAAA ipv4only.arpa +short 2>&1 | sort | xargs)
                    b=$(nsenter --net="/proc/$pid/ns/net" dig +time=1 +tries=2 +tcp @127.0.0.1 AAAA ipv4only.arpa +short 2>&1 | sort | xargs)
                    h=$(nsenter --net="/proc/$pid/ns/net" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9153/healthz 2>&1)
                    uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
                    if [[ $a == "64:ff9b::c000:aa 64:ff9b::c000:ab" && $b == "$a" && $h == 200 && $uid == 65532 ]]; then
                        ok "container with its own config (uid $uid, own netns): dig @::1 (UDP) and @127.0.0.1 (TCP) port 53 AAAA ipv4only.arpa -> $a; /healthz 200"
                    else ko "container with its own config: udp '$a' tcp '$b' healthz '$h' uid '$uid'; $(podman logs "$name" 2>&1 | tail -3)"; fi
                else ko "podman run (image config): $(cat "$WORK/run-a.log")"; fi
                podman rm -f "$name" >/dev/null 2>&1
            else
                sk "container with its own config: this dns64d build rejects its [metrics] section"
            fi

            # 2. host networking on loopback, queried from the host
            port=$(free_port); name=dns64d-check-$$-b; CONTAINERS+=("$name")
            if "${PODMAN[@]}" run -d --name "$name" "${RUNOPTS[@]}" --network host "$IMAGE" \
                --listen "127.0.0.1:$port" --upstream "127.0.0.1:$(free_port)" --prefix 64:ff9b::/96 >"$WORK/run-b.log" 2>&1; then
                for _ in $(seq 50); do ss -Hlnu "sport = :$port" | grep -q . && break; sleep 0.1; done
                a=$(dig +time=1 +tries=2 @127.0.0.1 -p "$port" AAAA ipv4only.arpa +short 2>&1 | sort | xargs)
                [[ $a == "64:ff9b::c000:aa 64:ff9b::c000:ab" ]] \
                    && ok "container on host network: dig @127.0.0.1 -p $port AAAA ipv4only.arpa -> $a" \
                    || ko "container on host network: '$a'; $(podman logs "$name" 2>&1 | tail -3)"
            else ko "podman run (host network): $(cat "$WORK/run-b.log")"; fi
            podman rm -f "$name" >/dev/null 2>&1
        else cat "$WORK/build.log"; ko "podman build"; fi
    else
        sk "podman image: podman or the musl binary unavailable"
    fi
else
    sk "container build and run (--no-container)"
fi

# ---------------------------------------------------------------- kubernetes
section "kubernetes"
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then pip_install kubernetes-validate; fi
if have kubernetes-validate; then
    if out=$(kubernetes-validate --strict --quiet "$HERE"/kubernetes/*.yaml 2>&1); then
        ok "kubernetes-validate --strict (Kubernetes $(kubernetes-validate --help | grep -oE 'Defaults to [0-9.]+' | cut -d' ' -f3) schemas): sidecar.yaml, deployment.yaml"
    else ko "kubernetes-validate: $out"; fi
else sk "kubernetes-validate not available"; fi
if out=$(python3 - "$HERE/kubernetes" "$WORK/k8s-config.toml" 2>&1 <<'EOF'
import sys, yaml
d, config_out = sys.argv[1], sys.argv[2]
problems = []
def find(docs, kind): return [x for x in docs if x and x.get("kind") == kind]
def port_number(container, port):
    if isinstance(port, int): return port
    return next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)
# sidecar
pod = find(list(yaml.safe_load_all(open(f"{d}/sidecar.yaml"))), "Pod")[0]["spec"]
if pod.get("dnsPolicy") != "None": problems.append("sidecar: dnsPolicy is not None")
if pod.get("dnsConfig", {}).get("nameservers") != ["127.0.0.1"]: problems.append("sidecar: nameservers is not [127.0.0.1]")
side = [c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == "dns64d"]
if not side or "--shim" not in side[0].get("args", []): problems.append("sidecar: no dns64d container with --shim")
if len(pod["containers"]) < 1: problems.append("sidecar: no app container")
# deployment
docs = list(yaml.safe_load_all(open(f"{d}/deployment.yaml")))
dep = find(docs, "Deployment")[0]
if dep["spec"]["replicas"] != 3: problems.append("deployment: replicas != 3")
c = dep["spec"]["template"]["spec"]["containers"][0]
for probe, path in (("readinessProbe", "/healthz"), ("livenessProbe", "/readyz")):
    h = c.get(probe, {}).get("httpGet", {})
    if h.get("path") != path or port_number(c, h.get("port")) != 9153: problems.append(f"deployment: {probe} is not GET {path} on 9153")
if not c.get("resources", {}).get("requests") or not c["resources"].get("limits"): problems.append("deployment: resources")
svc = find(docs, "Service")[0]
ports = {(p["port"], p.get("protocol", "TCP")) for p in svc["spec"]["ports"]}
if not {(53, "UDP"), (53, "TCP")} <= ports: problems.append(f"service: ports {sorted(ports)}")
if svc["spec"]["selector"] != dep["spec"]["selector"]["matchLabels"]: problems.append("service selector does not match the deployment")
cm = find(docs, "ConfigMap")[0]
vol = dep["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
if vol != cm["metadata"]["name"]: problems.append("deployment does not mount the ConfigMap")
open(config_out, "w").write(cm["data"]["dns64d.toml"])
print("; ".join(problems) or "sidecar dnsPolicy None + nameserver 127.0.0.1 + dns64d --shim; 3 replicas, /healthz and /readyz probes on 9153, resources; Service 53/UDP+TCP")
sys.exit(1 if problems else 0)
EOF
); then ok "structure: $out"; else ko "structure: $out"; fi
[[ -s $WORK/k8s-config.toml ]] && check_config "deployment.yaml ConfigMap dns64d.toml" "$WORK/k8s-config.toml"
if ! have yamllint; then apt_install yamllint; fi
if have yamllint; then
    out=$(yamllint -d '{extends: relaxed, rules: {line-length: {max: 120}}}' "$HERE"/kubernetes/*.yaml "$HERE"/container/compose.yaml 2>&1) \
        && ok "yamllint (relaxed): kubernetes/*.yaml, container/compose.yaml" || ko "yamllint: $out"
else sk "yamllint not available"; fi

# ---------------------------------------------------------------- lab
section "NAT64 lab"
if ((RUN_LAB)); then
    t0=$EPOCHREALTIME
    DNS64D_BIN=$DNS64D_BIN bash "$HERE/nat64-lab/ci.sh" >"$WORK/lab.log" 2>&1; rc=$?
    grep -E '^(PASS|FAIL|SKIP)|SKIPPED' "$WORK/lab.log" | sed 's/^/      /'
    summary=$(tail -n 1 "$WORK/lab.log")
    if grep -q 'SKIPPED' "$WORK/lab.log"; then sk "lab: $(grep SKIPPED "$WORK/lab.log")"
    elif [[ $rc == 0 ]]; then ok "NAT64 lab ($(elapsed "$t0") s): $summary"
    else tail -30 "$WORK/lab.log"; ko "NAT64 lab: $summary"; fi
else
    sk "NAT64 lab (--no-lab)"
fi

printf '\n== deploy/check.sh took %s s\n' "$(elapsed "$t_start")"
printf '%d passed, %d failed, %d skipped\n' "$pass" "$fail" "$skip"
((fail == 0))
