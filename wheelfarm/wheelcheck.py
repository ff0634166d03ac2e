"""Is a wheel what its RECORD says? Checked before a wheel is published.

A wheel must hold one ``.dist-info`` directory with ``WHEEL`` and ``RECORD``;
every member but ``RECORD`` (and its signatures) must be listed there with its
size and a sha256-or-stronger hash that matches, and RECORD lists nothing the
zip does not hold. Anything else is bad input, never a published file.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from pathlib import Path

from .errors import ConfigError

_STRONG = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512",
                     "blake2b"})
_RECORD_SIGNATURES = ("RECORD.jws", "RECORD.p7s")


class WheelCheckError(ConfigError):
    """A wheel whose contents do not match its RECORD, or that lacks WHEEL or RECORD."""


def verify_wheel(path: Path) -> None:
    """Raise :class:`WheelCheckError` (naming the wheel and the member) unless ``path``
    is a readable wheel whose RECORD is true."""
    def bad(why: str) -> WheelCheckError:
        return WheelCheckError(f"{path.name}: {why}")

    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise bad("a member appears twice in the zip")
            for name in names:
                parts = name.split("/")
                if name.startswith("/") or "\\" in name or ".." in parts or "" in parts[:-1]:
                    raise bad(f"unsafe member name {name!r}")
            info_dirs = {n.split("/", 1)[0] for n in names
                         if n.count("/") == 1 and n.split("/", 1)[0].endswith(".dist-info")}
            if len(info_dirs) != 1:
                raise bad(f"expected one .dist-info directory, found {len(info_dirs)}")
            info = info_dirs.pop()
            for required in ("WHEEL", "RECORD"):
                if f"{info}/{required}" not in names:
                    raise bad(f"no {info}/{required}")
            record = zf.read(f"{info}/RECORD").decode("utf-8")
            listed = _parse_record(record, path.name)
            unsigned = {f"{info}/RECORD", *(f"{info}/{s}" for s in _RECORD_SIGNATURES)}
            for member in infos:
                if member.filename in unsigned:
                    continue
                entry = listed.pop(member.filename, None)
                if entry is None:
                    raise bad(f"{member.filename} is not listed in RECORD")
                algorithm, expected, size = entry
                if not algorithm:
                    raise bad(f"RECORD entry of {member.filename} has no hash")
                digest = hashlib.new(algorithm)
                with zf.open(member) as fh:
                    for chunk in iter(lambda: fh.read(1 << 16), b""):
                        digest.update(chunk)
                got = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
                if got != expected or (size is not None and size != member.file_size):
                    raise bad(f"{member.filename} does not match its RECORD entry")
            missing = sorted(listed.keys() - unsigned)
            if missing:
                raise bad(f"RECORD lists {missing[0]}, which the wheel does not hold")
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, EOFError) as exc:
        raise bad(f"not a readable wheel: {exc}") from None


def _parse_record(text: str, wheel: str) -> dict[str, tuple[str, str, int | None]]:
    def bad(why: str) -> WheelCheckError:
        return WheelCheckError(f"{wheel}: {why}")

    out: dict[str, tuple[str, str, int | None]] = {}
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        if len(row) != 3:
            raise bad(f"malformed RECORD line {','.join(row)[:80]!r}")
        name, hashed, size = row
        if name in out:
            raise bad(f"RECORD lists {name} twice")
        if not hashed:
            out[name] = ("", "", None)  # only RECORD itself may go unhashed (checked above)
            continue
        algorithm, _, value = hashed.partition("=")
        if algorithm not in _STRONG or not value:
            raise bad(f"RECORD entry of {name} has no sha256-or-stronger hash")
        out[name] = (algorithm, value, int(size) if size.isdigit() else None)
    return out
