"""Parity with upstream: the farm's wheel against the project's own wheel.

When the farm's index (``index-url``) holds a wheel of the same project,
version and Python for the same platform family (glibc Linux, musl Linux,
macOS; same architecture), the job downloads it (cached under the farm's
cache by filename and sha256) and compares:

- extension modules: one that upstream ships and the farm's wheel lacks (a
  build that silently fell back to pure Python) fails the job, naming it;
  every module's size on both sides goes into the log and the report;
- speed: the recipe's ``test.bench`` is timed with each wheel in its own
  venv (see :mod:`wheelfarm.build.paritybench`); the ratio farm / upstream is
  reported, above :data:`WARN_RATIO` it is a warning, above the recipe's
  ``test.bench-max-ratio`` (default :data:`DEFAULT_MAX_RATIO`) a failure.

A project the index does not have, or an index that cannot be reached, is
noted in the log and compared with nothing: parity is evidence, not a gate
on the network.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from wheelfarm.build.archive import sha256_file
from wheelfarm.build.paritybench import BenchTiming, time_bench
from wheelfarm.errors import ParityError, SourceError

if TYPE_CHECKING:
    from wheelfarm.build.executors import Place
    from wheelfarm.plan.jobs import Job

WARN_RATIO = 1.1
DEFAULT_MAX_RATIO = 2.0
_SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
# An extension module: a shared object named by the import system's suffixes.
_EXT = re.compile(r"^(?P<stem>[^/]+?)(\.(cpython|abi3|pypy)[^/]*?)?\.(so|pyd)$")
_GLIBC = re.compile(r"^manylinux_(\d+)_(\d+)_")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclass(frozen=True)
class ModuleSizes:
    module: str  # dotted import name
    farm_bytes: int | None  # None: not in that wheel
    upstream_bytes: int | None


@dataclass
class ParityReport:
    """What the comparison found; goes into the log and ``build --json``."""

    upstream: str | None = None  # the upstream wheel's filename
    upstream_sha256: str | None = None
    note: str = ""  # why nothing was compared, or what was left out
    farm_wheel_bytes: int = 0
    upstream_wheel_bytes: int | None = None
    modules: list[ModuleSizes] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # upstream ships, the farm lacks
    bench: BenchTiming | None = None
    max_ratio: float = DEFAULT_MAX_RATIO

    @property
    def ratio(self) -> float | None:
        return self.bench.ratio if self.bench else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


def compare(place: Place, job: Job, wheel: Path, work: Path, index_url: str,
            cache_dir: Path, log: IO[str]) -> ParityReport:
    """Find, fetch and compare the upstream wheel; write the findings to ``log``.

    Never raises for what upstream lacks; :func:`judge` decides the job.
    """
    spec = job.recipe.test
    report = ParityReport(farm_wheel_bytes=wheel.stat().st_size,
                          max_ratio=spec.bench_max_ratio or DEFAULT_MAX_RATIO)
    name, version = _name_version(wheel)
    try:
        upstream = find_upstream(index_url, name, version, job.python, wheel, cache_dir, log)
    except SourceError as exc:
        report.note = f"upstream not compared: {exc}"
        _say(log, report.note)
        return report
    if upstream is None:
        report.note = (f"no upstream wheel of {name} {version} for {job.python} and this "
                       f"platform on {index_url}: nothing to compare with")
        _say(log, report.note)
        return report
    report.upstream = upstream.name
    report.upstream_sha256 = sha256_file(upstream)
    report.upstream_wheel_bytes = upstream.stat().st_size
    ours, theirs = extension_modules(wheel), extension_modules(upstream)
    report.modules = [ModuleSizes(m, ours.get(m), theirs.get(m))
                      for m in sorted(set(ours) | set(theirs))]
    report.missing = sorted(set(theirs) - set(ours))
    _say(log, f"upstream wheel {upstream.name} ({report.upstream_wheel_bytes} bytes; "
              f"the farm's {report.farm_wheel_bytes} bytes)")
    for m in report.modules:
        _say(log, f"  module {m.module}: farm {_size(m.farm_bytes)}, "
                  f"upstream {_size(m.upstream_bytes)}")
    if report.missing:
        return report  # judged at once: timing a wheel that lacks a module proves nothing
    if not (spec.bench or spec.bench_command):
        report.note = "the recipe has no test.bench: speed not compared"
        _say(log, report.note)
        return report
    local = work / "parity" / upstream.name  # inside the work dir: a container sees it
    local.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(upstream, local)
    report.bench, why = time_bench(place, job.python, wheel, local, spec, work / "parity")
    if report.bench is None:
        report.note = f"speed not compared: {why}"
        _say(log, report.note)
        return report
    b = report.bench
    _say(log, f"bench: farm {b.farm_s * 1e3:.3f} ms, upstream {b.upstream_s * 1e3:.3f} ms, "
              f"ratio {b.ratio:.2f} (min of {b.rounds} alternating rounds of {b.number})")
    if b.ratio > WARN_RATIO:
        _say(log, f"warning: the farm's wheel is {b.ratio:.2f}x slower than upstream's")
    return report


def judge(report: ParityReport) -> None:
    """Fail the job for a missing module or a ratio above the recipe's limit."""
    if report.missing:
        raise ParityError(
            f"the farm's wheel lacks extension module(s) that upstream's {report.upstream} "
            f"ships: {', '.join(report.missing)}")
    b = report.bench
    if b is not None and b.ratio > report.max_ratio:
        raise ParityError(
            f"the farm's wheel is {b.ratio:.2f}x slower than upstream's {report.upstream} "
            f"(farm {b.farm_s * 1e3:.3f} ms, upstream {b.upstream_s * 1e3:.3f} ms per run; "
            f"allowed ratio {report.max_ratio:g})")


def extension_modules(wheel: Path) -> dict[str, int]:
    """Dotted module name -> size in bytes of every extension module in a wheel.

    Libraries that auditwheel grafted (``<pkg>.libs/``) and anything under
    ``.data/`` are not importable modules and are left out.
    """
    found: dict[str, int] = {}
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            parts = info.filename.split("/")
            if any(p.endswith((".libs", ".data", ".dist-info")) for p in parts[:-1]):
                continue
            m = _EXT.match(parts[-1])
            if m:
                found[".".join([*parts[:-1], m.group("stem")])] = info.file_size
    return found


# -- finding the upstream wheel -------------------------------------------------------------

def find_upstream(index_url: str, name: str, version: str, python: str, farm_wheel: Path,
                  cache_dir: Path, log: IO[str]) -> Path | None:
    """The cached upstream wheel for ``name==version`` on ``python``, or None."""
    from wheelfarm.build import source  # httpx and ssl load only when a comparison runs

    page = f"{index_url.rstrip('/')}/{canonicalize_name(name)}/"
    with source._http_client() as client:
        links = source.project_files(client, page, "upstream lookup")
        _say(log, f"upstream: {page} lists {len(links)} file(s)")
        chosen = choose(links, name, version, python, _farm_platforms(farm_wheel))
        if chosen is None:
            return None
        filename, url, sha = chosen
        cached = _cached(cache_dir, filename, sha)
        if cached is not None:
            _say(log, f"upstream: {filename} (cached)")
            return cached
        _say(log, f"upstream: fetch {url}")
        return _download(client, url, filename, sha, cache_dir)


def choose(links: list[tuple[str, str, str | None]], name: str, version: str, python: str,
           platforms: set[str]) -> tuple[str, str, str | None] | None:
    """The link of the best matching wheel: same name, version, Python (its own ABI
    preferred to abi3) and platform family; the nearest glibc to the farm's."""
    want_name, want_version = canonicalize_name(name), Version(version)
    families = {_family(p) for p in platforms}
    farm_glibc = max((_glibc(p) for p in platforms), default=(0, 0))
    best: tuple[tuple[int, int, int], tuple[str, str, str | None]] | None = None
    for link in links:
        try:
            got_name, got_version, _build, tags = parse_wheel_filename(link[0])
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if got_name != want_name or got_version != want_version:
            continue
        for tag in tags:
            abi_rank = _abi_rank(tag, python)
            if abi_rank is None or _family(tag.platform) not in families:
                continue
            glibc = _glibc(tag.platform)
            # Prefer an older-or-equal glibc (closest first), then a newer one.
            near = (1, glibc[0] * 1000 + glibc[1]) if glibc <= farm_glibc else \
                (0, -(glibc[0] * 1000 + glibc[1]))
            rank = (abi_rank, *near)
            if best is None or rank > best[0]:
                best = (rank, link)
    return best[1] if best else None


def _abi_rank(tag: Tag, python: str) -> int | None:
    if tag.interpreter == python and tag.abi == python:
        return 2
    if tag.abi == "abi3" and tag.interpreter.startswith("cp") and python.startswith("cp") \
            and int(tag.interpreter[3:] or 0) <= int(python[3:] or 0) \
            and tag.interpreter[2] == python[2]:
        return 1
    return None


def _family(platform: str) -> str:
    """glibc Linux, musl Linux or macOS, with the architecture."""
    for prefix, family in (("manylinux", "glibc"), ("linux", "glibc"),
                           ("musllinux", "musl"), ("macosx", "macos")):
        if platform.startswith(prefix):
            arch = re.sub(r"^(manylinux_\d+_\d+|manylinux\d+|musllinux_\d+_\d+|linux|"
                          r"macosx_\d+_\d+)_", "", platform)
            return f"{family}:{arch}"
    return platform


def _glibc(platform: str) -> tuple[int, int]:
    m = _GLIBC.match(platform)
    if m:
        return int(m.group(1)), int(m.group(2))
    for legacy, glibc in _LEGACY.items():
        if platform.startswith(legacy + "_"):
            return glibc
    return (0, 0)


def _farm_platforms(wheel: Path) -> set[str]:
    _n, _v, _b, tags = parse_wheel_filename(wheel.name)
    return {t.platform for t in tags}


def _name_version(wheel: Path) -> tuple[str, str]:
    name, version, _b, _t = parse_wheel_filename(wheel.name)
    return str(name), str(version)


def _cached(cache_dir: Path, filename: str, sha: str | None) -> Path | None:
    if sha is None:
        return None
    path = cache_dir / "upstream" / sha.lower() / filename
    return path if path.is_file() and sha256_file(path) == sha.lower() else None


def _download(client: Any, url: str, filename: str, sha: str | None,
              cache_dir: Path) -> Path:
    from wheelfarm.build import source

    root = cache_dir / "upstream"
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=root, prefix=".part-")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in source._read_url(client, url):
                digest.update(chunk)
                out.write(chunk)
        got = digest.hexdigest()
        if sha is not None and got != sha.lower():
            raise SourceError(f"sha256 mismatch for {filename}: the index says {sha.lower()}, "
                              f"the download is {got}")
        final = root / got / filename
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
        return final
    except OSError as exc:
        raise SourceError(f"cannot store {filename}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n} bytes"


def _say(log: IO[str], line: str) -> None:
    log.write(line + "\n")
    log.flush()
