"""CI matrices: entries, selection by entry id, shards, GitHub and GitLab formats."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from wheelfarm.errors import ConfigError
from wheelfarm.plan import matrix
from wheelfarm.plan.jobs import Job
from wheelfarm.plan.recipe import Recipe
from wheelfarm.plan.sourcespec import SourceSpec
from wheelfarm.plan.targets import Target, parse_target

X86 = parse_target("manylinux2014_x86_64")
ARM = parse_target("manylinux_2_28_aarch64")
PYTHONS = ("cp39", "cp310", "cp311", "cp312", "cp313")


def make_jobs(n: int, *, arm_every: int = 3, start: int = 0) -> list[Job]:
    """``n`` jobs with distinct ids and synthetic keys; every ``arm_every``-th is aarch64."""
    jobs = []
    for i in range(start, start + n):
        recipe = Recipe(path=Path(f"/recipes/p{i}.toml"), name=f"p{i}",
                        version="1.0", source=SourceSpec(kind="path", location="/src"))
        target = ARM if arm_every and i % arm_every == 0 else X86
        python = PYTHONS[i % 5]
        key = hashlib.sha256(str(i).encode()).hexdigest()
        # aarch64 by the host executor: built on an ARM machine, so an ARM runner.
        executor = "host" if target is ARM else "zig"
        jobs.append(Job(recipe, target, python, executor, (python,), key))
    return jobs


def job_ids(jobs: list[Job]) -> list[str]:
    return [j.id for j in jobs]


# -- groups -------------------------------------------------------------------------------


def test_make_jobs_gives_distinct_ids_and_keys() -> None:
    jobs = make_jobs(1200)
    assert len(set(job_ids(jobs))) == 1200
    assert len({j.key for j in jobs}) == 1200


@pytest.mark.parametrize("n", [0, 1, 17, 256])
def test_one_entry_per_job_up_to_the_limit(n: int) -> None:
    jobs = make_jobs(n)
    entries = matrix.groups(jobs)
    assert [g.id for g in entries] == job_ids(jobs)
    assert [g.jobs for g in entries] == [(j,) for j in jobs]
    assert [g.runner_class for g in entries] == [f"linux-{j.target.arch}" for j in jobs]
    assert {g.runs_on for g in entries} <= {"ubuntu-latest", "ubuntu-24.04-arm"}


def check_buckets(jobs: list[Job], entries: list[matrix.Group], limit: int = 256) -> None:
    assert len(entries) <= limit
    seen = Counter(j.id for g in entries for j in g.jobs)
    assert seen == Counter(job_ids(jobs))  # every job exactly once
    assert len({g.id for g in entries}) == len(entries)
    for g in entries:
        assert g.jobs, g.id
        assert {f"linux-{j.target.arch}" for j in g.jobs} == {g.runner_class}
        assert re.fullmatch(rf"{g.runner_class}-\d+of\d+", g.id)
        assert g.runs_on == {"linux-x86_64": "ubuntu-latest",
                             "linux-aarch64": "ubuntu-24.04-arm"}[g.runner_class]


@pytest.mark.parametrize(("n", "arm_every"), [(257, 3), (1000, 3), (3000, 2), (1500, 0),
                                              (1001, 1000)])
def test_many_jobs_fit_in_the_limit(n: int, arm_every: int) -> None:
    jobs = make_jobs(n, arm_every=arm_every)
    entries = matrix.groups(jobs)
    check_buckets(jobs, entries)
    assert {g.runner_class for g in entries} == {f"linux-{j.target.arch}" for j in jobs}


def test_a_smaller_limit_is_honoured() -> None:
    jobs = make_jobs(100)
    entries = matrix.groups(jobs, limit=10)
    check_buckets(jobs, entries, limit=10)


def test_shards_option_groups_per_runner_class() -> None:
    jobs = make_jobs(60)  # 20 aarch64, 40 x86_64
    entries = matrix.groups(jobs, shards=4)
    check_buckets(jobs, entries)
    per_class = Counter(g.runner_class for g in entries)
    assert per_class["linux-x86_64"] <= 4 and per_class["linux-aarch64"] <= 4
    assert all(g.id.endswith("of4") for g in entries)
    # Fewer jobs than shards in a class: no more buckets than jobs.
    two = make_jobs(2, arm_every=0)
    assert all(g.id.endswith("of2") for g in matrix.groups(two, shards=8))


# -- select -------------------------------------------------------------------------------


def test_select_by_job_id() -> None:
    jobs = make_jobs(40)
    for entry in matrix.groups(jobs):
        assert matrix.select(jobs, entry.id) == list(entry.jobs)


@pytest.mark.parametrize(("n", "shards"), [(1200, None), (60, 4), (300, 3)])
def test_select_by_bucket_id(n: int, shards: int | None) -> None:
    jobs = make_jobs(n)
    entries = matrix.groups(jobs, shards=shards)
    assert entries and all("of" in g.id for g in entries)
    some = random.Random(n).sample(entries, min(len(entries), 40))
    for entry in some:
        assert matrix.select(jobs, entry.id) == list(entry.jobs)
    # A matrix job replans; the same recipes give the same jobs in another order.
    shuffled = random.Random(1).sample(jobs, len(jobs))
    for entry in some:
        assert set(job_ids(matrix.select(shuffled, entry.id))) == set(job_ids(list(entry.jobs)))


@pytest.mark.parametrize("entry_id", [
    "nope", "", "p0-cp39-manylinux_2_17_x86_64-extra", "linux-x86_64-0of4",
    "linux-x86_64-5of4", "linux-x86_64-1of0", "linux-riscv64-1of2", "linux-x86_64-1of",
    "windows-x86_64-1of2",
])
def test_select_unknown_id_is_a_config_error(entry_id: str) -> None:
    jobs = make_jobs(20)
    with pytest.raises(ConfigError, match="no such job or matrix entry") as info:
        matrix.select(jobs, entry_id)
    assert info.value.exit_code == 2


# -- shard --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_shards_partition_the_jobs(n: int) -> None:
    jobs = make_jobs(500)
    parts = [matrix.shard(jobs, f"{i}/{n}") for i in range(1, n + 1)]
    ids = [j.id for part in parts for j in part]
    assert sorted(ids) == sorted(job_ids(jobs))  # union is everything, nothing twice
    assert len(ids) == len(set(ids))
    if n > 1:
        assert all(parts), "500 jobs leave no shard empty"


def test_shards_are_stable_when_jobs_go_away() -> None:
    jobs = make_jobs(400)
    before = {j.id: i for i in range(1, 6) for j in matrix.shard(jobs, f"{i}/5")}
    remaining = random.Random(2).sample(jobs, 150)
    after = {j.id: i for i in range(1, 6) for j in matrix.shard(remaining, f"{i}/5")}
    assert set(after) == set(job_ids(remaining))
    assert all(after[name] == before[name] for name in after)


def test_shard_spec_allows_spaces_around() -> None:
    jobs = make_jobs(30)
    assert matrix.shard(jobs, " 2/3 ") == matrix.shard(jobs, "2/3")


@pytest.mark.parametrize("spec", ["0/4", "5/4", "1/0", "0/0", "4", "a/b", "", "-1/3",
                                  "1/2/3", "1 / 2", "1/-2", "x1/2"])
def test_bad_shard_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="expected i/N"):
        matrix.shard(make_jobs(5), spec)


# -- formats ------------------------------------------------------------------------------


def test_github_matrix_shape() -> None:
    jobs = make_jobs(4)
    doc = matrix.github_matrix(matrix.groups(jobs))
    assert list(doc) == ["include"]
    assert doc["include"] == [
        {"id": j.id, "runs-on": "ubuntu-24.04-arm" if j.target.arch == "aarch64"
         else "ubuntu-latest", "keys": j.key, "jobs": j.id}
        for j in jobs
    ]
    assert json.loads(json.dumps(doc)) == doc


def test_github_matrix_of_buckets_lists_every_key() -> None:
    jobs = make_jobs(600)
    entries = matrix.groups(jobs)
    doc = matrix.github_matrix(entries)
    assert len(doc["include"]) == len(entries)
    for row, entry in zip(doc["include"], entries, strict=True):
        assert row["id"] == entry.id
        assert row["runs-on"] == entry.runs_on
        assert row["keys"].split(" ") == [j.key for j in entry.jobs]
        assert row["jobs"].split(" ") == [j.id for j in entry.jobs]
    assert matrix.github_matrix([]) == {"include": []}


def test_gitlab_pipeline_without_entries_still_has_a_job() -> None:
    doc = json.loads(matrix.gitlab_pipeline([], ["recipes/"], "dist"))
    stages = doc.pop("stages")
    doc.pop("variables")
    assert len(doc) == 1
    (only,) = doc.values()
    assert only["stage"] in stages
    assert only["script"]
    assert not any("wheelfarm build" in line for line in only["script"])


def test_gitlab_pipeline_one_job_per_entry() -> None:
    jobs = make_jobs(700)
    entries = matrix.groups(jobs)
    text = matrix.gitlab_pipeline(entries, ["recipes/", "--python=cp312", "my recipes"], "dist")
    assert text.endswith("\n")
    doc = json.loads(text)
    assert "build" in doc.pop("stages")
    assert doc.pop("variables") == {"WHEELFARM_CACHE_DIR": "$CI_PROJECT_DIR/.cache/wheelfarm"}
    assert list(doc) == [f"build:{g.id}" for g in entries]
    for entry in entries:
        job = doc[f"build:{entry.id}"]
        assert job["stage"] == "build"
        assert job["tags"] == [entry.runner_class]
        assert job["script"] == [
            f'wheelfarm build recipes/ --python=cp312 "my recipes" --job {entry.id} '
            f"--out dist/{entry.id}"]
        assert job["artifacts"] == {"paths": [f"dist/{entry.id}/", ".wheelfarm/logs/"],
                                    "when": "always"}
        assert job["cache"] == {"key": f"wheelfarm-{entry.runner_class}",
                                "paths": [".cache/wheelfarm/"]}


def test_gitlab_jobs_run_in_an_image_of_their_arch_and_install_wheelfarm() -> None:
    linux = [_job("manylinux_2_17_x86_64", "zig", 0), _job("manylinux_2_17_aarch64", "zig", 1),
             _job("manylinux_2_31_x86_64", "container", 2), _job("macosx_11_0_arm64", "host", 3)]
    entries = matrix.groups(linux, native=True)
    doc = json.loads(matrix.gitlab_pipeline(entries, ["recipes/"], "dist", "s3://b/p",
                                            cache_key="wheelfarm-0.1.0-abc"))
    images = {name: job.get("image") for name, job in doc.items() if name.startswith("build:")}
    assert images == {
        "build:m0-cp312-manylinux_2_17_x86_64": "quay.io/pypa/manylinux_2_28_x86_64",
        "build:m1-cp312-manylinux_2_17_aarch64": "quay.io/pypa/manylinux_2_28_aarch64",
        "build:m2-cp312-manylinux_2_31_x86_64": "quay.io/pypa/manylinux_2_28_x86_64",
        "build:m3-cp312-macosx_11_0_arm64": None,  # a Mac's shell runner
    }
    installs = {name: next(line for line in job["before_script"] if "pip install" in line)
                for name, job in doc.items() if isinstance(job, dict) and "before_script" in job}
    url = "${WHEELFARM_URL:-file://$CI_PROJECT_DIR}"
    assert installs["build:m0-cp312-manylinux_2_17_x86_64"].endswith(f'"wheelfarm @ {url}"')
    assert installs["build:m2-cp312-manylinux_2_31_x86_64"].endswith(
        f'"wheelfarm[containers] @ {url}"')
    assert installs["publish"].endswith(f'"wheelfarm[s3,sign] @ {url}"')
    assert doc["build:m1-cp312-manylinux_2_17_aarch64"]["cache"]["key"] == \
        "wheelfarm-0.1.0-abc-linux-aarch64"
    chosen = json.loads(matrix.gitlab_pipeline(entries, ["recipes/"], "dist", image="my/image"))
    assert {job.get("image") for name, job in chosen.items() if name.startswith("build:")} == {
        "my/image", None}


# -- macOS and cross runners --------------------------------------------------------------

MAC_ARM = parse_target("macosx_11_0_arm64")
MAC_X86 = parse_target("macosx_10_13_x86_64")


def _job(target_name: str, executor: str, i: int = 0, key: str | None = None) -> Job:
    recipe = Recipe(path=Path(f"/recipes/m{i}.toml"), name=f"m{i}", version="1.0",
                    source=SourceSpec(kind="path", location="/src"))
    return Job(recipe, parse_target(target_name), "cp312", executor, ("cp312",),
               key or hashlib.sha256(f"{target_name}{i}{executor}".encode()).hexdigest())


def test_macos_jobs_go_to_current_macos_runners() -> None:
    jobs = [_job("macosx_11_0_arm64", "zig"), _job("macosx_10_13_x86_64", "zig")]
    entries = matrix.groups(jobs)
    assert [g.runner_class for g in entries] == ["macos-arm64", "macos-x86_64"]
    # macos-13, the last Intel image, was retired in December 2025.
    assert [g.runs_on for g in entries] == ["macos-15", "macos-15-intel"]
    assert "macos-13" not in matrix.RUNNERS.values()


def test_zig_aarch64_jobs_cross_build_unless_native_runners_are_asked_for() -> None:
    job = _job("manylinux_2_17_aarch64", "zig")
    (cross,) = matrix.groups([job])
    assert (cross.runner_class, cross.runs_on) == ("cross-aarch64", "ubuntu-latest")
    (native,) = matrix.groups([job], native=True)
    assert (native.runner_class, native.runs_on) == ("linux-aarch64", "ubuntu-24.04-arm")


@pytest.mark.parametrize("native", [False, True])
def test_select_finds_buckets_of_cross_native_and_macos_classes(native: bool) -> None:
    jobs = [_job(t, "zig", i) for i in range(30)
            for t in ("manylinux_2_17_aarch64", "macosx_11_0_arm64", "manylinux_2_17_x86_64")]
    entries = matrix.groups(jobs, shards=3, native=native)
    assert {g.runner_class for g in entries} == {
        "linux-aarch64" if native else "cross-aarch64", "macos-arm64", "linux-x86_64"}
    for entry in entries:
        assert matrix.select(jobs, entry.id) == list(entry.jobs)


def test_a_macos_bucket_does_not_depend_on_the_planning_machines_key() -> None:
    # Planned on Linux (zig) or on the Mac that builds it (host): other keys, same bucket.
    on_linux = [_job("macosx_11_0_arm64", "zig", i) for i in range(50)]
    on_mac = [_job("macosx_11_0_arm64", "host", i) for i in range(50)]
    assert [j.key for j in on_linux] != [j.key for j in on_mac]
    assert [matrix.bucket(j, 7) for j in on_linux] == [matrix.bucket(j, 7) for j in on_mac]


# -- build.needs: units ---------------------------------------------------------------------


def _needing(name: str, needs: tuple[str, ...], python: str, target: Target = X86) -> Job:
    recipe = Recipe(path=Path(f"/recipes/{name}.toml"), name=name, version="1.0",
                    source=SourceSpec(kind="path", location="/src"), needs=needs)
    key = hashlib.sha256(f"{name}:{python}:{target.name}".encode()).hexdigest()
    return Job(recipe, target, python, "zig", (python,), key)


def _needs_plan() -> list[Job]:
    """app and tool both need base (per python); lone needs nothing."""
    return [_needing(name, needs, py) for py in ("cp311", "cp312") for name, needs in (
        ("app", ("base",)), ("lone", ()), ("tool", ("base",)), ("base", ()))]


def test_jobs_joined_by_needs_share_one_entry() -> None:
    jobs = _needs_plan()
    entries = matrix.groups(jobs)
    assert sorted(sorted(j.recipe.name for j in g.jobs) for g in entries) == [
        ["app", "base", "tool"], ["app", "base", "tool"], ["lone"], ["lone"]]
    for g in entries:
        assert len({(j.target.name, j.python) for j in g.jobs}) == 1  # one target and python
        assert g.id == min(j.id for j in g.jobs)
        # Any member's id selects the whole unit, so no entry builds base a second time.
        for job in g.jobs:
            assert matrix.select(jobs, job.id) == list(g.jobs)


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_buckets_and_shards_keep_a_unit_whole(shards: int) -> None:
    jobs = [*_needs_plan(), *make_jobs(30)]
    for parts in ([list(g.jobs) for g in matrix.groups(jobs, shards=shards)],
                  [matrix.shard(jobs, f"{i}/{shards}") for i in range(1, shards + 1)]):
        keys = [j.key for part in parts for j in part]
        assert sorted(keys) == sorted(j.key for j in jobs)  # each job once
        for part in parts:
            names = {(j.recipe.name, j.python) for j in part}
            for py in ("cp311", "cp312"):
                together = {(n, py) for n in ("app", "base", "tool")}
                assert together <= names or not together & names
