"""A running farm job's log, followed on the controller's dashboard: a direct
worker writes the attempt's log as the job goes, a remote worker ships what it
gains; the dashboard shows it while the job runs, and the recorded log takes
over when it ends.

Real parts: a controller and a worker (remote or direct) as processes on loopback, a real
build (the fastadd fixture with the host's compiler) whose before-build step
prints a marker and then waits, the dashboard read over HTTP."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from wheelfarm.farm.serving import wait_until_up

from .helpers import PROJECTS, python_for, require
from .queue_support import cli, farm_dir, free_port, spawn, status, stop, token_file

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
MARKER = "LIVE-MARKER-<b>-7f3a"


def _slow_farm(tmp_path: Path, *, lease: int, build: str) -> Path:
    """A farm with one submitted job: fastadd built by the host, whose before-build
    step prints MARKER and then sleeps; ``build`` ends its [build] table."""
    require("gcc")
    python_for("cp312")
    farm = farm_dir(tmp_path / "farm", f"sqlite:///{tmp_path / 'state.db'}", lease=lease)
    (farm / "slow.toml").write_text(
        f'[package]\nname = "fastadd"\nversion = "0.1.0"\n'
        f'[source]\npath = "{PROJECTS / "fastadd"}"\n'
        '[build]\ntargets = ["linux_x86_64"]\npythons = ["cp312"]\nexecutor = "host"\n'
        + build)
    assert cli("submit", "slow.toml", cwd=farm).returncode == 0
    return farm


def _remote_worker(farm: Path, url: str, tmp_path: Path, logs: Path,
                   *flags: str) -> subprocess.Popen[bytes]:
    """A worker in a directory of its own (nothing shared with the farm), with a token."""
    home = tmp_path / "remote"
    home.mkdir()
    token = cli("token", "remote", cwd=farm).stdout.strip()
    return spawn("worker", *flags, "--controller", url, "--token-file",
                 token_file(tmp_path, "remote", token), "--farm", home, cwd=home, log=logs)


@pytest.mark.parametrize("how", ["remote", "direct"])
def test_a_running_jobs_log_is_followed_on_the_dashboard(tmp_path: Path, how: str) -> None:
    farm = _slow_farm(tmp_path, lease=30, build=f"before-build = [\"echo '{MARKER}'; "
                      'sleep 12"]\n[test]\nimports = ["fastadd"]\n')
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = tmp_path / "processes.log"
    controller = spawn("controller", "--port", str(port), cwd=farm, log=logs)
    worker = None
    try:
        wait_until_up(url)
        if how == "remote":
            worker = _remote_worker(farm, url, tmp_path, logs, "--drain")
        else:  # on the controller's machine, with the database: it writes the log itself
            worker = spawn("worker", "--drain", "--name", "local", cwd=farm, log=logs)
        [job] = status(farm)["jobs"]
        seen = ""
        deadline = time.monotonic() + 300
        while MARKER not in seen:
            assert time.monotonic() < deadline, logs.read_text()[-3000:]
            assert worker.poll() is None, "the job ended before its log was seen live"
            time.sleep(0.5)
            seen = httpx.get(f"{url}/jobs/{job['key']}/log.txt").text
        # Seen while it ran: the job is still running, its log not yet recorded.
        assert status(farm)["jobs"][0]["state"] == "running"
        page = httpx.get(f"{url}/jobs/{job['key']}/log").text
        assert "LIVE-MARKER-&lt;b&gt;-7f3a" in page and MARKER not in page  # escaped
        shipped = list((farm / ".wheelfarm" / "logs" / "live").glob("*.log"))
        if how == "remote":
            assert len(shipped) == 1 and MARKER in shipped[0].read_text()
        else:
            assert not shipped
        assert worker.wait(timeout=300) == 0, logs.read_text()[-3000:]
    finally:
        for process in (worker, controller):
            if process is not None:
                stop(process)
    [done] = status(farm)["jobs"]
    assert done["state"] == "succeeded"
    # The recorded log (a remote worker's uploaded one) took over; no shipped copy is left.
    assert not list((farm / ".wheelfarm" / "logs" / "live").glob("*.log"))
    recorded = Path(done["attempts"][-1]["log"]).read_text()
    assert recorded.count(MARKER) == 2  # the command and its output, once each
    assert "wrote " in recorded  # the whole log, to its end


def test_what_a_killed_remote_worker_shipped_stays_its_attempts_log(tmp_path: Path) -> None:
    """A remote worker killed mid-job uploads nothing: the lease expires, the
    attempt ends lost, and what it shipped is the log the dashboard shows for it."""
    farm = _slow_farm(tmp_path, lease=4,
                      build=f"max-attempts = 1\nbefore-build = [\"echo '{MARKER}'; sleep 120\"]\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = tmp_path / "processes.log"
    controller = spawn("controller", "--port", str(port), cwd=farm, log=logs)
    worker = None
    try:
        wait_until_up(url)
        worker = _remote_worker(farm, url, tmp_path, logs)
        [job] = status(farm)["jobs"]
        deadline = time.monotonic() + 300
        while MARKER not in httpx.get(f"{url}/jobs/{job['key']}/log.txt").text:
            assert time.monotonic() < deadline, logs.read_text()[-3000:]
            time.sleep(0.5)
        worker.kill()  # no upload, no report: only the lease's expiry tells
        worker.wait(timeout=30)
        while status(farm)["jobs"][0]["state"] != "failed":
            assert time.monotonic() < deadline, status(farm)
            time.sleep(0.5)
        [attempt] = status(farm)["jobs"][0]["attempts"]
        assert attempt["log"] is None and attempt["ended"] is not None
        assert MARKER in httpx.get(f"{url}/jobs/{job['key']}/log.txt?attempt=1").text
    finally:
        for process in (worker, controller):
            if process is not None:
                stop(process)
