"""What the dashboard and ``/metrics`` read: the farm's jobs and the local builds
of its history as one kind of row (:class:`JobView`), a job's attempts, and
counts. Read-only; every query is the state layer's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from wheelfarm.farm.state.lifecycle import ACTIVE, JobState
from wheelfarm.farm.state.queue import Queue
from wheelfarm.farm.state.schema import attempts, events, jobs, local_builds, workers

FARM, LOCAL = "farm", "local"
ACTIVE_STATES = frozenset({*(s.value for s in ACTIVE), JobState.PENDING.value, "running"})


@dataclass(frozen=True)
class JobView:
    source: str  # FARM: a job of the queue; LOCAL: a key built by `wheelfarm build`
    key: str
    recipe: str
    target: str
    python: str
    executor: str
    state: str
    cause: str | None
    owners: tuple[str, ...]
    reason: str | None
    updated: float
    wheel: str | None
    tries: int

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True)
class AttemptView:
    n: int
    worker: str
    started: float
    ended: float | None
    duration: float | None
    outcome: str  # succeeded | failed | lost | released | cancelled | running
    reason: str | None
    log: str | None
    step: str | None  # the failing step (a FailureKind), where known
    cause: str | None
    run: str | None = None  # a local build's run


def _owners(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


def _farm(r: Any) -> JobView:
    return JobView(FARM, r.key, r.recipe, r.target, r.python, r.executor, r.state, r.cause,
                   _owners(r.owners), r.reason, r.updated, r.artifact_filename, r.attempts)


def _local(rows: Sequence[Any]) -> JobView:
    last = rows[-1]
    return JobView(LOCAL, last.key, last.recipe, last.target, last.python, last.executor,
                   last.state, last.cause, _owners(last.owners), last.reason,
                   last.ended or last.started, last.wheel, len(rows))


def _grouped(rows: Iterable[Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for row in rows:
        found.setdefault(row.key, []).append(row)
    return found


def all_jobs(queue: Queue, recipe: str | None = None) -> list[JobView]:
    """The farm's build jobs and the local builds (one per key), newest first."""
    farm_q = select(jobs).where(jobs.c.kind == "build")
    local_q = select(local_builds).order_by(local_builds.c.id)
    if recipe is not None:
        farm_q = farm_q.where(jobs.c.recipe == recipe)
        local_q = local_q.where(local_builds.c.recipe == recipe)
    with queue.engine.begin() as conn:
        found = [_farm(r) for r in conn.execute(farm_q)]
        found += [_local(rows) for rows in _grouped(conn.execute(local_q)).values()]
    return sorted(found, key=lambda j: j.updated, reverse=True)


def job(queue: Queue, key: str, source: str) -> tuple[JobView, list[AttemptView]] | None:
    """A job (of the farm, or a local build's key) with its attempts, oldest first."""
    with queue.engine.begin() as conn:
        if source == LOCAL:
            rows = conn.execute(select(local_builds).where(local_builds.c.key == key)
                                .order_by(local_builds.c.id)).all()
            if not rows:
                return None
            return _local(rows), [
                AttemptView(n, f"local {r.host}", r.started, r.ended, r.duration,
                            r.state, r.reason, r.log, r.step, r.cause, r.run)
                for n, r in enumerate(rows, 1)]
        row = conn.execute(select(jobs).where(jobs.c.key == key)).first()
        if row is None:
            return None
        steps = {e.n: json.loads(e.detail).get("kind") for e in conn.execute(
            select(events.c.n, events.c.detail).where(
                events.c.job_id == row.id, events.c.kind.in_(["failed", "retrying"]),
                events.c.detail.is_not(None)))}
        tries = [AttemptView(a.n, a.worker, a.started, a.ended, a.duration,
                             a.outcome or "running", a.reason, a.log, steps.get(a.n), a.cause)
                 for a in conn.execute(select(attempts).where(attempts.c.job_id == row.id)
                                       .order_by(attempts.c.n))]
    return _farm(row), tries


def state_counts(queue: Queue) -> dict[str, int]:
    """The farm's jobs by state (every kind: what the queue holds)."""
    with queue.engine.begin() as conn:
        return {r.state: int(r.n) for r in conn.execute(
            select(jobs.c.state, func.count().label("n")).group_by(jobs.c.state))}


def durations(queue: Queue) -> list[tuple[str, str, str, float]]:
    """(source, target, executor, seconds) of every ended build attempt that ran."""
    with queue.engine.begin() as conn:
        farm = conn.execute(select(jobs.c.target, jobs.c.executor, attempts.c.duration)
                            .join(jobs, jobs.c.id == attempts.c.job_id)
                            .where(jobs.c.kind == "build", attempts.c.duration.is_not(None)))
        found = [(FARM, r.target, r.executor, float(r.duration)) for r in farm]
        local = conn.execute(select(local_builds.c.target, local_builds.c.executor,
                                    local_builds.c.duration).where(
            local_builds.c.duration.is_not(None), local_builds.c.cached == 0))
        found += [(LOCAL, r.target, r.executor, float(r.duration)) for r in local]
    return found


def live_workers(queue: Queue, since: float) -> int:
    """Workers heard from (registered, heartbeat) at ``since`` or later."""
    with queue.engine.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(workers).where(
            workers.c.last_seen >= since)).scalar() or 0)
