"""Published artifacts: the record of one wheel in the index, and reading a wheel to publish.

A record holds everything the pages are generated from (hashes, sizes,
Requires-Python, yanked) plus what a packager needs to know (Requires-Dist,
the distributions its glibc runs on). Records, not a listing of the store,
are the source of truth for every page.
"""

from __future__ import annotations

import email.parser
import functools
import hashlib
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from wheelfarm.build.debuginfo import read_listing
from wheelfarm.errors import ConfigError
from wheelfarm.plan.targets import DISTROS, distros_for_glibc

SIDECARS = (".asc", ".metadata", ".intoto.json")
_LEGACY_GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY = re.compile(r"^(manylinux1|manylinux2010|manylinux2014)_(\w+)$")
_MACOS = re.compile(r"^macosx_(\d+)_(\d+)_(\w+)$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+!-]*$")
_BUILD_ID = re.compile(r"(?:[0-9a-f]{2}){8,64}")  # as wheelfarm.build.debuginfo: a path part


@dataclass(frozen=True)
class FileRef:
    sha256: str
    size: int

    @classmethod
    def of(cls, data: bytes) -> FileRef:
        return cls(hashlib.sha256(data).hexdigest(), len(data))

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, data: Any) -> FileRef:
        sha, size = data["sha256"], data["size"]
        if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)
                and isinstance(size, int) and size >= 0):
            raise ValueError(f"bad file reference: {data!r}")
        return cls(sha, size)


@dataclass(frozen=True)
class IndexedWheel:
    """One published wheel: ``files/<filename>`` and its sidecars beside it."""

    filename: str
    sha256: str
    size: int
    uploaded: str  # ISO 8601 UTC, when it was first published (PEP 700 upload-time)
    requires_python: str | None = None
    requires_dist: tuple[str, ...] = ()
    sidecars: tuple[tuple[str, FileRef], ...] = ()  # (suffix, ref), sorted by suffix
    yanked: str | None = None  # None: not yanked; "" or a reason: yanked (PEP 592)
    # (build-id, ref) of the debug files split off its modules: buildid/<id>/debuginfo
    debuginfo: tuple[tuple[str, FileRef], ...] = ()
    # What its provenance says of the test step (build.testplaces): "tested", "built
    # and checked, not run" (no place here runs its binaries), "no tests"; None: not
    # recorded (no provenance, or a wheel published before the farm recorded it).
    test: str | None = None

    @property
    def project(self) -> NormalizedName:
        return parse_wheel_filename(self.filename)[0]

    @property
    def version(self) -> Version:
        return parse_wheel_filename(self.filename)[1]

    def sidecar(self, suffix: str) -> FileRef | None:
        return dict(self.sidecars).get(suffix)

    def files(self) -> list[tuple[str, FileRef]]:
        """Every store key of this artifact with its expected hash and size."""
        out = [(f"files/{self.filename}", FileRef(self.sha256, self.size))]
        out += [(f"files/{self.filename}{suffix}", ref) for suffix, ref in self.sidecars]
        out += [(f"buildid/{build_id}/debuginfo", ref) for build_id, ref in self.debuginfo]
        return out

    def to_json(self) -> dict[str, Any]:
        # Only when there are some: manifests of wheels without them keep their bytes.
        debug: dict[str, Any] = {"debuginfo": {b: ref.to_json() for b, ref in self.debuginfo}} \
            if self.debuginfo else {}
        if self.test is not None:
            debug["test"] = self.test
        return {
            **debug,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "uploaded": self.uploaded,
            "requires-python": self.requires_python,
            "requires-dist": list(self.requires_dist),
            "sidecars": {suffix: ref.to_json() for suffix, ref in self.sidecars},
            "yanked": self.yanked,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IndexedWheel:
        filename = data["filename"]
        check_filename(filename)
        sidecars = data.get("sidecars", {})
        if not isinstance(sidecars, dict) or not set(sidecars) <= set(SIDECARS):
            raise ValueError(f"{filename}: unknown sidecars {sidecars!r}")
        ref = FileRef.from_json(data)
        debug = data.get("debuginfo", {})
        if not isinstance(debug, dict) or not all(_BUILD_ID.fullmatch(b) for b in debug):
            raise ValueError(f"{filename}: malformed debuginfo {debug!r}")
        return cls(
            filename=filename, sha256=ref.sha256, size=ref.size,
            uploaded=str(data["uploaded"]),
            requires_python=_opt_str(data.get("requires-python")),
            requires_dist=tuple(str(r) for r in data.get("requires-dist", [])),
            sidecars=tuple(sorted((s, FileRef.from_json(r)) for s, r in sidecars.items())),
            yanked=_opt_str(data.get("yanked")),
            debuginfo=tuple(sorted((b, FileRef.from_json(r)) for b, r in debug.items())),
            test=_opt_str(data.get("test")),
        )


def _opt_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def check_filename(name: str) -> tuple[NormalizedName, Version]:
    """(project, version) of a safe, normalized wheel file name; ConfigError otherwise.

    A name with a path separator could escape ``files/``; a non-normalized one
    (``FastAdd-1.0-...``) would let two spellings of the same wheel coexist.
    """
    if "/" in name or "\\" in name or not _SAFE_NAME.match(name):
        raise ConfigError(f"{name!r}: not a plain wheel file name (path separators or "
                          f"unexpected characters)")
    try:
        project, version, _build, _tags = parse_wheel_filename(name)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise ConfigError(f"{name}: not a valid wheel file name: {exc}") from None
    dist, ver = name.split("-")[:2]
    want_dist = project.replace("-", "_")
    if dist != want_dist or ver != str(version):
        fixed = "-".join([want_dist, str(version), *name.split("-")[2:]])
        raise ConfigError(f"{name}: not a normalized wheel file name; expected {fixed}")
    return project, version


@dataclass(frozen=True)
class Upload:
    """A wheel read from a build directory, checked and ready to publish."""

    path: Path
    filename: str
    project: NormalizedName
    data: bytes
    metadata: bytes  # the wheel's METADATA, served as <wheel>.metadata (PEP 658)
    provenance: bytes | None  # <wheel>.intoto.json from the build directory, if any
    requires_python: str | None
    requires_dist: tuple[str, ...]
    debug: tuple[tuple[str, bytes], ...] = ()  # (build-id, bytes) from <dir>/debug/


def read_upload(path: Path) -> Upload:
    project, version = check_filename(path.name)
    try:
        data = path.read_bytes()
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise ConfigError(f"{path}: expected one .dist-info/METADATA, "
                                  f"found {len(names)}")
            metadata = zf.read(names[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise ConfigError(f"{path}: not a readable wheel: {exc}") from exc
    msg = email.parser.BytesHeaderParser().parsebytes(metadata)
    name = str(msg.get("Name", "")).strip()
    if canonicalize_name(name) != project:
        raise ConfigError(f"{path.name}: METADATA names project {name!r}, "
                          f"the file name says {project!r}")
    try:
        meta_version = Version(str(msg.get("Version", "")).strip())
    except InvalidVersion:
        meta_version = None
    if meta_version != version:
        raise ConfigError(f"{path.name}: METADATA says version {msg.get('Version')!r}, "
                          f"the file name says {version}")
    provenance_path = path.with_name(path.name + ".intoto.json")
    provenance = provenance_path.read_bytes() if provenance_path.is_file() else None
    requires_python = str(msg.get("Requires-Python", "")).strip() or None
    debug = tuple((f.build_id, f.path.read_bytes()) for f in read_listing(path))
    return Upload(
        path=path, filename=path.name, project=project, data=data, metadata=metadata,
        provenance=provenance, requires_python=requires_python,
        requires_dist=tuple(str(r).strip() for r in msg.get_all("Requires-Dist") or []),
        debug=debug,
    )


def distros(filename: str) -> dict[str, str]:
    """Where a wheel runs: ``{"glibc": "2.17", "RHEL": "7+", ...}``.

    Pure wheels run everywhere (``"any"``); a wheel with no manylinux tag
    (``linux_*``, musllinux) makes no claim about these distributions; a macOS
    wheel names the oldest macOS and the architecture its tag promises
    (``{"macos": "11.0", "arch": "arm64"}``).
    """
    # The platform tags are the last part of a (checked) wheel name; many wheels share them.
    return dict(_distros(filename.removesuffix(".whl").rpartition("-")[2]))


@functools.lru_cache(maxsize=256)
def _distros(platform_tags: str) -> tuple[tuple[str, str], ...]:
    platforms = set(platform_tags.split("."))
    return tuple(_distros_of(platforms).items())


def _distros_of(platforms: set[str]) -> dict[str, str]:
    if "any" in platforms:
        return {"glibc": "any", **{d: "any" for d in DISTROS}}
    found: list[tuple[tuple[int, int], str]] = []
    for platform in platforms:
        if m := _MANYLINUX.match(platform):
            found.append(((int(m.group(1)), int(m.group(2))), m.group(3)))
        elif m := _LEGACY.match(platform):
            found.append((_LEGACY_GLIBC[m.group(1)], m.group(2)))
    if not found:
        return _macos_of(platforms)
    glibc, arch = min(found)
    return {"glibc": f"{glibc[0]}.{glibc[1]}", "arch": arch, **distros_for_glibc(glibc)}


def _macos_of(platforms: set[str]) -> dict[str, str]:
    found = sorted(((int(m.group(1)), int(m.group(2))), m.group(3))
                   for p in platforms if (m := _MACOS.match(p)))
    if not found:
        return {}
    (major, minor), arch = found[0]
    return {"macos": f"{major}.{minor}", "arch": arch}
