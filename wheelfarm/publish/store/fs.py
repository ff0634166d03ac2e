"""The filesystem store: a directory that any static web server (or ``wheelfarm serve``) serves.

Layout::

    files/                      wheels and their .asc, .metadata, .intoto.json (write-once)
    projects/<p>.<sha>/         a project's manifest.json and pages, by manifest hash (write-once)
    generations/<N>/InRelease   the signed root manifest of generation N (the commit record)
    simple/<p> -> ../projects/<p>.<sha>     the live pages of each project
    simple/index.html, simple/index.json    the live root pages
    SHA256SUMS, SHA256SUMS.asc
    InRelease -> generations/<N>/InRelease  the live generation, switched last

Every live name is replaced with one rename(2): a project's three pages switch
together through their link, and a reader never finds half a file. Every
write goes through :meth:`FsStore.put`, :meth:`~FsStore.put_new`,
:meth:`~FsStore.delete` or ``_link`` (the tests that stop a publisher at each
write count those).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from wheelfarm import fsutil
from wheelfarm.errors import StoreError
from wheelfarm.fsutil import file_lock
from wheelfarm.publish.store import (
    SIGNED_NAMES,
    View,
    check_key,
    check_prefix,
)

_LIVE_TARGET = re.compile(r"generations/([1-9][0-9]{0,17})/InRelease")


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
            with open(path, "rb") as fh:
                # Opened first: a miss (the common case while publishing) costs one call.
                real = os.path.realpath(path)
                root = os.path.realpath(self.root)
                if os.path.commonpath([real, root]) != root:
                    raise StoreError(f"{path}: points outside the index")
                return fh.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            fsutil.write_bytes(path, data, prefix=".", mode=0o644)  # the index is public
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc

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
        return True

    def list(self, prefix: str) -> list[str]:
        folder, _, start = check_prefix(prefix).rpartition("/")
        base = self.root / folder if folder else self.root
        found = []
        try:
            for directory, dirs, files in os.walk(base):
                rel = os.path.relpath(directory, self.root).replace(os.sep, "/")
                rel = "" if rel == "." else rel + "/"
                if rel == (folder + "/" if folder else ""):
                    dirs[:] = [d for d in dirs if d.startswith(start)]
                # Dot names are a writer's temporary files, not objects.
                found += [rel + name for name in files
                          if not name.startswith(".") and (rel + name).startswith(prefix)]
        except OSError as exc:
            raise StoreError(f"{base}: {exc.strerror or exc}") from exc
        return found

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc

    def _temp(self, path: Path, data: bytes) -> Path:
        try:
            try:
                fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            except FileNotFoundError:
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
            target = os.readlink(self.root / "InRelease")  # generations/<N>/InRelease
        except OSError:
            return 0
        found = _LIVE_TARGET.fullmatch(target)
        if found is None:
            raise StoreError(f"{self.url}: InRelease links to {target!r}, not to "
                             f"generations/<N>/InRelease; the store was altered")
        return int(found.group(1))

    def switch(self, view: View) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with file_lock(self.root / ".lock"):
                # Under the lock, so a slow publisher never switches back to an older view.
                if self.live_generation() >= view.generation:
                    return
                for project in sorted(view.changed & view.projects.keys()):
                    self._link(f"simple/{project}", f"../{check_key(view.projects[project])}")
                for key, data in view.root.items():
                    self.put(key, data)
                for project in sorted(view.changed - view.projects.keys()):
                    self.delete(f"simple/{project}")
                for name in SIGNED_NAMES[:-1]:
                    self.put(name, view.signed[name])
                self._link("InRelease", f"generations/{view.generation}/InRelease")
        except OSError as exc:
            raise StoreError(f"{self.root}: switching to generation {view.generation}: "
                             f"{exc.strerror or exc}") from exc

    def _link(self, key: str, target: str) -> None:
        path = self._path(key)
        if path.exists() and not path.is_symlink():
            raise StoreError(f"{path}: exists and is not wheelfarm's link")
        with fsutil.atomic_path(path, prefix=".") as tmp:
            os.symlink(target, tmp)
