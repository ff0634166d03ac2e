"""Whether this machine can run a target's wheels, and the words a job reports.

A job's test step installs the wheel and runs the recipe's tests wherever the
target's binaries run. Where nothing can (a macOS wheel cross-built on
Linux), the job still builds, repairs and checks the wheel, and says so in
exactly these words in the results table, the ``--json`` report, the
provenance and the index: "built and checked, not run", never "tested".

(The aarch64 and musllinux test places of issue 15 report through the same
two values.)
"""

from __future__ import annotations

import sys

from wheelfarm.plan.targets import Target, host_arch

TESTED = "tested"
NOT_RUN = "built and checked, not run"
STATUSES = (TESTED, NOT_RUN)


def not_run_reason(target: Target, platform: str | None = None,
                   machine: str | None = None) -> str | None:
    """Why a wheel for ``target`` cannot run here, or None when it can.

    ``platform``/``machine`` default to this process's (``sys.platform``,
    :func:`host_arch`); tests pass others.
    """
    platform = sys.platform if platform is None else platform
    machine = host_arch() if machine is None else machine
    if target.is_macos:
        if platform != "darwin":
            return f"a macOS binary cannot run on {platform}"
        mac_arch = "arm64" if machine == "aarch64" else machine
        if mac_arch != target.arch:
            # Rosetta could run x86_64 on arm64, but testing there would prove little
            # about the Intel Macs the wheel is for; a worker of that arch tests it.
            return f"a {target.arch} wheel is not tested on this {mac_arch} Mac"
    return None
