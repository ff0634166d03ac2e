"""Why a job failed, for people: a :class:`FailureCause` read from the failing
step, its error and its part of the log.

The step (:class:`FailureKind`) decides retries; the cause groups failures on
the dashboard and in notifications, so that forty jobs that miss one header
read as one problem. The patterns are the messages of the tools the pipeline
runs (gcc, clang/zig, GNU ld and lld, pkg-config, pip, auditwheel); when none
matches, the step alone decides.
"""

from __future__ import annotations

import re

from wheelfarm.build import errorlines
from wheelfarm.errors import FailureCause, FailureKind

_MISSING = re.compile(
    r"fatal error: [^\n]*: No such file or directory"  # gcc: a header
    r"|fatal error: '[^'\n]+' file not found"  # clang: a header
    r"|cannot find -l\S+"  # GNU ld
    r"|unable to find library -l\S+"  # lld
    r"|unable to find (?:dynamic |static )?system library"  # zig
    r"|library not found for -l\S+"  # ld64
    r"|Package '?[^'\s]+'?,? (?:required by [^\n]*, )?(?:was )?not found"  # pkg-config
    r"|No package '[^']+' found"  # pkg-config's older wording
    r"|Could NOT find \w+"  # CMake's find_package
)
_NETWORK = re.compile(
    r"Could not find a version that satisfies the requirement"
    r"|No matching distribution found for"
    r"|Temporary failure in name resolution|Name or service not known"
    r"|Connection (?:refused|reset|timed out)|Network is unreachable"
    r"|Max retries exceeded|ReadTimeoutError|ConnectTimeout"
    r"|HTTP 5\d\d|timed out: https?://|failed: https?://"
)
_TOO_NEW = re.compile(r"does not satisfy [^:\n]*:.*GLIBC_|needs glibc \d|too-recent versioned "
                      r"symbols|GLIBC_\d+(?:\.\d+)+ (?:not found|is newer)")
# What is left when no file:line error names the cause (build.errorlines reads those).
_COMPILER = re.compile(r"error: command '[^']+' failed|collect2: error:|ld(?:\.lld)?: error:")

# Steps whose failure says nothing about the project: the worker, the farm, a bug.
_INFRASTRUCTURE = frozenset({FailureKind.TOOLCHAIN, FailureKind.OUTPUT, FailureKind.WORKER,
                             FailureKind.LEASE_EXPIRED, FailureKind.LOST, FailureKind.INTERNAL})


def classify(kind: FailureKind | None, reason: str = "", log: str = "") -> FailureCause | None:
    """The cause of a failure of step ``kind`` from its ``reason`` and ``log`` (the
    failing step's part); None for a job that never ran (a needed job failed,
    the build was stopped): it has no cause of its own."""
    if kind in (FailureKind.NEEDS, FailureKind.INTERRUPTED):
        return None
    if kind is FailureKind.TIMEOUT:
        return FailureCause.TIMEOUT
    if kind in _INFRASTRUCTURE:
        return FailureCause.INFRASTRUCTURE
    if kind in (FailureKind.TEST, FailureKind.PARITY):
        return FailureCause.TEST
    text = f"{reason}\n{log}"
    if kind is FailureKind.REPAIR:
        return FailureCause.TOO_NEW_SYMBOL if _TOO_NEW.search(text) else FailureCause.OTHER
    if kind is FailureKind.SOURCE:
        return FailureCause.NETWORK if _NETWORK.search(text) else FailureCause.OTHER
    if kind is FailureKind.BUILD:
        # A missing header makes the compiler fail too: look for it first.
        if _MISSING.search(text):
            return FailureCause.MISSING_DEPENDENCY
        if errorlines.first_errors(text, limit=1) or _COMPILER.search(text):
            return FailureCause.COMPILER
        if _NETWORK.search(text):  # build requirements that could not be downloaded
            return FailureCause.NETWORK
    return FailureCause.OTHER
