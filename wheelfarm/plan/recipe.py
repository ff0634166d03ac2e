"""Recipes: which upstream project to build, pinned by hash, and how.

A recipe is a TOML file; a project directory with a ``pyproject.toml`` is an
implicit recipe (its ``[tool.wheelfarm]`` table may hold ``build`` and
``test`` sections). Every check that can fail before a build starts happens
here, and names the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.plan import cibw, tracking
from wheelfarm.plan import tomlshape as schema
from wheelfarm.plan.profiles import MODES, PROFILES, DebugSymbols, parse_mode
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.sourcespec import SourceSpec, location_problem
from wheelfarm.plan.targets import Target, parse_target

_BUILD: schema.Schema = {
    "targets": "list[str]",
    "pythons": "list[str]",
    "requires": "list[str]",
    "env": "dict[str,str]",
    "before-build": "list[str]",
    "abi3": str,
    "executor": str,
    "toolchains": "list[str]",
    "timeout": float,
    "number": int,
    "network": bool,
    "needs": "list[str]",
    "max-attempts": int,
    "source-date-epoch": int,
    "profile": str,
    "debug-symbols": str,
}
_TEST: schema.Schema = {"imports": "list[str]", "commands": "list[str]", "requires": "list[str]",
                        "bench": str, "bench-command": str, "bench-max-ratio": float}
RECIPE_SCHEMA: schema.Schema = {
    "package": {"name": str, "version": str, "owners": "list[str]", "track": str},
    "source": {"path": str, "pypi": bool, "url": str, "git": str, "rev": str, "sha256": str},
    "build": _BUILD,
    "test": _TEST,
}
_TOOL_SCHEMA: schema.Schema = {"build": _BUILD, "test": _TEST, "owners": "list[str]"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_REV = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@dataclass(frozen=True)
class TestSpec:
    __test__ = False  # not a pytest class
    imports: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    # Timed against upstream's wheel (see wheelfarm.build.parity): Python, or a shell command.
    bench: str | None = None
    bench_command: str | None = None
    bench_max_ratio: float | None = None  # None: parity.DEFAULT_MAX_RATIO


@dataclass(frozen=True)
class Recipe:
    path: Path
    name: str
    version: str
    source: SourceSpec
    targets: tuple[Target, ...] | None = None  # None: the farm's defaults
    pythons: tuple[str, ...] | None = None  # None: every CPython found, within requires_python
    requires: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    before_build: tuple[str, ...] = ()
    abi3: str | None = None
    executor: str | None = None
    # build.toolchains: executors tried in turn; the job key holds the chain, not the digest
    toolchains: tuple[str, ...] | None = None
    timeout: float | None = None
    build_number: int | None = None  # the PEP 427 build tag, for a rebuild of one version
    source_date_epoch: int | None = None  # else taken from the source (see reproducible)
    network: bool = False  # the build may reach the network (containers run without one)
    test: TestSpec = field(default_factory=TestSpec)
    requires_python: str | None = None
    needs: tuple[str, ...] = ()  # normalized names of farm recipes whose wheels the build uses
    max_attempts: int | None = None  # None: the queue's default; not part of the content key
    profile: str | None = None  # build.profile; None: release (the job key holds the effective one)
    debug_symbols: DebugSymbols = "split"  # see wheelfarm.build.debuginfo
    # Who is told when it fails (package.owners): names, @handles or addresses;
    # not part of the content key.
    owners: tuple[str, ...] = ()
    track: str | None = None  # which upstream releases `outdated` proposes (plan.tracking)
    warnings: tuple[str, ...] = ()  # settings read but not used (cibuildwheel's), for the CLI

    @property
    def label(self) -> str:
        return self.name

    def digest(self) -> str:
        """Hash of every setting that can change the built wheel (not the file's location).

        Computed once per recipe object: a plan asks for it for every job, and a
        path source's identity hashes its whole tree.
        """
        cached = self.__dict__.get("_digest")
        if cached is not None:
            return str(cached)
        # How often to try is scheduling, not an input of the wheel.
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)
                                if f.name not in ("path", "max_attempts", "profile", "owners",
                                                  "track", "warnings", "toolchains")}
        data["test"] = asdict(self.test)
        data["source"] = self.source.identity()
        data["targets"] = [t.name for t in self.targets] if self.targets else None
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        digest = hashlib.sha256(blob).hexdigest()
        self.__dict__["_digest"] = digest  # a frozen dataclass still has a __dict__
        return digest


def _toolchains(path: Path, where: str, build: dict[str, Any]) -> tuple[str, ...] | None:
    names = build.get("toolchains")
    if names is None:
        return None
    if "executor" in build:
        raise RecipeError(path, f"{where}.toolchains",
                          "give either build.executor or build.toolchains, not both")
    if not names or len(set(names)) != len(names):
        raise RecipeError(path, f"{where}.toolchains",
                          "expected executors to try in turn, each once")
    return tuple(names)


def load(path: Path) -> Recipe:
    """Load a recipe file, or a project directory as an implicit recipe."""
    if path.is_dir():
        if not (path / "pyproject.toml").is_file() and not (path / "setup.py").is_file():
            raise RecipeError(path, None, "not a project (no pyproject.toml or setup.py)")
        return _load_project(path)
    return _from_data(path, schema.load_toml(path))


def loads(text: str, path: Path) -> Recipe:
    """A recipe from its TOML text, read as if it were the file ``path``.

    A queue stores a recipe's text so a worker builds exactly what was
    submitted; relative ``source.path`` values still resolve against ``path``
    and must exist where this runs. A project's ``pyproject.toml`` is loaded
    from its directory, which must exist here.
    """
    if path.name == "pyproject.toml":
        return load(path.parent)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(path, None, f"invalid TOML: {exc}") from None
    return _from_data(path, data)


def _from_data(path: Path, data: dict[str, Any]) -> Recipe:
    schema.check(data, RECIPE_SCHEMA, path)
    package = data.get("package", {})
    for key in ("name", "version"):
        if key not in package:
            raise RecipeError(path, f"package.{key}", "required")
    name = _check_name(path, "package.name", package["name"])
    version = _check_version(path, "package.version", package["version"])
    source = _source(path, data.get("source", {}), name, version)
    track = package.get("track")
    problem = tracking.check(track) if track is not None else None
    if problem is not None:
        raise RecipeError(path, "package.track", problem)
    recipe = _with_build_and_test(path, name, version, source, data,
                                  _local_requires_python(source))
    return replace(recipe, track=track,
                   owners=_owners(path, "package.owners", package.get("owners", ())))


def _owners(path: Path, key: str, owners: Sequence[str]) -> tuple[str, ...]:
    # They reach notifications and pages: one short printable word each.
    for owner in owners:
        if not 0 < len(owner) <= 100 or not owner.isprintable() or any(
                c.isspace() for c in owner):
            raise RecipeError(path, key, f"{owner[:100]!r}: expected a name, @handle or "
                              "address without spaces")
    return tuple(dict.fromkeys(owners))


def _local_requires_python(source: SourceSpec) -> str | None:
    """A path source's Requires-Python, so planning skips Pythons it excludes."""
    if source.kind != "path":
        return None
    pyproject = Path(source.location) / "pyproject.toml"
    if not pyproject.is_file():
        return None
    value = schema.load_toml(pyproject).get("project", {}).get("requires-python")
    return str(value) if value else None


def _load_project(directory: Path) -> Recipe:
    pyproject = directory / "pyproject.toml"
    data = schema.load_toml(pyproject) if pyproject.is_file() else {}
    project = data.get("project", {})
    # Checked like a recipe's package.name: it becomes part of log and work paths.
    name = _check_name(pyproject, "project.name", str(project.get("name") or
                                                      directory.resolve().name))
    version = str(project.get("version") or "dynamic")
    tool = data.get("tool", {}).get("wheelfarm", {})
    schema.check(tool, _TOOL_SCHEMA, pyproject, "tool.wheelfarm.")
    # cibuildwheel's settings are a migration source, below [tool.wheelfarm] (plan.cibw).
    tool, warnings = cibw.merge(tool, cibw.migrate(data, os.environ, pyproject), pyproject)
    source = SourceSpec(kind="path", location=str(directory.resolve()))
    requires_python = project.get("requires-python")
    recipe = _with_build_and_test(pyproject, name, version, source, tool, requires_python)
    return replace(recipe, warnings=warnings,
                   owners=_owners(pyproject, "tool.wheelfarm.owners", tool.get("owners", ())))


def _with_build_and_test(path: Path, name: str, version: str, source: SourceSpec,
                         data: dict[str, Any], requires_python: str | None) -> Recipe:
    prefix = "tool.wheelfarm." if path.name == "pyproject.toml" else ""
    build = data.get("build", {})
    test = data.get("test", {})
    targets = None
    if "targets" in build:
        targets = tuple(_target(path, f"{prefix}build.targets", t) for t in build["targets"])
        if not targets:
            raise RecipeError(path, f"{prefix}build.targets", "must not be empty")
    pythons = None
    if "pythons" in build:
        pythons = tuple(_python(path, f"{prefix}build.pythons", p) for p in build["pythons"])
        if not pythons:
            raise RecipeError(path, f"{prefix}build.pythons", "must not be empty")
    abi3 = _python(path, f"{prefix}build.abi3", build["abi3"]) if "abi3" in build else None
    number = build.get("number")
    if number is not None and number < 0:
        raise RecipeError(path, f"{prefix}build.number", "must be a non-negative integer")
    max_attempts = build.get("max-attempts")
    if max_attempts is not None and max_attempts < 1:
        raise RecipeError(path, f"{prefix}build.max-attempts", "must be at least 1")
    profile = build.get("profile")
    if profile is not None and profile not in PROFILES:
        raise RecipeError(path, f"{prefix}build.profile",
                          f"{profile!r}: expected one of {', '.join(PROFILES)}")
    timeout = build.get("timeout")
    if timeout is not None and timeout <= 0:
        raise RecipeError(path, f"{prefix}build.timeout", "must be a positive number of seconds")
    if "bench" in test and "bench-command" in test:
        raise RecipeError(path, f"{prefix}test.bench-command",
                          "give test.bench (Python) or test.bench-command, not both")
    max_ratio = test.get("bench-max-ratio")
    if max_ratio is not None and max_ratio <= 0:
        raise RecipeError(path, f"{prefix}test.bench-max-ratio", "must be a positive number")
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            raise RecipeError(path, "project.requires-python", "invalid specifier") from None
    return Recipe(
        path=path,
        name=name,
        version=version,
        source=source,
        targets=targets,
        pythons=pythons,
        requires=_requirements(path, f"{prefix}build.requires", build.get("requires", ())),
        env=tuple(sorted(build.get("env", {}).items())),
        before_build=tuple(build.get("before-build", ())),
        abi3=abi3,
        executor=build.get("executor"),
        toolchains=_toolchains(path, f"{prefix}build", build),
        timeout=float(timeout) if timeout is not None else None,
        build_number=number,
        source_date_epoch=build.get("source-date-epoch"),
        network=build.get("network", False),
        test=TestSpec(
            imports=tuple(test.get("imports", ())),
            commands=tuple(test.get("commands", ())),
            requires=_requirements(path, f"{prefix}test.requires", test.get("requires", ())),
            bench=test.get("bench"),
            bench_command=test.get("bench-command"),
            bench_max_ratio=float(max_ratio) if max_ratio is not None else None,
        ),
        requires_python=requires_python,
        needs=tuple(canonicalize_name(_check_name(path, f"{prefix}build.needs", n))
                    for n in build.get("needs", ())),
        max_attempts=max_attempts,
        profile=profile,
        debug_symbols=_debug_symbols(path, f"{prefix}build.debug-symbols",
                                     build.get("debug-symbols")),
    )


def _source(path: Path, table: dict[str, Any], name: str, version: str) -> SourceSpec:
    kinds = [k for k in ("path", "pypi", "url", "git") if k in table]
    if table.get("pypi") is False:
        kinds.remove("pypi")
    if not kinds:
        raise RecipeError(path, "source", "missing; give exactly one of path, pypi, url, git")
    if len(kinds) > 1:
        raise RecipeError(path, "source", f"two sources ({' and '.join(kinds)}); give exactly one")
    kind = kinds[0]
    sha = table.get("sha256")
    if sha is not None and not _SHA256.match(sha.lower()):
        raise RecipeError(path, "source.sha256", "expected 64 hexadecimal digits")
    if kind == "pypi" and sha is None:
        raise RecipeError(path, "source.sha256", "required with source.pypi; pin the index's "
                          f"hash with 'wheelfarm bump {path} --to {version}' (keeps the rest "
                          f"of the recipe) or 'wheelfarm add {name}=={version} --dir "
                          f"{path.parent} --force' (writes a new one)")
    if kind == "url" and sha is None:
        raise RecipeError(path, "source.sha256", "required with source.url")
    if "rev" in table and kind != "git":
        raise RecipeError(path, "source.rev", "only valid with source.git")
    if kind == "path":
        where = (path.parent / table["path"]).resolve()
        if not where.is_dir():
            raise RecipeError(path, "source.path", f"no such directory: {where}")
        return SourceSpec(kind="path", location=str(where))
    if kind == "git":
        rev = table.get("rev")
        if rev is None:
            raise RecipeError(path, "source.rev", "required with source.git (a full commit id)")
        if not _GIT_REV.match(rev):
            raise RecipeError(path, "source.rev", "expected a full 40-digit commit id")
        problem = location_problem(table["git"])
        if problem is not None:
            raise RecipeError(path, "source.git", problem)
        return SourceSpec(kind="git", location=table["git"], rev=rev)
    if kind == "url":
        url = table["url"]
        if not url.startswith(("https://", "http://", "file://")):
            raise RecipeError(path, "source.url", "expected an http(s):// or file:// URL")
        return SourceSpec(kind="url", location=url, sha256=sha.lower() if sha else None)
    return SourceSpec(kind="pypi", location="", sha256=sha.lower() if sha else None,
                      name=name, version=version)


def _debug_symbols(path: Path, key: str, value: str | None) -> DebugSymbols:
    try:
        return parse_mode(value, key)
    except ConfigError:
        raise RecipeError(path, key, f"must be one of {', '.join(map(repr, MODES))}, "
                          f"not {value!r}") from None


def _check_name(path: Path, key: str, value: str) -> str:
    if not _NAME.match(value):
        raise RecipeError(path, key, f"{value!r} is not a valid project name")
    return value


def _requirements(path: Path, key: str, values: list[str]) -> tuple[str, ...]:
    # Requirements reach pip's command line: data, never an option (-r, --index-url ...).
    for value in values:
        if value.strip().startswith("-"):
            raise RecipeError(path, key, f"{value!r} is an option, not a requirement")
    return tuple(values)


def _check_version(path: Path, key: str, value: str) -> str:
    try:
        Version(value)
    except InvalidVersion:
        raise RecipeError(path, key, f"{value!r} is not a valid version") from None
    return value


def _target(path: Path, key: str, value: str) -> Target:
    try:
        return parse_target(value)
    except ConfigError as exc:
        raise RecipeError(path, key, str(exc)) from None


def _python(path: Path, key: str, value: str) -> str:
    try:
        parse_tag(value)
    except ConfigError as exc:
        raise RecipeError(path, key, str(exc)) from None
    return value


def normalized_name(recipe: Recipe) -> str:
    return canonicalize_name(recipe.name)


def discover(paths: list[Path], *, load_file: Callable[[Path], Recipe] | None = None
             ) -> list[Recipe]:
    """Recipes from files, project directories and directories of ``*.toml`` files.

    ``load_file`` reads one recipe file (default :func:`load`; a
    :class:`~wheelfarm.plan.recipememo.RecipeMemo` skips unchanged files).
    """
    read = load_file or load
    recipes: list[Recipe] = []
    for path in paths:
        if path.is_dir() and not (path / "pyproject.toml").exists() \
                and not (path / "setup.py").exists():
            files = sorted(path.glob("*.toml"))
            if not files:
                raise ConfigError(f"{path}: no recipes (*.toml) and no pyproject.toml here")
            recipes.extend(read(f) for f in files if f.name != "wheelfarm.toml")
        elif not path.exists():
            raise ConfigError(f"{path}: no such file or directory")
        else:
            recipes.append(read(path) if path.is_file() else load(path))
    seen: dict[str, Path] = {}
    for r in recipes:
        other = seen.setdefault(canonicalize_name(r.name), r.path)
        if other != r.path:
            raise RecipeError(r.path, "package.name",
                              f"{r.name!r} is also defined by {other}")
    return recipes
