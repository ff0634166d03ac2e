"""The build and test steps, run through a Place (whatever executor it came from)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from . import buildenv
from .errors import BuildError, CommandError, TestFailure
from .executors import Place
from .plan import Job
from .recipe import TestSpec

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


def build_wheel(place: Place, job: Job, src: Path, work: Path, cache_dir: Path,
                extra_env: Mapping[str, str]) -> tuple[Path, Path]:
    """Build one wheel with the PEP 517 frontend in a cached environment of our own.

    The environment is made here rather than by ``build``'s isolation so the
    recipe's extra requirements go in, and so the same set is installed once
    for every job that needs it (see :mod:`wheelfarm.buildenv`). Returns the
    wheel and the environment it was built in.
    """
    recipe = job.recipe
    static = ["build", *build_requires(src), *recipe.requires]
    env_dir = buildenv.ensure(place, job.python, static, cache_dir, work)
    out = place.run([str(env_dir / "bin" / "python"), "-c", _GET_REQUIRES, str(src)],
                    cwd=src, env=_build_env(place, recipe.env, env_dir, extra_env)).stdout
    dynamic = _marked_json(out, "WHEELFARM-REQUIRES:")
    if dynamic:
        env_dir = buildenv.ensure(place, job.python, [*static, *dynamic], cache_dir, work)
    env = _build_env(place, recipe.env, env_dir, extra_env)
    for command in recipe.before_build:
        place.run(["sh", "-c", command], cwd=src, env=env)
    settings = []
    if recipe.abi3:
        settings.append(f"-C--build-option=--py-limited-api={recipe.abi3}")
    if recipe.build_number is not None:
        settings.append(f"-C--build-option=--build-number={recipe.build_number}")
    dist = work / "dist"
    try:
        place.run([str(env_dir / "bin" / "python"), "-m", "build", "--wheel", "--no-isolation",
                   "--skip-dependency-check", *settings, "--outdir", str(dist), str(src)],
                  cwd=src, env=env)
    except CommandError as exc:
        raise BuildError(f"build failed: {_last(exc)}") from exc
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one wheel from the build, found {len(wheels)}")
    return wheels[0], env_dir


def _build_env(place: Place, recipe_env: tuple[tuple[str, str], ...], env_dir: Path,
               extra: Mapping[str, str]) -> dict[str, str]:
    return {
        **place.toolchain_env(),
        **dict(recipe_env),
        **extra,  # the reproducibility flags, already merged with the recipe's
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(env_dir),
    }


def test_wheel(place: Place, tag: str, wheel: Path, spec: TestSpec, work: Path) -> None:
    """Install ``wheel`` into a fresh venv of ``tag`` and run the recipe's tests there.

    Tests run in an empty directory so the source tree cannot shadow the
    installed wheel. The wheel is installed by path, so it cannot come from
    anywhere else; its dependencies and ``test.requires`` come from the index.
    """
    venv = work / f"test-{tag}"
    place.run([place.python(tag), "-m", "venv", "--without-pip", str(venv)], cwd=work)
    vpy = str(venv / "bin" / "python")
    try:
        place.run([*place.pip(), "--python", vpy, "install", "--disable-pip-version-check",
                   str(wheel), *spec.requires], cwd=work)
    except CommandError as exc:
        raise TestFailure(f"installing {wheel.name} on {tag} failed: {_last(exc)}") from exc
    scratch = work / f"test-{tag}-cwd"
    scratch.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
    }
    checks = [[vpy, "-c", f"import {name}"] for name in spec.imports]
    checks += [["sh", "-c", command] for command in spec.commands]
    for argv in checks:
        try:
            place.run(argv, cwd=scratch, env=env)
        except CommandError as exc:
            shown = argv[-1]
            raise TestFailure(f"test on {tag} failed: {shown}: {_last(exc)}") from exc


def _last(exc: CommandError) -> str:
    lines = [line for line in exc.tail.strip().splitlines() if line.strip()]
    return lines[-1] if lines else str(exc)


def _marked_json(output: str, marker: str) -> list[str]:
    for line in reversed(output.splitlines()):
        if line.startswith(marker):
            value = json.loads(line[len(marker):])
            return [str(v) for v in value]
    raise BuildError("the build backend did not report its requirements")


