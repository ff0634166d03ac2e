"""The manifests of a published index, as apt organizes them.

* A **project manifest** (``projects/<p>.<sha>/manifest.json``) holds the
  records of one project's artifacts and the hashes of the pages generated
  from them. It is stored under its own SHA-256, beside those pages.
* The **root manifest** of a generation (``InRelease``, clearsigned like
  apt's) carries the generation number, its date, ``Valid-Until``, what
  changed, and lists every project manifest, the root pages and
  ``SHA256SUMS`` by hash, so one signature covers every file's size and
  SHA-256 while publishing one wheel re-hashes only its project.
* ``SHA256SUMS`` lists every served file for ``sha256sum -c``. Its lines are
  grouped per project so one project's block can be spliced in place.

Everything here is pure: the same records give the same bytes.
"""

from __future__ import annotations

import bisect
import email.utils
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from wheelfarm.publish.artifacts import FileRef, IndexedWheel, distros
from wheelfarm.publish.index import IndexFile, render_project_html, render_project_json
from wheelfarm.publish.store import PAGE_NAMES, ROOT_PAGES

ORIGIN = "wheelfarm"
_HEX = 64


# -- one project ------------------------------------------------------------------------------

def render_pages(project: str, artifacts: Sequence[IndexedWheel]) -> dict[str, bytes]:
    """``distros.json``, ``index.html`` and ``index.json`` of ``simple/<project>/``."""
    entries = []
    for a in artifacts:
        metadata = a.sidecar(".metadata")
        entries.append(IndexFile(
            filename=a.filename, url="../../files/" + quote(a.filename), sha256=a.sha256,
            requires_python=a.requires_python, yanked=a.yanked,
            metadata_sha256=metadata.sha256 if metadata else None, size=a.size,
            upload_time=a.uploaded))
    # Per wheel: where it runs, and whether its build ran its tests (never "tested"
    # for a wheel nothing on the farm could run).
    compat = {a.filename: {**distros(a.filename), **({"test": a.test} if a.test else {})}
              for a in artifacts}
    return {
        "distros.json": _json({"project": project, "wheels": compat}),
        "index.html": render_project_html(project, entries, compat).encode(),
        "index.json": render_project_json(project, entries).encode(),
    }


@dataclass(frozen=True)
class ProjectManifest:
    project: str
    artifacts: tuple[IndexedWheel, ...]  # sorted by file name
    pages: Mapping[str, FileRef] = field(default_factory=dict)

    def files(self) -> list[tuple[str, FileRef]]:
        """Every served path of this project (pages, then artifacts) with its hash."""
        out = [(f"simple/{self.project}/{name}", self.pages[name]) for name in PAGE_NAMES]
        for a in self.artifacts:
            out += a.files()
        return out


def build_project(project: str, artifacts: Sequence[IndexedWheel]
                  ) -> tuple[ProjectManifest, bytes, dict[str, bytes]]:
    """(manifest, its bytes, its pages) for a project's artifacts."""
    ordered = tuple(sorted(artifacts, key=lambda a: a.filename))
    pages = render_pages(project, ordered)
    manifest = ProjectManifest(project, ordered,
                               {name: FileRef.of(data) for name, data in pages.items()})
    data = _json({
        "project": project,
        "artifacts": [a.to_json() for a in ordered],
        "pages": {name: ref.to_json() for name, ref in manifest.pages.items()},
    })
    return manifest, data, pages


def parse_project(data: bytes, project: str) -> ProjectManifest:
    """Parse a project manifest; ValueError if it is malformed or names another project."""
    try:
        raw = json.loads(data)
        if raw["project"] != project:
            raise ValueError(f"names project {raw['project']!r}")
        artifacts = tuple(IndexedWheel.from_json(a) for a in raw["artifacts"])
        pages = {name: FileRef.from_json(raw["pages"][name]) for name in PAGE_NAMES}
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed project manifest: {exc!r}") from None
    if any(a.project != project for a in artifacts):
        raise ValueError("lists a file of another project")
    return ProjectManifest(project, artifacts, pages)


def bundle(project: str, manifest_sha: str) -> str:
    """Where a project's manifest and pages are kept, by the manifest's hash."""
    # One directory, not two levels: a full generation makes one per project. Normalized
    # names have no dots, so the name cannot run into the hash.
    return f"projects/{project}.{manifest_sha}"


def _json(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            + "\n").encode()


# -- the root manifest ------------------------------------------------------------------------

@dataclass(frozen=True)
class Release:
    generation: int
    date: datetime
    valid_until: datetime
    change: str
    changed: tuple[str, ...]  # projects whose manifest differs from the previous generation
    projects: Mapping[str, FileRef]  # project -> its manifest
    files: Mapping[str, FileRef]  # SHA256SUMS and the root pages
    by: str = ""  # who published it (Published-By; older generations have none)

    def render(self) -> str:
        lines = [
            f"Origin: {ORIGIN}",
            f"Generation: {self.generation}",
            f"Date: {_date(self.date)}",
            f"Valid-Until: {_date(self.valid_until)}",
            f"Change: {_one_line(self.change)}",
            *([f"Published-By: {_one_line(self.by)}"] if self.by else []),
            "Changed:",
            *(f" {p}" for p in self.changed),
            "SHA256:",
            *(f" {ref.sha256} {ref.size} {path}" for path, ref in sorted(self.files.items())),
            "Projects:",
            *(f" {ref.sha256} {ref.size} {p}" for p, ref in sorted(self.projects.items())),
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Release:
        """Parse the signed text of an InRelease; ValueError names what is wrong."""
        fields: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in text.splitlines():
            if line.startswith(" ") and current is not None:
                current.append(line[1:])
            elif ":" in line:
                name, _, value = line.partition(":")
                if name in fields:
                    raise ValueError(f"field {name} appears twice")
                current = fields[name] = [value.strip()] if value.strip() else []
            elif line.strip():
                raise ValueError(f"unexpected line {line[:60]!r}")
        try:
            if fields["Origin"] != [ORIGIN]:
                raise ValueError(f"Origin is {fields['Origin']}, not {ORIGIN}")
            generation = int(_single(fields, "Generation"))
            if generation < 1:
                raise ValueError("Generation must be at least 1")
            return cls(
                generation=generation,
                date=_parse_date(_single(fields, "Date")),
                valid_until=_parse_date(_single(fields, "Valid-Until")),
                change=_single(fields, "Change"),
                changed=tuple(fields["Changed"]),
                files=_refs(fields["SHA256"]),
                projects=_refs(fields["Projects"]),
                by=_single(fields, "Published-By") if "Published-By" in fields else "",
            )
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]}") from None


def _single(fields: Mapping[str, list[str]], name: str) -> str:
    values = fields[name]
    if len(values) != 1:
        raise ValueError(f"field {name} must have one value")
    return values[0]


_HEX_DIGITS = frozenset("0123456789abcdef")


def _refs(lines: Sequence[str]) -> dict[str, FileRef]:
    # Split, not a regex: a root manifest lists every project, thousands of lines.
    out: dict[str, FileRef] = {}
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or len(parts[0]) != _HEX or not parts[1].isdigit() \
                or not parts[2] or not _HEX_DIGITS.issuperset(parts[0]):
            raise ValueError(f"malformed hash line {line[:80]!r}")
        out[parts[2]] = FileRef(parts[0], int(parts[1]))
    return out


def _date(when: datetime) -> str:
    return email.utils.format_datetime(when, usegmt=True)


def _parse_date(text: str) -> datetime:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise ValueError(f"bad date {text!r}") from None
    if when.tzinfo is None:
        raise ValueError(f"date without a time zone: {text!r}")
    return when


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip() or "-"


# -- SHA256SUMS -------------------------------------------------------------------------------

def sums_lines(files: Sequence[tuple[str, FileRef]]) -> bytes:
    """``sha256sum`` lines; two spaces: the format ``sha256sum -c`` reads."""
    return "".join(f"{ref.sha256}  {path}\n" for path, ref in files).encode()


def project_sums(manifest: ProjectManifest) -> bytes:
    """One project's block: its pages first (the block starts with distros.json), then files."""
    files = manifest.files()
    pages, artifacts = files[:len(PAGE_NAMES)], sorted(files[len(PAGE_NAMES):])
    return sums_lines(pages + artifacts)


def root_sums(root: Mapping[str, bytes]) -> bytes:
    return sums_lines([(key, FileRef.of(root[key])) for key in ROOT_PAGES])


def full_sums(root: Mapping[str, bytes], blocks: Mapping[str, bytes]) -> bytes:
    return root_sums(root) + b"".join(blocks[p] for p in sorted(blocks))


def splice_sums(old: bytes, old_projects: Sequence[str], blocks: Mapping[str, bytes | None],
                root: Mapping[str, bytes] | None) -> bytes:
    """``old`` with the blocks of the projects in ``blocks`` replaced (None: removed),
    and its root lines replaced too unless ``root`` is None.

    Work is a few ``find`` calls and one copy, not a parse of every line, so
    publishing into a large index stays cheap. ValueError if ``old`` does not
    have the layout of a SHA256SUMS for ``old_projects``.
    """
    ordered = sorted(old_projects)
    pos = 0
    for _ in ROOT_PAGES:
        pos = old.index(b"\n", pos) + 1
    out = [root_sums(root) if root is not None else old[:pos]]
    for project in sorted(blocks):
        start = _block_start(old, project, pos)
        if start >= 0:
            out.append(old[pos:start])
            pos = _block_end(old, start)
        else:
            following = ordered[bisect.bisect_right(ordered, project):]
            start = _block_start(old, following[0], pos) if following else len(old)
            if start < 0:
                raise ValueError(f"no block for {following[0]} in the old SHA256SUMS")
            out.append(old[pos:start])
            pos = start
        block = blocks[project]
        if block:
            out.append(block)
    out.append(old[pos:])
    return b"".join(out)


def _block_start(old: bytes, project: str, pos: int) -> int:
    found = old.find(f"  simple/{project}/{PAGE_NAMES[0]}\n".encode(), pos)
    return found - _HEX if found >= 0 else -1


def _block_end(old: bytes, start: int) -> int:
    found = old.find(f"/{PAGE_NAMES[0]}\n".encode(), old.index(b"\n", start) + 1)
    return old.rfind(b"\n", 0, found) + 1 if found >= 0 else len(old)


def parse_sums(data: bytes) -> dict[str, str]:
    """path -> sha256 of a SHA256SUMS; ValueError for a malformed line."""
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](\S.*)", line)
        if not m:
            raise ValueError(f"malformed line {line[:80]!r}")
        out[m.group(2)] = m.group(1)
    return out
