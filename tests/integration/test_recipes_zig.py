"""`make run`'s job for real: every recipe (the four fixtures and three PyPI
projects) built with the zig executor for manylinux2014 on two Pythons,
twice each (--check-reproducible), then installed from the generated index
with plain pip and tested, as a packager on another machine would. The same
build compares the PyPI projects with their upstream wheels and runs their
own test suites (one build for all of it: it is the suite's costliest step)."""

from __future__ import annotations

import email.parser
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    PROJECTS,
    RECIPES,
    isolated_pip_env,
    pip_install_from_index,
    python_for,
    wheelfarm,
)

pytestmark = pytest.mark.integration

TAG = re.compile(r"manylinux_2_(\d+)_x86_64|manylinux(2014|2010|1)_x86_64")
LEGACY = {"2014": 17, "2010": 12, "1": 5}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    farm = tmp_path_factory.mktemp("zigfarm")
    out = farm / "wheelhouse"
    result = wheelfarm("build", RECIPES, "--out", out, "--check-reproducible", "--jobs", "2",
                       "--json", farm / "report.json", cwd=farm, timeout=3600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    yield out


UPSTREAM = ("markupsafe", "msgpack", "ujson")


@pytest.fixture(scope="module")
def report(wheelhouse: Path) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = json.loads(
        (wheelhouse.parent / "report.json").read_text())["jobs"]
    return jobs


def test_the_pypi_recipes_match_their_upstream_wheels(report: list[dict[str, Any]]) -> None:
    compared = {}
    for job in report:
        parity = job["parity"]
        if job["recipe"] not in UPSTREAM:
            assert parity["upstream"] is None, parity  # the fixtures are not on PyPI
            continue
        compared[job["recipe"], job["python"]] = parity
        tag = job["python"]
        assert parity["upstream"].startswith(f"{job['recipe']}-") and f"-{tag}-{tag}-" in \
            parity["upstream"], parity["upstream"]
        assert parity["missing"] == [] and parity["modules"], parity
        assert all(m["farm_bytes"] for m in parity["modules"]), parity["modules"]
        assert parity["ratio"] is not None and parity["ratio"] <= parity["max_ratio"], parity
    assert sorted(compared) == [(n, t) for n in UPSTREAM for t in ("cp312", "cp39")]


def test_the_pypi_recipes_pass_their_own_test_suites(report: list[dict[str, Any]]) -> None:
    for job in report:
        if job["recipe"] not in UPSTREAM:
            continue
        log = Path(job["attempts"][0]["log"]).read_text()
        # {source} became the job's own extracted sdist, and pytest reported success.
        suite = "test" if job["recipe"] == "msgpack" else "tests"
        assert re.search(rf"--import-mode=importlib[^\n]*\n[^\n]*/src/{job['recipe']}-[\d.]+/"
                         rf"{suite}\b", log), job["recipe"]
        passed = re.findall(r"^(\d+) passed", log, re.MULTILINE)
        assert passed and int(passed[-1]) >= 50, (job["recipe"], job["python"], passed)
        assert not re.search(r"^\d+ failed|^FAILED ", log, re.MULTILINE)
        # Built twice (--check-reproducible), compared with upstream once.
        assert log.count("\n## build\n") == 2 and log.count("\n## parity\n") == 1


def _recipes() -> list[dict[str, object]]:
    return [tomllib.loads(p.read_text()) for p in sorted(RECIPES.glob("*.toml"))]


def _wheel_for(out: Path, name: str, tag: str) -> Path:
    found = [w for w in out.glob("*.whl")
             if w.name.split("-")[0].lower() == name.replace("-", "_").lower()
             and f"-{tag}-" in w.name]
    assert len(found) == 1, (name, tag, sorted(p.name for p in out.glob("*.whl")))
    return found[0]


def _glibc_of_tags(text: str) -> list[int]:
    return [int(m.group(1)) if m.group(1) else LEGACY[m.group(2)] for m in TAG.finditer(text)]


def test_every_recipe_and_python_has_a_manylinux2014_wheel(wheelhouse: Path) -> None:
    for recipe in _recipes():
        name = str(recipe["package"]["name"])  # type: ignore[index]
        for tag in recipe["build"]["pythons"]:  # type: ignore[index]
            wheel = _wheel_for(wheelhouse, name, tag)
            tags = _glibc_of_tags(wheel.name)
            assert tags and max(tags) <= 17, wheel.name
            shown = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)],
                                   capture_output=True, text=True, check=True).stdout
            consistent = _glibc_of_tags(shown.split("consistent with the following platform")[1])
            assert consistent and max(consistent) <= 17, shown


def test_cpp_wheels_need_no_libstdcxx(wheelhouse: Path) -> None:
    for name in ("cppvec", "ujson"):
        wheel = _wheel_for(wheelhouse, name, "cp312")
        with zipfile.ZipFile(wheel) as zf:
            libs = [n for n in zf.namelist() if n.endswith(".so") or ".so." in n]
            assert not [n for n in libs if "libstdc++" in n], libs
        shown = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)],
                               capture_output=True, text=True, check=True).stdout
        assert "libstdc++" not in shown


def test_each_build_was_reproducible_and_has_provenance(wheelhouse: Path) -> None:
    wheels = sorted(wheelhouse.glob("*.whl"))
    assert len(wheels) == 14
    for wheel in wheels:
        statement = json.loads((wheelhouse / (wheel.name + ".intoto.json")).read_text())
        assert statement["subject"][0]["name"] == wheel.name
        params = statement["predicate"]["buildDefinition"]
        assert params["externalParameters"]["executor"] == "zig"
        assert "zig" in params["internalParameters"]["toolchain"]["executor"]
    logs = list((wheelhouse.parent / ".wheelfarm" / "logs").rglob("*.log"))
    reproduced = [p for p in logs if "reproducible: both builds gave" in p.read_text()]
    assert len(reproduced) == 14


def _requires_dist(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(zf.read(meta).decode())
    return [r for r in message.get_all("Requires-Dist", []) if "extra ==" not in r]


@pytest.mark.parametrize("tag", ["cp39", "cp312"])
def test_installs_from_the_index_and_passes_its_tests(
        wheelhouse: Path, tmp_path: Path, tag: str) -> None:
    for recipe in _recipes():
        name = str(recipe["package"]["name"])  # type: ignore[index]
        venv = tmp_path / f"venv-{name}"
        wheel = _wheel_for(wheelhouse, name, tag)
        # Runtime dependencies (cffi) come from the public index first; the
        # package itself then only from the farm's index (no other index).
        deps = _requires_dist(wheel)
        subprocess.run([python_for(tag), "-m", "venv", venv], check=True)
        if deps:
            subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", *deps],
                           check=True)
        pip_install_from_index_no_deps(venv, wheelhouse / "simple", name)
        test = recipe.get("test", {})
        scratch = tmp_path / f"cwd-{name}"
        scratch.mkdir()
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
        for module in test.get("imports", []):  # type: ignore[union-attr]
            subprocess.run([venv / "bin" / "python", "-c", f"import {module}"], cwd=scratch,
                           check=True, env=env)
        for command in test.get("commands", []):  # type: ignore[union-attr]
            if "{source}" in command:
                continue  # the project's own suite needs its sdist: the farm ran it
            done = subprocess.run(["sh", "-c", command], cwd=scratch, env=env,
                                  capture_output=True, text=True)
            assert done.returncode == 0, (name, tag, command, done.stderr)


def pip_install_from_index_no_deps(venv: Path, index: Path, name: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir",
                    "--no-deps", "--index-url", index.as_uri(), name],
                   check=True, env=isolated_pip_env(), capture_output=True, text=True)


def test_manylinux_2_28_works_the_same_way(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for name in ("fastadd", "cppvec"):
        result = wheelfarm("build", RECIPES / f"{name}.toml", "--target", "manylinux_2_28_x86_64",
                           "--python", "cp312", "--out", out, cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        wheel = _wheel_for(out, name, "cp312")
        assert max(_glibc_of_tags(wheel.name)) <= 28
        venv = tmp_path / f"venv-{name}"
        pip_install_from_index("cp312", venv, out / "simple", name)
        subprocess.run([venv / "bin" / "python", "-c", f"import {name}"], cwd=tmp_path,
                       check=True)


def test_a_fresh_copy_of_the_source_builds_the_same_bytes(
        wheelhouse: Path, tmp_path: Path) -> None:
    clone = tmp_path / "elsewhere" / "fastadd"
    shutil.copytree(PROJECTS / "fastadd", clone)
    recipe = tmp_path / "fastadd.toml"
    recipe.write_text((RECIPES / "fastadd.toml").read_text().replace(
        'path = "../tests/fixtures/projects/fastadd"', f'path = "{clone}"'))
    out = tmp_path / "out"
    result = wheelfarm("build", recipe, "--python", "cp312", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    again = _wheel_for(out, "fastadd", "cp312")
    original = _wheel_for(wheelhouse, "fastadd", "cp312")
    assert again.name == original.name
    assert again.read_bytes() == original.read_bytes()
