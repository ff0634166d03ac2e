# ShellCheck: actionlint (a dev dependency) checks the run: scripts of the
# example GitHub workflows with it (tests/integration/test_ci_workflow.py).
apt_install shellcheck
