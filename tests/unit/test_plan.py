from __future__ import annotations

from pathlib import Path
from typing import IO

import pytest

from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.plan import jobs as plan
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.recipe import Recipe
from wheelfarm.plan.sourcespec import SourceSpec
from wheelfarm.plan.targets import Target, parse_target


class Planner:
    """An executor as the planner sees it: what it accepts and its toolchain id."""

    def __init__(self, name: str, accepts: str = "", toolchain: str = "tc1") -> None:
        self.name = name
        self.accepts = accepts
        self.toolchain = toolchain

    def check(self, target: Target) -> None:
        if self.accepts and not target.name.startswith(self.accepts):
            raise ConfigError(f"executor {self.name!r} cannot build {target}")

    def available_pythons(self) -> list[str]:
        return ["cp39", "cp310", "cp312"]

    def toolchain_id(self, target: Target) -> str:
        return self.toolchain

    def prepare(self, target: Target, cache_dir: Path, log: IO[str]) -> None:
        return None

    def open(self, ctx: object) -> object:
        raise AssertionError("planning never opens a place")


def make_recipe(tmp_path: Path, **kw: object) -> Recipe:
    fields: dict[str, object] = {
        "path": tmp_path / "r.toml", "name": "demo", "version": "1.0",
        "source": SourceSpec(kind="path", location=str(tmp_path)),
    }
    fields.update(kw)
    return Recipe(**fields)  # type: ignore[arg-type]


def run_plan(tmp_path: Path, recipes: list[Recipe], selection: plan.Selection | None = None,
             **executors: Planner) -> list[plan.Job]:
    farm = FarmConfig(root=tmp_path)
    execs = executors or {"zig": Planner("zig"), "host": Planner("host")}
    return plan.make_plan(recipes, farm, selection or plan.Selection(), execs,
                          ["cp39", "cp310", "cp312"])


def test_defaults_every_python_within_requires_python(tmp_path: Path) -> None:
    jobs = run_plan(tmp_path, [make_recipe(tmp_path, requires_python=">=3.10")])
    assert [(j.python, j.target.name, j.executor) for j in jobs] == [
        ("cp310", "manylinux_2_17_x86_64", "zig"), ("cp312", "manylinux_2_17_x86_64", "zig")]
    assert len({j.key for j in jobs}) == 2


def test_selection_replaces_recipe_lists_and_defaults(tmp_path: Path) -> None:
    r = make_recipe(tmp_path, pythons=("cp39", "cp312"))
    jobs = run_plan(tmp_path, [r], plan.Selection(pythons=("cp310",)))
    assert [j.python for j in jobs] == ["cp310"]
    assert [j.python for j in run_plan(tmp_path, [r])] == ["cp39", "cp312"]
    jobs = run_plan(tmp_path, [make_recipe(tmp_path)],
                    plan.Selection(targets=(parse_target("linux_x86_64"),), executor="host"))
    assert {(j.target.name, j.executor) for j in jobs} == {("linux_x86_64", "host")}


def test_missing_python_is_a_recipe_error(tmp_path: Path) -> None:
    r = make_recipe(tmp_path, pythons=("cp39", "cp313"))
    with pytest.raises(RecipeError, match=r"build.pythons: cp313 not found on this machine"):
        run_plan(tmp_path, [r])
    with pytest.raises(ConfigError, match=r"--python cp311 not found on this machine"):
        run_plan(tmp_path, [make_recipe(tmp_path)], plan.Selection(pythons=("cp311",)))


def test_executor_refusing_target_is_a_recipe_error(tmp_path: Path) -> None:
    r = make_recipe(tmp_path, targets=(parse_target("linux_x86_64"),))
    with pytest.raises(RecipeError, match=r"build\.targets: executor 'zig' cannot build"):
        run_plan(tmp_path, [r], plan.Selection(executor="zig"),
                 zig=Planner("zig", accepts="manylinux"))


def test_abi3_builds_once_and_tests_on_later_pythons(tmp_path: Path) -> None:
    jobs = run_plan(tmp_path, [make_recipe(tmp_path, abi3="cp310")])
    assert [(j.python, j.test_pythons) for j in jobs] == [("cp310", ("cp310", "cp312"))]


def test_key_changes_with_every_input(tmp_path: Path) -> None:
    base = run_plan(tmp_path, [make_recipe(tmp_path, pythons=("cp312",))])[0].key
    assert run_plan(tmp_path, [make_recipe(tmp_path, pythons=("cp312",))])[0].key == base
    changed = [
        run_plan(tmp_path, [make_recipe(tmp_path, pythons=("cp312",), env=(("A", "1"),))]),
        run_plan(tmp_path, [make_recipe(tmp_path, pythons=("cp312",), version="1.1")]),
        run_plan(tmp_path, [make_recipe(tmp_path, pythons=("cp312",))],
                 zig=Planner("zig", toolchain="tc2")),
    ]
    assert all(jobs[0].key != base for jobs in changed)


def test_a_bumped_pin_in_the_lock_changes_the_key(tmp_path: Path) -> None:
    from wheelfarm.plan import lockfile as lock

    recipe = make_recipe(tmp_path, pythons=("cp312",))
    unlocked = run_plan(tmp_path, [recipe])[0].key

    def write_lock(setuptools: str) -> None:
        pins = (lock.Pinned("build", "1.2.0", "a" * 64),
                lock.Pinned("setuptools", setuptools, "b" * 64))
        entry = lock.LockedPython(static=("build", "setuptools"), dynamic=(), packages=pins)
        lock.write(lock.Lock(lock.path_for(recipe), "https://index.invalid/simple/",
                             {"cp312": entry}))

    write_lock("70.0.0")
    locked = run_plan(tmp_path, [recipe])[0].key
    write_lock("70.0.1")
    bumped = run_plan(tmp_path, [recipe])[0].key
    assert len({unlocked, locked, bumped}) == 3
    with pytest.raises(RecipeError, match="not locked"):
        run_plan(tmp_path, [make_recipe(tmp_path, name="other", pythons=("cp312",),
                                        path=tmp_path / "other.toml")],
                 plan.Selection(locked=True))
