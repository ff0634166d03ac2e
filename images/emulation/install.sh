#!/usr/bin/env bash
# The Debian packages the emulated test places need (root): qemu-user and
# binfmt for aarch64, debootstrap for the rootfs, musl-tools and dpkg-dev for
# the musl CPython, and a deb-src entry so `apt-get source` finds CPython.
set -euo pipefail
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
need=()
for pkg in qemu-user-static binfmt-support debootstrap musl-tools dpkg-dev patchelf; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
updated=""
if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    cat > /etc/apt/sources.list.d/wheelfarm-src.sources <<SRC
Types: deb-src
URIs: $MIRROR
Suites: $(. /etc/os-release && echo "$VERSION_CODENAME")
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq; updated=1
fi
if [ ${#need[@]} -gt 0 ]; then
    [ -n "$updated" ] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# binfmt-support's service does not start in a container: register qemu here.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
