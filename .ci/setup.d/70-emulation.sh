# The test places for cross-built wheels (tests/integration/test_cross_elf.py):
# qemu-user with arm64 bullseye/bookworm rootfs, and a musl CPython. The
# packages are installed here, in the foreground (apt's lock); the places are
# made in the background, once per machine (cached in
# /var/cache/wheelfarm/emulation by recipe), while the suite runs: the tests
# that need a place wait for its ".wheelfarm-ready" file (build/testplaces).
# Sourced by .ci/run: CLEANUP comes from there.
bash images/emulation/install.sh
WHEELFARM_EMULATION_LOG="$(mktemp /tmp/wheelfarm-emulation.XXXXXX)"
bash images/emulation/prepare.sh >"$WHEELFARM_EMULATION_LOG" 2>&1 &
WHEELFARM_EMULATION_PID=$!
CLEANUP+=("kill $WHEELFARM_EMULATION_PID 2>/dev/null; cat $WHEELFARM_EMULATION_LOG; rm -f $WHEELFARM_EMULATION_LOG")
