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
import subprocess
import tempfile
from pathlib import Path

import pytest

from wheelfarm.build.executors import sandbox
from wheelfarm.build.executors.zig import find_zig

from ..integration.helpers import hostile_fastadd, wheelfarm

pytestmark = pytest.mark.integration

def test_a_build_cannot_write_into_the_shared_cache(tmp_path: Path) -> None:
    if find_zig() is None:
        pytest.skip("zig (the ziglang package) is not installed")
    if sandbox.unavailable() is not None:
        pytest.skip(f"no sandbox here: {sandbox.unavailable()}")
    token = secrets.token_hex(8)
    project = hostile_fastadd(
        tmp_path / "hostile", token,
        'zig = pathlib.Path(os.environ["ZIG_GLOBAL_CACHE_DIR"])\nshared = zig.parent.parent',
        '*zig.glob("wheelfarm-canary-*"), zig / "h" / "TOKEN.txt", '
        'shared / "envs" / "TOKEN", shared / "zig" / "warm" / "TOKEN", '
        'pathlib.Path(os.environ["CC"])')
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


def test_not_root_the_shared_dir_is_an_overlay_in_a_user_namespace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A farm user other than root (here: nobody) gets the same overlay, mounted in
    a user namespace of its own: the build writes, the shared cache does not change."""
    if sandbox.unavailable() is not None or shutil.which("setpriv") is None:
        pytest.skip("needs bwrap and setpriv")
    nobody = 65534
    # pytest's tmp_path is root's own (0700): nobody could not reach it.
    tmp_path = Path(tempfile.mkdtemp(prefix="wheelfarm-nobody-"))
    try:
        _overlay_as_nobody(tmp_path, nobody, monkeypatch)
    finally:
        shutil.rmtree(tmp_path)


def _overlay_as_nobody(tmp_path: Path, nobody: int, monkeypatch: pytest.MonkeyPatch) -> None:
    shared, scratch, work = tmp_path / "shared", tmp_path / "scratch", tmp_path / "work"
    for d in (shared, work):
        d.mkdir()
    (shared / "runtime.a").write_text("the runtimes every farm links\n")
    for sub in ("upper", "work", "merged"):
        (scratch / sub).mkdir(parents=True)
    for path in (tmp_path, shared, shared / "runtime.a", work, scratch, *scratch.iterdir()):
        os.chown(path, nobody, nobody)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # wrap() as a farm that is not root
    box = sandbox.Sandbox(hidden=(), readable=(), writable=(work,), network=False,
                          bwrap=sandbox.find_bwrap() or "bwrap", overlays=((shared, scratch),))
    argv = box.wrap(["sh", "-c", f"echo poisoned >> {shared}/runtime.a; touch {shared}/new; "
                                 f"cat {shared}/runtime.a"], work)
    assert argv[:4] == ["unshare", "--user", "--map-root-user", "--mount"]
    result = subprocess.run(["setpriv", f"--reuid={nobody}", f"--regid={nobody}",
                             "--clear-groups", *argv], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("poisoned\n")  # the build saw its own write
    assert (shared / "runtime.a").read_text() == "the runtimes every farm links\n"
    assert not (shared / "new").exists()
