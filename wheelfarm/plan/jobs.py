"""Planning: recipes x targets x pythons -> jobs, each with a content key."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.plan import lockfile as lock
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.profiles import DEFAULT_PROFILE, PROFILES
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.recipe import Recipe
from wheelfarm.plan.targets import Target, parse_target


class Toolchains(Protocol):
    """What planning asks of an executor (the build wing's executors are these):
    whether it can build a target, and the identity of that toolchain, which
    is part of every job's key."""

    def check(self, target: Target) -> None: ...

    def toolchain_id(self, target: Target) -> str: ...

_T = TypeVar("_T")


@dataclass(frozen=True)
class Job:
    recipe: Recipe
    target: Target
    python: str  # the interpreter that builds the wheel
    executor: str
    test_pythons: tuple[str, ...]  # where the wheel is tested (several for abi3)
    key: str
    profile: str = "release"  # build profile: the command line's, else the recipe's
    # Executors tried in turn after ``executor`` when its build step fails to compile
    # (build.toolchains); the key covers the whole chain.
    fallbacks: tuple[str, ...] = ()

    @property
    def chain(self) -> tuple[str, ...]:
        return (self.executor, *self.fallbacks)

    @property
    def id(self) -> str:
        return f"{self.recipe.name}-{self.python}-{self.target.name}"


@dataclass(frozen=True)
class Selection:
    """Command-line choice of targets, pythons and executor; it replaces what the
    recipes and the farm config would pick (a developer asking for cp313 on
    manylinux_2_28 gets exactly that)."""

    targets: tuple[Target, ...] = ()
    pythons: tuple[str, ...] = ()
    executor: str | None = None
    locked: bool = False  # every job must have a lock entry (``--locked``)
    profile: str | None = None  # ``--profile``; None: the recipe's (default release)

    @classmethod
    def parse(cls, targets: Sequence[str], pythons: Sequence[str], executor: str | None,
              locked: bool = False, profile: str | None = None) -> Selection:
        """From command-line values; a bad one is a ConfigError naming its flag."""
        for tag in pythons:
            _flag("--python", parse_tag, tag)
        if profile is not None and profile not in PROFILES:
            raise ConfigError(f"--profile {profile}: expected one of {', '.join(PROFILES)}")
        return cls(targets=tuple(_flag("--target", parse_target, t) for t in targets),
                   pythons=tuple(pythons), executor=executor, locked=locked, profile=profile)


def _flag(flag: str, parse: Callable[[str], _T], value: str) -> _T:
    try:
        return parse(value)
    except ConfigError as exc:
        raise ConfigError(f"{flag} {value}: {exc}") from None


def content_key(recipe_digest: str, target: Target, python: str, executor: str,
                toolchain: str, test_pythons: Sequence[str], lock_digest: str = "",
                profile: str = DEFAULT_PROFILE) -> str:
    """sha256 of everything that can change a job's wheel."""
    # Fields joined by a separator none of them contains (digests are hex,
    # tags and names have no newline); cheaper than JSON for 15,000 jobs.
    parts = ["v1", recipe_digest, lock_digest, target.name, python, executor, toolchain,
             " ".join(test_pythons)]
    if profile != DEFAULT_PROFILE:
        parts.append(f"profile={profile}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _allowed(recipe: Recipe, tag: str) -> bool:
    if not recipe.requires_python:
        return True
    major, minor = parse_tag(tag)
    return SpecifierSet(recipe.requires_python).contains(Version(f"{major}.{minor}"))


def _choose(explicit: Sequence[str] | None, default: Sequence[str],
            wanted: Sequence[str]) -> list[str]:
    if wanted:
        return list(wanted)
    return list(explicit) if explicit is not None else list(default)


def pythons_for(recipe: Recipe, config: FarmConfig, selection: Selection,
                available: Sequence[str]) -> list[str]:
    """The pythons a recipe builds for: the command line's, the recipe's, or the
    farm's defaults within the project's Requires-Python."""
    default = [p for p in (config.pythons or available) if _allowed(recipe, p)]
    return _choose(recipe.pythons, default, selection.pythons)


def make_plan(recipes: Sequence[Recipe], config: FarmConfig, selection: Selection,
              executors: Mapping[str, Toolchains], available: Sequence[str]) -> list[Job]:
    """Expand recipes into jobs; every check that needs no build happens here.

    ``executors`` holds an instance per executor name in use; ``available`` is
    the list of python tags the chosen executors can run.
    """
    jobs: list[Job] = []
    # (executor, target) -> toolchain id, or the check's error: asked once per plan,
    # not once per recipe (a farm of 1,000 recipes shares a handful of pairs).
    toolchains: dict[tuple[str, str], str | ConfigError] = {}
    chosen: dict[Target, tuple[str, ...]] = {}  # the farm's chain per target
    for recipe in recipes:
        recipe_lock = lock.load(recipe)
        digest = recipe.digest()
        targets = list(selection.targets or recipe.targets or config.targets)
        pythons = pythons_for(recipe, config, selection, available)
        missing = [p for p in pythons if p not in available]
        if missing:
            found = ", ".join(available) or "none"
            what = f"{', '.join(missing)} not found on this machine (found: {found})"
            if selection.pythons:
                raise ConfigError(f"--python {what}")
            if recipe.pythons:
                raise RecipeError(recipe.path, "build.pythons", what)
            raise RecipeError(config.root / "wheelfarm.toml", "pythons", what)
        for target in targets:
            chain = _chain(recipe, config, selection, target, chosen)
            idents = []
            for name in chain:
                executor = executors.get(name)
                if executor is None:
                    raise ConfigError(f"unknown executor {name!r}")
                toolchain = toolchains.get((name, target.name))
                if toolchain is None:
                    try:
                        executor.check(target)
                        toolchain = executor.toolchain_id(target)
                    except ConfigError as exc:
                        toolchain = exc
                    toolchains[(name, target.name)] = toolchain
                if isinstance(toolchain, ConfigError):
                    raise RecipeError(recipe.path, "build.targets", str(toolchain))
                idents.append(toolchain)
            # One executor keeps the key it always had; a chain's key names every link.
            name, toolchain = ",".join(chain), " | ".join(idents)
            if recipe.abi3:
                tests = tuple(p for p in pythons if parse_tag(p) >= parse_tag(recipe.abi3))
                if recipe.abi3 not in available:
                    raise RecipeError(recipe.path, "build.abi3",
                                      f"{recipe.abi3} not found on this machine")
                builds = [(recipe.abi3, tests or (recipe.abi3,))]
            else:
                builds = [(p, (p,)) for p in pythons]
            for python, tests in builds:
                locked = recipe_lock.digest(python) if recipe_lock else ""
                if selection.locked and not locked:
                    raise RecipeError(lock.path_for(recipe), python,
                                      "not locked; run 'wheelfarm lock' (--locked is strict)")
                profile = selection.profile or recipe.profile or DEFAULT_PROFILE
                key = content_key(digest, target, python, name, toolchain, tests, locked,
                                  profile)
                jobs.append(Job(recipe, target, python, chain[0], tuple(tests), key, profile,
                                chain[1:]))
    return jobs


def _chain(recipe: Recipe, config: FarmConfig, selection: Selection, target: Target,
           chosen: dict[Target, tuple[str, ...]]) -> tuple[str, ...]:
    """The executors a job tries in turn: ``--executor`` pins one; then the recipe's
    ``build.executor`` or ``build.toolchains``; then the farm's ``[toolchains]``
    or its executor for the target."""
    if selection.executor:
        return (selection.executor,)
    if recipe.executor:
        return (recipe.executor,)
    if recipe.toolchains:
        return recipe.toolchains
    if target not in chosen:
        chosen[target] = config.toolchains_for(target)
    return chosen[target]


def executor_names(recipes: Sequence[Recipe], config: FarmConfig,
                   selection: Selection) -> set[str]:
    """Executors a plan may need, so that only those are instantiated."""
    if selection.executor:
        return {selection.executor}
    names: set[str] = set()
    for r in recipes:
        if r.executor:
            names.add(r.executor)
        elif r.toolchains:
            names.update(r.toolchains)
        else:
            for t in selection.targets or r.targets or config.targets:
                names.update(config.toolchains_for(t))
    return names
