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
from wheelfarm.plan.targets import Target

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
        argv = [*place.auditwheel(), "repair", "--plat", target.auditwheel_plat,
                "-w", tmp, str(wheel)]
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


def _repair_failed(wheel: Path, output: str, external: list[str]) -> RepairError:
    reason = last_meaningful_line(output)
    if "too-recent versioned symbols" in reason and external:
        # Our pre-check passed, so the culprit is a library auditwheel would vendor,
        # which only exists where the job runs.
        reason += f" (in a library to be vendored: {', '.join(external)} or its dependencies)"
    return RepairError(f"auditwheel repair of {wheel.name} failed: {reason}")


def _check_repaired(out: Path, target: Target) -> None:
    checks = claimed_targets(out)
    if target.kind == "manylinux" and target not in checks:
        checks.append(target)
    if not checks:
        raise RepairError(f"auditwheel produced {out.name} without a manylinux tag")
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
