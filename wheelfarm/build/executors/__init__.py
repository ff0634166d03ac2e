"""Executors: *where* a job's commands run and with which toolchain.

The pipeline (build, repair, check, test) is written once in
``wheelfarm.build.pipeline``; an executor only supplies a :class:`Place` to run its
commands in. Host-side executors (``host``, ``zig``) share the host file
system, so paths need no translation.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from wheelfarm.errors import ConfigError
from wheelfarm.plan.targets import Target


@dataclass(frozen=True)
class JobContext:
    """What an executor needs to know about one job."""

    target: Target
    python: str  # "cp312"
    work_dir: Path  # scratch space owned by this job
    cache_dir: Path  # shared by the user's farms, persistent (FarmConfig.cache_dir)
    log: IO[str]
    timeout: float | None = None
    network: bool = False  # the recipe lets the build reach the network (build.network)
    profile: str = "release"  # the build profile (wheelfarm.plan.profiles.PROFILES)
    # The farm's own directories (config, state, logs) that a sandboxed build must not
    # see, and directories besides work_dir it may write (see executors.sandbox).
    private: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    # The farm's own generated tools (compiler wrappers); None: under cache_dir.
    tools_dir: Path | None = None


class Place(Protocol):
    """A place where a job's commands run (the host, a container, a remote Mac)."""

    # Whether a build here can reach the network; recorded in provenance.
    network: bool

    def python(self, tag: str) -> str:
        """Path of the interpreter for ``cpXY`` in this place; ConfigError if absent."""
        ...

    def interpreter_id(self, tag: str) -> str:
        """A stable identity of that interpreter (a host path, an image id and a path), for
        cache keys: environments made with one must never be used with another."""
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

    def install(self, env: Path, requirements: Sequence[str], work: Path, *,
                index_url: str | None = None) -> None:
        """Install ``requirements`` (requirement strings, or paths of local wheels) into the
        environment ``env``. With ``index_url`` they are a lock's pinned lines
        (``name==1.0 --hash=sha256:...``), installed exactly, from that index only.

        The one way packages get into an environment, so that a place without a
        network (a container) can fetch them on the host first.
        """
        ...

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        untrusted: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command; ``env`` is added to the place's base environment.

        ``untrusted``: the command runs the project's code (before-build, the
        build backend, tests); a place isolates it from the farm (a sandbox, a
        container) and passes it no more of the farm's environment than an allowlist.
        """
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
    "host": "wheelfarm.build.executors.host:HostExecutor",
    "zig": "wheelfarm.build.executors.zig:ZigExecutor",
    "container": "wheelfarm.build.executors.container:ContainerExecutor",
}


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str, **options: object) -> Executor:
    """An executor by name. Each takes the options its constructor declares (all take
    ``pythons_config``; ``config``, the farm config, goes to those that want it)."""
    try:
        module_name, _, class_name = REGISTRY[name].partition(":")
    except KeyError:
        raise ConfigError(
            f"unknown executor {name!r}; expected one of: {', '.join(names())}"
        ) from None
    cls = getattr(importlib.import_module(module_name), class_name)
    accepted = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        options = {k: v for k, v in options.items() if k in accepted}
    executor: Executor = cls(**options)
    return executor
