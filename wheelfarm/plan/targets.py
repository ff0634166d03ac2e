"""Targets: a platform policy (PEP 600 manylinux, PEP 656 musllinux, plain linux, PEP 425
macOS) and an architecture.

Also the glibc -> distribution table that tells a packager which Debian, RHEL
and Ubuntu releases a wheel runs on.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import json
import os
import platform
import re
from dataclasses import dataclass

from wheelfarm.errors import ConfigError

ARCHES = ("x86_64", "aarch64")

# PEP 600 legacy aliases.
_ALIASES = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}

_PEP600 = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY = re.compile(r"^(manylinux1|manylinux2010|manylinux2014)_(\w+)$")
_AUTO = re.compile(r"^manylinux_auto_(\w+)$")
_LINUX = re.compile(r"^linux_(\w+)$")
_MUSL = re.compile(r"^musllinux_(\d+)_(\d+)_(\w+)$")
# musl versions with a musllinux policy (auditwheel's data has 1.1 and 1.2).
MUSL_VERSIONS = ((1, 1), (1, 2))

# First release of each distribution and the glibc it shipped (min supported).
DISTROS: dict[str, list[tuple[str, tuple[int, int]]]] = {
    "RHEL": [("7", (2, 17)), ("8", (2, 28)), ("9", (2, 34)), ("10", (2, 39))],
    "Debian": [
        ("8", (2, 19)), ("9", (2, 24)), ("10", (2, 28)), ("11", (2, 31)),
        ("12", (2, 36)), ("13", (2, 41)),
    ],
    "Ubuntu": [
        ("14.04", (2, 19)), ("16.04", (2, 23)), ("18.04", (2, 27)), ("20.04", (2, 31)),
        ("22.04", (2, 35)), ("24.04", (2, 39)),
    ],
}


@dataclass(frozen=True, order=True)
class Target:
    """``kind`` is ``manylinux`` (with ``glibc``), ``musllinux`` (with ``musl``),
    ``manylinux-auto``, ``linux`` or ``macosx`` (with ``macos``, the oldest macOS
    release the wheel runs on; its ``arch`` is the wheel tag's, ``arm64`` or ``x86_64``)."""

    kind: str
    arch: str
    glibc: tuple[int, int] | None = None
    musl: tuple[int, int] | None = None
    macos: tuple[int, int] | None = None

    @functools.cached_property  # asked for every job of a plan; the fields never change
    def name(self) -> str:
        if self.kind == "linux":
            return f"linux_{self.arch}"
        if self.kind == "manylinux-auto":
            return f"manylinux_auto_{self.arch}"
        if self.kind == "musllinux":
            assert self.musl is not None
            return f"musllinux_{self.musl[0]}_{self.musl[1]}_{self.arch}"
        if self.kind == "macosx" and self.macos is not None:
            return f"macosx_{self.macos[0]}_{self.macos[1]}_{self.arch}"
        assert self.glibc is not None
        return f"manylinux_{self.glibc[0]}_{self.glibc[1]}_{self.arch}"

    @property
    def repairs(self) -> bool:
        return self.kind != "linux"

    @property
    def libc(self) -> str:
        """``musl`` or ``glibc``: the C library the target's wheels link against."""
        return "musl" if self.kind == "musllinux" else "glibc"

    @property
    def is_macos(self) -> bool:
        return self.kind == "macosx"

    @property
    def auditwheel_plat(self) -> str:
        """The ``--plat`` value for auditwheel repair."""
        return "auto" if self.kind == "manylinux-auto" else self.name

    def __str__(self) -> str:
        return self.name


def host_arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


@functools.cache
def host_glibc() -> tuple[int, int] | None:
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return None
    m = re.match(r"glibc (\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_target(text: str) -> Target:
    """Parse a target name; legacy aliases become their PEP 600 names.

    ``native`` is the host: ``manylinux_auto_<arch>``, repaired to the lowest
    manylinux policy the built wheel satisfies.
    """
    name = text.strip()
    if name == "native":
        return Target("manylinux-auto", host_arch())
    arch: str
    if m := _PEP600.match(name):
        glibc: tuple[int, int] = (int(m.group(1)), int(m.group(2)))
        arch = m.group(3)
        kind = "manylinux"
    elif m := _LEGACY.match(name):
        glibc, arch, kind = _ALIASES[m.group(1)], m.group(2), "manylinux"
    elif m := _MUSL.match(name):
        musl = (int(m.group(1)), int(m.group(2)))
        if musl not in MUSL_VERSIONS:
            known = ", ".join(f"musllinux_{a}_{b}" for a, b in MUSL_VERSIONS)
            arch = m.group(3) if m.group(3) in ARCHES else ARCHES[0]
            newest = max(MUSL_VERSIONS)
            raise ConfigError(_unknown(
                name, f"no musllinux policy for musl {musl[0]}.{musl[1]} (known: {known})",
                f"musllinux_{newest[0]}_{newest[1]}_{arch}"))
        return _checked(Target("musllinux", m.group(3), musl=musl), name)
    elif m := _AUTO.match(name):
        return _checked(Target("manylinux-auto", m.group(1)), name)
    elif m := _LINUX.match(name):
        return _checked(Target("linux", m.group(1)), name)
    elif m := _MACOS.match(name):
        return _macos_target(m, name)
    else:
        raise ConfigError(_unknown(name))
    return _checked(Target(kind, arch, glibc), name)


def _checked(target: Target, text: str) -> Target:
    if target.arch not in ARCHES:
        raise ConfigError(_unknown(text))
    return target


def _unknown(name: str, why: str = "", suggestion: str | None = None) -> str:
    """"unknown target", why, and ``suggestion`` or else the closest known target of
    the same family (a musllinux name gets a musllinux target, a macOS name a macOS one)."""
    known = _suggestable()
    family = difflib.get_close_matches(_family(name), _FAMILIES, n=1, cutoff=0.6)
    if suggestion is not None:
        hint = [suggestion]
    elif family:
        same = [k for k in known if _family(k) == family[0]]
        hint = difflib.get_close_matches(name, same, n=1, cutoff=0.0)
    else:
        hint = difflib.get_close_matches(name, known, n=1)
    tail = f"; did you mean {hint[0]!r}?" if hint else (
        "; expected e.g. manylinux_2_17_x86_64, manylinux2014_x86_64, "
        "manylinux_2_17_aarch64, musllinux_1_2_x86_64, linux_x86_64 or native"
    )
    return f"unknown target {name!r}{': ' + why if why else ''}{tail}"


_FAMILIES = ("manylinux", "musllinux", "linux", "macosx", "native")


def _family(name: str) -> str:
    """The letters a target name starts with: ``manylinux2014_x86_64`` -> manylinux."""
    return re.sub(r"[^a-z].*", "", name.lower())


def _suggestable() -> list[str]:
    names = [f"{policy}_{arch}" for kind in ("manylinux", "musllinux")
             for policy, arches in policies(kind).items() for arch in ARCHES if arch in arches]
    return [*names, *(f"{alias}_{arch}" for alias in _ALIASES for arch in ARCHES
                      if f"manylinux_{_ALIASES[alias][0]}_{_ALIASES[alias][1]}_{arch}" in names),
            *(f"linux_{arch}" for arch in ARCHES), "native", *MACOS_EXAMPLES]


@functools.cache
def policies(kind: str) -> dict[str, frozenset[str]]:
    """auditwheel's policies of ``kind`` (manylinux, musllinux): name -> architectures.

    auditwheel repairs only to a policy it knows, so these are the targets the
    farm can build for."""
    try:
        ref = importlib.resources.files("auditwheel") / "policy" / f"{kind}-policy.json"
        data = json.loads(ref.read_text(encoding="utf-8"))
    except (ModuleNotFoundError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot read auditwheel's {kind} policy data: {exc}") from exc
    return {entry["name"]: frozenset(entry["symbol_versions"]) for entry in data
            if entry["name"].startswith(kind)}


def buildable_target(text: str) -> Target:
    """:func:`parse_target`, refusing a manylinux or musllinux policy that auditwheel
    does not know for the architecture (it could not repair a wheel to it): what a
    user names to build for. A tag read from a built wheel may be newer than this
    auditwheel and is parsed with :func:`parse_target`."""
    target = parse_target(text)
    version = target.glibc or target.musl
    if target.kind in ("manylinux", "musllinux") and version is not None:
        policy = target.name.removesuffix(f"_{target.arch}")
        known = policies(target.kind)
        if target.arch in known.get(policy, ()):
            return target
        why = (f"auditwheel's {policy} policy has no {target.arch}" if policy in known else
               f"auditwheel has no {policy} policy")
        raise ConfigError(_unknown(text.strip(), why,
                                   _nearest(target.kind, version, target.arch)))
    return target


def _version(policy: str) -> tuple[int, int]:
    major, minor = policy.split("_")[1:3]
    return int(major), int(minor)


def _nearest(kind: str, version: tuple[int, int], arch: str) -> str | None:
    """The known policy of ``kind`` for ``arch`` closest below ``version`` (its wheels
    run there too), else the oldest above it, as a target name."""
    have = sorted(_version(p) for p, arches in policies(kind).items() if arch in arches)
    lower = [v for v in have if v <= version]
    best = max(lower) if lower else min(have, default=None)
    return f"{kind}_{best[0]}_{best[1]}_{arch}" if best else None


def platform_tags(target: Target) -> list[str]:
    """Wheel platform tags a wheel built for ``target`` may carry."""
    if target.kind == "manylinux" and target.glibc is not None:
        tags = [target.name]
        legacy = {v: k for k, v in _ALIASES.items()}.get(target.glibc)
        if legacy:
            tags.append(f"{legacy}_{target.arch}")
        return tags
    if target.kind == "musllinux" or target.is_macos:
        return [target.name]
    return [f"linux_{target.arch}"]


# --- macOS (PEP 425 macosx_X_Y_arch) -------------------------------------------------------
# Thin wheels only: a universal2 wheel is two builds merged, which the farm does not do.
MACOS_ARCHES = ("arm64", "x86_64")
MACOS_EXAMPLES = ("macosx_11_0_arm64", "macosx_10_13_x86_64")
_MACOS = re.compile(r"^macosx_(\d+)_(\d+)_(\w+)$")
# Apple silicon Macs started with macOS 11; no arm64 Mac runs anything older.
_MACOS_ARM64_FIRST = (11, 0)


def _macos_target(m: re.Match[str], text: str) -> Target:
    version, arch = (int(m.group(1)), int(m.group(2))), m.group(3)
    if arch not in MACOS_ARCHES:
        guess = difflib.get_close_matches(arch, ("arm64" if arch == "aarch64" else "",
                                                 *MACOS_ARCHES), n=1, cutoff=0.0)
        raise ConfigError(_unknown(
            text, f"macOS wheels are arm64 or x86_64 (e.g. {' or '.join(MACOS_EXAMPLES)})",
            f"macosx_{version[0]}_{version[1]}_{guess[0]}" if guess else None))
    if version[0] < 10:
        raise ConfigError(f"unknown target {text!r}: no macOS {version[0]}.{version[1]}")
    if version[0] >= 11 and version[1] != 0:
        # pip (packaging.tags) offers only X_0 tags from macOS 11 on: such a wheel
        # would never be installed.
        raise ConfigError(f"target {text!r}: from macOS 11 on the tag's minor version is 0; "
                          f"use macosx_{version[0]}_0_{arch}")
    if arch == "arm64" and version < _MACOS_ARM64_FIRST:
        raise ConfigError(f"target {text!r}: arm64 Macs start with macOS 11; "
                          f"use macosx_11_0_arm64")
    return Target("macosx", arch, macos=version)


def macos_version(text: str) -> tuple[int, int]:
    """``11.0`` or ``10.13.4`` -> (11, 0) / (10, 13): a Mach-O minos as a tag's version."""
    parts = [int(p) for p in text.split(".")[:2]]
    return parts[0], parts[1] if len(parts) > 1 else 0


def host_macos_target() -> Target | None:
    """The macOS target of this machine's own release when it is a Mac, else None."""
    release = platform.mac_ver()[0]
    if not release:
        return None
    major, minor = macos_version(release)
    # Since macOS 11 the minor release shares one tag (macosx_11_0, macosx_14_0).
    version = (major, 0) if major >= 11 else (major, minor)
    return Target("macosx", "arm64" if host_arch() == "aarch64" else "x86_64", macos=version)


def worker_arch() -> str:
    """This machine's architecture as its worker advertises it: a Mac's in the
    spelling of its wheel tags (``arm64``), so that macOS jobs match it."""
    arch = host_arch()
    if platform.system() == "Darwin" and arch == "aarch64":
        return "arm64"
    return arch


def worker_requirements(target: Target, executor: str) -> tuple[str, str]:
    """(os, arch) of the worker a job needs. zig cross-builds macOS wheels on any
    Linux worker; the host executor builds them on a Mac of their architecture
    (a worker there is the macOS runner); Linux targets keep their architecture."""
    if target.is_macos:
        return ("linux", "") if executor == "zig" else ("macos", target.arch)
    return "linux", target.arch


def distros_for_glibc(glibc: tuple[int, int]) -> dict[str, str]:
    """The oldest release of each distribution whose glibc is new enough ('' = none)."""
    out: dict[str, str] = {}
    for distro, releases in DISTROS.items():
        first = next((rel for rel, have in releases if have >= glibc), "")
        out[distro] = f"{first}+" if first else ""
    return out
