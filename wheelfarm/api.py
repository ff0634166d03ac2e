"""The public API: what the command line calls, and what tests and other programs may.

Functions take plain values (or the small request dataclasses below) and return
result dataclasses; failures are errors from :mod:`wheelfarm.errors`. Nothing
here prints or exits: rendering is the CLI's part. Each function wires the
wing modules that do the work and is no more than that wiring.

The wings load on first use, not on import: ``wheelfarm plan`` in a CI step
should not pay for the queue's database layer or the publisher's S3 client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wheelfarm.errors import ConfigError, WheelfarmError

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
from wheelfarm.plan import config as farm_config

if TYPE_CHECKING:
    from sqlalchemy import Row

    from wheelfarm.build.executors import Executor
    from wheelfarm.build.lockresolve import LockJob
    from wheelfarm.build.recipeops import Added, Bumped, Outdated
    from wheelfarm.build.usercache import CacheInfo, Part
    from wheelfarm.farm.controller import Controller
    from wheelfarm.farm.merge import Merged
    from wheelfarm.farm.notify.service import Status as NotifyStatus
    from wheelfarm.farm.state.queue import Queue
    from wheelfarm.farm.worker import Worker, WorkerOptions
    from wheelfarm.plan.jobs import Job
    from wheelfarm.plan.lockfile import Lock
    from wheelfarm.plan.recipe import Recipe
    from wheelfarm.publish.publisher import Change, HistoryEntry, Publisher
    from wheelfarm.publish.store import Store
    from wheelfarm.publish.verify import Report

FarmConfig = farm_config.FarmConfig
HERE = Path(".")


def load_config(farm_dir: Path = HERE) -> FarmConfig:
    """The farm's configuration (its wheelfarm.toml, defaults where there is none)."""
    return farm_config.load(farm_dir.resolve())


# -- planning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    config: FarmConfig
    recipes: list[Recipe]
    jobs: list[Job]  # every job of the recipes, in plan order
    executors: dict[str, Executor]


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
    return Planned(config, recipes, planned.jobs, planned.executors)


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


# -- publishing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Index:
    """Which index to change and how to sign its new generation."""

    url: str | None = None  # None: [publish] url of the farm
    farm_dir: Path = HERE
    sign_key: str | None = None  # None: WHEELFARM_SIGN_KEY, then [publish] sign-key
    valid_days: float | None = None  # None: [publish] valid-days


@dataclass(frozen=True)
class Published:
    outcome: Change
    url: str


def open_index(url: str | None, farm_dir: Path = HERE) -> Store:
    """The store at ``url``, or at the farm's [publish] url."""
    from wheelfarm.publish.store import open_store

    config = load_config(farm_dir)
    url = url or config.publish.url
    if not url:
        raise ConfigError("no index URL: name one (a directory, file://PATH or "
                          "s3://BUCKET/PREFIX) or set url in the [publish] table")
    return open_store(url, endpoint_url=config.publish.s3_endpoint_url)


def publisher(index: Index) -> Publisher:
    from datetime import timedelta

    from wheelfarm.publish.publisher import Publisher
    from wheelfarm.publish.signing import Signer, resolve_key

    config = load_config(index.farm_dir)
    store = open_index(index.url, index.farm_dir)
    signer = Signer(resolve_key(index.sign_key, config.publish.sign_key))
    days = index.valid_days if index.valid_days is not None else config.publish.valid_days
    return Publisher(store, signer, valid_for=timedelta(days=days))


def _change(index: Index, act: Callable[[Publisher], Change]) -> Published:
    chosen = publisher(index)
    done = Published(act(chosen), chosen.store.url)
    config = load_config(index.farm_dir)
    if done.outcome.created and config.notify:
        from wheelfarm.farm.notify import service

        # Into the farm's state, for its controller to deliver: never waited for.
        service.publish_news(config, {
            "generation": done.outcome.generation, "change": done.outcome.change,
            "added": list(done.outcome.published), "index": done.url,
            "signer": chosen.signer.fingerprint})
    return done


def publish(dirs: Sequence[Path], index: Index = Index()) -> Published:
    """Publish the wheels in ``dirs`` (with their provenance) as a new signed generation."""
    return _change(index, lambda p: p.publish(list(dirs)))


def rollback(index: Index = Index(), generation: int | None = None) -> Published:
    return _change(index, lambda p: p.rollback(generation))


def refresh(index: Index = Index()) -> Published:
    return _change(index, lambda p: p.refresh())


def yank(index: Index, spec: str, reason: str = "") -> Published:
    return _change(index, lambda p: p.yank(spec, reason))


def unyank(index: Index, spec: str) -> Published:
    return _change(index, lambda p: p.unyank(spec))


def history(url: str | None = None, *, limit: int = 20,
            farm_dir: Path = HERE) -> tuple[str, list[HistoryEntry]]:
    """The index's URL and its newest ``limit`` generations, newest first."""
    from wheelfarm.publish import publisher as pub

    store = open_index(url, farm_dir)
    return store.url, pub.history(store, limit)


def verify(source: str, key_file: Path, state_dir: Path | None = None) -> Report:
    """Verify an index (a directory or URL) against the farm's public key; the
    report names every failure (none: ``report.ok``)."""
    from wheelfarm.publish import verify as v
    from wheelfarm.publish.signing import Keyring
    from wheelfarm.publish.store import open_store

    with Keyring(key_file) as keyring:
        return v.verify(open_store(source, read_only=True), keyring,
                        state_dir or v.default_state_dir())


# -- the shared cache ---------------------------------------------------------------------


def cache_info(farm_dir: Path = HERE) -> CacheInfo:
    """What the farm's shared cache holds (the user's, unless configured otherwise)."""
    from wheelfarm.build import usercache

    return usercache.info(load_config(farm_dir).cache_dir)


def cache_clean(parts: Sequence[Part] | None = None, *, farm_dir: Path = HERE) -> list[Path]:
    """Empty ``parts`` of the shared cache (None: all of it); the paths removed."""
    from wheelfarm.build import usercache

    return usercache.clean(load_config(farm_dir).cache_dir, parts)


# -- the standing farm --------------------------------------------------------------------


def open_queue(farm_dir: Path = HERE) -> Queue:
    """The queue in the farm's state database, its schema up to date."""
    return _queue(load_config(farm_dir))


def _queue(config: FarmConfig) -> Queue:
    from wheelfarm.farm.state import open_queue as opened

    return opened(config)


def submit(paths: Sequence[Path] = (), *, targets: Sequence[str] = (),
           pythons: Sequence[str] = (), executor: str | None = None, priority: int = 0,
           probes: Probes | None = None, farm_dir: Path = HERE) -> Submitted:
    """Queue the jobs of recipes, or ``probes``, for the farm's workers; a job whose
    key is already queued is not added again."""
    from wheelfarm.farm import operate

    config = load_config(farm_dir)
    return operate.submit(config, _queue(config), paths, targets=targets, pythons=pythons,
                          executor=executor, priority=priority, probes=probes)


@dataclass(frozen=True)
class Status:
    # report.queue_jobs's JSON shape (schema 1): the farm's jobs, then local builds
    # (report.local_jobs, "source": "local")
    jobs: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)


def status(*, events: bool = False, farm_dir: Path = HERE) -> Status:
    """Every job of the farm, oldest first, then the local builds recorded in its
    history, and the event log if asked."""
    from wheelfarm.farm.state import report

    queue = open_queue(farm_dir)
    return Status(report.queue_jobs(queue) + report.local_jobs(queue),
                  report.job_events(queue) if events else [])


def job_log(job: str, *, attempt: int | None = None, farm_dir: Path = HERE) -> str:
    """The log of JOB's last attempt (or of ``attempt``); a ConfigError naming why not."""
    from wheelfarm.farm import operate

    return operate.job_log(open_queue(farm_dir), job, attempt)


def retry(job: str, *, farm_dir: Path = HERE) -> Row[Any]:
    """Queue a failed or cancelled job (a key or a unique prefix) again; its row."""
    return open_queue(farm_dir).retry(job)


def cancel(job: str, *, farm_dir: Path = HERE) -> Row[Any]:
    """Cancel a job; a worker running it stops at its next heartbeat. Its row."""
    return open_queue(farm_dir).cancel(job)


def token(name: str, *, farm_dir: Path = HERE) -> str:
    """A new token for worker ``name`` (its old one stops working); shown once."""
    from wheelfarm.farm.controller import issue_token

    return issue_token(open_queue(farm_dir), name)


def controller(*, wheelhouse: Path | None = None, farm_dir: Path = HERE,
               **limits: int) -> Controller:
    """The controller's HTTP application over the farm's queue (serve it with
    :func:`wheelfarm.farm.controller.serve`); ``limits``: max_body, max_upload."""
    from wheelfarm.farm.controller import Controller
    from wheelfarm.farm.notify import service

    farm = farm_dir.resolve()
    config = load_config(farm_dir)
    queue = _queue(config)
    found = Controller(queue, farm, (wheelhouse or farm / "wheelhouse").resolve(),
                       index=_index_view(config, farm), **limits)
    notifier = service.notifier(config, queue.engine)  # a missing secret: refused at start
    if notifier is not None:
        found.background.append(notifier.run)
    return found


def notify_status(*, farm_dir: Path = HERE) -> NotifyStatus:
    """The farm's webhook outbox: messages by state, cursors, the last errors."""
    from wheelfarm.farm.notify import service

    return service.status(load_config(farm_dir))


def notify_test(names: Sequence[str] = (), *, farm_dir: Path = HERE,
                ) -> list[tuple[str, str | None]]:
    """Send a test message to the farm's [[notify]] targets (or those named)."""
    from wheelfarm.farm.notify import service

    return service.send_test(load_config(farm_dir), names)


def _index_view(config: FarmConfig, farm: Path) -> Any:
    from wheelfarm.farm.dashboard import open_index

    return open_index(config.publish.url, config.publish.s3_endpoint_url, farm)


def dashboard(*, farm_dir: Path = HERE) -> Any:
    """The dashboard of a farm (its queue, the local builds of its history, its
    published index) as an ASGI application; serve it with uvicorn."""
    from wheelfarm.farm import dashboard as dash

    config = load_config(farm_dir)
    return dash.app(_queue(config), _index_view(config, farm_dir.resolve()), farm_dir.resolve())


def operator_token(name: str, *, farm_dir: Path = HERE) -> str:
    """A new operator token for ``name`` (the dashboard's retry and cancel need
    one); its old one stops working. Shown once."""
    from wheelfarm.farm.dashboard import issue_operator_token

    return issue_operator_token(open_queue(farm_dir), name)


def worker(options: WorkerOptions, *, controller_url: str | None = None,
           token: str | None = None, executors: Sequence[str] = (),
           pythons: Sequence[str] = (), images: Sequence[str] = (),
           wheelhouse: Path | None = None, farm_dir: Path = HERE) -> Worker:
    """A worker ready to run, on the farm's database or for the controller at
    ``controller_url`` (see :func:`wheelfarm.farm.operate.worker`)."""
    from wheelfarm.farm import operate

    return operate.worker(load_config(farm_dir), farm_dir.resolve(), options,
                          controller_url=controller_url, token=token, executors=executors,
                          pythons=pythons, images=images, wheelhouse=wheelhouse)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = [
    "BuildPlan", "BuildReport", "BuildRequest", "Index", "LockJob", "Planned", "Probes",
    "Published", "Rebuilt", "Status", "Submitted", "WheelfarmError", "build", "cancel",
    "controller", "dashboard", "history", "job_log", "load_config", "lock", "lock_jobs",
    "notify_status", "notify_test", "open_index", "open_queue", "operator_token", "plan",
    "plan_build", "publish", "publisher",
    "rebuild", "refresh", "retry", "rollback", "status", "submit", "token", "unyank", "verify",
    "worker", "yank",
]
