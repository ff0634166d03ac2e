"""Adding jobs to the queue; mixed into :class:`~wheelfarm.farm.state.queue.Queue`.

Each part of a submission (see :meth:`Intake.submit`) is a handful of
statements whatever its size: the known keys are looked up with the whole
list as one parameter, the rows go in by the driver's own bulk path (COPY on
PostgreSQL, ``executemany`` on SQLite) and the ``submitted`` events are
written by the database from the new rows, so that no per-row work is left
to SQLAlchemy, whose parameter handling costs more per row than the insert
itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Executable,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from wheelfarm.errors import ConfigError
from wheelfarm.farm.state import news
from wheelfarm.farm.state.lifecycle import JobState
from wheelfarm.farm.state.models import NewJob
from wheelfarm.farm.state.schema import events, job_needs, jobs
from wheelfarm.farm.state.sql import event, fail_dependents

_COPY_FROM = 200  # rows: from here on PostgreSQL gets them by COPY (and then analyzes)
_FIRST = 500  # jobs in a submission's first transaction: claimable within moments
_PART = 5000  # jobs in each of the following ones


class Intake:
    engine: Engine
    clock: Callable[[], float]
    _pg: bool

    def submit(self, new: Sequence[NewJob]) -> tuple[int, int]:
        """Add jobs; a key already queued is left as it is. Returns (added, already there).

        A needed recipe must have a job for the same target and python, in
        this submission or already queued; otherwise ConfigError, and nothing
        is added. A large submission is written in parts, each its own
        transaction, the first a small one: workers start on its jobs while
        the rest is written. Should writing fail part way, the parts before
        stay queued (submitting again adds the rest). Jobs that need others
        go first: a dependency must not fail before its dependents are there
        to be failed with it (they cannot run before it has succeeded).
        """
        now = self.clock()
        with self.engine.begin() as conn:
            known = self._known(conn, [j.key for j in new])
            fresh = list({j.key: j for j in new if j.key not in known}.values())
            self._check_needs(conn, fresh)
        ordered = [j for j in fresh if j.needs] + [j for j in fresh if not j.needs]
        added, start, size = 0, 0, _FIRST
        while start < len(ordered):
            part = ordered[start:start + size]
            start, size = start + size, _PART
            # Made before the transaction: the time it takes is a gap in which
            # claims waiting for SQLite's write lock can have it.
            rows = {j.key: job_values(j, now) for j in part}
            with self.engine.begin() as conn:
                # Again: another submission may have added some meanwhile.
                known = self._known(conn, list(rows))
                added += self._add(conn, [j for j in part if j.key not in known],
                                   [v for k, v in rows.items() if k not in known], now)
        if self._pg and added > _COPY_FROM:
            # A table that grew by thousands of rows has no statistics for
            # them until autovacuum comes by; the claim's planner would then
            # sort every pending row instead of reading the claim index.
            # After the commits: the jobs are claimable meanwhile.
            with self.engine.begin() as conn:
                conn.execute(text("ANALYZE jobs"))
        return added, len(new) - added

    def _known(self, conn: Connection, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` already queued."""
        return set(conn.execute(_known(self._pg), {"keys": _listed(keys)}).scalars())

    def _add(self, conn: Connection, fresh: Sequence[NewJob], rows: Sequence[dict[str, Any]],
             now: float) -> int:
        """Insert ``fresh`` (whose ``rows`` are made) with their events and needs."""
        if not fresh:
            return 0
        if self._pg and len(rows) > _COPY_FROM:
            copy_rows(conn, jobs, rows)
        else:
            insert_rows(conn, jobs, rows)
        conn.execute(_submitted(self._pg), {"now": now, "keys": _listed([j.key for j in fresh])})
        needs = [{"key": j.key, "recipe": r} for j in fresh for r in j.needs]
        if needs:
            conn.execute(_NEEDS, needs)
            _fail_hopeless(conn, [j for j in fresh if j.needs], now)
        news.notify(conn)
        return len(fresh)

    def _check_needs(self, conn: Connection, fresh: Sequence[NewJob]) -> None:
        offered = {(j.recipe, j.target, j.python) for j in fresh}
        for job in fresh:
            for need in job.needs:
                if (need, job.target, job.python) in offered:
                    continue
                queued = conn.execute(select(jobs.c.id).where(
                    jobs.c.recipe == need, jobs.c.target == job.target,
                    jobs.c.python == job.python).limit(1)).first()
                if queued is None:
                    raise ConfigError(
                        f"{job.recipe} needs {need}, but no job builds {need} for "
                        f"{job.target} and {job.python}; submit it too")
                offered.add((need, job.target, job.python))


def _fail_hopeless(conn: Connection, waiting: Sequence[NewJob], now: float) -> None:
    """Fail the new jobs whose needed recipe has jobs for their target and python
    that all ended without success: they would wait forever (a dependency that
    fails later fails them through ``fail_dependents``)."""
    alive = (JobState.PENDING, JobState.LEASED, JobState.RUNNING, JobState.SUCCEEDED)
    for job in waiting:
        for need in job.needs:
            states = set(conn.execute(select(jobs.c.state).where(
                jobs.c.recipe == need, jobs.c.target == job.target,
                jobs.c.python == job.python)).scalars())
            if not states or states & set(alive):
                continue
            row = conn.execute(select(jobs).where(jobs.c.key == job.key)).one()
            reason = (f"needs {need}, whose jobs for {job.target} {job.python} "
                      f"ended without success ({', '.join(sorted(states))})")
            moved = conn.execute(update(jobs).where(
                jobs.c.id == row.id, jobs.c.state == JobState.PENDING
            ).values(state=JobState.FAILED, reason=reason, updated=now)).rowcount
            if moved:
                event(conn, now, "failed", row.id, None, None, {"reason": reason})
                fail_dependents(conn, row, now)
            break


def _among(column: ColumnElement[Any], name: str, pg: bool) -> ColumnElement[bool]:
    """``column`` is one of a list bound as ONE parameter, a JSON array (see
    :func:`_listed`), not one placeholder per value: 10,000 placeholders (or a
    10,000-element array, which psycopg adapts in Python) cost more than the query."""
    if pg:
        each = func.json_array_elements_text(
            cast(bindparam(name, type_=Text), JSON)).table_valued("value")
    else:
        each = func.json_each(bindparam(name, type_=Text)).table_valued("value")
    return column.in_(select(each.c.value))


def _listed(values: Sequence[str]) -> str:
    """The value of a parameter of :func:`_among`."""
    return json.dumps(list(values))


@cache
def _known(pg: bool) -> Executable:
    return select(jobs.c.key).where(_among(jobs.c.key, "keys", pg))


@cache
def _submitted(pg: bool) -> Executable:
    """The ``submitted`` event of each new job, in the order of the jobs, written by the
    database from their rows."""
    if pg:
        detail: Any = cast(func.json_build_object("key", jobs.c.key, "priority",
                                                  jobs.c.priority), Text)
    else:
        detail = func.json_object("key", jobs.c.key, "priority", jobs.c.priority)
    new = select(bindparam("now"), jobs.c.id, literal("submitted"), detail).where(
        _among(jobs.c.key, "keys", pg)).order_by(jobs.c.id)
    return events.insert().from_select(["at", "job_id", "kind", "detail"], new)


_NEEDS = job_needs.insert().from_select(
    ["job_id", "recipe"],
    select(jobs.c.id, bindparam("recipe", type_=String)).where(jobs.c.key == bindparam("key")))


def job_values(job: NewJob, now: float) -> dict[str, Any]:
    return {
        "key": job.key, "kind": job.kind, "recipe": job.recipe, "target": job.target,
        "python": job.python, "executor": job.executor, "os": job.os, "arch": job.arch,
        # Each once: the claim query matches them word by word (see sql.matches).
        "pythons": " ".join(dict.fromkeys(job.pythons)), "image": job.image,
        "spec": json.dumps(dict(job.spec), sort_keys=True), "priority": job.priority,
        "state": JobState.PENDING.value, "attempts": 0, "failures": 0,
        "max_attempts": job.max_attempts, "timeout": job.timeout,
        "target_limit": job.target_limit, "not_before": 0.0, "created": now, "updated": now,
        "owners": json.dumps(list(job.owners)) if job.owners else None,
    }


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert plain rows (str, int, float, None) with the driver's ``executemany``,
    past SQLAlchemy's per-row parameter processing."""
    columns = list(rows[0])
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    statement = (f"INSERT INTO {table.name} ({', '.join(map(quote, columns))}) "
                 f"VALUES ({', '.join([mark] * len(columns))})")
    conn.exec_driver_sql(statement, [tuple(row[c] for c in columns) for row in rows])


def copy_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows with PostgreSQL's COPY, in the caller's transaction: for
    10,000 jobs several times faster than a multi-row INSERT, whose parameters
    psycopg must rewrite in Python."""
    columns = list(rows[0])
    raw = conn.connection.driver_connection
    assert raw is not None
    names = ", ".join(columns)
    with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])
