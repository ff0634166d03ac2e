"""Locked build environments: every build requirement pinned by version and hash.

``wheelfarm lock`` resolves a recipe's build requirements (the source's
``build-system.requires``, the recipe's ``build.requires``, and what the
backend asks for through ``get_requires_for_build_wheel``) for each Python and
writes ``<recipe>.lock`` beside the recipe (resolving is
:mod:`wheelfarm.build.lockresolve`'s). Builds then install exactly those
files with ``--require-hashes``, reading none of the machine's pip
configuration, so a dependency of a dependency cannot change under a build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelfarm.errors import ConfigError
from wheelfarm.fsutil import write_text
from wheelfarm.plan.recipe import Recipe

SCHEMA = 1
SUFFIX = ".lock"


@dataclass(frozen=True)
class Pinned:
    name: str
    version: str
    sha256: str

    def line(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


@dataclass(frozen=True)
class LockedPython:
    static: tuple[str, ...]  # the requirements known before asking the backend
    dynamic: tuple[str, ...]  # what get_requires_for_build_wheel added
    packages: tuple[Pinned, ...]

    def lines(self) -> list[str]:
        return [p.line() for p in self.packages]

    def digest(self) -> str:
        blob = json.dumps({"static": self.static, "dynamic": self.dynamic,
                           "packages": self.lines()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def unsatisfied(self, requirements: Sequence[str]) -> list[str]:
        """Requirements the pinned set does not satisfy (markers are for this host)."""
        have = {canonicalize_name(p.name): Version(p.version) for p in self.packages}
        missing = []
        for text in requirements:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                missing.append(text)
                continue
            if req.marker is not None and not req.marker.evaluate():
                continue
            version = have.get(canonicalize_name(req.name))
            if version is None or not req.specifier.contains(version, prereleases=True):
                missing.append(text)
        return missing


@dataclass(frozen=True)
class Lock:
    path: Path
    index_url: str
    pythons: Mapping[str, LockedPython]

    def digest(self, python: str) -> str:
        entry = self.pythons.get(python)
        return entry.digest() if entry else ""


def path_for(recipe: Recipe) -> Path:
    if recipe.path.name == "pyproject.toml":
        return recipe.path.parent / "wheelfarm.lock"
    return recipe.path.with_suffix(SUFFIX)


def load(recipe: Recipe) -> Lock | None:
    path = path_for(recipe)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("pythons"), dict):
            raise ValueError("expected a table with a 'pythons' table")
        if data.get("schema") != SCHEMA:
            raise ConfigError(f"{path}: unknown lock schema {data.get('schema')!r}")
        pythons = {
            tag: LockedPython(
                static=tuple(entry["static"]), dynamic=tuple(entry["dynamic"]),
                packages=tuple(Pinned(**p) for p in entry["packages"]),
            )
            for tag, entry in data["pythons"].items()
        }
        return Lock(path=path, index_url=str(data["index-url"]), pythons=pythons)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: malformed lock file ({exc}); run 'wheelfarm lock'") from None


def write(lock: Lock) -> None:
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "index-url": lock.index_url,
        "pythons": {
            tag: {
                "static": list(entry.static),
                "dynamic": list(entry.dynamic),
                "packages": [p.__dict__ for p in entry.packages],
            }
            for tag, entry in sorted(lock.pythons.items())
        },
    }
    write_text(lock.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
