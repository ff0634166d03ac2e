"""What `wheelfarm build` prints off a terminal, its -v/-q, the table's width, the
default PATHS, and shell completion."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from wheelfarm.build.outcome import Artifact, JobResult, Outcome
from wheelfarm.cli import main
from wheelfarm.cli.build import _progress
from wheelfarm.cli.ui import print_table
from wheelfarm.errors import FailureKind
from wheelfarm.plan.jobs import Job
from wheelfarm.plan.recipe import Recipe
from wheelfarm.plan.sourcespec import SourceSpec
from wheelfarm.plan.targets import parse_target

JOB = Job(Recipe(Path("demo.toml"), "demo", "1.0", SourceSpec("path", ".")),
          parse_target("manylinux_2_17_x86_64"), "cp312", "zig", ("cp312",), "0" * 64)
OK = JobResult(JOB, Outcome(True, 12.34, artifact=Artifact("demo.whl", "0" * 64, "demo.whl")))
FAILED = JobResult(JOB, Outcome.failed(FailureKind.BUILD, "a.c:1:1: error: x", 2.0))
CACHED = JobResult(JOB, Outcome(True, 0.01, cached=True))


def stderr_of(progress: _progress, *calls: tuple[str, object]) -> list[str]:
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), progress:
        for kind, value in calls:
            if kind == "step":
                progress.on_step(JOB, str(value))
            else:
                assert isinstance(value, JobResult)
                progress.on_result(value)
    return errors.getvalue().splitlines()


STEPS_AND_RESULTS: list[tuple[str, object]] = [
    ("step", "source"), ("step", "build"), ("step", "done"),
    ("result", OK), ("result", FAILED), ("result", CACHED)]


def test_off_a_terminal_each_finished_job_is_a_line_with_result_and_seconds() -> None:
    assert stderr_of(_progress([JOB]), *STEPS_AND_RESULTS) == [
        "demo-cp312-manylinux_2_17_x86_64: ok in 12.3s",
        "demo-cp312-manylinux_2_17_x86_64: failed (build) in 2.0s",
        "demo-cp312-manylinux_2_17_x86_64: cached in 0.0s",
    ]


def test_verbose_also_names_each_step_a_job_enters() -> None:
    lines = stderr_of(_progress([JOB], verbose=True), *STEPS_AND_RESULTS)
    assert lines[:2] == ["demo-cp312-manylinux_2_17_x86_64: source",
                         "demo-cp312-manylinux_2_17_x86_64: build"]
    assert len(lines) == 5


def test_quiet_prints_no_progress() -> None:
    assert stderr_of(_progress([JOB], quiet=True), ("step", "toolchain"),
                     *STEPS_AND_RESULTS) == []


def test_verbose_and_quiet_together_are_a_usage_error(tmp_path: Path) -> None:
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = main(["build", "-v", "-q", "--farm", str(tmp_path)])
    assert code == 2 and "not both" in errors.getvalue()


def test_bare_build_builds_the_current_directory(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = main(["build"])
    assert code == 2
    assert errors.getvalue() == "error: .: no recipes (*.toml) and no pyproject.toml here\n"


def _wide_table(name: str) -> Table:
    table = Table(title="wheelfarm build")
    for col in ("recipe", "wheel"):
        table.add_column(col, overflow="fold")
    table.add_row("demo", name)
    return table


def test_off_a_terminal_the_table_is_as_wide_as_its_longest_wheel_name() -> None:
    name = "demo_" + "x" * 230 + "-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    sink = io.StringIO()
    console = Console(file=sink, width=200, highlight=False)
    print_table(console, _wide_table(name))
    assert any(name in line for line in sink.getvalue().splitlines())
    assert console.width == 200


def test_on_a_terminal_a_long_name_folds_instead_of_being_cut() -> None:
    name = "demo_" + "x" * 120 + "-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    sink = io.StringIO()
    console = Console(file=sink, width=80, force_terminal=True, color_system=None)
    print_table(console, _wide_table(name))
    text = sink.getvalue()
    assert "…" not in text
    cells = "".join(line.split("│")[2].strip() for line in text.splitlines()
                    if line.count("│") == 3)
    assert name in cells


def test_shell_completion_script_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_WHEELFARM_COMPLETE", "bash_source")
    raw = io.BytesIO()
    output = io.TextIOWrapper(raw, encoding="utf-8")  # click writes to its buffer
    with contextlib.redirect_stdout(output):
        code = main([])
    output.flush()
    assert code == 0
    script = raw.getvalue().decode()
    assert "_wheelfarm_completion()" in script
    assert "complete -o nosort -F _wheelfarm_completion wheelfarm" in script
