"""Stores: where a published index lives (a directory, an S3 bucket).

A store holds objects under ``/``-separated keys relative to the index root.
Everything but the *live view* is written once: artifacts under ``files/``,
content-addressed project bundles under ``projects/``, and the signed root
manifest of each generation under ``generations/<N>/InRelease``, whose
conditional creation is the commit point of a publish. The live view
(``simple/``, ``SHA256SUMS``, ``InRelease``) is switched by :meth:`Store.switch`
in order, one atomic replacement per name: the changed projects' pages, the
root pages, then the checksums and the root manifest last. On a filesystem
each replacement is a rename(2), on S3 an object write.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from wheelfarm.errors import ConfigError, StoreError

__all__ = [
    "PAGE_NAMES",
    "ROOT_PAGES",
    "SIGNED_NAMES",
    "Store",
    "View",
    "check_key",
    "check_prefix",
    "content_type",
    "open_store",
]

# The pages of one project, as served under simple/<project>/ and kept in its bundle.
PAGE_NAMES = ("distros.json", "index.html", "index.json")
ROOT_PAGES = ("simple/index.html", "simple/index.json")
# Written last by a switch, in this order: the checksums, their signature, then
# the root manifest, so a reader who sees a new InRelease sees everything it lists.
SIGNED_NAMES = ("SHA256SUMS", "SHA256SUMS.asc", "InRelease")


@dataclass(frozen=True)
class View:
    """What readers see once a generation is live.

    ``projects`` maps every project to its bundle prefix (``projects/<p>.<sha>``);
    ``changed`` names the projects whose bundle differs from the view being
    replaced (a project in ``changed`` but not in ``projects`` was removed);
    ``root`` holds the bytes of :data:`ROOT_PAGES`, or nothing when the set of
    projects (so the root pages) did not change; ``signed`` holds those of
    :data:`SIGNED_NAMES`.
    """

    generation: int
    projects: Mapping[str, str]
    changed: frozenset[str]
    root: Mapping[str, bytes]
    signed: Mapping[str, bytes] = field(default_factory=dict)


class Store(Protocol):
    url: str

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write (or replace) one object atomically: readers see old or new bytes."""
        ...

    def put_new(self, key: str, data: bytes) -> bool:
        """Create the object only if the key is free; False if it already exists.

        Atomic against concurrent writers: exactly one creator wins.
        """
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix`` (any order), for batched lookups."""
        ...

    def delete(self, key: str) -> None:
        """Remove one object; no error if it is already gone. Only for ``cache/``."""
        ...

    def live_generation(self) -> int:
        """The generation readers see now (0: nothing published yet)."""
        ...

    def switch(self, view: View) -> None:
        """Make ``view`` what readers see, unless a newer generation is already live."""
        ...


# scheme -> "module:class", imported on first use so boto3 loads only for s3://.
REGISTRY: dict[str, str] = {
    "file": "wheelfarm.publish.store.fs:FsStore",
    "s3": "wheelfarm.publish.store.s3:S3Store",
}
# Stores that can only be read (by verify).
READ_ONLY: dict[str, str] = {
    "http": "wheelfarm.publish.store.http:HttpStore",
    "https": "wheelfarm.publish.store.http:HttpStore",
}


def open_store(url: str, *, endpoint_url: str | None = None, read_only: bool = False) -> Store:
    """A store for ``file://PATH``, a plain path, or ``s3://bucket/prefix``; with
    ``read_only``, also ``http(s)://…`` (and a directory must exist)."""
    parts = urlsplit(url)
    scheme = parts.scheme if len(parts.scheme) > 1 else "file"  # "C:" is not a scheme
    known = {**REGISTRY, **READ_ONLY} if read_only else REGISTRY
    try:
        module_name, _, class_name = known[scheme].partition(":")
    except KeyError:
        raise ConfigError(
            f"{url}: unsupported store; expected a directory, file://PATH or s3://BUCKET/PREFIX"
        ) from None
    cls = getattr(importlib.import_module(module_name), class_name)
    if scheme == "file":
        path = Path(parts.path) if parts.scheme == "file" else Path(url)
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{url}: file URLs must name a local path (file:///...)")
        if read_only and not parts.scheme and not path.is_dir():
            raise ConfigError(f"{url}: no such directory")
        store: Store = cls(path.expanduser().absolute())
        return store
    if scheme in READ_ONLY:
        store = cls(url)
        return store
    store = cls(url, endpoint_url=endpoint_url)
    return store


_KEY_PART = re.compile(r"^[A-Za-z0-9_.+=!-][A-Za-z0-9_.+=!~-]*$")


def check_prefix(prefix: str) -> str:
    """A listing prefix: a key, or a key's start (``cache/ab``), or a folder (``cache/``)."""
    body = prefix[:-1] if prefix.endswith("/") else prefix
    if body:
        check_key(body)
    return prefix


def check_key(key: str) -> str:
    """Refuse keys that could leave the index root or mean different things per store."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or not _KEY_PART.match(p) for p in parts):
        raise StoreError(f"refusing an unsafe store key: {key!r}")
    return key


_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".asc": "application/pgp-signature",
    ".whl": "application/octet-stream",
    ".metadata": "text/plain; charset=utf-8",
}


def content_type(key: str) -> str:
    return next((t for suffix, t in _TYPES.items() if key.endswith(suffix)),
                "text/plain; charset=utf-8")


def cache_control(key: str) -> str:
    # Artifacts and bundles never change under their name; the live view does.
    if key.startswith(("files/", "projects/", "generations/")):
        return "public, max-age=31536000, immutable"
    return "no-cache"
