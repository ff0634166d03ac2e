# The test places for cross-built wheels (tests/integration/test_cross_elf.py):
# qemu-user with arm64 bullseye/bookworm rootfs, and a musl CPython. The
# packages are installed here, in the foreground (apt's lock); the places are
# made in the background, once per machine (cached in
# /var/cache/wheelfarm/emulation by recipe), while the suite runs: the tests
# that need a place wait for its ".wheelfarm-ready" file (build/testplaces).
# Sourced by .ci/run: CLEANUP comes from there.
# The three places are made side by side (each is mostly one emulated or
# compiling process); the tests that need them run last (tests/conftest.py).
bash images/emulation/install.sh
for place in aarch64-bullseye aarch64-bookworm musl-cp311; do
    log="$(mktemp "/tmp/wheelfarm-emulation-$place.XXXXXX")"
    bash images/emulation/prepare.sh "$place" >"$log" 2>&1 &
    CLEANUP+=("kill $! 2>/dev/null; cat $log; rm -f $log")
done
