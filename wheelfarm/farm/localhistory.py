"""A local build's jobs recorded in the farm's own state (issue 16, item 8).

``wheelfarm build`` runs its jobs through a private queue (see
:mod:`wheelfarm.farm.localrun`), which is deleted when the run ends. So that
``wheelfarm status``, ``wheelfarm logs``, the dashboard and ``/metrics`` see
local builds too, :class:`RecordingRunner` writes each attempt to the farm's
state database (``local_builds``, see :mod:`wheelfarm.farm.state.history`):
a row when it begins, its outcome and log path when it ends.

Recording is a side note, never a reason for a build to fail: a state database
that cannot be opened or written (a PostgreSQL server out of reach) is logged
as a warning once and the build goes on unrecorded.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from wheelfarm.build.outcome import JobResult, Outcome
from wheelfarm.errors import WheelfarmError
from wheelfarm.farm.state.history import LocalAttempt, LocalEnd

if TYPE_CHECKING:
    from wheelfarm.farm.runners import ThreadRunner
    from wheelfarm.farm.state.models import Lease
    from wheelfarm.farm.state.queue import Queue
    from wheelfarm.plan.config import FarmConfig
    from wheelfarm.plan.jobs import Job

log = logging.getLogger(__name__)
T = TypeVar("T")


class Recorder:
    """Writes a run's attempts to the farm's state; opened on first use."""

    def __init__(self, config: FarmConfig, log_dir: Path, *,
                 opener: Callable[[FarmConfig], Queue] | None = None) -> None:
        self.config = config
        self.run = log_dir.name
        self.log_dir = log_dir  # the pipeline's: each job's log is <job id>.log there
        self.host = f"{socket.gethostname()}:{os.getpid()}"
        self._opener = opener
        self._queue: Queue | None = None
        self._broken = False
        self._guard = threading.Lock()
        self._rows: dict[str, int] = {}  # job key -> its open attempt's row
        self.recorded: set[str] = set()  # keys with at least one attempt recorded

    def _open(self) -> Queue | None:
        with self._guard:
            if self._queue is None and not self._broken:
                try:
                    if self._opener is not None:
                        self._queue = self._opener(self.config)
                    else:
                        from wheelfarm.farm.state import open_queue

                        self._queue = open_queue(self.config)
                    self._abandoned(self._queue)
                except (SQLAlchemyError, WheelfarmError) as exc:
                    self._give_up(exc)
            return self._queue

    def _abandoned(self, queue: Queue) -> None:
        """End the attempts a build on this machine left ``running`` when it was
        killed (its process is gone), so that history does not show them running
        for ever."""
        for row in queue.local_running(f"{socket.gethostname()}:"):
            pid = row.host.rpartition(":")[2]
            if pid.isdigit() and not _alive(int(pid)):
                queue.local_ended(row.id, LocalEnd(
                    ok=False, step="lost", reason=f"the build (pid {pid}) ended without "
                    "recording this attempt: killed?"))

    def _give_up(self, exc: BaseException) -> None:
        self._broken = True
        log.warning("local builds are not recorded in the farm's state: %s", exc)

    def _safely(self, act: Callable[[Queue], T]) -> T | None:
        queue = self._open()
        if queue is None:
            return None
        try:
            return act(queue)
        except (SQLAlchemyError, WheelfarmError) as exc:
            with self._guard:
                if not self._broken:
                    self._give_up(exc)
            return None

    def started(self, job: Job) -> None:
        attempt = LocalAttempt(
            run=self.run, host=self.host, key=job.key, job=job.id, recipe=job.recipe.name,
            target=job.target.name, python=job.python, executor=job.executor,
            owners=job.recipe.owners, log=str(self.log_dir / f"{job.id}.log"))
        row = self._safely(lambda q: q.local_started(attempt))
        if row is not None:
            with self._guard:
                self._rows[job.key] = row
                self.recorded.add(job.key)

    def ended(self, result: JobResult) -> None:
        with self._guard:
            row = self._rows.pop(result.job.key, None)
        if row is None:
            return
        o = result.outcome
        art = o.artifact
        end = LocalEnd(ok=o.ok, cached=o.cached, duration=o.duration,
                       step=str(o.kind) if o.kind and not o.ok else None,
                       cause=o.cause.value if o.cause and not o.ok else None, reason=o.reason,
                       wheel=art.filename if art else None, sha256=art.sha256 if art else None,
                       log=o.log)
        self._safely(lambda q: q.local_ended(row, end))

    def unrun(self, results: Sequence[JobResult]) -> None:
        """Record the jobs that never reached a runner (a needed job failed, the
        run was stopped), so that history shows why they have no wheel."""
        for r in results:
            if r.job.key not in self.recorded:
                self.started(r.job)
                self.ended(r)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class RecordingRunner:
    """A :class:`~wheelfarm.farm.runners.ThreadRunner` whose attempts are recorded."""

    def __init__(self, inner: ThreadRunner, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder

    def run(self, lease: Lease) -> Outcome:
        job = self.inner.jobs[lease.key]
        self.recorder.started(job)
        outcome = self.inner.run(lease)
        result = self.inner.results.get(lease.key)
        if result is None or result.outcome is not outcome:  # stopped before it began
            result = JobResult(job, outcome)
        self.recorder.ended(result)
        return outcome

    def stop(self, lease: Lease) -> None:
        self.inner.stop(lease)
