# Podman as the container engine (Docker API service on a socket in a temp
# dir) and the local bullseye build image, for the container executor's tests.
# Sourced by .ci/run: apt_install and CLEANUP come from there.
apt_install podman runc conmon netavark uidmap fuse-overlayfs debootstrap ca-certificates

# crun fails on these machines' cgroup setup and the default ulimits cannot be
# set inside them: runc and no default ulimits.
mkdir -p /etc/containers
if ! grep -q 'runtime = "runc"' /etc/containers/containers.conf 2>/dev/null; then
    cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
CONF
fi

WHEELFARM_PODMAN_DIR="$(mktemp -d /tmp/wheelfarm-podman.XXXXXX)"
# Started from its own directory: conmon leaves files (an "oom" marker after a
# memory-limit kill) in the service's working directory, not the checkout.
(cd "$WHEELFARM_PODMAN_DIR" && exec podman system service --time=0 \
    "unix://$WHEELFARM_PODMAN_DIR/podman.sock" >"$WHEELFARM_PODMAN_DIR/service.log" 2>&1) &
WHEELFARM_PODMAN_PID=$!
CLEANUP+=("kill $WHEELFARM_PODMAN_PID; wait $WHEELFARM_PODMAN_PID 2>/dev/null; rm -rf $WHEELFARM_PODMAN_DIR")
for _ in $(seq 1 100); do
    [ -S "$WHEELFARM_PODMAN_DIR/podman.sock" ] && break
    sleep 0.1
done
[ -S "$WHEELFARM_PODMAN_DIR/podman.sock" ] || { cat "$WHEELFARM_PODMAN_DIR/service.log"; exit 1; }
export DOCKER_HOST="unix://$WHEELFARM_PODMAN_DIR/podman.sock"

# Once per machine: the rootfs tarball is kept in /var/cache/wheelfarm and
# the image in podman's storage; the script returns at once when both exist.
bash images/local/build.sh
