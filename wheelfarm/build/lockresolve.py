"""Making a lock (``wheelfarm lock``): resolving each recipe's build requirements
on this machine's Pythons and pinning each by hash.

The lock file's model (reading, writing, digests for job keys) is planning's,
in :mod:`wheelfarm.plan.lockfile`; resolving needs a build place and pip.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from packaging.utils import canonicalize_name

from wheelfarm.build import buildenv, executors, source, steps
from wheelfarm.build.executors import Executor, JobContext, Place
from wheelfarm.build.executors.host import ISOLATED_PIP
from wheelfarm.errors import ConfigError
from wheelfarm.plan import jobs, lockfile, recipe
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.lockfile import Lock, LockedPython, Pinned, path_for
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.recipe import Recipe
from wheelfarm.plan.targets import parse_target


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


@dataclass(frozen=True)
class LockJob:
    """One recipe to lock, for the Pythons in ``tags`` (the first is the one resolving)."""

    recipe: Recipe
    tags: list[str]
    log: Path
    config: FarmConfig
    host: Executor


def lock_jobs(config: FarmConfig, paths: Sequence[Path],
              pythons: Sequence[str] = ()) -> Iterator[LockJob]:
    """The recipes of ``paths`` to lock, one at a time: a recipe whose Pythons are
    missing on this machine is a ConfigError when its turn comes."""
    selection = jobs.Selection.parse((), pythons, None)
    host = executors.get("host", pythons_config=dict(config.python_paths))
    available = host.available_pythons()
    log_dir = _mkdir(config.state_dir / "logs")
    for r in recipe.discover(list(paths)):
        tags = jobs.pythons_for(r, config, selection, available)
        if r.abi3 and r.abi3 not in tags:
            tags.append(r.abi3)
        missing = [t for t in tags if t not in available]
        if missing:
            raise ConfigError(f"{r.path}: {', '.join(missing)} not found on this machine")
        tags.sort(key=parse_tag)
        yield LockJob(r, tags, log_dir / f"lock-{r.name}.log", config, host)


def lock(job: LockJob) -> Lock:
    """Resolve and pin the job's build requirements and write its lock file."""
    config = job.config
    work = Path(tempfile.mkdtemp(prefix=f"lock-{job.recipe.name}-",
                                 dir=_mkdir(config.state_dir / "work")))
    try:
        with job.log.open("w", encoding="utf-8") as fh:
            ctx = JobContext(parse_target("native"), job.tags[0], work, config.cache_dir, fh,
                             tools_dir=config.tools_dir)
            with job.host.open(ctx) as place:
                result = lock_recipe(job.recipe, place, job.tags, config.cache_dir,
                                              work, config.index_url, fh)
        lockfile.write(result)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
