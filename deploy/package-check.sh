#!/usr/bin/env bash
# deploy/package-check.sh -- check what deploy/package.sh built, as root on this machine.
#
#   bash deploy/package-check.sh
#
# deb      installed with dpkg: every file where the package says, the conffile, the system
#          user, dns64d.service enabled (dns64d-shim.service not), no dns64d left running;
#          dns64d --check-config passes on the shipped /etc/dns64d/dns64d.toml; the installed
#          binary, as the user dns64d, answers a query with the shipped config on a free
#          loopback port; reinstalling over itself keeps a changed conffile; dpkg -r removes
#          all but the conffile and the unit state; dpkg --purge leaves the file system, the
#          users and groups as they were before the install; lintian
# rpm      rpm -qlvp: the same files as the .deb (units in /usr/lib), the conffile marked
#          %config(noreplace), no shared-library requirement (static binary), the scriptlets
# static   file/readelf: statically linked, no ELF interpreter; the integration tests' smoke
#          subset (tests/integration/binary_smoke.rs) run against it over UDP and TCP
# archives tarball and zips list what they should
#
# Needs root, dpkg, lintian, rpm, dig, python3 and the artifacts in target/package/. With a
# dns64d package already installed it stops, unless CI=true (then it is purged first, as left
# by an interrupted run). Traffic goes only to loopback. Last line: "N passed, N failed"; exit 1 if anything failed.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
cd "$REPO" || exit 2
OUT=target/package
MUSL_BIN=target/x86_64-unknown-linux-musl/release/dns64d

pass=0 fail=0
ok() { printf 'PASS  %s\n' "$*"; pass=$((pass + 1)); }
ko() { printf 'FAIL  %s\n' "$*"; fail=$((fail + 1)); }
section() { printf '\n== %s\n' "$*"; }
[[ $(id -u) == 0 ]] || { echo "package-check.sh: needs root (dpkg -i)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/dns64d-package-check.XXXXXX)
PIDS=() installed_here=0
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    # only a package this run installed
    if ((installed_here)) && dpkg-query -W -f='${Status}' dns64d 2>/dev/null | grep -q 'installed\|config-files'; then
        dpkg --purge dns64d >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

CLEAN_ENV=(env)
for v in $(compgen -e); do [[ $v == DNS64D_* ]] && CLEAN_ENV+=(-u "$v"); done
free_port() { # a TCP and UDP port free on loopback
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        ss -Hltun "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
}
# The processes whose executable is PATH (a dns64d left running by the package would show here).
running() { local e; for e in /proc/[0-9]*/exe; do [[ $(readlink "$e" 2>/dev/null) == "$1" ]] && echo "${e//[^0-9]/}"; done; }
# Every file and symlink where a package installs or its scripts write, and the users and groups.
snapshot() {
    find /etc /usr /lib /var/lib/systemd -xdev \( -type f -o -type l -o -type d \) 2>/dev/null \
        | grep -v '^/etc/\(passwd\|group\|shadow\|gshadow\)-$' | grep -v '^/etc/ld.so.cache$' | sort
    cut -d: -f1 /etc/passwd | sed 's/^/user /' | sort
    cut -d: -f1 /etc/group | sed 's/^/group /' | sort
}

deb=$(ls "$OUT"/dns64d_*_amd64.deb 2>/dev/null | head -1)
rpm=$(ls "$OUT"/dns64d-*.x86_64.rpm 2>/dev/null | head -1)
[[ -f $deb && -f $rpm ]] || { echo "package-check.sh: no .deb or .rpm in $OUT: run deploy/package.sh" >&2; exit 2; }

# ---------------------------------------------------------------- deb
section "Debian package $(basename "$deb") ($(du -h "$deb" | cut -f1))"
if dpkg-query -W -f='${Status}' dns64d 2>/dev/null | grep -q 'installed\|config-files'; then
    # CI's machine may keep one from an interrupted run; anywhere else it may be in use
    if [[ ${CI:-} == true ]]; then
        echo "purging a dns64d package left by an earlier run"
        dpkg --purge dns64d >/dev/null
    else
        echo "package-check.sh: dns64d is installed here; this check installs and purges its own." \
            "Purge it first (dpkg --purge dns64d: its /etc/dns64d goes too) or run with CI=true." >&2
        exit 2
    fi
fi
snapshot >"$WORK/before"
installed_here=1
if DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" </dev/null >"$WORK/dpkg.log" 2>&1; then
    ok "dpkg -i: installed ($(dpkg-query -W -f='${Version}' dns64d))"
else
    cat "$WORK/dpkg.log"; ko "dpkg -i"
fi
expected=(
    /usr/sbin/dns64d /etc/dns64d/dns64d.toml
    /lib/systemd/system/dns64d.service /lib/systemd/system/dns64d-shim.service
    /usr/share/man/man8/dns64d.8.gz /usr/share/man/man5/dns64d.toml.5.gz
    /usr/share/doc/dns64d/copyright /usr/share/doc/dns64d/changelog.Debian.gz
    /usr/share/doc/dns64d/README.md /usr/share/doc/dns64d/examples/quickstart.toml
    /usr/share/doc/dns64d/examples/shim.toml
)
missing=()
for f in "${expected[@]}"; do [[ -f $f ]] || missing+=("$f"); done
((${#missing[@]} == 0)) && ok "the files are where the package says: ${expected[*]}" || ko "missing after install: ${missing[*]}"
listed=$(dpkg -L dns64d | while read -r f; do [[ -e $f ]] || echo "$f"; done)
[[ -z $listed ]] && ok "every path dpkg -L lists exists" || ko "dpkg -L lists absent paths: $listed"
[[ $(stat -c '%a %U' /usr/sbin/dns64d) == "755 root" ]] && ok "/usr/sbin/dns64d: mode 755, owner root" \
    || ko "/usr/sbin/dns64d: $(stat -c '%a %U' /usr/sbin/dns64d)"
conffiles=$(dpkg-query -W -f='${Conffiles}' dns64d)
grep -q '^ /etc/dns64d/dns64d.toml ' <<<"$conffiles" && ok "/etc/dns64d/dns64d.toml is a conffile" \
    || ko "conffiles: '$conffiles'"
grep -qx 'ExecStart=/usr/sbin/dns64d --config /etc/dns64d/dns64d.toml' /lib/systemd/system/dns64d.service \
    && grep -qx 'ExecStart=/usr/sbin/dns64d --shim' /lib/systemd/system/dns64d-shim.service \
    && ok "the units run /usr/sbin/dns64d" || ko "the units' ExecStart: $(grep -h ExecStart= /lib/systemd/system/dns64d*.service)"
user=$(getent passwd dns64d)
uid=$(cut -d: -f3 <<<"$user")
if [[ -n $user ]] && ((uid < 1000)) && [[ $(cut -d: -f7 <<<"$user") == /usr/sbin/nologin ]]; then
    ok "system user: $user"
else ko "system user dns64d: '$user'"; fi
[[ -L /etc/systemd/system/multi-user.target.wants/dns64d.service ]] && ok "dns64d.service enabled (multi-user.target.wants)" \
    || ko "dns64d.service is not enabled"
[[ ! -e /etc/systemd/system/multi-user.target.wants/dns64d-shim.service ]] && ok "dns64d-shim.service installed, not enabled" \
    || ko "dns64d-shim.service is enabled"
pids=$(running /usr/sbin/dns64d)
if [[ -d /run/systemd/system ]]; then
    ok "systemd is PID 1 here: the postinst may have started dns64d.service ($(systemctl is-active dns64d.service))"
    systemctl stop dns64d.service
elif [[ -z $pids ]]; then
    ok "no systemd running (PID 1: $(ps -o comm= 1)): nothing started, no /usr/sbin/dns64d process"
else
    ko "a /usr/sbin/dns64d is running without systemd: pid $pids"
fi
if man -w dns64d >/dev/null 2>&1 && man -w 5 dns64d.toml >/dev/null 2>&1; then
    ok "man dns64d, man 5 dns64d.toml: found ($(man -w dns64d), $(man -w 5 dns64d.toml))"
elif ! command -v man >/dev/null; then
    ok "man is not installed here; the pages are in place (checked above)"
else ko "man -w does not find the pages"; fi

if out=$("${CLEAN_ENV[@]}" /usr/sbin/dns64d --check-config --config /etc/dns64d/dns64d.toml 2>&1); then
    ok "dns64d --check-config --config /etc/dns64d/dns64d.toml: valid"
else ko "dns64d --check-config on the shipped config: $(head -3 <<<"$out")"; fi

# The shipped config on a free loopback port, as the package's user. --listen and --upstream
# replace only those two keys: the shipped upstream is a placeholder off this machine, so it
# points at a loopback port nobody answers; ipv4only.arpa is answered by dns64d itself.
port=$(free_port) dead=$(free_port)
"${CLEAN_ENV[@]}" DNS64D_METRICS__LISTEN=127.0.0.1:0 runuser -u dns64d -- /usr/sbin/dns64d \
    --config /etc/dns64d/dns64d.toml --listen "127.0.0.1:$port" --upstream "127.0.0.1:$dead" \
    >"$WORK/run.log" 2>&1 &
PIDS+=($!)
answer=""
for _ in $(seq 50); do
    # (dig prints its errors on stdout too: keep only address lines)
    answer=$(dig +time=1 +tries=1 @127.0.0.1 -p "$port" AAAA ipv4only.arpa +short 2>/dev/null \
        | grep -E '^[0-9a-f:]+$' | sort | tr '\n' ' ')
    [[ -n $answer ]] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
done
[[ $answer == "64:ff9b::c000:aa 64:ff9b::c000:ab " ]] \
    && ok "the installed binary with the shipped config on 127.0.0.1:$port, as user dns64d: AAAA ipv4only.arpa = $answer" \
    || ko "query on the shipped config: '$answer'; log: $(tail -3 "$WORK/run.log")"
tcp=$(dig +tcp +time=2 +tries=1 @127.0.0.1 -p "$port" AAAA ipv4only.arpa +short 2>/dev/null \
    | grep -E '^[0-9a-f:]+$' | sort | tr '\n' ' ')
[[ $tcp == "$answer" ]] && ok "the same over TCP" || ko "over TCP: '$tcp'"
kill "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null; unset 'PIDS[-1]'

# Upgrade over itself: a changed conffile stays.
marker="# changed by deploy/package-check.sh $$"
echo "$marker" >>/etc/dns64d/dns64d.toml
if DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" </dev/null >"$WORK/dpkg2.log" 2>&1; then
    grep -qxF "$marker" /etc/dns64d/dns64d.toml && ok "reinstall over itself: the changed conffile is kept" \
        || ko "reinstall over itself replaced the changed conffile"
    [[ ! -e /etc/dns64d/dns64d.toml.dpkg-new && ! -e /etc/dns64d/dns64d.toml.dpkg-dist ]] \
        && ok "no .dpkg-new/.dpkg-dist beside it" || ko "$(ls /etc/dns64d/)"
    [[ -L /etc/systemd/system/multi-user.target.wants/dns64d.service ]] && ok "still enabled after the upgrade" \
        || ko "the upgrade disabled dns64d.service"
else cat "$WORK/dpkg2.log"; ko "dpkg -i over itself"; fi

# dpkg -r: everything but the conffile goes; dpkg --purge: the system as before.
if dpkg -r dns64d >"$WORK/dpkg3.log" 2>&1; then
    left=$(for f in "${expected[@]}"; do [[ -e $f ]] && echo "$f"; done)
    [[ $left == /etc/dns64d/dns64d.toml ]] && ok "dpkg -r: every file gone but the conffile" \
        || ko "dpkg -r left: $left"
    [[ -z $(running /usr/sbin/dns64d) ]] && ok "dpkg -r: no dns64d running" || ko "dpkg -r: dns64d still running"
else cat "$WORK/dpkg3.log"; ko "dpkg -r"; fi
if dpkg --purge dns64d >"$WORK/dpkg4.log" 2>&1; then
    snapshot >"$WORK/after"
    if diff "$WORK/before" "$WORK/after" >"$WORK/diff"; then
        ok "dpkg --purge: /etc, /usr, /lib, /var/lib/systemd, users and groups as before the install"
    else ko "dpkg --purge left differences: $(head -20 "$WORK/diff")"; fi
    dpkg-query -W dns64d >/dev/null 2>&1 && ko "dpkg still knows dns64d: $(dpkg -l dns64d | tail -1)" \
        || ok "dpkg no longer knows the package"
else cat "$WORK/dpkg4.log"; ko "dpkg --purge"; fi

# lintian: the tags left are explained in deploy/README.md ("Packages"); anything else fails.
if command -v lintian >/dev/null; then
    # (lintian refuses to run as root without --allow-root)
    lintian --allow-root --fail-on error,warning -I "$deb" >"$WORK/lintian.log" 2>&1; rc=$?
    tags=$(grep -cE '^[EWIP]:' "$WORK/lintian.log")
    if ((rc == 0)); then
        ok "lintian: no error or warning ($tags info/pedantic tags: $(grep -oE '^[IP]: [^ ]+ [^ ]+' "$WORK/lintian.log" | awk '{ print $3 }' | sort -u | tr '\n' ' '))"
    else cat "$WORK/lintian.log"; ko "lintian (exit $rc)"; fi
else ko "lintian is not installed"; fi

# ---------------------------------------------------------------- rpm
section "RPM $(basename "$rpm") ($(du -h "$rpm" | cut -f1))"
if rpm -qlvp "$rpm" >"$WORK/rpm.list" 2>"$WORK/rpm.err"; then
    cat "$WORK/rpm.list"
    rpm_files=$(awk '{ print $NF }' "$WORK/rpm.list" | sort)
    deb_files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $NF); print $NF }' \
        | sed 's|^/lib/systemd|/usr/lib/systemd|' \
        | grep -v '^/usr/share/\(doc/dns64d/copyright\|doc/dns64d/changelog.Debian.gz\|lintian/overrides/dns64d\)$' | sort)
    rpm_compare=$(grep -v '^/usr/share/doc/dns64d/changelog$' <<<"$rpm_files")
    if [[ $rpm_compare == "$deb_files" ]]; then
        ok "rpm -qlp: the same $(wc -l <<<"$deb_files") files as the .deb (units in /usr/lib/systemd, changelog in doc)"
    else ko "rpm and deb differ: $(diff <(echo "$deb_files") <(echo "$rpm_compare") | head)"; fi
    rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" 2>/dev/null | grep -q '^cn /etc/dns64d/dns64d.toml$' \
        && ok "/etc/dns64d/dns64d.toml is %config(noreplace)" \
        || ko "conffile flags: $(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" | grep etc)"
    requires=$(rpm -qp --requires "$rpm" 2>/dev/null | tr '\n' ' ')
    grep -q 'lib.*\.so' <<<"$requires" && ko "RPM requires shared libraries: $requires" \
        || ok "RPM requires no shared library (static binary): $requires"
    scripts=$(rpm -qp --scripts "$rpm" 2>/dev/null)
    grep -q 'useradd --system' <<<"$scripts" && grep -q 'check-config' <<<"$scripts" && grep -q 'userdel dns64d' <<<"$scripts" \
        && ok "RPM scriptlets: user, enable/start only with a valid config, cleanup" || ko "RPM scriptlets: $scripts"
else cat "$WORK/rpm.err"; ko "rpm -qlvp"; fi

# ---------------------------------------------------------------- static binary
section "static binary $MUSL_BIN"
if [[ -x $MUSL_BIN ]]; then
    desc=$(file -b "$MUSL_BIN")
    if [[ $desc =~ static(-pie)?\ linked|statically\ linked ]] && ! readelf -lW "$MUSL_BIN" | grep -q INTERP; then
        ok "statically linked, no ELF interpreter"
    else ko "not static: $desc"; fi
    if TEST_DNS64D_BINARY=$REPO/$MUSL_BIN cargo test --locked -p dns64d --test integration binary_smoke >"$WORK/smoke.log" 2>&1; then
        ok "the smoke subset against it: $(grep -E '^test result' "$WORK/smoke.log" | head -1)"
    else tail -30 "$WORK/smoke.log"; ko "the smoke subset against the static binary"; fi
else ko "no static binary at $MUSL_BIN"; fi

# ---------------------------------------------------------------- archives
section "archives"
tarball=$(ls "$OUT"/dns64d-*-x86_64-linux-musl.tar.gz | head -1)
list=$(tar -tzf "$tarball")
missing=()
for f in dns64d systemd/dns64d.service systemd/dns64d-shim.service systemd/dns64d.toml examples/quickstart.toml \
    examples/shim.toml README.md man/dns64d.8 man/dns64d.toml.5; do
    grep -qE "^[^/]+/$f$" <<<"$list" || missing+=("$f")
done
((${#missing[@]} == 0)) && ok "$(basename "$tarball") ($(du -h "$tarball" | cut -f1)): binary, units, example configs, README, man pages" \
    || ko "$(basename "$tarball") lacks: ${missing[*]}"
tar -xzf "$tarball" -C "$WORK" && "${CLEAN_ENV[@]}" "$WORK"/dns64d-*/dns64d --check-config --config "$WORK"/dns64d-*/systemd/dns64d.toml >/dev/null \
    && ok "the tarball's binary accepts the tarball's config" || ko "the tarball's binary or config"
zipfile=$(ls "$OUT"/dns64d-*-x86_64-windows.zip | head -1)
list=$(python3 -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$zipfile")
missing=()
for f in dns64d.exe shim.toml README.txt; do grep -qE "^[^/]+/$f$" <<<"$list" || missing+=("$f"); done
((${#missing[@]} == 0)) && ok "$(basename "$zipfile") ($(du -h "$zipfile" | cut -f1)): dns64d.exe, shim.toml, README.txt (service notes)" \
    || ko "$(basename "$zipfile") lacks: ${missing[*]}"
if [[ -f xp/Cargo.toml ]]; then
    for z in "$OUT"/dns64d-xp-*.zip; do
        [[ -f $z ]] && python3 -c 'import sys, zipfile; n = zipfile.ZipFile(sys.argv[1]).namelist(); sys.exit(not all(any(x.endswith(f) for x in n) for f in ("/dns64d-xp.exe", "/README.txt")))' "$z" \
            && ok "$(basename "$z") ($(du -h "$z" | cut -f1)): dns64d-xp.exe, README.txt" || ko "XP zip $z: no dns64d-xp.exe or README.txt"
    done
fi
(cd "$OUT" && sha256sum --quiet -c SHA256SUMS) && ok "SHA256SUMS matches" || ko "SHA256SUMS"

# ---------------------------------------------------------------- scripts
section "scripts"
if command -v shellcheck >/dev/null; then
    out=$(shellcheck -S warning "$HERE/package.sh" "$HERE/package-check.sh" 2>&1 \
        && shellcheck -s sh -S warning "$HERE"/package/debian/{postinst,prerm,postrm} "$HERE"/package/rpm/*.sh 2>&1) \
        && ok "package.sh, package-check.sh, the maintainer scripts and scriptlets: shellcheck (warnings) clean" \
        || ko "shellcheck: $out"
else ko "shellcheck is not installed (deploy/check.sh installs it)"; fi

printf '\n%d passed, %d failed\n' "$pass" "$fail"
((fail == 0))
