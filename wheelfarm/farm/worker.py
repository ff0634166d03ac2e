"""A worker: claim a job, run it, report the outcome; heartbeats keep the lease.

The same loop serves a worker with direct access to the farm's database and
a remote worker that talks to the controller's HTTP API: both sit behind the
small :class:`Broker` protocol. SIGTERM stops claiming and lets the running
job finish (or hands it back after ``grace`` seconds); a second SIGTERM or
SIGINT hands it back at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from wheelfarm import proc
from wheelfarm.errors import CommandError, ConfigError, WheelfarmError
from wheelfarm.farm import jobrun
from wheelfarm.farm.state import Artifact, Capabilities, Lease, LeaseLost, Outcome
from wheelfarm.farm.state.models import host_os
from wheelfarm.fsutil import file_lock
from wheelfarm.plan import pythons
from wheelfarm.plan.targets import worker_arch
from wheelfarm.publish import index

log = logging.getLogger(__name__)
BACKSTOP = 30.0  # seconds past a job's timeout before its worker kills the job's process


class Broker(Protocol):
    """Where a worker gets jobs and reports them: the queue itself, or the controller."""

    def register(self, name: str, caps: Capabilities) -> None: ...

    def claim(self, worker: str, caps: Capabilities, limit: int = 1, *,
              start: bool = False) -> list[Lease]:
        """Lease jobs; with ``start``, the instant ones come back started (``running``)."""
        ...

    def heartbeat(self, leases: Sequence[Lease]) -> list[Lease]:
        """Renew the leases; returns the lost ones."""
        ...

    def start(self, lease: Lease) -> None: ...

    def start_many(self, leases: Sequence[Lease]) -> list[Lease]:
        """Start several at once; returns the lost ones."""
        ...

    def finish(self, lease: Lease, outcome: Outcome) -> Any:
        """Record the outcome; LeaseLost if the lease is gone."""
        ...

    def finish_many(self, reports: Sequence[tuple[Lease, Outcome]]) -> list[Any]:
        """Record several outcomes; None for each refused one."""
        ...

    def finish_and_claim(self, reports: Sequence[tuple[Lease, Outcome]], worker: str,
                         caps: Capabilities, limit: int) -> tuple[list[Any], list[Lease]]:
        """finish_many(reports), then claim(worker, caps, limit, start=True), at once."""
        ...

    def release(self, lease: Lease, reason: str) -> None: ...

    def outstanding(self, caps: Capabilities) -> int: ...

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` (short) for jobs to become claimable; whether
        they may have (submitted, retried, handed back)."""
        ...

    def deliver(self, lease: Lease, outcome: Outcome) -> Outcome:
        """Make the attempt's log and artifact reachable by the farm (upload them)."""
        ...

    def needs(self, lease: Lease, dest: Path) -> list[str]:
        """Find-links locations holding the wheels the job needs."""
        ...


def default_capabilities(executor_names: Sequence[str], python_tags: Sequence[str],
                         images: Sequence[str], python_paths: dict[str, str]) -> Capabilities:
    from wheelfarm.build import executors

    found = python_tags or pythons.supported(pythons.discover(python_paths))
    # A Mac advertises arm64/x86_64, the spelling of the macOS jobs it may take.
    return Capabilities(os=host_os(), arch=worker_arch(),
                        executors=tuple(executor_names or executors.names()),
                        pythons=tuple(found), images=tuple(images))


@dataclass(frozen=True)
class WorkerOptions:
    name: str = ""
    drain: bool = False
    batch: int = 1  # jobs claimed at once
    poll: float = 0.5  # the longest pause between claims when idle
    grace: float | None = None  # after SIGTERM, hand the job back after this many seconds
    max_jobs: int | None = None


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(self, broker: Broker, caps: Capabilities, farm: Path, wheelhouse: Path | None,
                 options: WorkerOptions) -> None:
        self.broker = broker
        self.caps = caps
        self.farm = farm
        self.wheelhouse = wheelhouse
        self.options = options
        self.name = options.name or default_name()
        self._state = farm / ".wheelfarm"
        self._probes = self._state / "probes"
        self.stopping = threading.Event()
        self.handing_back = threading.Event()
        self._exited = threading.Event()
        self._held: dict[int, Lease] = {}
        self._lost: set[int] = set()
        self._current: jobrun.Attempt | None = None
        self._guard = threading.Lock()
        self.done = 0

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped (or, with ``drain``, until nothing runnable is left)."""
        self.broker.register(self.name, self.caps)
        beat = threading.Thread(target=self._heartbeats, daemon=True, name="heartbeat")
        beat.start()
        idle = 0.05
        leases: list[Lease] = []
        while not self.stopping.is_set():
            if self.options.max_jobs is not None and self.done >= self.options.max_jobs:
                break
            if not leases:
                try:
                    leases = self.broker.claim(self.name, self.caps, self.options.batch,
                                               start=True)
                    if not leases and self.options.drain and \
                            not self.broker.outstanding(self.caps):
                        break
                except ConfigError:
                    raise
                except WheelfarmError as exc:
                    log.warning("%s: cannot claim: %s", self.name, exc)
                    leases = []
                if not leases:
                    self._idle(idle)
                    idle = min(self.options.poll, idle * 2)
                    continue
                idle = 0.05
            with self._guard:
                self._held.update({lease.job_id: lease for lease in leases})
            for lease in leases:
                if lease.instant:
                    continue
                if self.stopping.is_set():
                    self._release(lease, "the worker is stopping")
                    continue
                self._run(lease)
            # Last: their report claims the next batch (see _run_instant).
            instant = [x for x in leases if x.instant]
            leases = self._run_instant(instant) if instant else []
        for lease in leases:  # claimed with the last report, but the worker is stopping
            self._release(lease, "the worker is stopping")
        self.stopping.set()
        self._exited.set()
        return self.done

    def _idle(self, seconds: float) -> None:
        """Pause before the next claim, ending early on news or on a stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self.broker.wait(min(left, 0.1)):
                return

    def _run(self, lease: Lease) -> None:
        attempt = self._attempt(lease)
        try:
            self.broker.start(lease)
            try:
                outcome = self._execute(attempt)
            except WheelfarmError as exc:
                outcome = Outcome(False, 0.0, "worker-error", f"on {self.name}: {exc}")
            # A lost lease is still reported: the queue refuses the result and
            # says so in the event log.
            if self.handing_back.is_set() and lease.job_id not in self._lost:
                self._release(lease, "the worker is stopping")
                return
            outcome = self.broker.deliver(lease, outcome)
            self.broker.finish(lease, outcome)
            self.done += 1
            if outcome.ok and lease.kind == "build" and outcome.artifact is not None:
                self._publish_locally(Path(attempt.out))
        except LeaseLost as exc:
            log.warning("%s: result not recorded: %s", self.name, exc)
        except ConfigError:
            raise
        except WheelfarmError as exc:
            # The lease runs out and the job is retried; this worker goes on.
            log.error("%s: cannot report job %s: %s", self.name, lease.key[:12], exc)
        finally:
            with self._guard:
                self._held.pop(lease.job_id, None)
                self._lost.discard(lease.job_id)
            self._current = None

    def _run_instant(self, leases: list[Lease]) -> list[Lease]:
        """Jobs with nothing to wait for (zero-second probes): run in this process
        (no child, no directory of their own, so that they measure the queue, not
        the OS) and reported together. The claim has started them, unless the
        broker could not (then they are started together here). Unless the
        worker is to stop, the report claims the next batch too, which is
        returned."""
        following: list[Lease] = []
        try:
            waiting = [x for x in leases if not x.running]
            lost = {x.job_id for x in self.broker.start_many(waiting)} if waiting else set()
            reports = []
            for lease in leases:
                if lease.job_id in lost:
                    continue
                started = time.monotonic()
                art = jobrun.probe(self._attempt(lease), self._probes)
                reports.append((lease, Outcome(ok=True, duration=time.monotonic() - started,
                                               artifact=art)))
            states: list[Any] = []
            more = self.options.max_jobs is None or \
                self.done + len(reports) < self.options.max_jobs
            if reports and more and not self.stopping.is_set():
                states, following = self.broker.finish_and_claim(
                    reports, self.name, self.caps, self.options.batch)
            elif reports:
                states = self.broker.finish_many(reports)
            self.done += sum(1 for state in states if state is not None)
            refused = len(leases) - sum(1 for state in states if state is not None)
            if refused:
                log.warning("%s: %d result(s) not recorded: leases lost", self.name, refused)
        except ConfigError:
            raise
        except WheelfarmError as exc:
            log.error("%s: cannot report %d job(s): %s", self.name, len(leases), exc)
        finally:
            with self._guard:
                for lease in leases:
                    self._held.pop(lease.job_id, None)
        return following

    def _attempt(self, lease: Lease) -> jobrun.Attempt:
        # Paths joined from strings: pathlib's "/" costs more than a zero-second
        # probe's own work, and instant jobs come thousands a second.
        stem = f"{lease.key[:16]}-{lease.n}"
        return jobrun.Attempt(lease, Path(f"{self._state}/attempts/{stem}"), self.farm,
                              Path(f"{self._state}/logs/jobs/{stem}.log"))

    def _execute(self, attempt: jobrun.Attempt) -> Outcome:
        lease = attempt.lease
        started = time.monotonic()
        attempt = replace(attempt, find_links=tuple(
            self.broker.needs(lease, attempt.dir / "needs")) if lease.spec.get("needs") else ())
        spec = attempt.write_spec()
        attempt.log.parent.mkdir(parents=True, exist_ok=True)
        self._current = attempt
        with attempt.log.open("a", encoding="utf-8") as fh:
            fh.write(f"# job {lease.key} attempt {lease.n} on {self.name}\n")
            try:
                # The child keeps the job's timeout itself (and kills what the
                # job started); this one is the backstop should the child hang.
                proc.run([sys.executable, "-m", "wheelfarm.farm.jobrun", str(spec)], log=fh,
                         cwd=attempt.dir, timeout=lease.timeout + BACKSTOP, check=False)
            except CommandError as exc:
                took = time.monotonic() - started
                if exc.returncode is None:
                    return Outcome(False, took, "timeout",
                                   f"timed out after {lease.timeout:g}s; killed",
                                   str(attempt.log))
                return Outcome(False, took, "worker-error", str(exc), str(attempt.log))
        took = time.monotonic() - started
        result = jobrun.read_result(attempt.dir)
        if result is None:
            return Outcome(False, took, "worker-error",
                           "the job's process ended without a result (killed?)",
                           str(attempt.log))
        found = result.get("artifact")
        return Outcome(ok=bool(result["ok"]), duration=took, kind=str(result.get("kind", "")),
                       reason=str(result.get("reason", "")), log=str(attempt.log),
                       artifact=Artifact(**found) if found else None)

    def _publish_locally(self, out: Path) -> None:
        """Copy an accepted wheel into the farm's wheelhouse and rewrite its index."""
        if self.wheelhouse is None:
            return
        self.wheelhouse.mkdir(parents=True, exist_ok=True)
        with file_lock(self.wheelhouse / ".wheelfarm-lock"):
            debug = out / "debug"  # debug files first, so a listed wheel finds them
            for path in sorted(debug.iterdir()) if debug.is_dir() else ():
                (self.wheelhouse / "debug").mkdir(exist_ok=True)
                tmp = self.wheelhouse / f".incoming-debug-{path.name}"
                shutil.copyfile(path, tmp)
                os.replace(tmp, self.wheelhouse / "debug" / path.name)
            for path in sorted(out.iterdir()):
                if path.is_file():
                    tmp = self.wheelhouse / f".incoming-{path.name}"
                    shutil.copyfile(path, tmp)
                    os.replace(tmp, self.wheelhouse / path.name)
            index.write_simple_index(self.wheelhouse)

    def _release(self, lease: Lease, reason: str) -> None:
        try:
            self.broker.release(lease, reason)
        except LeaseLost:
            pass
        with self._guard:
            self._held.pop(lease.job_id, None)

    # -- heartbeats and signals -----------------------------------------------------------------

    def _heartbeats(self) -> None:
        # Until the loop has ended, not merely until a stop was asked for: a
        # job that is being finished after SIGTERM still needs its lease.
        while not self._exited.is_set():
            with self._guard:
                held = list(self._held.values())
            interval = 1.0
            if held:
                interval = max(0.05, min(lease.seconds for lease in held) / 3)
                try:
                    lost = self.broker.heartbeat(held)
                except WheelfarmError as exc:
                    log.warning("%s: heartbeat failed: %s", self.name, exc)
                    lost = []
                for lease in lost:
                    with self._guard:
                        # A job reported meanwhile is not lost, merely done.
                        if lease.job_id in self._lost or lease.job_id not in self._held:
                            continue
                        self._lost.add(lease.job_id)
                    log.warning("%s: lost the lease of %s", self.name, lease.key[:12])
                    self._stop_current(lease.job_id)
            self._exited.wait(interval)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping.is_set() or signum == signal.SIGINT:
            self.hand_back()
            return
        log.info("%s: stopping after the current job", self.name)
        self.stopping.set()
        if self.options.grace is not None:
            timer = threading.Timer(self.options.grace, self.hand_back)
            timer.daemon = True
            timer.start()

    def hand_back(self) -> None:
        """Stop the running job now; it goes back to the queue without counting."""
        self.stopping.set()
        if self.handing_back.is_set():
            return
        self.handing_back.set()
        self._stop_current(None)

    def _stop_current(self, job_id: int | None) -> None:
        """Kill the running job's process (only if it runs ``job_id``, when given)."""
        def kill() -> None:
            # The process may not have recorded its pid yet: keep trying
            # until it is killed or the job is over.
            while (current := self._current) is not None:
                if job_id is not None and current.lease.job_id != job_id:
                    return
                if jobrun.kill(current.dir):
                    return
                time.sleep(0.1)

        threading.Thread(target=kill, daemon=True, name="stop-job").start()
