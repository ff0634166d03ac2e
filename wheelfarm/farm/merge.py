"""Merging the wheelhouses of CI matrix jobs into one wheelhouse with one index.

Two different files with the same name are refused (:class:`MergeConflict`)
before anything is copied; the same bytes twice are merged once. Each wheel
with provenance is recorded in the farm's artifact cache under its job key,
so a later plan in this farm finds it cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wheelfarm.build import debuginfo, provenance
from wheelfarm.build.archive import sha256_file
from wheelfarm.build.cache import ArtifactCache
from wheelfarm.errors import MergeConflict
from wheelfarm.farm.wheelhouse import Wheelhouse


@dataclass(frozen=True)
class Merged:
    wheels: int
    inputs: int
    projects: list[str]
    warnings: list[str] = field(default_factory=list)


def merge(inputs: Sequence[Path], out_dir: Path, cache: ArtifactCache) -> Merged:
    """Merge the wheels, provenance and debug files of ``inputs`` into ``out_dir``."""
    chosen: dict[str, Path] = {}
    debug: dict[str, Path] = {}  # debug/<build-id>.debug and debug/<wheel>.json, same rules
    for directory in inputs:
        for path in sorted(directory.iterdir()):
            if not path.is_file() or not path.name.endswith((".whl", provenance.SUFFIX)):
                continue
            merge_candidate(chosen, path, out_dir)
        folder = directory / debuginfo.DEBUG_DIR
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            if path.is_file() and path.name.endswith((debuginfo.SUFFIX, ".whl.json")):
                merge_candidate(debug, path, out_dir / debuginfo.DEBUG_DIR)
    house = Wheelhouse(out_dir, index=False)
    house.add_files([*((f"{debuginfo.DEBUG_DIR}/{n}", p) for n, p in debug.items()),
                     *chosen.items()])
    projects = house.reindex()
    warnings = [w for name in chosen if name.endswith(".whl")
                if (w := _record(cache, out_dir / name))]
    return Merged(sum(1 for n in chosen if n.endswith(".whl")), len(inputs), projects, warnings)


def merge_candidate(chosen: dict[str, Path], path: Path, out_dir: Path) -> None:
    existing = chosen.get(path.name)
    if existing is None:
        target = out_dir / path.name
        if target.exists() and sha256_file(target) != sha256_file(path):
            raise MergeConflict(f"{path.name}: {path} differs from the one already in {out_dir}")
        chosen[path.name] = path
        return
    if sha256_file(existing) != sha256_file(path):
        raise MergeConflict(f"{path.name}: {existing} and {path} differ; "
                            "a rebuild needs a new build number ([build] number)")


def _record(cache: ArtifactCache, wheel: Path) -> str:
    """Record a merged wheel under its job key; a warning, or "" if none."""
    statement = provenance.path_for(wheel)
    if not statement.exists():
        return ""
    named = provenance.job_key(statement.read_bytes())
    if named is None:
        return f"{statement.name} is not a wheelfarm provenance statement"
    key, recorded = named
    if recorded != sha256_file(wheel):
        raise MergeConflict(f"{wheel.name}: its provenance names other bytes "
                            f"(sha256 {recorded})")
    cache.store(str(key), wheel, statement, debuginfo.read_listing(wheel))
    return ""
