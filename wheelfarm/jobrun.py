"""Running one leased job: a build through the pipeline, or a probe.

A worker runs each job that takes time in a child process (``python -m
wheelfarm.jobrun SPEC``) so that the job's timeout, a cancellation or a hand-back can
kill it, compilers included. The child records its process id next to the
spec and kills itself when its worker disappears, so an orphaned build never
delivers a wheel that nobody recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .archive import sha256_file
from .errors import WheelfarmError
from .state.models import Artifact, Lease

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
        time.sleep(seconds)
    out = out or attempt.out
    out.mkdir(parents=True, exist_ok=True)
    lease = attempt.lease
    path = out / f"probe-{lease.key[:16]}-{lease.n}.txt"
    content = f"{lease.key} attempt {lease.n} by {lease.worker}\n".encode()
    path.write_bytes(content)
    return Artifact(path.name, hashlib.sha256(content).hexdigest(), str(path))


def build(attempt: Attempt) -> dict[str, Any]:
    """Rebuild the job from what the queue stored and run the pipeline on it."""
    # Imported here: a probe's process should start in a fraction of a second.
    from . import config as farm_config
    from . import executors, plan, recipe
    from .pipeline import Pipeline
    from .targets import parse_target

    lease = attempt.lease
    spec = lease.spec
    try:
        config = farm_config.load(attempt.farm)
        loaded = recipe.loads(str(spec["recipe_text"]), Path(str(spec["recipe_path"])))
    except WheelfarmError as exc:
        # A path source that is missing here may exist on another worker.
        return {"ok": False, "kind": "source", "reason": f"on this worker: {exc}"}
    if loaded.digest() != spec["recipe_digest"]:
        return {"ok": False, "kind": "source",
                "reason": f"{loaded.path} is not the recipe that was submitted (its digest "
                          "differs); resubmit it"}
    try:
        executor = executors.get(lease.executor, pythons_config=dict(config.python_paths))
    except WheelfarmError as exc:
        return {"ok": False, "kind": "worker-error", "reason": str(exc)}
    job = plan.Job(loaded, parse_target(lease.target), lease.python, lease.executor,
                   tuple(spec["test_pythons"]), lease.key)
    result = Pipeline(config, {lease.executor: executor}, attempt.out).run_job(job)
    doc: dict[str, Any] = {"ok": result.status != "failed", "pipeline_log": str(result.log)}
    if result.wheel is not None:
        doc["artifact"] = {"filename": result.wheel.name, "sha256": sha256_file(result.wheel),
                           "location": str(result.wheel)}
    else:
        doc.update(kind=result.step or "internal", reason=result.message)
    return doc


def child_main(spec_path: Path) -> dict[str, Any]:
    """The child's side: run the attempt, add the pipeline's log to the attempt's
    log, write ``result.json``; returns it too."""
    attempt = Attempt.read_spec(spec_path)
    (attempt.dir / PID).write_text(str(os.getpid()))
    _exit_with_parent()
    if attempt.find_links:
        # The hook through which a build environment installs the wheels of
        # the recipes it needs: pip reads PIP_FIND_LINKS for every install.
        os.environ["PIP_FIND_LINKS"] = " ".join(
            [*attempt.find_links, os.environ.get("PIP_FIND_LINKS", "")]).strip()
    if attempt.lease.kind == "probe":
        art = probe(attempt)
        doc: dict[str, Any] = {"ok": True, "artifact": art.__dict__}
    else:
        doc = build(attempt)
    pipeline_log = doc.get("pipeline_log")
    with attempt.log.open("a", encoding="utf-8") as fh:
        if pipeline_log and os.path.exists(pipeline_log):
            fh.write(Path(pipeline_log).read_text(encoding="utf-8", errors="replace"))
        if not doc["ok"]:
            fh.write(f"! {doc.get('kind')}: {doc.get('reason')}\n")
    tmp = attempt.dir / (RESULT + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, attempt.dir / RESULT)
    return doc


def read_result(directory: Path) -> Mapping[str, Any] | None:
    path = directory / RESULT
    if not path.exists():
        return None
    data: Mapping[str, Any] = json.loads(path.read_text())
    return data


def kill(directory: Path) -> bool:
    """Kill the child of an attempt and everything it started; False if none runs."""
    try:
        pid = int((directory / PID).read_text())
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        return False
    return True


def _exit_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                # The worker died (SIGKILL, machine trouble): its lease will be
                # reclaimed, so nothing this process produces may be delivered.
                os.killpg(os.getpgrp(), signal.SIGKILL)
                sys.exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


if __name__ == "__main__":
    child_main(Path(sys.argv[1]))
