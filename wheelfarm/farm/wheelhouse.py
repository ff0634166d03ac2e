"""The wheelhouse: a directory of wheels, their provenance and debug files, and a
``simple/`` index over them.

Every writer goes through :class:`Wheelhouse` (a build's ``--out``, a worker's
local copy, the controller, a merge), so every writer takes the same lock
(``.wheelfarm-lock``, across threads and processes) and follows the same
order: debug files, then the wheel's listing and provenance, then the wheel,
each by an atomic rename, then the index. A reader (pip, ``wheelfarm serve``,
an index written meanwhile) never finds a wheel without its files, nor half a
file: temporaries are dot names without the ``.whl`` suffix, which no listing
picks up.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.utils import InvalidSdistFilename, parse_sdist_filename
from packaging.version import InvalidVersion

from wheelfarm import fsutil
from wheelfarm.build import debuginfo, provenance
from wheelfarm.build.archive import sha256_file
from wheelfarm.build.debuginfo import DebugFile
from wheelfarm.errors import WheelChanged
from wheelfarm.publish import index
from wheelfarm.publish.index import IndexFile

log = logging.getLogger(__name__)
LOCK = ".wheelfarm-lock"
INCOMING = ".incoming-"  # the prefix of every temporary file in a wheelhouse
Added = Literal["new", "same", "replaced"]
# Only these are ever removed from a stale project directory; anything else there is not ours.
_PAGE_NAMES = ("index.html", "index.json")


@dataclass(frozen=True)
class Debug:
    """How :meth:`Wheelhouse.add` treats debug files: ``once`` keeps a build-id's file
    as it is and leaves out (and logs) one with other bytes, for files a worker sent
    (debuginfod clients trust a build-id's file to stay what it was)."""

    files: Sequence[DebugFile] = ()
    once: bool = False


class Wheelhouse:
    def __init__(self, root: Path, *, index: bool = True) -> None:
        """``index``: rewrite ``simple/`` after every add (else the owner calls
        :meth:`reindex` once it is done, as a build does after its last job)."""
        self.root = root
        self.index = index

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with fsutil.file_lock(self.root / LOCK):
            yield

    def add(self, wheel: Path, statement: Path | None = None,
            debug: Sequence[DebugFile] | Debug = (), *, name: str | None = None,
            sha256: str | None = None) -> Added:
        """Add ``wheel`` (as ``name``, its own name by default) with its provenance
        ``statement`` and
        debug files; whether it is new, the same bytes as the one there, or replaced it.

        With ``sha256``, only those bytes go in: the copy is hashed before it is
        renamed into place, and :class:`WheelChanged` leaves the wheelhouse as it was.
        A wheel already there with the same bytes keeps its provenance. Anything
        else that fails leaves at most debug files no listing names yet.
        """
        rules = debug if isinstance(debug, Debug) else Debug(tuple(debug))
        final = self.root / (name or wheel.name)
        with self.locked():
            added = self._add(wheel, final, statement, rules, sha256)
            if self.index:  # under the lock: an older index never overwrites a newer one
                self._reindex()
        return added

    def _add(self, wheel: Path, final: Path, statement: Path | None, rules: Debug,
             sha256: str | None) -> Added:
        if final.is_file() and sha256_file(final) == (sha256 or sha256_file(wheel)):
            # Left as it is (sync tools go by mtime); its files are brought up to date.
            self._debug(rules, final.name)
            if statement is not None and not _sidecar(final).exists():
                fsutil.copy_file(statement, _sidecar(final), prefix=INCOMING, mode=0o644)
            return "same"
        added: Added = "replaced" if final.exists() else "new"
        with fsutil.atomic_path(final, prefix=INCOMING, mode=0o644) as tmp:
            shutil.copyfile(wheel, tmp)
            if sha256 is not None and sha256_file(tmp) != sha256:
                raise WheelChanged(f"{final.name} changed after it was recorded")
            self._debug(rules, final.name)
            if statement is not None:
                fsutil.copy_file(statement, _sidecar(final), prefix=INCOMING, mode=0o644)
            # Renamed by atomic_path as the block ends: last, after everything it names.
        return added

    def add_files(self, files: Sequence[tuple[str, Path]]) -> None:
        """Copy files in under their relative names (``debug/…`` ones first, so that
        a wheel finds its debug files), in one lock, then index once: for whole
        output directories (a merge, a worker's attempt)."""
        if any(Path(rel).name.startswith(".") for rel, _src in files):
            # A dot name is a lock or a temporary: replacing the lock would break it.
            raise ValueError(f"not adding dot files to a wheelhouse: {sorted(files)}")
        ordered = sorted(files, key=lambda f: (not f[0].startswith(f"{debuginfo.DEBUG_DIR}/"),
                                               f[0]))
        with self.locked():
            for rel, src in ordered:
                dest = self.root / rel
                if src.resolve() != dest.resolve():
                    fsutil.copy_file(src, dest, prefix=INCOMING)
            if self.index:
                self._reindex()

    def _debug(self, rules: Debug, wheel_name: str) -> None:
        if not rules.once:
            debuginfo.place(rules.files, wheel_name, self.root)
            return
        placed = []
        for f in rules.files:
            data = f.path.read_bytes()
            final = debuginfo.out_path(self.root, f.build_id)
            sha = hashlib.sha256(data).hexdigest()
            if sha != f.sha256:
                log.error("%s: %s changed after it was checked; left out", wheel_name, f.path)
                continue
            if final.is_file() and sha256_file(final) != sha:
                log.error("%s: %s is already in the wheelhouse with other bytes; left out",
                          wheel_name, final.name)
                continue
            if not final.is_file():
                fsutil.write_bytes(final, data, prefix=INCOMING, mode=0o644)
            placed.append(DebugFile(f.build_id, f.module, sha, len(data), final))
        debuginfo.place(placed, wheel_name, self.root)

    def reindex(self) -> list[str]:
        """Under the lock, write ``simple/`` for the ``*.whl`` and ``*.tar.gz`` files here; the
        normalized project names, sorted.

        Each project's ``index.html`` (read by pip from ``file://`` and by plain
        static hosting) and ``index.json`` (PEP 691) is replaced atomically, the
        root pages last so they never list a project whose page is not there
        yet. Pages of projects no longer present are removed.
        """
        with self.locked():
            return self._reindex()

    def _reindex(self) -> list[str]:
        groups = files_by_project(self.root)
        simple = self.root / "simple"
        simple.mkdir(parents=True, exist_ok=True)
        for name, files in groups.items():
            _write(simple / name / "index.html", index.render_project_html(name, files))
            _write(simple / name / "index.json", index.render_project_json(name, files))
        _write(simple / "index.html", index.render_root_html(groups))
        _write(simple / "index.json", index.render_root_json(groups))
        for stale in sorted(p for p in simple.iterdir() if p.is_dir() and p.name not in groups):
            for page in _PAGE_NAMES:
                (stale / page).unlink(missing_ok=True)
            if not any(stale.iterdir()):
                stale.rmdir()
        return sorted(groups)


def files_by_project(directory: Path) -> dict[str, list[IndexFile]]:
    """The index entries of the wheels and sdists in ``directory``, by project."""
    groups: dict[str, list[IndexFile]] = {}
    for path in sorted(directory.glob("*.whl")):
        name, entry = index.wheel_file_entry(path)
        groups.setdefault(name, []).append(entry)
    for path in sorted(directory.glob("*.tar.gz")):
        try:
            parse_sdist_filename(path.name)
        except (InvalidSdistFilename, InvalidVersion):
            # Unlike a misnamed wheel, a stray tarball (logs, sources) is not a broken build.
            log.warning("not indexing %s: not an sdist file name", path.name)
            continue
        name, entry = index.sdist_file_entry(path)
        groups.setdefault(name, []).append(entry)
    return groups


def _sidecar(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + provenance.SUFFIX)


def _write(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return  # keep mtimes stable for sync tools when nothing changed
    fsutil.write_bytes(path, data, mode=0o644)  # pages are public
