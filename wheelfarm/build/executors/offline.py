"""Requirements for a place without a network, fetched on the host.

A container build runs with networking disabled, so its build and test
requirements are downloaded first, on the host, by the farm's own pip
(``pip download`` for the container's Python version, ABI and manylinux
platform, binary wheels only) into a wheelhouse under the farm's cache. The
container mounts that cache and installs with ``--no-index --find-links``.

A download is made once per (requirement set, interpreter, platform): a
marker file records it, so the next job that needs the same set installs at
once without asking the index again.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import re
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from wheelfarm import proc
from wheelfarm.build.executors import sandbox
from wheelfarm.build.executors.host import ISOLATED_PIP
from wheelfarm.errors import CommandError, JobError
from wheelfarm.fsutil import file_lock

# manylinux1 / 2010 / 2014 are aliases of these glibc versions (PEP 600).
_LEGACY = {(2, 5): "manylinux1", (2, 12): "manylinux2010", (2, 17): "manylinux2014"}


@dataclass(frozen=True)
class Interpreter:
    """What pip needs to choose wheels for an interpreter it cannot run."""

    version: tuple[int, int]  # (3, 9)
    arch: str  # x86_64
    glibc: tuple[int, int]  # of the image

    @property
    def abi(self) -> str:
        return f"cp{self.version[0]}{self.version[1]}"

    @property
    def platforms(self) -> list[str]:
        return platform_tags(self.arch, self.glibc)


def platform_tags(arch: str, glibc: tuple[int, int]) -> list[str]:
    """Every manylinux tag a wheel may carry to run on ``glibc``, newest first."""
    major, newest = glibc
    tags = []
    for minor in range(newest, 4, -1):
        tags.append(f"manylinux_{major}_{minor}_{arch}")
        legacy = _LEGACY.get((major, minor))
        if legacy and (legacy != "manylinux1" or arch in ("x86_64", "i686")):
            tags.append(f"{legacy}_{arch}")
    return tags


def download_argv(dest: Path, interp: Interpreter, requirements: Sequence[str],
                  index_url: str | None = None, pinned: Path | None = None) -> list[str]:
    """``pip download`` of ``requirements`` (or a pinned file) for ``interp``, wheels only.

    pip refuses ``--platform`` without ``--only-binary :all:``; an sdist-only
    requirement therefore fails here, and the caller says so.
    """
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
            "--dest", str(dest), "--only-binary", ":all:",
            "--implementation", "cp",
            "--python-version", f"{interp.version[0]}.{interp.version[1]}",
            "--abi", interp.abi, "--abi", "abi3", "--abi", "none"]
    for tag in interp.platforms:
        argv += ["--platform", tag]
    if index_url is not None:
        argv += ["--index-url", index_url]
    if pinned is not None:
        return [*argv, "--require-hashes", "--no-deps", "-r", str(pinned)]
    return [*argv, *requirements]


def requires_dist(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA (its runtime dependencies)."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist()
                 if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if not names:
            return []
        text = zf.read(names[0]).decode("utf-8", errors="replace")
    message = email.parser.Parser().parsestr(text, headersonly=True)
    return [str(v) for v in message.get_all("Requires-Dist") or []]


def split_local(requirements: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Local wheel files (installed by path) apart from requirement strings."""
    local = [Path(r) for r in requirements if r.endswith(".whl") and Path(r).is_file()]
    named = [r for r in requirements if not (r.endswith(".whl") and Path(r).is_file())]
    return local, named


def download_key(requirements: Sequence[str], interp: Interpreter,
                 index_url: str | None) -> str:
    blob = json.dumps({"requires": sorted(set(requirements)), "python": interp.version,
                       "arch": interp.arch, "glibc": interp.glibc, "index": index_url},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class DownloadCache:
    """``<cache>/wheelhouse``: wheels for places without a network, shared by every job."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "wheelhouse"
        self.files = self.root / "files"
        self.done = self.root / "done"

    def fetch(self, requirements: Sequence[str], interp: Interpreter, work: Path,
              log: IO[str], *, index_url: str | None = None,
              timeout: float | None = None) -> None:
        """Make sure every wheel ``requirements`` need (with dependencies) is here."""
        if not requirements:
            return
        key = download_key(requirements, interp, index_url)
        self.done.mkdir(parents=True, exist_ok=True)
        self.files.mkdir(parents=True, exist_ok=True)
        marker = self.done / key
        # One download at a time: pip writes into the shared directory.
        with file_lock(self.root / "download.lock"):
            if marker.exists():
                log.write(f"requirements already in the wheelhouse ({key}): "
                          f"{' '.join(requirements)}\n")
                return
            pinned = None
            # pip may run an sdist's setup.py to read its metadata: none of the farm's
            # secrets in its environment.
            env = sandbox.allowed_env(os.environ, farm_tool=True)
            if index_url is not None:
                # A lock names its index: none of the machine's pip configuration applies.
                env = {**env, **ISOLATED_PIP}
                pinned = work / f"download-{key}.txt"
                pinned.write_text("".join(f"{line}\n" for line in requirements))
            try:
                got = self._download(download_argv(self.files, interp, requirements,
                                                   index_url, pinned), work, log, env, timeout)
                # pip judges markers by the host's Python, not the container's: add
                # what the container's Python needs and the host's did not.
                for _round in range(_MAX_ROUNDS):
                    missing = missing_requirements(got, list(requirements), interp)
                    if not missing or index_url is not None:
                        break
                    log.write(f"the container's Python needs more: {' '.join(missing)}\n")
                    got += self._download(download_argv(self.files, interp, missing),
                                          work, log, env, timeout)
            except CommandError as exc:
                raise JobError(
                    f"downloading requirements for {interp.abi} "
                    f"manylinux_{interp.glibc[0]}_{interp.glibc[1]}_{interp.arch} on the host "
                    f"failed: {_last(exc)} (a container build is offline and takes wheels only; "
                    f"set build.network = true to let it install from the index itself)"
                ) from exc
            marker.write_text(json.dumps(sorted(set(requirements))) + "\n")

    def _download(self, argv: list[str], work: Path, log: IO[str],
                  env: dict[str, str] | None, timeout: float | None) -> list[Path]:
        """Run pip download; the wheels it saved or found already here."""
        out = proc.run(argv, log=log, cwd=work, env=env, timeout=timeout).stdout
        names = set(_SAVED.findall(out))
        return [self.files / Path(n).name for n in sorted(names)
                if (self.files / Path(n).name).is_file()]


_MAX_ROUNDS = 5
_SAVED = re.compile(r"(?:Saved|File was already downloaded) (\S+\.whl)")


def marker_environment(interp: Interpreter) -> dict[str, str]:
    """PEP 508 marker values of the container's interpreter (patch level unknown: .0)."""
    version = f"{interp.version[0]}.{interp.version[1]}"
    return {
        "python_version": version, "python_full_version": f"{version}.0",
        "implementation_name": "cpython", "implementation_version": f"{version}.0",
        "platform_python_implementation": "CPython", "os_name": "posix",
        "sys_platform": "linux", "platform_system": "Linux", "platform_machine": interp.arch,
    }


def missing_requirements(wheels: Sequence[Path], requirements: Sequence[str],
                         interp: Interpreter) -> list[str]:
    """Requirements of ``wheels`` (and ``requirements``) that apply to ``interp`` but
    name no distribution among ``wheels``."""
    env = marker_environment(interp)
    have = {canonicalize_name(w.name.split("-")[0]) for w in wheels}
    wanted: dict[str, Requirement] = {}
    queue = [(r, "") for r in requirements]
    for wheel in wheels:
        extras = {e for r in requirements for e in _extras(r, wheel)}
        queue += [(r, extra) for r in requires_dist(wheel) for extra in ("", *extras)]
    for text, extra in queue:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name not in have:
            wanted.setdefault(name, req)
    return sorted(str(r).split(";")[0].strip() for r in wanted.values())


def _extras(text: str, wheel: Path) -> set[str]:
    """The extras ``text`` asks of the distribution ``wheel`` holds."""
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return set()
    same = canonicalize_name(req.name) == canonicalize_name(wheel.name.split("-")[0])
    return set(req.extras) if same else set()


def _last(exc: CommandError) -> str:
    lines = [line for line in exc.tail.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else str(exc)
