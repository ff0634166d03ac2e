"""The one worker loop: claim a job, run it, report the outcome; one heartbeat
thread keeps the leases.

The loop serves ``wheelfarm worker`` (a child process per job, see
:class:`~wheelfarm.farm.runners.ProcessRunner`), with direct access to the
farm's database or through the controller's HTTP API, both behind the small
:class:`Broker` protocol; and ``wheelfarm build`` (several loops in threads of
one process over a private queue, the pipeline in each thread, see
:class:`~wheelfarm.farm.runners.ThreadRunner`). A lost lease stops its job;
a hand-back stops every running job and gives it back to the queue. For
``wheelfarm worker``, SIGTERM stops claiming and lets the running job finish
(or hands it back after ``grace`` seconds); a second SIGTERM or SIGINT hands
it back at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from wheelfarm.build.outcome import Outcome
from wheelfarm.errors import ConfigError, LeaseLost, WheelfarmError
from wheelfarm.farm import livelog
from wheelfarm.farm.broker import Broker
from wheelfarm.farm.runners import ProcessRunner, Runner
from wheelfarm.farm.state import Capabilities, Lease
from wheelfarm.farm.state.models import host_os
from wheelfarm.farm.wheelhouse import Wheelhouse
from wheelfarm.plan import pythons
from wheelfarm.plan.targets import worker_arch

log = logging.getLogger(__name__)
# Told of each attempt the loop ended: its job's new state, or None when handed back.
OnReport = Callable[[Lease, Outcome, Any], None]


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
    who: str = "worker"  # for the reason of a hand-back: "the worker is stopping"


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    """The loop, run once (``names`` of one) or in a thread per name, sharing one
    heartbeat. ``runner`` defaults to a :class:`ProcessRunner` in ``farm``."""

    def __init__(self, broker: Broker, caps: Capabilities, farm: Path, wheelhouse: Path | None,
                 options: WorkerOptions, *, runner: Runner | None = None,
                 names: Sequence[str] = (), on_report: OnReport | None = None) -> None:
        self.broker = broker
        self.caps = caps
        self.wheelhouse = wheelhouse
        self.options = options
        self.runner = runner or ProcessRunner(broker, farm)
        self.farm = farm
        self.name = options.name or default_name()
        self.names = list(names) or [self.name]
        self.on_report = on_report
        self.stopping = threading.Event()
        self.handing_back = threading.Event()
        self.failure: BaseException | None = None  # what ended a loop thread, if anything
        self._exited = threading.Event()
        self._held: dict[int, Lease] = {}
        self._lost: set[int] = set()
        self._guard = threading.Lock()
        self.done = 0

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped (or, with ``drain``, until nothing runnable is left);
        returns how many results were recorded."""
        beat = threading.Thread(target=self._heartbeats, daemon=True, name="heartbeat")
        beat.start()
        if isinstance(self.broker, livelog.LogShipping) and isinstance(self.runner, ProcessRunner):
            # The controller's dashboard follows the running attempts' logs.
            shipper = livelog.Shipper(
                self.broker.ship_log, lambda x: livelog.direct_path(self.farm, x.key, x.n),
                self._held_leases)
            threading.Thread(target=shipper.run, args=(self._exited,), daemon=True,
                             name="live-log").start()
        try:
            if len(self.names) == 1:
                self._loop(self.names[0])
            else:
                self._loops()
        finally:
            self.stopping.set()
            self._exited.set()
        beat.join(5.0)
        return self.done

    def _loops(self) -> None:
        def guarded(name: str) -> None:
            try:
                self._loop(name)
            except Exception as exc:  # the queue itself broke (a full disk): stop them all
                self.failure = self.failure or exc
                self.stopping.set()

        threads = [threading.Thread(target=guarded, args=(name,), name=name, daemon=True)
                   for name in self.names]
        for t in threads:
            t.start()
        for t in threads:
            # A bounded join: the main thread must stay free to run signal handlers.
            while t.is_alive():
                t.join(0.2)

    def _loop(self, name: str) -> None:
        self.broker.register(name, self.caps)
        idle = 0.05
        leases: list[Lease] = []
        while not self.stopping.is_set():
            if self.options.max_jobs is not None and self.done >= self.options.max_jobs:
                break
            if not leases:
                try:
                    leases = self.broker.claim(name, self.caps, self.options.batch, start=True)
                    if not leases and self.options.drain and \
                            not self.broker.outstanding(self.caps):
                        break
                except ConfigError:
                    raise
                except WheelfarmError as exc:
                    log.warning("%s: cannot claim: %s", name, exc)
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
                    self._release(lease)
                    continue
                self._run(lease)
            # Last: their report claims the next batch (see _run_instant).
            instant = [x for x in leases if x.instant]
            leases = self._run_instant(name, instant) if instant else []
        for lease in leases:  # claimed with the last report, but the worker is stopping
            self._release(lease)

    def _idle(self, seconds: float) -> None:
        """Pause before the next claim, ending early on news or on a stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self.broker.wait(min(left, 0.1)):
                return

    def _run(self, lease: Lease) -> None:
        try:
            if self.broker.start([lease]):
                raise LeaseLost(f"job {lease.key[:12]}: the lease is no longer held")
            if self.handing_back.is_set():
                self._release(lease)
                return
            outcome = self.runner.run(lease)
            # A lost lease is still reported: the queue refuses the result and
            # says so in the event log.
            if self.handing_back.is_set() and not outcome.ok and not self._is_lost(lease):
                self._release(lease)
                if self.on_report is not None:
                    self.on_report(lease, outcome, None)
                return
            produced = Path(outcome.artifact.location).parent if outcome.artifact else None
            outcome = self.broker.deliver(lease, outcome)
            [state], _ = self.broker.finish([(lease, outcome)])
            if state is None:
                raise LeaseLost(f"job {lease.key[:12]}: the lease is no longer held")
            self._count(1)
            if self.on_report is not None:
                self.on_report(lease, outcome, state)
            if outcome.ok and lease.kind == "build" and produced is not None:
                self._publish_locally(produced)
        except LeaseLost as exc:
            log.warning("%s: result not recorded: %s", lease.worker, exc)
        except ConfigError:
            raise
        except WheelfarmError as exc:
            # The lease runs out and the job is retried; this worker goes on.
            log.error("%s: cannot report job %s: %s", lease.worker, lease.key[:12], exc)
        finally:
            self._drop(lease)

    def _run_instant(self, name: str, leases: list[Lease]) -> list[Lease]:
        """Jobs with nothing to wait for (zero-second probes), run at once and
        reported together. The claim has started them, unless the broker could
        not (then they are started together here). Unless the worker is to stop,
        the report claims the next batch too, which is returned."""
        following: list[Lease] = []
        try:
            waiting = [x for x in leases if not x.running]
            lost = {x.job_id for x in self.broker.start(waiting)} if waiting else set()
            reports = [(lease, self.runner.run(lease)) for lease in leases
                       if lease.job_id not in lost]
            states: list[Any] = []
            more = self.options.max_jobs is None or \
                self.done + len(reports) < self.options.max_jobs
            if reports:
                claim = (name, self.caps, self.options.batch) \
                    if more and not self.stopping.is_set() else None
                states, following = self.broker.finish(reports, claim)
            recorded = sum(1 for state in states if state is not None)
            self._count(recorded)
            if len(leases) > recorded:
                log.warning("%s: %d result(s) not recorded: leases lost", name,
                            len(leases) - recorded)
        except ConfigError:
            raise
        except WheelfarmError as exc:
            log.error("%s: cannot report %d job(s): %s", name, len(leases), exc)
        finally:
            for lease in leases:
                self._drop(lease)
        return following

    def _count(self, n: int) -> None:
        with self._guard:
            self.done += n

    def _is_lost(self, lease: Lease) -> bool:
        with self._guard:
            return lease.job_id in self._lost

    def _drop(self, lease: Lease) -> None:
        with self._guard:
            self._held.pop(lease.job_id, None)
            self._lost.discard(lease.job_id)

    def _publish_locally(self, out: Path) -> None:
        """Copy an accepted wheel into the farm's wheelhouse and rewrite its index."""
        if self.wheelhouse is None:
            return
        debug = out / "debug"
        Wheelhouse(self.wheelhouse).add_files(
            [(f"debug/{p.name}", p) for p in (sorted(debug.iterdir()) if debug.is_dir() else ())]
            # Not dot files: the attempt's own lock must never replace the wheelhouse's.
            + [(p.name, p) for p in sorted(out.iterdir())
               if p.is_file() and not p.name.startswith(".")])

    def _release(self, lease: Lease) -> None:
        try:
            self.broker.release(lease, f"the {self.options.who} is stopping")
        except LeaseLost:
            pass
        self._drop(lease)

    # -- heartbeats and stopping ----------------------------------------------------------------

    def _held_leases(self) -> list[Lease]:
        with self._guard:
            return list(self._held.values())

    def running(self) -> int:
        """How many jobs the loops hold."""
        with self._guard:
            return len(self._held)

    def _heartbeats(self) -> None:
        # Until the loops have ended, not merely until a stop was asked for: a
        # job that is being finished after a stop still needs its lease.
        while not self._exited.is_set():
            with self._guard:
                held = list(self._held.values())
            interval = 1.0
            if held:
                interval = max(0.05, min(lease.seconds for lease in held) / 3)
                try:
                    lost = self.broker.heartbeat(held)
                except Exception as exc:  # the next beat may succeed; the loop reports failures
                    log.warning("%s: heartbeat failed: %s", self.name, exc)
                    lost = []
                for lease in lost:
                    with self._guard:
                        # A job reported meanwhile is not lost, merely done.
                        if lease.job_id in self._lost or lease.job_id not in self._held:
                            continue
                        self._lost.add(lease.job_id)
                    log.warning("%s: lost the lease of %s", lease.worker, lease.key[:12])
                    self.runner.stop(lease)
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

    def stop(self) -> None:
        """Claim nothing more; the running jobs end and are reported."""
        self.stopping.set()

    def hand_back(self) -> None:
        """Stop the running jobs now; they go back to the queue without counting."""
        self.stopping.set()
        if self.handing_back.is_set():
            return
        self.handing_back.set()
        with self._guard:
            held = list(self._held.values())
        for lease in held:
            self.runner.stop(lease)
