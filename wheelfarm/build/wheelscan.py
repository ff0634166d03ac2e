"""Reading built wheels: their ELF members (symbol versions, needed libraries)
and whether a wheel is binary at all."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from elftools.elf.dynamic import DynamicSection, DynamicTag
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection

from wheelfarm.errors import BuildError, RepairError

ELF_MAGIC = b"\x7fELF"
# Mach-O thin (both byte orders, 32/64-bit) and fat binaries: macOS extension modules.
MACHO_MAGICS = {bytes.fromhex(h) for h in ("feedface", "feedfacf", "cefaedfe", "cffaedfe",
                                             "cafebabe")}
_BINARY_MAGICS = MACHO_MAGICS | {ELF_MAGIC}
ARCH_OF_MACHINE = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64", "EM_386": "i686",
                  "EM_ARM": "armv7l", "EM_PPC64": "ppc64", "EM_S390": "s390x",
                  "EM_RISCV": "riscv64"}
# The dynamic loader is part of glibc but never listed in a whitelist.
SOURCE_SUFFIXES = frozenset({".c", ".cc", ".cpp", ".cxx", ".rs", ".pyx"})
# Sources here are not what the wheel is built from (test fixtures, sample code).
_NON_BUILD_DIRS = frozenset({"tests", "test", "testing", "docs", "doc", "examples", "example",
                             "benchmarks", "benchmark", "bench", "venv", "node_modules",
                             "site-packages", "__pycache__"})
# ELF members are copied out of the zip before parsing; small ones stay in memory.
_SPOOL_BYTES = 32 * 1024 * 1024

@dataclass(frozen=True)
class ElfInfo:
    """What the check needs from one ELF member of a wheel."""

    member: str
    machine: str  # e_machine, e.g. "EM_X86_64"
    soname: str | None
    needed: tuple[str, ...]
    # (library, version name, undefined symbols bound to that version)
    versions: tuple[tuple[str, str, tuple[str, ...]], ...]
    undefined: frozenset[str]



# -- reading the wheel --------------------------------------------------------------------

def wheel_platform_tags(wheel: Path) -> list[str]:
    """Platform tags from a wheel's file name, in file-name order."""
    parts = wheel.name.removesuffix(".whl").split("-")
    if not wheel.name.endswith(".whl") or len(parts) not in (5, 6):
        raise RepairError(f"{wheel.name} is not a wheel file name")
    return parts[-1].split(".")


def _magic(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with zf.open(info) as fh:
        return fh.read(4)


def members_by_magic(wheel: Path, magics: Collection[bytes]
                     ) -> Iterator[tuple[zipfile.ZipFile, zipfile.ZipInfo]]:
    """Each member of ``wheel`` whose first four bytes are one of ``magics`` (by
    magic, not by suffix), with the open archive to read it from."""
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise RepairError(f"cannot read wheel {wheel.name}: {exc}") from exc
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            try:
                magic = _magic(zf, info)
            except (OSError, zipfile.BadZipFile) as exc:
                raise RepairError(f"cannot read {info.filename} in {wheel.name}: {exc}") from exc
            if magic in magics:
                yield zf, info


def scan_wheel(wheel: Path) -> list[ElfInfo]:
    """Read every ELF member (by magic, not by suffix), vendored libraries included."""
    found: list[ElfInfo] = []
    for zf, info in members_by_magic(wheel, (ELF_MAGIC,)):
        try:
            with tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as buf:
                with zf.open(info) as fh:
                    shutil.copyfileobj(fh, buf)
                buf.seek(0)
                found.append(_read_elf(info.filename, buf))
        except (OSError, zipfile.BadZipFile) as exc:
            raise RepairError(f"cannot read {info.filename} in {wheel.name}: {exc}") from exc
        # pyelftools reports damaged input with assorted exception types.
        except Exception as exc:
            raise RepairError(
                f"cannot parse ELF member {info.filename} in {wheel.name}: {exc}"
            ) from exc
    return found


def _read_elf(member: str, stream: IO[bytes]) -> ElfInfo:
    elf = ELFFile(stream)
    needed: list[str] = []
    soname: str | None = None
    verneed: GNUVerNeedSection | None = None
    versym: GNUVerSymSection | None = None
    dynsym: SymbolTableSection | None = None
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(_tag_string(tag))
                elif tag.entry.d_tag == "DT_SONAME":
                    soname = _tag_string(tag)
        elif isinstance(section, GNUVerNeedSection):
            verneed = section
        elif isinstance(section, GNUVerSymSection):
            versym = section
        elif isinstance(section, SymbolTableSection) and section["sh_type"] == "SHT_DYNSYM":
            dynsym = section

    # Version index (vna_other) -> (library, version name), as .gnu.version refers to it.
    by_index: dict[int, tuple[str, str]] = {}
    if verneed is not None:
        for need, auxes in verneed.iter_versions():
            for aux in auxes:
                by_index[aux["vna_other"]] = (str(need.name), str(aux.name))
    bound: dict[int, list[str]] = {i: [] for i in by_index}
    undefined: set[str] = set()
    if dynsym is not None:
        for n, sym in enumerate(dynsym.iter_symbols()):
            if n == 0 or sym["st_shndx"] != "SHN_UNDEF" or not sym.name:
                continue
            # A weak reference may stay unresolved (the code checks it at run
            # time), so it cannot break a policy's symbol blacklist.
            if sym["st_info"]["bind"] != "STB_WEAK":
                undefined.add(sym.name)
            if versym is None:
                continue
            ndx = versym.get_symbol(n)["ndx"]
            # Named indexes (VER_NDX_LOCAL/GLOBAL) are unversioned; bit 15 is "hidden".
            if isinstance(ndx, int) and (ndx & 0x7FFF) in bound:
                bound[ndx & 0x7FFF].append(sym.name)
    versions = tuple(
        (lib, version, tuple(sorted(set(bound[i])))) for i, (lib, version) in by_index.items()
    )
    return ElfInfo(member, str(elf["e_machine"]), soname, tuple(needed), versions,
                   frozenset(undefined))


def _tag_string(tag: DynamicTag) -> str:
    # pyelftools sets the string value as an attribute named after the tag
    # (DT_NEEDED -> .needed), which its type hints do not declare.
    return str(getattr(tag, tag.entry.d_tag[3:].lower()))



# -- binary or not ------------------------------------------------------------------------

def native_sources(source_dir: Path) -> list[Path]:
    """C, C++, Rust and Cython sources the build may compile (tests, docs etc. skipped)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = sorted(d for d in dirs if d not in _NON_BUILD_DIRS and not d.startswith("."))
        found.extend(Path(root, f) for f in sorted(files)
                     if os.path.splitext(f)[1] in SOURCE_SUFFIXES)
    return found


def check_binary(wheel: Path, source_dir: Path) -> None:
    """Raise BuildError when native sources exist but the wheel carries no compiled module.

    A silent pure-Python fallback (optional extensions that failed to build)
    is not a binary wheel.
    """
    sources = native_sources(source_dir)
    if not sources:
        return
    example = sources[0].relative_to(source_dir).as_posix()
    compiled, purelib = False, False
    try:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                name = PurePosixPath(info.filename)
                if name.parent.name.endswith(".dist-info") and name.name == "WHEEL":
                    text = zf.read(info).decode("utf-8", "replace")
                    purelib = bool(re.search(r"(?mi)^Root-Is-Purelib:\s*true\s*$", text))
                elif name.suffix == ".pyd" or _magic(zf, info) in _BINARY_MAGICS:
                    compiled = True
    except (OSError, zipfile.BadZipFile) as exc:
        raise BuildError(f"cannot read wheel {wheel.name}: {exc}") from exc
    try:
        tags = wheel_platform_tags(wheel)
    except RepairError as exc:
        raise BuildError(str(exc)) from None
    pure = "any" in tags or purelib
    if pure or not compiled:
        why = "is tagged pure Python" if pure else "contains no compiled extension module"
        raise BuildError(
            f"{wheel.name} {why}, but the source has native code ({example}, "
            f"{len(sources)} file(s)); a silent pure-Python fallback is not a binary wheel"
        )


