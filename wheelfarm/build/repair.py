"""Repairing wheels with auditwheel, checked before and after against the policy."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO

from wheelfarm.build import macrepair, wheelscan
from wheelfarm.build.executors import Place
from wheelfarm.build.policy import (
    Violation,
    check_policy,
    claimed_targets,
    evaluate,
    policy_for,
    policy_to_check,
    policy_violations,
    raise_for,
)
from wheelfarm.build.wheelscan import check_binary, wheel_platform_tags
from wheelfarm.errors import CommandError, RepairError
from wheelfarm.plan.targets import Target, host_arch

__all__ = ["Violation", "check_binary", "check_policy", "policy_violations", "repair",
           "wheel_platform_tags"]


# -- repair -------------------------------------------------------------------------------

def repair(place: Place, wheel: Path, target: Target, dest: Path,
           log: IO[str] | None = None) -> Path:
    """Repair ``wheel`` for ``target`` into ``dest`` and return the repaired wheel.

    ``linux`` targets: copied unchanged. ``manylinux``: symbols that vendoring
    cannot fix are reported by name before auditwheel runs; after
    ``auditwheel repair`` the result (vendored libraries too) is checked
    against the target and every manylinux tag auditwheel gave it, and
    removed again if it fails. ``manylinux-auto``: ``--plat auto``. macOS:
    delocate where it runs, the target's tag, the Mach-O check
    (:mod:`wheelfarm.build.macrepair`).
    """
    if target.is_macos:
        return macrepair.repair_macos(place, wheel, target, dest, log)
    dest.mkdir(parents=True, exist_ok=True)
    if not target.repairs:
        out = dest / wheel.name
        if not (out.exists() and out.samefile(wheel)):
            shutil.copy2(wheel, out)
        return out

    before = policy_to_check(target, wheel)
    elfs = wheelscan.scan_wheel(wheel)
    raise_for(wheel, before.tag if before else target.name,
               evaluate(elfs, before, target.arch, include_libraries=False))
    external = sorted({v.library for v in evaluate(elfs, before, target.arch)
                       if v.kind == "library"})

    # A private directory makes "the wheel auditwheel wrote" unambiguous.
    with tempfile.TemporaryDirectory(dir=dest, prefix=".repair-") as tmp:
        argv = [*as_target(place.auditwheel(), target), "repair",
                "--plat", target.auditwheel_plat, "-w", tmp, str(wheel)]
        try:
            result = place.run(argv, cwd=wheel.parent)
        except CommandError as exc:
            raise _repair_failed(wheel, exc.tail, external) from exc
        if result.returncode:
            raise _repair_failed(wheel, result.stdout or "", external)
        written = sorted(Path(tmp).glob("*.whl"))
        if len(written) != 1:
            raise RepairError(f"auditwheel repair of {wheel.name} wrote {len(written)} wheels")
        out = dest / written[0].name
        os.replace(written[0], out)

    try:
        _check_repaired(out, target)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


# auditwheel offers the policies of the machine it runs on (its --plat choices
# and policy set come from Architecture.detect() and Libc.detect()), so on an
# x86_64 glibc host it refuses manylinux_2_17_aarch64 and musllinux_1_2_x86_64.
# Run for another target, it is told that target's machine instead: the
# policies, the symbol checks and the tag are then the target's own.
_AS_TARGET = (
    "import sys\n"
    "from auditwheel.architecture import Architecture\n"
    "from auditwheel.libc import Libc\n"
    "arch, libc = Architecture(sys.argv[1]), Libc[sys.argv[2]]\n"
    "Architecture.detect = staticmethod(lambda *, bits=None: arch)\n"
    "Libc.detect = staticmethod(lambda: libc)\n"
    "sys.argv = ['auditwheel', *sys.argv[3:]]\n"
    "from auditwheel.main import main\n"
    "sys.exit(main())\n"
)


def as_target(command: list[str], target: Target) -> list[str]:
    """``command`` (``python -m auditwheel``) made to judge as ``target``'s machine
    when that is not the host's; other commands are returned unchanged."""
    if target.arch == host_arch() and target.libc == "glibc":
        return command
    if command[-2:] != ["-m", "auditwheel"]:
        return command
    libc = "MUSL" if target.libc == "musl" else "GLIBC"
    return [*command[:-2], "-c", _AS_TARGET, target.arch, libc]


def _repair_failed(wheel: Path, output: str, external: list[str]) -> RepairError:
    reason = last_meaningful_line(output)
    if "too-recent versioned symbols" in reason and external:
        # Our pre-check passed, so the culprit is a library auditwheel would vendor,
        # which only exists where the job runs.
        reason += f" (in a library to be vendored: {', '.join(external)} or its dependencies)"
    return RepairError(f"auditwheel repair of {wheel.name} failed: {reason}")


def _check_repaired(out: Path, target: Target) -> None:
    checks = claimed_targets(out)
    if target.kind in ("manylinux", "musllinux") and target not in checks:
        checks.append(target)
    if not checks:
        raise RepairError(f"auditwheel produced {out.name} without a manylinux tag")
    if any(t.libc != target.libc or t.arch != target.arch for t in checks):
        raise RepairError(f"auditwheel produced {out.name}, not a wheel for {target}")
    elfs = wheelscan.scan_wheel(out)
    for claimed in checks:
        policy = policy_for(claimed)
        raise_for(out, policy.tag, evaluate(elfs, policy, claimed.arch))


_LOG_PREFIX = re.compile(r"^(?:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]+:|[\w.-]+: error: )")


def last_meaningful_line(output: str) -> str:
    """The line of auditwheel's output that explains a failure, prefixes stripped.

    auditwheel ends with an argparse error ("prog: error: ..."), a traceback's
    last line, or a logging record ("INFO:auditwheel.main_repair:...").
    """
    for line in reversed(output.splitlines()):
        text = line.strip()
        if text and not text.startswith(("usage:", "+ ", "! ")):
            return _LOG_PREFIX.sub("", text).strip()
    return "no output"
