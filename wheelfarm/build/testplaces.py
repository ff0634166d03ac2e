"""Where a target's wheels can run on this machine, for the job's test step.

A wheel built for the host's platform is tested on the host. A cross-built
wheel runs only where a place for its platform was prepared (aarch64 under
qemu-user in an emulated Debian rootfs, musllinux on a CPython linked against
musl; see :mod:`wheelfarm.build.emulation`); a macOS wheel only on a Mac of
its arch. Where there is none (macOS on Linux, or emulation not prepared) the
job is still built, repaired and checked, and its test status says so:
``NOT_RUN``, with the reason and how to prepare the place, never "tested".

The status strings are part of the reports (results table, ``--json``,
provenance, the index's per-wheel data), so they are fixed here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from wheelfarm.plan.targets import Target, host_arch

TESTED: Final = "tested"
NOT_RUN: Final = "built and checked, not run"
NO_TESTS: Final = "no tests"  # the recipe has no imports and no commands
TestStatus = Literal["tested", "built and checked, not run", "no tests"]

# Where images/emulation/prepare.sh keeps the prepared places.
EMULATION_CACHE_ENV = "WHEELFARM_EMULATION_CACHE"
DEFAULT_EMULATION_CACHE = Path("/var/cache/wheelfarm/emulation")
PREPARE_HINT = "run 'make emulation' as root (images/emulation/prepare.sh)"

# The Debian release that offers each CPython in the emulated aarch64 rootfs.
AARCH64_SUITES = {"cp39": "bullseye", "cp311": "bookworm"}
# The CPython versions a musl interpreter is built for.
MUSL_PYTHONS = ("cp311",)

PlaceKind = Literal["host", "qemu", "musl"]


@dataclass(frozen=True)
class RunPlace:
    """A place where a wheel can be installed and run: the host itself, an
    emulated rootfs (``root``) or a musl CPython prefix (``root``)."""

    kind: PlaceKind
    python: str  # cp39
    name: str = "host"  # "aarch64-bullseye", "musl-cp311": the place's name in prepare.sh
    root: Path | None = None


@dataclass(frozen=True)
class NoPlace:
    """Nowhere to run: ``reason`` says why, ``prepare`` how to make a place ("" = cannot)."""

    reason: str
    prepare: str = ""

    @property
    def message(self) -> str:
        tail = f"; to run it: {self.prepare}" if self.prepare else ""
        return f"{NOT_RUN}: {self.reason}{tail}"


Where = RunPlace | NoPlace


def emulation_cache() -> Path:
    return Path(os.environ.get(EMULATION_CACHE_ENV) or DEFAULT_EMULATION_CACHE)


def place_name(target: Target, python: str) -> str | None:
    """The name of the prepared place for a cross target's Python, if one is defined."""
    if target.kind == "musllinux":
        return f"musl-{python}" if python in MUSL_PYTHONS and target.arch == "x86_64" else None
    if target.arch == "aarch64" and python in AARCH64_SUITES:
        return f"aarch64-{AARCH64_SUITES[python]}"
    return None


READY = ".wheelfarm-ready"


def find_prepared(name: str, cache: Path | None = None) -> Path | None:
    """The newest prepared directory for place ``name`` (``name-<recipe key>``)."""
    base = cache or emulation_cache()
    try:
        found = [p for p in base.glob(f"{name}-*") if (p / READY).is_file()]
    except OSError:
        return None
    return max(found, key=lambda p: (p / READY).stat().st_mtime, default=None)


def host_mismatch(target: Target, platform: str | None = None,
                  machine: str | None = None) -> str | None:
    """Why this machine itself cannot run ``target``'s wheels, or None when it can.

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
    if platform != "linux":
        return f"a Linux binary cannot run on {platform}"
    if target.libc == "musl":
        return "a musl binary needs a musl CPython"
    if target.arch != machine:
        return f"an {target.arch} binary cannot run on this {machine} machine"
    return None


def is_host_target(target: Target) -> bool:
    """Whether the host itself runs this target's wheels."""
    return host_mismatch(target) is None


def where_to_run(target: Target, python: str) -> Where:
    """Where ``python``'s wheels for ``target`` can run here, or why nowhere."""
    if is_host_target(target):
        return RunPlace("host", python)
    if target.is_macos:
        return NoPlace(host_mismatch(target) or "not this Mac",
                       f"run the job on a {target.arch} Mac worker")
    name = place_name(target, python)
    if name is None and target.kind == "musllinux" and target.arch != "x86_64":
        return NoPlace(f"no musl CPython for {target.arch} here (musl places: x86_64 only)")
    if name is None:
        offered = (", ".join(MUSL_PYTHONS) if target.kind == "musllinux"
                   else ", ".join(AARCH64_SUITES))
        return NoPlace(f"no test place for {python} on {target} (offered: {offered})")
    root = find_prepared(name)
    if root is None:
        return NoPlace(f"{name} is not prepared", PREPARE_HINT)
    kind: PlaceKind = "musl" if target.kind == "musllinux" else "qemu"
    if kind == "qemu" and not qemu_binary(target.arch):
        return NoPlace(f"qemu-{target.arch}-static is not installed", PREPARE_HINT)
    loader = Path(f"/lib/ld-musl-{target.arch}.so.1")
    if kind == "musl" and not loader.exists():
        # The musl CPython is a dynamic executable: its loader comes from Debian's musl.
        return NoPlace(f"musl's loader {loader} is not installed", PREPARE_HINT)
    return RunPlace(kind, python, name, root)


def qemu_binary(arch: str) -> str | None:
    """The qemu-user binary for ``arch`` on PATH, if any."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        for name in (f"qemu-{arch}-static", f"qemu-{arch}"):
            path = Path(directory) / name
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return None


def preparing(name: str, cache: Path | None = None) -> bool:
    """Whether prepare.sh is making place ``name`` right now (it holds the lock)."""
    import fcntl

    for lock in (cache or emulation_cache()).glob(f"{name}-*.lock"):
        try:
            with open(lock, "rb") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
        except OSError:
            continue
    return False


def wait_prepared(name: str, timeout: float, cache: Path | None = None) -> Path | None:
    """The prepared place ``name``; while prepare.sh is still making it (CI starts
    it in the background), wait up to ``timeout`` seconds. None if it is not there."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = find_prepared(name, cache)
        if found is not None or not preparing(name, cache) or time.monotonic() > deadline:
            return found
        time.sleep(5)


def recorded(statement: bytes | None) -> tuple[str, str] | None:
    """(status, note) of the test step as a wheel's provenance statement records it
    (``runDetails.testResult``, see :mod:`wheelfarm.build.provenance`); None when
    it records none (no statement, or one from before the farm recorded it)."""
    import json

    if not statement:
        return None
    try:
        result = json.loads(statement)["predicate"]["runDetails"]["testResult"]
        return str(result["status"]), str(result.get("note", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def recorded_for(wheel: Path) -> tuple[str, str] | None:
    """The recorded test status of ``wheel`` from its provenance file beside it."""
    path = wheel.with_name(wheel.name + ".intoto.json")
    try:
        return recorded(path.read_bytes())
    except OSError:
        return None
