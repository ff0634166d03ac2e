"""What operators do to jobs (find, retry, cancel) and what drain asks
(``outstanding``); mixed into :class:`~wheelfarm.farm.state.queue.Queue`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, Row, func, select, update

from wheelfarm.errors import ConfigError
from wheelfarm.farm.state import lifecycle, news, sql
from wheelfarm.farm.state.lifecycle import JobState
from wheelfarm.farm.state.models import Capabilities
from wheelfarm.farm.state.schema import attempts, jobs

S = JobState


class Operations:
    engine: Engine
    clock: Callable[[], float]

    # -- operators ---------------------------------------------------------------------------

    def find(self, ref: str) -> Row[Any]:
        """The job whose key is ``ref`` or starts with it; ConfigError if none or several."""
        ref = ref.strip().lower()
        if not ref:
            raise ConfigError("give a job key or a prefix of one")
        with self.engine.begin() as conn:
            rows = conn.execute(select(jobs).where(
                jobs.c.key.startswith(ref, autoescape=True)).limit(3)).all()
        if not rows:
            raise ConfigError(f"no job matches {ref!r}")
        if len(rows) > 1:
            keys = ", ".join(r.key[:16] for r in rows)
            raise ConfigError(f"{ref!r} matches several jobs ({keys}, ...); give more of the key")
        return rows[0]

    def retry(self, ref: str) -> Row[Any]:
        return self.retry_job(ref)[0]

    def retry_job(self, ref: str) -> tuple[Row[Any], list[Row[Any]]]:
        """Queue a failed or cancelled job again, and with it the jobs that failed
        without running because it had failed; its row and theirs."""
        row = self.find(ref)
        now = self.clock()
        if row.state not in (S.FAILED, S.CANCELLED):
            raise ConfigError(f"job {row.key[:12]} is {row.state}; only failed or cancelled "
                              "jobs can be retried")
        with self.engine.begin() as conn:
            moved = conn.execute(update(jobs).where(
                jobs.c.id == row.id, jobs.c.state.in_(lifecycle.sources(S.PENDING,
                                                                        lifecycle.FINAL))
            ).values(state=S.PENDING, failures=0, not_before=0.0, reason=None,
                     updated=now)).rowcount
            if not moved:
                raise ConfigError(f"job {row.key[:12]} changed meanwhile; look again")
            sql.event(conn, now, "retried", row.id)
            revived = sql.revive_dependents(conn, row, now)
            news.notify(conn)
        return row, revived

    def cancel(self, ref: str) -> Row[Any]:
        row = self.find(ref)
        now = self.clock()
        with self.engine.begin() as conn:
            moved = conn.execute(update(jobs).where(
                jobs.c.id == row.id, jobs.c.state.in_(lifecycle.sources(S.CANCELLED))
            ).values(state=S.CANCELLED, lease=None, worker=None, lease_expires=None,
                     reason="cancelled by an operator", updated=now)).rowcount
            if not moved:
                raise ConfigError(f"job {row.key[:12]} is {row.state}; it cannot be cancelled")
            if row.state in (S.LEASED, S.RUNNING):
                conn.execute(update(attempts).where(
                    attempts.c.job_id == row.id, attempts.c.n == row.attempts
                ).values(ended=now, outcome="cancelled", reason="cancelled by an operator"))
            sql.event(conn, now, "cancelled", row.id, row.attempts if row.worker else None,
                   row.worker)
            sql.fail_dependents(conn, row, now)
        return row

    def outstanding(self, caps: Capabilities) -> int:
        """Jobs this worker could still get: pending, or active elsewhere (they may come back)."""
        with self.engine.begin() as conn:
            return int(conn.execute(select(func.count()).select_from(jobs).where(
                jobs.c.state.in_([S.PENDING, S.LEASED, S.RUNNING]), *sql.matches(caps))
            ).scalar() or 0)
