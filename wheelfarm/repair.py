"""Repair wheels with auditwheel, and check them symbol by symbol against their policy.

auditwheel only says "too-recent versioned symbols"; a user needs to know
*which* call pulls in which glibc, so the check reads the ELF members itself
(pyelftools) and judges them against auditwheel's own policy data.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from elftools.elf.dynamic import DynamicSection, DynamicTag
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection

from .errors import BuildError, CommandError, ConfigError, PolicyError, RepairError
from .executors import Place
from .targets import Target, parse_target

ELF_MAGIC = b"\x7fELF"
# Mach-O thin (both byte orders, 32/64-bit) and fat binaries: macOS extension modules.
_MACHO_MAGICS = {bytes.fromhex(h) for h in ("feedface", "feedfacf", "cefaedfe", "cffaedfe",
                                             "cafebabe")}
_BINARY_MAGICS = _MACHO_MAGICS | {ELF_MAGIC}
_ARCH_OF_MACHINE = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64", "EM_386": "i686",
                  "EM_ARM": "armv7l", "EM_PPC64": "ppc64", "EM_S390": "s390x",
                  "EM_RISCV": "riscv64"}
# The dynamic loader is part of glibc but never listed in a whitelist.
_LOADER = re.compile(r"^(ld-linux.*\.so\.\d+|ld64\.so\.[12])$")

SOURCE_SUFFIXES = frozenset({".c", ".cc", ".cpp", ".cxx", ".rs", ".pyx"})
# Sources here are not what the wheel is built from (test fixtures, sample code).
_NON_BUILD_DIRS = frozenset({"tests", "test", "testing", "docs", "doc", "examples", "example",
                             "benchmarks", "benchmark", "bench", "venv", "node_modules",
                             "site-packages", "__pycache__"})

_MESSAGE_ITEMS = 10
_MESSAGE_CHARS = 600
_ITEM_CHARS = 120
# ELF members are copied out of the zip before parsing; small ones stay in memory.
_SPOOL_BYTES = 32 * 1024 * 1024

Kind = Literal["symbol", "library", "blacklist", "arch"]


@dataclass(frozen=True, order=True)
class Violation:
    """One reason a wheel member breaks its policy.

    ``kind`` "symbol": ``symbol`` is ``name@VERSION`` (or the bare version
    when no symbol references it, e.g. ``GLIBC_ABI_DT_RELR``) needed from
    ``library``. "library": a DT_NEEDED ``library`` outside the whitelist and
    not vendored; ``detail`` names the policy. "blacklist": ``symbol`` is
    forbidden in ``library`` by the policy. "arch": ``detail`` says which
    architecture the member is built for.
    """

    file: str
    symbol: str
    library: str
    kind: Kind = "symbol"
    detail: str = ""

    @property
    def short(self) -> str:
        """The form used in messages, without the member."""
        if self.kind == "library":
            return f"{self.library} (not allowed by {self.detail}; repair vendors it)"
        if self.kind == "blacklist":
            return f"{self.symbol} ({self.library}, blacklisted)"
        if self.kind == "arch":
            return f"{self.file} built for {self.detail}"
        return f"{self.symbol} ({self.library})"

    def __str__(self) -> str:
        return self.short if self.kind == "arch" else f"{self.short} in {self.file}"


@dataclass(frozen=True)
class Policy:
    """One manylinux policy for one architecture, from auditwheel's policy data."""

    name: str  # "manylinux_2_17"
    arch: str
    glibc: tuple[int, int]
    symbol_versions: Mapping[str, frozenset[str]]
    whitelist: frozenset[str]
    blacklist: Mapping[str, frozenset[str]]
    derived_from: str | None = None  # set when ``name`` is not in the data

    @property
    def tag(self) -> str:
        return f"{self.name}_{self.arch}"


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


# -- policy data --------------------------------------------------------------------------

@functools.cache
def _policy_data() -> tuple[dict[str, Any], ...]:
    try:
        ref = importlib.resources.files("auditwheel") / "policy" / "manylinux-policy.json"
        return tuple(json.loads(ref.read_text(encoding="utf-8")))
    except (ModuleNotFoundError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot read auditwheel's manylinux policy data: {exc}") from exc


def _glibc_of(name: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)", name)
    return (int(m.group(1)), int(m.group(2))) if m else None


@functools.cache
def policy_for(target: Target) -> Policy:
    """The policy of a ``manylinux`` target; unknown newer ones are derived.

    A derived policy takes everything from the nearest lower known policy and
    also allows the glibc versions up to the target's.
    """
    if target.kind != "manylinux" or target.glibc is None:
        raise ConfigError(f"target {target} has no fixed manylinux policy")
    known: dict[tuple[int, int], dict[str, Any]] = {}
    for entry in _policy_data():
        glibc = _glibc_of(entry["name"])
        if glibc is not None and target.arch in entry["symbol_versions"]:
            known[glibc] = entry
    lower = [g for g in known if g <= target.glibc]
    if not lower:
        lowest = min(known, default=None)
        hint = f" (lowest known: manylinux_{lowest[0]}_{lowest[1]})" if lowest else ""
        raise ConfigError(f"no manylinux policy for {target}{hint}")
    base_glibc = max(lower)
    entry = known[base_glibc]
    versions = {k: frozenset(v) for k, v in entry["symbol_versions"][target.arch].items()}
    derived_from = None
    if base_glibc != target.glibc:
        derived_from = entry["name"]
        if base_glibc[0] == target.glibc[0]:
            extra = {f"{target.glibc[0]}.{minor}"
                     for minor in range(base_glibc[1] + 1, target.glibc[1] + 1)}
            versions["GLIBC"] = versions.get("GLIBC", frozenset()) | extra
    return Policy(
        name=f"manylinux_{target.glibc[0]}_{target.glibc[1]}",
        arch=target.arch,
        glibc=target.glibc,
        symbol_versions=versions,
        whitelist=frozenset(entry["lib_whitelist"]),
        blacklist={k: frozenset(v) for k, v in entry["blacklist"].items()},
        derived_from=derived_from,
    )


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


def scan_wheel(wheel: Path) -> list[ElfInfo]:
    """Read every ELF member (by magic, not by suffix), vendored libraries included."""
    found: list[ElfInfo] = []
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise RepairError(f"cannot read wheel {wheel.name}: {exc}") from exc
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            try:
                if _magic(zf, info) != ELF_MAGIC:
                    continue
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


# -- judging ------------------------------------------------------------------------------

def evaluate(
    elfs: Iterable[ElfInfo], policy: Policy | None, arch: str, *, include_libraries: bool = True
) -> list[Violation]:
    """Violations of ``elfs`` against ``policy`` (``None``: architecture only).

    Without ``include_libraries`` only what vendoring cannot fix is reported:
    symbol versions needed from whitelisted (system) libraries, blacklisted
    symbols and the architecture.
    """
    elfs = list(elfs)
    vendored = {PurePosixPath(e.member).name for e in elfs} | {e.soname for e in elfs if e.soname}
    out: set[Violation] = set()
    for elf in elfs:
        built = _ARCH_OF_MACHINE.get(elf.machine, elf.machine)
        if built != arch:
            out.add(Violation(elf.member, "", "", "arch", f"{built}, not {arch}"))
            continue
        if policy is None:
            continue
        if include_libraries:
            for lib in elf.needed:
                if not _is_system(lib, policy) and lib not in vendored:
                    out.add(Violation(elf.member, "", lib, "library", policy.name))
        for lib, version, symbols in elf.versions:
            if not include_libraries and not _is_system(lib, policy):
                continue
            prefix, _, number = version.partition("_")
            allowed = policy.symbol_versions.get(prefix)
            if allowed is None or number in allowed:
                continue
            names = [f"{s}@{version}" for s in symbols] or [version]
            out.update(Violation(elf.member, name, lib) for name in names)
        for lib in elf.needed:
            for sym in elf.undefined & policy.blacklist.get(lib, frozenset()):
                out.add(Violation(elf.member, sym, lib, "blacklist"))
    return sorted(out)


def _is_system(lib: str, policy: Policy) -> bool:
    return lib in policy.whitelist or bool(_LOADER.match(lib))


def _policy_to_check(target: Target, wheel: Path) -> Policy | None:
    if target.kind == "manylinux":
        return policy_for(target)
    if target.kind == "manylinux-auto":
        # Nothing is fixed in advance; hold the wheel to the strictest tag it claims.
        claimed = _claimed_targets(wheel)
        return policy_for(claimed[0]) if claimed else None
    return None


def _claimed_targets(wheel: Path) -> list[Target]:
    """The manylinux targets a wheel's file name claims, strictest (lowest glibc) first."""
    claimed: set[Target] = set()
    for tag in wheel_platform_tags(wheel):
        if tag.startswith("manylinux"):
            try:
                claimed.add(parse_target(tag))
            except ConfigError:
                continue
    return sorted(claimed, key=lambda t: t.glibc or (0, 0))


def policy_violations(
    wheel: Path, target: Target, *, include_libraries: bool = True
) -> list[Violation]:
    """Every violation of ``target``'s policy in ``wheel``, sorted and unique.

    ``linux`` targets are checked for architecture only; ``manylinux-auto``
    against the strictest manylinux tag in the wheel's name, if any.
    """
    return evaluate(scan_wheel(wheel), _policy_to_check(target, wheel), target.arch,
                    include_libraries=include_libraries)


def format_violations(wheel_name: str, tag: str, violations: Iterable[Violation]) -> str:
    """One bounded line naming each distinct problem: "x.whl does not satisfy tag: ..."."""
    clip = _ITEM_CHARS - 3
    items = sorted({v.short if len(v.short) <= _ITEM_CHARS else v.short[:clip] + "..."
                    for v in violations})
    shown: list[str] = []
    for item in items:
        if len(shown) >= _MESSAGE_ITEMS or (shown and sum(map(len, shown)) > _MESSAGE_CHARS):
            break
        shown.append(item)
    text = f"{wheel_name} does not satisfy {tag}: " + ", ".join(shown)
    if len(items) > len(shown):
        text += f" and {len(items) - len(shown)} more"
    needs = _glibc_needed(violations)
    if needs:
        text += f"; needs glibc {needs} or newer"
    return text


def _glibc_needed(violations: Iterable[Violation]) -> str:
    best: tuple[int, ...] = ()
    for v in violations:
        m = re.search(r"GLIBC_(\d+(?:\.\d+)+)$", v.symbol)
        if v.kind == "symbol" and m:
            best = max(best, tuple(int(p) for p in m.group(1).split(".")))
    return ".".join(map(str, best))


def _raise_for(wheel: Path, tag: str, violations: list[Violation]) -> None:
    if violations:
        raise PolicyError(format_violations(wheel.name, tag, violations),
                          [str(v) for v in violations])


def check_policy(wheel: Path, target: Target) -> None:
    """Raise PolicyError naming every violation; ``violations`` holds them as strings."""
    policy = _policy_to_check(target, wheel)
    _raise_for(wheel, policy.tag if policy else target.name,
               evaluate(scan_wheel(wheel), policy, target.arch))


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


# -- repair -------------------------------------------------------------------------------

def repair(place: Place, wheel: Path, target: Target, dest: Path) -> Path:
    """Repair ``wheel`` for ``target`` into ``dest`` and return the repaired wheel.

    ``linux`` targets: copied unchanged. ``manylinux``: symbols that vendoring
    cannot fix are reported by name before auditwheel runs; after
    ``auditwheel repair`` the result (vendored libraries too) is checked
    against the target and every manylinux tag auditwheel gave it, and
    removed again if it fails. ``manylinux-auto``: ``--plat auto``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if not target.repairs:
        out = dest / wheel.name
        if not (out.exists() and out.samefile(wheel)):
            shutil.copy2(wheel, out)
        return out

    before = _policy_to_check(target, wheel)
    elfs = scan_wheel(wheel)
    _raise_for(wheel, before.tag if before else target.name,
               evaluate(elfs, before, target.arch, include_libraries=False))
    external = sorted({v.library for v in evaluate(elfs, before, target.arch)
                       if v.kind == "library"})

    # A private directory makes "the wheel auditwheel wrote" unambiguous.
    with tempfile.TemporaryDirectory(dir=dest, prefix=".repair-") as tmp:
        argv = [*place.auditwheel(), "repair", "--plat", target.auditwheel_plat,
                "-w", tmp, str(wheel)]
        try:
            result = place.run(argv, cwd=wheel.parent)
        except CommandError as exc:
            raise _repair_failed(wheel, exc.tail, external) from exc
        if result.returncode:
            raise _repair_failed(wheel, result.stdout or "", external)
        written = sorted(Path(tmp).glob("*.whl"))
        if len(written) != 1:
            raise RepairError(f"auditwheel repair of {wheel.name} wrote {len(written)} wheels")
        out = dest / written[0].name
        os.replace(written[0], out)

    try:
        _check_repaired(out, target)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


def _repair_failed(wheel: Path, output: str, external: list[str]) -> RepairError:
    reason = last_meaningful_line(output)
    if "too-recent versioned symbols" in reason and external:
        # Our pre-check passed, so the culprit is a library auditwheel would vendor,
        # which only exists where the job runs.
        reason += f" (in a library to be vendored: {', '.join(external)} or its dependencies)"
    return RepairError(f"auditwheel repair of {wheel.name} failed: {reason}")


def _check_repaired(out: Path, target: Target) -> None:
    checks = _claimed_targets(out)
    if target.kind == "manylinux" and target not in checks:
        checks.append(target)
    if not checks:
        raise RepairError(f"auditwheel produced {out.name} without a manylinux tag")
    elfs = scan_wheel(out)
    for claimed in checks:
        policy = policy_for(claimed)
        _raise_for(out, policy.tag, evaluate(elfs, policy, claimed.arch))


_LOG_PREFIX = re.compile(r"^(?:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]+:|[\w.-]+: error: )")


def last_meaningful_line(output: str) -> str:
    """The line of auditwheel's output that explains a failure, prefixes stripped.

    auditwheel ends with an argparse error ("prog: error: ..."), a traceback's
    last line, or a logging record ("INFO:auditwheel.main_repair:...").
    """
    for line in reversed(output.splitlines()):
        text = line.strip()
        if text and not text.startswith(("usage:", "+ ", "! ")):
            return _LOG_PREFIX.sub("", text).strip()
    return "no output"
