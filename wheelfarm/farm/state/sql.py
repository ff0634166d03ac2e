"""The queue's SQL: conditions and the statements of the hot path, built once.

Building a SQLAlchemy statement costs more than running it on SQLite, so
the statements every job runs (lease, start, heartbeat, finish) are made
here with bound parameters and reused; their ``WHERE state IN (...)``
comes from :mod:`.lifecycle`, so storage enforces the legal moves.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from wheelfarm.farm.state.lifecycle import ACTIVE, JobState, sources
from wheelfarm.farm.state.models import Capabilities, Lease
from wheelfarm.farm.state.schema import attempts, events, job_needs, jobs

S = JobState


def state_in(states: Sequence[str]) -> ColumnElement[bool]:
    """``state IN (...)`` as plain comparisons, which executemany() accepts."""
    return or_(*(jobs.c.state == state for state in states))


def held() -> ColumnElement[bool]:
    """The job is still this lease's: same token, same worker, not expired (``b_id``,
    ``b_lease``, ``b_worker``, ``b_now``). The worker too: a lease is bound to the
    worker that claimed it, so another one that learnt its token cannot use it."""
    return and_(jobs.c.id == bindparam("b_id"), jobs.c.lease == bindparam("b_lease"),
                jobs.c.worker == bindparam("b_worker"),
                jobs.c.lease_expires >= bindparam("b_now"))


# Jobs this transaction has just leased (and holds): no token to check.
START_LEASED = update(jobs).where(
    jobs.c.id.in_(bindparam("b_ids", expanding=True)), state_in(sources(S.RUNNING, ACTIVE))
).values(state=S.RUNNING.value, updated=bindparam("b_now"))
START = update(jobs).where(held(), state_in(sources(S.RUNNING, ACTIVE))).values(
    state=S.RUNNING.value, updated=bindparam("b_now"))
RELEASE = update(jobs).where(held(), state_in(sources(S.PENDING, ACTIVE))).values(
    state=S.PENDING.value, updated=bindparam("b_now"), lease=None, worker=None,
    lease_expires=None, not_before=bindparam("b_now"))
HEARTBEAT = update(jobs).where(held(), state_in([s.value for s in ACTIVE])).values(
    lease_expires=bindparam("b_expires"))
CLOSE_ATTEMPT = update(attempts).where(
    attempts.c.job_id == bindparam("b_id"), attempts.c.n == bindparam("b_n")
).values(ended=bindparam("b_now"), outcome=bindparam("b_outcome"),
         reason=bindparam("b_reason"), log=bindparam("b_log"),
         duration=bindparam("b_duration"), cause=bindparam("b_cause"))


def lease_params(lease: Lease, now: float) -> dict[str, Any]:
    return {"b_id": lease.job_id, "b_lease": lease.token, "b_worker": lease.worker, "b_now": now}


def matches(caps: Capabilities) -> list[ColumnElement[bool]]:
    """The jobs a worker with ``caps`` can run, all of it in SQL: a check left to
    Python after a LIMIT would let jobs no worker can run hide the ones it can."""
    def any_or(column: Any, values: Sequence[str]) -> ColumnElement[bool]:
        return or_(column == "", column.in_(list(values)))

    return [any_or(jobs.c.os, [caps.os]), any_or(jobs.c.arch, [caps.arch]),
            any_or(jobs.c.executor, caps.executors), jobs.c.kind.in_(list(caps.kinds)),
            _within(jobs.c.pythons, caps.pythons),
            or_(jobs.c.image.is_(None), jobs.c.image == "",
                *([jobs.c.image.in_(caps.images)] if caps.images else []))]


def _within(column: Any, allowed: Sequence[str]) -> ColumnElement[bool]:
    """Every word of ``column`` (words one space apart, none twice) is one of
    ``allowed``: each allowed word is cut out of the padded list, and nothing
    may remain."""
    rest: Any = literal(" ") + column + literal(" ")
    for word in allowed:
        rest = func.replace(rest, f" {word} ", " ")
    # "length < 1", not "= ''": PostgreSQL's planner guesses that an equality on
    # an expression holds for 0.5% of the rows (an inequality: a third), so few
    # that it would sort every pending job instead of walking the claim index.
    return func.length(func.trim(rest)) < 1


@functools.lru_cache(maxsize=16)
def held_query(to: JobState, pg: bool) -> Select[Any]:
    """Which of the jobs ``b_ids`` are still leased (to anyone: the caller compares
    tokens and workers) and may move to ``to`` at ``b_now``; locked on PostgreSQL."""
    query = select(jobs.c.id, jobs.c.lease, jobs.c.worker).where(
        jobs.c.id.in_(bindparam("b_ids", expanding=True)),
        jobs.c.lease_expires >= bindparam("b_now", type_=Float),
        jobs.c.state.in_(sources(to, ACTIVE)))
    return query.with_for_update() if pg else query


@functools.lru_cache(maxsize=64)
def claim_query(caps: Capabilities, pg: bool) -> Select[Any]:
    """The first ``b_limit`` jobs a worker with ``caps`` can run at ``b_now``, best
    first (locked, skipping those locked by other claims, on PostgreSQL):
    built once per kind of worker, because building it anew (and
    SQLAlchemy compiling it anew) costs far more than running it."""
    now, limit = bindparam("b_now", type_=Float), bindparam("b_limit", type_=Integer)
    query = (select(jobs).where(jobs.c.state == S.PENDING.value, jobs.c.not_before <= now,
                                *matches(caps), needs_met())
             .order_by(jobs.c.priority.desc(), jobs.c.id).limit(limit))
    if pg:
        query = query.with_for_update(skip_locked=True, of=jobs)
    return query


def needs_met() -> ColumnElement[bool]:
    """Every recipe the job needs has a succeeded job for the same target and python."""
    dep = jobs.alias("dep")
    # Correlated by name: left to itself, SQLAlchemy correlates only to the
    # enclosing SELECT (job_needs) and adds a second, unrelated ``jobs`` to the
    # innermost FROM, so that a dependency built for any target would count.
    built = exists().where(dep.c.recipe == job_needs.c.recipe, dep.c.target == jobs.c.target,
                           dep.c.python == jobs.c.python, dep.c.state == S.SUCCEEDED
                           ).correlate(jobs, job_needs)
    unmet = select(job_needs.c.job_id).where(job_needs.c.job_id == jobs.c.id, ~built)
    return ~exists(unmet)


def needed_artifacts(conn: Connection, row: Row[Any]) -> list[dict[str, Any]]:
    """The recorded wheels of the recipes this job needs (same target and python)."""
    needed = select(job_needs.c.recipe).where(job_needs.c.job_id == row.id)
    found = conn.execute(select(jobs.c.key, jobs.c.artifact_filename, jobs.c.artifact_sha256,
                                jobs.c.artifact_location).where(
        jobs.c.recipe.in_(needed), jobs.c.target == row.target, jobs.c.python == row.python,
        jobs.c.state == S.SUCCEEDED, jobs.c.artifact_sha256.is_not(None)))
    return [{"key": r.key, "filename": r.artifact_filename, "sha256": r.artifact_sha256,
             "location": r.artifact_location} for r in found]


def lease_of(row: Row[Any], token: str) -> Lease:
    """The lease a row's current attempt holds (for the queue's own moves)."""
    return Lease(job_id=row.id, key=row.key, n=row.attempts, token=token,
                 worker=row.worker or "", expires=row.lease_expires or 0.0, kind=row.kind,
                 recipe=row.recipe, target=row.target, python=row.python,
                 executor=row.executor, pythons=tuple(row.pythons.split()),
                 timeout=row.timeout, spec={})


def event(conn: Connection, at: float, kind: str, job_id: int | None = None,
          n: int | None = None, worker: str | None = None,
          detail: Mapping[str, Any] | None = None) -> None:
    conn.execute(events.insert(), {"at": at, "job_id": job_id, "n": n, "worker": worker,
                                   "kind": kind,
                                   "detail": json.dumps(detail) if detail else None})


def _needing(row: Row[Any]) -> ColumnElement[bool]:
    """The jobs of ``row``'s target and python whose ``build.needs`` names its recipe."""
    return and_(jobs.c.target == row.target, jobs.c.python == row.python,
                jobs.c.id.in_(select(job_needs.c.job_id)
                              .where(job_needs.c.recipe == row.recipe)))


def revive_dependents(conn: Connection, row: Row[Any], now: float) -> list[Row[Any]]:
    """Jobs that :func:`fail_dependents` failed for this one (they never ran): pending
    again, transitively, now that it is; the revived rows."""
    failed = conn.execute(select(jobs).where(
        jobs.c.state == S.FAILED, jobs.c.attempts == 0, _needing(row))).all()
    revived: list[Row[Any]] = []
    for dep in failed:
        moved = conn.execute(update(jobs).where(
            jobs.c.id == dep.id, jobs.c.state.in_(sources(S.PENDING, frozenset({S.FAILED})))
        ).values(state=S.PENDING, failures=0, not_before=0.0, reason=None,
                 updated=now)).rowcount
        if moved:
            event(conn, now, "retried", dep.id, None, None, {"with": row.key})
            revived += [dep, *revive_dependents(conn, dep, now)]
    return revived


def fail_dependents(conn: Connection, row: Row[Any], now: float) -> None:
    """Jobs waiting for this one's wheel can never run: fail them, transitively."""
    waiting = conn.execute(select(jobs).where(jobs.c.state == S.PENDING, _needing(row))).all()
    for dep in waiting:
        reason = (f"needs {row.recipe}, whose job {row.key[:12]} for {row.target} "
                  f"{row.python} did not succeed")
        moved = conn.execute(update(jobs).where(
            jobs.c.id == dep.id,
            jobs.c.state.in_(sources(S.FAILED, frozenset({S.PENDING})))
        ).values(state=S.FAILED, reason=reason, updated=now)).rowcount
        if moved:
            event(conn, now, "failed", dep.id, None, None, {"reason": reason})
            fail_dependents(conn, dep, now)

