"""Executors: *where* a job's commands run and with which toolchain.

The pipeline (build, repair, check, test) is written once in
``wheelfarm.pipeline``; an executor only supplies a :class:`Place` to run its
commands in. Host-side executors (``host``, ``zig``) share the host file
system, so paths need no translation.
"""

from __future__ import annotations

import importlib
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from ..errors import ConfigError
from ..targets import Target


@dataclass(frozen=True)
class JobContext:
    """What an executor needs to know about one job."""

    target: Target
    python: str  # "cp312"
    work_dir: Path  # scratch space owned by this job
    cache_dir: Path  # shared, persistent: <farm>/.wheelfarm/cache
    log: IO[str]
    timeout: float | None = None


class Place(Protocol):
    """A place where a job's commands run (the host, a container, a remote Mac)."""

    # Whether a build here can reach the network; recorded in provenance.
    network: bool

    def python(self, tag: str) -> str:
        """Path of the interpreter for ``cpXY`` in this place; ConfigError if absent."""
        ...

    def toolchain_env(self) -> dict[str, str]:
        """Environment that selects the compilers (CC, CXX, LDSHARED, cargo linker, ...)."""
        ...

    def auditwheel(self) -> list[str]:
        """Command prefix that runs auditwheel in this place."""
        ...

    def pip(self) -> list[str]:
        """Command prefix of a pip that installs into another environment (``--python``)."""
        ...

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command; ``env`` is added to the place's base environment."""
        ...


class Executor(Protocol):
    name: str

    def check(self, target: Target) -> None:
        """Raise ConfigError if this executor cannot build ``target`` at all."""
        ...

    def available_pythons(self) -> list[str]:
        """Python tags (``cp312``) this executor can build for."""
        ...

    def toolchain_id(self, target: Target) -> str:
        """A stable description of the toolchain (versions), for content keys."""
        ...

    def prepare(self, target: Target, cache_dir: Path, log: IO[str]) -> None:
        """One-time, idempotent, thread-safe set-up shared by every job of ``target``
        (compile zig's libc for it, pull an image); the pipeline shows it as a step."""
        ...

    def open(self, ctx: JobContext) -> AbstractContextManager[Place]:
        """Prepare a place for one job and clean it up afterwards."""
        ...


# name -> "module:class", imported on first use so that an executor's
# dependencies (an SDK, a toolchain package) load only when it is chosen.
REGISTRY: dict[str, str] = {
    "host": "wheelfarm.executors.host:HostExecutor",
    "zig": "wheelfarm.executors.zig:ZigExecutor",
}


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str, **options: object) -> Executor:
    try:
        module_name, _, class_name = REGISTRY[name].partition(":")
    except KeyError:
        raise ConfigError(
            f"unknown executor {name!r}; expected one of: {', '.join(names())}"
        ) from None
    cls = getattr(importlib.import_module(module_name), class_name)
    executor: Executor = cls(**options)
    return executor
