"""wheelfarm.api called directly, as a program would: a real SQLite queue, real
recipes, real wheels (zip files written here); no subprocess."""

from __future__ import annotations

import ast
import json
import signal
import zipfile
from pathlib import Path

import pytest

from wheelfarm import api, errors
from wheelfarm.build import provenance, rebuild
from wheelfarm.build.archive import sha256_file
from wheelfarm.cli import main
from wheelfarm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FASTADD = ROOT / "tests" / "fixtures" / "projects" / "fastadd"


# -- the farm's operations ------------------------------------------------------------------


def test_submit_status_cancel_retry_on_a_real_queue(tmp_path: Path) -> None:
    done = api.submit(probes=api.Probes(2, seconds=0.1), farm_dir=tmp_path)
    assert (done.added, done.known) == (2, 0)
    jobs = api.status(farm_dir=tmp_path).jobs
    assert [j["state"] for j in jobs] == ["pending", "pending"]
    key = jobs[0]["key"]
    assert api.cancel(key[:10], farm_dir=tmp_path).key == key
    assert api.retry(key, farm_dir=tmp_path).key == key
    found = api.status(events=True, farm_dir=tmp_path)
    assert [j["state"] for j in found.jobs] == ["pending", "pending"]
    assert {e["kind"] for e in found.events} >= {"cancelled", "retried"}


def test_submit_refuses_bad_requests_naming_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to submit"):
        api.submit(farm_dir=tmp_path)
    with pytest.raises(ConfigError, match="not both"):
        api.submit([FASTADD], probes=api.Probes(1), farm_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^--python py3: "):
        api.submit(pythons=["py3"], probes=api.Probes(1), farm_dir=tmp_path)
    assert api.status(farm_dir=tmp_path).jobs == []


def test_the_log_of_a_job_that_has_not_run_is_a_config_error(tmp_path: Path) -> None:
    api.submit(probes=api.Probes(1), farm_dir=tmp_path)
    key = api.status(farm_dir=tmp_path).jobs[0]["key"]
    with pytest.raises(ConfigError, match=f"job {key[:12]} has not run yet"):
        api.job_log(key, farm_dir=tmp_path)


def test_a_worker_token_is_issued_per_name(tmp_path: Path) -> None:
    first = api.token("builder-1", farm_dir=tmp_path)
    assert first and first != api.token("builder-1", farm_dir=tmp_path)
    with pytest.raises(ConfigError, match="worker name"):
        api.token("no spaces", farm_dir=tmp_path)


# -- planning a build -----------------------------------------------------------------------


def test_plan_build_names_the_jobs_and_the_recipes_without_a_lock(tmp_path: Path) -> None:
    request = api.BuildRequest([FASTADD], farm_dir=tmp_path, targets=["native"],
                               pythons=["cp312"], executor="host")
    planned = api.plan_build(request)
    assert [j.id for j in planned.jobs] == ["fastadd-cp312-manylinux_auto_x86_64"]
    assert planned.added == [] and planned.unlocked == ["fastadd"]
    assert planned.config.root == tmp_path.resolve()


def test_plan_build_refuses_a_needs_cycle(tmp_path: Path) -> None:
    for name, needs in (("a", "b"), ("b", "a")):
        (tmp_path / f"{name}.toml").write_text(
            f'[package]\nname = "{name}"\nversion = "1.0"\n[source]\npath = "."\n'
            f'[build]\nneeds = ["{needs}"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="cycle"):
        api.plan_build(api.BuildRequest([tmp_path], farm_dir=tmp_path))


# -- rebuild: the provenance and the comparison --------------------------------------------


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return path


def _statement(wheel: Path, sha256: str) -> Path:
    params = {"recipe": {"path": "r.toml", "sha256": "d" * 64}, "target": "native",
              "python": "cp312", "executor": "host"}
    data = {"subject": [{"name": wheel.name, "digest": {"sha256": sha256}}],
            "predicate": {"buildDefinition": {"externalParameters": params}}}
    path = provenance.path_for(wheel)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_rebuild_reads_what_the_provenance_recorded(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "demo-1.0-cp312-cp312-linux_x86_64.whl", {"demo.py": b"x"})
    statement = _statement(wheel, sha256_file(wheel))
    for artifact in (wheel, statement):
        facts = rebuild.recorded(artifact)
        assert (facts.wheel, facts.python, facts.profile) == (wheel.name, "cp312", "release")
    other = _wheel(tmp_path / "other" / wheel.name, {"demo.py": b"x"})
    with pytest.raises(ConfigError, match="no provenance"):
        api.rebuild(other, farm_dir=tmp_path)
    statement.write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a wheelfarm provenance statement"):
        api.rebuild(wheel, farm_dir=tmp_path)


def test_rebuild_compares_bytes_and_names_the_members_that_differ(tmp_path: Path) -> None:
    original = _wheel(tmp_path / "demo-1.0-py3-none-any.whl", {"a.py": b"1", "b.py": b"2"})
    facts = rebuild.recorded(_statement(original, sha256_file(original)))
    same = _wheel(tmp_path / "same" / original.name, {"a.py": b"1", "b.py": b"2"})
    assert rebuild.compare(facts, same).identical
    changed = _wheel(tmp_path / "changed" / original.name, {"a.py": b"1", "b.py": b"3"})
    result = rebuild.compare(facts, changed)
    assert not result.identical and result.members == ["b.py"]
    original.unlink()  # nothing to compare member by member
    assert rebuild.compare(facts, changed).members is None


# -- the error tree and the one handler ---------------------------------------------------


def test_every_error_class_of_the_package_is_in_the_error_tree() -> None:
    tree = {name for name, value in vars(errors).items()
            if isinstance(value, type) and issubclass(value, Exception)}
    for path in (ROOT / "wheelfarm").rglob("*.py"):
        if path.name == "errors.py" and path.parent.name == "wheelfarm":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                         for b in node.bases}
                if bases & (tree | {"Exception", "BaseException"}):
                    raise AssertionError(f"{path}: class {node.name} is outside errors.py")


def test_exit_codes_come_from_the_error_classes() -> None:
    assert errors.JobsFailed().exit_code == errors.ChecksFailed().exit_code == 1
    assert errors.WheelRefused("x").exit_code == errors.ImmutableError("x").exit_code == 2
    stopped = errors.Interrupted(signal.SIGTERM)
    assert (stopped.exit_code, str(stopped)) == (128 + signal.SIGTERM, "interrupted (SIGTERM)")


def test_the_cli_renders_an_api_error_once(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "feed", "--farm", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: no job")
