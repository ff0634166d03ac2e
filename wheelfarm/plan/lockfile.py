"""Locked build environments: every build requirement pinned by version and hash.

``wheelfarm lock`` resolves a recipe's build requirements (the source's
``build-system.requires``, the recipe's ``build.requires``, and what the
backend asks for through ``get_requires_for_build_wheel``) for each Python and
writes ``<recipe>.lock`` beside the recipe. Builds then install exactly those
files with ``--require-hashes``, reading none of the machine's pip
configuration, so a dependency of a dependency cannot change under a build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelfarm.build.executors import Place
from wheelfarm.errors import ConfigError
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
        return recipe.path.parent / "wheelfarm.plan.lockfile"
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
    tmp = lock.path.with_name(lock.path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(lock.path)


def resolve(place: Place, env: Path, requirements: Sequence[str], work: Path,
            index_url: str) -> tuple[Pinned, ...]:
    """Resolve ``requirements`` for the interpreter of ``env`` with pip's report."""
    from wheelfarm.build.executors.host import ISOLATED_PIP

    report = work / "resolve-report.json"
    place.run([*place.pip(), "--python", str(env / "bin" / "python"), "install",
               "--disable-pip-version-check", "--dry-run", "--ignore-installed",
               "--index-url", index_url, "--report", str(report), *requirements],
              cwd=work, env=ISOLATED_PIP)
    data = json.loads(report.read_text(encoding="utf-8"))
    pinned = []
    for item in data.get("install", []):
        info = item.get("download_info", {})
        archive = info.get("archive_info", {})
        sha = archive.get("hashes", {}).get("sha256") or archive.get("hash", "").removeprefix(
            "sha256=")
        if not sha:
            raise ConfigError(f"{item['metadata']['name']}: the index gave no sha256 to lock")
        pinned.append(Pinned(name=canonicalize_name(item["metadata"]["name"]),
                             version=item["metadata"]["version"], sha256=sha))
    return tuple(sorted(pinned, key=lambda p: p.name))


def lock_recipe(recipe: Recipe, place: Place, tags: Sequence[str], cache_dir: Path,
                work: Path, index_url: str, log: IO[str]) -> Lock:
    """Resolve and pin ``recipe``'s build requirements for each python in ``tags``.

    The static requirements are resolved first; the backend is then asked
    for its dynamic ones inside an environment installed from those pins, and
    the union is resolved again, so the lock covers everything a build installs.
    """
    # Imported here: planning reads locks and should not load the build machinery.
    from wheelfarm.build import buildenv, source, steps

    src = source.fetch(recipe.source, work / "src", cache_dir=cache_dir, index_url=index_url,
                       log=log)
    pythons: dict[str, LockedPython] = {}
    for tag in tags:
        static = steps.static_requirements(src, recipe)
        scratch = work / f"resolve-{tag}"
        place.run([place.python(tag), "-m", "venv", "--without-pip", str(scratch)], cwd=work)
        pinned = resolve(place, scratch, static, work, index_url)
        env = buildenv.ensure(place, tag, [p.line() for p in pinned], cache_dir, work,
                              locked_index=index_url)
        dynamic = steps.backend_requires(place, env, src,
                                         steps.job_env(place, recipe.env, env, {}))
        if dynamic:
            pinned = resolve(place, scratch, [*static, *dynamic], work, index_url)
        pythons[tag] = LockedPython(static=tuple(static), dynamic=tuple(dynamic),
                                    packages=pinned)
        log.write(f"locked {recipe.name} for {tag}: {len(pinned)} packages\n")
    return Lock(path=path_for(recipe), index_url=index_url, pythons=pythons)
