"""Is this file a sound wheel, and is it the wheel of this job?

The controller runs these checks on every wheel a worker uploads before it
accepts it: workers are not trusted (docs/security.md), so a wheel's name,
its zip and its RECORD are checked here, by the controller, not believed.
:func:`check_sound` needs nothing but the file; the publisher runs it on every
wheel before it writes anything, so a wheel whose RECORD lies, or that has no
WHEEL or RECORD, is never published.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import stat
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_wheel_filename,
)

from wheelfarm.errors import WheelfarmError, WheelRefused
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.targets import Target, parse_target

MAX_MEMBERS = 100_000
MAX_UNPACKED = 8 * 1024**3
_HASHES = ("sha256", "sha384", "sha512")  # PEP 376/427: nothing weaker than sha256
_MUSLLINUX = re.compile(r"^musllinux_(\d+)_(\d+)_(\w+)$")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclass(frozen=True)
class Expected:
    """What a job's wheel must be: the recipe's project and version, built for
    the job's Python and target (an abi3 wheel for an older CPython counts, and
    a pure wheel for the job's Python major version runs on any target)."""

    project: str
    version: str
    python: str
    target: str


def expected_of(job_id: int, spec: str | None, python: str, target: str) -> Expected:
    """A queued job's Expected, from the recipe text (or pyproject.toml) it was
    submitted with (its ``spec``, JSON)."""
    try:
        found = json.loads(spec or "{}")
        data = tomllib.loads(str(found["recipe_text"]))
        section = data["project"] if str(found["recipe_path"]).endswith(
            "pyproject.toml") else data["package"]
        return Expected(str(section["name"]), str(section["version"]), python, target)
    except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError):
        raise WheelRefused(f"job {job_id}: its recipe names no project and version "
                           "to check a wheel against") from None


def check_name(filename: str, expected: Expected) -> None:
    """Refuse a wheel file name that is not one of ``expected``'s."""
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise WheelRefused(f"{filename!r} is not a wheel file name: {exc}") from None
    if name != canonicalize_name(expected.project):
        raise WheelRefused(f"{filename}: a wheel of {name}, but the job builds "
                           f"{canonicalize_name(expected.project)}")
    if canonicalize_version(version) != canonicalize_version(expected.version):
        raise WheelRefused(f"{filename}: version {version}, but the job builds "
                           f"{expected.version}")
    try:
        target = parse_target(expected.target)
        python = parse_tag(expected.python)
    except WheelfarmError as exc:
        raise WheelRefused(f"{filename}: the job's own target or python is odd: {exc}") from None
    if not any(_runs_on(tag, python, target) for tag in tags):
        raise WheelRefused(f"{filename}: no tag of it is for {expected.python} on "
                           f"{expected.target}")


def _runs_on(tag: Tag, python: tuple[int, int], target: Target) -> bool:
    """Whether pip would install a wheel with ``tag`` for the job's Python on its target."""
    if tag.platform == "any":  # pure Python: any target, for a Python it names
        m = re.fullmatch(r"(?:py|cp)(\d)(\d*)", tag.interpreter)
        return tag.abi == "none" and m is not None and int(m.group(1)) == python[0] and (
            not m.group(2) or int(m.group(2)) <= python[1])
    if tag.interpreter == f"cp{python[0]}{python[1]}":
        python_ok = tag.abi in (tag.interpreter, "abi3", "none")
    else:
        m = re.fullmatch(r"cp(\d)(\d+)", tag.interpreter)
        python_ok = m is not None and tag.abi == "abi3" and (
            int(m.group(1)), int(m.group(2))) <= python
    return python_ok and _platform_ok(tag.platform, target)


def _platform_ok(platform: str, target: Target) -> bool:
    if target.is_macos:
        # A wheel for an older macOS runs wherever the target's does (same arch).
        m = re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", platform)
        return (m is not None and m.group(3) == target.arch and target.macos is not None
                and (int(m.group(1)), int(m.group(2))) <= target.macos)
    if platform == f"linux_{target.arch}":
        return target.kind == "linux"
    if m := _MUSLLINUX.match(platform):
        # A wheel for an older musl runs wherever the target's does; never on glibc.
        musl = (int(m.group(1)), int(m.group(2)))
        return (target.kind == "musllinux" and m.group(3) == target.arch
                and target.musl is not None and musl <= target.musl)
    if m := _MANYLINUX.match(platform):
        glibc, arch = (int(m.group(1)), int(m.group(2))), m.group(3)
    else:
        legacy, _, arch = platform.partition("_")
        if legacy not in _LEGACY:
            return False
        glibc = _LEGACY[legacy]
    if arch != target.arch or target.kind == "linux":
        return False
    # A wheel for an older glibc runs wherever the target's does.
    return target.kind == "manylinux-auto" or (target.glibc is not None and glibc <= target.glibc)


def check_sound(wheel: Path) -> None:
    """Refuse a wheel whose zip could escape where it is installed, or whose
    RECORD does not state every member's true sha256 and size."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            infos = zf.infolist()
            names = _safe_members(wheel.name, infos)
            record = _record_name(wheel.name, names)
            listed = _read_record(wheel.name, zf.read(record).decode("utf-8"))
            for info in infos:
                if info.is_dir() or _unrecorded(info.filename, record):
                    continue
                entry = listed.pop(info.filename, None)
                if entry is None:
                    raise WheelRefused(f"{wheel.name}: {info.filename} is not in its RECORD")
                _check_entry(wheel.name, zf, info, entry)
            if extra := sorted(n for n in listed if not _unrecorded(n, record)):
                raise WheelRefused(f"{wheel.name}: its RECORD lists {extra[0]}, "
                                   "which the wheel does not hold")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, csv.Error, EOFError,
            ValueError) as exc:
        raise WheelRefused(f"{wheel.name}: not a readable wheel: {exc}") from None


def _safe_members(wheel: str, infos: Sequence[zipfile.ZipInfo]) -> set[str]:
    if len(infos) > MAX_MEMBERS:
        raise WheelRefused(f"{wheel}: more than {MAX_MEMBERS} members")
    names: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name).parts
        if (name.startswith("/") or "\\" in name or re.match(r"[A-Za-z]:", name)
                or ".." in parts or "\0" in name):
            raise WheelRefused(f"{wheel}: member {name!r} would be written outside the "
                               "install directory")
        # No type bits at all is a plain file: zipfile.writestr() writes just 0o600.
        kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise WheelRefused(f"{wheel}: member {name!r} is not a plain file")
        if name in names:
            raise WheelRefused(f"{wheel}: member {name!r} appears twice")
        names.add(name)
        total += info.file_size
        if total > MAX_UNPACKED:
            raise WheelRefused(f"{wheel}: unpacks to more than {MAX_UNPACKED} bytes")
    return names


def _record_name(wheel: str, names: set[str]) -> str:
    name, version, _build, _tags = parse_wheel_filename(wheel)
    found = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/RECORD", n)]
    ours = [n for n in found
            if _dist_info_matches(n.split("/")[0], str(name), str(version))]
    if len(found) != 1 or len(ours) != 1:
        raise WheelRefused(f"{wheel}: expected one RECORD, in {name}-{version}.dist-info")
    if f"{ours[0].split('/')[0]}/WHEEL" not in names:
        raise WheelRefused(f"{wheel}: no WHEEL file in its .dist-info")
    return ours[0]


def _dist_info_matches(directory: str, name: str, version: str) -> bool:
    dist, _, ver = directory.removesuffix(".dist-info").rpartition("-")
    return (canonicalize_name(dist) == name
            and canonicalize_version(ver) == canonicalize_version(version))


def _unrecorded(name: str, record: str) -> bool:
    """RECORD itself, and its signatures, are listed without a hash."""
    return name in (record, record + ".jws", record + ".p7s")


def _read_record(wheel: str, text: str) -> dict[str, tuple[str, str]]:
    listed: dict[str, tuple[str, str]] = {}
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        if len(row) != 3:
            raise WheelRefused(f"{wheel}: a RECORD line has {len(row)} fields, not 3")
        if row[0] in listed:
            raise WheelRefused(f"{wheel}: its RECORD lists {row[0]} twice")
        listed[row[0]] = (row[1], row[2])
    return listed


def _check_entry(wheel: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo,
                 entry: tuple[str, str]) -> None:
    digest, size = entry
    algorithm, _, value = digest.partition("=")
    if algorithm not in _HASHES:
        raise WheelRefused(f"{wheel}: RECORD gives {info.filename} no sha256 (or stronger) hash")
    hasher = hashlib.new(algorithm)
    length = 0
    with zf.open(info) as fh:  # in chunks: a member may be hundreds of megabytes
        while chunk := fh.read(1 << 20):
            hasher.update(chunk)
            length += len(chunk)
    actual = base64.urlsafe_b64encode(hasher.digest()).rstrip(b"=")
    if actual.decode() != value.rstrip("="):
        raise WheelRefused(f"{wheel}: {info.filename} does not match its RECORD hash")
    if size and size != str(length):
        raise WheelRefused(f"{wheel}: {info.filename} does not match its RECORD size")
