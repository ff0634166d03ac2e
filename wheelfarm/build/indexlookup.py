"""What a package index offers of a project: its released sdists, their versions and hashes.

The one lookup behind ``wheelfarm add``, ``outdated`` and ``bump``. It asks the
farm's index (PEP 691 JSON, else PEP 503 HTML, through the page reader of
:mod:`wheelfarm.build.source`) and reads only sdists: a recipe builds from one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urljoin

from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename
from packaging.version import InvalidVersion, Version

from wheelfarm.build import source
from wheelfarm.errors import ConfigError, SourceError

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class Sdist:
    """One sdist file on a project's index page."""

    filename: str
    version: Version
    url: str
    sha256: str | None  # None: the index gave no hash (see :func:`find`)
    yanked: bool


def project_url(index_url: str, name: str) -> str:
    return f"{index_url.rstrip('/')}/{canonicalize_name(name)}/"


def sdists(name: str, index_url: str, client: httpx.Client | None = None) -> list[Sdist]:
    """Every sdist of ``name`` on ``index_url``, oldest version first; ``[]`` when the
    index does not know the project. Raises SourceError when the index cannot be read."""
    if client is None:
        with source._http_client() as own:
            return sdists(name, index_url, own)
    page = project_url(index_url, name)
    found = source.project_page(client, page)
    if found is None:
        return []
    body, is_json = found
    try:
        entries = _json_files(page, body) if is_json else _html_files(page, body)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SourceError(f"malformed index page {page}: {exc}") from exc
    want = canonicalize_name(name)
    result = []
    for filename, url, sha, yanked in entries:
        try:
            got, version = parse_sdist_filename(filename)
        except (InvalidSdistFilename, InvalidVersion):
            continue  # wheels, and files no tool could install
        if got == want:
            result.append(Sdist(filename, version, url, sha.lower() if sha else None, yanked))
    return sorted(result, key=lambda s: (s.version, not s.filename.endswith(".tar.gz")))


def _json_files(page: str, body: bytes) -> list[tuple[str, str, str | None, bool]]:
    files: list[dict[str, Any]] = json.loads(body)["files"]
    return [(str(f["filename"]), urljoin(page, str(f["url"])).split("#", 1)[0],
             (f.get("hashes") or {}).get("sha256"), bool(f.get("yanked")))
            for f in files]


def _html_files(page: str, body: bytes) -> list[tuple[str, str, str | None, bool]]:
    files = []
    for text, href, attrs in source.parse_anchors(body.decode("utf-8", "replace")):
        url, fragment = urldefrag(urljoin(page, href))
        sha = fragment[7:] if fragment.startswith("sha256=") else None
        # PEP 592: the attribute's presence marks a yanked file, whatever its value.
        files.append((text or url.rsplit("/", 1)[-1], url, sha, "data-yanked" in attrs))
    return files


def releases(files: Sequence[Sdist]) -> list[Version]:
    """The versions an upgrade may go to: not yanked, not pre-releases, newest last."""
    return sorted({f.version for f in files if not f.yanked and not f.version.is_prerelease})


def find(name: str, version: str, index_url: str, client: httpx.Client | None = None
         ) -> Sdist:
    """The sdist of ``name==version`` (``.tar.gz`` preferred) with its sha256.

    An index that lists no hash has the file downloaded and hashed here: the
    recipe pins what was fetched. ConfigError when the index has no such sdist
    (bad input: the name or version is wrong).
    """
    if client is None:
        with source._http_client() as own:
            return find(name, version, index_url, own)
    wanted = Version(version)
    files = sdists(name, index_url, client)
    matches = [f for f in files if f.version == wanted]
    if not matches:
        known = ", ".join(str(v) for v in releases(files)[-5:])
        hint = f" (newest releases: {known})" if known else " (no sdists of it at all)"
        raise ConfigError(f"{index_url}: no sdist of {name}=={version}{hint}")
    chosen = next((f for f in matches if f.filename.endswith(".tar.gz")), matches[0])
    if chosen.sha256 is not None:
        return chosen
    digest = hashlib.sha256()
    for chunk in source._read_url(client, chosen.url):
        digest.update(chunk)
    return Sdist(chosen.filename, chosen.version, chosen.url, digest.hexdigest(), chosen.yanked)
