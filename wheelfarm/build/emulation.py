"""The job's test step for every target: on the host, in an emulated aarch64
rootfs (qemu-user), on a musl CPython, or nowhere ("built and checked, not run").

Inside an emulated rootfs pip cannot reach an index and would crawl under
emulation anyway, so the wheel and the test requirements are fetched and
unpacked on the host by the farm's pip (``--target``, with the place's
platform, Python version and ABI) into a venv made by the place's own
interpreter; then the recipe's imports and commands run there. Nothing is
installed by a pip of the place.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from wheelfarm.build import testplaces
from wheelfarm.build.executors import Place
from wheelfarm.build.steps import test_wheel
from wheelfarm.build.testplaces import NoPlace, RunPlace
from wheelfarm.errors import CommandError, TestFailure
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.recipe import TestSpec
from wheelfarm.plan.targets import Target


@dataclass(frozen=True)
class TestOutcome:
    """What the test step did: ``status`` is one of testplaces' statuses; ``note``
    says where it ran or why not."""

    status: testplaces.TestStatus
    note: str = ""


def run_tests(place: Place, target: Target, tags: Sequence[str], wheel: Path, spec: TestSpec,
              work: Path, log: IO[str], *, source: Path | None = None,
              index_url: str | None = None) -> TestOutcome:
    """Test ``wheel`` on each Python of ``tags`` wherever this machine can run it.

    Raises TestFailure when a test fails. When no Python has a place, the
    outcome is ``NOT_RUN`` with the reason; when some have one and some do not,
    the ones that ran decide and the note names the others.
    """
    if not spec.imports and not spec.commands:
        return TestOutcome(testplaces.NO_TESTS, "the recipe has no tests")
    ran: list[str] = []
    missing: list[str] = []
    for tag in tags:
        where = testplaces.where_to_run(target, tag)
        if isinstance(where, NoPlace):
            log.write(f"test on {tag}: {where.message}\n")
            missing.append(f"{tag}: {where.message}")
            continue
        if where.kind == "host":
            test_wheel(place, tag, wheel, spec, work, source=source)
            ran.append(f"{tag} on the host")
        else:
            log.write(f"test on {tag}: in {where.name} ({where.root})\n")
            _test_in(place, where, target, wheel, spec, work, source, index_url)
            ran.append(f"{tag} in {where.name}")
    if not ran:
        return TestOutcome(testplaces.NOT_RUN, "; ".join(missing))
    note = ", ".join(ran) + (f" ({'; '.join(missing)})" if missing else "")
    return TestOutcome(testplaces.TESTED, note)


def _test_in(place: Place, where: RunPlace, target: Target, wheel: Path, spec: TestSpec,
             work: Path, source: Path | None, index_url: str | None) -> None:
    assert where.root is not None
    tag = where.python
    major, minor = parse_tag(tag)
    venv = work / f"test-{tag}-{where.name}"
    shim = work / f"test-{tag}-{where.name}-bin"
    shim.mkdir(parents=True)
    if where.kind == "qemu":
        qemu = testplaces.qemu_binary(target.arch) or f"qemu-{target.arch}-static"
        # -L: the guest's loader and libraries come from the rootfs; the venv's
        # python is a symlink to the rootfs's interpreter, which finds the venv
        # by its own path (pyvenv.cfg), as on a real machine.
        base = [qemu, "-L", str(where.root)]
        interpreter = where.root / "usr" / "bin" / f"python{major}.{minor}"
    else:
        base = []
        interpreter = where.root / "bin" / f"python{major}.{minor}"
    place.run([*base, str(interpreter), "-m", "venv", "--without-pip", str(venv)], cwd=work)
    runner = [*base, str(venv / "bin" / "python")]
    for name in ("python", "python3", f"python{major}.{minor}"):
        script = shim / name
        script.write_text(f"#!/bin/sh\nexec {shlex.join(runner)} \"$@\"\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    site = venv / "lib" / f"python{major}.{minor}" / "site-packages"
    try:
        place.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                   "--no-compile", "--target", str(site), "--only-binary=:all:",
                   "--python-version", f"{major}.{minor}", "--implementation", "cp",
                   "--abi", tag, "--abi", "abi3", "--abi", "none",
                   *(f"--platform={p}" for p in platforms(target, where)),
                   *(["--index-url", index_url] if index_url else []),
                   str(wheel), *spec.requires], cwd=work)
    except CommandError as exc:
        raise TestFailure(f"installing {wheel.name} for {tag} in {where.name} failed: "
                          f"{_last(exc)}") from exc
    scratch = work / f"test-{tag}-{where.name}-cwd"
    scratch.mkdir()
    env = {"PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}",
           "VIRTUAL_ENV": str(venv)}
    checks = [[str(shim / "python"), "-c", f"import {name}"] for name in spec.imports]
    quoted = shlex.quote(str(source)) if source is not None else "{source}"
    checks += [["sh", "-c", command.replace("{source}", quoted)] for command in spec.commands]
    for argv in checks:
        try:
            place.run(argv, cwd=scratch, env=env, untrusted=True)
        except CommandError as exc:
            raise TestFailure(f"test on {tag} in {where.name} failed: {argv[-1]}: "
                              f"{_last(exc)}") from exc


# glibc of the Debian release in each emulated rootfs: the newest manylinux
# tag a dependency may carry there.
_SUITE_GLIBC = {"bullseye": 31, "bookworm": 36}


def platforms(target: Target, where: RunPlace) -> list[str]:
    """The platform tags pip may install for ``where`` (most specific first)."""
    arch = target.arch
    if where.kind == "musl":
        return [f"musllinux_1_{m}_{arch}" for m in (2, 1, 0)]
    newest = _SUITE_GLIBC.get(where.name.rpartition("-")[2], 17)
    tags = [f"manylinux_2_{g}_{arch}" for g in range(newest, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def _last(exc: CommandError) -> str:
    lines = [line for line in exc.tail.strip().splitlines() if line.strip()]
    return lines[-1] if lines else str(exc)
