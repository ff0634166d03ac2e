"""aarch64 and musllinux wheels cross-built by zig on this x86_64 machine,
repaired and checked as their target, and RUN: aarch64 under qemu-user in an
emulated Debian rootfs (cp39 on bullseye, cp311 on bookworm), musllinux on a
CPython built against musl. The places are made by images/emulation/prepare.sh
(`make emulation`; CI starts it in the background in .ci/setup.d/70-emulation.sh,
and these tests wait for it). One build of the C and C++ fixtures serves the
whole session. Binaries that contradict their tag fail their job, by name."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wheelfarm.build import testplaces
from wheelfarm.build.policy import check_policy
from wheelfarm.errors import PolicyError
from wheelfarm.plan.targets import parse_target

from ..conftest import in_ci
from .helpers import RECIPES, wheelfarm

pytestmark = [pytest.mark.integration, pytest.mark.emulation]

PLACES = ("aarch64-bullseye", "aarch64-bookworm", "musl-cp311")
TARGETS = ("manylinux_2_17_aarch64", "musllinux_1_2_x86_64", "musllinux_1_2_aarch64")
PYTHONS = ("cp39", "cp311")
# Where each (target, python) must have run: the place's name, or None for
# "built and checked, not run" (musl CPython is 3.11 only; no aarch64 musl place).
RUNS_IN = {
    ("manylinux_2_17_aarch64", "cp39"): "aarch64-bullseye",
    ("manylinux_2_17_aarch64", "cp311"): "aarch64-bookworm",
    ("musllinux_1_2_x86_64", "cp311"): "musl-cp311",
    ("musllinux_1_2_x86_64", "cp39"): None,
    ("musllinux_1_2_aarch64", "cp39"): None,
    ("musllinux_1_2_aarch64", "cp311"): None,
}
# CI prepares the places in the background while the suite runs.
WAIT = float(os.environ.get("WHEELFARM_EMULATION_WAIT", "3000" if in_ci() else "0"))


@pytest.fixture(scope="session")
def places() -> dict[str, Path]:
    found = {}
    for name in PLACES:
        root = testplaces.wait_prepared(name, WAIT)
        if root is None:
            pytest.skip(f"{name} is not prepared: {testplaces.PREPARE_HINT}")
        found[name] = root
    if testplaces.qemu_binary("aarch64") is None:
        pytest.skip("qemu-aarch64-static is not installed: " + testplaces.PREPARE_HINT)
    return found


@pytest.fixture(scope="session")
def cross_build(places: dict[str, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One farm run: fastadd (C) and cppvec (C++) for three targets, two Pythons."""
    farm = tmp_path_factory.mktemp("crossfarm")
    out = farm / "wheelhouse"
    argv: list[str | Path] = ["build", RECIPES / "fastadd.toml", RECIPES / "cppvec.toml",
                              "--out", out, "--jobs", "2", "--json", farm / "report.json",
                              # a cached wheel keeps the test status it was built with
                              "--no-cache"]
    for target in TARGETS:
        argv += ["--target", target]
    for python in PYTHONS:
        argv += ["--python", python]
    result = wheelfarm(*argv, cwd=farm, timeout=3600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    report = json.loads((farm / "report.json").read_text())
    yield {"out": out, "jobs": report["jobs"], "stdout": result.stdout}


def _test_result(out: Path, filename: str) -> dict[str, Any]:
    statement = json.loads((out / f"{filename}.intoto.json").read_text())
    result: dict[str, Any] = statement["predicate"]["runDetails"]["testResult"]
    return result


def test_every_job_is_built_repaired_and_tagged_as_its_target(
        cross_build: dict[str, Any]) -> None:
    jobs = cross_build["jobs"]
    assert len(jobs) == 2 * len(TARGETS) * len(PYTHONS)
    for job in jobs:
        assert job["state"] == "succeeded", job
        name = job["artifact"]["filename"]
        target = job["target"]
        if target == "manylinux_2_17_aarch64":
            assert name.endswith("-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"), name
        else:
            assert name.endswith(f"-{target}.whl"), name
        wheel = cross_build["out"] / name
        check_policy(wheel, parse_target(target))  # the farm's own check, as the target


def test_the_fixtures_tests_ran_in_the_emulated_and_musl_places(
        cross_build: dict[str, Any]) -> None:
    for job in cross_build["jobs"]:
        place = RUNS_IN[job["target"], job["python"]]
        status = _test_result(cross_build["out"], job["artifact"]["filename"])
        log = Path(job["attempts"][-1]["log"]).read_text()
        if place is None:
            assert status["status"] == testplaces.NOT_RUN, (job["target"], status)
            assert "tested" not in status["status"]
            assert f"test on {job['python']}: built and checked, not run" in log
        else:
            assert status["status"] == testplaces.TESTED, (job["target"], status)
            assert f"in {place}" in status["note"], status
            assert f"test on {job['python']}: in {place}" in log
            # The recipe's imports and commands ran there (the C++ one checks that a
            # std::invalid_argument came back as ValueError): venv, pip, then each.
            spec = tomllib.loads((RECIPES / f"{job['recipe']}.toml").read_text())["test"]
            section = log.split("## test", 1)[1].split("## parity", 1)[0]
            ran = [line for line in section.splitlines() if line.startswith("+ ")]
            assert len(ran) == 2 + len(spec["imports"]) + len(spec["commands"]), section


def test_a_musl_module_is_renamed_to_musls_soname(cross_build: dict[str, Any]) -> None:
    from wheelfarm.build import wheelscan

    for job in cross_build["jobs"]:
        if job["target"].startswith("musllinux"):
            arch = "x86_64" if job["target"].endswith("x86_64") else "aarch64"
            for elf in wheelscan.scan_wheel(cross_build["out"] / job["artifact"]["filename"]):
                assert "libc.so" not in elf.needed, elf
                assert f"libc.musl-{arch}.so.1" in elf.needed, elf
                assert elf.member.endswith("-linux-musl.so"), elf.member


def _retagged(wheel: Path, dest: Path, platform: str) -> Path:
    """The same wheel under another platform tag (the binary left as it is)."""
    head = wheel.name.removesuffix(".whl").split("-")
    out = dest / ("-".join(head[:4]) + f"-{platform}.whl")
    shutil.copy(wheel, out)
    return out


def test_an_aarch64_module_in_an_x86_64_wheel_is_named(cross_build: dict[str, Any],
                                                       tmp_path: Path) -> None:
    arm = next(cross_build["out"].glob("fastadd-*-cp311-*manylinux_2_17_aarch64.whl"))
    lying = _retagged(arm, tmp_path, "manylinux_2_17_x86_64")
    with pytest.raises(PolicyError) as err:
        check_policy(lying, parse_target("manylinux_2_17_x86_64"))
    assert ("fastadd.cpython-311-aarch64-linux-gnu.so built for aarch64, not x86_64"
            in str(err.value))


def test_a_glibc_module_in_a_musllinux_wheel_is_named(cross_build: dict[str, Any],
                                                      tmp_path: Path) -> None:
    arm = next(cross_build["out"].glob("cppvec-*-cp311-*manylinux_2_17_aarch64.whl"))
    lying = _retagged(arm, tmp_path, "musllinux_1_2_aarch64")
    with pytest.raises(PolicyError) as err:
        check_policy(lying, parse_target("musllinux_1_2_aarch64"))
    assert "linked against glibc, not musl (libc.so.6)" in str(err.value)


def test_a_glibc_build_for_a_musllinux_target_fails_its_job(tmp_path: Path) -> None:
    """The host's gcc makes glibc modules: the job fails at repair, naming why
    (musl's loader would even import it, so only the binary tells)."""
    result = wheelfarm("build", RECIPES / "fastadd.toml", "--target", "musllinux_1_2_x86_64",
                       "--executor", "host", "--python", "cp311", "--out", tmp_path / "out",
                       "--no-cache", cwd=tmp_path, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "failed (repair)" in output
    assert ("fastadd.cpython-311-x86_64-linux-gnu.so linked against glibc, not musl "
            "(libc.so.6)") in output


def test_the_wheels_are_real_zip_files(cross_build: dict[str, Any]) -> None:
    for job in cross_build["jobs"]:
        with zipfile.ZipFile(cross_build["out"] / job["artifact"]["filename"]) as zf:
            assert zf.testzip() is None


def test_rust_for_aarch64_fails_saying_the_std_is_missing(tmp_path: Path) -> None:
    """rustup cannot fetch the aarch64 std here: the job says so, no fake wheel."""
    rustc = shutil.which("rustc")
    if rustc is None:
        pytest.skip("no Rust toolchain")
    import subprocess

    sysroot = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True,
                             check=True).stdout.strip()
    if (Path(sysroot) / "lib" / "rustlib" / "aarch64-unknown-linux-gnu").is_dir():
        pytest.skip("this machine has Rust's aarch64 std: the cross build would work")
    result = wheelfarm("build", RECIPES / "rustsum.toml", "--target", "manylinux_2_17_aarch64",
                       "--python", "cp311", "--out", tmp_path / "out", "--no-cache",
                       cwd=tmp_path, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert ("Rust's standard library for aarch64-unknown-linux-gnu is not installed "
            "(rustup target add aarch64-unknown-linux-gnu)") in output
    assert not list((tmp_path / "out").glob("*.whl"))
