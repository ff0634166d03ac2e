"""Fault tests with real processes, on SQLite and on PostgreSQL.

The jobs are probes (``wheelfarm submit --probe N --seconds S``): each runs
in its own child process like a build does, waits S seconds and writes a
small file as its artifact, so leases, kills, timeouts and retries are
exercised exactly as for builds, without a compiler in the way.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from wheelfarm.build.archive import sha256_file
from wheelfarm.farm.state.db import open_engine
from wheelfarm.farm.state.queue import Queue

from .queue_support import (
    assert_each_succeeded_once,
    cli,
    farm_dir,
    free_port,
    spawn,
    states,
    status,
    stop,
    token_file,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def watch(url: str) -> Queue:
    return Queue(open_engine(url))


def artifact_matches_accepted_attempt(farm: Path, job: dict[str, object]) -> None:
    """The recorded file exists, has the recorded bytes and names the accepted attempt."""
    art = job["artifact"]
    assert isinstance(art, dict)
    key = str(job["key"])
    [path] = list((farm / ".wheelfarm" / "attempts").glob(f"*/out/{art['filename']}"))
    assert sha256_file(path) == art["sha256"]
    attempts = job["attempts"]
    assert isinstance(attempts, list)
    accepted = [a for a in attempts if a["ended"] and not a["reason"]]
    assert len(accepted) == 1
    text = path.read_text()
    assert text.startswith(f"{key} attempt {accepted[0]['n']} by {accepted[0]['worker']}")


def test_workers_killed_at_random_lose_no_job(tmp_path: Path, state_url: str) -> None:
    farm = farm_dir(tmp_path / "farm", state_url, lease=2, retry_backoff=0.5)
    assert cli("submit", "--probe", "200", "--seconds", "0.2", "--max-attempts", "10",
               cwd=farm).returncode == 0
    logs = tmp_path / "workers.log"
    workers = [spawn("worker", "--drain", "--name", f"w{i}", cwd=farm, log=logs)
               for i in range(4)]
    queue = watch(state_url)
    rng = random.Random(5)
    kills = 0
    try:
        deadline = time.monotonic() + 400
        while states(queue).get("succeeded", 0) < 200:
            assert time.monotonic() < deadline, f"stuck at {states(queue)}"
            time.sleep(rng.uniform(1.5, 3.0))
            if states(queue).get("succeeded", 0) >= 190:
                continue
            victim = rng.randrange(len(workers))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            kills += 1
            workers[victim] = spawn("worker", "--drain", "--name", f"w{len(workers) + kills}",
                                    cwd=farm, log=logs)
        for w in workers:
            assert w.wait(timeout=60) == 0, logs.read_text()[-3000:]
    finally:
        for w in workers:
            stop(w)
        queue.engine.dispose()
    assert kills >= 3
    doc = status(farm)
    assert_each_succeeded_once(doc, 200)
    lost = [a for j in doc["jobs"] for a in j["attempts"]
            if a["reason"] and "lease expired" in a["reason"]]
    assert lost, "no worker died holding a job; the test proved nothing"
    for job in doc["jobs"]:
        artifact_matches_accepted_attempt(farm, job)


def test_controller_killed_and_restarted(tmp_path: Path, state_url: str) -> None:
    farm = farm_dir(tmp_path / "farm", state_url, lease=3, retry_backoff=0.5)
    assert cli("submit", "--probe", "40", "--seconds", "0.2", cwd=farm).returncode == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = tmp_path / "processes.log"
    controller = spawn("controller", "--port", str(port), "--farm", farm, cwd=farm, log=logs)
    workers = []
    queue = watch(state_url)
    try:
        for i in range(2):
            token = cli("token", f"remote{i}", cwd=farm).stdout.strip()
            home = tmp_path / f"machine{i}"
            home.mkdir()
            workers.append(spawn("worker", "--controller", url, "--token-file",
                                 token_file(tmp_path, f"remote{i}", token), "--drain",
                                 "--farm", home, cwd=home, log=logs))
        wait_for(lambda: states(queue).get("succeeded", 0) >= 15, 120, "the first jobs")
        controller.send_signal(signal.SIGKILL)
        controller.wait()
        done_at_kill = states(queue).get("succeeded", 0)
        time.sleep(2)
        controller = spawn("controller", "--port", str(port), "--farm", farm, cwd=farm,
                           log=logs)
        for w in workers:
            assert w.wait(timeout=300) == 0, logs.read_text()[-3000:]
    finally:
        for p in [controller, *workers]:
            stop(p)
        queue.engine.dispose()
    assert done_at_kill < 40, "the controller died after the work was done; proved nothing"
    doc = status(farm)
    assert_each_succeeded_once(doc, 40)
    assert {a["worker"] for j in doc["jobs"] for a in j["attempts"]} == {"remote0", "remote1"}


def test_a_paused_worker_cannot_record_after_its_lease_was_reclaimed(
        tmp_path: Path, state_url: str) -> None:
    farm = farm_dir(tmp_path / "farm", state_url, lease=1, retry_backoff=0.1)
    assert cli("submit", "--probe", "1", "--seconds", "4", cwd=farm).returncode == 0
    logs = tmp_path / "workers.log"
    queue = watch(state_url)
    paused = spawn("worker", "--name", "paused", cwd=farm, log=logs)
    other: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: states(queue).get("running", 0) == 1, 60, "the job to start")
        paused.send_signal(signal.SIGSTOP)
        other = spawn("worker", "--name", "other", "--drain", cwd=farm, log=logs)
        assert other.wait(timeout=120) == 0, logs.read_text()[-3000:]
        paused.send_signal(signal.SIGCONT)
        wait_for(lambda: any(e["kind"] == "result-refused" for e in status(farm)["events"]),
                 30, "the paused worker to report")
    finally:
        paused.send_signal(signal.SIGCONT)
        stop(paused)
        if other is not None:
            stop(other)
        queue.engine.dispose()
    doc = status(farm)
    [job] = doc["jobs"]
    assert job["state"] == "succeeded"
    first, second = job["attempts"]
    assert first["worker"] == "paused" and "lease expired" in first["reason"]
    assert second["worker"] == "other" and second["reason"] is None
    refused = [e for e in doc["events"] if e["kind"] == "result-refused"]
    assert [e["worker"] for e in refused] == ["paused"]
    assert [e["worker"] for e in doc["events"] if e["kind"] == "succeeded"] == ["other"]
    artifact_matches_accepted_attempt(farm, job)
    assert "result not recorded" in logs.read_text()


def test_a_hanging_job_is_killed_retried_then_failed(tmp_path: Path, state_url: str) -> None:
    farm = farm_dir(tmp_path / "farm", state_url, lease=5, retry_backoff=0.2)
    assert cli("submit", "--probe", "1", "--seconds", "3599", "--timeout", "1.5",
               "--max-attempts", "2", cwd=farm).returncode == 0
    logs = tmp_path / "workers.log"
    started = time.monotonic()
    worker = spawn("worker", "--drain", cwd=farm, log=logs)
    try:
        assert worker.wait(timeout=120) == 0, logs.read_text()[-3000:]
    finally:
        stop(worker)
    assert time.monotonic() - started < 60
    doc = status(farm)
    [job] = doc["jobs"]
    assert job["state"] == "failed"
    assert [a["reason"] for a in job["attempts"]] == ["timed out after 1.5s; killed"] * 2
    table = cli("status", cwd=farm).stdout
    assert "failed" in table and "timed out after 1.5s" in table
    # Everything the job started is gone (its `sleep` ran in a session of its
    # own, as a compiler would): nothing runs on behind the worker's back.
    for attempt in (farm / ".wheelfarm" / "attempts").iterdir():
        pid = int((attempt / "runner.pid").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "+ sleep 3599" in cli("logs", job["key"][:12], cwd=farm).stdout
    assert not _processes_running(b"sleep\x003599\x00")


def _processes_running(cmdline: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == cmdline:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_sigterm_finishes_the_job_or_hands_it_back(tmp_path: Path, state_url: str) -> None:
    farm = farm_dir(tmp_path / "farm", state_url, lease=5, retry_backoff=0.2)
    queue = watch(state_url)
    logs = tmp_path / "workers.log"
    try:
        # Without --grace: the running job is finished, then the worker exits.
        assert cli("submit", "--probe", "1", "--seconds", "3", cwd=farm).returncode == 0
        patient = spawn("worker", "--name", "patient", cwd=farm, log=logs)
        wait_for(lambda: states(queue).get("running", 0) == 1, 60, "the job to start")
        patient.send_signal(signal.SIGTERM)
        assert patient.wait(timeout=60) == 0, logs.read_text()[-3000:]
        assert states(queue) == {"succeeded": 1}
        # With --grace 0.5: the job is handed back unfinished, without counting.
        assert cli("submit", "--probe", "1", "--seconds", "30", "--max-attempts", "1",
                   cwd=farm).returncode == 0
        hasty = spawn("worker", "--name", "hasty", "--grace", "0.5", cwd=farm, log=logs)
        wait_for(lambda: states(queue).get("running", 0) == 1, 60, "the job to start")
        stopped = time.monotonic()
        hasty.send_signal(signal.SIGTERM)
        assert hasty.wait(timeout=60) == 0, logs.read_text()[-3000:]
        assert time.monotonic() - stopped < 15
        assert states(queue) == {"succeeded": 1, "pending": 1}
    finally:
        queue.engine.dispose()
    doc = status(farm)
    handed = doc["jobs"][1]
    assert handed["state"] == "pending"
    assert [(a["worker"], a["reason"]) for a in handed["attempts"]] == [
        ("hasty", "the worker is stopping")]
    assert [e["kind"] for e in doc["events"] if e["job"] == 2][-1] == "released"
