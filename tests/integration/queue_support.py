"""Support for the queue's integration tests: real farm processes (worker, controller,
the CLI) over one state database, and what they report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from wheelfarm.farm.state.queue import Queue
from wheelfarm.farm.state.schema import jobs


def farm_dir(root: Path, url: str, **settings: float) -> Path:
    """A farm directory whose wheelfarm.toml points at ``url``."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [f'state = "{url}"'] + [f"{k.replace('_', '-')} = {v}" for k, v in settings.items()]
    (root / "wheelfarm.toml").write_text("\n".join(lines) + "\n")
    return root


def cli(*args: str | os.PathLike[str], cwd: Path, timeout: float = 120,
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WHEELFARM_STATE"}
    return subprocess.run([sys.executable, "-m", "wheelfarm", *map(os.fspath, args)], cwd=cwd,
                          env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def spawn(*args: str | os.PathLike[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """A wheelfarm process (worker, controller) in the background, output to ``log``."""
    env = {k: v for k, v in os.environ.items() if k != "WHEELFARM_STATE"}
    with log.open("ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "wheelfarm", *map(os.fspath, args)],
                                cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)


def token_file(directory: Path, name: str, token: str) -> Path:
    """A worker token in a file of its own (``--token-file``): a token on a command line
    is refused, since every process on the machine can read it."""
    path = directory / f"{name}.token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def status(farm: Path) -> dict[str, Any]:
    result = cli("status", "--json", "--events", "--farm", farm, cwd=farm)
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def states(queue: Queue) -> dict[str, int]:
    with queue.engine.begin() as conn:
        rows = conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all()
    return {str(state): int(count) for state, count in rows}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_each_succeeded_once(doc: dict[str, Any], total: int) -> None:
    """Every job succeeded, with one accepted attempt and one recorded artifact."""
    jobs_doc = doc["jobs"]
    assert len(jobs_doc) == total
    assert {j["state"] for j in jobs_doc} == {"succeeded"}, \
        [(j["key"][:12], j["state"], j["attempts"]) for j in jobs_doc if j["state"] != "succeeded"]
    ids = {e["job"] for e in doc["events"] if e["kind"] == "submitted"}
    successes = [e["job"] for e in doc["events"] if e["kind"] == "succeeded"]
    assert sorted(successes) == sorted(ids), "a job succeeded more than once, or never"
    shas = [j["artifact"]["sha256"] for j in jobs_doc]
    assert len(set(shas)) == total, "an artifact was recorded twice"
