"""Running one leased job: a build through the pipeline, or a probe.

The child's side of :class:`~wheelfarm.farm.runners.ProcessRunner`: a
worker runs each job that takes time in a child process (``python -m
wheelfarm.farm.jobrun SPEC``) so that the job's timeout, a cancellation or
a hand-back can kill it, compilers included; the child hands back its
:class:`~wheelfarm.build.outcome.Outcome` in ``result.json``. The child
records its process id next to the spec and kills itself when its worker
disappears, so an orphaned build never delivers a wheel that nobody recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from wheelfarm import proc
from wheelfarm.build.outcome import Artifact, Outcome
from wheelfarm.errors import FailureKind, WheelfarmError
from wheelfarm.farm.state.models import Lease

SPEC = "job.json"
RESULT = "result.json"
PID = "runner.pid"


@dataclass(frozen=True)
class Attempt:
    """Where one attempt keeps its files: ``dir/out`` holds what it produced."""

    lease: Lease
    dir: Path
    farm: Path
    log: Path
    find_links: tuple[str, ...] = ()

    @property
    def out(self) -> Path:
        return self.dir / "out"

    def write_spec(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / SPEC
        path.write_text(json.dumps({"lease": self.lease.to_dict(), "farm": str(self.farm),
                                    "log": str(self.log),
                                    "find_links": list(self.find_links)}))
        return path

    @classmethod
    def read_spec(cls, path: Path) -> Attempt:
        data = json.loads(path.read_text())
        return cls(Lease.from_dict(data["lease"]), path.parent, Path(data["farm"]),
                   Path(data["log"]), tuple(data["find_links"]))


def probe(attempt: Attempt, out: Path | None = None) -> Artifact:
    """A probe's work: wait ``seconds``, then write a small file naming the attempt.

    Probes measure and exercise the farm itself (dispatch rate, leases,
    timeouts) without compiling anything; their file is a real artifact, so
    a result recorded twice would show as two files for one job.
    """
    seconds = float(attempt.lease.spec.get("seconds", 0))
    if seconds > 0:
        # A process of its own, as a build's compiler would be: a timeout
        # or a cancellation must find and kill it.
        with attempt.log.open("a", encoding="utf-8") as fh:
            proc.run(["sleep", f"{seconds:g}"], log=fh, cwd=attempt.dir)
    out = out or attempt.out
    out.mkdir(parents=True, exist_ok=True)
    lease = attempt.lease
    path = out / f"probe-{lease.key[:16]}-{lease.n}.txt"
    content = f"{lease.key} attempt {lease.n} by {lease.worker}\n".encode()
    path.write_bytes(content)
    return Artifact(path.name, hashlib.sha256(content).hexdigest(), str(path))


def build(attempt: Attempt) -> Outcome:
    """Rebuild the job from what the queue stored and run the pipeline on it."""
    # Imported here: a probe's process should start in a fraction of a second.
    from wheelfarm.build import executors
    from wheelfarm.build.pipeline import Pipeline
    from wheelfarm.farm.wheelhouse import Wheelhouse
    from wheelfarm.plan import config as farm_config
    from wheelfarm.plan import jobs as plan
    from wheelfarm.plan import recipe
    from wheelfarm.plan.targets import parse_target
    from wheelfarm.publish.storecache import store_cache

    lease = attempt.lease
    spec = lease.spec
    try:
        config = farm_config.load(attempt.farm)
        loaded = recipe.loads(str(spec["recipe_text"]), Path(str(spec["recipe_path"])))
    except WheelfarmError as exc:
        # A path source that is missing here may exist on another worker.
        return Outcome.failed(FailureKind.SOURCE, f"on this worker: {exc}")
    if loaded.digest() != spec["recipe_digest"]:
        return Outcome.failed(FailureKind.SOURCE, f"{loaded.path} is not the recipe that was "
                              "submitted (its digest differs); resubmit it")
    # The job's toolchain chain (build.toolchains): its executor, then the fallbacks
    # the pipeline tries in turn when a compile fails; the key covers them all.
    fallbacks = tuple(str(name) for name in spec.get("fallbacks") or ())
    try:
        chain = {name: executors.get(name, pythons_config=dict(config.python_paths),
                                     config=config)
                 for name in (lease.executor, *fallbacks)}
    except WheelfarmError as exc:
        return Outcome.failed(FailureKind.WORKER, str(exc))
    job = plan.Job(loaded, parse_target(lease.target), lease.python, lease.executor,
                   tuple(spec["test_pythons"]), lease.key,
                   str(spec.get("profile") or loaded.profile or "release"), fallbacks)
    # The attempt's own directory: the worker adds its wheel to the farm's wheelhouse.
    return Pipeline(config, chain, Wheelhouse(attempt.out, index=False),
                    remote=partial(store_cache, config), log_file=attempt.log).run_job(job).outcome


def child_main(spec_path: Path) -> Outcome:
    """The child's side: run the attempt, add the pipeline's log to the attempt's
    log, write ``result.json``; returns the outcome too.

    The child enforces the job's timeout itself and kills every process the
    job started (each command runs in a session of its own, so a process
    group is not enough) on a timeout, on SIGTERM from its worker, and when
    its worker disappears.
    """
    attempt = Attempt.read_spec(spec_path)
    (attempt.dir / PID).write_text(str(os.getpid()))
    finished = threading.Lock()

    def give_up(outcome: Outcome, code: int) -> None:
        if finished.acquire(blocking=False):
            _write_result(attempt, outcome)
            kill_tree(os.getpid())
            os._exit(code)

    def on_term(_signum: int, _frame: object) -> None:
        give_up(Outcome.failed(FailureKind.WORKER, "stopped by its worker"), 143)

    signal.signal(signal.SIGTERM, on_term)
    timeout = attempt.lease.timeout
    timer = threading.Timer(timeout, give_up, (Outcome.failed(
        FailureKind.TIMEOUT, f"timed out after {timeout:g}s; killed"), 124))
    timer.daemon = True
    timer.start()
    _exit_with_parent(lambda: give_up(
        Outcome.failed(FailureKind.WORKER, "its worker went away"), 1))
    try:
        with find_links(attempt.find_links):
            if attempt.lease.kind == "probe":
                outcome = Outcome(ok=True, duration=0.0, artifact=probe(attempt))
            else:
                outcome = build(attempt)
    except WheelfarmError as exc:
        outcome = Outcome.failed(FailureKind.WORKER, str(exc))
    if finished.acquire(blocking=False):
        timer.cancel()
        _write_result(attempt, outcome)
    return outcome


@contextmanager
def find_links(locations: Sequence[str]) -> Iterator[None]:
    """Let every pip this process runs find wheels in ``locations`` first.

    The hook through which a build environment installs the wheels of the
    recipes a job needs: pip reads PIP_FIND_LINKS for every install that runs
    on this host (build environment and tests; a container's pip sees only
    the environment its executor passes in). A farm worker's job process and
    ``wheelfarm build`` (for its whole run) both use it.
    """
    if not locations:
        yield
        return
    before = os.environ.get("PIP_FIND_LINKS")
    os.environ["PIP_FIND_LINKS"] = " ".join([*locations, before or ""]).strip()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PIP_FIND_LINKS", None)
        else:
            os.environ["PIP_FIND_LINKS"] = before


def _write_result(attempt: Attempt, outcome: Outcome) -> None:
    """Add the pipeline's log to the attempt's (unless the pipeline wrote it there),
    then write ``result.json`` (naming the attempt's log)."""
    with attempt.log.open("a", encoding="utf-8") as fh:
        if outcome.log and outcome.log != str(attempt.log) and os.path.exists(outcome.log):
            fh.write(Path(outcome.log).read_text(encoding="utf-8", errors="replace"))
        if not outcome.ok:
            fh.write(f"! {outcome.kind}: {outcome.reason}\n")
    tmp = attempt.dir / (RESULT + ".tmp")
    tmp.write_text(replace(outcome, log=str(attempt.log)).to_json())
    os.replace(tmp, attempt.dir / RESULT)


def read_result(directory: Path) -> Outcome | None:
    path = directory / RESULT
    if not path.exists():
        return None
    return Outcome.from_json(path.read_text())


def kill(directory: Path) -> bool:
    """Ask the child of an attempt to stop (it kills what it started and exits);
    False if it has not started yet or is gone."""
    try:
        pid = int((directory / PID).read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return False
    return True


def kill_tree(root: int) -> None:
    """SIGKILL every descendant of ``root`` (and their process groups), then ``root``'s group.

    Descendants are found through /proc; where there is none (macOS) only
    process groups are killed.
    """
    for _ in range(3):  # a process may fork while the first pass runs
        found = _descendants(root)
        for pid in found:
            for kill_one in (os.killpg, os.kill):
                try:
                    kill_one(pid, signal.SIGKILL)
                except OSError:
                    pass
        if not found:
            break
    try:
        os.killpg(os.getpgid(root), signal.SIGKILL)
    except OSError:
        pass


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return []
    for name in entries:
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _exit_with_parent(on_exit: Callable[[], None]) -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                # The worker died (SIGKILL, machine trouble): its lease will be
                # reclaimed, so nothing this process produces may be delivered.
                on_exit()
                return

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


if __name__ == "__main__":
    child_main(Path(sys.argv[1]))
