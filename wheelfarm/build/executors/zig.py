"""The zig executor: manylinux and macOS wheels on a plain Linux machine, no container.

It is the host executor with another toolchain: ``zig cc -target
<arch>-linux-gnu.<glibc>`` links against stub libraries of the requested glibc
and a static libc++, so the host's Pythons build wheels that run on the old
distributions a manylinux policy promises. ``zig cc -target aarch64-macos.11.0``
builds macOS extension modules against the host Python's headers of the same
minor version (the ``pyconfig.h`` values that differ are not used by the public
headers); nothing here can run them. The compilers are wrapper scripts
(see :mod:`wheelfarm.build.zigcc`) generated into the farm's cache by
:meth:`ZigExecutor.prepare`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from wheelfarm import fsutil, proc
from wheelfarm.build import ccwrap, zigcc
from wheelfarm.build.executors import JobContext, sandbox
from wheelfarm.build.executors.host import HostPlace
from wheelfarm.errors import ConfigError
from wheelfarm.fsutil import file_lock
from wheelfarm.plan import pythons
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.targets import MACOS_ARCHES, Target, host_arch

ARCHES = ("x86_64", "aarch64")
MIN_GLIBC = (2, 17)
MIN_MACOS = (10, 13)  # the oldest macOS zig's libc headers and linker support
WARMUP_TIMEOUT = 1800.0  # a cold libc++ build takes minutes on a small machine

# The first use of a target compiles zig's libc, libc++ and libunwind for it;
# these make prepare() pay for that once instead of inside the first job.
_WARMUP_C = "int wheelfarm_warm_c(int x) { return x + 1; }\n"
_WARMUP_CXX = (
    "#include <stdexcept>\n#include <string>\n"
    "std::string wheelfarm_warm_cxx(int x) {\n"
    '    if (x < 0) throw std::runtime_error("negative");\n'
    "    return std::to_string(x);\n}\n"
)


def find_zig() -> Path | None:
    """The zig binary of the installed ``ziglang`` package, if any.

    The binary itself, not ``python -m ziglang``: that module is missing from
    the isolated environments PEP 517 builds run in.
    """
    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "zig"
        if candidate.is_file():
            return candidate
    return None


def rust_triple(arch: str, libc: str = "glibc") -> str:
    return f"{arch}-unknown-linux-{'musl' if libc == 'musl' else 'gnu'}"


def target_rust_triple(target: Target) -> str:
    """cargo's name of the target (Rust for macOS needs a std that rustup must fetch)."""
    if target.is_macos:
        return f"{'aarch64' if target.arch == 'arm64' else target.arch}-apple-darwin"
    return rust_triple(target.arch, target.libc)


def _write_atomic(path: Path, text: str, executable: bool = False) -> None:
    # A build of another job may be running the old script right now.
    mode = 0o755 if executable else 0o600
    with fsutil.atomic_path(path, prefix=".", mode=mode) as tmp:
        tmp.write_text(text)


def cross_env(target: Target, python: str | None) -> dict[str, str]:
    """What a cross build needs beyond the compilers: the host interpreter's
    sysconfig describes the host, so the wheel's platform tag and the
    extension suffix are overridden, and cargo is told the target."""
    if target.is_macos:
        return macos_cross_env(target, python)
    env = {
        "_PYTHON_HOST_PLATFORM": f"linux-{target.arch}",
        "CARGO_BUILD_TARGET": rust_triple(target.arch, target.libc),
    }
    if python is not None:
        # A musl CPython looks for ...-linux-musl.so, a glibc one for ...-linux-gnu.so.
        major, minor = pythons.parse_tag(python)
        libc = "musl" if target.libc == "musl" else "gnu"
        env["SETUPTOOLS_EXT_SUFFIX"] = f".cpython-{major}{minor}-{target.arch}-linux-{libc}.so"
    return env


def macos_cross_env(target: Target, python: str | None) -> dict[str, str]:
    """A macOS build on Linux: sysconfig's platform (which setuptools and wheel
    read for the wheel's tag), the extension suffix CPython on macOS loads, and
    the deployment target that CMake and others read."""
    assert target.macos is not None
    version = f"{target.macos[0]}.{target.macos[1]}"
    env = {
        "_PYTHON_HOST_PLATFORM": f"macosx-{version}-{target.arch}",
        "MACOSX_DEPLOYMENT_TARGET": version,
        "CARGO_BUILD_TARGET": target_rust_triple(target),
    }
    if python is not None:
        major, minor = pythons.parse_tag(python)
        env["SETUPTOOLS_EXT_SUFFIX"] = f".cpython-{major}{minor}-darwin.so"
    return env


class ZigLayout:
    """Where a target's zig files live.

    zig's global cache (the compiled libc, libc++ and libunwind) and the record
    that a target's runtimes are warm are in the shared ``cache_dir`` (the
    user's cache); the wrappers, which name this farm's Python and wheelfarm
    package, and their marker in the farm's own ``tools_dir`` (default: the
    same directory, for a lone executor).
    """

    def __init__(self, cache_dir: Path, target: Target,
                 profile: str = ccwrap.DEFAULT_PROFILE, tools_dir: Path | None = None) -> None:
        shared = cache_dir / "zig"
        self.zig_cache = shared / "cache"
        self.root = (tools_dir if tools_dir is not None else cache_dir) / "zig"
        self.target_dir = self.root / target.name
        # Each profile has its own wrappers: the profile is baked into them, not
        # read from an environment a build system may scrub.
        suffix = "" if profile == ccwrap.DEFAULT_PROFILE else f"-{profile}"
        self.profile = profile
        self.bin = self.target_dir / f"bin{suffix}"
        self.marker = self.target_dir / f"prepared{suffix}.json"
        self.lock = self.root / f"{target.name}.lock"
        # One farm warms a target's runtimes; another, at the same time, waits for it.
        self.warm_marker = shared / "warm" / f"{target.name}{suffix}.json"
        self.warm_lock = shared / "warm" / f"{target.name}{suffix}.lock"

    def tool(self, name: str) -> Path:
        return self.bin / name


class ZigExecutor:
    """Builds manylinux wheels with the host's Pythons and zig as the compiler."""

    name = "zig"

    def __init__(self, pythons_config: Mapping[str, str] | None = None, *,
                 zig: str | os.PathLike[str] | None = None,
                 config: FarmConfig | None = None) -> None:
        self.interpreters = pythons.discover(pythons_config)
        # The farm's own directory for the wrappers; None: beside zig's cache.
        self.tools_dir = config.tools_dir if config is not None else None
        self.zig = Path(zig) if zig is not None else find_zig()
        self._version: str | None = None
        self._version_lock = threading.Lock()

    # -- Executor protocol -------------------------------------------------

    def check(self, target: Target) -> None:
        if target.is_macos:
            self._check_macos(target)
            return
        if target.kind == "musllinux" and target.arch in ARCHES:
            self._zig()
            return
        if target.kind != "manylinux" or target.glibc is None:
            raise ConfigError(
                f"executor 'zig' builds manylinux_X_Y, musllinux_X_Y and macOS targets only; "
                f"{target} is for the 'host' executor"
            )
        if target.arch not in ARCHES:
            raise ConfigError(f"executor 'zig' cannot build {target}: unknown architecture")
        if target.glibc < MIN_GLIBC:
            raise ConfigError(
                f"executor 'zig' cannot build {target}: it targets glibc "
                f"{MIN_GLIBC[0]}.{MIN_GLIBC[1]} or newer (Rust's std and zig's libc++ need it)"
            )
        self._zig()

    def _check_macos(self, target: Target) -> None:
        if target.arch not in MACOS_ARCHES or target.macos is None:
            raise ConfigError(f"executor 'zig' cannot build {target}: unknown architecture")
        if target.macos < MIN_MACOS:
            raise ConfigError(
                f"executor 'zig' cannot build {target}: zig targets macOS "
                f"{MIN_MACOS[0]}.{MIN_MACOS[1]} or newer"
            )
        self._zig()

    def available_pythons(self) -> list[str]:
        return pythons.supported(self.interpreters)

    def toolchain_id(self, target: Target) -> str:
        # The wrapper's rules change what gets compiled, so their version counts too.
        return (f"zig:{self.version()}:{self.zig_target(target)}"
                f":zigcc{zigcc.SCRIPT_VERSION}")

    def prepare(self, target: Target, cache_dir: Path, log: IO[str]) -> None:
        self._prepare(target, ZigLayout(cache_dir, target, tools_dir=self.tools_dir), log)

    def _prepare(self, target: Target, layout: ZigLayout, log: IO[str]) -> None:
        """Wrappers and a warm zig cache for ``layout``'s profile (release unless a
        debug job asks: prepare() knows no job)."""
        self.check(target)
        fingerprint = self._fingerprint(target, layout)
        layout.root.mkdir(parents=True, exist_ok=True)
        # flock on its own open() excludes other threads and other farm processes.
        with file_lock(layout.lock):
            # `wheelfarm cache clean` may have emptied the shared cache since.
            if (layout.marker.is_file() and layout.marker.read_text() == fingerprint
                    and _reads(layout.warm_marker) == self._warm_fingerprint(target, layout)):
                log.write(f"zig toolchain for {target} is ready in {layout.target_dir}\n")
                return
            log.write(f"writing zig compiler wrappers for {target} into {layout.bin}\n")
            self._write_wrappers(target, layout)
            self._warm_shared(target, layout, log)
            _write_atomic(layout.marker, fingerprint)

    def _warm_shared(self, target: Target, layout: ZigLayout, log: IO[str]) -> None:
        """Warm zig's shared cache for ``target`` once per cache, whichever farm asks.

        The lock lives in the shared cache, so a second farm (another process)
        waits for the first one's warm-up and then finds the runtimes ready.
        """
        warm = self._warm_fingerprint(target, layout)
        layout.warm_marker.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(layout.warm_lock):
            if layout.warm_marker.is_file() and layout.warm_marker.read_text() == warm:
                log.write(f"zig's runtimes for {self.zig_target(target)} are warm in "
                          f"{layout.zig_cache}\n")
                return
            self._warm_up(target, layout, log)
            _write_atomic(layout.warm_marker, warm)

    @contextmanager
    def open(self, ctx: JobContext) -> Iterator[HostPlace]:
        # Cheap when prepare() already ran; makes a lone open() safe too.
        layout = ZigLayout(ctx.cache_dir, ctx.target, ctx.profile,
                           tools_dir=ctx.tools_dir or self.tools_dir)
        self._prepare(ctx.target, layout, ctx.log)
        env = self.toolchain_env(ctx.target, layout, ctx.python)
        yield HostPlace(ctx, self.interpreters, toolchain=env, shared_caches=[layout.zig_cache])

    # -- helpers -----------------------------------------------------------

    def _zig(self) -> Path:
        if self.zig is None or not self.zig.is_file():
            where = f" at {self.zig}" if self.zig is not None else ""
            raise ConfigError(
                f"executor 'zig' needs the zig compiler{where}: pip install ziglang"
            )
        return self.zig

    def version(self) -> str:
        """``zig version``, asked once per executor."""
        with self._version_lock:
            if self._version is None:
                result = proc.run([self._zig(), "version"], timeout=60)
                self._version = result.stdout.strip()
            return self._version

    @staticmethod
    def zig_target(target: Target) -> str:
        if target.is_macos:
            assert target.macos is not None
            return zigcc.zig_macos_target(target.arch, target.macos)
        assert target.glibc is not None or target.kind == "musllinux"
        return zigcc.zig_target(target.arch, target.glibc)

    def toolchain_env(self, target: Target, layout: ZigLayout,
                      python: str | None = None) -> dict[str, str]:
        """The variables that make setuptools, cargo and CMake use zig for ``target``.

        ``python`` (``cp312``) is needed only for a cross build, whose
        extension suffix the host interpreter cannot know.
        """
        cc, cxx = str(layout.tool("cc")), str(layout.tool("c++"))
        cache = str(layout.zig_cache)
        env = {
            "CC": cc,
            "CXX": cxx,
            # Without LDSHARED, setuptools keeps the host Python's link line and
            # its -Wl,-rpath into the host's Python installation.
            "LDSHARED": f"{shlex.quote(cc)} -shared",
            "LDCXXSHARED": f"{shlex.quote(cxx)} -shared",
            "AR": str(layout.tool("ar")),
            "RANLIB": str(layout.tool("ranlib")),
            f"CARGO_TARGET_{target_rust_triple(target).upper().replace('-', '_')}_LINKER":
                str(layout.tool("rust-linker")),
            "ZIG_GLOBAL_CACHE_DIR": cache,
            "ZIG_LOCAL_CACHE_DIR": cache,
        }
        if target.arch != host_arch() or target.libc != "glibc" or target.is_macos:
            env.update(cross_env(target, python))
        return env

    def _fingerprint(self, target: Target, layout: ZigLayout) -> str:
        return json.dumps({
            "script_version": zigcc.SCRIPT_VERSION,
            "zig": str(self._zig()),
            "zig_version": self.version(),
            "target": self.zig_target(target),
            "python": sys.executable,
            "package_root": _package_root(),
            "cache": str(layout.zig_cache),
            "profile": layout.profile,
        }, sort_keys=True)

    def _warm_fingerprint(self, target: Target, layout: ZigLayout) -> str:
        # What decides which runtimes a build links: not the farm's Python or package,
        # but where zig is installed: zig's cache keys the runtimes it compiles by
        # its lib directory's path, so the same zig in another virtual environment
        # finds nothing warm (and a build would compile them again, in its throw-away
        # overlay, with debug info that differs from one build to the next).
        return json.dumps({"script_version": zigcc.SCRIPT_VERSION, "zig_version": self.version(),
                           "zig": str(self._zig().resolve()), "target": self.zig_target(target),
                           "profile": layout.profile}, sort_keys=True)

    def _write_wrappers(self, target: Target, layout: ZigLayout) -> None:
        layout.bin.mkdir(parents=True, exist_ok=True)
        layout.zig_cache.mkdir(parents=True, exist_ok=True)
        zig, cache = str(self._zig()), str(layout.zig_cache)
        modes: dict[str, zigcc.Mode] = {"cc": "cc", "c++": "c++", "rust-linker": "linker"}
        for name, mode in modes.items():
            try:
                script = zigcc.wrapper_script(
                    python=sys.executable, package_root=_package_root(), mode=mode,
                    zig=zig, target=self.zig_target(target), cache_dir=cache,
                    profile=layout.profile,
                )
            except ValueError as exc:
                raise ConfigError(f"executor 'zig': {exc}") from None
            _write_atomic(layout.tool(name), script, executable=True)
        # ar and ranlib take no target and need no rewriting.
        for name in ("ar", "ranlib"):
            script = (
                "#!/bin/sh\n# Generated by wheelfarm; do not edit.\n"
                f"ZIG_GLOBAL_CACHE_DIR={shlex.quote(cache)}\n"
                f"ZIG_LOCAL_CACHE_DIR={shlex.quote(cache)}\n"
                "export ZIG_GLOBAL_CACHE_DIR ZIG_LOCAL_CACHE_DIR\n"
                f'exec {shlex.quote(zig)} {name} "$@"\n'
            )
            _write_atomic(layout.tool(name), script, executable=True)

    def _warm_up(self, target: Target, layout: ZigLayout, log: IO[str]) -> None:
        warm = layout.target_dir / "warm"
        warm.mkdir(parents=True, exist_ok=True)
        env = {**sandbox.allowed_env(os.environ, farm_tool=True),
               **self.toolchain_env(target, layout)}
        langs: tuple[tuple[str, str, str], ...] = (("C", "cc", "warm.c"),
                                                  ("C++", "c++", "warm.cpp"))
        if target.is_macos:
            # C only: zig's libc++ for a macOS target takes minutes and is compiled by the
            # first C++ build, so a farm building only C extensions for macOS never pays it.
            langs = langs[:1]
        for lang, tool, source in langs:
            (warm / source).write_text(_WARMUP_C if lang == "C" else _WARMUP_CXX)
            log.write(f"warming zig's cache: {lang} runtime for {self.zig_target(target)} "
                      f"(minutes on first use)\n")
            started = time.monotonic()
            # No -O here: the wrapper adds the profile's, exactly as for a build, so
            # the runtimes cached now are the ones the builds link.
            proc.run([layout.tool(tool), "-shared", "-fPIC", "-o",
                      f"{Path(source).stem}-{tool}.so", source],
                     log=log, cwd=warm, env=env, timeout=WARMUP_TIMEOUT)
            log.write(f"zig's {lang} runtime ready in {time.monotonic() - started:.1f}s\n")


def _reads(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _package_root() -> str:
    """The directory holding the ``wheelfarm`` package, for the wrapper scripts' sys.path."""
    return str(Path(zigcc.__file__).resolve().parent.parent)
