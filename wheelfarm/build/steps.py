"""The build and test steps, run through a Place (whatever executor it came from)."""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from wheelfarm.build import buildenv
from wheelfarm.build.executors import Place
from wheelfarm.errors import BuildError, CommandError, CompileError, TestFailure
from wheelfarm.plan.recipe import Recipe, TestSpec

if TYPE_CHECKING:
    from wheelfarm.plan.jobs import Job
    from wheelfarm.plan.lockfile import LockedPython

# Run by the build environment's interpreter: asks the backend for its
# dynamic build requirements (PEP 517 get_requires_for_build_wheel).
_GET_REQUIRES = (
    "import build, json, sys\n"
    "reqs = build.ProjectBuilder(sys.argv[1]).get_requires_for_build('wheel')\n"
    "print('WHEELFARM-REQUIRES:' + json.dumps(sorted(reqs)))\n"
)


def build_requires(src: Path) -> list[str]:
    """``build-system.requires``, or the PEP 517 fallback for a setup.py project."""
    pyproject = src / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BuildError(f"{pyproject.name}: invalid TOML: {exc}") from None
        system = data.get("build-system")
        if system is not None:
            return [str(r) for r in system.get("requires", [])]
    return ["setuptools>=40.8.0"]


@dataclass(frozen=True)
class BuildEnv:
    path: Path
    requirements: tuple[str, ...]  # what was installed, for provenance
    locked: bool


def static_requirements(src: Path, recipe: Recipe) -> list[str]:
    """What a build needs before the backend is asked: the frontend, the
    source's ``build-system.requires`` and the recipe's ``build.requires``."""
    return ["build", *build_requires(src), *recipe.requires]


def backend_requires(place: Place, env_dir: Path, src: Path, env: Mapping[str, str]) -> list[str]:
    """The backend's dynamic build requirements (PEP 517 get_requires_for_build_wheel)."""
    out = place.run([str(env_dir / "bin" / "python"), "-c", _GET_REQUIRES, str(src)],
                    cwd=src, env=env, untrusted=True).stdout
    return _marked_json(out, "WHEELFARM-REQUIRES:")


def prepare_env(place: Place, job: Job, src: Path, work: Path, cache_dir: Path,
                extra_env: Mapping[str, str], locked: LockedPython | None, lock_index: str,
                strict: bool, log: IO[str]) -> BuildEnv:
    """The build environment: from the recipe's lock when there is a fresh one.

    A lock is stale when the requirements it was made from changed, or the
    backend now asks for something it does not pin. Strict mode (``--locked``)
    fails the job then; otherwise the build goes on unlocked, with a warning.
    """
    recipe = job.recipe
    static = static_requirements(src, recipe)
    if locked is not None:
        if sorted(static) != sorted(locked.static):
            reason = (f"the build requirements changed (locked: {', '.join(locked.static)}; "
                      f"now: {', '.join(static)})")
        else:
            env_dir = buildenv.ensure(place, job.python, locked.lines(), cache_dir, work,
                                      locked_index=lock_index)
            dynamic = backend_requires(place, env_dir, src,
                                       job_env(place, recipe.env, env_dir, extra_env))
            missing = locked.unsatisfied(dynamic)
            if not missing:
                return BuildEnv(env_dir, tuple(locked.lines()), True)
            reason = f"the build backend asks for {', '.join(missing)}, which the lock lacks"
        if strict:
            raise BuildError(f"stale lock for {recipe.name} ({job.python}): {reason}; "
                             f"run 'wheelfarm lock {recipe.path}'")
        log.write(f"warning: stale lock: {reason}; building unlocked\n")
    elif strict:
        raise BuildError(f"no lock for {recipe.name} ({job.python}); "
                         f"run 'wheelfarm lock {recipe.path}'")
    else:
        log.write("warning: no lock file; build requirements are resolved afresh\n")
    env_dir = buildenv.ensure(place, job.python, static, cache_dir, work)
    dynamic = backend_requires(place, env_dir, src,
                               job_env(place, recipe.env, env_dir, extra_env))
    if dynamic:
        env_dir = buildenv.ensure(place, job.python, [*static, *dynamic], cache_dir, work)
    return BuildEnv(env_dir, tuple(buildenv.installed(env_dir)), False)


def build_wheel(place: Place, job: Job, src: Path, work: Path, env_dir: Path,
                extra_env: Mapping[str, str]) -> Path:
    """Build one wheel with the PEP 517 frontend in ``env_dir`` (no isolation).

    The environment is made by :func:`prepare_env` rather than by ``build``'s
    isolation so the recipe's extra requirements and its lock go in, and so
    one set is installed once for every job that needs it.
    """
    recipe = job.recipe
    env = job_env(place, recipe.env, env_dir, extra_env)
    for command in recipe.before_build:
        place.run(["sh", "-c", command], cwd=src, env=env, untrusted=True)
    settings = []
    if recipe.abi3:
        settings.append(f"-C--build-option=--py-limited-api={recipe.abi3}")
    if recipe.build_number is not None:
        settings.append(f"-C--build-option=--build-number={recipe.build_number}")
    dist = work / "dist"
    try:
        place.run([str(env_dir / "bin" / "python"), "-m", "build", "--wheel", "--no-isolation",
                   "--skip-dependency-check", *settings, "--outdir", str(dist), str(src)],
                  cwd=src, env=env, untrusted=True)
    except CommandError as exc:
        raise CompileError(f"build failed: {_explain(exc)}") from exc
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one wheel from the build, found {len(wheels)}")
    return wheels[0]


def job_env(place: Place, recipe_env: tuple[tuple[str, str], ...], env_dir: Path,
               extra: Mapping[str, str]) -> dict[str, str]:
    toolchain = place.toolchain_env()
    # A toolchain's PATH (the farm's compiler wrappers) comes before the host's.
    path = [str(env_dir / "bin"), toolchain.pop("PATH", ""), os.environ.get("PATH", "")]
    return {
        **toolchain,
        **dict(recipe_env),
        **extra,  # the reproducibility flags, already merged with the recipe's
        "PATH": os.pathsep.join(p for p in path if p),
        "VIRTUAL_ENV": str(env_dir),
    }


def test_wheel(place: Place, tag: str, wheel: Path, spec: TestSpec, work: Path, *,
               source: Path | None = None) -> None:
    """Install ``wheel`` into a fresh venv of ``tag`` and run the recipe's tests there.

    Tests run in an empty directory so the source tree cannot shadow the
    installed wheel. The wheel is installed by path, so it cannot come from
    anywhere else; its dependencies and ``test.requires`` come from the index.
    ``{source}`` in a command is the job's extracted source tree (quoted), for
    running the project's own test suite against the installed wheel.
    """
    venv = work / f"test-{tag}"
    place.run([place.python(tag), "-m", "venv", "--without-pip", str(venv)], cwd=work)
    vpy = str(venv / "bin" / "python")
    try:
        place.install(venv, [str(wheel), *spec.requires], work)
    except CommandError as exc:
        raise TestFailure(f"installing {wheel.name} on {tag} failed: {_last(exc)}") from exc
    scratch = work / f"test-{tag}-cwd"
    scratch.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
    }
    checks = [[vpy, "-c", f"import {name}"] for name in spec.imports]
    where = shlex.quote(str(source)) if source is not None else "{source}"
    checks += [["sh", "-c", command.replace("{source}", where)] for command in spec.commands]
    for argv in checks:
        try:
            place.run(argv, cwd=scratch, env=env, untrusted=True)
        except CommandError as exc:
            shown = argv[-1]
            raise TestFailure(f"test on {tag} failed: {shown}: {_last(exc)}") from exc


# rustc's words when a cross build lacks the target's standard library.
_NO_STD = re.compile(r"the `([\w-]+)` target may not be installed")


def _explain(exc: CommandError) -> str:
    """The failure's last line, or what it means when it is a known cause."""
    if m := _NO_STD.search(exc.tail):
        triple = m.group(1)
        return (f"Rust's standard library for {triple} is not installed "
                f"(rustup target add {triple}); a Rust extension cannot be cross-built "
                f"for this target here")
    return _last(exc)


def _last(exc: CommandError) -> str:
    lines = [line for line in exc.tail.strip().splitlines() if line.strip()]
    return lines[-1] if lines else str(exc)


def _marked_json(output: str, marker: str) -> list[str]:
    for line in reversed(output.splitlines()):
        if line.startswith(marker):
            value = json.loads(line[len(marker):])
            return [str(v) for v in value]
    raise BuildError("the build backend did not report its requirements")


