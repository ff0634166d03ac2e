"""Safe extraction of source archives: nothing lands outside the destination.

Every member is checked before anything is written (traversal, absolute
paths, links out of the tree, devices, size and count bombs), and extraction
goes through a staging directory, so a refused archive leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wheelfarm.errors import SourceError
from wheelfarm.fsutil import sha256_file as sha256_file  # its callers have long imported it here

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
_CHUNK = 1 << 16

MemberKind = Literal["file", "dir", "symlink", "hardlink", "device file", "fifo", "other"]


@dataclass(frozen=True)
class _Member:
    name: str  # as written in the archive, for messages
    kind: MemberKind
    size: int = 0
    link: str = ""


def safe_extract(archive: Path, dest: Path, *, max_bytes: int = 2 * 1024**3,
                 max_members: int = 100_000) -> None:
    """Unpack a tar or zip archive under ``dest``, refusing anything that could escape it.

    Every member is checked before anything is written; extraction then goes
    into a staging directory that is moved into place only when complete, so a
    refused or broken archive leaves ``dest`` as it was.
    """
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        if _is_zip(archive):
            _extract_zip(archive, staging, max_bytes, max_members)
        else:
            _extract_tar(archive, staging, max_bytes, max_members)
        for entry in staging.iterdir():
            os.replace(entry, dest / entry.name)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise SourceError(f"cannot extract {archive.name}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _is_zip(archive: Path) -> bool:
    if archive.name.endswith(".zip"):
        return True
    if archive.name.endswith(ARCHIVE_SUFFIXES):
        return False
    return zipfile.is_zipfile(archive)  # no telling suffix (e.g. a URL ending in a commit id)


def _extract_tar(archive: Path, staging: Path, max_bytes: int, max_members: int) -> None:
    with tarfile.open(archive, "r:*") as tf:
        infos: list[tarfile.TarInfo] = []
        for info in tf:
            infos.append(info)
            if len(infos) > max_members:
                break  # reading further headers would only cost memory
        _check(archive.name, (_tar_member(i) for i in infos), max_bytes, max_members)
        if hasattr(tarfile, "data_filter"):
            # The data filter repeats the essential checks against the real disk.
            tf.extractall(staging, members=infos, filter="data")
        else:  # Python < 3.11.4: the checks above are the whole defence
            tf.extractall(staging, members=infos)


def _tar_member(info: tarfile.TarInfo) -> _Member:
    kind: MemberKind
    if info.isreg():
        kind = "file"
    elif info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    elif info.ischr() or info.isblk():
        kind = "device file"
    elif info.isfifo():
        kind = "fifo"
    else:
        kind = "other"
    return _Member(info.name, kind, info.size if kind == "file" else 0, info.linkname)


def _extract_zip(archive: Path, staging: Path, max_bytes: int, max_members: int) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        members = [_zip_member(zf, i, archive.name) for i in infos[: max_members + 1]]
        _check(archive.name, members, max_bytes, max_members)
        for info, member in zip(infos, members, strict=True):
            path = staging.joinpath(*_split(member.name))
            if member.kind == "dir":
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if member.kind == "symlink":
                os.symlink(member.link, path)
                continue
            # zipfile stops at the declared file_size, which _check has counted.
            with zf.open(info) as src, open(path, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            if (info.external_attr >> 16) & 0o111:
                path.chmod(0o755)


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str) -> _Member:
    mode = info.external_attr >> 16 if info.create_system == 3 else 0  # 3 = Unix
    if info.is_dir():
        return _Member(info.filename, "dir")
    if stat.S_ISLNK(mode):
        if info.file_size > 4096:
            raise SourceError(f"unsafe archive {archive}: member {info.filename!r} "
                              "is an oversized symlink")
        return _Member(info.filename, "symlink", link=zf.read(info).decode("utf-8", "replace"))
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return _Member(info.filename, "device file")
    if stat.S_ISFIFO(mode):
        return _Member(info.filename, "fifo")
    # zipfile.writestr (and other writers) store permission bits without a file type:
    # that is a plain file, not an unsupported one.
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return _Member(info.filename, "other")
    return _Member(info.filename, "file", info.file_size)


def _split(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


def _check(archive: str, members: Iterable[_Member], max_bytes: int, max_members: int) -> None:
    """Raise :class:`SourceError` naming the first member that could escape or overflow.

    Rules that make lexical checking exact: no member is written through a
    symlink, links are never redefined, hard links point at earlier files, and
    symlink targets are resolved through the archive's other symlinks.
    """
    def unsafe(m: _Member, why: str) -> SourceError:
        return SourceError(f"unsafe archive {archive}: member {m.name!r} {why}")

    total = count = 0
    files: set[tuple[str, ...]] = set()
    seen: set[tuple[str, ...]] = set()
    as_dirs: set[tuple[str, ...]] = set()
    symlinks: dict[tuple[str, ...], str] = {}
    link_members: dict[tuple[str, ...], _Member] = {}
    for m in members:
        count += 1
        if count > max_members:
            raise unsafe(m, f"exceeds the limit of {max_members} members")
        if m.kind in ("device file", "fifo"):
            raise unsafe(m, f"is a {m.kind}")
        if m.kind == "other":
            raise unsafe(m, "has an unsupported type")
        if m.name.startswith("/") or re.match(r"[A-Za-z]:", m.name):
            raise unsafe(m, "has an absolute path")
        parts = _split(m.name)
        if ".." in parts:
            raise unsafe(m, "escapes the destination")
        key = tuple(parts)
        if not key:
            continue
        if any(key[:i] in symlinks for i in range(1, len(key))):
            raise unsafe(m, "lies beneath a symlink")
        is_link = m.kind in ("symlink", "hardlink")
        if (is_link and (key in seen or key in as_dirs)) or key in symlinks:
            raise unsafe(m, "redefines an earlier member as or over a link")
        total += m.size
        if total > max_bytes:
            raise unsafe(m, f"takes the unpacked size over the limit of {max_bytes} bytes")
        if m.kind == "symlink":
            if m.link.startswith("/"):
                raise unsafe(m, f"is a symlink to {m.link!r} outside the destination")
            symlinks[key] = m.link
            link_members[key] = m
        elif m.kind == "hardlink":
            target = _split(m.link)
            if m.link.startswith("/") or ".." in target:
                raise unsafe(m, f"is a hard link to {m.link!r} outside the destination")
            if tuple(target) not in files:
                raise unsafe(m, f"is a hard link to {m.link!r}, not an earlier file")
        elif m.kind == "file":
            files.add(key)
        seen.add(key)
        as_dirs.update(key[:i] for i in range(1, len(key)))
    for key, link in symlinks.items():
        if not _resolves_inside([*key[:-1], *link.split("/")], symlinks):
            raise unsafe(link_members[key], f"is a symlink to {link!r} outside the destination")


def _resolves_inside(parts: list[str], symlinks: dict[tuple[str, ...], str]) -> bool:
    """Follow ``parts`` through the archive's symlinks; False if it climbs above the root."""
    resolved: list[str] = []
    todo = parts[::-1]
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return False
            resolved.pop()
            continue
        resolved.append(part)
        target = symlinks.get(tuple(resolved))
        if target is not None:
            hops += 1
            if hops > 64 or target.startswith("/"):
                return False  # a loop, or absolute: either way not a path inside dest
            resolved.pop()
            todo.extend(target.split("/")[::-1])
    return True
