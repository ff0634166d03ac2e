"""CI as the worker pool, end to end: the commands of examples/github-actions.yml
run in order (plan -> one build per matrix entry on a fresh "runner" -> merge
-> publish), then shards, replanning, and GitHub's annotations."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from .helpers import PROJECTS, ROOT, require, wheelfarm

pytestmark = pytest.mark.integration

EXAMPLE = (ROOT / "examples" / "github-actions.yml").read_text()
PYTHONS = ["cp39", "cp312"]


def make_recipes(where: Path) -> Path:
    recipes = where / "recipes"
    recipes.mkdir(parents=True)
    for name, check in (("fastadd", "import fastadd; assert fastadd.add(2, 3) == 5"),
                        ("cffidemo", "import cffidemo; cffidemo.fnv1a_32(b'x')")):
        (recipes / f"{name}.toml").write_text(
            f'[package]\nname = "{name}"\nversion = "0.1.0"\n'
            f'[source]\npath = "{PROJECTS / name}"\n'
            f'[build]\ntargets = ["native"]\npythons = {PYTHONS!r}\n'
            f'[test]\ncommands = ["python -c \\"{check}\\""]\n')
    return recipes


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.glob("*.whl"))}


def outputs(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        found[key] = value
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One plain `wheelfarm build` of everything, to compare the CI route against."""
    farm = tmp_path_factory.mktemp("reference")
    make_recipes(farm)
    result = wheelfarm("build", "recipes/", "--out", "dist", cwd=farm)
    assert result.returncode == 0, result.stderr[-3000:]
    found = digests(farm / "dist")
    assert len(found) == 4
    yield found


def github_env(where: Path) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(where / "github-output"),
            "GITHUB_STEP_SUMMARY": str(where / "summary.md")}


def test_the_github_workflow_commands_in_order(
        tmp_path: Path, reference: dict[str, str]) -> None:
    planner = tmp_path / "planner"
    make_recipes(planner)
    env = github_env(planner)
    # plan job
    assert "wheelfarm plan recipes/ --format github" in EXAMPLE
    result = wheelfarm("plan", "recipes/", "--format", "github", cwd=planner, env=env)
    assert result.returncode == 0, result.stderr
    out = outputs(planner / "github-output")
    assert out["has-work"] == "true"
    entries = json.loads(out["matrix"])["include"]
    assert json.loads(result.stdout) == {"include": entries}
    assert len(entries) == 4 and all(e["runs-on"] == "ubuntu-latest" for e in entries)
    # build jobs, each on a fresh runner that has only the checkout
    assert 'wheelfarm build recipes/ --job "${{ matrix.id }}" --out "dist/${{ matrix.id }}"' \
        in EXAMPLE
    parts = planner / "parts"
    for entry in entries:
        runner = tmp_path / f"runner-{entry['id']}"
        make_recipes(runner)
        renv = github_env(runner)
        built = wheelfarm("build", "recipes/", "--job", entry["id"], "--out",
                          f"dist/{entry['id']}", "--json", f"dist/{entry['id']}.json",
                          cwd=runner, env=renv)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        assert f"::group::{entry['jobs']}" in built.stdout
        report = json.loads((runner / "dist" / f"{entry['id']}.json").read_text())
        assert [j["key"] for j in report["jobs"]] == entry["keys"].split()
        assert report["jobs"][0]["state"] == "succeeded"
        assert "| recipe | python | target | result |" in (runner / "summary.md").read_text()
        # upload-artifact of dist/, download-artifact with merge-multiple into parts/
        shutil.copytree(runner / "dist", parts, dirs_exist_ok=True)
    # publish job: merge (which records the wheels in the farm's cache)
    assert "wheelfarm merge parts/*/ --out dist/" in EXAMPLE
    merged = wheelfarm("merge", *sorted(p for p in parts.iterdir() if p.is_dir()),
                       "--out", "dist/", cwd=planner)
    assert merged.returncode == 0, merged.stderr
    assert digests(planner / "dist") == reference
    assert (planner / "dist" / "simple" / "fastadd" / "index.html").exists()
    _publish_if_possible(planner, tmp_path)
    # the next run of the workflow: nothing to build, and GitHub is told so
    (planner / "github-output").unlink()
    again = wheelfarm("plan", "recipes/", "--format", "github", cwd=planner, env=env)
    assert again.returncode == 0, again.stderr
    assert outputs(planner / "github-output")["has-work"] == "false"
    assert json.loads(again.stdout) == {"include": []}


def _publish_if_possible(planner: Path, tmp_path: Path) -> None:
    assert "wheelfarm publish dist/ --to" in EXAMPLE
    require("gpg")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    genv = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                    "wheelfarm CI test <ci@example.invalid>", "ed25519", "sign", "1d"],
                   env=genv, check=True, capture_output=True)
    listed = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"],
                            env=genv, check=True, capture_output=True, text=True).stdout
    keyid = next(line.split(":")[4] for line in listed.splitlines() if line.startswith("sec"))
    index = tmp_path / "published"
    done = wheelfarm("publish", "dist/", "--to", index, "--sign-key", keyid, cwd=planner,
                     env={"GNUPGHOME": str(home)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (index / "SHA256SUMS").exists()


def test_shards_merged_equal_one_build(tmp_path: Path, reference: dict[str, str]) -> None:
    parts = []
    for i in (1, 2):
        runner = tmp_path / f"shard{i}"
        make_recipes(runner)
        built = wheelfarm("build", "recipes/", "--shard", f"{i}/2", "--out", "dist",
                          cwd=runner)
        assert built.returncode == 0, built.stderr[-3000:]
        parts.append(runner / "dist")
    assert sum(len(digests(p)) for p in parts) == 4
    merged = wheelfarm("merge", *parts, "--out", tmp_path / "merged", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert digests(tmp_path / "merged") == reference


def test_replanning_after_a_change_lists_only_that_recipe(tmp_path: Path) -> None:
    farm = tmp_path / "farm"
    recipes = make_recipes(farm)
    first = wheelfarm("build", "recipes/", "--out", "dist", cwd=farm)
    assert first.returncode == 0, first.stderr[-3000:]
    plan = json.loads(wheelfarm("plan", "recipes/", cwd=farm).stdout)
    assert plan["jobs"] == []
    everything = json.loads(wheelfarm("plan", "recipes/", "--all", cwd=farm).stdout)
    assert {j["state"] for j in everything["jobs"]} == {"cached"}
    assert all(j["artifact"]["sha256"] for j in everything["jobs"])
    second = wheelfarm("build", "recipes/", "--out", "dist", cwd=farm)
    assert "4 of 4 jobs succeeded (4 from the cache)" in second.stdout
    recipe = recipes / "fastadd.toml"
    recipe.write_text(recipe.read_text().replace("[build]\n", '[build]\nenv = {CFLAGS = "-O1"}\n'))
    replanned = json.loads(wheelfarm("plan", "recipes/", cwd=farm).stdout)
    assert sorted((j["recipe"], j["python"]) for j in replanned["jobs"]) == [
        ("fastadd", "cp312"), ("fastadd", "cp39")]
    assert {j["state"] for j in replanned["jobs"]} == {"planned"}


def test_merge_refuses_two_different_files_with_one_name(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x-1.0-py3-none-any.whl").write_bytes(b"one")
    (b / "x-1.0-py3-none-any.whl").write_bytes(b"two")
    result = wheelfarm("merge", a, b, "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 1
    assert "x-1.0-py3-none-any.whl" in result.stderr and "differ" in result.stderr
    assert not (tmp_path / "out").exists()


def test_failures_are_annotated_for_github(tmp_path: Path) -> None:
    env = github_env(tmp_path)
    result = wheelfarm("build", ROOT / "recipes" / "fastadd.toml", "--executor", "host",
                       "--python", "cp312", "--out", "dist", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert f"::error file={ROOT / 'recipes' / 'fastadd.toml'}" in result.stdout
    assert "pow@GLIBC_2.29" in result.stdout
    assert "| fastadd | cp312 | manylinux_2_17_x86_64 | failed |" in (
        tmp_path / "summary.md").read_text()
    # where the examples' failure-log uploads look, relative to the checkout
    assert list((tmp_path / ".wheelfarm" / "logs").glob("*/fastadd-cp312-*.log"))


def test_gitlab_child_pipeline_runs_a_build_per_entry(tmp_path: Path) -> None:
    farm = tmp_path / "farm"
    make_recipes(farm)
    result = wheelfarm("plan", "recipes/", "--format", "gitlab", "--out", "dist",
                       "--publish-to", "s3://bucket/wheels", cwd=farm)
    assert result.returncode == 0, result.stderr
    pipeline = json.loads(result.stdout)
    builds = {k: v for k, v in pipeline.items() if k.startswith("build:")}
    assert len(builds) == 4
    for name, job in builds.items():
        entry = name.removeprefix("build:")
        assert job["script"] == [f"wheelfarm build recipes --job {entry} --out dist/{entry}"]
    assert pipeline["publish"]["needs"] == list(builds)
    assert "wheelfarm plan recipes/ --format gitlab" in (
        ROOT / "examples" / "gitlab-ci.yml").read_text()
    _check_gitlab_jobs(yaml.safe_load(result.stdout), farm)


def _check_gitlab_jobs(pipeline: dict[str, Any], farm: Path) -> None:
    """What GitLab would accept and still fail on: each generated job runs in an
    image, installs wheelfarm from somewhere pip can install it, keeps the
    toolchain cache where wheelfarm puts it, and keeps its logs when it fails."""
    jobs = {k: v for k, v in pipeline.items() if k not in ("stages", "variables")}
    assert {j["stage"] for j in jobs.values()} <= set(pipeline["stages"])
    cache_dir = pipeline["variables"]["WHEELFARM_CACHE_DIR"]
    for name, job in jobs.items():
        assert job["image"].startswith("quay.io/pypa/manylinux_2_28_"), name
        installs = [line for line in job["before_script"] if " pip install " in line]
        assert len(installs) == 1, name
        assert _requirement(installs[0], {"CI_PROJECT_DIR": str(farm)}).url == farm.as_uri()
        assert not [line for line in job["before_script"] if line.startswith("wheelfarm ")]
    for name, job in jobs.items():
        if not name.startswith("build:"):
            continue
        assert job["cache"]["paths"] == [cache_dir.removeprefix("$CI_PROJECT_DIR/") + "/"]
        assert job["cache"]["key"].startswith("wheelfarm-0.") and name
        assert ".wheelfarm/logs/" in job["artifacts"]["paths"]
        assert job["artifacts"]["when"] in ("always", "on_failure")
    publish = _requirement(next(line for line in jobs["publish"]["before_script"]
                                if " pip install " in line), {"CI_PROJECT_DIR": str(farm)})
    assert publish.extras == {"s3", "sign"}


def _requirement(line: str, env: dict[str, str]) -> Requirement:
    """The one requirement of a `pip install` line, expanded by a real shell in ``env``
    (with WHEELFARM_URL unset): a direct reference to wheelfarm, never a bare
    name that pip would look up on PyPI, where no wheelfarm is published."""
    words = shlex.split(line)
    args = [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    assert len(args) == 1, line
    assert "@" in args[0], f"{line}: names no URL to install from"
    spec = line.split('"')[1]
    shell_env = {k: v for k, v in os.environ.items() if k != "WHEELFARM_URL"}
    expanded = subprocess.run(["sh", "-c", f'printf %s "{spec}"'], env={**shell_env, **env},
                              check=True, capture_output=True, text=True).stdout
    requirement = Requirement(expanded)
    assert requirement.name == "wheelfarm" and requirement.url, expanded
    return requirement


def _github_workflows() -> dict[Path, dict[Any, Any]]:
    found = {}
    for path in sorted((ROOT / "examples").glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and "jobs" in data and (True in data or "on" in data):
            found[path] = data  # YAML 1.1 reads the key `on` as True
    return found


def test_the_github_examples_pass_actionlint() -> None:
    workflows = _github_workflows()
    assert ROOT / "examples" / "github-actions.yml" in workflows
    require("shellcheck")  # actionlint checks each run: script with it
    actionlint = Path(sys.executable).parent / "actionlint"
    result = subprocess.run([actionlint, "-no-color", *workflows], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_github_examples_would_run() -> None:
    """What actionlint accepts and GitHub would still fail on, or run unsafely."""
    workflows = _github_workflows()
    # the matrix workflow reads the repository only; any other says what it writes
    assert workflows[ROOT / "examples" / "github-actions.yml"]["permissions"] == {
        "contents": "read"}
    for path, workflow in workflows.items():
        assert isinstance(workflow["permissions"], dict), f"{path}: no explicit permissions"
        for name, job in workflow["jobs"].items():
            steps = job["steps"]
            runs = [s["run"] for s in steps if "run" in s]
            installs = [r for r in runs if "pip install" in r]
            assert len(installs) == 1, f"{path}: job {name} installs wheelfarm once"
            requirement = _requirement(installs[0], {"GITHUB_WORKSPACE": str(ROOT)})
            assert requirement.url == ROOT.as_uri()
            builds = [i for i, s in enumerate(steps) if "wheelfarm build " in s.get("run", "")]
            if not builds:
                continue
            caches = [s for s in steps if s.get("uses", "").startswith("actions/cache@")]
            assert [c["with"]["path"] for c in caches] == ["~/.cache/wheelfarm"], path
            key = caches[0]["with"]["key"]
            assert "hashFiles('recipes/**')" in key and "wheelfarm.outputs.version" in key
            assert caches[0]["with"]["restore-keys"]
            assert steps.index(caches[0]) < builds[0]
            logs = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")
                    and "failure()" in s.get("if", "")]
            assert [s["with"]["path"] for s in logs] == [".wheelfarm/logs/"], path
            assert steps.index(logs[0]) > builds[-1]


def test_the_gitlab_example_installs_wheelfarm_in_an_image() -> None:
    pipeline = yaml.safe_load((ROOT / "examples" / "gitlab-ci.yml").read_text())
    assert "variables" not in pipeline or "WHEELFARM_URL" not in pipeline["variables"]
    plan = pipeline["plan"]
    assert plan["image"].startswith("quay.io/pypa/manylinux_2_28_")
    install = next(line for line in plan["script"] if " pip install " in line)
    assert _requirement(install, {"CI_PROJECT_DIR": str(ROOT)}).url == ROOT.as_uri()
    assert pipeline["build"]["trigger"]["include"] == [
        {"artifact": "build-pipeline.yml", "job": "plan"}]
