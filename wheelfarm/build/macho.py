"""The Mach-O check: every macOS binary of a wheel, judged from the binary itself.

A macOS wheel's tag promises an architecture and the oldest macOS it runs on
(``macosx_11_0_arm64``). Nothing on a Linux farm can load the modules, so
what the tag promises is read from each one with lief and checked, the way
the ELF policy check reads symbol versions:

* the architecture (the Mach-O header's cpu type) is the tag's (a fat binary must
  hold the tag's slice);
* the deployment target (``LC_BUILD_VERSION`` or ``LC_VERSION_MIN_MACOSX``
  ``minos``) is no newer than the tag's version, else the loader refuses it
  on the older releases the tag names;
* the linked libraries are the system's (``/usr/lib/``, ``/System/``) or
  vendored into the wheel (``@loader_path``/``@rpath``, as delocate leaves
  them);
* every imported symbol either comes from such a library (two-level
  namespace) or, looked up in the loading process, is the Python API
  (``_Py*``): anything else would be missing at import time.

Each violation is named with its member, as :mod:`wheelfarm.build.policy`
names ELF ones.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from wheelfarm.build.wheelscan import ELF_MAGIC, MACHO_MAGICS, members_by_magic
from wheelfarm.errors import PolicyError, RepairError
from wheelfarm.plan.targets import Target

if TYPE_CHECKING:
    import lief

_CPU = {"ARM64": "arm64", "X86_64": "x86_64", "X86": "i386", "ARM": "arm",
        "POWERPC": "ppc", "POWERPC64": "ppc64"}
SYSTEM_PREFIXES = ("/usr/lib/", "/System/Library/")
# Libraries a wheel carries itself and finds relative to the module (delocate's layout).
_RELATIVE = ("@loader_path/", "@rpath/", "@executable_path/")
# The Python API (and CPython's private _Py names) come from the interpreter that
# loads the module; a module must not expect anything else from it.
_PYTHON_SYMBOL = re.compile(r"^__?Py")
# Load commands that make the module depend on a library at load time.
_LOAD_COMMANDS = frozenset({"LOAD_DYLIB", "LOAD_WEAK_DYLIB", "REEXPORT_DYLIB",
                            "LAZY_LOAD_DYLIB", "LOAD_UPWARD_DYLIB"})
_SHOWN = 8

Kind = Literal["arch", "minos", "library", "symbol", "unreadable"]


@dataclass(frozen=True)
class MachOInfo:
    """What the check needs from one Mach-O image (one slice of a fat file)."""

    member: str
    arch: str  # the wheel tag's spelling: arm64, x86_64
    minos: tuple[int, ...] | None  # from LC_BUILD_VERSION / LC_VERSION_MIN_MACOSX
    libraries: tuple[str, ...]  # install names it loads
    # (symbol, the library it is bound to; "" when looked up in the loading process)
    imports: tuple[tuple[str, str], ...]

    @property
    def minos_text(self) -> str:
        return ".".join(map(str, self.minos)) if self.minos else "unknown"


@dataclass(frozen=True, order=True)
class MachOViolation:
    member: str
    kind: Kind
    detail: str

    def __str__(self) -> str:
        return f"{self.member}: {self.detail}"


def _lief() -> ModuleType:
    # Imported on first use: lief takes about 0.4 s to load, and every job's
    # pipeline imports this module while only macOS wheels need it.
    import lief

    lief.logging.disable()  # it writes parse warnings itself; the library never prints
    return lief


def read_macho(data: bytes, member: str) -> list[MachOInfo]:
    """Every image of one Mach-O file (thin: one; fat: one per slice)."""
    fat = _lief().MachO.parse(list(data))
    if fat is None or fat.size == 0:
        raise RepairError(f"{member}: not a readable Mach-O file")
    found: list[MachOInfo] = []
    for n in range(fat.size):
        binary = fat.at(n)
        if binary is None:
            raise RepairError(f"{member}: slice {n} is not readable")
        found.append(_info(binary, member))
    return found


def _info(binary: lief.MachO.Binary, member: str) -> MachOInfo:
    cpu = str(binary.header.cpu_type).rsplit(".", 1)[-1]
    minos: tuple[int, ...] | None = None
    if binary.build_version is not None:
        minos = tuple(binary.build_version.minos)
    elif binary.version_min is not None:
        minos = tuple(binary.version_min.version)
    libraries = tuple(lib.name for lib in binary.libraries
                      if str(lib.command).rsplit(".", 1)[-1] in _LOAD_COMMANDS)
    imports: list[tuple[str, str]] = []
    for symbol in binary.imported_symbols:
        ordinal = symbol.library_ordinal
        # Ordinals 1..n name the n-th loaded library; 0 (self), 0xfe (dynamic
        # lookup) and 0xff (the executable) leave it to the loading process.
        library = libraries[ordinal - 1] if 1 <= ordinal <= len(libraries) else ""
        name = symbol.name
        imports.append((name if isinstance(name, str) else name.decode("utf-8", "replace"),
                        library))
    return MachOInfo(member, _CPU.get(cpu, cpu.lower()), minos, libraries,
                     tuple(sorted(set(imports))))


def scan_wheel(wheel: Path) -> list[MachOInfo]:
    """Read every Mach-O member of a wheel (by magic, not by suffix)."""
    found: list[MachOInfo] = []
    for zf, info in members_by_magic(wheel, MACHO_MAGICS):
        try:
            data = zf.read(info)
        except (OSError, zipfile.BadZipFile) as exc:
            raise RepairError(f"cannot read {info.filename} in {wheel.name}: {exc}") from exc
        found += read_macho(data, info.filename)
    return found


def _minos_ok(minos: tuple[int, ...] | None, tag: tuple[int, int]) -> bool:
    return minos is not None and tuple(minos[:2]) <= tag


def violations(images: Iterable[MachOInfo], target: Target,
               members: Iterable[str] = ()) -> list[MachOViolation]:
    """Every way ``images`` contradict ``target``'s tag. ``members`` are the
    wheel's file names, for libraries vendored with a relative install name."""
    assert target.macos is not None
    tag_version = ".".join(map(str, target.macos))
    names = {posixpath.basename(m) for m in members}
    found: list[MachOViolation] = []
    by_member: dict[str, list[MachOInfo]] = {}
    for image in images:
        by_member.setdefault(image.member, []).append(image)
    for member, slices in sorted(by_member.items()):
        matching = [s for s in slices if s.arch == target.arch]
        if not matching:
            built = ", ".join(sorted({s.arch for s in slices}))
            found.append(MachOViolation(member, "arch",
                                        f"built for {built}, the tag says {target.arch}"))
            continue
        image = matching[0]
        if not _minos_ok(image.minos, target.macos):
            found.append(MachOViolation(
                member, "minos", f"needs macOS {image.minos_text} (minos), "
                                 f"the tag promises {tag_version}"))
        for library in image.libraries:
            if library.startswith(SYSTEM_PREFIXES):
                continue
            if library.startswith(_RELATIVE) and posixpath.basename(library) in names:
                continue
            found.append(MachOViolation(member, "library",
                                        f"links {library}, which is neither a system "
                                        f"library nor in the wheel"))
        for symbol, library in image.imports:
            if library or _PYTHON_SYMBOL.match(symbol):
                continue
            found.append(MachOViolation(member, "symbol",
                                        f"imports {symbol} from no library (only the "
                                        f"Python API may be looked up at load time)"))
    return found


def format_violations(wheel_name: str, tag: str, found: list[MachOViolation]) -> str:
    """One bounded line naming each problem, like the ELF check's."""
    shown = [str(v) for v in sorted(found)[:_SHOWN]]
    text = f"{wheel_name} does not satisfy {tag}: " + "; ".join(shown)
    if len(found) > _SHOWN:
        text += f" and {len(found) - _SHOWN} more"
    return text


def check_wheel(wheel: Path, target: Target) -> list[MachOInfo]:
    """Raise PolicyError naming every way the wheel's binaries contradict ``target``.

    A wheel without a single Mach-O file is refused too: a macOS target means
    a binary wheel, and a Linux ELF module inside one would pass unnoticed.
    """
    images = scan_wheel(wheel)
    members, elves = [], []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            members.append(info.filename)
            with zf.open(info) as fh:
                if fh.read(4) == ELF_MAGIC:
                    elves.append(info.filename)
    found = violations(images, target, members)
    found += [MachOViolation(m, "arch", "is an ELF (Linux) binary, not Mach-O") for m in elves]
    if found:
        raise PolicyError(format_violations(wheel.name, target.name, found),
                          [str(v) for v in found])
    return images


def describe(images: Iterable[MachOInfo]) -> list[str]:
    """One line per image for the job's log: arch, minos, libraries."""
    return [f"{i.member}: {i.arch}, minos {i.minos_text}, links {', '.join(i.libraries)}"
            for i in images]
