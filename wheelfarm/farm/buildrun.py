"""``wheelfarm build`` and ``wheelfarm rebuild`` as a program runs them: plan the
jobs (needs, matrix entries, shards), run them through a queue of the run's
own (:mod:`wheelfarm.farm.localrun`) into a wheelhouse, and for a rebuild
compare the bytes with what the provenance recorded. :mod:`wheelfarm.api`
exposes these; the CLI renders them.

Heavy modules load on first use, as the API's do.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from wheelfarm.errors import ConfigError
from wheelfarm.plan import config as farm_config

if TYPE_CHECKING:
    from wheelfarm.build.executors import Executor
    from wheelfarm.build.pipeline import JobResult, OnResult, OnStep
    from wheelfarm.build.rebuild import Comparison, Recorded
    from wheelfarm.farm.localrun import LocalRun
    from wheelfarm.plan.config import FarmConfig
    from wheelfarm.plan.jobs import Job

HERE = Path(".")


@dataclass(frozen=True)
class BuildRequest:
    """What ``wheelfarm build`` is asked; the fields mirror its options."""

    paths: Sequence[Path]
    out_dir: Path = Path("wheelhouse")
    farm_dir: Path = HERE
    targets: Sequence[str] = ()
    pythons: Sequence[str] = ()
    executor: str | None = None
    jobs: int | None = None  # parallel jobs; None: the farm's setting
    keep_work: bool = False
    locked: bool = False
    check_reproducible: bool = False
    use_cache: bool = True
    entry: str | None = None  # a matrix entry's id (see plan)
    shard: str | None = None  # "i/N"
    profile: str | None = None
    compare_upstream: bool = True
    normalize: bool = True


@dataclass(frozen=True)
class BuildPlan:
    request: BuildRequest
    config: FarmConfig
    jobs: list[Job]  # the jobs to run, needed ones included
    added: list[Job]  # jobs the selection left out that a selected job needs
    unlocked: list[str]  # recipes without a lock file (empty with ``locked``)
    executors: dict[str, Executor]
    skipped: list[str] = field(default_factory=list)  # default Pythons left out, per recipe


@dataclass(frozen=True)
class BuildReport:
    results: list[JobResult]  # one per job, in the plan's order
    out_dir: Path
    signal: int | None = None  # the signal that stopped the run, if one did
    database: Path | None = None  # the run's queue, when kept

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.status == "failed"]


def plan_build(request: BuildRequest) -> BuildPlan:
    """The jobs a build runs: ConfigError for bad input, a needs cycle or nothing to build."""
    from wheelfarm.build import planning
    from wheelfarm.plan import jobs, lockfile, matrix, recipe
    from wheelfarm.plan.graph import check_cycles, with_needs

    config = farm_config.load(request.farm_dir.resolve())
    selection = jobs.Selection.parse(request.targets, request.pythons, request.executor,
                                     request.locked, request.profile)
    recipes = recipe.discover(list(request.paths))
    check_cycles(recipes)
    planned = planning.plan_recipes(recipes, config, selection)
    chosen = planned.jobs
    if request.entry is not None:
        # A job's id selects its unit: the jobs build.needs joins it to.
        chosen = matrix.select(chosen, request.entry)
    if request.shard is not None:
        chosen = matrix.shard(chosen, request.shard)
    if not planned.jobs:
        raise ConfigError("nothing to build")
    named = {j.key for j in chosen if j.id == request.entry} or {j.key for j in chosen}
    chosen, _needed = with_needs(chosen, planned.jobs)
    added = [j for j in chosen if j.key not in named]
    unlocked = [] if request.locked else [
        r.name for r in recipes if not lockfile.path_for(r).exists()]
    return BuildPlan(request, config, chosen, added, unlocked, planned.executors,
                     planned.skipped)


Supervise = Callable[["LocalRun"], AbstractContextManager[None]]


def build(planned: BuildPlan, *, on_step: OnStep | None = None,
          supervise: Supervise | None = None,
          on_result: OnResult | None = None) -> BuildReport:
    """Run the planned jobs through a queue of the run's own. ``supervise`` wraps
    the run (the CLI's signal handlers stop or hand back its jobs); ``on_step`` and
    ``on_result`` hear of each step and each attempt's result as they happen."""
    from wheelfarm.build.pipeline import Pipeline
    from wheelfarm.farm.localhistory import Recorder
    from wheelfarm.farm.localrun import LocalRun
    from wheelfarm.farm.wheelhouse import Wheelhouse
    from wheelfarm.publish.storecache import store_cache

    req = planned.request
    # Indexed once, when the run ends (LocalRun), not after every job.
    out = Wheelhouse(req.out_dir.resolve(), index=False)
    pipeline = Pipeline(planned.config, planned.executors, out,
                        remote=partial(store_cache, planned.config),
                        on_step=on_step, on_result=on_result, keep_work=req.keep_work,
                        normalize=req.normalize,
                        locked=req.locked, check_reproducible=req.check_reproducible,
                        use_cache=req.use_cache, compare_upstream=req.compare_upstream)
    history = Recorder(planned.config, pipeline.log_dir)
    run = LocalRun(pipeline, planned.jobs, req.jobs or planned.config.jobs, keep=req.keep_work,
                   history=history)
    with supervise(run) if supervise else nullcontext():
        results = run.run()
    return BuildReport(results, req.out_dir, run.signal,
                       run.database if req.keep_work else None)


@dataclass(frozen=True)
class Rebuilt:
    recorded: Recorded
    result: JobResult  # its wheel is gone (the rebuild's directory is removed)
    comparison: Comparison | None  # None when the rebuild failed


def rebuild(artifact: Path, *, recipe_path: Path | None = None,
            farm_dir: Path = HERE) -> Rebuilt:
    """Re-run an artifact's build from its provenance and compare the bytes."""
    from wheelfarm.build import planning
    from wheelfarm.build import rebuild as rb
    from wheelfarm.build.pipeline import Pipeline
    from wheelfarm.farm.localrun import LocalRun
    from wheelfarm.farm.wheelhouse import Wheelhouse
    from wheelfarm.plan import jobs
    from wheelfarm.plan.graph import with_needs
    from wheelfarm.publish.storecache import store_cache

    facts = rb.recorded(artifact)
    r = rb.load_recipe(facts, recipe_path)
    config = farm_config.load(farm_dir.resolve())
    selection = jobs.Selection.parse((facts.target,), (facts.python,), facts.executor,
                                     profile=facts.profile)
    planned = planning.plan_recipes([r], config, selection)
    out_dir = Path(tempfile.mkdtemp(prefix="rebuild-", dir=_mkdir(config.state_dir / "work")))
    try:
        chosen, _added = with_needs(planned.jobs[:1], planned.jobs)
        # The bytes are the question here, not how they compare with upstream's.
        pipeline = Pipeline(config, planned.executors, Wheelhouse(out_dir, index=False),
                            compare_upstream=False, remote=partial(store_cache, config))
        result = LocalRun(pipeline, chosen, 1).run()[0]
        comparison = rb.compare(facts, result.wheel) if result.wheel is not None else None
        return Rebuilt(facts, result, comparison)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
