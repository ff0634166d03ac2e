"""`wheelfarm build` schedules through its embedded queue: `build.needs` within
one command, a failed dependency, the run's kept queue, and stopping by signal."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from .helpers import python_for
from .helpers import wheelfarm as _wheelfarm
from .queue_support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

BASE_SETUP = """from setuptools import setup
setup(name="wfbbase", version={version!r}, packages=["wfbbase"])
"""
# Importable only from the wheel this run built: its version is new each time.
USER_SETUP = """import wfbbase
from setuptools import setup
from pathlib import Path
Path("wfbuser").mkdir(exist_ok=True)
Path("wfbuser/__init__.py").write_text(f"FROM_BASE = {wfbbase.VALUE!r}\\n")
setup(name="wfbuser", version="1.0", packages=["wfbuser"])
"""
COMMON = '[build]\ntargets = ["linux_x86_64"]\npythons = ["cp312"]\nexecutor = "host"\n'


def _farm(root: Path, *, base_test: str = "import wfbbase", user_before: str = "",
          ) -> tuple[Path, str]:
    """Recipes wfbbase and wfbuser (which needs it) with a fresh version of wfbbase."""
    python_for("cp312")
    version = f"1.0.{secrets.randbelow(10**9)}"
    value = f"built in run {version}"
    base, user = root / "src" / "base", root / "src" / "user"
    (base / "wfbbase").mkdir(parents=True)
    (base / "setup.py").write_text(BASE_SETUP.format(version=version))
    (base / "wfbbase" / "__init__.py").write_text(f"VALUE = {value!r}\n")
    user.mkdir(parents=True)
    (user / "setup.py").write_text(USER_SETUP)
    for src, requires in ((base, ["setuptools>=61"]),
                          (user, ["setuptools>=61", f"wfbbase=={version}"])):
        (src / "pyproject.toml").write_text(
            f'[build-system]\nrequires = {requires!r}\n'
            'build-backend = "setuptools.build_meta"\n')
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "base.toml").write_text(
        f'[package]\nname = "wfbbase"\nversion = "{version}"\n[source]\npath = "../src/base"\n'
        + COMMON + f'[test]\ncommands = ["python -c \'{base_test}\'"]\n')
    before = f"before-build = [{user_before!r}]\n" if user_before else ""
    (recipes / "user.toml").write_text(
        '[package]\nname = "wfbuser"\nversion = "1.0"\n[source]\npath = "../src/user"\n'
        + COMMON + before + 'needs = ["wfbbase"]\n[test]\ncommands = ["python -c \'import '
        f'wfbuser; assert wfbuser.FROM_BASE == \\"{value}\\"\'"]\n')
    return recipes, value


def _env(farm: Path) -> dict[str, str]:
    # A cache of the test's own: each run makes build environments nobody reuses.
    return {**os.environ, "COLUMNS": "200", "WHEELFARM_CACHE_DIR": str(farm / "cache")}


def wheelfarm(*args: str | os.PathLike[str], cwd: Path, timeout: float = 900,
              ) -> subprocess.CompletedProcess[str]:
    return _wheelfarm(*args, cwd=cwd, env=_env(cwd), timeout=timeout)


def _kept_queue(stderr: str) -> Path:
    [line] = [x for x in stderr.splitlines() if x.startswith("the run's queue: ")]
    return Path(line.split(": ", 1)[1])


def _status(farm: Path, database: Path) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "wheelfarm", "status", "--json", "--events"],
                            cwd=farm, env={**os.environ, "WHEELFARM_STATE": f"sqlite:///{database}"},
                            capture_output=True, text=True, check=True)
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_a_recipe_builds_after_its_dependency_and_installs_its_wheel(tmp_path: Path) -> None:
    recipes, value = _farm(tmp_path)
    out = tmp_path / "out"
    # The dependent comes first in the command and two jobs may run at once:
    # only the queue's needs rule keeps it waiting.
    result = wheelfarm("build", recipes / "user.toml", recipes / "base.toml", "--out", out,
                       "--jobs", "2", "--keep-work", "--json", tmp_path / "report.json",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert [j["recipe"] for j in report["jobs"]] == ["wfbuser", "wfbbase"]  # plan order
    [wheel] = out.glob("wfbuser-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("wfbuser/__init__.py").decode() == f"FROM_BASE = {value!r}\n"
    assert (out / "simple" / "wfbuser" / "index.html").is_file()

    doc = _status(tmp_path, _kept_queue(result.stderr))
    by_recipe = {j["recipe"]: j for j in doc["jobs"]}
    base, user = by_recipe["wfbbase"], by_recipe["wfbuser"]
    assert {base["state"], user["state"]} == {"succeeded"}
    assert user["attempts"][0]["started"] >= base["attempts"][-1]["ended"]
    # The dependent's build environment took the wheel from the run's output.
    log = Path(user["attempts"][0]["log"]).read_text()
    assert f"Looking in links: {out}" in log
    assert base["artifact"]["filename"] in log
    kinds = {e["kind"] for e in doc["events"]}
    assert {"submitted", "leased", "started", "succeeded"} <= kinds


def test_a_ci_matrix_builds_a_shared_dependency_once_and_merges(tmp_path: Path) -> None:
    """plan -> one `build --job` per matrix entry -> merge: wfbbase, which two
    recipes need, is built in one entry only, so merge sees one build of it."""
    recipes, value = _farm(tmp_path)
    user2 = tmp_path / "src" / "user2"
    shutil.copytree(tmp_path / "src" / "user", user2)
    (user2 / "setup.py").write_text(USER_SETUP.replace('name="wfbuser"', 'name="wfbuser2"'))
    (recipes / "user2.toml").write_text((recipes / "user.toml").read_text().replace(
        'name = "wfbuser"', 'name = "wfbuser2"').replace("../src/user", "../src/user2"))
    planned = wheelfarm("plan", recipes, "--format", "github", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    [entry] = json.loads(planned.stdout)["include"]  # three jobs, one unit
    assert "3 of 3 jobs to build in 1 matrix entries" in planned.stderr
    assert entry["id"] == "wfbbase-cp312-linux_x86_64"  # the unit's smallest id names it
    out = tmp_path / "entry"
    built = wheelfarm("build", recipes, "--job", entry["id"], "--out", out, cwd=tmp_path)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert sorted(p.name.split("-")[0] for p in out.glob("*.whl")) == [
        "wfbbase", "wfbuser", "wfbuser2"]
    # A dependent's id selects the same unit: its entry would build the same wheels.
    again = wheelfarm("build", recipes, "--job", "wfbuser2-cp312-linux_x86_64", "--out",
                      tmp_path / "again", cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "building wfbbase-cp312-linux_x86_64 too" in again.stderr
    assert "building wfbuser-cp312-linux_x86_64 too" in again.stderr
    merged = wheelfarm("merge", out, "--out", tmp_path / "merged", cwd=tmp_path)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    for name in ("wfbuser", "wfbuser2"):  # both packages are wfbuser, built on wfbbase
        [wheel] = (tmp_path / "merged").glob(f"{name}-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            assert zf.read("wfbuser/__init__.py").decode() == f"FROM_BASE = {value!r}\n"


def test_a_needed_job_left_out_by_the_selection_is_added(tmp_path: Path) -> None:
    recipes, _value = _farm(tmp_path)
    out = tmp_path / "out"
    result = wheelfarm("build", recipes, "--job", "wfbuser-cp312-linux_x86_64", "--out", out,
                       cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "building wfbbase-" in result.stderr
    assert "too: build.needs joins it to the selected jobs" in result.stderr
    assert {p.name.split("-")[0] for p in out.glob("*.whl")} == {"wfbbase", "wfbuser"}
    missing = wheelfarm("build", recipes / "user.toml", "--out", tmp_path / "out2",
                        cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "error: wfbuser needs wfbbase, but no recipe of this build makes wfbbase for "
        "linux_x86_64 and cp312; give its recipe too")
    assert not (tmp_path / "out2").exists()


def test_a_failed_dependency_fails_its_dependent_with_a_reason(tmp_path: Path) -> None:
    recipes, _value = _farm(tmp_path, base_test="raise SystemExit(3)")
    out = tmp_path / "out"
    result = wheelfarm("build", recipes, "--out", out, "--jobs", "2", "--json", "-",
                       cwd=tmp_path, timeout=600)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    report = {j["recipe"]: j for j in json.loads(result.stdout)["jobs"]}
    assert report["wfbbase"]["state"] == "failed"
    assert "test on cp312 failed" in report["wfbbase"]["attempts"][0]["reason"]
    assert report["wfbbase"]["cause"] == "test-failure"
    assert report["wfbuser"]["cause"] is None  # it never ran: its cause is its need's
    reason = report["wfbuser"]["attempts"][0]["reason"]
    assert report["wfbuser"]["state"] == "failed"
    assert reason.startswith("needs wfbbase, whose job ") and "did not succeed" in reason
    assert f"wfbuser-cp312-linux_x86_64: needs: {reason}" in result.stderr
    assert not list(out.glob("*.whl"))


def _build_in_background(recipes: Path, cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "wheelfarm", "build", str(recipes), *args],
                            cwd=cwd, env=_env(cwd),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sleeping(marker: str) -> bool:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker in Path(entry.path, "cmdline").read_bytes().decode(errors="replace"):
                    return True
            except OSError:
                continue
    return False


def test_ctrl_c_stops_the_running_job_and_exits_without_a_traceback(tmp_path: Path) -> None:
    marker = f"{900 + secrets.randbelow(99)}.{secrets.randbelow(10**6)}"
    recipes, _value = _farm(tmp_path, user_before=f"sleep {marker}")
    build = _build_in_background(recipes, tmp_path, "--out", str(tmp_path / "out"))
    try:
        wait_for(lambda: _sleeping(f"sleep\0{marker}"), 300, "the dependent's before-build")
        started = time.monotonic()
        build.send_signal(signal.SIGINT)
        stdout, stderr = build.communicate(timeout=60)
    finally:
        if build.poll() is None:
            build.kill()
    assert time.monotonic() - started < 30
    assert build.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "stopping 1 running job(s)" in stderr and "interrupted (SIGINT)" in stderr
    assert "failed (interrupted)" in stdout
    assert not _sleeping(f"sleep\0{marker}")


def test_sigterm_lets_the_running_job_end_and_starts_no_other(tmp_path: Path) -> None:
    recipes, _value = _farm(tmp_path)
    pause = f"3.{secrets.randbelow(10**6):06d}"
    (recipes / "base.toml").write_text((recipes / "base.toml").read_text().replace(
        "[test]", f'before-build = ["sleep {pause}"]\n[test]'))
    build = _build_in_background(recipes, tmp_path, "--out", str(tmp_path / "out"),
                                 "--jobs", "2")
    try:
        wait_for(lambda: _sleeping(f"sleep\0{pause}"), 300, "the dependency's before-build")
        build.send_signal(signal.SIGTERM)
        stdout, stderr = build.communicate(timeout=300)
    finally:
        if build.poll() is None:
            build.kill()
    assert build.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr and "interrupted (SIGTERM)" in stderr
    assert list((tmp_path / "out").glob("wfbbase-*.whl"))  # the running job ended
    assert not list((tmp_path / "out").glob("wfbuser-*.whl"))  # and nothing more started
    assert "failed (interrupted)" in stdout
