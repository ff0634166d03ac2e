"""Parsed recipes kept between runs, so planning a large farm does not re-read it all.

Reading 1,000 recipe files (TOML, schema checks, settings hashed for the
content key) costs about half a second, on every ``wheelfarm plan`` of a CI
run. The memo keeps each parsed recipe with the file's stat (inode, size,
modification time in ns), as Python keeps bytecode next to its source: an
edited file misses and is read again. The memo also records the stat of the
modules that turn a file into a recipe, so a changed wheelfarm reads
everything afresh. A recipe whose source is a local path keeps no digest: the
tree behind it may change while the recipe file does not.

The memo lives in the farm's state directory; a damaged or foreign memo is
ignored, never an error.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

from wheelfarm import __version__, fsutil
from wheelfarm.plan import profiles, recipe, sourcespec, targets
from wheelfarm.plan import tomlshape as schema
from wheelfarm.plan.recipe import Recipe

_Stat = tuple[int, int, int, int]
# Their code decides what a file parses to.
_SHAPERS = (recipe, schema, sourcespec, profiles, targets)


def _stat(path: Path | str) -> _Stat:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _stamp() -> tuple[object, ...]:
    return (__version__, *(_stat(m.__file__ or "") for m in _SHAPERS))


class RecipeMemo:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, tuple[_Stat, Recipe]] = {}
        self.dirty = False
        if path is None:
            return
        try:
            with path.open("rb") as fh:
                stamp, entries = pickle.load(fh)
        except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError,
                AttributeError, ImportError):
            return
        if stamp == _stamp() and isinstance(entries, dict):
            self.entries = entries

    def load(self, file: Path) -> Recipe:
        """``recipe.load(file)``, from the memo when the file is unchanged."""
        key = os.path.join(os.getcwd(), file)  # relative paths mean different files per cwd
        try:
            stat = _stat(file)
        except OSError:
            return recipe.load(file)  # let the loader name the problem
        hit = self.entries.get(key)
        if hit is not None and hit[0] == stat:
            return hit[1]
        loaded = recipe.load(file)
        if loaded.source.kind != "path":
            loaded.digest()  # kept with the recipe: it depends on the file alone
        self.entries[key] = (stat, loaded)
        self.dirty = True
        return loaded

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        entries = {k: (stat, _portable(r)) for k, (stat, r) in self.entries.items()}
        try:
            with fsutil.atomic_open(self.path, "wb", prefix=".recipes-") as fh:
                pickle.dump((_stamp(), entries), fh, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError:
            pass  # a memo that cannot be written only costs the next run its speed-up
        self.dirty = False


def _portable(r: Recipe) -> Recipe:
    # replace() makes a fresh object: it carries no digest computed from a tree.
    return dataclasses.replace(r) if r.source.kind == "path" else r
