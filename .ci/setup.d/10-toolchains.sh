# Compilers and tools for real builds: gcc/g++, git, make, and cargo for the
# Rust fixture (rustup's toolchain where the machine has one, else Debian's).
[ -d "$HOME/.cargo/bin" ] && export PATH="$PATH:$HOME/.cargo/bin"
apt_install gcc g++ git make binutils
command -v cargo >/dev/null || apt_install cargo
# The tests' farms share one cache (tests/conftest.py; by default the checkout's,
# which a fresh clone has empty). CI gives them this user's own wheelfarm cache,
# the one every farm uses by default: it outlives the clone, so a later run on the
# machine finds zig's compiled runtimes and the build environments warm.
export WHEELFARM_CACHE_DIR="${WHEELFARM_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/wheelfarm}"
mkdir -p "$WHEELFARM_CACHE_DIR"
