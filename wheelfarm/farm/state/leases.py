"""The holder's side of a lease (heartbeats, start, outcome, hand-back); mixed
into :class:`~wheelfarm.farm.state.queue.Queue`.

Every report names its lease by token, and every move it makes is a
conditional update that also checks the token and the lease's expiry, so a
worker that lost its job (reclaimed, cancelled) can no longer record
anything for it; a refused result leaves a ``result-refused`` event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, update

from wheelfarm.build import causes
from wheelfarm.errors import FailureCause, FailureKind, LeaseLost
from wheelfarm.farm.state import batches, lifecycle, news, sql
from wheelfarm.farm.state.lifecycle import ACTIVE, JobState
from wheelfarm.farm.state.models import Lease, Outcome
from wheelfarm.farm.state.schema import jobs, workers
from wheelfarm.farm.state.sql import event as _event

S = JobState


class Leases:
    engine: Engine
    clock: Callable[[], float]
    lease_seconds: float
    backoff: float
    _pg: bool

    def heartbeat(self, leases: Iterable[Lease]) -> list[Lease]:
        """Extend each lease; returns those that are lost (their job must be abandoned)."""
        lost: list[Lease] = []
        with self.engine.begin() as conn:
            now = self.clock()  # in the transaction: SQLite's lock may have kept us waiting
            worker = None
            for lease in leases:
                worker = lease.worker
                params = {**sql.lease_params(lease, now), "b_expires": now + self.lease_seconds}
                if not conn.execute(sql.HEARTBEAT, params).rowcount:
                    lost.append(lease)
            if worker is not None:
                conn.execute(update(workers).where(workers.c.name == worker)
                             .values(last_seen=now))
        return lost

    def start(self, lease: Lease) -> None:
        if self.start_many([lease]):
            raise LeaseLost(f"job {lease.key[:12]}: the lease is no longer held")

    def start_many(self, leases: Sequence[Lease]) -> list[Lease]:
        """Mark leased jobs running, in one transaction; returns the leases found lost."""
        if not leases:
            return []
        with self.engine.begin() as conn:
            now = self.clock()
            started = self._held(conn, leases, now, S.RUNNING)
            if started:
                conn.execute(sql.START, [sql.lease_params(x, now) for x in started])
                batches.add_events(conn, self._pg, now,
                                   [(x.job_id, x.n, x.worker, "started", None) for x in started])
        ids = {x.job_id for x in started}
        return [x for x in leases if x.job_id not in ids]

    def _held(self, conn: Connection, leases: Sequence[Lease], now: float,
              to: JobState) -> list[Lease]:
        """Those of ``leases`` that still hold their job and may move it to ``to``,
        locked for this transaction, so that one batched update moves exactly them."""
        found = {(r.id, r.lease, r.worker) for r in conn.execute(
            sql.held_query(to, self._pg), {"b_ids": [x.job_id for x in leases], "b_now": now})}
        return [x for x in leases if (x.job_id, x.token, x.worker) in found]

    def finish(self, lease: Lease, outcome: Outcome) -> JobState:
        """Record an attempt's outcome; returns the job's new state.

        Raises LeaseLost (after logging a ``result-refused`` event) when the
        lease is no longer this worker's.
        """
        [state] = self.finish_many([(lease, outcome)])
        if state is None:
            raise LeaseLost(f"job {lease.key[:12]}: the lease is no longer held")
        return state

    def finish_many(self, reports: Sequence[tuple[Lease, Outcome]]) -> list[JobState | None]:
        """Record several outcomes in one transaction; None for each refused one
        (its lease is lost; a ``result-refused`` event says so)."""
        with self.engine.begin() as conn:
            return self._finish_many(conn, reports, self.clock())  # now: in the transaction

    def _finish_many(self, conn: Connection, reports: Sequence[tuple[Lease, Outcome]],
                     now: float) -> list[JobState | None]:
        # Keyed by job and token: a stale lease and the current one of the same job
        # are two reports (one refused); the same report twice is one.
        states: dict[tuple[int, str], JobState] = {}
        good: dict[tuple[int, str], tuple[Lease, Outcome]] = {}
        for x, o in reports:
            if o.ok:
                good.setdefault((x.job_id, x.token), (x, o))
        rest = list(good.values())
        while rest:  # in rounds of distinct jobs: one statement names each job once
            batch: dict[int, tuple[Lease, Outcome]] = {}
            for x, o in rest:
                batch.setdefault(x.job_id, (x, o))
            rest = [(x, o) for x, o in rest if batch[x.job_id][0].token != x.token]
            states.update(self._succeed(conn, list(batch.values()), now))
        for lease, outcome in reports:
            if outcome.ok or (lease.job_id, lease.token) in states:
                continue
            row = conn.execute(select(jobs).where(sql.held()),
                               sql.lease_params(lease, now)).first()
            try:
                if row is None:
                    raise LeaseLost(lease.key)
                states[lease.job_id, lease.token] = self._failed(
                    conn, row, lease.token, now, outcome.kind or FailureKind.INTERNAL,
                    outcome.reason, "failed", outcome)
            except LeaseLost:  # gone, or no longer running (a success came first)
                pass
        for lease, outcome in reports:
            if (lease.job_id, lease.token) not in states:
                _event(conn, now, "result-refused", lease.job_id, lease.n, lease.worker,
                       {"ok": outcome.ok, "why": "the lease is no longer held"})
        return [states.get((x.job_id, x.token)) for x, _ in reports]

    def _succeed(self, conn: Connection, good: Sequence[tuple[Lease, Outcome]],
                 now: float) -> dict[tuple[int, str], JobState]:
        """Record the successes of distinct jobs whose leases still hold them."""
        found = batches.packed([
            {"id": x.job_id, "token": x.token, "worker": x.worker,
             "filename": o.artifact.filename if o.artifact else None,
             "sha256": o.artifact.sha256 if o.artifact else None,
             "location": o.artifact.location if o.artifact else None} for x, o in good])
        done = set(conn.execute(batches.succeed(self._pg),
                                {"b_now": now, "b_rows": found}).scalars())
        accepted = [(x, o) for x, o in good if x.job_id in done]
        if accepted:
            conn.execute(batches.close(self._pg), {"b_now": now, "b_rows": batches.packed([
                {"id": x.job_id, "n": x.n, "log": o.log, "duration": o.duration}
                for x, o in accepted])})
            batches.add_events(conn, self._pg, now, [
                (x.job_id, x.n, x.worker, "succeeded", json.dumps({
                    "artifact": o.artifact.filename if o.artifact else None,
                    "sha256": o.artifact.sha256 if o.artifact else None}))
                for x, o in accepted])
        return {(x.job_id, x.token): S.SUCCEEDED for x, _ in accepted}

    def release(self, lease: Lease, reason: str) -> None:
        """Hand a job back (the worker is stopping); this attempt does not count."""
        with self.engine.begin() as conn:
            now = self.clock()
            self._move(conn, sql.RELEASE, sql.lease_params(lease, now), lease)
            self._close(conn, lease, now, "released", reason, None)
            _event(conn, now, "released", lease.job_id, lease.n, lease.worker, {"why": reason})
            news.notify(conn)

    def _move(self, conn: Connection, statement: Any, params: dict[str, Any],
              lease: Lease) -> None:
        if not conn.execute(statement, params).rowcount:
            raise LeaseLost(f"job {lease.key[:12]}: the lease is no longer held")

    def _close(self, conn: Connection, lease: Lease, now: float, outcome: str,
               reason: str | None, report: Outcome | None,
               cause: FailureCause | None = None) -> None:
        conn.execute(sql.CLOSE_ATTEMPT, {
            "b_id": lease.job_id, "b_n": lease.n, "b_now": now, "b_outcome": outcome,
            "b_reason": reason or (report.reason if report else None) or None,
            "b_log": report.log if report else None,
            "b_duration": report.duration if report else None,
            "b_cause": cause.value if cause else None})

    def _failed(self, conn: Connection, row: Row[Any], token: str, now: float,
                kind: FailureKind,
                reason: str, outcome: str, report: Outcome | None) -> JobState:
        failures = row.failures + 1
        decision = lifecycle.decide(failures, row.max_attempts, kind, reason,
                                    backoff=self.backoff)
        # A worker's report names the cause it read in the log; a failure the
        # queue decides itself (a lease that expired) has only its kind.
        cause = report.cause if report is not None and report.cause else \
            causes.classify(kind, reason)
        to = S.PENDING if decision.retry else S.FAILED
        moved = conn.execute(update(jobs).where(
            jobs.c.id == row.id, jobs.c.lease == token,
            jobs.c.state.in_(lifecycle.sources(to, ACTIVE))
        ).values(state=to, failures=failures, lease=None, worker=None, lease_expires=None,
                 not_before=now + decision.delay, reason=decision.reason, updated=now,
                 cause=cause.value if cause else None)).rowcount
        if not moved:
            raise LeaseLost(f"job {row.key[:12]}: the lease is no longer held")
        lease = sql.lease_of(row, token)
        self._close(conn, lease, now, outcome, reason, report, cause)
        detail = {"kind": kind.value, "reason": reason, "retry_in": decision.delay,
                  "cause": cause.value if cause else None}
        _event(conn, now, "retrying" if decision.retry else "failed", row.id, row.attempts,
               row.worker, detail)
        if to is S.FAILED:
            sql.fail_dependents(conn, row, now)
        return to
