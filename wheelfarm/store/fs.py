"""The filesystem store: a directory that any static web server (or ``wheelfarm serve``) serves.

Layout::

    files/                      wheels and their .asc, .metadata, .intoto.json (write-once)
    projects/<p>/<sha>/         a project's manifest.json and pages, by manifest hash (write-once)
    generations/<N>/InRelease   the signed root manifest of generation N (the commit record)
    views/<N>/                  generation N as readers see it: simple/ (one symlink per
                                project to its bundle), InRelease, SHA256SUMS, SHA256SUMS.asc
    current -> views/<N>        swapped with one atomic rename
    simple, InRelease, SHA256SUMS, SHA256SUMS.asc -> current/...

Readers resolve ``current`` on every open, so they see one whole generation
or the next, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from ..locks import file_lock
from . import SIGNED_NAMES, StoreError, View, check_key, checkpoint

KEEP_VIEWS = 3  # older views are rebuilt from their generation if ever needed again
_LINKED = ("simple", *SIGNED_NAMES)


class FsStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    # -- objects -----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            real = os.path.realpath(path)
            if os.path.commonpath([real, os.path.realpath(self.root)]) != \
                    os.path.realpath(self.root):
                raise StoreError(f"{path}: points outside the index")
            with open(real, "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._temp(path, data)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc
        checkpoint(key)

    def put_new(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        tmp = self._temp(path, data)
        try:
            # link(2) fails if the name exists: the whole file appears at once, or not at all.
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        checkpoint(key)
        return True

    def _temp(self, path: Path, data: bytes) -> Path:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(name, 0o644)  # mkstemp makes 0600; the index is public
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc
        return Path(name)

    # -- the live view -----------------------------------------------------------------------

    def live_generation(self) -> int:
        try:
            target = os.readlink(self.root / "current")
        except (FileNotFoundError, OSError):
            return 0
        return int(target.rpartition("/")[2])

    def switch(self, view: View) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with file_lock(self.root / ".lock"):
                # Under the lock, so a slow publisher never swaps back to an older view.
                if self.live_generation() >= view.generation:
                    return
                name = f"views/{view.generation}"
                if not (self.root / name).is_dir():
                    self._build(view, self.root / name)
                    checkpoint(name)
                link = self.root / f".current.{os.getpid()}"
                link.unlink(missing_ok=True)
                os.symlink(name, link)
                os.replace(link, self.root / "current")
                checkpoint("current")
                self._ensure_links()
                self._prune(view.generation)
        except OSError as exc:
            raise StoreError(f"{self.root}: switching to generation {view.generation}: "
                             f"{exc.strerror or exc}") from exc

    def _build(self, view: View, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
        try:
            os.chmod(tmp, 0o755)
            simple = tmp / "simple"
            simple.mkdir()
            for key, data in view.root.items():
                _write(tmp / key, data)
            for project, prefix in view.projects.items():
                os.symlink(f"../../../{check_key(prefix)}", simple / check_key(project))
            for signed in SIGNED_NAMES:
                _write(tmp / signed, view.signed[signed])
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _ensure_links(self) -> None:
        for name in _LINKED:
            path = self.root / name
            want = f"current/{name}"
            if path.is_symlink() and os.readlink(path) == want:
                continue
            if path.exists() or path.is_symlink():
                raise StoreError(f"{path}: exists and is not wheelfarm's link to {want}")
            tmp = self.root / f".{name}.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            os.symlink(want, tmp)
            os.replace(tmp, path)

    def _prune(self, live: int) -> None:
        views = self.root / "views"
        for entry in views.iterdir():
            if entry.name.startswith("."):
                # A build interrupted by a crash; no other switch runs while we hold the lock.
                shutil.rmtree(entry, ignore_errors=True)
                continue
            with contextlib.suppress(ValueError):
                if int(entry.name) <= live - KEEP_VIEWS:
                    shutil.rmtree(entry, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o644)
