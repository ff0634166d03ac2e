"""A toolchain chain for real: the crc32c fixture, which zig's clang refuses to
compile and the host's gcc compiles, builds for manylinux2014 through the
fallback to the host and passes the symbol-level policy; zig alone fails with
the compiler's reason."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from wheelfarm.build.executors.zig import find_zig

from .helpers import PROJECTS, wheelfarm

pytestmark = pytest.mark.integration

CRC32C = PROJECTS / "crc32c"
REASON = "needs target feature crc32"


@pytest.fixture(autouse=True)
def _needs_zig_and_gcc() -> None:
    if find_zig() is None:
        pytest.skip("zig (the ziglang package) is not installed")


def test_falls_back_to_the_host_compiler_and_passes_the_policy(tmp_path: Path) -> None:
    result = wheelfarm("build", CRC32C, "--python", "cp312", "--target", "manylinux2014_x86_64",
                       "--out", tmp_path / "wh", "--json", tmp_path / "report.json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [job] = json.loads((tmp_path / "report.json").read_text())["jobs"]
    assert job["toolchain"] == "host" and job["state"] == "succeeded"
    assert job["test"]["status"] == "tested"
    assert re.search(r"crc32c-fixture .* host .* ok", result.stdout + result.stderr)
    [wheel] = (tmp_path / "wh").glob("*.whl")
    assert "manylinux2014_x86_64" in wheel.name
    # The provenance names the toolchain that built it, and the chain it came from.
    statement = json.loads(Path(f"{wheel}.intoto.json").read_text())
    params = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert (params["executor"], params["toolchains"]) == ("host", ["zig", "host"])
    assert statement["predicate"]["buildDefinition"]["internalParameters"][
        "toolchain"]["executor"].startswith("host:")
    # auditwheel's own reading of the symbol versions agrees: gcc on glibc 2.36
    # made a module that needs nothing newer than glibc 2.17.
    shown = subprocess.run([sys.executable, "-m", "auditwheel", "show", wheel],
                           capture_output=True, text=True, check=True).stdout
    assert re.search(r'platform\s+tag:\s+"manylinux_2_(5|12|17)_x86_64"', " ".join(shown.split()))
    # The failed attempt's log is kept, with why it fell back.
    log = Path(job["attempts"][0]["log"]).read_text()
    assert "# toolchain 1 of 2: zig" in log and "# toolchain 2 of 2: host" in log
    assert re.search(rf"! build failed with toolchain zig: .*{REASON}", log)
    assert "# falling back to toolchain host" in log
    with zipfile.ZipFile(wheel) as zf:
        assert any(n.startswith("crc32c.") and n.endswith(".so") for n in zf.namelist())


def test_zig_alone_fails_with_the_compilers_reason(tmp_path: Path) -> None:
    result = wheelfarm("build", CRC32C, "--python", "cp312", "--executor", "zig",
                       "--out", tmp_path / "wh", "--json", tmp_path / "report.json", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    [job] = json.loads((tmp_path / "report.json").read_text())["jobs"]
    assert (job["state"], job["toolchain"]) == ("failed", "zig")
    log = Path(job["attempts"][0]["log"]).read_text()
    assert REASON in log and "falling back" not in log
    assert ": build: " in result.stderr and REASON in result.stderr
    assert not list((tmp_path / "wh").glob("*.whl"))


def test_a_standing_farms_worker_falls_back_too(tmp_path: Path) -> None:
    """Submitted to the farm's queue and built by a worker (direct, on this machine):
    the same chain, the same fallback, the same provenance as a local build."""
    submitted = wheelfarm("submit", CRC32C, "--python", "cp312", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    worked = wheelfarm("worker", "--drain", "--name", "w1", cwd=tmp_path, timeout=900)
    assert worked.returncode == 0, worked.stdout + worked.stderr
    shown = wheelfarm("status", "--json", cwd=tmp_path)
    [job] = json.loads(shown.stdout)["jobs"]
    assert job["state"] == "succeeded", job
    [wheel] = (tmp_path / "wheelhouse").glob("crc32c*.whl")
    statement = json.loads(Path(f"{wheel}.intoto.json").read_text())
    params = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert (params["executor"], params["toolchains"]) == ("host", ["zig", "host"])
    log = wheelfarm("logs", job["key"][:12], cwd=tmp_path).stdout
    assert "# falling back to toolchain host" in log and REASON in log
