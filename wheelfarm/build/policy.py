"""Manylinux policies, judged symbol by symbol.

auditwheel only says "too-recent versioned symbols"; a user needs to know
*which* call pulls in which glibc, so the wheel's ELF members are read here
(pyelftools, see :mod:`wheelfarm.build.wheelscan`) and judged against auditwheel's
own policy data.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from wheelfarm.build import wheelscan
from wheelfarm.build.wheelscan import ARCH_OF_MACHINE, ElfInfo, wheel_platform_tags
from wheelfarm.errors import ConfigError, PolicyError
from wheelfarm.plan.targets import Target, parse_target

# The dynamic loader is part of glibc but never listed in a whitelist.
_LOADER = re.compile(r"^(ld-linux.*\.so\.\d+|ld64\.so\.[12])$")
# musl's C library and loader are one file; modules name it by its soname.
_MUSL_LIBC = re.compile(r"^(libc\.musl-\w+\.so\.1|ld-musl-\w+\.so\.1)$")
_GLIBC_LIBC = re.compile(r"^(libc\.so\.6|ld-linux.*\.so\.\d+|ld64\.so\.[12])$")
_MESSAGE_ITEMS = 10
_MESSAGE_CHARS = 600
_ITEM_CHARS = 120


Kind = Literal["symbol", "library", "blacklist", "arch", "libc"]


@dataclass(frozen=True, order=True)
class Violation:
    """One reason a wheel member breaks its policy.

    ``kind`` "symbol": ``symbol`` is ``name@VERSION`` (or the bare version
    when no symbol references it, e.g. ``GLIBC_ABI_DT_RELR``) needed from
    ``library``. "library": a DT_NEEDED ``library`` outside the whitelist and
    not vendored; ``detail`` names the policy. "blacklist": ``symbol`` is
    forbidden in ``library`` by the policy. "arch": ``detail`` says which
    architecture the member is built for. "libc": the member is linked
    against the other C library (``library``), ``detail`` says which.
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
        if self.kind == "libc":
            return f"{self.file} linked against {self.detail} ({self.library})"
        return f"{self.symbol} ({self.library})"

    def __str__(self) -> str:
        return self.short if self.kind in ("arch", "libc") else f"{self.short} in {self.file}"



@dataclass(frozen=True)
class Policy:
    """One manylinux or musllinux policy for one architecture, from auditwheel's
    policy data (``glibc`` is (0, 0) for musllinux)."""

    name: str  # "manylinux_2_17", "musllinux_1_2"
    arch: str
    glibc: tuple[int, int]
    symbol_versions: Mapping[str, frozenset[str]]
    whitelist: frozenset[str]
    blacklist: Mapping[str, frozenset[str]]
    derived_from: str | None = None  # set when ``name`` is not in the data
    libc: str = "glibc"

    @property
    def tag(self) -> str:
        return f"{self.name}_{self.arch}"



# -- policy data --------------------------------------------------------------------------

@functools.cache
def _policy_data(kind: str = "manylinux") -> tuple[dict[str, Any], ...]:
    try:
        ref = importlib.resources.files("auditwheel") / "policy" / f"{kind}-policy.json"
        return tuple(json.loads(ref.read_text(encoding="utf-8")))
    except (ModuleNotFoundError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot read auditwheel's {kind} policy data: {exc}") from exc


def _musl_policy(target: Target) -> Policy:
    assert target.musl is not None
    name = f"musllinux_{target.musl[0]}_{target.musl[1]}"
    for entry in _policy_data("musllinux"):
        if entry["name"] == name and target.arch in entry["symbol_versions"]:
            return Policy(
                name=name, arch=target.arch, glibc=(0, 0),
                symbol_versions={k: frozenset(v) for k, v in
                                 entry["symbol_versions"][target.arch].items()},
                whitelist=frozenset(entry["lib_whitelist"]),
                blacklist={k: frozenset(v) for k, v in entry["blacklist"].items()},
                libc="musl",
            )
    raise ConfigError(f"no musllinux policy for {target} in auditwheel's data")


def _glibc_of(name: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)", name)
    return (int(m.group(1)), int(m.group(2))) if m else None


@functools.cache
def policy_for(target: Target) -> Policy:
    """The policy of a ``manylinux`` target; unknown newer ones are derived.

    A derived policy takes everything from the nearest lower known policy and
    also allows the glibc versions up to the target's.
    """
    if target.kind == "musllinux":
        return _musl_policy(target)
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
        built = ARCH_OF_MACHINE.get(elf.machine, elf.machine)
        if built != arch:
            out.add(Violation(elf.member, "", "", "arch", f"{built}, not {arch}"))
            continue
        if policy is None:
            continue
        libc, lib = libc_of(elf)
        if libc is not None and libc != policy.libc:
            out.add(Violation(elf.member, "", lib, "libc", f"{libc}, not {policy.libc}"))
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
    if policy.libc == "musl":
        return lib in policy.whitelist or bool(_MUSL_LIBC.match(lib))
    return lib in policy.whitelist or bool(_LOADER.match(lib))


def libc_of(elf: ElfInfo) -> tuple[str | None, str]:
    """The C library a member links against (``glibc``/``musl``/None) and the
    library or symbol version that shows it. musl's loader also loads a glibc
    module, so an import proves nothing: the check reads the binary."""
    for lib in elf.needed:
        if _MUSL_LIBC.match(lib):
            return "musl", lib
        if _GLIBC_LIBC.match(lib):
            return "glibc", lib
    for lib, version, _ in elf.versions:
        if version.startswith("GLIBC_"):
            return "glibc", f"{lib} {version}"
    return None, ""


def policy_to_check(target: Target, wheel: Path) -> Policy | None:
    if target.kind in ("manylinux", "musllinux"):
        return policy_for(target)
    if target.kind == "manylinux-auto":
        # Nothing is fixed in advance; hold the wheel to the strictest tag it claims.
        claimed = claimed_targets(wheel)
        return policy_for(claimed[0]) if claimed else None
    return None


def claimed_targets(wheel: Path) -> list[Target]:
    """The manylinux and musllinux targets a wheel's file name claims, strictest
    (lowest glibc/musl) first."""
    claimed: set[Target] = set()
    for tag in wheel_platform_tags(wheel):
        if tag.startswith(("manylinux", "musllinux")):
            try:
                claimed.add(parse_target(tag))
            except ConfigError:
                continue
    return sorted(claimed, key=lambda t: t.glibc or t.musl or (0, 0))


def policy_violations(
    wheel: Path, target: Target, *, include_libraries: bool = True
) -> list[Violation]:
    """Every violation of ``target``'s policy in ``wheel``, sorted and unique.

    ``linux`` targets are checked for architecture only; ``manylinux-auto``
    against the strictest manylinux tag in the wheel's name, if any.
    """
    return evaluate(wheelscan.scan_wheel(wheel), policy_to_check(target, wheel), target.arch,
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


def raise_for(wheel: Path, tag: str, violations: list[Violation]) -> None:
    if violations:
        raise PolicyError(format_violations(wheel.name, tag, violations),
                          [str(v) for v in violations])


def check_policy(wheel: Path, target: Target) -> None:
    """Raise PolicyError naming every violation; ``violations`` holds them as strings."""
    policy = policy_to_check(target, wheel)
    raise_for(wheel, policy.tag if policy else target.name,
               evaluate(wheelscan.scan_wheel(wheel), policy, target.arch))


