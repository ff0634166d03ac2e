"""The release profile for real, under the zig, host and container executors.

The optprobe fixture's recipe sets ``CFLAGS = "-Wall"``, which setuptools uses
*instead of* the interpreter's ``-O3``: the compile line the build backend
writes carries no ``-O`` at all (asserted from the job's log). The farm's
compiler wrappers must still ship an optimized module without sanitizer, and
the binary check must fail a build that really was ``-O0`` (``CFLAGS =
"-O0"``), naming the module. Optimization is proven three ways: the binary
check's verdict, the DWARF evidence read here, and the module itself (its
``optimized()`` reports ``__OPTIMIZE__``; the recipe's test asserts it).
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

from wheelfarm.build import debuginfo, quality

from .helpers import PROJECTS, container_engine, require, wheelfarm

pytestmark = pytest.mark.integration

# executor -> (target, python)
SETUPS = {
    "zig": ("manylinux_2_17_x86_64", "cp312"),
    "host": ("native", "cp312"),
    "container": ("manylinux_2_31_x86_64", "cp39"),
}
_TEST = "python -c 'import optprobe; assert optprobe.optimized(); assert optprobe.mix(10**5) >= 0'"


@dataclass
class Builds:
    executor: str
    plain: CompletedProcess[str]
    plain_out: Path
    o0: CompletedProcess[str]
    o0_out: Path
    farm: Path


def _recipe(farm: Path, executor: str, cflags: str) -> Path:
    target, python = SETUPS[executor]
    path = farm / "optprobe.toml"
    path.write_text(
        f'[package]\nname = "optprobe"\nversion = "0.1.0"\n'
        f'[source]\npath = "{PROJECTS / "optprobe"}"\n'
        f'[build]\ntargets = ["{target}"]\npythons = ["{python}"]\nexecutor = "{executor}"\n'
        f'env = {{CFLAGS = "{cflags}"}}\n'
        f'[test]\nimports = ["optprobe"]\ncommands = ["{_TEST}"]\n'
    )
    return path


def _needs(executor: str) -> None:
    if executor == "zig":
        from wheelfarm.build.executors.zig import find_zig

        if find_zig() is None:
            pytest.skip("zig (the ziglang package) is not installed")
    elif executor == "host":
        require("gcc")
    else:
        container_engine()


@pytest.fixture(scope="module", params=list(SETUPS))
def builds(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Builds:
    executor: str = request.param
    _needs(executor)
    results = []
    for cflags in ("-Wall", "-O0"):
        farm = tmp_path_factory.mktemp(f"{executor}{cflags}")
        recipe = _recipe(farm, executor, cflags)
        out = farm / "wheelhouse"
        result = wheelfarm("build", recipe, "--out", out, "--no-cache", "--farm", farm,
                           cwd=farm, timeout=1800)
        results.append((result, out, farm))
    (plain, plain_out, farm), (o0, o0_out, _) = results
    return Builds(executor, plain, plain_out, o0, o0_out, farm)


def _wheel(out: Path) -> Path:
    wheels = sorted(out.glob("optprobe-*.whl"))
    assert len(wheels) == 1, sorted(p.name for p in out.iterdir()) if out.exists() else out
    return wheels[0]


def _module(wheel: Path) -> tuple[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(".so")]
        assert len(names) == 1, names
        return names[0], zf.read(names[0])


def _log(farm: Path) -> str:
    logs = sorted((farm / ".wheelfarm" / "logs").rglob("optprobe-*.log"))
    assert logs, "no job log"
    return "\n".join(p.read_text() for p in logs)


def test_the_compile_line_carries_no_o_of_its_own(builds: Builds) -> None:
    """The premise: without the farm's wrappers this build would not be optimized."""
    assert builds.plain.returncode == 0, builds.plain.stdout[-4000:] + builds.plain.stderr
    lines = [line for line in _log(builds.farm).splitlines()
             if re.search(r"\s-c\s+src/optprobe\.c\b", line)]
    assert lines, "the backend's compile line is not in the log"
    for line in lines:
        assert not re.search(r"(?<!\S)-O\S*", line), line


def test_the_shipped_module_is_optimized_and_sanitizer_free(builds: Builds) -> None:
    assert builds.plain.returncode == 0, builds.plain.stdout[-4000:] + builds.plain.stderr
    wheel = _wheel(builds.plain_out)
    name, data = _module(wheel)
    elf = ELFFile(BytesIO(data))
    assert quality.sanitizer_traces(elf) == []
    symbols: list[Any] = []
    for section in elf.iter_sections():
        if section.name in (".symtab", ".dynsym"):
            symbols += [s.name for s in section.iter_symbols()]  # type: ignore[attr-defined]
    assert not [s for s in symbols if "ubsan" in s or "asan" in s]
    # The shipped module is stripped; the compiler's evidence went into its debug file.
    assert not debuginfo.dwarf_sections(BytesIO(data))
    build_id = debuginfo.build_id_of(BytesIO(data))
    assert build_id is not None
    debug = debuginfo.out_path(builds.plain_out, build_id).read_bytes()
    units = {unit: level for unit, level, _why
             in quality.unit_levels(ELFFile(BytesIO(debug)))}
    fixture_units = {u: lvl for u, lvl in units.items() if u.endswith("optprobe.c")}
    assert fixture_units, units
    if builds.executor == "zig":
        assert set(fixture_units.values()) == {"optimized"}, fixture_units
    else:
        # gcc recorded the switches it really compiled with: the wrapper's -O2.
        assert set(fixture_units.values()) == {"-O2"}, fixture_units
    report = quality.inspect(name, debug)
    assert report.problems() == [] and report.optimized >= 1
    assert "quality (release)" in _log(builds.farm)


def test_the_profile_is_in_the_provenance(builds: Builds) -> None:
    assert builds.plain.returncode == 0, builds.plain.stdout[-4000:] + builds.plain.stderr
    wheel = _wheel(builds.plain_out)
    statement = json.loads(wheel.with_name(wheel.name + ".intoto.json").read_text())
    params = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert params["profile"] == "release"


def test_a_real_O0_build_fails_the_check_naming_the_module(builds: Builds) -> None:
    shown = builds.o0.stdout + builds.o0.stderr
    assert builds.o0.returncode == 1, shown[-4000:]
    assert re.search(r"optprobe\.cpython-3\d+-x86_64-linux-gnu\.so", shown), shown[-4000:]
    assert "-O0" in shown, shown[-4000:]
    assert not list(builds.o0_out.glob("*.whl"))
