"""The one worker loop with its in-thread runner (``wheelfarm build``): a job whose
lease is lost, or whose time is up, is stopped (its command killed) rather than
left to run on. Real parts: a LocalRun with its private SQLite queue, its
worker loops and heartbeat; the pipeline is a stand-in whose job is one long
``sleep``, the command the runner must kill."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from wheelfarm import proc
from wheelfarm.build.outcome import JobResult, Outcome
from wheelfarm.errors import CommandError, FailureKind
from wheelfarm.farm.localrun import LocalRun
from wheelfarm.farm.state import open_queue, report
from wheelfarm.plan import config as farm_config
from wheelfarm.plan import recipe
from wheelfarm.plan.jobs import Job
from wheelfarm.plan.targets import parse_target

pytestmark = pytest.mark.integration


class SleepingPipeline:
    """What LocalRun needs of a pipeline; each job runs ``sleep 60`` and fails
    when that command is killed, as a real build step would."""

    def __init__(self, farm: Path) -> None:
        self.config = farm_config.load(farm)
        self.out_dir = farm / "out"
        self.log_dir = farm / ".wheelfarm" / "logs" / "run"
        self.log_dir.mkdir(parents=True)
        self.started = threading.Event()
        self.runs = 0

    def run_job(self, job: Job) -> JobResult:
        begun = time.monotonic()
        self.runs += 1
        path = self.log_dir / f"{job.id}.log"
        with path.open("a", encoding="utf-8") as fh:
            self.started.set()
            try:
                proc.run(["sleep", "60"], log=fh)
                outcome = Outcome(True, time.monotonic() - begun, log=str(path))
            except CommandError as exc:
                outcome = Outcome.failed(FailureKind.BUILD, str(exc), time.monotonic() - begun,
                                         str(path))
        return JobResult(job, outcome)


def _job(farm: Path, extra: str = "") -> Job:
    path = farm / "slow.toml"
    path.write_text(f'[package]\nname = "slow"\nversion = "1.0"\n'
                    f'[source]\nurl = "{(farm / "none.tar.gz").as_uri()}"\n'
                    f'sha256 = "{"0" * 64}"\n[build]\n{extra}')
    target = parse_target("linux_x86_64")
    return Job(recipe.load(path), target, "cp312", "host", ("cp312",), "slow".ljust(64, "0"))


def test_a_job_whose_time_is_up_is_killed_and_retried_as_a_timeout(tmp_path: Path) -> None:
    (tmp_path / "wheelfarm.toml").write_text("retry-backoff = 0.05\nlease = 5\n")
    pipeline = SleepingPipeline(tmp_path)
    run = LocalRun(pipeline, [_job(tmp_path, "timeout = 1\nmax-attempts = 2\n")],  # type: ignore[arg-type]
                   1, keep=True)
    begun = time.monotonic()
    [result] = run.run()
    assert time.monotonic() - begun < 20  # two attempts of about a second, not of a minute
    assert (result.status, result.step) == ("failed", FailureKind.TIMEOUT)
    assert result.message.startswith("timed out after 1s; killed")
    assert pipeline.runs == 2  # a timeout is transient: retried up to max-attempts
    assert "! timeout: timed out after 1s; killed" in result.log.read_text()
    queue = open_queue(pipeline.config, f"sqlite:///{run.database}")
    events = report.job_events(queue)
    assert [e["detail"]["kind"] for e in events if e["kind"] in ("retrying", "failed")] == [
        "timeout", "timeout"]
    queue.close()


def test_a_job_whose_lease_is_lost_is_stopped(tmp_path: Path) -> None:
    (tmp_path / "wheelfarm.toml").write_text("retry-backoff = 0.05\nlease = 1\n")
    pipeline = SleepingPipeline(tmp_path)
    run = LocalRun(pipeline, [_job(tmp_path)], 1, keep=True)  # type: ignore[arg-type]
    results: list[JobResult] = []
    runner = threading.Thread(target=lambda: results.extend(run.run()))
    begun = time.monotonic()
    runner.start()
    assert pipeline.started.wait(30)
    # An operator cancels the job: its lease is gone at the next heartbeat.
    queue = open_queue(pipeline.config, f"sqlite:///{run.database}")
    queue.cancel("slow")
    runner.join(30)
    assert not runner.is_alive() and time.monotonic() - begun < 20
    [result] = results
    assert result.status == "failed" and pipeline.runs == 1
    kinds = [e["kind"] for e in report.job_events(queue)]
    assert "cancelled" in kinds and "result-refused" in kinds and "succeeded" not in kinds
    queue.close()


def test_a_hand_back_kills_the_running_job_and_gives_it_back(tmp_path: Path) -> None:
    (tmp_path / "wheelfarm.toml").write_text("retry-backoff = 0.05\nlease = 5\n")
    pipeline = SleepingPipeline(tmp_path)
    run = LocalRun(pipeline, [_job(tmp_path)], 1, keep=True)  # type: ignore[arg-type]
    results: list[JobResult] = []
    runner = threading.Thread(target=lambda: results.extend(run.run()))
    runner.start()
    assert pipeline.started.wait(30)
    run.hand_back(signal.SIGINT)  # Ctrl-C
    runner.join(30)
    assert not runner.is_alive() and run.signal == signal.SIGINT
    [result] = results
    assert (result.status, result.step) == ("failed", FailureKind.INTERRUPTED)
    assert result.message == "stopped: the build was interrupted" and pipeline.runs == 1
    queue = open_queue(pipeline.config, f"sqlite:///{run.database}")
    [doc] = report.queue_jobs(queue)
    assert doc["state"] == "pending"  # handed back: the attempt does not count
    assert [e["kind"] for e in report.job_events(queue)][-1] == "released"
    queue.close()
