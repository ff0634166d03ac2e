"""Wheels written by hand, for the tests that need a wheel but no build backend: METADATA,
WHEEL and a RECORD with true hashes, unless a test asks for a RECORD that lies."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path


def record_hash(data: bytes) -> str:
    """The hash field of a RECORD line, as a build backend writes it."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
        b"=").decode()


def make_wheel(out: Path, name: str, version: str = "1.0", tag: str = "py3-none-any", *,
               dist: str | None = None, members: Mapping[str, bytes] | None = None,
               metadata: str = "", purelib: bool | None = None, wheel_file: str | None = None,
               record: bool = True, unrecorded: Collection[str] = (),
               claims: Mapping[str, bytes] | None = None) -> Path:
    """``out/{dist}-{version}-{tag}.whl``, whose METADATA names ``name``.

    ``dist`` is the file name's distribution part (``name`` with ``_`` for ``-`` by
    default); ``members`` are the files beside the dist-info (``{dist}/__init__.py``,
    empty, by default); ``metadata`` is appended to METADATA's headers as given (more
    headers, or a blank line and a body); ``purelib`` defaults to whether ``tag`` is
    pure; ``wheel_file`` replaces the whole WHEEL file.

    The RECORD a test may want broken: ``record=False`` writes none, ``unrecorded``
    members are left out of it, and each of ``claims`` states those bytes' hash
    instead of the member's own.
    """
    dist = dist or name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    if purelib is None:
        purelib = tag.endswith("-none-any")
    files = dict({f"{dist}/__init__.py": b""} if members is None else members)
    files[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                 f"{metadata}").encode()
    files[f"{info}/WHEEL"] = (wheel_file if wheel_file is not None else
                              f"Wheel-Version: 1.0\nGenerator: wheelfarm-test\n"
                              f"Root-Is-Purelib: {str(purelib).lower()}\nTag: {tag}\n").encode()
    stated = {**files, **(claims or {})}
    lines = "".join(f"{n},{record_hash(stated[n])},{len(stated[n])}\n"
                    for n in files if n not in unrecorded)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in files.items():
            zf.writestr(n, data)
        if record:
            zf.writestr(f"{info}/RECORD", lines + f"{info}/RECORD,,\n")
    return path


def pure_wheel(out: Path, name: str, version: str, requires: Sequence[str] = (),
               note: str = "") -> Path:
    """An installable pure wheel whose module holds its version and ``note`` (the bulk
    cases of publishing and serving need no compiler)."""
    dist = name.replace("-", "_")
    return make_wheel(out, name, version, members={
        f"{dist}/__init__.py": f"VERSION = {version!r}\nNOTE = {note!r}\n".encode()},
        metadata="Requires-Python: >=3.8\n" + "".join(f"Requires-Dist: {r}\n" for r in requires))
