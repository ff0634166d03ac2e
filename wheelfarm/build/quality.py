"""The binary check: every ELF module of a repaired wheel, judged from the binary itself.

A release build fails when a module carries a sanitizer (its runtime as a
NEEDED library, or instrumentation symbols such as ``__ubsan_handle_*``) or
when a compile unit of it was built without optimization. The optimization
level is read from evidence the compiler left in the DWARF, not from the
flags the farm's wrappers added, so a project that compiles with ``-O0``
after them is caught:

* gcc records its switches in each compile unit's ``DW_AT_producer``
  (``GNU C17 12.2.0 -mtune=generic -march=x86-64 -g -O2``; the farm's
  wrapper asks for it with ``-grecord-gcc-switches``): the last ``-O`` wins,
  none means ``-O0``;
* clang (zig) records no switches by default, but describes its call sites
  (``DW_AT_call_all_calls``, ``DW_AT_GNU_all_call_sites``) on every function
  whenever it optimizes and never at ``-O0``.

Compile units that tell nothing (Rust, Zig code, assembly, no debug info) are
counted as unknown and logged, never failed. A debug profile build is only
logged.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from elftools.common.exceptions import DWARFError, ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from wheelfarm.build.ccwrap import optimization
from wheelfarm.errors import QualityError

SANITIZER_SYMBOLS = ("__ubsan_", "__asan_", "__tsan_", "__msan_", "__hwasan_", "__lsan_",
                     "__dfsan_", "__sanitizer_")
_SANITIZER_LIB = re.compile(r"lib(?:asan|ubsan|tsan|msan|lsan|hwasan)\.so|libclang_rt\.")
# zig links its UBSan runtime with hidden symbols, and a module linked with
# --strip-all (ujson's setup.py does) keeps none: its messages remain.
_UBSAN_MESSAGES = (b"left shift of negative value", b"execution reached an unreachable program",
                   b"cannot be represented in type", b"byte alignment for pointer of type",
                   b"applying non-zero offset to non-null pointer")
UNDER_OPTIMIZED = ("-O0", "-Og")
_CALL_SITE_ATTRS = ("DW_AT_call_all_calls", "DW_AT_call_all_tail_calls",
                    "DW_AT_GNU_all_call_sites", "DW_AT_GNU_all_tail_call_sites")
# DW_LANG_* of C, C++ and Objective-C (DWARF 2 to 5).
_C_FAMILY = {0x1, 0x2, 0x4, 0xC, 0x10, 0x11, 0x19, 0x1A, 0x1D, 0x21, 0x2A, 0x2B, 0x2C}
_SHOWN = 3


@dataclass
class ModuleReport:
    """What one ELF module showed."""

    name: str
    sanitizers: list[str] = field(default_factory=list)  # symbols or NEEDED libraries
    optimized: int = 0  # compile units with evidence of optimization
    unknown: int = 0  # compile units that tell nothing
    unoptimized: list[tuple[str, str, str]] = field(default_factory=list)  # (unit, level, why)

    def problems(self) -> list[str]:
        found = []
        if self.unoptimized:
            units = ", ".join(f"{unit} ({level}: {why})"
                              for unit, level, why in self.unoptimized[:_SHOWN])
            more = len(self.unoptimized) - _SHOWN
            found.append(f"built below the release profile's optimization in "
                         f"{len(self.unoptimized)} compile unit(s): {units}"
                         + (f" and {more} more" if more > 0 else ""))
        if self.sanitizers:
            shown = ", ".join(self.sanitizers[:_SHOWN])
            more = len(self.sanitizers) - _SHOWN
            found.append(f"sanitizer runtime or instrumentation: {shown}"
                         + (f" and {more} more" if more > 0 else ""))
        return found

    def summary(self) -> str:
        return (f"{self.name}: {self.optimized} compile unit(s) optimized, "
                f"{len(self.unoptimized)} not, {self.unknown} without evidence; "
                f"{len(self.sanitizers)} sanitizer trace(s)")


def level_from_producer(producer: str) -> str | None:
    """The ``-O`` level a ``DW_AT_producer`` records, or None when it records no switches."""
    if producer.startswith("GNU ") and not producer.startswith("GNU AS"):
        flags = [t for t in producer.split() if t.startswith("-")]
    elif producer.startswith("clang version"):
        flags = [t for t in producer.split() if t.startswith("-")]
    else:
        return None
    if not flags:
        return None
    return optimization(flags) or "-O0"


def sanitizer_traces(elf: ELFFile) -> list[str]:
    """Sanitizer runtimes the module needs and instrumentation symbols it holds or calls."""
    found: set[str] = set()
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                needed = str(getattr(tag, "needed", ""))
                if tag.entry.d_tag == "DT_NEEDED" and _SANITIZER_LIB.match(needed):
                    found.add(f"NEEDED {needed}")
        elif isinstance(section, SymbolTableSection):
            for symbol in section.iter_symbols():
                if symbol.name.startswith(SANITIZER_SYMBOLS):
                    found.add(symbol.name)
    return sorted(found, key=lambda s: (not s.startswith("NEEDED"), s))


def ubsan_messages(data: bytes) -> list[str]:
    """The UBSan runtime's diagnostics found in a module's bytes; two or more mean
    the runtime is linked in, whatever the symbol tables say."""
    found = [m.decode() for m in _UBSAN_MESSAGES if m in data]
    return found if len(found) >= 2 else []


def _attr_text(die: Any, name: str) -> str:
    attr = die.attributes.get(name)
    if attr is None:
        return ""
    value = attr.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _call_site_evidence(top: Any) -> bool | None:
    """True if a function of the unit carries clang's optimized-code call-site
    attributes, False if functions exist and none does, None without functions."""
    defined = False
    for die in top.iter_children():
        if die.tag != "DW_TAG_subprogram" or "DW_AT_declaration" in die.attributes:
            continue
        if "DW_AT_low_pc" not in die.attributes and "DW_AT_ranges" not in die.attributes:
            continue
        if any(a in die.attributes for a in _CALL_SITE_ATTRS):
            return True
        defined = True
    return False if defined else None


def unit_levels(elf: ELFFile) -> Iterator[tuple[str, str | None, str]]:
    """(unit name, level or None, evidence) for every compile unit."""
    if not elf.has_dwarf_info():
        return
    dwarf = elf.get_dwarf_info()
    for cu in dwarf.iter_CUs():
        top = cu.get_top_DIE()
        name = _attr_text(top, "DW_AT_name") or "?"
        producer = _attr_text(top, "DW_AT_producer")
        level = level_from_producer(producer)
        if level is not None:
            yield name, level, f"DW_AT_producer {producer[:160]!r}"
            continue
        language = top.attributes.get("DW_AT_language")
        if producer.startswith("clang version") and language is not None \
                and language.value in _C_FAMILY:
            described = _call_site_evidence(top)
            if described is not None:
                yield (name, "optimized" if described else "-O0",
                       "clang described no call sites, which it does whenever it optimizes")
                continue
        yield name, None, f"DW_AT_producer {producer[:80]!r}"


def inspect(name: str, data: bytes) -> ModuleReport:
    """Judge one ELF module's bytes."""
    report = ModuleReport(name)
    try:
        elf = ELFFile(io.BytesIO(data))
        report.sanitizers = sanitizer_traces(elf)
        if not report.sanitizers:
            report.sanitizers = [f"UBSan runtime message {m!r}" for m in ubsan_messages(data)]
        for unit, level, why in unit_levels(elf):
            if level is None:
                report.unknown += 1
            elif level in UNDER_OPTIMIZED:
                report.unoptimized.append((unit, level, why))
            else:
                report.optimized += 1
    except (ELFError, DWARFError, ValueError, KeyError) as exc:
        raise QualityError(f"{name}: cannot read the module's ELF or DWARF: {exc}") from exc
    return report


def elf_members(wheel: Path) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            with zf.open(info) as handle:
                if handle.read(4) != b"\x7fELF":
                    continue
            yield info.filename, zf.read(info)


def check_wheel(wheel: Path, profile: str, log: IO[str]) -> list[ModuleReport]:
    """Judge every ELF module in ``wheel``; QualityError names each failing module and
    why, unless ``profile`` is ``debug`` (then the findings are only logged)."""
    reports = [inspect(name, data) for name, data in elf_members(wheel)]
    failures = []
    for report in reports:
        log.write(f"quality ({profile}): {report.summary()}\n")
        for problem in report.problems():
            log.write(f"quality: {report.name}: {problem}\n")
            failures.append(f"{report.name}: {problem}")
    if failures and profile != "debug":
        raise QualityError("; ".join(failures)
                           + " (build.profile = \"debug\" or --profile debug allows it)")
    return reports
