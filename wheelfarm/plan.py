"""Planning: recipes x targets x pythons -> jobs, each with a content key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .config import FarmConfig
from .errors import ConfigError, RecipeError
from .executors import Executor
from .pythons import parse_tag
from .recipe import Recipe
from .targets import Target


@dataclass(frozen=True)
class Job:
    recipe: Recipe
    target: Target
    python: str  # the interpreter that builds the wheel
    executor: str
    test_pythons: tuple[str, ...]  # where the wheel is tested (several for abi3)
    key: str

    @property
    def id(self) -> str:
        return f"{self.recipe.name}-{self.python}-{self.target.name}"


@dataclass(frozen=True)
class Selection:
    """Command-line narrowing: replaces defaults, filters explicit recipe lists."""

    targets: tuple[Target, ...] = ()
    pythons: tuple[str, ...] = ()
    executor: str | None = None


def content_key(recipe: Recipe, target: Target, python: str, executor: str,
                toolchain: str, test_pythons: Sequence[str]) -> str:
    blob = json.dumps(
        {
            "recipe": recipe.digest(),
            "target": target.name,
            "python": python,
            "executor": executor,
            "toolchain": toolchain,
            "test": list(test_pythons),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _allowed(recipe: Recipe, tag: str) -> bool:
    if not recipe.requires_python:
        return True
    major, minor = parse_tag(tag)
    return SpecifierSet(recipe.requires_python).contains(Version(f"{major}.{minor}"))


def _narrow(explicit: Sequence[str] | None, default: Sequence[str],
            wanted: Sequence[str]) -> list[str]:
    if explicit is None:
        return list(wanted) if wanted else list(default)
    return [x for x in explicit if not wanted or x in wanted]


def make_plan(recipes: Sequence[Recipe], config: FarmConfig, selection: Selection,
              executors: Mapping[str, Executor], available: Sequence[str]) -> list[Job]:
    """Expand recipes into jobs; every check that needs no build happens here.

    ``executors`` holds an instance per executor name in use; ``available`` is
    the list of python tags the chosen executors can run.
    """
    wanted_targets = [t.name for t in selection.targets]
    jobs: list[Job] = []
    for recipe in recipes:
        explicit_t = [t.name for t in recipe.targets] if recipe.targets else None
        target_names = _narrow(explicit_t, [t.name for t in config.targets], wanted_targets)
        targets = [t for t in (*(recipe.targets or ()), *config.targets, *selection.targets)
                   if t.name in target_names]
        targets = list(dict.fromkeys(targets))
        default_pys = [p for p in (config.pythons or available) if _allowed(recipe, p)]
        pythons = _narrow(recipe.pythons, default_pys, selection.pythons)
        missing = [p for p in pythons if p not in available]
        if missing:
            found = ", ".join(available) or "none"
            where = "build.pythons" if recipe.pythons else "pythons"
            raise RecipeError(recipe.path, where,
                              f"{', '.join(missing)} not found on this machine (found: {found})")
        for target in targets:
            name = selection.executor or recipe.executor or config.executor_for(target)
            executor = executors.get(name)
            if executor is None:
                raise ConfigError(f"unknown executor {name!r}")
            try:
                executor.check(target)
            except ConfigError as exc:
                raise RecipeError(recipe.path, "build.targets", str(exc)) from None
            toolchain = executor.toolchain_id(target)
            if recipe.abi3:
                tests = tuple(p for p in pythons if parse_tag(p) >= parse_tag(recipe.abi3))
                if recipe.abi3 not in available:
                    raise RecipeError(recipe.path, "build.abi3",
                                      f"{recipe.abi3} not found on this machine")
                builds = [(recipe.abi3, tests or (recipe.abi3,))]
            else:
                builds = [(p, (p,)) for p in pythons]
            for python, tests in builds:
                key = content_key(recipe, target, python, name, toolchain, tests)
                jobs.append(Job(recipe, target, python, name, tuple(tests), key))
    return jobs


def executor_names(recipes: Sequence[Recipe], config: FarmConfig,
                   selection: Selection) -> set[str]:
    """Executors a plan may need, so that only those are instantiated."""
    if selection.executor:
        return {selection.executor}
    names = {r.executor for r in recipes if r.executor}
    targets = {*config.targets, *selection.targets}
    for r in recipes:
        targets.update(r.targets or ())
    names.update(config.executor_for(t) for t in targets)
    return names
