"""The pure parts of the farm's state: lifecycle, retry rule, needs, JSON shape, config."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from wheelfarm.errors import ConfigError, FailureKind, RecipeError
from wheelfarm.farm.state import Capabilities, Lease, Outcome, lifecycle, report, schema
from wheelfarm.farm.state.db import normalize_url, open_engine
from wheelfarm.farm.state.lifecycle import ALLOWED, JobState
from wheelfarm.farm.state.models import Artifact
from wheelfarm.plan import config as farm_config
from wheelfarm.plan import recipe as recipe_mod
from wheelfarm.plan.graph import check_cycles


def test_only_the_documented_moves_are_legal() -> None:
    S = JobState
    assert lifecycle.sources(S.LEASED) == ["pending"]
    assert lifecycle.sources(S.RUNNING) == ["leased"]
    assert lifecycle.sources(S.SUCCEEDED) == ["running"]
    assert set(lifecycle.sources(S.PENDING)) == {"leased", "running", "failed", "cancelled"}
    assert ALLOWED[S.SUCCEEDED] == frozenset()  # a recorded artifact is never undone


def test_retry_rule_backs_off_and_stops() -> None:
    first = lifecycle.decide(1, 3, FailureKind.TIMEOUT, "timed out", backoff=10)
    second = lifecycle.decide(2, 3, FailureKind.LEASE_EXPIRED, "lost", backoff=10)
    last = lifecycle.decide(3, 3, FailureKind.TIMEOUT, "timed out", backoff=10)
    assert (first.retry, first.delay) == (True, 10)
    assert (second.retry, second.delay) == (True, 20)
    assert not last.retry and last.reason == "timed out (attempt 3 of 3)"
    late = lifecycle.decide(20, 99, FailureKind.TIMEOUT, "t", backoff=100)
    assert late.delay == lifecycle.MAX_BACKOFF


FINAL_KINDS = ["build", "repair", "normalize", "test", "parity", "reproduce", "needs"]


@pytest.mark.parametrize("kind", FINAL_KINDS)
def test_failures_of_the_build_itself_are_final(kind: str) -> None:
    decision = lifecycle.decide(1, 5, FailureKind(kind), "broken", backoff=1)
    assert not decision.retry and decision.reason == "broken"


@pytest.mark.parametrize("kind", sorted(set(FailureKind) - {FailureKind(k) for k in FINAL_KINDS}))
def test_failures_that_say_nothing_about_the_job_are_retried(kind: FailureKind) -> None:
    decision = lifecycle.decide(1, 5, kind, "flaky", backoff=1)
    assert decision.retry and decision.delay == 1 and kind.transient


def test_a_kind_this_version_does_not_know_is_final() -> None:
    assert FailureKind.parse("from-the-future") is None
    assert not lifecycle.decide(1, 5, None, "odd", backoff=1).retry
    assert FailureKind.parse("worker-error") is FailureKind.WORKER


def _recipe(tmp_path: Path, name: str, needs: list[str]) -> recipe_mod.Recipe:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[package]\nname = "{name}"\nversion = "1.0"\n'
                    f'[source]\nurl = "https://example.org/{name}-1.0.tar.gz"\n'
                    f'sha256 = "{"0" * 64}"\n[build]\nneeds = {needs!r}\n')
    return recipe_mod.load(path)


def test_a_needs_cycle_is_named(tmp_path: Path) -> None:
    recipes = [_recipe(tmp_path, "a", ["b"]), _recipe(tmp_path, "b", ["c"]),
               _recipe(tmp_path, "c", ["a"]), _recipe(tmp_path, "d", ["a"])]
    with pytest.raises(ConfigError, match="cycle: a -> b -> c -> a"):
        check_cycles(recipes)
    check_cycles([_recipe(tmp_path, "e", []), _recipe(tmp_path, "f", ["e"])])


def test_recipe_keys_for_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "user.toml"
    base = ('[package]\nname = "user"\nversion = "1.0"\n[source]\n'
            f'url = "https://example.org/u.tar.gz"\nsha256 = "{"1" * 64}"\n')
    path.write_text(base + '[build]\nneeds = ["Base_Pkg"]\nmax-attempts = 5\n')
    loaded = recipe_mod.load(path)
    assert loaded.needs == ("base-pkg",) and loaded.max_attempts == 5
    path.write_text(base + '[build]\nneeds = ["Base_Pkg"]\nmax-attempts = 1\n')
    assert recipe_mod.load(path).digest() == loaded.digest()  # scheduling is not an input
    path.write_text(base + '[build]\nneeds = []\n')
    assert recipe_mod.load(path).digest() != loaded.digest()
    path.write_text(base + "[build]\nmax-attempts = 0\n")
    with pytest.raises(RecipeError, match=r"build\.max-attempts: must be at least 1"):
        recipe_mod.load(path)
    path.write_text(base + '[build]\nneeds = ["not a name!"]\n')
    with pytest.raises(RecipeError, match=r"build\.needs"):
        recipe_mod.load(path)


def test_recipe_from_stored_text_resolves_paths_against_its_file(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    text = '[package]\nname = "p"\nversion = "1.0"\n[source]\npath = "proj"\n'
    loaded = recipe_mod.loads(text, tmp_path / "p.toml")
    assert loaded.source.location == str(project)
    with pytest.raises(RecipeError, match=r"source\.path: no such directory"):
        recipe_mod.loads(text, tmp_path / "elsewhere" / "p.toml")
    with pytest.raises(RecipeError, match="invalid TOML"):
        recipe_mod.loads("[package", tmp_path / "p.toml")


def test_job_json_shape() -> None:
    doc = report.document([report.job_json(
        "k" * 64, "demo", "manylinux_2_17_x86_64", "cp312", "succeeded",
        [{"n": 1, "worker": "w", "started": report.when(0.0), "ended": report.when(1.5),
          "reason": None, "log": "/x.log"}], ("demo.whl", "a" * 64))])
    assert doc["schema"] == 1
    [job] = doc["jobs"]
    assert list(job) == ["key", "recipe", "target", "python", "state", "attempts", "artifact",
                         "cause", "owners"]
    assert list(job["attempts"][0]) == ["n", "worker", "started", "ended", "reason", "log"]
    assert job["attempts"][0]["started"] == "1970-01-01T00:00:00.000Z"
    assert job["attempts"][0]["ended"] == "1970-01-01T00:00:01.500Z"
    assert job["artifact"] == {"filename": "demo.whl", "sha256": "a" * 64}
    assert report.job_json("k", "r", "t", "p", "pending")["artifact"] is None


def test_values_survive_the_wire() -> None:
    lease = Lease(job_id=1, key="k", n=2, token="t", worker="w", expires=3.0, kind="build",
                  recipe="r", target="t", python="cp312", executor="host",
                  pythons=("cp312",), timeout=9.0, spec={"a": [1]}, seconds=4.0)
    assert Lease.from_dict(lease.to_dict()) == lease
    started = replace(lease, kind="probe", spec={"seconds": 0}, running=True)
    assert Lease.from_dict(started.to_dict()) == started and started.instant
    assert not replace(started, spec={"seconds": 1}).instant and not lease.instant
    outcome = Outcome(ok=True, duration=1.0, artifact=Artifact("f.whl", "a" * 64, "/x"))
    assert Outcome.from_dict(outcome.to_dict()) == outcome
    failed = Outcome(False, 2.5, FailureKind.TIMEOUT, "timed out", "/a.log", cached=False,
                     started_at=7.0)
    assert Outcome.from_dict(failed.to_dict()) == replace(failed, started_at=0.0)
    assert failed.to_dict()["kind"] == "timeout"  # the value the database and the API hold
    assert Outcome.from_json(failed.to_json()) == failed  # result.json keeps it all
    # result.json as a job process of the version before wrote it (format 1).
    old = '{"ok": false, "kind": "source", "reason": "gone", "pipeline_log": "/p.log"}'
    assert Outcome.from_json(old) == Outcome(False, 0.0, FailureKind.SOURCE, "gone")
    caps = Capabilities(os="linux", arch="x86_64", pythons=("cp39",), images=("img",))
    assert Capabilities.from_dict(caps.to_dict()) == caps
    assert caps.runs(["cp39"], "img") and not caps.runs(["cp39", "cp312"], None)
    with pytest.raises(ConfigError, match="capabilities"):
        Capabilities.from_dict({"os": "linux"})


def test_state_urls() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    with pytest.raises(ConfigError, match="expected a sqlite:///PATH or postgresql"):
        normalize_url("mysql://root:secret@h/db")
    with pytest.raises(ConfigError) as info:
        normalize_url("mysql://root:secret@h/db")
    assert "secret" not in str(info.value)


def test_farm_config_state_and_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(farm_config.STATE_ENV, raising=False)
    assert farm_config.load(tmp_path).state_url == f"sqlite:///{tmp_path}/.wheelfarm/state.db"
    (tmp_path / "wheelfarm.toml").write_text(
        'state = "postgresql://farm@db/farm"\nlease = 12\nretry-backoff = 3\n'
        '[limits]\nmanylinux2014_x86_64 = 2\n')
    config = farm_config.load(tmp_path)
    assert config.state_url == "postgresql://farm@db/farm"
    assert (config.lease, config.retry_backoff) == (12.0, 3.0)
    assert config.limits == (("manylinux_2_17_x86_64", 2),)
    monkeypatch.setenv(farm_config.STATE_ENV, "sqlite:////elsewhere.db")
    assert farm_config.load(tmp_path).state_url == "sqlite:////elsewhere.db"
    (tmp_path / "wheelfarm.toml").write_text("[limits]\nmanylinux2014_x86_64 = 0\n")
    with pytest.raises(RecipeError, match=r"limits\.manylinux2014_x86_64: must be at least 1"):
        farm_config.load(tmp_path)
    (tmp_path / "wheelfarm.toml").write_text("lease = -1\n")
    with pytest.raises(RecipeError, match="lease: must be a positive"):
        farm_config.load(tmp_path)


def test_migrations_run_once_and_refuse_a_newer_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_engine(url).dispose()
    engine = open_engine(url)  # a second open finds the schema current
    with engine.begin() as conn:
        assert schema.migrate(conn) == schema.VERSION
        conn.execute(schema.migrations_table.insert().values(version=schema.VERSION + 1,
                                                             applied=0.0))
    engine.dispose()
    with pytest.raises(ConfigError, match="newer than this wheelfarm understands"):
        open_engine(url)


def test_a_version_1_database_gets_the_claim_index_in_claim_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = open_engine(url)
    with engine.begin() as conn:  # back to what version 1 left
        conn.execute(text("DROP INDEX jobs_claim"))
        conn.execute(text("CREATE INDEX jobs_claim ON jobs (state, priority, id)"))
        conn.execute(schema.migrations_table.delete().where(
            schema.migrations_table.c.version > 1))
    engine.dispose()
    engine = open_engine(url)
    with engine.begin() as conn:
        [index] = conn.execute(text(
            "SELECT sql FROM sqlite_master WHERE name = 'jobs_claim'")).scalars()
        plan = " ".join(str(r[-1]) for r in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE state = 'pending' "
            "ORDER BY priority DESC, id LIMIT 16")))
    engine.dispose()
    assert "priority DESC" in index
    assert "jobs_claim" in plan and "TEMP B-TREE" not in plan  # no sort of the pending set


def test_an_unreadable_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "state.db"
    bad.write_text("this is not a database" * 100)
    with pytest.raises(ConfigError, match="state database"):
        open_engine(f"sqlite:///{bad}")


def test_a_workers_outcome_names_a_known_failure_kind() -> None:
    from wheelfarm.farm.apiinput import as_outcome

    got = as_outcome({"ok": False, "duration": 1, "kind": "timeout", "reason": "slow"})
    assert got.kind is FailureKind.TIMEOUT and got.reason == "slow"
    assert as_outcome({"ok": True, "duration": 1}).kind is None
    with pytest.raises(ConfigError, match="outcome: kind: 'made-up' is none of source, "):
        as_outcome({"ok": False, "duration": 1, "kind": "made-up"})
    got = as_outcome({"ok": False, "duration": 1, "kind": "build", "cause": "compiler-error"})
    assert got.cause is not None and got.cause.value == "compiler-error"
    with pytest.raises(ConfigError, match="outcome: cause: 'made-up' is none of compiler-"):
        as_outcome({"ok": False, "duration": 1, "kind": "build", "cause": "made-up"})


def test_a_version_2_database_gains_the_cause_and_owners_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = open_engine(url)
    with engine.begin() as conn:  # back to what version 2 left
        for table, column in (("jobs", "cause"), ("jobs", "owners"), ("attempts", "cause")):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(schema.migrations_table.delete().where(
            schema.migrations_table.c.version > 2))
    engine.dispose()
    engine = open_engine(url)
    with engine.begin() as conn:
        jobs_columns = {r[1] for r in conn.execute(text("PRAGMA table_info(jobs)"))}
        attempts_columns = {r[1] for r in conn.execute(text("PRAGMA table_info(attempts)"))}
        assert schema.migrate(conn) == schema.VERSION
    engine.dispose()
    assert {"cause", "owners"} <= jobs_columns and "cause" in attempts_columns
