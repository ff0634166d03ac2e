"""The public API: what the command line calls, and what tests and other programs may.

Functions take plain values (or the small request dataclasses below) and return
result dataclasses; failures are errors from :mod:`wheelfarm.errors`. Nothing
here prints or exits: rendering is the CLI's part. Each function wires the
wing modules that do the work and is no more than that wiring.

The wings load on first use, not on import: ``wheelfarm plan`` in a CI step
should not pay for the queue's database layer or the publisher's S3 client.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wheelfarm.api.common import HERE, FarmConfig, load_config
from wheelfarm.errors import WheelfarmError

# Building and rebuilding (plan_build, build, rebuild) live in farm/buildrun.py.
from wheelfarm.farm.buildrun import (
    BuildPlan,
    BuildReport,
    BuildRequest,
    Rebuilt,
    build,
    plan_build,
    rebuild,
)
from wheelfarm.farm.operate import Probes, Submitted

if TYPE_CHECKING:
    from wheelfarm.build.executors import Executor
    from wheelfarm.build.lockresolve import LockJob
    from wheelfarm.build.recipeops import Added, Bumped, Outdated
    from wheelfarm.build.usercache import CacheInfo, Part
    from wheelfarm.farm.merge import Merged
    from wheelfarm.plan.jobs import Job
    from wheelfarm.plan.lockfile import Lock
    from wheelfarm.plan.recipe import Recipe


# -- planning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    config: FarmConfig
    recipes: list[Recipe]
    jobs: list[Job]  # every job of the recipes, in plan order
    executors: dict[str, Executor]
    skipped: list[str] = field(default_factory=list)  # default Pythons a Requires-Python excludes


def plan(paths: Sequence[Path], *, targets: Sequence[str] = (), pythons: Sequence[str] = (),
         executor: str | None = None, farm_dir: Path = HERE) -> Planned:
    """The jobs of the recipes in ``paths`` (recipe files, folders, projects).
    Parsed recipes are kept in the farm's memo, so an unchanged file is not read again."""
    from wheelfarm.build import planning
    from wheelfarm.plan import jobs, recipe
    from wheelfarm.plan.recipememo import RecipeMemo

    config = load_config(farm_dir)
    memo = RecipeMemo(config.state_dir / "recipes.memo")
    recipes = recipe.discover(list(paths), load_file=memo.load)
    memo.save()
    selection = jobs.Selection.parse(targets, pythons, executor)
    planned = planning.plan_recipes(recipes, config, selection)
    return Planned(config, recipes, planned.jobs, planned.executors, planned.skipped)


def known(planned: Planned) -> tuple[dict[str, Any], str | None]:
    """Which of the planned jobs are already built: key -> the farm's own record
    (a sha256) or the published store's (a cache record), and a warning when the
    store could not be read (its jobs are then planned, never wrongly skipped)."""
    from wheelfarm.build.cache import ArtifactCache, Caches
    from wheelfarm.publish.storecache import store_cache

    local = ArtifactCache(planned.config.state_dir)
    return Caches(local, partial(store_cache, planned.config)).known(
        [j.key for j in planned.jobs])


def merge(inputs: Sequence[Path], out_dir: Path, *, farm_dir: Path = HERE) -> Merged:
    """Combine matrix jobs' wheelhouses into ``out_dir`` and record each wheel with
    provenance in the farm's artifact cache (see :func:`wheelfarm.farm.merge.merge`)."""
    from wheelfarm.build.cache import ArtifactCache
    from wheelfarm.farm import merge as m

    cache = ArtifactCache(load_config(farm_dir).state_dir)
    return m.merge(list(inputs), out_dir, cache)


# -- lock files ---------------------------------------------------------------------------


def lock_jobs(paths: Sequence[Path], *, pythons: Sequence[str] = (),
              farm_dir: Path = HERE) -> Iterator[LockJob]:
    """The recipes of ``paths`` to lock, one at a time (see :func:`lock`): a recipe
    whose Pythons are missing on this machine is a ConfigError when its turn comes."""
    from wheelfarm.build import lockresolve

    return lockresolve.lock_jobs(load_config(farm_dir), paths, pythons)


def lock(job: LockJob) -> Lock:
    """Resolve and pin the job's build requirements and write its lock file; the
    resolver's output goes to ``job.log``."""
    from wheelfarm.build import lockresolve

    return lockresolve.lock(job)


# -- recipes kept in step with upstream (add, outdated, bump) and a new farm (init) ---------


def add_recipe(requirement: str, directory: Path, *, git: str | None = None,
               rev: str | None = None, force: bool = False, farm_dir: Path = HERE) -> Added:
    """Write a recipe for ``NAME==VERSION`` pinned by the farm's index (or a git commit)."""
    from wheelfarm.build import recipeops

    return recipeops.add(load_config(farm_dir), requirement, directory, git=git, rev=rev,
                         force=force)


def lock_recipe(path: Path, *, farm_dir: Path = HERE) -> Lock | None:
    """Lock one recipe file (``wheelfarm lock PATH``), for ``add``."""
    from wheelfarm.build import recipeops

    return recipeops.lock_added(load_config(farm_dir), path)


def outdated(paths: Sequence[Path], *, farm_dir: Path = HERE) -> list[Outdated]:
    """The index recipes of ``paths`` and the newer releases their tracks allow."""
    from wheelfarm.build import recipeops

    return recipeops.outdated(load_config(farm_dir), paths)


def bump(path: Path, *, to: str | None = None, lock: bool = True,
         farm_dir: Path = HERE) -> Bumped:
    """Move a recipe to a newer release (version, sha256) and refresh its lock."""
    from wheelfarm.build import recipeops

    return recipeops.bump(load_config(farm_dir), path, to=to, lock=lock)


def init_farm(farm_dir: Path = HERE, *, force: bool = False) -> Path:
    """Write a commented ``wheelfarm.toml`` in ``farm_dir``."""
    from wheelfarm.plan import farminit

    return farminit.write(farm_dir, force=force)


# -- the shared cache ---------------------------------------------------------------------


def cache_info(farm_dir: Path = HERE) -> CacheInfo:
    """What the farm's shared cache holds (the user's, unless configured otherwise)."""
    from wheelfarm.build import usercache

    return usercache.info(load_config(farm_dir).cache_dir)


def cache_clean(parts: Sequence[Part] | None = None, *, farm_dir: Path = HERE) -> list[Path]:
    """Empty ``parts`` of the shared cache (None: all of it); the paths removed."""
    from wheelfarm.build import usercache

    return usercache.clean(load_config(farm_dir).cache_dir, parts)



# The publishing and standing-farm parts, one namespace with the rest.
from wheelfarm.api.publishing import (  # noqa: E402
    Index,
    Published,
    history,
    open_index,
    publish,
    publisher,
    refresh,
    rollback,
    unyank,
    verify,
    yank,
)
from wheelfarm.api.standing import (  # noqa: E402
    Status,
    cancel,
    controller,
    dashboard,
    job_log,
    notify_status,
    notify_test,
    open_queue,
    operator_token,
    retry,
    retry_with_dependents,
    revoke_token,
    status,
    submit,
    token,
    token_holders,
    worker,
)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = [
    "HERE",
    "BuildPlan",
    "BuildReport",
    "BuildRequest",
    "FarmConfig",
    "Index",
    "LockJob",
    "Planned",
    "Probes",
    "Published",
    "Rebuilt",
    "Status",
    "Submitted",
    "WheelfarmError",
    "add_recipe",
    "build",
    "bump",
    "cache_clean",
    "cache_info",
    "cancel",
    "controller",
    "dashboard",
    "history",
    "init_farm",
    "job_log",
    "known",
    "load_config",
    "lock",
    "lock_jobs",
    "lock_recipe",
    "merge",
    "notify_status",
    "notify_test",
    "open_index",
    "open_queue",
    "operator_token",
    "outdated",
    "plan",
    "plan_build",
    "publish",
    "publisher",
    "rebuild",
    "refresh",
    "retry",
    "retry_with_dependents",
    "revoke_token",
    "rollback",
    "status",
    "submit",
    "token",
    "token_holders",
    "unyank",
    "verify",
    "worker",
    "yank",
]
