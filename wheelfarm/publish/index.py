"""Pure page generation for a simple repository: PEP 503 HTML and PEP 691 JSON.

Also PEP 592 (yanked), PEP 658/714 (core metadata) and PEP 700 (versions, size).
Pages are deterministic: the same files give byte-identical pages, so a
publisher can diff and sign them. Nothing here writes: a wheelhouse
(``wheelfarm.farm.wheelhouse``) and a publisher's generations write the pages.
"""

from __future__ import annotations

import email.parser
import hashlib
import html
import json
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from wheelfarm.errors import ConfigError
from wheelfarm.plan.targets import DISTROS

__all__ = [
    "API_VERSION",
    "IndexFile",
    "render_project_html",
    "render_project_json",
    "render_root_html",
    "render_root_json",
    "sdist_file_entry",
    "wheel_file_entry",
]


API_VERSION = "1.1"


@dataclass(frozen=True)
class IndexFile:
    """One downloadable file as listed on a project page."""

    filename: str
    url: str  # relative to the project page, without the hash fragment
    sha256: str
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "" or a reason: yanked (PEP 592)
    metadata_sha256: str | None = None  # set when "<url>.metadata" is served (PEP 658)
    size: int | None = None
    upload_time: str | None = None  # ISO 8601, only if the caller has a stable one


# -- HTML (PEP 503) -----------------------------------------------------------------------------

def _page(title: str, body: Iterable[str]) -> str:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        '    <meta charset="utf-8">',
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>{html.escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{html.escape(title)}</h1>",
        *(f"    {line}" for line in body),
        "  </body>",
        "</html>",
    ]
    return "\n".join(lines) + "\n"


def _attr(name: str, value: str) -> str:
    return f' {name}="{html.escape(value, quote=True)}"'


def render_root_html(projects: Iterable[str]) -> str:
    names = _project_names(projects)
    return _page("Simple index", (f'<a href="{quote(n)}/">{html.escape(n)}</a><br>' for n in names))


def render_project_html(project: str, files: Sequence[IndexFile],
                        distros: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The PEP 503 page; ``distros`` (file name -> {"glibc", "RHEL", ...}) adds a table
    of the distribution releases each wheel runs on. pip reads only the anchors."""
    name = canonicalize_name(project)
    links = []
    for f in _sorted_files(files):
        attrs = _attr("href", f"{f.url}#sha256={f.sha256}")
        if f.requires_python is not None:
            attrs += _attr("data-requires-python", f.requires_python)
        if f.metadata_sha256 is not None:
            # Both names: PEP 714 renamed the attribute; older pips only know the first.
            attrs += _attr("data-dist-info-metadata", f"sha256={f.metadata_sha256}")
            attrs += _attr("data-core-metadata", f"sha256={f.metadata_sha256}")
        if f.yanked is not None:
            attrs += _attr("data-yanked", f.yanked)
        links.append(f"<a{attrs}>{html.escape(f.filename)}</a><br>")
    if distros:
        links += _distro_table(distros)
    return _page(f"Links for {name}", links)


def _distro_table(distros: Mapping[str, Mapping[str, str]]) -> list[str]:
    columns = ["glibc", *DISTROS]
    # macOS wheels and the test status ("tested", "built and checked, not run", ...)
    # only when some wheel has them.
    columns += [c for c in ("macos", "test") if any(c in d for d in distros.values())]
    rows = ["<h2>Runs on</h2>", "<table>",
            "  <tr><th>file</th>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"]
    for filename in sorted(distros):
        cells = "".join(f"<td>{html.escape(distros[filename].get(c) or '-')}</td>"
                        for c in columns)
        rows.append(f"  <tr><td>{html.escape(filename)}</td>{cells}</tr>")
    rows.append("</table>")
    return rows


# -- JSON (PEP 691, v1.1 per PEP 700) -----------------------------------------------------------

def _dump(data: dict[str, Any]) -> str:
    # Compact: json's C encoder; indent= falls back to pure Python, ~10x slower, which
    # shows when a publisher renders thousands of project pages.
    return json.dumps(data, separators=(",", ":")) + "\n"


def render_root_json(projects: Iterable[str]) -> str:
    return _dump({
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": n} for n in _project_names(projects)],
    })


def render_project_json(project: str, files: Sequence[IndexFile]) -> str:
    entries: list[dict[str, Any]] = []
    for f in _sorted_files(files):
        metadata: dict[str, str] | bool = (
            {"sha256": f.metadata_sha256} if f.metadata_sha256 is not None else False)
        entry: dict[str, Any] = {
            "filename": f.filename,
            "url": f.url,
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
            "core-metadata": metadata,
            "dist-info-metadata": metadata,  # the pre-PEP 714 name, for older clients
            "yanked": f.yanked or (f.yanked is not None),
        }
        if f.size is not None:
            entry["size"] = f.size
        if f.upload_time is not None:
            entry["upload-time"] = f.upload_time
        entries.append(entry)
    return _dump({
        "meta": {"api-version": API_VERSION},
        "name": canonicalize_name(project),
        "versions": _versions(files),
        "files": entries,
    })


def _project_names(projects: Iterable[str]) -> list[NormalizedName]:
    return sorted({canonicalize_name(p) for p in projects})


def _sorted_files(files: Sequence[IndexFile]) -> list[IndexFile]:
    return sorted(files, key=lambda f: (f.filename, f.url))


def _versions(files: Sequence[IndexFile]) -> list[str]:
    found: set[Version] = set()
    for f in files:
        try:
            if f.filename.endswith(".whl"):
                # Only the version part: parsing every tag of every wheel costs seconds on a
                # large index, and the files listed here were checked when they were read.
                found.add(Version(f.filename.split("-")[1]))
            else:
                found.add(parse_sdist_filename(f.filename)[1])
        except (IndexError, InvalidSdistFilename, InvalidVersion):
            continue
    return [str(v) for v in sorted(found)]


# -- reading distributions ----------------------------------------------------------------------

def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _entry(path: Path, url_prefix: str, requires_python: str | None) -> IndexFile:
    sidecar = path.with_name(path.name + ".metadata")
    return IndexFile(
        filename=path.name,
        url=url_prefix + quote(path.name),
        sha256=_sha256(path),
        requires_python=requires_python,
        metadata_sha256=_sha256(sidecar) if sidecar.is_file() else None,
        size=path.stat().st_size,
    )


def _headers(raw: bytes) -> tuple[str, str | None]:
    """(Name, Requires-Python) from core metadata."""
    msg = email.parser.BytesHeaderParser().parsebytes(raw)
    requires_python = str(msg.get("Requires-Python", "")).strip()
    return str(msg.get("Name", "")).strip(), requires_python or None


def wheel_file_entry(wheel: Path, url_prefix: str = "../../") -> tuple[str, IndexFile]:
    """(normalized project name, entry) for a wheel, from its METADATA and bytes."""
    try:
        file_name = parse_wheel_filename(wheel.name)[0]
        with zipfile.ZipFile(wheel) as zf:
            metadata = [n for n in zf.namelist()
                        if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(metadata) != 1:
                raise ConfigError(f"{wheel.name}: expected one .dist-info/METADATA, "
                                  f"found {len(metadata)}")
            name, requires_python = _headers(zf.read(metadata[0]))
    except (InvalidWheelFilename, InvalidVersion, zipfile.BadZipFile, OSError) as exc:
        raise ConfigError(f"{wheel}: not a readable wheel: {exc}") from exc
    if canonicalize_name(name) != file_name:
        raise ConfigError(f"{wheel.name}: METADATA names project {name!r}, "
                          f"the file name says {file_name!r}")
    return file_name, _entry(wheel, url_prefix, requires_python)


def sdist_file_entry(sdist: Path, url_prefix: str = "../../") -> tuple[str, IndexFile]:
    """(normalized project name, entry) for a ``.tar.gz`` sdist, reading its PKG-INFO."""
    try:
        name = parse_sdist_filename(sdist.name)[0]
        requires_python = None
        with tarfile.open(sdist, "r:gz") as tf:
            for info in tf:
                if info.isfile() and info.name.count("/") == 1 and \
                        info.name.endswith("/PKG-INFO"):
                    fh = tf.extractfile(info)
                    if fh is not None:
                        requires_python = _headers(fh.read(1 << 20))[1]
                    break
    except (InvalidSdistFilename, InvalidVersion, tarfile.TarError, OSError, EOFError) as exc:
        raise ConfigError(f"{sdist}: not a readable sdist: {exc}") from exc
    return name, _entry(sdist, url_prefix, requires_python)


