#!/usr/bin/env bash
# Prepares the places where cross-built wheels are run on this machine:
#
#   aarch64-bullseye  an arm64 Debian bullseye rootfs (CPython 3.9) run under qemu-user
#   aarch64-bookworm  the same for bookworm (CPython 3.11)
#   musl-cp311        a CPython 3.11 linked against musl, built from Debian's source
#
# Each is made once and kept under $WHEELFARM_EMULATION_CACHE (default
# /var/cache/wheelfarm/emulation) in a directory named after its recipe (the
# suite, the package list, the mirror, FORMAT): a change to any of them makes
# a new one. A finished place has a ".wheelfarm-ready" file; the test
# fixtures wait for it. Running the places needs no root; making them does
# (chroot for debootstrap's second stage, apt-get for musl-tools).
#
#   images/emulation/prepare.sh [aarch64-bullseye|aarch64-bookworm|musl-cp311 ...]
#
# Writes one log per place beside it. Environment: DEBIAN_MIRROR.
set -euo pipefail

CACHE="${WHEELFARM_EMULATION_CACHE:-/var/cache/wheelfarm/emulation}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Part of every place's key: raise it when the way a place is made changes.
FORMAT=1
# python3-venv: `python -m venv`. bullseye also gets gcc, g++ and python3-dev
# for the native (emulated) builds `python -m bench cross` compares zig with;
# every package makes the emulated second stage slower.
AARCH64_PACKAGES="python3,python3-venv"
AARCH64_DEV_PACKAGES="python3-dev,gcc,g++,libc6-dev"
packages() {  # suite
    if [ "$1" = bullseye ]; then echo "$AARCH64_PACKAGES,$AARCH64_DEV_PACKAGES"
    else echo "$AARCH64_PACKAGES"; fi
}
MUSL_SOURCE="python3.11"
# Every stdlib module is linked into the interpreter, listed by
# Modules/Setup.local (a copy of the Setup.stdlib configure writes): left to
# setup.py, Debian's tree builds none of them with musl-gcc.
MUSL_MODULES="static Setup.local no-pkg-config"

key() { printf '%s\n' "$FORMAT" "$@" | sha256sum | cut -c1-16; }

# The directory a place lives in; printed by `prepare.sh --where NAME`.
where() {
    case "$1" in
        aarch64-*) echo "$CACHE/$1-$(key "${1#aarch64-}" "$(packages "${1#aarch64-}")" "$MIRROR")" ;;
        musl-cp311) echo "$CACHE/$1-$(key "$MUSL_SOURCE" "$MUSL_MODULES")" ;;
        *) echo "unknown place $1" >&2; return 2 ;;
    esac
}

enable_binfmt() {
    # debootstrap's second stage runs arm64 programs in a chroot: the kernel
    # must hand them to qemu. binfmt-support's service does not start here.
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || {
        echo "qemu-aarch64 is not registered with binfmt_misc" >&2; return 1; }
}

make_aarch64() {  # suite dest
    local suite="$1" dest="$2" tmp
    enable_binfmt
    tmp="$(mktemp -d "$CACHE/.aarch64-$suite.XXXXXX")"
    echo "debootstrap --foreign arm64 $suite"
    debootstrap --arch=arm64 --foreign --variant=minbase --include="$(packages "$suite")" \
        "$suite" "$tmp" "$MIRROR"
    echo "second stage under emulation"
    chroot "$tmp" /debootstrap/debootstrap --second-stage
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
    chmod 755 "$tmp"
    mv "$tmp" "$dest"
}

make_musl() {  # dest
    local dest="$1" tmp src
    tmp="$(mktemp -d "$CACHE/.musl.XXXXXX")"
    trap "rm -rf '$tmp'" EXIT  # expanded now: $tmp is local
    # Debian's own CPython source: apt-get source needs a deb-src entry.
    if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && \
       ! grep -qs '^deb-src' /etc/apt/sources.list; then
        cat > /etc/apt/sources.list.d/wheelfarm-src.sources <<SRC
Types: deb-src
URIs: $MIRROR
Suites: $(. /etc/os-release && echo "$VERSION_CODENAME")
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        apt-get update -qq
    fi
    (cd "$tmp" && apt-get source --download-only -qq "$MUSL_SOURCE" && \
        dpkg-source --no-check -x ./*.dsc src >/dev/null)
    src="$tmp/src"
    # musl-gcc answers --print-multiarch as the host's gcc (x86_64-linux-gnu),
    # which configure finds contradicts the musl triplet: a wrapper says nothing.
    cat > "$tmp/musl-cc" <<'CC'
#!/bin/sh
[ "$1" = "--print-multiarch" ] && exit 0
exec musl-gcc "$@"
CC
    chmod +x "$tmp/musl-cc"
    # musl-gcc compiles against musl's headers only: the modules that need
    # other libraries (ssl, zlib, ffi ...) are left out; tests do not need them.
    # PKG_CONFIG=false: pkg-config would report the host's (glibc) zlib, libffi ...
    # as usable; musl-gcc's own header checks find them missing, as they are.
    (cd "$src" && MODULE_BUILDTYPE=static PKG_CONFIG=false ./configure -q CC="$tmp/musl-cc" \
        --prefix="$tmp/python" \
        --without-ensurepip --disable-test-modules && cp Modules/Setup.stdlib Modules/Setup.local && \
        make -s -j"$(nproc)" && make -s install) >"$tmp/build.log" 2>&1 \
        || { tail -30 "$tmp/build.log"; return 1; }
    mv "$tmp/python" "$tmp.python"
    rm -rf "$tmp"
    mv "$tmp.python" "$dest"
}

if [ "${1:-}" = "--where" ]; then where "$2"; exit; fi
if [ "${1:-}" = "--make" ]; then  # one place, in its own process so set -e holds
    case "$2" in
        aarch64-*) make_aarch64 "${2#aarch64-}" "$3" ;;
        musl-cp311) make_musl "$3" ;;
    esac
    date -u +%FT%TZ > "$3/.wheelfarm-ready"
    exit 0
fi
mkdir -p "$CACHE"
status=0
for place in "${@:-aarch64-bullseye aarch64-bookworm musl-cp311}"; do
    for name in $place; do
        dest="$(where "$name")"
        if [ -e "$dest/.wheelfarm-ready" ]; then echo "$name: ready ($dest)"; continue; fi
        start=$SECONDS
        (
            exec 9>"$dest.lock"
            flock 9
            [ -e "$dest/.wheelfarm-ready" ] && exit 0
            rm -rf "$dest"
            bash "$0" --make "$name" "$dest"
        ) >"$dest.log" 2>&1 && echo "$name: made in $((SECONDS - start)) s ($dest)" \
            || { echo "$name: failed, see $dest.log" >&2; tail -5 "$dest.log" >&2; status=1; }
    done
done
exit $status
