"""`wheelfarm build`'s embedded queue with real parts: the SQLite queue, the
pipeline and the host executor, on jobs that fail fetching their source (a
file:// URL that does not exist), so that nothing runs a subprocess."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from wheelfarm.build.executors.host import HostExecutor
from wheelfarm.build.pipeline import Pipeline
from wheelfarm.cli import main
from wheelfarm.errors import ConfigError
from wheelfarm.farm.localrun import LocalRun
from wheelfarm.farm.state import report
from wheelfarm.farm.state.db import open_engine
from wheelfarm.farm.state.queue import Queue
from wheelfarm.farm.wheelhouse import Wheelhouse
from wheelfarm.plan import config as farm_config
from wheelfarm.plan import recipe
from wheelfarm.plan.graph import with_needs
from wheelfarm.plan.jobs import Job
from wheelfarm.plan.targets import parse_target

TARGET = parse_target("linux_x86_64")


def _recipe(farm: Path, name: str, *, needs: tuple[str, ...] = (), attempts: int = 1,
            python: str = "cp312") -> Job:
    text = (f'[package]\nname = "{name}"\nversion = "1.0"\n'
            f'[source]\nurl = "{(farm / "missing" / name).as_uri()}.tar.gz"\n'
            f'sha256 = "{"0" * 64}"\n'
            f'[build]\nneeds = {list(needs)!r}\nmax-attempts = {attempts}\n')
    path = farm / "recipes" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    r = recipe.load(path)
    return Job(r, TARGET, python, "host", (python,), f"{name}-{python}".ljust(64, "0"))


@pytest.fixture
def farm(tmp_path: Path) -> Path:
    (tmp_path / "wheelfarm.toml").write_text("retry-backoff = 0.05\nlease = 5\n")
    return tmp_path


def _pipeline(farm: Path) -> Pipeline:
    config = farm_config.load(farm)
    return Pipeline(config, {"host": HostExecutor()}, Wheelhouse(farm / "out", index=False))


def test_needed_jobs_are_added_in_plan_order(farm: Path) -> None:
    base = _recipe(farm, "base")
    mid = _recipe(farm, "mid", needs=("base",))
    top = _recipe(farm, "top", needs=("mid",))
    other = _recipe(farm, "other")
    other39 = _recipe(farm, "base", python="cp39")
    planned = [other, base, other39, mid, top]
    jobs, added = with_needs([top, other], planned)
    assert jobs == [other, base, mid, top]
    assert added == [base, mid]
    with pytest.raises(ConfigError, match="top needs mid, but no recipe of this build makes "
                                          "mid for linux_x86_64 and cp312; give its recipe"):
        with_needs([top], [top, base])


def test_a_failed_dependency_fails_its_dependents_with_a_reason(farm: Path) -> None:
    base = _recipe(farm, "base", attempts=2)
    user = _recipe(farm, "user", needs=("base",))
    solo = _recipe(farm, "solo")
    pipeline = _pipeline(farm)
    run = LocalRun(pipeline, [user, base, solo], 2, keep=True)
    results = run.run()
    assert [r.job for r in results] == [user, base, solo]  # the order given
    by_name = {r.job.recipe.name: r for r in results}
    assert by_name["base"].status == "failed" and by_name["base"].step == "source"
    assert "download failed" in by_name["base"].message
    dep = by_name["user"]
    assert (dep.status, dep.step) == ("failed", "needs")
    assert dep.message.startswith("needs base, whose job base-cp312") and "did not succeed" in \
        dep.message
    assert dep.log.read_text().endswith(f"! {dep.message}\n")
    assert by_name["solo"].step == "source"
    assert run.signal is None and not list((farm / "out").glob("*"))

    # The queue kept with keep=True is the record of the run: real attempts
    # (a transient failure tried the recipe's max-attempts times), real events.
    queue = Queue(open_engine(f"sqlite:///{run.database}"))
    docs = {d["recipe"]: d for d in report.queue_jobs(queue)}
    assert [a["n"] for a in docs["base"]["attempts"]] == [1, 2]
    assert all("download failed" in a["reason"] for a in docs["base"]["attempts"])
    assert {a["worker"] for a in docs["base"]["attempts"]} <= {"local-1", "local-2"}
    assert docs["user"]["state"] == "failed" and docs["user"]["attempts"] == []
    kinds = [e["kind"] for e in report.job_events(queue)]
    assert kinds.count("retrying") == 1 and kinds.count("failed") == 3
    assert kinds.count("worker-registered") == 2 and kinds.count("submitted") == 3
    # Both attempts are in the job's one log.
    assert (pipeline.log_dir / f"{base.id}.log").read_text().count("! source failed") == 2


def test_the_queue_is_removed_unless_kept(farm: Path) -> None:
    run = LocalRun(_pipeline(farm), [_recipe(farm, "solo")], 4)
    [result] = run.run()
    assert result.step == "source"
    assert not run.dir.exists() and run.dir.parent == farm / ".wheelfarm" / "runs"


def test_a_stopped_run_builds_nothing_more(farm: Path) -> None:
    jobs = [_recipe(farm, "one"), _recipe(farm, "two")]
    run = LocalRun(_pipeline(farm), jobs, 1)
    run.stop(signal.SIGTERM)
    results = run.run()
    assert [(r.status, r.step) for r in results] == [("failed", "interrupted")] * 2
    assert run.signal == signal.SIGTERM


def test_a_needs_cycle_is_exit_2_naming_the_recipes(farm: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _recipe(farm, "cyca", needs=("cycb",))
    _recipe(farm, "cycb", needs=("cyca",))
    code = main(["build", str(farm / "recipes"), "--farm", str(farm), "--out",
                 str(farm / "out")])
    assert code == 2
    assert "error: build.needs makes a cycle: cyca -> cycb -> cyca" in capsys.readouterr().err
    assert not (farm / "out").exists() and not (farm / ".wheelfarm" / "runs").exists()
