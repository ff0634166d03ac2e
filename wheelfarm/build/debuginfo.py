"""Debug info: split off every ELF module of a wheel, kept per GNU build-id.

The shipped module is stripped (DWARF and the symbol table go); what was
removed is kept as ``<build-id>.debug``, the file a debuginfod client asks
for by build-id alone. ``eu-strip`` (elfutils) does the split because it
reads every ELF architecture, where the host's ``objcopy`` reads only its
own and ``zig objcopy`` cannot keep debug info.

Where the files go:

* the output directory: ``<out>/debug/<build-id>.debug``, and per wheel a
  listing ``<out>/debug/<wheel>.json`` (module, build-id, sha256, size);
* the farm's artifact cache, beside the wheel and its provenance;
* the published store, in the debuginfod layout ``buildid/<build-id>/debuginfo``.

Recipe key ``build.debug-symbols``: ``"split"`` (the default), ``"strip"``
(the debug info is dropped), ``"keep"`` (shipped inside the wheel, unstripped).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection

from wheelfarm import fsutil, proc
from wheelfarm.errors import BuildError, ConfigError
from wheelfarm.plan.profiles import DebugSymbols

DEBUG_DIR = "debug"  # under the output directory
SUFFIX = ".debug"
ELF_MAGIC = b"\x7fELF"
# A GNU build-id is a hash: 8 bytes (xxhash) to 64; sha1 gives 20. Lower-case hex only,
# so that a build-id can be a store key and a path part with one spelling.
_BUILD_ID = re.compile(r"(?:[0-9a-f]{2}){8,64}")
_DWARF = re.compile(r"\.z?debug_")


@dataclass(frozen=True)
class DebugFile:
    """One module's split-off debug info."""

    build_id: str
    module: str  # the member of the wheel it belongs to
    sha256: str
    size: int
    path: Path

    def to_json(self) -> dict[str, object]:
        return {"buildId": self.build_id, "module": self.module, "sha256": self.sha256,
                "size": self.size}


def is_build_id(text: str) -> bool:
    return _BUILD_ID.fullmatch(text) is not None


def store_key(build_id: str) -> str:
    """Where a store (and so ``wheelfarm serve``) keeps a debug file: debuginfod's layout."""
    if not is_build_id(build_id):
        raise ConfigError(f"{build_id!r}: not a GNU build-id (lower-case hex, 16 to 128 digits)")
    return f"buildid/{build_id}/debuginfo"


def out_path(out_dir: Path, build_id: str) -> Path:
    if not is_build_id(build_id):
        raise ConfigError(f"{build_id!r}: not a GNU build-id (lower-case hex, 16 to 128 digits)")
    return out_dir / DEBUG_DIR / f"{build_id}{SUFFIX}"


def listing_path(wheel: Path) -> Path:
    """The listing of a wheel's debug files, in the ``debug/`` folder beside the wheel."""
    return wheel.parent / DEBUG_DIR / f"{wheel.name}.json"



# -- reading ELF --------------------------------------------------------------------------------

def build_id_of(stream: IO[bytes]) -> str | None:
    """The GNU build-id of an ELF file, from its notes; None when it has none."""
    elf = ELFFile(stream)
    for section in elf.iter_sections():
        if isinstance(section, NoteSection):
            for note in section.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID":
                    return str(note["n_desc"]).lower()
    return None


def module_build_ids(wheel: Path) -> dict[str, str]:
    """Build-id -> member, for every ELF module of ``wheel`` that has a build-id.

    For a wheel from elsewhere (a remote worker's): an unreadable wheel or
    module is a ConfigError, whatever pyelftools raised on it.
    """
    found: dict[str, str] = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                with zf.open(info) as fh:
                    if info.is_dir() or fh.read(4) != ELF_MAGIC:
                        continue
                # Through a file: a module may be large, and ELFFile seeks to and fro.
                with zf.open(info) as src, tempfile.TemporaryFile() as tmp:
                    shutil.copyfileobj(src, tmp)
                    tmp.seek(0)
                    build_id = build_id_of(tmp)
                if build_id is not None and is_build_id(build_id):
                    found.setdefault(build_id, info.filename)
    except Exception as exc:  # pyelftools raises many kinds on a malformed file
        raise ConfigError(f"{wheel.name}: cannot read its modules' build-ids: {exc}") from None
    return found


def dwarf_sections(stream: IO[bytes]) -> list[str]:
    """Names of the DWARF sections (``.debug_*``, ``.zdebug_*``) an ELF file holds."""
    return [s.name for s in ELFFile(stream).iter_sections() if _DWARF.match(s.name)]


# -- splitting a wheel --------------------------------------------------------------------------

def split_wheel(wheel: Path, mode: DebugSymbols, dest: Path, *,
                log: IO[str] | None = None) -> tuple[DebugFile, ...]:
    """Give every ELF module of ``wheel`` a checked build-id and strip it per ``mode``.

    The wheel is rewritten in place (its RECORD updated); the debug files go
    to ``dest``. Fails, naming the module, when one has no build-id or, once
    stripped, still holds DWARF.
    """
    with zipfile.ZipFile(wheel) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        members = {i.filename: zf.read(i) for i in infos}
    elves = sorted(n for n, data in members.items() if data[:4] == ELF_MAGIC)
    ids: dict[str, str] = {}
    for name in elves:
        build_id = build_id_of(io.BytesIO(members[name]))
        if build_id is None or not is_build_id(build_id):
            raise BuildError(f"{name}: has no GNU build-id; link it with -Wl,--build-id=sha1 "
                             f"(debug files are published by build-id)")
        ids[name] = build_id
    if mode == "keep" or not elves:
        return ()
    if shutil.which("eu-strip") is None:
        raise BuildError("eu-strip (elfutils) is needed to split debug info; install elfutils "
                         "or set build.debug-symbols = \"keep\"")
    dest.mkdir(parents=True, exist_ok=True)
    found: list[DebugFile] = []
    changed: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="debuginfo-") as tmp:
        for n, name in enumerate(elves):
            build_id = ids[name]
            module = Path(tmp) / f"{n}.so"
            module.write_bytes(members[name])
            stripped = Path(tmp) / f"{n}.stripped"
            debug = dest / f"{build_id}{SUFFIX}"
            argv = ["eu-strip", "-o", str(stripped)]
            if mode == "split":
                # -F: the same debuglink name in every build, whatever dest is.
                argv += ["-f", str(debug), "-F", debug.name]
            proc.run([*argv, str(module)], log=log)
            data = stripped.read_bytes()
            if mode == "split" and not debug.exists():
                # Already stripped (a release Rust build, a project's own -s): eu-strip
                # found nothing to keep, and the module ships as it was built.
                data = members[name]
            left = dwarf_sections(io.BytesIO(data))
            if left:
                raise BuildError(f"{name}: still holds DWARF after stripping "
                                 f"({', '.join(left[:4])}); it must ship without debug info")
            changed[name] = data
            if mode == "split" and debug.exists():
                blob = debug.read_bytes()
                found.append(DebugFile(build_id, name, hashlib.sha256(blob).hexdigest(),
                                       len(blob), debug))
    _rewrite(wheel, infos, members, changed)
    return tuple(found)


def _rewrite(wheel: Path, infos: Sequence[zipfile.ZipInfo], members: dict[str, bytes],
             changed: dict[str, bytes]) -> None:
    """The wheel with ``changed`` members replaced and their RECORD rows recomputed."""
    record = next((n for n in members if n.count("/") == 1
                   and n.endswith(".dist-info/RECORD")), None)
    data = {**members, **changed}
    if record is not None:
        rows = list(csv.reader(io.StringIO(members[record].decode("utf-8"))))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in rows:
            if row and row[0] in changed:
                body = changed[row[0]]
                digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")
                row = [row[0], "sha256=" + digest.decode(), str(len(body))]
            writer.writerow(row)
        data[record] = out.getvalue().encode()
    with fsutil.atomic_path(wheel, prefix=".stripping-") as tmp, \
            zipfile.ZipFile(tmp, "w") as zf:
        for info in infos:
            zf.writestr(info, data[info.filename], compress_type=zipfile.ZIP_DEFLATED)


# -- moving debug files with their wheel -------------------------------------------------------

def differing_files(first: Iterable[DebugFile], again: Iterable[DebugFile]) -> list[str]:
    """Build-ids whose debug files differ between two builds (or exist in one)."""
    a = {f.build_id: f.sha256 for f in first}
    b = {f.build_id: f.sha256 for f in again}
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def listing(files: Iterable[DebugFile]) -> bytes:
    rows = sorted((f.to_json() for f in files), key=lambda r: str(r["module"]))
    return (json.dumps({"schema": 1, "debug": rows}, indent=2, sort_keys=True) + "\n").encode()


def read_listing(wheel: Path) -> tuple[DebugFile, ...]:
    """The debug files listed beside ``wheel`` (none when there is no listing), each
    present and matching its sha256; ConfigError otherwise."""
    path = listing_path(wheel)
    if not path.is_file():
        return ()
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["debug"]
        files = [(str(r["buildId"]), str(r["module"]), str(r["sha256"])) for r in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a debug file listing: {exc!r}") from None
    out = []
    for build_id, module, sha in files:
        debug = out_path(wheel.parent, build_id)
        try:
            blob = debug.read_bytes()
        except OSError:
            raise ConfigError(f"{debug}: missing (listed for {module} in {path.name})") from None
        if hashlib.sha256(blob).hexdigest() != sha:
            raise ConfigError(f"{debug}: sha256 does not match {path.name}")
        out.append(DebugFile(build_id, module, sha, len(blob), debug))
    return tuple(out)


def place(files: Sequence[DebugFile], wheel_name: str, out_dir: Path) -> None:
    """Copy debug files into ``<out_dir>/debug/`` and write the wheel's listing there.

    Debug files go first and the listing last, each by an atomic rename, so a
    listing never names a file that is not there yet.
    """
    folder = out_dir / DEBUG_DIR
    if files:
        folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        final = out_path(out_dir, f.build_id)
        if final.is_file() and hashlib.sha256(final.read_bytes()).hexdigest() == f.sha256:
            continue
        _atomic_write(final, f.path.read_bytes())
    if files:
        _atomic_write(folder / f"{wheel_name}.json", listing(files))
    else:  # a listing left by an earlier build of this name would name the wrong files
        (folder / f"{wheel_name}.json").unlink(missing_ok=True)


def _atomic_write(final: Path, data: bytes) -> None:
    fsutil.write_bytes(final, data, prefix=".incoming-", mode=0o644)
