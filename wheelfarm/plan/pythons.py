"""Finding CPython interpreters on the host: configured paths, pyenv, on a Mac the
python.org and Homebrew installs, then PATH."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from wheelfarm.errors import ConfigError

MIN_PYTHON = (3, 9)
_TAG = re.compile(r"^cp(\d)(\d+)$")
_DOTTED = re.compile(r"^(\d)\.(\d+)$")
_PYENV_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def parse_tag(tag: str) -> tuple[int, int]:
    """``cp312`` -> (3, 12); ConfigError for anything else."""
    m = _TAG.match(tag)
    if not m:
        raise ConfigError(f"unknown python {tag!r}; expected a CPython tag like 'cp312'")
    return int(m.group(1)), int(m.group(2))


def as_tag(text: str) -> str:
    """A Python as a user may name it, ``cp312`` or ``3.12``, as its tag (``cp312``);
    ConfigError for anything else."""
    m = _DOTTED.match(text.strip())
    if m:
        return tag_of((int(m.group(1)), int(m.group(2))))
    try:
        parse_tag(text)
    except ConfigError:
        raise ConfigError(f"unknown python {text!r}; expected a CPython tag like 'cp312' "
                          "or a version like '3.12'") from None
    return text


def tag_of(version: tuple[int, int]) -> str:
    return f"cp{version[0]}{version[1]}"


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


# python.org's installers put each minor version here, whatever the patch release.
MAC_FRAMEWORK = Path("Library/Frameworks/Python.framework/Versions")
# Homebrew: /opt/homebrew on Apple silicon, /usr/local on Intel Macs.
MAC_BIN_DIRS = (Path("opt/homebrew/bin"), Path("usr/local/bin"))
_FRAMEWORK_VERSION = re.compile(r"^3\.(\d+)$")


def mac_interpreters(root: Path = Path("/")) -> dict[str, Path]:
    """The python.org framework builds, then Homebrew's, under ``root``: ``cpXY`` -> path.

    Free-threaded builds (``python3.13t``) are another ABI and are not listed.
    """
    found: dict[str, Path] = {}
    versions = root / MAC_FRAMEWORK
    if versions.is_dir():
        for entry in sorted(versions.iterdir()):
            m = _FRAMEWORK_VERSION.match(entry.name)
            exe = entry / "bin" / f"python{entry.name}"
            if m and exe.exists():
                found.setdefault(tag_of((3, int(m.group(1)))), exe)
    for directory in MAC_BIN_DIRS:
        for minor in range(MIN_PYTHON[1], 20):
            exe = root / directory / f"python3.{minor}"
            if exe.exists():
                found.setdefault(tag_of((3, minor)), exe)
    return found


def discover(configured: Mapping[str, str] | None = None, *,
             mac_root: Path | None = None) -> dict[str, Path]:
    """Map ``cpXY`` to an interpreter, newest patch release first.

    Order of preference: the farm config's ``[pythons]`` paths, pyenv's
    ``versions/X.Y.Z`` (CPython only), on a Mac (or with ``mac_root``, a
    directory laid out like one) python.org's and Homebrew's, then
    ``python3.X`` on PATH.
    """
    found: dict[str, Path] = {}
    for tag, path in (configured or {}).items():
        parse_tag(tag)
        found[tag] = Path(path)
    versions = _pyenv_root() / "versions"
    if versions.is_dir():
        entries = []
        for entry in versions.iterdir():
            m = _PYENV_VERSION.match(entry.name)
            exe = entry / "bin" / "python"
            if m and exe.exists():
                entries.append(((int(m.group(1)), int(m.group(2)), int(m.group(3))), exe))
        for (major, minor, _patch), exe in sorted(entries, reverse=True):
            found.setdefault(tag_of((major, minor)), exe)
    if mac_root is not None or sys.platform == "darwin":
        for tag, exe in mac_interpreters(mac_root or Path("/")).items():
            found.setdefault(tag, exe)
    for minor in range(MIN_PYTHON[1], 20):
        exe_name = shutil.which(f"python3.{minor}")
        if exe_name:
            found.setdefault(tag_of((3, minor)), Path(exe_name))
    return {tag: found[tag] for tag in sorted(found, key=parse_tag)}


def supported(found: Mapping[str, Path]) -> list[str]:
    """The discovered tags wheelfarm builds for by default (CPython >= 3.9)."""
    return [tag for tag in found if parse_tag(tag) >= MIN_PYTHON]
