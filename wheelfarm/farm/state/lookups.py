"""What the controller and a local build read about jobs; mixed into
:class:`~wheelfarm.farm.state.queue.Queue`, so that no code outside
:mod:`wheelfarm.farm.state` queries its tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Row, select

from wheelfarm.farm.state.lifecycle import ACTIVE, JobState
from wheelfarm.farm.state.schema import jobs

_LEASE_COLUMNS = (jobs.c.id, jobs.c.key, jobs.c.attempts, jobs.c.lease, jobs.c.worker,
                  jobs.c.lease_expires, jobs.c.kind, jobs.c.recipe, jobs.c.target,
                  jobs.c.python, jobs.c.executor, jobs.c.pythons, jobs.c.timeout)


class Lookups:
    engine: Engine

    def job_states(self, keys: Sequence[str]) -> dict[str, Any]:
        """State, reason and attempts of the jobs with these keys, by key."""
        wanted = set(keys)
        with self.engine.begin() as conn:
            rows = conn.execute(select(jobs.c.key, jobs.c.state, jobs.c.reason,
                                       jobs.c.attempts)).all()
        return {r.key: r for r in rows if r.key in wanted}

    def submitted(self, job_id: int) -> Any:
        """The spec, target and python a job was submitted with (a row), or None."""
        with self.engine.begin() as conn:
            return conn.execute(select(jobs.c.spec, jobs.c.target, jobs.c.python).where(
                jobs.c.id == job_id)).first()

    def lease_rows(self, ids: Sequence[int]) -> dict[int, Any]:
        """What a lease of each job is (see ``sql.lease_of``), by job id."""
        with self.engine.begin() as conn:
            return {r.id: r for r in conn.execute(select(*_LEASE_COLUMNS).where(
                jobs.c.id.in_(sorted(set(ids)))))}

    def held_job(self, job_id: int, n: int, token: str, worker: str) -> Row[Any] | None:
        """The job if attempt ``n`` with ``token`` still holds it for ``worker``."""
        with self.engine.begin() as conn:
            return conn.execute(select(jobs).where(
                jobs.c.id == job_id, jobs.c.attempts == n, jobs.c.lease == token,
                jobs.c.worker == worker,
                # Not once the job ended: a recorded wheel's bytes never change.
                jobs.c.state.in_([s.value for s in ACTIVE]))).first()

    def built(self, key: str) -> Any:
        """The recorded wheel (key, attempts, artifact file name and sha256) of a
        succeeded build (a row), or None."""
        with self.engine.begin() as conn:
            return conn.execute(select(jobs.c.key, jobs.c.attempts, jobs.c.artifact_filename,
                                       jobs.c.artifact_sha256).where(
                jobs.c.key == key, jobs.c.state == JobState.SUCCEEDED,
                jobs.c.kind == "build")).first()
