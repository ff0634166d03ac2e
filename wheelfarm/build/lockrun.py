"""``wheelfarm lock``'s work: resolve each recipe's build requirements on this
machine's Pythons and write them, pinned with hashes, to its lock file."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from wheelfarm.build import executors
from wheelfarm.build.executors import Executor, JobContext
from wheelfarm.errors import ConfigError
from wheelfarm.plan import jobs, lockfile, recipe
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.recipe import Recipe
from wheelfarm.plan.targets import parse_target


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


def lock(job: LockJob) -> lockfile.Lock:
    """Resolve and pin the job's build requirements and write its lock file."""

    config = job.config
    work = Path(tempfile.mkdtemp(prefix=f"lock-{job.recipe.name}-",
                                 dir=_mkdir(config.state_dir / "work")))
    try:
        with job.log.open("w", encoding="utf-8") as fh:
            ctx = JobContext(parse_target("native"), job.tags[0], work, config.cache_dir, fh)
            with job.host.open(ctx) as place:
                result = lockfile.lock_recipe(job.recipe, place, job.tags, config.cache_dir,
                                              work, config.index_url, fh)
        lockfile.write(result)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)




def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
