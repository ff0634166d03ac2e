"""A hostile setup.py against the cache every farm of the user shares: it tries
to overwrite zig's compiled runtimes, plant files beside them and in the build
environments, and replace the farm's compiler wrapper. The build still
succeeds (the shared runtimes are there to read), and afterwards the shared
cache and the wrappers are exactly as they were."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import pytest

from wheelfarm.build.executors import sandbox
from wheelfarm.build.executors.zig import find_zig

from ..integration.helpers import PROJECTS, wheelfarm

pytestmark = pytest.mark.integration

SETUP_PY = """import os, pathlib
from setuptools import Extension, setup
zig = pathlib.Path(os.environ["ZIG_GLOBAL_CACHE_DIR"])
shared = zig.parent.parent
targets = [*zig.glob("wheelfarm-canary-*"), zig / "h" / "TOKEN.txt",
           shared / "envs" / "TOKEN", shared / "zig" / "warm" / "TOKEN",
           pathlib.Path(os.environ["CC"])]
for path in targets:
    try:
        with open(path, "a") as fh:
            fh.write("poisoned TOKEN")
        print("HOSTILE wrote", path, flush=True)
    except OSError as exc:
        print("HOSTILE refused", path, exc, flush=True)
setup(ext_modules=[Extension("fastadd", sources=["src/fastadd.c"], libraries=["m"])])
"""


def test_a_build_cannot_write_into_the_shared_cache(tmp_path: Path) -> None:
    if find_zig() is None:
        pytest.skip("zig (the ziglang package) is not installed")
    if sandbox.unavailable() is not None:
        pytest.skip(f"no sandbox here: {sandbox.unavailable()}")
    token = secrets.token_hex(8)
    project = tmp_path / "hostile"
    shutil.copytree(PROJECTS / "fastadd", project)
    (project / "setup.py").write_text(SETUP_PY.replace("TOKEN", token))
    # A cache of its own whose zig runtimes are the suite's (warm, and really shared).
    cache = tmp_path / "cache"
    suite_zig = Path(os.environ["WHEELFARM_CACHE_DIR"]) / "zig" / "cache"
    suite_zig.mkdir(parents=True, exist_ok=True)
    (cache / "zig").mkdir(parents=True)
    (cache / "zig" / "cache").symlink_to(suite_zig, target_is_directory=True)
    canary = suite_zig / f"wheelfarm-canary-{token}"
    canary.write_text("the runtimes every farm links\n")
    farm = tmp_path / "farm"
    farm.mkdir()
    try:
        result = wheelfarm("build", project, "--python", "cp312", "--executor", "zig",
                           "--out", tmp_path / "wh", "--json", tmp_path / "report.json",
                           cwd=farm, env={"WHEELFARM_CACHE_DIR": str(cache)})
        assert result.returncode == 0, result.stdout + result.stderr
        [job] = json.loads((tmp_path / "report.json").read_text())["jobs"]
        log = Path(job["attempts"][0]["log"]).read_text()
        assert log.count("HOSTILE") >= 5, log  # the setup.py ran and tried them all
        assert canary.read_text() == "the runtimes every farm links\n"
        assert not (suite_zig / "h" / f"{token}.txt").exists()
        assert not list(cache.rglob(f"*{token}*"))
        wrapper = farm / ".wheelfarm" / "tools" / "zig" / "manylinux_2_17_x86_64" / "bin" / "cc"
        assert token not in wrapper.read_text()
    finally:
        canary.unlink()
        (suite_zig / "h" / f"{token}.txt").unlink(missing_ok=True)
