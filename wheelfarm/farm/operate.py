"""An operator's requests to a standing farm: submit recipes or probes, read a job's
log, start a worker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wheelfarm.errors import ConfigError
from wheelfarm.farm.submit import DEFAULT_MAX_ATTEMPTS, build_jobs, probe_jobs
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.targets import parse_target

if TYPE_CHECKING:
    from wheelfarm.farm.broker import Broker
    from wheelfarm.farm.state.models import NewJob
    from wheelfarm.farm.state.queue import Queue
    from wheelfarm.farm.worker import Worker, WorkerOptions
    from wheelfarm.plan.config import FarmConfig

T = TypeVar("T")


@dataclass(frozen=True)
class Probes:
    """Probe jobs (no compiler: for checks and benchmarks of the farm itself)."""

    count: int
    seconds: float = 0.0  # how long each runs
    timeout: float = 60.0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True)
class Submitted:
    added: int
    known: int  # jobs whose key was already queued


def submit(config: FarmConfig, queue: Queue, paths: Sequence[Path], *,
           targets: Sequence[str] = (), pythons: Sequence[str] = (),
           executor: str | None = None, priority: int = 0,
           probes: Probes | None = None) -> Submitted:
    """Queue the jobs of the recipes in ``paths``, or ``probes``; a bad flag value
    is a ConfigError naming the flag."""
    for tag in pythons:
        _flag("--python", parse_tag, tag)
    chosen = tuple(_flag("--target", parse_target, t) for t in targets)
    new: list[NewJob]
    if probes:
        if paths:
            raise ConfigError("give recipes or --probe N, not both")
        new = probe_jobs(probes.count, seconds=probes.seconds, timeout=probes.timeout,
                         max_attempts=probes.max_attempts, priority=priority,
                         python=pythons[0] if pythons else "",
                         target=chosen[0].name if chosen else "",
                         arch=chosen[0].arch if chosen else "", executor=executor or "")
    else:
        if not paths:
            raise ConfigError("nothing to submit: give recipes, or --probe N")
        # here: probes need neither (and start sooner)
        from wheelfarm.build import planning
        from wheelfarm.plan import jobs, recipe

        selection = jobs.Selection(targets=chosen, pythons=tuple(pythons), executor=executor)
        planned = planning.plan_recipes(recipe.discover(list(paths)), config, selection)
        new = build_jobs(planned.jobs, config, priority=priority)
    added, known = queue.submit(new)
    return Submitted(added, known)


def job_log(queue: Queue, job: str, attempt: int | None = None) -> str:
    """The log of ``job``'s last attempt (or of ``attempt``), a job of the farm's
    queue or a local build of its history; a ConfigError naming why not."""
    key, tries = _attempts(queue, job)
    if not tries:
        raise ConfigError(f"job {key[:12]} has not run yet")
    chosen = [t for t in tries if attempt is None or t["n"] == attempt]
    if not chosen:
        raise ConfigError(f"job {key[:12]} has no attempt {attempt} (it has 1-{len(tries)})")
    where = chosen[-1]["log"]
    if not where:
        raise ConfigError(f"attempt {chosen[-1]['n']} of job {key[:12]} recorded no log")
    try:
        return Path(where).read_text(encoding="utf-8", errors="replace")
    except OSError:
        raise ConfigError(f"the log {where} is not on this machine") from None


def _attempts(queue: Queue, ref: str) -> tuple[str, list[dict[str, Any]]]:
    """The key ``ref`` names and its attempts: those of the farm's job, unless the
    key is only in the local builds' history, or its local attempts are newer."""
    from wheelfarm.farm.state import report

    ref = ref.strip().lower()
    local = queue.local_keys(ref) if ref else []
    try:
        row = queue.find(ref)
    except ConfigError:
        if len(local) != 1:
            if len(local) > 1:
                raise ConfigError(f"{ref!r} matches several jobs ({', '.join(local)}); "
                                  "give more of the key") from None
            raise
        return local[0], report.local_jobs(queue, local[0])[0]["attempts"]
    if any(k != row.key for k in local):
        raise ConfigError(f"{ref!r} matches several jobs; give more of the key")
    farm = report.queue_jobs(queue, [row.key])[0]["attempts"]
    mine = report.local_jobs(queue, row.key)[0]["attempts"] if local else []
    if mine and (not farm or (mine[-1]["started"] or "") > (farm[-1]["started"] or "")):
        return row.key, mine
    return row.key, farm


def _flag(flag: str, parse: Callable[[str], T], value: str) -> T:
    try:
        return parse(value)
    except ConfigError as exc:
        raise ConfigError(f"{flag} {value}: {exc}") from None


def worker(config: FarmConfig, farm: Path, options: WorkerOptions, *,
           controller_url: str | None = None, token: str | None = None,
           executors: Sequence[str] = (), pythons: Sequence[str] = (),
           images: Sequence[str] = (), wheelhouse: Path | None = None) -> Worker:
    """A worker ready to run, on the farm's database or (``controller_url``) for a
    controller over HTTP; its wheels go to ``wheelhouse``, by default the farm's
    (a remote worker's go to the controller)."""
    from wheelfarm.farm.worker import Worker, default_capabilities

    for tag in pythons:
        _flag("--python", parse_tag, tag)
    broker: Broker
    if controller_url:
        from wheelfarm.farm.remote import HttpBroker

        broker = HttpBroker(controller_url, token or "")
        house = wheelhouse
    else:
        from wheelfarm.farm.direct import DirectBroker
        from wheelfarm.farm.state import open_queue

        broker = DirectBroker(open_queue(config))
        house = wheelhouse or farm / "wheelhouse"
    caps = default_capabilities(executors, pythons, images, dict(config.python_paths))
    return Worker(broker, caps, farm, house.resolve() if house else None, options)
