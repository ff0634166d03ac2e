"""The cache a user's farms share: two farm processes warming one toolchain at
once both succeed and only one of them compiles; a fresh farm directory's first
build of a C++ recipe uses the runtimes another farm warmed, through the
default location ($XDG_CACHE_HOME/wheelfarm)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wheelfarm.build.executors.zig import find_zig

from .helpers import RECIPES, wheelfarm

pytestmark = pytest.mark.integration

TARGET = "manylinux_2_17_x86_64"
PREPARE = """import sys
from pathlib import Path
from wheelfarm.build.executors.zig import ZigExecutor
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.targets import parse_target
executor = ZigExecutor(config=FarmConfig(root=Path(sys.argv[1])))
executor.prepare(parse_target(sys.argv[2]), Path(sys.argv[3]), sys.stdout)
"""


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A new shared cache whose zig runtimes are the suite's: zig compiles a
    target's libc++ once per machine, and the farms here still find no record
    that anyone warmed it."""
    if find_zig() is None:
        pytest.skip("zig (the ziglang package) is not installed")
    suite = Path(os.environ["WHEELFARM_CACHE_DIR"]) / "zig" / "cache"
    suite.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "xdg" / "wheelfarm"
    (cache / "zig").mkdir(parents=True)
    (cache / "zig" / "cache").symlink_to(suite, target_is_directory=True)
    return cache


def test_farms_share_the_runtimes_one_of_them_warmed(tmp_path: Path, shared: Path) -> None:
    # Two farm processes warm one toolchain at once: both succeed, one compiles.
    farms = [tmp_path / "farm-a", tmp_path / "farm-b"]
    procs = [subprocess.Popen([sys.executable, "-c", PREPARE, str(farm), TARGET, str(shared)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for farm in farms]
    logs = [p.communicate(timeout=1800)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    # One warmed (zig compiled, or found its own cache warm); the other waited for it.
    assert sum("warming zig's cache: C++ runtime" in log for log in logs) == 1, logs
    assert sum("are warm in" in log for log in logs) == 1, logs
    assert (shared / "zig" / "warm" / f"{TARGET}.json").is_file()
    for farm in farms:  # each farm has wrappers of its own, none in the shared cache
        assert (farm / ".wheelfarm" / "tools" / "zig" / TARGET / "bin" / "c++").is_file()
    assert not (shared / "zig" / TARGET).exists()

    # A fresh farm directory's first build of a C++ recipe, through the default
    # location (no WHEELFARM_CACHE_DIR), compiles no runtime.
    farm = tmp_path / "fresh"
    farm.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "WHEELFARM_CACHE_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "wheelfarm", "build", str(RECIPES / "cppvec.toml"),
         "--python", "cp312", "--out", str(farm / "wh"), "--json", str(farm / "r.json")],
        cwd=farm, capture_output=True, text=True, timeout=1800,
        env={**env, "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert result.returncode == 0, result.stdout + result.stderr
    [job] = json.loads((farm / "r.json").read_text())["jobs"]
    log = Path(job["attempts"][0]["log"]).read_text()
    assert "warming zig's cache" not in log
    assert f"are warm in {shared / 'zig' / 'cache'}" in log
    assert (shared / "envs").is_dir()  # its build environment is in the shared cache too
    info = wheelfarm("cache", "info", cwd=tmp_path,
                     env={"XDG_CACHE_HOME": str(tmp_path / "xdg"), "WHEELFARM_CACHE_DIR": ""})
    assert f"cache: {shared}" in info.stdout, info.stdout + info.stderr
