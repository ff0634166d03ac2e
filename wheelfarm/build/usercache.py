"""The shared cache (``FarmConfig.cache_dir``, by default the user's
``~/.cache/wheelfarm``): what is in it, and emptying parts of it.

Every entry is keyed by content and written by an atomic rename, so a part
removed here is simply filled again by the next build that needs it. A part is
first renamed aside (one atomic step: a farm sees it whole or not at all), then
deleted.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Part = Literal["downloads", "toolchains"]
PARTS: dict[Part, tuple[str, ...]] = {
    # sources by sha256, git mirrors, upstream wheels for parity, a container's pip downloads
    "downloads": ("downloads", "git", "upstream", "wheelhouse"),
    # zig's compiled runtimes, build environments, container image facts
    "toolchains": ("zig", "envs", "container"),
}
_TRASH = ".trash-"


@dataclass(frozen=True)
class PartInfo:
    name: str  # a Part, or "other" for what no part names
    dirs: tuple[str, ...]  # the part's directories that exist
    size: int  # bytes, symbolic links not followed
    entries: int  # files and directories directly inside those directories


@dataclass(frozen=True)
class CacheInfo:
    path: Path
    parts: tuple[PartInfo, ...]

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


def info(root: Path) -> CacheInfo:
    """Size and entries of each part of the cache at ``root`` (which may not exist)."""
    known = {d for dirs in PARTS.values() for d in dirs}
    parts = [_part(root, name, dirs) for name, dirs in PARTS.items()]
    if root.is_dir():
        other = sorted(e.name for e in os.scandir(root)
                       if e.name not in known and not e.name.startswith(_TRASH))
        if other:
            parts.append(_part(root, "other", other))
    return CacheInfo(root, tuple(parts))


def clean(root: Path, parts: Sequence[Part] | None = None) -> list[Path]:
    """Remove ``parts`` of the cache (None: everything); the directories removed."""
    if not root.is_dir():
        return []
    if parts is None:
        names = [e.name for e in os.scandir(root) if not e.name.startswith(_TRASH)]
    else:
        names = [d for part in parts for d in PARTS[part]]
    removed = []
    for name in names:
        path = root / name
        if not (path.exists() or path.is_symlink()):
            continue
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            aside = root / f"{_TRASH}{uuid.uuid4().hex}"
            path.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        removed.append(path)
    # What an interrupted clean left aside.
    for leftover in root.glob(f"{_TRASH}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return removed


def _part(root: Path, name: str, dirs: Iterable[str]) -> PartInfo:
    present = tuple(d for d in dirs if (root / d).exists())
    size = entries = 0
    for d in present:
        path = root / d
        if path.is_symlink() or not path.is_dir():
            entries += 1
            size += path.lstat().st_size
            continue
        entries += sum(1 for _ in os.scandir(path))
        size += _tree_size(path)
    return PartInfo(name, present, size, entries)


def _tree_size(path: Path) -> int:
    total = 0
    for top, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except OSError:
                continue  # removed while we looked
    return total
