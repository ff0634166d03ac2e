"""Reproducible builds: a fixed clock, fixed paths, and a deterministic wheel.

Two builds of the same inputs differ, left alone, in zip timestamps, member
order, permissions (the umask), the build directory baked into debug info and
``__FILE__`` strings, and Python's hash seed. This module supplies the
environment that pins those down and rewrites a finished wheel into one
canonical zip.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from wheelfarm import fsutil
from wheelfarm.build.ccwrap import PREFIX_MAPS_VAR

# The earliest time a zip file can hold (DOS dates start in 1980).
ZIP_EPOCH = 315532800
# Where the build's own directories appear in compiled output.
MAPPED_ROOT = "/wheelfarm"
COMPRESSION = zipfile.ZIP_DEFLATED
COMPRESSLEVEL = 6


def source_date_epoch(kind: str, src: Path, git_time: int | None = None) -> int:
    """The build's clock, from the source itself.

    An sdist's members keep the mtimes its author's tools wrote, and safe
    extraction preserves them; a git checkout has its commit time; a tree
    copied from a path has only mtimes that change with every clone, so it
    gets ``ZIP_EPOCH`` (a recipe may set ``build.source-date-epoch``).
    """
    if kind in ("pypi", "url"):
        newest = max((p.stat().st_mtime for p in src.rglob("*") if p.is_file()), default=0.0)
        return max(int(newest), ZIP_EPOCH)
    if kind == "git" and git_time is not None:
        return max(git_time, ZIP_EPOCH)
    return ZIP_EPOCH


@dataclass(frozen=True)
class PathMaps:
    """Host directories that must not leak into binaries, and what they become."""

    maps: tuple[tuple[str, str], ...]

    def cflags(self) -> str:
        return " ".join(f"-ffile-prefix-map={old}={new}" for old, new in self.maps)

    def rustflags(self) -> str:
        return " ".join(f"--remap-path-prefix={old}={new}" for old, new in self.maps)


def path_maps(work: Path, cache_dir: Path, extra: Iterable[Path] = ()) -> PathMaps:
    # Longest first: a compiler applies the first matching prefix.
    pairs = {str(work): f"{MAPPED_ROOT}/work", str(cache_dir): f"{MAPPED_ROOT}/cache"}
    for i, path in enumerate(extra):
        pairs.setdefault(str(path), f"{MAPPED_ROOT}/extra{i}")
    ordered = sorted(pairs.items(), key=lambda kv: len(kv[0]), reverse=True)
    return PathMaps(tuple(ordered))


def build_environment(epoch: int, maps: PathMaps, recipe_env: Mapping[str, str],
                      toolchain_env: Mapping[str, str]) -> dict[str, str]:
    """Variables for a deterministic build, merged with what the recipe sets.

    C and C++ prefix maps go to the farm's compiler wrappers (see
    :mod:`wheelfarm.build.ccwrap`) in ``WHEELFARM_PREFIX_MAPS``, never into
    ``CFLAGS``: setuptools uses ``$CFLAGS`` *instead of* the interpreter's
    ``-DNDEBUG -g -O3``. Rust's are appended to the recipe's own RUSTFLAGS
    rather than replacing them: ``RUSTFLAGS`` replaces, not merges with,
    cargo's config, so a recipe's value must survive.
    """
    env = {
        "SOURCE_DATE_EPOCH": str(epoch),
        "PYTHONHASHSEED": "0",
        "ZERO_AR_DATE": "1",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
    }
    env[PREFIX_MAPS_VAR] = json.dumps([list(pair) for pair in maps.maps])
    mine = recipe_env.get("RUSTFLAGS") or toolchain_env.get("RUSTFLAGS") \
        or os.environ.get("RUSTFLAGS", "")
    env["RUSTFLAGS"] = f"{mine} {maps.rustflags()}".strip()
    return env


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _order(name: str, dist_info: str) -> tuple[int, str]:
    # Wheel convention: payload first, then .dist-info, RECORD last of all.
    if name == f"{dist_info}/RECORD":
        return (2, name)
    if name.startswith(f"{dist_info}/"):
        return (1, name)
    return (0, name)


def normalize_wheel(wheel: Path, epoch: int) -> None:
    """Rewrite ``wheel`` in place as a canonical zip.

    Members sorted (payload, then ``.dist-info``, ``RECORD`` last), directory
    entries dropped, every timestamp set to ``epoch``, permissions 0644 or
    0755 (executable if any x bit was set), one compression, and ``RECORD``
    recomputed from the bytes actually written.
    """
    with zipfile.ZipFile(wheel) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist() if not i.is_dir()]
    dist_infos = {i.filename.split("/", 1)[0] for i, _ in members
                  if i.filename.split("/", 1)[0].endswith(".dist-info")}
    if len(dist_infos) != 1:
        raise ValueError(f"{wheel.name}: expected one .dist-info directory, "
                         f"found {len(dist_infos)}")
    dist_info = dist_infos.pop()
    record_name = f"{dist_info}/RECORD"
    files = {i.filename: (data, (i.external_attr >> 16) & 0o111 != 0) for i, data in members
             if i.filename != record_name}
    stamp = time.gmtime(max(epoch, ZIP_EPOCH))[:6]
    names = sorted(files, key=lambda n: _order(n, dist_info))
    # RECORD is CSV: a member name with a comma or quote must be quoted.
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerows([n, _record_hash(files[n][0]), len(files[n][0])] for n in names)
    writer.writerow([record_name, "", ""])
    record = rows.getvalue().encode()
    with fsutil.atomic_path(wheel, prefix=".normalizing-") as tmp, \
            zipfile.ZipFile(tmp, "w") as out:
        for name in [*names, record_name]:
            data, executable = files[name] if name != record_name else (record, False)
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 3  # unix, so the mode bits below are honoured
            info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
            info.compress_type = COMPRESSION
            out.writestr(info, data, compress_type=COMPRESSION, compresslevel=COMPRESSLEVEL)


def differing_members(a: Path, b: Path) -> list[str]:
    """Members whose bytes, mode or timestamp differ between two wheels (or exist in one)."""
    def table(path: Path) -> dict[str, tuple[str, int, tuple[int, ...]]]:
        with zipfile.ZipFile(path) as zf:
            return {i.filename: (hashlib.sha256(zf.read(i)).hexdigest(), i.external_attr,
                                 i.date_time) for i in zf.infolist()}

    ta, tb = table(a), table(b)
    names = sorted(set(ta) | set(tb))
    diffs = [n for n in names if ta.get(n) != tb.get(n)]
    if not diffs and list(ta) != list(tb):
        diffs = ["(member order)"]
    return diffs
