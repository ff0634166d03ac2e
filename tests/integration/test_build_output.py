"""What `wheelfarm build` prints when its output is not a terminal (a CI log, a pipe):
a line per finished job, -v's steps, -q's silence; the table keeps wheel names whole."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .helpers import PROJECTS, wheelfarm

pytestmark = pytest.mark.integration
JOB = "fastadd-cp312-manylinux_auto_x86_64"
ARGS = ("build", PROJECTS / "fastadd", "--target", "native", "--executor", "host",
        "--python", "3.12")


def test_a_line_per_finished_job_off_a_terminal(fastadd_dir: Path, tmp_path: Path) -> None:
    farm = fastadd_dir.parent  # the session's build of this job: a cache hit now
    result = wheelfarm(*ARGS, "--out", tmp_path / "a", "--farm", farm, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^{JOB}: cached in \d+\.\ds$", result.stderr, re.M), result.stderr
    wheel = next((tmp_path / "a").glob("*.whl")).name
    assert any(wheel in line for line in result.stdout.splitlines()), result.stdout


def test_verbose_names_each_step_and_quiet_only_the_table(fastadd_dir: Path,
                                                          tmp_path: Path) -> None:
    farm = fastadd_dir.parent
    verbose = wheelfarm(*ARGS, "-v", "--no-cache", "--out", tmp_path / "v", "--farm", farm,
                        cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    steps = re.findall(rf"^{JOB}: (\w+)$", verbose.stderr, re.M)
    assert steps[:3] == ["source", "toolchain", "build"] and "output" in steps, steps
    assert re.search(rf"^{JOB}: ok in \d+\.\ds$", verbose.stderr, re.M)
    quiet = wheelfarm(*ARGS, "-q", "--out", tmp_path / "q", "--farm", farm, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert "1 of 1 jobs succeeded (1 from the cache)" in quiet.stdout
