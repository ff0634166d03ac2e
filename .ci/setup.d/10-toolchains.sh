# Compilers and tools for real builds: gcc/g++, git, make, and cargo for the
# Rust fixture (rustup's toolchain where the machine has one, else Debian's).
[ -d "$HOME/.cargo/bin" ] && export PATH="$PATH:$HOME/.cargo/bin"
apt_install gcc g++ git make binutils
command -v cargo >/dev/null || apt_install cargo
