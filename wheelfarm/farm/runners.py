"""How the worker loop runs one attempt: the pluggable part of
:class:`~wheelfarm.farm.worker.Worker`.

:class:`ProcessRunner` (``wheelfarm worker``) runs each job in a child
process (``python -m wheelfarm.farm.jobrun``), which keeps the job's timeout
itself; the worker can kill the whole child, compilers included.
:class:`ThreadRunner` (``wheelfarm build``) runs the pipeline in the calling
thread: stopping a job kills the commands that thread waits for
(:func:`wheelfarm.proc.kill_running`), and a timer does so when the job's
time is up.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from wheelfarm import proc
from wheelfarm.build.outcome import Outcome
from wheelfarm.errors import CommandError, FailureKind, WheelfarmError
from wheelfarm.farm import jobrun
from wheelfarm.farm.state.models import Lease

if TYPE_CHECKING:
    from wheelfarm.build.outcome import JobResult
    from wheelfarm.build.pipeline import Pipeline
    from wheelfarm.farm.broker import Broker
    from wheelfarm.plan.jobs import Job

log = logging.getLogger(__name__)
BACKSTOP = 30.0  # seconds past a job's timeout before its worker kills the job's process


class Runner(Protocol):
    def run(self, lease: Lease) -> Outcome:
        """Run the attempt in the calling thread until it ends or is stopped; its
        outcome, timed and with its log. Never raises for a failure of the job."""
        ...

    def stop(self, lease: Lease) -> None:
        """Stop the attempt of ``lease`` if it runs (its lease was lost, or it is
        handed back): kill what it started, so that :meth:`run` returns soon."""
        ...


def keep_killing(kill: Callable[[], bool]) -> None:
    """Call ``kill`` until it says the job is over: a job may be between two
    commands, or its process may not have recorded its pid yet."""
    def loop() -> None:
        while not kill():
            time.sleep(0.1)

    threading.Thread(target=loop, daemon=True, name="stop-job").start()


class ProcessRunner:
    """Each job in a child process, in an attempt directory under the farm's state.

    Instant jobs (zero-second probes) run in this process instead: no child, no
    directory of their own, so that they measure the queue, not the OS.
    """

    def __init__(self, broker: Broker, farm: Path) -> None:
        self.broker = broker
        self.farm = farm
        self._state = farm / ".wheelfarm"
        self._probes = self._state / "probes"
        self._running: dict[str, jobrun.Attempt] = {}  # by lease token: one attempt each
        self._stopped: set[str] = set()  # tokens stopped before their attempt began
        self._guard = threading.Lock()

    def attempt(self, lease: Lease) -> jobrun.Attempt:
        # Paths joined from strings: pathlib's "/" costs more than a zero-second
        # probe's own work, and instant jobs come thousands a second.
        stem = f"{lease.key[:16]}-{lease.n}"
        return jobrun.Attempt(lease, Path(f"{self._state}/attempts/{stem}"), self.farm,
                              Path(f"{self._state}/logs/jobs/{stem}.log"))

    def run(self, lease: Lease) -> Outcome:
        started = time.monotonic()
        attempt = self.attempt(lease)
        if lease.instant:
            art = jobrun.probe(attempt, self._probes)
            return Outcome(ok=True, duration=time.monotonic() - started, artifact=art)
        try:
            return self._execute(attempt, started)
        except WheelfarmError as exc:
            return Outcome.failed(FailureKind.WORKER, f"on {lease.worker}: {exc}")
        finally:
            with self._guard:
                self._running.pop(lease.token, None)
                self._stopped.discard(lease.token)

    def _execute(self, attempt: jobrun.Attempt, started: float) -> Outcome:
        lease = attempt.lease
        attempt = replace(attempt, find_links=tuple(
            self.broker.needs(lease, attempt.dir / "needs")) if lease.spec.get("needs") else ())
        spec = attempt.write_spec()
        attempt.log.parent.mkdir(parents=True, exist_ok=True)
        with self._guard:
            if lease.token in self._stopped:
                return Outcome.failed(FailureKind.WORKER, "stopped before it began")
            self._running[lease.token] = attempt
        log_at = str(attempt.log)
        with attempt.log.open("a", encoding="utf-8") as fh:
            fh.write(f"# job {lease.key} attempt {lease.n} on {lease.worker}\n")
            try:
                # The child keeps the job's timeout itself (and kills what the
                # job started); this one is the backstop should the child hang.
                proc.run([sys.executable, "-m", "wheelfarm.farm.jobrun", str(spec)], log=fh,
                         cwd=attempt.dir, timeout=lease.timeout + BACKSTOP, check=False)
            except CommandError as exc:
                took = time.monotonic() - started
                if exc.returncode is None:
                    return Outcome.failed(FailureKind.TIMEOUT,
                                          f"timed out after {lease.timeout:g}s; killed",
                                          took, log_at)
                return Outcome.failed(FailureKind.WORKER, str(exc), took, log_at)
        took = time.monotonic() - started
        result = jobrun.read_result(attempt.dir)
        if result is None:
            return Outcome.failed(FailureKind.WORKER,
                                  "the job's process ended without a result (killed?)",
                                  took, log_at)
        return result.with_run(took, log_at)

    def stop(self, lease: Lease) -> None:
        with self._guard:
            if lease.token not in self._running:
                self._stopped.add(lease.token)  # about to begin: it will not
                return

        def kill() -> bool:
            with self._guard:
                attempt = self._running.get(lease.token)
            return attempt is None or jobrun.kill(attempt.dir)

        keep_killing(kill)


class ThreadRunner:
    """Each job through ``pipeline`` in the calling thread (``wheelfarm build``).

    Keeps the :class:`~wheelfarm.build.outcome.JobResult` of each job's last
    attempt in :attr:`results` (by job key), for the build's report.
    """

    def __init__(self, pipeline: Pipeline, jobs: Mapping[str, Job]) -> None:
        self.pipeline = pipeline
        self.jobs = jobs
        self.results: dict[str, JobResult] = {}
        # By lease token (one attempt each: a stop must not reach the job's next attempt).
        self._threads: dict[str, int] = {}  # the thread running the attempt
        self._timed_out: set[str] = set()
        self._stopped: set[str] = set()  # tokens stopped before their attempt began
        self._guard = threading.Lock()

    def run(self, lease: Lease) -> Outcome:
        job = self.jobs[lease.key]
        with self._guard:
            if lease.token in self._stopped:
                self._stopped.discard(lease.token)
                return Outcome.failed(FailureKind.WORKER, "stopped before it began")
            self._threads[lease.token] = threading.get_ident()
        timer = threading.Timer(lease.timeout, self._time_out, (lease,))
        timer.daemon = True
        timer.start()
        try:
            result = self.pipeline.run_job(job)
        finally:
            timer.cancel()
            with self._guard:
                self._threads.pop(lease.token, None)
                timed_out = lease.token in self._timed_out
                self._timed_out.discard(lease.token)
        if timed_out and not result.outcome.ok:
            reason = f"timed out after {lease.timeout:g}s; killed"
            with result.log.open("a", encoding="utf-8") as fh:
                fh.write(f"! {FailureKind.TIMEOUT}: {reason}\n")
            result = replace(result, outcome=replace(result.outcome, kind=FailureKind.TIMEOUT,
                                                     reason=reason))
        self.results[job.key] = result
        return result.outcome

    def _time_out(self, lease: Lease) -> None:
        with self._guard:
            if lease.token not in self._threads:
                return
            self._timed_out.add(lease.token)
        log.warning("job %s: timed out after %gs; stopping it", lease.key[:12], lease.timeout)
        self.stop(lease)

    def stop(self, lease: Lease) -> None:
        with self._guard:
            if lease.token not in self._threads:
                self._stopped.add(lease.token)  # about to begin: it will not
                return

        def kill() -> bool:
            with self._guard:
                thread = self._threads.get(lease.token)
            if thread is None:
                return True
            proc.kill_running(thread)
            return False

        keep_killing(kill)

    def running(self) -> int:
        with self._guard:
            return len(self._threads)
