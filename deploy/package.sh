#!/usr/bin/env bash
# deploy/package.sh -- build every release artifact of dns64d into target/package/.
#
#   bash deploy/package.sh
#
# target/package/
#   dns64d_VERSION-1_amd64.deb               cargo-deb: the release binary in /usr/sbin, the
#                                            config /etc/dns64d/dns64d.toml (conffile), both
#                                            units, man pages, README, examples, changelog
#   dns64d-VERSION-1.x86_64.rpm              cargo-generate-rpm: the same files, with the static
#                                            binary (no glibc version to match on RHEL/Fedora)
#   dns64d-VERSION-x86_64-linux-musl.tar.gz  the static binary, units, example configs, README,
#                                            man pages
#   dns64d-VERSION-x86_64-windows.zip        dns64d.exe (Windows 10 and later), example config,
#                                            install-service.ps1 and the service notes
#   dns64d-xp-VERSION-TARGET.zip             the XP relay (i686, x86_64) and its install notes
#                                            (deploy/windows-xp/), when xp/Cargo.toml exists
#   man/dns64d.8, man/dns64d.toml.5          the man pages: dns64d.8 from the clap definition
#                                            (dns64d --write-man-pages), dns64d.toml.5 from
#                                            README's option table (package/toml-man.py)
#   SHA256SUMS
#
# Builds (cargo, --locked, release): the host binary, x86_64-unknown-linux-musl,
# x86_64-pc-windows-gnu and the XP relay; each is a no-op when already up to date. Needs
# cargo-deb and cargo-generate-rpm (cargo install --locked), musl-tools, gcc-mingw-w64-x86-64,
# zip, python3 and groff; installs nothing itself (.ci/run does) and names what is missing.
# Prints each artifact with its size; exit 1 on any failure.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
cd "$REPO"
OUT=target/package
STAGE=$OUT/stage
MUSL=x86_64-unknown-linux-musl
WINDOWS=x86_64-pc-windows-gnu

die() { echo "package.sh: $*" >&2; exit 1; }
need() { # need COMMAND HOW-TO-INSTALL
    command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}
need cargo-deb "cargo install --locked cargo-deb"
need cargo-generate-rpm "cargo install --locked cargo-generate-rpm"
need musl-gcc "apt-get install musl-tools (and rustup target add $MUSL)"
need x86_64-w64-mingw32-gcc "apt-get install gcc-mingw-w64-x86-64 (and rustup target add $WINDOWS)"
need zip "apt-get install zip"
need groff "apt-get install groff-base"
need python3 "apt-get install python3"

# dns64d reads every DNS64D_* environment variable as configuration: run it without them.
CLEAN_ENV=(env)
for v in $(compgen -e); do [[ $v == DNS64D_* ]] && CLEAN_ENV+=(-u "$v"); done

echo "== build"
cargo build --locked --release
cargo build --locked --release --target "$MUSL"
cargo build --locked --release --target "$WINDOWS"
VERSION=$("${CLEAN_ENV[@]}" target/release/dns64d --version | awk '{ print $2 }')
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "cannot read the version from dns64d --version: '$VERSION'"
echo "dns64d $VERSION"

rm -rf "$OUT"
mkdir -p "$STAGE/man" "$OUT/man"

echo "== man pages"
"${CLEAN_ENV[@]}" target/release/dns64d --write-man-pages "$OUT/man"
python3 "$HERE/package/toml-man.py" README.md "$VERSION" >"$OUT/man/dns64d.toml.5"
for page in "$OUT"/man/*.[0-9]; do
    # -ww: every groff warning; a page with one fails here, not in front of an operator
    warnings=$(groff -man -ww -z "$page" 2>&1) || die "groff failed on $page: $warnings"
    [[ -z $warnings ]] || die "groff warns about $page: $warnings"
    gzip -9n <"$page" >"$STAGE/man/$(basename "$page").gz"
done
# Every key of README's option table (the one under "## Configuration": the XP relay's key
# table earlier in README has the same header) has its entry in dns64d.toml(5).
keys=$(awk '/^## Configuration$/ {c = 1} c && /^\| key \| type \| default \| meaning \|$/ {t = 1} t && /^$/ {exit} t' \
    README.md | tail -n +3 | grep -c '^|')
entries=$(grep -c '^\.TP' "$OUT/man/dns64d.toml.5")
# (FILES adds two .TP entries)
((entries == keys + 2)) || die "dns64d.toml.5 has $((entries - 2)) key entries, README's table $keys rows"
echo "dns64d.8 from clap, dns64d.toml.5 with README's $keys keys; groff -ww clean"

echo "== staged files"
for unit in dns64d.service dns64d-shim.service; do
    # The packaged units run /usr/sbin/dns64d; the comment block before [Unit] describes a
    # manual install, so it is replaced.
    {
        echo "# Installed by the dns64d package. Configuration: /etc/dns64d/dns64d.toml (dns64d.toml(5));"
        echo "# local changes: systemctl edit $unit"
        sed -n '/^\[Unit\]/,$p' "$HERE/systemd/$unit" | sed 's|/usr/local/bin/dns64d|/usr/sbin/dns64d|g'
    } >"$STAGE/$unit"
    grep -q /usr/local "$STAGE/$unit" && die "$STAGE/$unit still names /usr/local"
done
cp "target/$MUSL/release/dns64d" "$STAGE/dns64d-static"
strip "$STAGE/dns64d-static"
static_size=$(stat -c %s "$STAGE/dns64d-static")

echo "== Debian package (cargo-deb)"
cargo deb --no-build --output "$OUT/" >/dev/null

echo "== RPM (cargo-generate-rpm)"
cargo generate-rpm --output "$OUT/" >/dev/null

echo "== Linux tarball (static $MUSL binary)"
name=dns64d-$VERSION-x86_64-linux-musl
dir=$STAGE/$name
mkdir -p "$dir/systemd" "$dir/examples/zones" "$dir/man"
cp "$STAGE/dns64d-static" "$dir/dns64d"
cp "$HERE"/systemd/dns64d.service "$HERE"/systemd/dns64d-shim.service "$HERE"/systemd/dns64d.toml "$dir/systemd/"
cp examples/*.toml "$dir/examples/"; cp examples/zones/* "$dir/examples/zones/"
cp "$OUT"/man/*.[0-9] "$dir/man/"
cp README.md "$dir/"
tar --sort=name --owner=0 --group=0 --numeric-owner -C "$STAGE" -czf "$OUT/$name.tar.gz" "$name"

echo "== Windows zip ($WINDOWS)"
name=dns64d-$VERSION-x86_64-windows
dir=$STAGE/$name
mkdir -p "$dir"
cp "target/$WINDOWS/release/dns64d.exe" "$dir/"
x86_64-w64-mingw32-strip "$dir/dns64d.exe"
cp examples/shim.toml "$dir/shim.toml"            # install-service.ps1 copies it beside the binary
cp "$HERE"/windows/*.ps1 "$dir/" 2>/dev/null || true   # the service install script, while there is one
sed 's/$/\r/' "$HERE/windows/README.md" >"$dir/README.txt"
(cd "$STAGE" && zip -qrX "../$name.zip" "$name")

if [[ -f xp/Cargo.toml ]]; then
    echo "== Windows XP relay (xp/)"
    if [[ -f xp/build.sh ]]; then
        bash xp/build.sh        # the relay's own release settings (panic=abort, LTO) and PE checks
    else
        for target in i686-pc-windows-gnu x86_64-pc-windows-gnu; do
            cargo build --locked --release -p dns64d-xp --features exe --target "$target"
        done
    fi
    for target in i686-pc-windows-gnu x86_64-pc-windows-gnu; do
        name=dns64d-xp-$VERSION-$target
        dir=$STAGE/$name
        mkdir -p "$dir"
        cp "target/$target/release/dns64d-xp.exe" "$dir/"
        # the install notes (README.md as README.txt, CRLF) and any example dns64d-xp.conf
        for doc in "$HERE"/windows-xp/README.md xp/README.md "$HERE"/windows-xp/*.conf xp/*.conf; do
            [[ -f $doc ]] || continue
            case $doc in
                *.md) sed 's/$/\r/' "$doc" >"$dir/README.txt" ;;
                *) sed 's/$/\r/' "$doc" >"$dir/$(basename "$doc")" ;;
            esac
        done
        (cd "$STAGE" && zip -qrX "../$name.zip" "$name")
    done
else
    echo "== Windows XP relay: skipped (no xp/Cargo.toml in this tree)"
fi

rm -rf "$STAGE"
(cd "$OUT" && sha256sum -- *.deb *.rpm *.tar.gz *.zip man/* >SHA256SUMS)
echo "== artifacts ($OUT)"
(cd "$OUT" && for f in *.deb *.rpm *.tar.gz *.zip man/*; do
    printf '%-48s %9s bytes  %s\n' "$f" "$(stat -c %s "$f")" "$(du -h "$f" | cut -f1)"
done)
printf '%-48s %9s bytes  (the static binary in the tarball and the RPM, stripped)\n' "dns64d ($MUSL)" "$static_size"
