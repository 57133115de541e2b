#!/usr/bin/env bash
# Builds pgnoti_<version>_<arch>.deb with dpkg-deb.
#
#   bash packaging/build-deb.sh                      # release build, Swift runtime linked statically
#   bash packaging/build-deb.sh --binary PATH        # package a binary built elsewhere (CI: the debug one)
#   bash packaging/build-deb.sh --output DIR         # where the .deb goes (default: .build-deb/)
#
# The package carries the binary, the systemd units, sysusers.d and tmpfiles.d, an example
# configuration under /etc/pgnoti/ (a conffile: upgrades keep the operator's copy), the man
# page generated from the ArgumentParser commands, and bash/zsh completions. postinst runs
# systemd-sysusers, systemd-tmpfiles --create and systemctl daemon-reload.
#
# With the Swift runtime linked statically the binary needs only what Debian ships: check with
#   ldd .build-deb/root/usr/bin/pgnoti     # listed in bench/README.md
set -euo pipefail
cd "$(dirname "$0")/.."
binary=""
output=.build-deb
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --output) output=$2; shift 2 ;;
        *) echo "usage: build-deb.sh [--binary PATH] [--output DIR]" >&2; exit 2 ;;
    esac
done
if [ -z "$binary" ]; then
    swift build -c release --static-swift-stdlib --product pgnoti
    binary=$(swift build -c release --static-swift-stdlib --show-bin-path)/pgnoti
    # The package promises a host without a Swift toolchain: refuse a binary that needs one.
    if ldd "$binary" | grep -q 'libswift\|libFoundation\|libdispatch'; then
        echo "build-deb.sh: $binary links the Swift runtime dynamically; not packaging it" >&2
        exit 1
    fi
fi
version=$("$binary" --version)
arch=$(dpkg --print-architecture)
root="$output/root"
rm -rf "$root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" \
    "$root/usr/lib/tmpfiles.d" "$root/etc/pgnoti" "$root/usr/share/man/man1" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/doc/pgnoti/examples"
install -m 0755 "$binary" "$root/usr/bin/pgnoti"
strip --strip-unneeded "$root/usr/bin/pgnoti" 2>/dev/null || true
for unit in systemd/*.service systemd/*.timer; do install -m 0644 "$unit" "$root/lib/systemd/system/"; done
install -m 0644 systemd/pgnoti.sysusers.conf "$root/usr/lib/sysusers.d/pgnoti.conf"
install -m 0644 systemd/pgnoti.tmpfiles.conf "$root/usr/lib/tmpfiles.d/pgnoti.conf"
install -m 0640 systemd/pgnoti.toml "$root/etc/pgnoti/pgnoti.toml"
install -m 0644 systemd/pgnoti.toml "$root/usr/share/doc/pgnoti/examples/pgnoti.toml"
install -m 0644 systemd/*.example "$root/usr/share/doc/pgnoti/examples/" 2>/dev/null || true
install -m 0644 systemd/pgnoti-alerts.yml "$root/usr/share/doc/pgnoti/examples/"
install -m 0644 README.md "$root/usr/share/doc/pgnoti/README.md"
python3 packaging/manpage.py "$root/usr/bin/pgnoti" | gzip -9n > "$root/usr/share/man/man1/pgnoti.1.gz"
"$root/usr/bin/pgnoti" --generate-completion-script bash > "$root/usr/share/bash-completion/completions/pgnoti"
"$root/usr/bin/pgnoti" --generate-completion-script zsh > "$root/usr/share/zsh/vendor-completions/_pgnoti"
cat > "$root/usr/share/doc/pgnoti/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pgnoti
Files: *
Copyright: the pgnoti developers
License: proprietary
COPYRIGHT
printf '/etc/pgnoti/pgnoti.toml\n' > "$root/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
size=$(du -sk "$root" --exclude=DEBIAN | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: pgnoti
Version: $version
Architecture: $arch
Maintainer: pgnoti developers <pgnoti@localhost>
Installed-Size: $size
Depends: libc6, libgcc-s1, libstdc++6, libsqlite3-0, libssl3, zlib1g, systemd
Section: net
Priority: optional
Description: Korean PG payment notifications into one durable ledger and queue
 Receives payment-result notifications from Korean payment gateways (Smartro,
 TomatoPay, Innopay; Toss files and Payup results too), stores each
 once in SQLite, answers the PG its exact ACK only after the commit, and files one
 JSON event per notification into a queue directory.
CONTROL
deb="$output/pgnoti_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
