"""Making a lock: resolving a recipe's build requirements and pinning each by hash.

The lock file's model (reading, writing, digests for job keys) is planning's,
in :mod:`wheelfarm.plan.lockfile`; resolving needs a build place and pip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from packaging.utils import canonicalize_name

from wheelfarm.build import buildenv, source, steps
from wheelfarm.build.executors import Place
from wheelfarm.build.executors.host import ISOLATED_PIP
from wheelfarm.errors import ConfigError
from wheelfarm.plan.lockfile import Lock, LockedPython, Pinned, path_for
from wheelfarm.plan.recipe import Recipe


def resolve(place: Place, env: Path, requirements: Sequence[str], work: Path,
            index_url: str) -> tuple[Pinned, ...]:
    """Resolve ``requirements`` for the interpreter of ``env`` with pip's report."""
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
