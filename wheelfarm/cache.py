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
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .archive import sha256_file


@dataclass(frozen=True)
class Cached:
    key: str
    filename: str
    sha256: str
    wheel: Path
    provenance: Path | None


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

    def known(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` are recorded: one directory listing per key prefix,
        not one lookup per job (a plan asks about thousands of keys at once)."""
        wanted: dict[str, set[str]] = {}
        for key in keys:
            wanted.setdefault(key[:2], set()).add(key)
        try:
            blobs = {e.name for e in os.scandir(self.root / "blobs")}
        except FileNotFoundError:
            return set()
        found: set[str] = set()
        for prefix, group in wanted.items():
            records = self._records(prefix)
            # A record whose blob was removed is a miss, as in lookup().
            found |= {k for k in group if records.get(k) in blobs}
        return found

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


def _copy_atomically(src: Path, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".blob-")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise
