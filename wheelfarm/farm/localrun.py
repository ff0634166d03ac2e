"""The controller embedded in ``wheelfarm build``: one scheduling model for a
developer's build and for the farm.

A build run puts its planned jobs into a :class:`~wheelfarm.farm.state.queue.Queue`
and ``--jobs`` worker threads claim them as a farm's workers do: with
leases that a heartbeat renews while the pipeline runs, ``start`` and
``finish`` reports, and the queue's rules for everything else — ``build.needs``
(a job is not claimed before the wheel it needs is built), retries of
transient failures up to the recipe's ``build.max-attempts``, the farm's
``[limits]`` per target, and the event log and attempts.

**Where the queue lives.** In a SQLite database of the run's own,
``STATE/runs/<run>/queue.db``, where ``<run>`` is also the name of the run's
log directory under ``STATE/logs/``. It is deleted when the run ends, or kept
with ``--keep-work`` for inspection (``WHEELFARM_STATE=sqlite:///…/queue.db
wheelfarm status --events``). Not the farm's state database: a standing
farm's workers claim whatever is pending there, so a developer's jobs would
be built on other machines and delivered to the farm's wheelhouse instead of
``--out``, and the build's threads would pick up the farm's jobs. Keeping
both apart in one database would take a run scope in every claim, status
and drain query of the farm, for a queue that lives for minutes. A file, not
SQLite's memory: the threads share it through WAL and the immediate
transactions the queue's claims rely on, and it can be kept. It costs about
0.3 s per run on an idle machine (importing SQLAlchemy, making the database)
and a few milliseconds per job (``python -m bench overhead``).

**Needs.** Every needed wheel is built in the same run: a job that needs a
recipe whose job the selection (``--job``, ``--shard``) left out brings that
job into the run; a needed recipe that no given recipe provides for the same
target and python is a ConfigError naming it. While a run holds a job with
needs, every pip of the run finds wheels in its output directory first
(:func:`wheelfarm.farm.jobrun.find_links`, the hook of a farm worker's jobs), and
a needed wheel is there before its dependents are claimed. A dependency that
fails fails its dependents, with a reason naming it.

**History.** With a :class:`~wheelfarm.farm.localhistory.Recorder`, every
attempt is also recorded in the farm's own state database (not this queue),
so that ``status``, ``logs``, the dashboard and ``/metrics`` see it.

**Stopping.** :meth:`LocalRun.stop` stops the claims and lets the running
jobs end; :meth:`LocalRun.hand_back` kills their commands and hands them
back to the queue. Jobs left over end as ``interrupted`` failures.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wheelfarm.build.outcome import JobResult, Outcome
from wheelfarm.errors import FailureKind, WheelfarmError
from wheelfarm.farm import jobrun
from wheelfarm.farm.direct import DirectBroker
from wheelfarm.farm.localhistory import Recorder, RecordingRunner
from wheelfarm.farm.runners import ThreadRunner
from wheelfarm.farm.state import Capabilities, JobState, Lease, open_queue
from wheelfarm.farm.state.models import host_os
from wheelfarm.farm.wheelhouse import Wheelhouse
from wheelfarm.farm.worker import Worker, WorkerOptions
from wheelfarm.plan.jobs import Job
from wheelfarm.plan.targets import host_arch

if TYPE_CHECKING:
    from wheelfarm.build.pipeline import Pipeline
    from wheelfarm.farm.state.queue import Queue

log = logging.getLogger(__name__)
_IDLE = 1.0  # seconds an idle loop waits for news (a retry's backoff, a reclaim)


class LocalBroker(DirectBroker):
    """The run's private queue, shared by the loops of one process: its errors
    end the run (no database to wait for), and news of a report reaches the
    idle loops through a condition rather than the database."""

    def __init__(self, queue: Queue) -> None:
        super().__init__(queue)
        self._wake = threading.Condition()
        self._news = 0  # bumped (under _wake) whenever a job is reported
        self._seen = threading.local()

    def _call(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def finish(self, reports: Sequence[tuple[Lease, Outcome]],
               claim: tuple[str, Capabilities, int] | None = None,
               ) -> tuple[list[Any], list[Lease]]:
        try:
            return super().finish(reports, claim)
        finally:
            self.notify()

    def release(self, lease: Lease, reason: str) -> None:
        try:
            super().release(lease, reason)
        finally:
            self.notify()

    def notify(self) -> None:
        with self._wake:
            self._news += 1
            self._wake.notify_all()

    def wait(self, seconds: float) -> bool:
        """Whether a job was reported since this thread last asked."""
        with self._wake:
            if getattr(self._seen, "n", 0) == self._news:
                self._wake.wait(seconds)
            news = getattr(self._seen, "n", 0) != self._news
            self._seen.n = self._news
        return news


class LocalRun:
    """One ``wheelfarm build``: a private queue, ``parallel`` worker loops in
    threads (:class:`~wheelfarm.farm.worker.Worker`), the pipeline in each.

    :meth:`run` returns a result per job in the order given; the output's
    index is rewritten when any job produced a wheel.
    """

    def __init__(self, pipeline: Pipeline, jobs: Sequence[Job], parallel: int, *,
                 keep: bool = False, history: Recorder | None = None) -> None:
        self.pipeline = pipeline
        self.jobs = list(jobs)
        self.by_key = {j.key: j for j in self.jobs}
        self.parallel = max(1, min(parallel, len(self.by_key)))
        self.keep = keep  # keep the queue's database after the run
        self.dir = pipeline.config.state_dir / "runs" / pipeline.log_dir.name
        self.signal: int | None = None  # the signal that stopped the run, if one did
        self.stopping = threading.Event()
        self.handing_back = threading.Event()
        self.runner = ThreadRunner(pipeline, self.by_key)
        self.history = history
        self._worker: Worker | None = None
        self._results: dict[str, JobResult] = {}

    @property
    def database(self) -> Path:
        return self.dir / "queue.db"

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> list[JobResult]:
        os.umask(0o022)  # files a build writes get the same modes on every machine
        queue = self._open()
        out_dir = self.pipeline.out_dir
        try:
            caps = self._submit(queue)
            needs = any(j.recipe.needs for j in self.jobs)
            if needs:
                out_dir.mkdir(parents=True, exist_ok=True)
            with jobrun.find_links([str(out_dir)] if needs else []):
                self._work(queue, caps)
            results = self._collect(queue)
            if self.history is not None:
                self.history.unrun(results)
        finally:
            queue.close()
            if self.history is not None:
                self.history.close()
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)
        if any(r.status != "failed" for r in results):
            Wheelhouse(out_dir).reindex()
        return results

    def _open(self) -> Queue:
        self.dir.mkdir(parents=True, exist_ok=True)
        return open_queue(self.pipeline.config, f"sqlite:///{self.database}")

    def _submit(self, queue: Queue) -> Capabilities:
        from wheelfarm.farm.submit import build_jobs

        # Planning decided that this machine builds every job (a zig or
        # container executor may build for another arch): match any worker.
        new = [replace(j, os="", arch="") for j in build_jobs(self.jobs, self.pipeline.config)]
        queue.submit(new)
        return Capabilities(os=host_os(), arch=host_arch(),
                            executors=tuple(sorted({j.executor for j in new})),
                            pythons=tuple(sorted({p for j in new for p in j.pythons})),
                            kinds=("build",))

    def _work(self, queue: Queue, caps: Capabilities) -> None:
        worker = Worker(LocalBroker(queue), caps, self.pipeline.config.root, None,
                        WorkerOptions(name="local", drain=True, poll=_IDLE, who="build"),
                        runner=(RecordingRunner(self.runner, self.history)
                                if self.history is not None else self.runner),
                        names=[f"local-{i + 1}" for i in range(self.parallel)],
                        on_report=self._reported)
        # The run's own events: a stop may come before the loops exist (or the
        # signal handlers of cli/build.py ask them).
        worker.stopping, worker.handing_back = self.stopping, self.handing_back
        self._worker = worker
        worker.run()
        if worker.failure is not None:
            raise WheelfarmError(f"the build's queue ({self.database}) failed: "
                                 f"{worker.failure}") from worker.failure

    def _reported(self, lease: Lease, outcome: Outcome, state: Any) -> None:
        result = self.runner.results.get(lease.key)
        if result is None:  # stopped before it began: see _unreported
            return
        if state is None:  # handed back
            self._results[lease.key] = replace(result, outcome=replace(
                outcome, kind=FailureKind.INTERRUPTED,
                reason="stopped: the build was interrupted"))
        elif state is not JobState.PENDING:  # final; pending: retried after a backoff
            self._results[lease.key] = result

    # -- stopping -----------------------------------------------------------------------------

    def running(self) -> int:
        return self.runner.running()

    def stop(self, signum: int | None) -> None:
        """Claim nothing more; the running jobs end and are reported."""
        if self.signal is None:
            self.signal = signum
        self.stopping.set()

    def hand_back(self, signum: int | None) -> None:
        """Stop now: kill the running jobs' commands and hand the jobs back."""
        self.stop(signum)
        if self._worker is not None:
            self._worker.hand_back()
        else:
            self.handing_back.set()

    # -- results ------------------------------------------------------------------------------

    def _collect(self, queue: Queue) -> list[JobResult]:
        rows = queue.job_states([j.key for j in self.jobs])
        return [self._results.get(j.key) or self._unreported(j, rows[j.key]) for j in self.jobs]

    def _unreported(self, job: Job, row: Any) -> JobResult:
        """The result of a job no loop reported: failed by the queue, or never run."""
        if row.state == JobState.FAILED and not row.attempts:
            kind, message = FailureKind.NEEDS, str(row.reason)
        elif row.state == JobState.FAILED:
            kind, message = FailureKind.LOST, str(row.reason)
        else:
            kind, message = FailureKind.INTERRUPTED, "not built: the build was interrupted"
        path = self.pipeline.log_dir / f"{job.id}.log"
        path.write_text(f"# job {job.id}\n# key {job.key}\n## {kind}\n! {message}\n",
                        encoding="utf-8")
        return JobResult(job, Outcome(False, 0.0, kind, message, str(path),
                                      started_at=time.time()), tail=f"! {message}")
