"""The artifact cache: what this farm already built, by content key.

``wheelfarm build`` records every wheel it built here (whatever ``--out``
was), keyed by the job's content key; a job whose key is recorded is a cache
hit and its wheel is reused instead of rebuilt. Keys hash every input of a
build, so a hit is the same wheel by construction.

It lives in the farm directory (``.wheelfarm/artifacts/``), not in the
shareable toolchain cache: a farm's record of what *it* built. Layout:
``keys/<k[:2]>/<key>.<sha256>.json`` names the wheel (the sha256 is in the
file name too, so a listing tells whether the blob is there);
``blobs/<sha256>/`` holds the wheel and its provenance.

The configured store (``[publish] url``) is the second place, a
:class:`RemoteCache` that the farm or the CLI hands to :class:`Caches`
(``wheelfarm.publish.storecache``: publishing writes it, and this wing does not
import publishing). A hit there is downloaded, checked and kept in the farm's
cache.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from wheelfarm import fsutil
from wheelfarm.build import debuginfo
from wheelfarm.build.archive import sha256_file
from wheelfarm.build.debuginfo import DebugFile
from wheelfarm.errors import ConfigError, WheelfarmError


@dataclass(frozen=True)
class Cached:
    key: str
    filename: str
    sha256: str
    wheel: Path
    provenance: Path | None
    debug: tuple[DebugFile, ...] = ()  # the debug files split off its modules


@dataclass(frozen=True)
class Record:
    """What is known of a built key without fetching anything."""

    key: str
    sha256: str
    filename: str


class ArtifactCache:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "artifacts"

    def _records(self, prefix: str) -> dict[str, str]:
        """key -> sha256 of every record under one key prefix."""
        try:
            names = [e.name for e in os.scandir(self.root / "keys" / prefix)]
        except FileNotFoundError:
            return {}
        found = {}
        for name in names:
            key, _, rest = name.partition(".")
            if rest.endswith(".json"):
                found[key] = rest[:-5]
        return found

    def lookup(self, key: str) -> Cached | None:
        sha = self._records(key[:2]).get(key)
        if sha is None:
            return None
        path = self.root / "keys" / key[:2] / f"{key}.{sha}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        blob = self.root / "blobs" / data["sha256"]
        wheel = blob / data["filename"]
        if not wheel.is_file():
            return None  # a record whose blob was removed is a miss, not an error
        sidecar = blob / (data["filename"] + ".intoto.json")
        try:
            debug = debuginfo.read_listing(wheel)
        except ConfigError:
            return None  # a debug file gone or damaged: build again rather than ship without
        return Cached(key, data["filename"], data["sha256"], wheel,
                      sidecar if sidecar.is_file() else None, debug)

    def known(self, keys: Iterable[str]) -> dict[str, str]:
        """key -> sha256 of those ``keys`` that are recorded: one directory listing
        per key prefix, not one lookup per job (a plan asks about thousands)."""
        wanted: dict[str, set[str]] = {}
        for key in keys:
            wanted.setdefault(key[:2], set()).add(key)
        try:
            blobs = {e.name for e in os.scandir(self.root / "blobs")}
        except FileNotFoundError:
            return {}
        found: dict[str, str] = {}
        for prefix, group in wanted.items():
            records = self._records(prefix)
            # A record whose blob was removed is a miss, as in lookup().
            found.update((k, records[k]) for k in group if records.get(k) in blobs)
        return found

    def record(self, key: str, sha256: str) -> Record | None:
        """The record of a key :meth:`known` reported (reads its file for the name)."""
        path = self.root / "keys" / key[:2] / f"{key}.{sha256}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Record(key, sha256, str(data["filename"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, key: str, wheel: Path, provenance: Path | None,
              debug: tuple[DebugFile, ...] = ()) -> None:
        """Record ``wheel`` (its provenance and debug files) under ``key``; blobs first,
        record last."""
        digest = sha256_file(wheel)
        blob = self.root / "blobs" / digest
        blob.mkdir(parents=True, exist_ok=True)
        for src in (wheel, provenance):
            if src is not None and not (blob / src.name).exists():
                fsutil.copy_file(src, blob / src.name, prefix=".blob-")
        debuginfo.place(debug, wheel.name, blob)
        folder = self.root / "keys" / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        stale = self._records(key[:2]).get(key)
        fsutil.write_text(folder / f"{key}.{digest}.json",
                          json.dumps({"filename": wheel.name, "sha256": digest}),
                          prefix=".record-")
        if stale is not None and stale != digest:
            (folder / f"{key}.{stale}.json").unlink(missing_ok=True)


class RemoteCache(Protocol):
    """A second record of built keys (the published store: ``wheelfarm.publish.storecache``)."""

    @property
    def url(self) -> str: ...

    def known(self, keys: Iterable[str]) -> dict[str, Record]:
        """key -> record of those ``keys`` it holds, trusted ones only."""
        ...

    def fetch(self, record: Record, into: ArtifactCache) -> Cached | None:
        """Download a recorded wheel (and its files) into ``into``; None if it is not
        what the record says."""
        ...


OpenRemote = Callable[[], "RemoteCache | None"]


class Caches:
    """Where a plan and a build look for a built key: the farm's artifact cache,
    then the remote one, opened on first use. A remote that cannot be opened or
    read is a note (for a warning or the job's log), never an error: its jobs
    are built, never wrongly skipped."""

    def __init__(self, local: ArtifactCache, remote: OpenRemote | None = None) -> None:
        self.local = local
        self._open = remote
        self._remote: RemoteCache | Literal[False] | None = False  # False: not opened yet
        self._problem = ""
        self._guard = threading.Lock()

    def remote(self) -> tuple[RemoteCache | None, str]:
        with self._guard:
            if self._remote is False:
                try:
                    self._remote = self._open() if self._open is not None else None
                except WheelfarmError as exc:
                    self._remote = None
                    self._problem = f"the store is not used as a cache: {exc}"
            return self._remote, self._problem

    def known(self, keys: list[str]) -> tuple[dict[str, str | Record], str]:
        """Keys already built: key -> sha256 (the farm's cache) or the remote's record;
        and a problem with the remote ("" if none). The remote is asked only about
        keys the farm has not built itself."""
        found: dict[str, str | Record] = dict(self.local.known(keys))
        missing = [k for k in keys if k not in found]
        if not missing:
            return found, ""
        remote, problem = self.remote()
        if remote is None:
            return found, problem
        try:
            found.update(remote.known(missing))
        except WheelfarmError as exc:
            return found, f"the store is not used as a cache: {exc}"
        return found, ""

    def hit(self, key: str) -> tuple[Cached | None, str]:
        """The farm's own record of the key, else the remote's (downloaded into the
        farm's cache); and a line for the job's log."""
        hit = self.local.lookup(key)
        if hit is not None:
            return hit, "cache hit in the farm's artifact cache"
        remote, problem = self.remote()
        if remote is None:
            return None, problem
        try:
            record = remote.known([key]).get(key)
            if record is None:
                return None, f"not in the store's cache ({remote.url})"
            hit = remote.fetch(record, self.local)
        except WheelfarmError as exc:
            return None, f"the store's cache could not be read, building: {exc}"
        if hit is None:
            return None, (f"the store's record of this key names {record.filename} "
                          f"sha256 {record.sha256}, which the store does not hold; building")
        return hit, f"cache hit in the store {remote.url}"
