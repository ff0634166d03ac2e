"""Debug files that remote workers upload to the controller (docs/security.md).

A worker is not trusted, so a debug file is kept only as what it claims to
be: an ELF file whose GNU build-id is the name it was uploaded under, split
off a module of the job's own wheel, as the controller reads that wheel
(never the worker's listing). The build-id is the only part of the upload
that reaches a path, and only once it is lower-case hex. A build-id the
wheelhouse already holds with other bytes is refused: debuginfod clients
trust a build-id's file to stay what it was.

When the controller accepts the wheel, :func:`checked` checks the files
again against the recorded wheel, and the wheelhouse copies them into
``wheelhouse/debug/`` and writes the wheel's listing itself.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import BinaryIO

from wheelfarm.build import debuginfo
from wheelfarm.build.archive import sha256_file
from wheelfarm.errors import ConfigError

log = logging.getLogger(__name__)
UPLOAD_DIR = debuginfo.DEBUG_DIR  # beside the uploaded wheel, in the lease's directory
SUFFIX = debuginfo.SUFFIX


def build_id_of_name(filename: str) -> str:
    """The build-id an upload's name claims: ``<build-id>.debug``, lower-case hex."""
    build_id = filename[:-len(SUFFIX)] if filename.endswith(SUFFIX) else ""
    if not debuginfo.is_build_id(build_id):
        raise ConfigError(f"bad debug file name {filename!r}: expected <build-id>{SUFFIX}, "
                          "the build-id in lower-case hex")
    return build_id


def elf_build_id(path: Path) -> str | None:
    """The GNU build-id of an uploaded file, which must be ELF."""
    with path.open("rb") as fh:
        return _build_id_of(fh, path.name)


def _build_id_of_bytes(data: bytes, name: str) -> str | None:
    return _build_id_of(io.BytesIO(data), name)


def _build_id_of(fh: BinaryIO, name: str) -> str | None:
    try:
        if fh.read(4) != debuginfo.ELF_MAGIC:
            raise ConfigError(f"{name}: not an ELF file")
        fh.seek(0)
        return debuginfo.build_id_of(fh)
    except ConfigError:
        raise
    except Exception as exc:  # pyelftools raises many kinds on a malformed file
        raise ConfigError(f"{name}: not a readable ELF file: {exc}") from None


def check_upload(path: Path, build_id: str, lease_dir: Path, wheelhouse: Path) -> None:
    """Refuse an uploaded debug file (ConfigError) unless it is the debug info of a
    module of a wheel already uploaded (and checked) under this lease, and new to
    the wheelhouse or the same bytes as there."""
    found = elf_build_id(path)
    if found != build_id:
        raise ConfigError(f"{build_id}{SUFFIX}: its GNU build-id is {found or 'missing'}, "
                          "not the name it was sent under")
    wheels = sorted(p for p in lease_dir.glob("*.whl")
                    if p.is_file() and not p.name.startswith("."))
    if not any(build_id in debuginfo.module_build_ids(w) for w in wheels):
        raise ConfigError(f"{build_id}{SUFFIX}: no module of the job's uploaded wheel has "
                          "this build-id (upload the wheel first)")
    sha = sha256_file(path)
    for held in (lease_dir / UPLOAD_DIR / f"{build_id}{SUFFIX}",
                 debuginfo.out_path(wheelhouse, build_id)):
        if held.is_file() and sha256_file(held) != sha:
            raise ConfigError(f"{build_id}{SUFFIX}: this build-id is already held with "
                              "other bytes; a debug file is written once")


def checked(wheel: Path, wheel_name: str, lease_dir: Path) -> list[debuginfo.DebugFile]:
    """The uploaded debug files of ``wheel`` (the recorded bytes, being published as
    ``wheel_name``) that are still what they claim, for
    :meth:`~wheelfarm.farm.wheelhouse.Wheelhouse.add` to publish (which writes only
    bytes of the sha256 found here and keeps a build-id's file once written).

    Every file is checked again: one that fails is left out (and logged).
    """
    files: list[debuginfo.DebugFile] = []
    for build_id, module in sorted(debuginfo.module_build_ids(wheel).items()):
        uploaded = lease_dir / UPLOAD_DIR / f"{build_id}{SUFFIX}"
        if not uploaded.is_file():
            continue
        data = uploaded.read_bytes()  # checked and hashed from the same bytes
        try:
            if _build_id_of_bytes(data, uploaded.name) != build_id:
                raise ConfigError(f"{uploaded.name}: its build-id changed after it was checked")
        except ConfigError as exc:
            log.error("%s: debug file not published: %s", wheel_name, exc)
            continue
        files.append(debuginfo.DebugFile(build_id, module, hashlib.sha256(data).hexdigest(),
                                         len(data), uploaded))
    return files
