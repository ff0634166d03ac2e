"""Fetch a recipe's source (path, sdist from an index, URL, git), verify it, extract it safely.

Everything a job downloads is pinned: archives by sha256, git by full commit id.
Downloads are cached under ``cache_dir`` keyed by their hash and written through
a temp file + rename, so concurrent jobs never see a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

if TYPE_CHECKING:
    import ssl

    import httpx

from packaging.utils import (
    InvalidSdistFilename,
    canonicalize_name,
    parse_sdist_filename,
)
from packaging.version import InvalidVersion, Version

from wheelfarm import __version__
from wheelfarm.build import gitsource
from wheelfarm.build.archive import safe_extract, sha256_file
from wheelfarm.errors import SourceError
from wheelfarm.plan.defaults import DEFAULT_INDEX_URL
from wheelfarm.plan.sourcespec import SourceSpec, ignored_names

__all__ = ["DEFAULT_INDEX_URL", "SourceSpec", "fetch", "safe_extract", "sha256_file"]


SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_CHUNK = 1 << 16
_SIMPLE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
)

def fetch(spec: SourceSpec, dest: Path, *, cache_dir: Path, index_url: str = DEFAULT_INDEX_URL,
          log: IO[str]) -> Path:
    """Materialize the source under ``dest`` (an empty directory owned by one job).

    Returns the project root: the directory holding ``pyproject.toml`` or
    ``setup.py``. Raises :class:`SourceError` for anything that goes wrong
    while fetching, verifying or unpacking.
    """
    # Absolute, because git runs with -C and relative paths would then point elsewhere.
    dest, cache_dir = dest.absolute(), cache_dir.absolute()
    dest.mkdir(parents=True, exist_ok=True)
    if spec.kind == "path":
        return _fetch_path(Path(spec.location), spec.sha256, dest, log)
    if spec.kind == "git":
        _say(log, f"git {spec.location} @ {spec.rev}")
        checkout = gitsource.checkout(spec.location, (spec.rev or "").lower(), dest,
                                      cache_dir, log, _url_filename(spec.location))
        _refuse_links_out(checkout, spec.location)
        return _project_root(checkout, spec.location)
    if spec.sha256 is None:
        raise SourceError(f"{spec.kind} source {spec.location or spec.name} has no sha256 pin")
    sha256 = spec.sha256.lower()
    archive = _cached_sdist(spec, cache_dir, log) if spec.kind == "pypi" else None
    if archive is None:
        with _http_client() as client:
            if spec.kind == "pypi":
                url = _find_sdist(client, spec.name, spec.version, index_url or DEFAULT_INDEX_URL,
                                  log)
            else:
                url = spec.location
            archive = _download(client, url, sha256, cache_dir, log)
    return _unpack(archive, dest, log)


# -- path ---------------------------------------------------------------------------------------

def _fetch_path(src: Path, sha256: str | None, dest: Path, log: IO[str]) -> Path:
    if not src.exists():
        raise SourceError(f"source path not found: {src}")
    if src.is_file():  # a local sdist
        if sha256 is not None:
            _verify(src, sha256)
            _say(log, f"sha256 ok {sha256.lower()}")
        return _unpack(src, dest, log)
    top = src.resolve()

    def ignore(directory: str, names: list[str]) -> set[str]:
        return ignored_names(top, directory, names)

    target = dest / top.name
    _say(log, f"copy {src} -> {target}")
    try:
        shutil.copytree(top, target, symlinks=True, ignore=ignore)
    except (OSError, shutil.Error) as exc:
        raise SourceError(f"cannot copy source path {src}: {exc}") from exc
    _refuse_links_out(target, str(src))
    return _project_root(target, str(src))


def _refuse_links_out(tree: Path, what: str) -> None:
    """Raise :class:`SourceError` for a symlink in ``tree`` that resolves outside it.

    The rule sdists follow (see :mod:`wheelfarm.build.archive`): a build packages what a
    link points at, so a link out would ship any file the farm can read.
    """
    top = os.path.realpath(tree)
    for directory, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                continue
            real = os.path.realpath(path)
            if os.path.commonpath([real, top]) != top:
                message = (f"{what}: {os.path.relpath(path, top)} is a symlink to "
                           f"{os.readlink(path)!r}, outside the source tree")
                shutil.rmtree(top, ignore_errors=True)  # leave nothing that leads out
                raise SourceError(message)


# -- downloads ----------------------------------------------------------------------------------

def _ssl_context() -> ssl.SSLContext:
    """Trust the system store: HTTPS here goes through a proxy whose CA certifi lacks."""
    import ssl  # here, not at the top: planning never downloads, and ssl is slow to load

    for var in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(var)
        if value and os.path.isfile(value):
            return ssl.create_default_context(cafile=value)
        if value and os.path.isdir(value):
            return ssl.create_default_context(capath=value)
    ctx = ssl.create_default_context()
    if os.path.isfile(SYSTEM_CA_BUNDLE):
        ctx.load_verify_locations(cafile=SYSTEM_CA_BUNDLE)
    return ctx


def _http_client() -> httpx.Client:
    """The one place HTTP clients are made (tests substitute a mock transport here)."""
    import httpx  # on first download: planning, and builds from paths, never need it

    return httpx.Client(
        verify=_ssl_context(),
        timeout=httpx.Timeout(60.0, connect=20.0),
        follow_redirects=True,
        headers={"User-Agent": f"wheelfarm/{__version__}"},
    )


def _url_filename(url: str) -> str:
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip(".")
    return name or "download"


@contextlib.contextmanager
def _http_errors(url: str, what: str = "download") -> Iterator[None]:
    """Turn httpx's exception zoo into one clear line."""
    import httpx

    try:
        yield
    except httpx.HTTPStatusError as exc:
        resp = exc.response
        raise SourceError(f"{what} failed: {url}: HTTP {resp.status_code} {resp.reason_phrase}") \
            from exc
    except httpx.TimeoutException as exc:
        raise SourceError(f"{what} timed out: {url}") from exc
    except httpx.HTTPError as exc:
        raise SourceError(f"{what} failed: {url}: {exc or type(exc).__name__}") from exc


def _download(client: httpx.Client, url: str, sha256: str, cache_dir: Path, log: IO[str]) -> Path:
    """Return a cached file holding ``url``'s bytes, whose sha256 is ``sha256``."""
    slot = cache_dir / "downloads" / sha256
    final = slot / _url_filename(url)
    if final.is_file():
        if sha256_file(final) == sha256:
            _say(log, f"fetch {url} (cached)")
            return final
        final.unlink(missing_ok=True)  # damaged cache entry: fetch again
    _say(log, f"fetch {url}")
    tmp: Path | None = None
    try:
        slot.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=slot, prefix=".part-")
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in _read_url(client, url):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        _verify_digest(url, sha256, digest.hexdigest())
        os.replace(tmp, final)
    except OSError as exc:
        raise SourceError(f"cannot store download of {url}: {exc}") from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    _say(log, f"sha256 ok {sha256} ({size} bytes)")
    return final


def _read_url(client: httpx.Client, url: str) -> Iterator[bytes]:
    if url.startswith("file:"):
        try:
            with open(_file_url_path(url), "rb") as fh:
                yield from iter(lambda: fh.read(_CHUNK), b"")
        except OSError as exc:
            raise SourceError(f"download failed: {url}: {exc.strerror or exc}") from exc
        return
    with _http_errors(url), client.stream("GET", url) as resp:
        resp.raise_for_status()
        yield from resp.iter_bytes(_CHUNK)


def _verify_digest(what: str, expected: str, got: str) -> None:
    if got != expected.lower():
        raise SourceError(f"sha256 mismatch for {what}: expected {expected.lower()}, got {got}")


def _verify(path: Path, sha256: str) -> None:
    """Raise :class:`SourceError` unless ``path`` hashes to ``sha256``."""
    _verify_digest(path.name, sha256, sha256_file(path))


def _file_url_path(url: str) -> Path:
    from urllib.request import url2pathname  # imports http.client: only when fetching

    return Path(url2pathname(urlsplit(url).path))


# -- index lookup (PEP 691 JSON, PEP 503 HTML) --------------------------------------------------

def project_page(client: httpx.Client, page: str, what: str = "index lookup",
                 ) -> tuple[bytes, bool] | None:
    """The body of a simple index's project page and whether it is PEP 691 JSON (else
    PEP 503 HTML); None for a project the index lacks."""
    if page.startswith("file:"):
        folder = _file_url_path(page)
        if (folder / "index.json").is_file():
            return (folder / "index.json").read_bytes(), True
        if (folder / "index.html").is_file():
            return (folder / "index.html").read_bytes(), False
        return None
    with _http_errors(page, what):
        resp = client.get(page, headers={"Accept": _SIMPLE_ACCEPT})
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
    return resp.content, resp.headers.get("content-type", "").startswith(
        "application/vnd.pypi.simple.v1+json")


def project_files(client: httpx.Client, page: str, what: str = "index lookup",
                  ) -> list[tuple[str, str, str | None]]:
    """(filename, absolute URL, sha256 or None) for every file on a project page of a
    simple index (PEP 691 JSON, else PEP 503 HTML); ``[]`` for a project it lacks."""
    found = project_page(client, page, what)
    if found is None:
        return []
    body, is_json = found
    try:
        if is_json:
            return [(str(f["filename"]), urljoin(page, str(f["url"])).split("#", 1)[0],
                     (f.get("hashes") or {}).get("sha256"))
                    for f in json.loads(body)["files"]]
        files: list[tuple[str, str, str | None]] = []
        for text, href in parse_links(body.decode("utf-8", "replace")):
            url, fragment = urldefrag(urljoin(page, href))
            sha = fragment[7:] if fragment.startswith("sha256=") else None
            files.append((text or _url_filename(href), url, sha))
        return files
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SourceError(f"malformed index page {page}: {exc}") from exc


def _cached_sdist(spec: SourceSpec, cache_dir: Path, log: IO[str]) -> Path | None:
    """A cached sdist of the pinned hash: the index need not be asked (builds work offline)."""
    slot = cache_dir / "downloads" / (spec.sha256 or "").lower()
    for path in sorted(slot.glob("*")) if slot.is_dir() else []:
        try:
            name, version = parse_sdist_filename(path.name)
        except (InvalidSdistFilename, InvalidVersion):
            continue
        if name == canonicalize_name(spec.name) and version == Version(spec.version) \
                and sha256_file(path) == slot.name:
            _say(log, f"fetch {spec.name}=={spec.version} (cached {path.name})")
            return path
    return None


def _find_sdist(client: httpx.Client, name: str, version: str, index_url: str,
                log: IO[str]) -> str:
    """URL of the sdist of ``name==version`` on ``index_url`` (``.tar.gz`` preferred)."""
    page = f"{index_url.rstrip('/')}/{canonicalize_name(name)}/"
    want_name, want_version = canonicalize_name(name), Version(version)
    found: dict[str, str] = {}
    for filename, url, _sha in project_files(client, page):
        try:
            got_name, got_version = parse_sdist_filename(filename)
        except (InvalidSdistFilename, InvalidVersion):
            continue
        if got_name == want_name and got_version == want_version:
            found[".zip" if filename.endswith(".zip") else ".tar.gz"] = url
    chosen = found.get(".tar.gz") or found.get(".zip")
    if chosen is None:
        raise SourceError(f"no sdist for {name}=={version} on {index_url}")
    _say(log, f"index: {name}=={version} -> {chosen}")
    return chosen


# -- common -------------------------------------------------------------------------------------

def _unpack(archive: Path, dest: Path, log: IO[str]) -> Path:
    _say(log, f"extract {archive.name}")
    safe_extract(archive, dest)
    return _project_root(dest, archive.name)


def _is_project(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() or (path / "setup.py").is_file()


def _project_root(tree: Path, what: str) -> Path:
    """``tree`` itself, or its single top-level directory (the usual sdist layout)."""
    if _is_project(tree):
        return tree
    entries = list(tree.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and _is_project(entries[0]):
        return entries[0]
    raise SourceError(f"{what}: no pyproject.toml or setup.py at the top "
                      "or in a single top-level directory")


def _say(log: IO[str], line: str) -> None:
    log.write(line + "\n")
    log.flush()


# Reading PEP 503 pages, for indexes that do not offer the JSON form (PEP 691).

class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (filename text, href)
        self.attrs: list[dict[str, str | None]] = []  # each anchor's attributes (data-yanked)
        self._href: str | None = None
        self._text: list[str] = []
        self._attrs: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._attrs = dict(attrs)
            self._href = self._attrs.get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append(("".join(self._text).strip(), self._href))
            self.attrs.append(self._attrs)
            self._href = None


def parse_links(page: str) -> list[tuple[str, str]]:
    """(link text, href) of every anchor of a PEP 503 HTML page."""
    return [(text, href) for text, href, _ in parse_anchors(page)]


def parse_anchors(page: str) -> list[tuple[str, str, dict[str, str | None]]]:
    """(link text, href, every attribute) of each anchor of a PEP 503 HTML page."""
    parser = _Links()
    parser.feed(page)
    return [(text, href, attrs) for (text, href), attrs in zip(parser.links, parser.attrs,
                                                                  strict=True)]
