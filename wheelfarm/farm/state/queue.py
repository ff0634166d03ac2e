"""The persistent job queue: every move of a job is one conditional update.

Claiming takes ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and runs in an
immediate transaction on SQLite (see :mod:`.db`), so two workers never hold
the same job. A lease carries a random token; heartbeats and results must
present it and arrive before the lease expires, so a worker that lost its
job (reclaimed, cancelled) can no longer record anything for it.
"""

from __future__ import annotations

import json
import secrets
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, select, text, update

from wheelfarm.errors import FailureKind
from wheelfarm.farm.state import batches, sql
from wheelfarm.farm.state.history import History
from wheelfarm.farm.state.intake import Intake
from wheelfarm.farm.state.leases import Leases
from wheelfarm.farm.state.lifecycle import ACTIVE, JobState
from wheelfarm.farm.state.lookups import Lookups
from wheelfarm.farm.state.models import Capabilities, Lease, Outcome, instant
from wheelfarm.farm.state.news import News
from wheelfarm.farm.state.operators import Operations
from wheelfarm.farm.state.schema import jobs, workers
from wheelfarm.farm.state.sql import event as _event

S = JobState
_RECLAIM_EVERY = 1.0  # seconds between automatic reclaim passes of one process


class Queue(Intake, Leases, Lookups, Operations, History):
    """Domain operations on the state database; see :mod:`.lifecycle` for the states."""

    def __init__(self, engine: Engine, *, lease_seconds: float = 30.0, backoff: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self.backoff = backoff
        self.clock = clock
        self._pg = engine.dialect.name == "postgresql"
        self._last_reclaim = 0.0
        self._news: News | None = None

    def close(self) -> None:
        """Close the database connections (the queue may be reopened by using it)."""
        if self._news is not None:
            self._news.close()
        self.engine.dispose()

    def wait(self, timeout: float) -> bool:
        """Whether jobs may have become claimable (submitted, retried, handed back)
        since the last call, waiting up to ``timeout`` seconds (see :mod:`.news`)."""
        if self._news is None:
            self._news = News(self.engine)
        return self._news.wait(timeout)

    # -- workers ----------------------------------------------------------------------------

    def register(self, name: str, caps: Capabilities) -> None:
        now = self.clock()
        doc = json.dumps(caps.to_dict(), sort_keys=True)
        with self.engine.begin() as conn:
            changed = conn.execute(update(workers).where(workers.c.name == name)
                                   .values(capabilities=doc, last_seen=now)).rowcount
            if not changed:
                conn.execute(workers.insert().values(name=name, capabilities=doc,
                                                     first_seen=now, last_seen=now))
            _event(conn, now, "worker-registered", worker=name, detail=caps.to_dict())

    def set_token(self, name: str, token_sha256: str) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            changed = conn.execute(update(workers).where(workers.c.name == name)
                                   .values(token_sha256=token_sha256)).rowcount
            if not changed:
                conn.execute(workers.insert().values(name=name, token_sha256=token_sha256,
                                                     first_seen=now, capabilities="{}"))
            _event(conn, now, "token-issued", worker=name)

    def worker_for_token(self, token_sha256: str) -> str | None:
        with self.engine.begin() as conn:
            return conn.execute(select(workers.c.name)
                                .where(workers.c.token_sha256 == token_sha256)).scalar()

    # -- claiming ---------------------------------------------------------------------------

    def claim(self, worker: str, caps: Capabilities, limit: int = 1, *,
              start: bool = False) -> list[Lease]:
        """Lease up to ``limit`` runnable jobs to ``worker``, best priority first.

        With ``start``, the leased jobs that run at once (:func:`.models.instant`)
        are started in the same transaction too, and their leases say
        ``running``: a worker that would start them the next moment is spared a
        transaction of its own. The event log shows both moves all the same.
        """
        self._reclaim_now_and_then()
        with self.engine.begin() as conn:
            # Read once the transaction has begun (on SQLite, once it holds the
            # write lock, which may take a while): the lease runs from then, and
            # the event log must not say it began before the jobs were there.
            return self._claim(conn, worker, caps, limit, start, self.clock())

    def finish_and_claim(self, reports: Sequence[tuple[Lease, Outcome]], worker: str,
                         caps: Capabilities, limit: int = 1, *,
                         start: bool = False) -> tuple[list[JobState | None], list[Lease]]:
        """:meth:`finish_many` and then :meth:`claim`, in one transaction: the
        outcomes of a batch of instant jobs and the next batch cost a worker one
        transaction (one request to the controller), not two."""
        self._reclaim_now_and_then()
        with self.engine.begin() as conn:
            now = self.clock()
            states = self._finish_many(conn, reports, now)
            return states, self._claim(conn, worker, caps, limit, start, now)

    def _claim(self, conn: Connection, worker: str, caps: Capabilities, limit: int,
               start: bool, now: float) -> list[Lease]:
        leases: list[Lease] = []
        batch: list[Row[Any]] = []
        found = conn.execute(sql.claim_query(caps, self._pg), {"b_now": now, "b_limit": limit})
        for row in found.all():
            if not row.target_limit:
                batch.append(row)
            elif self._below_limit(conn, row):
                # One at a time: the count must see each lease of this claim.
                leases.append(self._lease(conn, [row], worker, now, start)[0])
        if batch:
            leases += self._lease(conn, batch, worker, now, start)
        if not leases:
            return leases
        self._start_leased(conn, leases, now)
        conn.execute(batches.open_attempts(self._pg), {
            "b_worker": worker, "b_now": now,
            "b_rows": batches.packed([{"id": x.job_id, "n": x.n, "token": x.token}
                                      for x in leases])})
        batches.add_events(conn, self._pg, now, [
            (x.job_id, x.n, worker, kind, None)
            for x in leases for kind in (("leased", "started") if x.running else ("leased",))])
        return leases

    def _start_leased(self, conn: Connection, leases: list[Lease], now: float) -> None:
        """Start those of ``leases`` marked ``running`` (just leased by this
        transaction, which holds them) with one conditional update."""
        ids = [x.job_id for x in leases if x.running]
        if ids:
            moved = conn.execute(sql.START_LEASED, {"b_ids": ids, "b_now": now}).rowcount
            if moved != len(ids):  # the rows are held by this transaction: cannot happen
                raise RuntimeError(f"started {moved} of {len(ids)} leased jobs")

    def _below_limit(self, conn: Connection, row: Row[Any]) -> bool:
        """Whether ``row``'s target has room; counts this transaction's own leases too."""
        if self._pg:
            # Counting and leasing must not interleave between two claimers.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                         {"k": zlib.crc32(row.target.encode())})
        running = conn.execute(select(func.count()).select_from(jobs).where(
            jobs.c.target == row.target, jobs.c.state.in_([s.value for s in ACTIVE]))).scalar()
        return int(running or 0) < int(row.target_limit)

    def _lease(self, conn: Connection, rows: Sequence[Row[Any]], worker: str, now: float,
               start: bool) -> list[Lease]:
        """Lease ``rows``, which this transaction holds (SKIP LOCKED on PostgreSQL,
        the immediate transaction on SQLite), with one update; with ``start``, the
        leases of instant jobs say ``running`` (for :meth:`_start_leased`)."""
        expires = now + self.lease_seconds
        tokens = [secrets.token_hex(16) for _ in rows]
        moved = conn.execute(batches.lease(self._pg), {
            "b_worker": worker, "b_expires": expires, "b_now": now,
            "b_rows": batches.packed([{"id": row.id, "token": token}
                                      for row, token in zip(rows, tokens, strict=True)])
        }).rowcount
        if moved != len(rows):  # the rows are held by this transaction: cannot happen
            raise RuntimeError(f"leased {moved} of {len(rows)} held jobs")
        leases = []
        for row, token in zip(rows, tokens, strict=True):
            spec = json.loads(row.spec)
            if row.kind == "build":
                spec["needs"] = sql.needed_artifacts(conn, row)
            leases.append(Lease(
                job_id=row.id, key=row.key, n=row.attempts + 1, token=token, worker=worker,
                expires=expires, kind=row.kind, recipe=row.recipe, target=row.target,
                python=row.python, executor=row.executor, pythons=tuple(row.pythons.split()),
                timeout=row.timeout, spec=spec, seconds=self.lease_seconds,
                running=start and instant(row.kind, spec)))
        return leases

    # -- keeping leases honest ---------------------------------------------------------------

    def _reclaim_now_and_then(self) -> None:
        if self.clock() - self._last_reclaim >= _RECLAIM_EVERY:
            self.reclaim()

    def reclaim(self) -> int:
        """Take back every job whose lease expired; retry it or fail it. Returns how many."""
        now = self.clock()
        self._last_reclaim = now
        count = 0
        with self.engine.begin() as conn:
            query = select(jobs).where(jobs.c.state.in_([s.value for s in ACTIVE]),
                                       jobs.c.lease_expires < now)
            if self._pg:
                query = query.with_for_update(skip_locked=True)
            for row in conn.execute(query).all():
                why = f"lease expired: worker {row.worker} stopped heartbeating"
                self._failed(conn, row, row.lease, now, FailureKind.LEASE_EXPIRED, why, "lost",
                             None)
                count += 1
        return count
