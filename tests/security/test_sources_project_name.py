"""A project directory's `[project] name` is checked like a recipe's `package.name`:
a name that climbs out of the farm (`../../…`) is bad input (exit 2, one line), and
nothing (job log, work dir) is written outside the farm."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import wheelfarm

pytestmark = pytest.mark.integration


def test_a_project_name_that_climbs_out_of_the_farm_is_refused(tmp_path: Path) -> None:
    escaped = tmp_path / "escaped"
    escaped.mkdir()  # where the name points: it must stay empty
    project = tmp_path / "project"
    project.mkdir()
    name = "../" * 30 + str(escaped / "pwn").lstrip("/")
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "1.0"\n\n'
        '[build-system]\nrequires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n', encoding="utf-8")
    farm = tmp_path / "farm"
    farm.mkdir()
    result = wheelfarm("build", project, "--target", "native", "--executor", "host",
                       "--python", "cp312", "--keep-work", "--farm", farm,
                       "--out", farm / "out", cwd=farm, timeout=600)
    assert not list(escaped.iterdir()), "the job wrote outside the farm"
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "project.name" in lines[0], result.stderr
