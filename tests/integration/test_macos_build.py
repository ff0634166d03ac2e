"""macOS wheels from this Linux machine, the way a user builds them: ``wheelfarm build
--target macosx_...`` cross-builds the C fixture for Intel Macs and the C++ fixture for
Apple silicon with zig, retags and Mach-O-checks them, and says "built and checked,
not run" in the table, the JSON report, the provenance and the published index.
A wheel whose binary contradicts its tag fails its job with the reason named.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wheelfarm.build import macho
from wheelfarm.build.executors.zig import find_zig
from wheelfarm.build.testplaces import NOT_RUN
from wheelfarm.plan.targets import parse_target

from .helpers import RECIPES, python_for, wheelfarm
from .publish_support import Key, make_key

pytestmark = pytest.mark.integration

BUILDS = (("fastadd", "macosx_10_13_x86_64"), ("cppvec", "macosx_11_0_arm64"))


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(wheelhouse, {recipe: (table output, its job in the --json report)})."""
    if find_zig() is None:
        pytest.skip("zig (pip install ziglang) is needed for macOS cross builds")
    python_for("cp312")
    work = tmp_path_factory.mktemp("macfarm")
    out = work / "wheelhouse"
    found: dict[str, Any] = {}
    for recipe, target in BUILDS:
        report = work / f"{recipe}.json"
        # The C fixture twice: a module keeps no path or time of the build that made it.
        again = ["--check-reproducible"] if recipe == "fastadd" else []
        shown = _ok(wheelfarm("build", RECIPES / f"{recipe}.toml", "--target", target,
                              "--python", "cp312", "--out", out, "--json", report, *again,
                              cwd=work, timeout=3600))
        (job,) = json.loads(report.read_text())["jobs"]
        found[recipe] = (shown, job)
    yield out, found


def test_the_jobs_say_built_and_checked_not_run(built: tuple[Path, dict[str, Any]]) -> None:
    _out, found = built
    for recipe, target in BUILDS:
        shown, job = found[recipe]
        assert (job["target"], job["state"], job["test"]["status"]) == (
            target, "succeeded", NOT_RUN)
        assert "a macOS binary cannot run on linux" in job["test"]["note"]
        assert any(target in line and NOT_RUN in line for line in shown.splitlines())
        log = Path(job["attempts"][0]["log"]).read_text()
        test_step = log.split("\n## test\n", 1)[1].split("\n## ", 1)[0]
        assert test_step.startswith(f"test on cp312: {NOT_RUN}: a macOS binary cannot run on "
                                    "linux")
        assert "import " not in test_step  # nothing was installed or imported
        assert "\n## parity\n" not in log  # upstream's wheel would not run either
        assert "mach-o: " in log and "-undefined dynamic_lookup" in log
        if recipe == "fastadd":
            assert "reproducible: both builds gave" in log


def test_the_wheels_carry_their_macos_tags_and_pass_the_macho_check(
        built: tuple[Path, dict[str, Any]]) -> None:
    out, _found = built
    for recipe, target in BUILDS:
        (wheel,) = out.glob(f"{recipe}-*.whl")
        assert wheel.name == f"{recipe}-0.1.0-cp312-cp312-{target}.whl"
        images = macho.check_wheel(wheel, parse_target(target))
        assert [i.arch for i in images] == [target.rsplit("_", 1)[1] if "arm64" in target
                                            else "x86_64"]
        # zig links libc++ statically: the C++ module loads nothing but libSystem.
        assert all(i.libraries == ("/usr/lib/libSystem.B.dylib",) for i in images)
        assert all(i.member.endswith(".cpython-312-darwin.so") for i in images)
        statement = json.loads(Path(f"{wheel}.intoto.json").read_text())
        result = statement["predicate"]["runDetails"]["testResult"]
        assert result["status"] == NOT_RUN and result["pythons"] == []


def test_the_published_index_says_not_run(built: tuple[Path, dict[str, Any]],
                                          tmp_path: Path) -> None:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is needed to publish")
    out, _found = built
    key: Key = make_key(tmp_path / "gnupg", "macfarm")
    env = {"GNUPGHOME": str(key.home), "WHEELFARM_SIGN_KEY": key.fingerprint}
    try:
        _ok(wheelfarm("publish", out, "--to", tmp_path / "index", cwd=tmp_path, env=env))
    finally:
        subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "all"],
                       capture_output=True, check=False)
    root = tmp_path / "index"
    pages = [p for p in root.rglob("distros.json") if "cppvec" in str(p)]
    assert pages, sorted(str(p.relative_to(root)) for p in root.rglob("*"))[:40]
    wheels = json.loads(pages[0].read_text())["wheels"]
    assert wheels["cppvec-0.1.0-cp312-cp312-macosx_11_0_arm64.whl"] == {
        "macos": "11.0", "arch": "arm64", "test": NOT_RUN}


_SETUP = """\
from setuptools import Extension, setup
setup(name="wrongarch", version="0.1.0", packages=["wrongarch"],
      package_data={"wrongarch": ["helper.dylib"]},
      ext_modules=[Extension("wrongarch._ok", ["ok.c"])])
"""
_OK_C = """\
#include <Python.h>
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_ok", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__ok(void) { return PyModule_Create(&mod); }
"""


def test_a_binary_contradicting_the_tag_fails_its_job_with_the_reason(
        tmp_path: Path) -> None:
    """A project that ships a prebuilt x86_64 library in an arm64 wheel."""
    zig = find_zig()
    if zig is None:
        pytest.skip("zig (pip install ziglang) is needed for macOS cross builds")
    python_for("cp312")
    project = tmp_path / "wrongarch"
    (project / "wrongarch").mkdir(parents=True)
    (project / "wrongarch" / "__init__.py").write_text("")
    (project / "setup.py").write_text(_SETUP)
    (project / "ok.c").write_text(_OK_C)
    (project / "helper.c").write_text("int helper(void) { return 1; }\n")
    cache = str(Path(os.environ["WHEELFARM_CACHE_DIR"]) / "zig" / "cache")
    subprocess.run([str(zig), "cc", "-target", "x86_64-macos.10.13", "-shared", "-O2",
                    "helper.c", "-o", "wrongarch/helper.dylib",
                    f"-I{sysconfig.get_paths()['include']}"], cwd=project, check=True,
                   env={**os.environ, "ZIG_GLOBAL_CACHE_DIR": cache,
                        "ZIG_LOCAL_CACHE_DIR": cache}, capture_output=True, timeout=1800)
    recipe = tmp_path / "wrongarch.toml"
    recipe.write_text(textwrap.dedent(f"""\
        [package]
        name = "wrongarch"
        version = "0.1.0"
        [source]
        path = "{project}"
        [build]
        targets = ["macosx_11_0_arm64"]
        pythons = ["cp312"]
        """))
    out = tmp_path / "out"
    result = wheelfarm("build", recipe, "--out", out, "--json", tmp_path / "r.json",
                       cwd=tmp_path, timeout=3600)
    assert result.returncode == 1, result.stdout + result.stderr
    (job,) = json.loads((tmp_path / "r.json").read_text())["jobs"]
    reason = job["attempts"][0]["reason"]
    assert "does not satisfy macosx_11_0_arm64" in reason
    assert "wrongarch/helper.dylib: built for x86_64, the tag says arm64" in reason
    assert job["test"] is None
    assert not list(out.glob("*.whl"))
