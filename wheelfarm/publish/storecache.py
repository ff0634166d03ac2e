"""The published store as a cache: job keys of published wheels, in packs.

``wheelfarm publish`` records the job key of each wheel it published in a
pack under ``cache/packs/`` next to the published ``files/``. A plan reads
the packs once for all its keys; a build that hits downloads the published
wheel, checks it against the farm-signed manifests and keeps it in the farm's
artifact cache. :class:`StoreCache` is the build wing's
:class:`~wheelfarm.build.cache.RemoteCache`; :func:`store_cache` opens the
configured one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from wheelfarm.build import debuginfo, provenance
from wheelfarm.build.cache import ArtifactCache, Cached, Record
from wheelfarm.build.debuginfo import DebugFile
from wheelfarm.errors import ConfigError, StoreError, WheelfarmError
from wheelfarm.plan.config import FarmConfig
from wheelfarm.publish.artifacts import FileRef, IndexedWheel
from wheelfarm.publish.manifest import Release, bundle, parse_project
from wheelfarm.publish.signing import KEY_ENV, FarmKey
from wheelfarm.publish.store import Store, open_store

_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILENAME = re.compile(r"[A-Za-z0-9_.+!-]+\.whl")
COMPACT_AT = 16  # packs in the store before a publisher merges them into one


class StoreCache:
    """Job keys published to a store, in *packs*: ``cache/packs/<sha256>.json``.

    Each publish writes one pack naming the job key, sha256 and file name of
    every wheel it published (write-once, named by its content). A lookup
    lists the packs and reads them concurrently, then answers every key from
    memory: a plan of 15,000 jobs costs one listing and a few reads, never a
    request per job (a list request returns only 1,000 names, and S3-compatible
    servers answer it slowly). When a publisher finds more than
    :data:`COMPACT_AT` packs it writes their union as one pack, then deletes
    the packs it merged; a reader that races it misses nothing it needs (a
    vanished pack makes it list again) or, at worst, rebuilds a job.
    """

    PACKS = "cache/packs/"

    def __init__(self, store: Store, opener: Callable[[bytes, str], str] | None = None
                 ) -> None:
        """``opener`` returns the text of a manifest signed by the farm's key (or raises):
        without one, nothing in the store is trusted and every lookup misses."""
        self.store = store
        self.opener = opener
        self._all: dict[str, Record] | None = None
        self._release: Release | Literal[False] | None = False  # False: not read yet
        self._published: dict[str, IndexedWheel] = {}
        self._projects_read: set[str] = set()

    @property
    def url(self) -> str:
        return self.store.url

    def known(self, keys: Iterable[str]) -> dict[str, Record]:
        """key -> record of those ``keys`` the store holds (packs read once per instance).

        Packs are not signed: a record counts only if the live generation, verified
        with the farm's key, lists its file name with its sha256.
        """
        wanted = self.listed(keys)
        return {k: r for k, r in wanted.items() if self._signed(r) is not None}

    def listed(self, keys: Iterable[str]) -> dict[str, Record]:
        """key -> record of those ``keys`` the packs name, unverified (see :meth:`known`)."""
        if self._all is None:
            self._all = self._read()[1]
        everything = self._all
        return {k: everything[k] for k in keys if k in everything}

    def _signed(self, record: Record) -> IndexedWheel | None:
        """The artifact a farm-signed live generation lists for ``record``, or None."""
        if self.opener is None:
            return None
        try:
            project = str(parse_wheel_filename(record.filename)[0])
        except (InvalidWheelFilename, ValueError):
            return None
        if self._release is False:
            signed = self.store.get("InRelease")
            try:
                self._release = Release.parse(self.opener(signed, "InRelease")) \
                    if signed is not None else None
            except ValueError as exc:
                raise StoreError(f"{self.store.url}: InRelease: {exc}") from None
        release = self._release
        if release is None or project not in release.projects:
            return None
        if project not in self._projects_read:
            self._projects_read.add(project)
            ref = release.projects[project]
            key = f"{bundle(project, ref.sha256)}/manifest.json"
            data = self.store.get(key)
            if data is None or FileRef.of(data) != ref:
                raise StoreError(f"{self.store.url}: {key} is missing or altered")
            try:
                manifest = parse_project(data, project)
            except (ValueError, WheelfarmError) as exc:
                raise StoreError(f"{self.store.url}: {key}: {exc}") from None
            self._published.update((a.filename, a) for a in manifest.artifacts)
        artifact = self._published.get(record.filename)
        return artifact if artifact is not None and artifact.sha256 == record.sha256 else None

    def add(self, records: Iterable[Record]) -> str | None:
        """Write one pack of ``records`` (then compact); its key, or None if empty."""
        name = self._write(records)
        if name is not None:
            self._compact()
        return name

    def fetch(self, record: Record, into: ArtifactCache) -> Cached | None:
        """Download the published wheel and its provenance into the farm's cache.

        Packs are not signed, so a hit must be proven by what the farm signed: the
        live generation (verified with the farm's key) must list the wheel with the
        record's sha256 and its provenance by hash, the wheel's bytes must hash to
        that sha256, and the provenance must name this job key; else a miss (None).
        """
        artifact = self._signed(record)
        listed = artifact.sidecar(provenance.SUFFIX) if artifact is not None else None
        if listed is None:
            return None
        data = self.store.get(f"files/{record.filename}")
        if data is None or hashlib.sha256(data).hexdigest() != record.sha256:
            return None
        statement = self.store.get(f"files/{record.filename}{provenance.SUFFIX}")
        if statement is None or FileRef.of(statement) != listed \
                or provenance.job_key(statement) != (record.key, record.sha256):
            return None
        with tempfile.TemporaryDirectory(prefix="store-hit-", dir=_mkdir(into.root)) as tmp:
            wheel = Path(tmp) / record.filename
            wheel.write_bytes(data)
            sidecar = Path(tmp) / (record.filename + provenance.SUFFIX)
            sidecar.write_bytes(statement)
            debug = []
            for build_id, module, sha in provenance.debug_files(statement):
                blob = self.store.get(debuginfo.store_key(build_id))
                if blob is None or hashlib.sha256(blob).hexdigest() != sha:
                    return None
                path = Path(tmp) / f"{build_id}{debuginfo.SUFFIX}"
                path.write_bytes(blob)
                debug.append(DebugFile(build_id, module, sha, len(blob), path))
            into.store(record.key, wheel, sidecar, tuple(debug))
        return into.lookup(record.key)

    def _read(self) -> tuple[list[str], dict[str, Record]]:
        for attempt in range(3):
            names = sorted(n for n in self.store.list(self.PACKS) if n.endswith(".json"))
            with ThreadPoolExecutor(max_workers=max(1, min(16, len(names)))) as pool:
                bodies = list(pool.map(self.store.get, names))
            if all(b is not None for b in bodies) or attempt == 2:
                break  # else a compaction replaced some packs meanwhile: list again
        found: dict[str, Record] = {}
        for body in bodies:
            found.update((r.key, r) for r in _parse_pack(body or b"{}"))
        return [n for n, b in zip(names, bodies, strict=True) if b is not None], found

    def _write(self, records: Iterable[Record]) -> str | None:
        rows = sorted({(r.key, r.sha256, r.filename) for r in records})
        if not rows:
            return None
        body = json.dumps({"schema": 1, "records": rows}, separators=(",", ":")).encode()
        name = f"{self.PACKS}{hashlib.sha256(body).hexdigest()}.json"
        self.store.put_new(name, body)  # False: the same pack exists, which is as good
        return name

    def _compact(self) -> None:
        names, found = self._read()
        if len(names) <= COMPACT_AT:
            return
        merged = self._write(found.values())
        for name in names:  # every one of them is inside the merged pack, written first
            if name != merged:
                self.store.delete(name)


def _parse_pack(body: bytes) -> list[Record]:
    """The well-formed records of a pack; anything else in it is ignored."""
    try:
        rows = json.loads(body).get("records", [])
    except (ValueError, AttributeError):
        return []
    out = []
    for row in rows if isinstance(rows, list) else []:
        if (isinstance(row, list) and len(row) == 3 and all(isinstance(v, str) for v in row)
                and _HEX64.fullmatch(row[0]) and _HEX64.fullmatch(row[1])
                and _FILENAME.fullmatch(row[2])):
            out.append(Record(row[0], row[1], row[2]))
    return out


def store_cache(config: FarmConfig) -> StoreCache | None:
    """The configured store (``[publish] url``) as a cache, or None when there is none."""
    if not config.publish.url:
        return None

    key_id = os.environ.get(KEY_ENV) or config.publish.sign_key
    if not key_id:
        raise ConfigError(f"no key to verify the store's manifests with: set sign-key in "
                          f"[publish] of wheelfarm.toml or {KEY_ENV} (the public key suffices)")
    farm_key = FarmKey(key_id)
    return StoreCache(open_store(config.publish.url,
                                 endpoint_url=config.publish.s3_endpoint_url), farm_key.open)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
