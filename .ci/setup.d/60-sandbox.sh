# Build sandbox: host and zig jobs run project code (before-build, the PEP 517
# build, tests) under bubblewrap; tests/security/test_sandbox_*.py need it.
apt_install bubblewrap
