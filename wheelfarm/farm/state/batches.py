"""The statements that move a whole batch of jobs at once.

A batch's rows travel as ONE parameter, a JSON array of objects, which the
database unpacks into a table (``json_to_recordset`` on PostgreSQL,
``json_each`` on SQLite): one statement for the batch, whose text is the
same whatever its size, so that SQLAlchemy compiles it once, psycopg
parses it once and PostgreSQL plans it once. A statement per row
(executemany) makes the server run 16 statements for a batch of 16; one
with a VALUES list or a CASE per row has a text (and a count of
parameters) per batch size, which psycopg parses anew for every execution
past 50 parameters.

Every update keeps its ``WHERE state IN (...)`` from :mod:`.lifecycle`, and
those that report for a lease also match its token and expiry, as the
single-row statements of :mod:`.sql` do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Float,
    FromClause,
    Insert,
    Integer,
    String,
    Text,
    Update,
    any_,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from wheelfarm.farm.state.lifecycle import ACTIVE, JobState, sources
from wheelfarm.farm.state.schema import attempts, events, jobs

S = JobState


def rows(pg: bool, **columns: Any) -> FromClause:
    """The rows of the parameter ``b_rows`` (see :func:`packed`) as a table ``v``."""
    if pg:
        return func.json_to_recordset(cast(bindparam("b_rows", type_=Text), JSON)).table_valued(
            *(column(name, type_) for name, type_ in columns.items())
        ).render_derived(name="v", with_types=True)
    each = func.json_each(bindparam("b_rows", type_=Text)).table_valued("value")
    return select(*(type_coerce(func.json_extract(each.c.value, f"$.{name}"), type_).label(name)
                    for name, type_ in columns.items())).select_from(each).subquery("v")


def listed(column: ColumnElement[Any], pg: bool) -> ColumnElement[bool]:
    """``column`` is one of the ``id`` of the rows of ``b_rows``: a condition that
    makes the planners look the batch's jobs up by key (PostgreSQL: an array
    compared with ANY; SQLite: IN), where a join alone would have them scan
    every pending or running job, guessing the batch's size unknown."""
    if pg:
        each: Any = func.json_array_elements(
            cast(bindparam("b_rows", type_=Text), JSON)).table_valued("value")
        ids = select(cast(each.c.value.op("->>")(literal_column("'id'")), Integer))
        return column == any_(func.array(ids.scalar_subquery()))
    each = func.json_each(bindparam("b_rows", type_=Text)).table_valued("value")
    return column.in_(select(func.json_extract(each.c.value, "$.id")))


def _state_in(states: Sequence[str]) -> ColumnElement[bool]:
    """``state IN (...)`` that no index on ``state`` can serve (``state || ''``): left
    to itself SQLite, without statistics, guesses an equality on an indexed column
    matches 10 rows and walks every pending (or running) job rather than look the
    batch's jobs up by id (see :func:`listed`)."""
    return or_(*((jobs.c.state + "") == state for state in states))


def packed(batch: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(batch), separators=(",", ":"))


@cache
def lease(pg: bool) -> Update:
    """Lease the jobs ``v.id`` (which the transaction holds), each with its token
    ``v.token``, to ``b_worker`` until ``b_expires``."""
    v = rows(pg, id=Integer, token=String)
    return update(jobs).where(
        jobs.c.id == v.c.id, listed(jobs.c.id, pg), _state_in(sources(S.LEASED))
    ).values(
        state=S.LEASED.value, lease=v.c.token, worker=bindparam("b_worker"),
        lease_expires=bindparam("b_expires", type_=Float), attempts=jobs.c.attempts + 1,
        updated=bindparam("b_now", type_=Float))


@cache
def succeed(pg: bool) -> Update:
    """Record the successes ``v`` (job, token, worker, artifact) whose lease still
    holds its running job at ``b_now``; returns the ids of the jobs it moved."""
    v = rows(pg, id=Integer, token=String, worker=String, filename=String, sha256=String,
             location=Text)
    return update(jobs).where(
        jobs.c.id == v.c.id, listed(jobs.c.id, pg), jobs.c.lease == v.c.token,
        jobs.c.worker == v.c.worker,
        jobs.c.lease_expires >= bindparam("b_now", type_=Float),
        _state_in(sources(S.SUCCEEDED, ACTIVE))
    ).values(state=S.SUCCEEDED.value, updated=bindparam("b_now", type_=Float), reason=None,
             cause=None, artifact_filename=v.c.filename, artifact_sha256=v.c.sha256,
             artifact_location=v.c.location).returning(jobs.c.id)


@cache
def close(pg: bool) -> Update:
    """End the attempts ``v`` (job, attempt) as succeeded, each with its log and duration."""
    v = rows(pg, id=Integer, n=Integer, log=Text, duration=Float)
    return update(attempts).where(attempts.c.job_id == v.c.id, attempts.c.n == v.c.n).values(
        ended=bindparam("b_now", type_=Float), outcome="succeeded", reason=None,
        log=v.c.log, duration=v.c.duration)


@cache
def open_attempts(pg: bool) -> Insert:
    """The attempts ``v`` (job, attempt, token) of ``b_worker``, begun at ``b_now``."""
    v = rows(pg, id=Integer, n=Integer, token=String)
    return attempts.insert().from_select(
        ["job_id", "n", "worker", "lease", "started"],
        select(v.c.id, v.c.n, bindparam("b_worker"), v.c.token,
               bindparam("b_now", type_=Float)))


@cache
def log(pg: bool) -> Insert:
    """The events ``v``, in the order given (``v.ord``), at ``b_now``."""
    v = rows(pg, ord=Integer, id=Integer, n=Integer, worker=String, kind=String, detail=Text)
    return events.insert().from_select(
        ["at", "job_id", "n", "worker", "kind", "detail"],
        select(bindparam("b_now", type_=Float), v.c.id, v.c.n, v.c.worker, v.c.kind,
               v.c.detail).order_by(v.c.ord))


def add_events(conn: Connection, pg: bool, now: float,
               found: Sequence[tuple[int, int | None, str | None, str, str | None]]) -> None:
    """Log events (job, attempt, worker, kind, detail as JSON text) with one statement."""
    if found:
        conn.execute(log(pg), {"b_now": now, "b_rows": packed([
            {"ord": k, "id": job, "n": n, "worker": worker, "kind": kind, "detail": detail}
            for k, (job, n, worker, kind, detail) in enumerate(found)])})
