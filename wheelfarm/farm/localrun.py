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

from packaging.utils import canonicalize_name

from wheelfarm import proc
from wheelfarm.build.archive import sha256_file
from wheelfarm.build.pipeline import JobResult
from wheelfarm.errors import ConfigError, WheelfarmError
from wheelfarm.farm import jobrun
from wheelfarm.farm.state import Artifact, Capabilities, JobState, Lease, LeaseLost, Outcome
from wheelfarm.farm.state.models import host_os
from wheelfarm.farm.wheelhouse import Wheelhouse
from wheelfarm.plan.jobs import Job
from wheelfarm.plan.targets import host_arch

if TYPE_CHECKING:
    from wheelfarm.build.pipeline import Pipeline
    from wheelfarm.farm.state.queue import Queue

log = logging.getLogger(__name__)
_IDLE = 1.0  # seconds an idle thread waits for news (a retry's backoff, a reclaim)


def with_needs(selected: Sequence[Job], planned: Sequence[Job]) -> tuple[list[Job], list[Job]]:
    """``selected`` and the jobs of ``planned`` they need, transitively, in plan order;
    and, second, those that were added.

    A job needs the job of each recipe in its ``build.needs`` for the same
    target and python. ConfigError when ``planned`` has none.
    """
    provides: dict[tuple[str, str, str], Job] = {
        (canonicalize_name(j.recipe.name), j.target.name, j.python): j for j in planned}
    chosen = {j.key for j in selected}
    todo = list(selected)
    while todo:
        job = todo.pop()
        for need in job.recipe.needs:
            dep = provides.get((need, job.target.name, job.python))
            if dep is None:
                raise ConfigError(
                    f"{job.recipe.name} needs {need}, but no recipe of this build makes "
                    f"{need} for {job.target.name} and {job.python}; give its recipe too")
            if dep.key not in chosen:
                chosen.add(dep.key)
                todo.append(dep)
    ordered: list[Job] = []
    seen: set[str] = set()
    for job in planned:
        if job.key in chosen and job.key not in seen:
            seen.add(job.key)
            ordered.append(job)
    asked = {j.key for j in selected}
    return ordered, [j for j in ordered if j.key not in asked]


class LocalRun:
    """One ``wheelfarm build``: a private queue, ``parallel`` worker threads, the pipeline.

    :meth:`run` returns a result per job in the order given; the output's
    index is rewritten when any job produced a wheel.
    """

    def __init__(self, pipeline: Pipeline, jobs: Sequence[Job], parallel: int, *,
                 keep: bool = False) -> None:
        self.pipeline = pipeline
        self.jobs = list(jobs)
        self.by_key = {j.key: j for j in self.jobs}
        self.parallel = max(1, min(parallel, len(self.by_key)))
        self.keep = keep  # keep the queue's database after the run
        self.dir = pipeline.config.state_dir / "runs" / pipeline.log_dir.name
        self.signal: int | None = None  # the signal that stopped the run, if one did
        self.stopping = threading.Event()
        self.handing_back = threading.Event()
        self._over = threading.Event()
        self._wake = threading.Condition()
        self._news = 0  # bumped (under _wake) whenever a job is reported
        self._guard = threading.Lock()
        self._held: dict[int, Lease] = {}
        self._results: dict[str, JobResult] = {}
        self._failure: BaseException | None = None

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
        finally:
            queue.engine.dispose()
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)
        if any(r.status != "failed" for r in results):
            Wheelhouse(out_dir).reindex()
        return results

    def _open(self) -> Queue:
        from wheelfarm.farm.state.db import open_engine
        from wheelfarm.farm.state.queue import Queue

        config = self.pipeline.config
        self.dir.mkdir(parents=True, exist_ok=True)
        return Queue(open_engine(f"sqlite:///{self.database}"), lease_seconds=config.lease,
                     backoff=config.retry_backoff)

    def _submit(self, queue: Queue) -> Capabilities:
        from wheelfarm.farm.state.submit import build_jobs

        # Planning decided that this machine builds every job (a zig or
        # container executor may build for another arch): match any worker.
        new = [replace(j, os="", arch="") for j in build_jobs(self.jobs, self.pipeline.config)]
        queue.submit(new)
        return Capabilities(os=host_os(), arch=host_arch(),
                            executors=tuple(sorted({j.executor for j in new})),
                            pythons=tuple(sorted({p for j in new for p in j.pythons})),
                            kinds=("build",))

    def _work(self, queue: Queue, caps: Capabilities) -> None:
        threads = [threading.Thread(target=self._worker, args=(queue, caps, f"local-{i + 1}"),
                                    name=f"local-{i + 1}", daemon=True)
                   for i in range(self.parallel)]
        beat = threading.Thread(target=self._heartbeats, args=(queue,), name="heartbeat",
                                daemon=True)
        beat.start()
        for t in threads:
            t.start()
        try:
            for t in threads:
                # A bounded join: the main thread must stay free to run signal handlers.
                while t.is_alive():
                    t.join(0.2)
        finally:
            self._over.set()
        beat.join()
        if self._failure is not None:
            raise WheelfarmError(f"the build's queue ({self.database}) failed: "
                                 f"{self._failure}") from self._failure

    def _worker(self, queue: Queue, caps: Capabilities, name: str) -> None:
        try:
            queue.register(name, caps)  # so that the kept queue says who ran what
            while not self.stopping.is_set():
                with self._wake:
                    seen = self._news
                leases = queue.claim(name, caps, 1)
                if leases:
                    self._run(queue, leases[0])
                    continue
                if not queue.outstanding(caps):
                    return
                # Nothing runnable yet (needs, a retry's backoff, a target's
                # limit): wait for a report of another thread.
                with self._wake:
                    if self._news == seen and not self.stopping.is_set():
                        self._wake.wait(_IDLE)
        except Exception as exc:  # the queue itself broke (a full disk): end the run
            self._failure = exc
            self.stop(None)

    def _run(self, queue: Queue, lease: Lease) -> None:
        job = self.by_key[lease.key]
        with self._guard:
            self._held[lease.job_id] = lease
        try:
            if self.stopping.is_set():
                queue.release(lease, "the build is stopping")
                return
            queue.start(lease)
            result = self.pipeline.run_job(job)
            if result.status == "failed" and self.handing_back.is_set():
                queue.release(lease, "the build was interrupted")
                self._results[job.key] = replace(
                    result, step="interrupted", message="stopped: the build was interrupted")
                return
            if queue.finish(lease, _outcome(result)) is not JobState.PENDING:
                self._results[job.key] = result  # final; pending: retried after a backoff
        except LeaseLost as exc:
            # The lease ran out (the process was suspended?): the queue has
            # retried or failed the job meanwhile, and refused this result.
            log.warning("%s: result not recorded: %s", job.id, exc)
        finally:
            with self._guard:
                self._held.pop(lease.job_id, None)
            self._notify()

    def _heartbeats(self, queue: Queue) -> None:
        every = max(0.05, queue.lease_seconds / 3)
        while not self._over.wait(every):
            with self._guard:
                held = list(self._held.values())
            if not held:
                continue
            try:
                for lease in queue.heartbeat(held):
                    log.warning("lost the lease of %s", self.by_key[lease.key].id)
            except Exception as exc:  # the next beat may succeed; the worker reports failures
                log.warning("heartbeat failed: %s", exc)

    def _notify(self) -> None:
        with self._wake:
            self._news += 1
            self._wake.notify_all()

    # -- stopping -----------------------------------------------------------------------------

    def running(self) -> int:
        with self._guard:
            return len(self._held)

    def stop(self, signum: int | None) -> None:
        """Claim nothing more; the running jobs end and are reported."""
        if self.signal is None:
            self.signal = signum
        self.stopping.set()
        self._notify()

    def hand_back(self, signum: int | None) -> None:
        """Stop now: kill the running jobs' commands and hand the jobs back."""
        self.stop(signum)
        if self.handing_back.is_set():
            return
        self.handing_back.set()

        def kill() -> None:
            # A job may be between two commands: keep killing until none runs.
            while not self._over.is_set() and self.running():
                proc.kill_running()
                time.sleep(0.1)

        threading.Thread(target=kill, name="hand-back", daemon=True).start()

    # -- results ------------------------------------------------------------------------------

    def _collect(self, queue: Queue) -> list[JobResult]:
        from sqlalchemy import select

        from wheelfarm.farm.state.schema import jobs

        with queue.engine.begin() as conn:
            rows = {r.key: r for r in conn.execute(
                select(jobs.c.key, jobs.c.state, jobs.c.reason, jobs.c.attempts))}
        return [self._results.get(j.key) or self._unreported(j, rows[j.key]) for j in self.jobs]

    def _unreported(self, job: Job, row: Any) -> JobResult:
        """The result of a job no thread reported: failed by the queue, or never run."""
        if row.state == JobState.FAILED and not row.attempts:
            step, message = "needs", str(row.reason)
        elif row.state == JobState.FAILED:
            step, message = "lease", str(row.reason)
        else:
            step, message = "interrupted", "not built: the build was interrupted"
        path = self.pipeline.log_dir / f"{job.id}.log"
        path.write_text(f"# job {job.id}\n# key {job.key}\n## {step}\n! {message}\n",
                        encoding="utf-8")
        return JobResult(job=job, status="failed", seconds=0.0, log=path, step=step,
                         message=message, tail=f"! {message}", started_at=time.time())


def _outcome(result: JobResult) -> Outcome:
    if result.wheel is not None:
        art = Artifact(result.wheel.name, sha256_file(result.wheel), str(result.wheel))
        return Outcome(True, result.seconds, log=str(result.log), artifact=art)
    return Outcome(False, result.seconds, kind=result.step or "internal",
                   reason=result.message, log=str(result.log))
