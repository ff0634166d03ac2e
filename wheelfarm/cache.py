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

The configured store (``[publish] url``) is the second place: ``wheelfarm
publish`` records each wheel's job key there as ``cache/<key>.<sha256>.<wheel
file name>`` next to the published ``files/``. Everything a lookup needs is
in the object's name, so a plan asks about 15,000 keys with a few listings
(:class:`StoreCache`), and a build that hits downloads the published wheel,
checks its sha256 and keeps it in the farm's cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .archive import sha256_file

if TYPE_CHECKING:
    from .config import FarmConfig
    from .store import Store


@dataclass(frozen=True)
class Cached:
    key: str
    filename: str
    sha256: str
    wheel: Path
    provenance: Path | None


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
        return Cached(key, data["filename"], data["sha256"], wheel,
                      sidecar if sidecar.is_file() else None)

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

    def store(self, key: str, wheel: Path, provenance: Path | None) -> None:
        """Record ``wheel`` (and its provenance) under ``key``; blobs first, record last."""
        digest = sha256_file(wheel)
        blob = self.root / "blobs" / digest
        blob.mkdir(parents=True, exist_ok=True)
        for src in (wheel, provenance):
            if src is not None and not (blob / src.name).exists():
                _copy_atomically(src, blob / src.name)
        folder = self.root / "keys" / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        stale = self._records(key[:2]).get(key)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".record-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"filename": wheel.name, "sha256": digest}, fh)
        os.replace(tmp, folder / f"{key}.{digest}.json")
        if stale is not None and stale != digest:
            (folder / f"{key}.{stale}.json").unlink(missing_ok=True)


_NAME = re.compile(r"^cache/([0-9a-f]{64})\.([0-9a-f]{64})\.(.+\.whl)$")
# Below this many keys one listing per key beats listing every record in the store.
_FEW = 48


class StoreCache:
    """Job keys published to a store: ``cache/<key>.<sha256>.<filename>``."""

    PREFIX = "cache/"

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def name(record: Record) -> str:
        return f"{StoreCache.PREFIX}{record.key}.{record.sha256}.{record.filename}"

    def known(self, keys: Iterable[str]) -> dict[str, Record]:
        """key -> record of those ``keys`` the store holds.

        Batched: a few keys are listed one prefix each, many keys by listing
        the 16 first-hex-digit prefixes concurrently (a list request returns
        1,000 names), never one request per job of a large plan.
        """
        wanted = set(keys)
        if not wanted:
            return {}
        prefixes = ([f"{self.PREFIX}{k}." for k in sorted(wanted)] if len(wanted) <= _FEW
                    else [f"{self.PREFIX}{h}" for h in "0123456789abcdef"])
        with ThreadPoolExecutor(max_workers=min(16, len(prefixes))) as pool:
            listings = list(pool.map(self.store.list, prefixes))
        found: dict[str, Record] = {}
        for names in listings:
            for name in names:
                m = _NAME.match(name)
                if m and m.group(1) in wanted:
                    found[m.group(1)] = Record(m.group(1), m.group(2), m.group(3))
        return found

    def put(self, record: Record) -> bool:
        """Record a published wheel's key (write-once); False if it was already there."""
        body = json.dumps({"schema": 1, "key": record.key, "sha256": record.sha256,
                           "filename": record.filename}, sort_keys=True).encode()
        return self.store.put_new(self.name(record), body)

    def fetch(self, record: Record, into: ArtifactCache) -> Cached | None:
        """Download the published wheel (and its provenance) into the farm's cache.

        Bytes that do not match the record's sha256 are refused (None): the
        record is not signed, the wheel's digest is what a hit must match.
        """
        data = self.store.get(f"files/{record.filename}")
        if data is None or hashlib.sha256(data).hexdigest() != record.sha256:
            return None
        statement = self.store.get(f"files/{record.filename}.intoto.json")
        with tempfile.TemporaryDirectory(prefix="store-hit-", dir=_mkdir(into.root)) as tmp:
            wheel = Path(tmp) / record.filename
            wheel.write_bytes(data)
            sidecar = None
            if statement is not None:
                sidecar = Path(tmp) / (record.filename + ".intoto.json")
                sidecar.write_bytes(statement)
            into.store(record.key, wheel, sidecar)
        return into.lookup(record.key)


def store_cache(config: FarmConfig) -> StoreCache | None:
    """The configured store (``[publish] url``) as a cache, or None when there is none."""
    if not config.publish.url:
        return None
    from .store import open_store  # boto3 loads only for an s3:// store

    return StoreCache(open_store(config.publish.url,
                                 endpoint_url=config.publish.s3_endpoint_url))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _copy_atomically(src: Path, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".blob-")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise
