"""Local builds (`wheelfarm build`) recorded in the farm's own state: `status` lists
them and `logs` prints their logs (issue 16, item 8).

Real parts: the CLI, the pipeline with the host executor, the farm's SQLite
state; the jobs fail fetching their source (a file:// URL that does not exist),
so nothing runs a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wheelfarm.cli import main
from wheelfarm.farm.state import open_queue, report
from wheelfarm.farm.state.history import LocalAttempt, LocalEnd
from wheelfarm.plan import config as farm_config


def _recipe(farm: Path, name: str) -> Path:
    path = farm / "recipes" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[package]\nname = "{name}"\nversion = "1.0"\n'
                    f'[source]\nurl = "{(farm / "missing" / name).as_uri()}.tar.gz"\n'
                    f'sha256 = "{"0" * 64}"\n[build]\nmax-attempts = 1\n')
    return path


@pytest.fixture
def farm(tmp_path: Path) -> Path:
    (tmp_path / "wheelfarm.toml").write_text("retry-backoff = 0.05\nlease = 5\n")
    return tmp_path


def test_a_local_build_is_in_status_and_logs(farm: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _recipe(farm, "lonely")
    code = main(["build", str(farm / "recipes"), "--farm", str(farm), "--out",
                 str(farm / "out"), "--target", "linux_x86_64", "--python", "cp312"])
    assert code == 1
    capsys.readouterr()

    assert main(["status", "--json", "--farm", str(farm)]) == 0
    doc = json.loads(capsys.readouterr().out)
    [job] = doc["jobs"]
    assert (job["recipe"], job["target"], job["python"], job["state"], job["source"]) == \
        ("lonely", "linux_x86_64", "cp312", "failed", "local")
    [attempt] = job["attempts"]
    assert attempt["step"] == "source" and "download failed" in attempt["reason"]
    assert attempt["cause"] == job["cause"] and job["cause"] in ("network", "other")
    assert attempt["started"] and attempt["ended"]
    log_path = Path(attempt["log"])
    assert log_path.is_file() and log_path.is_relative_to(farm / ".wheelfarm" / "logs")

    # The private queue of the run is gone; the farm's state has the record.
    assert not list((farm / ".wheelfarm" / "runs").glob("*/queue.db"))

    assert main(["logs", job["key"][:10], "--farm", str(farm)]) == 0
    printed = capsys.readouterr().out
    assert printed == log_path.read_text(encoding="utf-8")
    assert "download failed" in printed

    assert main(["status", "--farm", str(farm)]) == 0
    table = capsys.readouterr().out
    assert "lonely" in table and "failed" in table and "local" in table

    # A second run of the same job is the job's second attempt.
    assert main(["build", str(farm / "recipes"), "--farm", str(farm), "--out",
                 str(farm / "out"), "--target", "linux_x86_64", "--python", "cp312"]) == 1
    capsys.readouterr()
    queue = open_queue(farm_config.load(farm))
    [job] = report.local_jobs(queue)
    assert [a["n"] for a in job["attempts"]] == [1, 2]
    assert job["attempts"][0]["run"] != job["attempts"][1]["run"]
    assert main(["logs", job["key"], "--attempt", "1", "--farm", str(farm)]) == 0
    assert "download failed" in capsys.readouterr().out


def test_history_rows_and_counts(farm: Path) -> None:
    queue = open_queue(farm_config.load(farm))
    at = LocalAttempt(run="r1", host="h:1", key="k" * 64, job="a-cp312-x", recipe="a",
                      target="x", python="cp312", executor="zig", owners=("@me",))
    first = queue.local_started(at)
    assert report.local_jobs(queue)[0]["state"] == "running"
    queue.local_ended(first, LocalEnd(ok=False, step="build", cause="compiler-error",
                                      reason="boom", log="/nowhere.log"))
    second = queue.local_started(at)
    queue.local_ended(second, LocalEnd(ok=True, cached=True, wheel="a.whl", sha256="f" * 64))
    [job] = report.local_jobs(queue)
    assert job["state"] == "succeeded" and job["artifact"] == {"filename": "a.whl",
                                                               "sha256": "f" * 64}
    assert [a["cause"] for a in job["attempts"]] == ["compiler-error", None]
    assert queue.local_counts() == {("failed", 0): 1, ("succeeded", 1): 1}
    assert queue.local_keys("kkk") == ["k" * 64]


def test_verbose_prints_every_log_path(farm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _recipe(farm, "lonely")
    assert main(["build", str(farm / "recipes"), "--farm", str(farm), "--out",
                 str(farm / "out"), "--target", "linux_x86_64", "--python", "cp312",
                 "--json", str(farm / "r.json")]) == 1
    err = capsys.readouterr().err
    [job] = json.loads((farm / "r.json").read_text())["jobs"]
    assert Path(job["attempts"][0]["log"]).is_file()
    assert f"log: {job['attempts'][0]['log']}" in err  # the failure summary's
    assert f"lonely-cp312-linux_x86_64: failed, log {job['attempts'][0]['log']}" not in err
    assert main(["build", str(farm / "recipes"), "--farm", str(farm), "--out",
                 str(farm / "out"), "--target", "linux_x86_64", "--python", "cp312", "-v"]) == 1
    err = capsys.readouterr().err
    assert "lonely-cp312-linux_x86_64: failed, log " in err
    path = err.split("lonely-cp312-linux_x86_64: failed, log ")[1].split()[0]
    assert Path(path).is_file() and path != job["attempts"][0]["log"]  # a new run's log


def test_a_killed_builds_attempts_end_at_the_next_build(farm: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import socket
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()
    queue = open_queue(farm_config.load(farm))
    here = socket.gethostname()

    def running(host: str, key: str) -> None:
        queue.local_started(LocalAttempt(run="old", host=host, key=key, job="j", recipe="old",
                                         target="x", python="cp312", executor="zig"))

    running(f"{here}:{gone.pid}", "1" * 64)  # killed
    running(f"{here}:{os.getpid()}", "2" * 64)  # still running (this process)
    running(f"elsewhere-{here}:{gone.pid}", "3" * 64)  # another machine's: not ours to judge
    _recipe(farm, "lonely")
    assert main(["build", str(farm / "recipes"), "--farm", str(farm), "--out",
                 str(farm / "out"), "--target", "linux_x86_64", "--python", "cp312"]) == 1
    capsys.readouterr()
    # keyed by the whole key: the real build's key may start with any hex digit
    states = {j["key"]: (j["state"], j["attempts"][-1]["step"])
              for j in report.local_jobs(queue)}
    assert states["1" * 64] == ("failed", "lost")
    assert states["2" * 64] == ("running", None) and states["3" * 64] == ("running", None)
