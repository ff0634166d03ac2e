"""The first error lines, found in what the real compilers and linkers print, and shown
by `wheelfarm build` for a project that does not compile."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wheelfarm.build.errorlines import first_errors

from .helpers import PROJECTS, require, wheelfarm

pytestmark = pytest.mark.integration

BROKEN = "int f(void) {\n  int x = 1\n  return x;\n}\nint g(void) { return y; }\n"
UNDEFINED = ("int missing(void);\nint f(void) { return missing(); }\n"
             "int main(void) { return f(); }\n")
ZIG_CC = [sys.executable, "-m", "ziglang", "cc"]


def _output(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode != 0, done
    return done.stdout + done.stderr


@pytest.fixture()
def sources(tmp_path: Path) -> Path:
    (tmp_path / "broken.c").write_text(BROKEN)
    (tmp_path / "undef.c").write_text(UNDEFINED)
    return tmp_path


@pytest.mark.parametrize("cc", ["gcc", "zig"])
def test_compile_errors_of_gcc_and_zig_cc(sources: Path, cc: str) -> None:
    argv = [require("gcc")] if cc == "gcc" else ZIG_CC
    found = first_errors(_output([*argv, "-c", "broken.c", "-o", "broken.o"], sources))
    assert found[0].startswith("broken.c:3:3: error: " if cc == "gcc" else
                               "broken.c:2:12: error: ")
    assert found[1].startswith("broken.c:5:22: error: ")
    assert len(found) == 2


def test_undefined_references_of_gnu_ld(sources: Path) -> None:
    found = first_errors(_output([require("gcc"), "-g", "undef.c", "-o", "undef"], sources))
    assert found == [f"{sources / 'undef.c'}:2: undefined reference to `missing'"] or \
        found == ["undef.c:2: undefined reference to `missing'"]


def test_undefined_symbols_of_zigs_linker(sources: Path) -> None:
    found = first_errors(_output([*ZIG_CC, "undef.c", "-o", "undef"], sources))
    assert len(found) == 1
    assert "undefined symbol: missing" in found[0]
    assert "(referenced by undef.c:2)" in found[0]


def test_rustc_errors_with_their_location(sources: Path) -> None:
    rustc = shutil.which("rustc") or str(Path.home() / ".cargo" / "bin" / "rustc")
    if not Path(rustc).exists():
        pytest.skip("rustc is not installed")
    (sources / "lib.rs").write_text("pub fn f() -> i32 { x }\n")
    found = first_errors(_output([rustc, "--crate-type", "lib", "lib.rs"], sources))
    assert found == ["lib.rs:1:21: error[E0425]: cannot find value `x` in this scope"]


def test_build_shows_the_compilers_error_line_first(tmp_path: Path) -> None:
    """A C syntax error: the summary names the file:line:col and the error, not
    build's closing words or its advice about options wheelfarm lacks."""
    project = tmp_path / "broken"
    shutil.copytree(PROJECTS / "fastadd", project)
    source = project / "src" / "fastadd.c"
    text = source.read_text()
    assert "long long a, b, result;" in text
    source.write_text(text.replace("long long a, b, result;", "long long a, b, result"))
    line = text[:text.index("long long a, b, result;")].count("\n") + 1
    farm = tmp_path / "farm"
    farm.mkdir()
    result = wheelfarm("build", project, "--python", "cp312", "--out", farm / "wh", cwd=farm)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    job = "fastadd-cp312-manylinux_2_17_x86_64"
    assert any(text.startswith(f"{job}: failed (build) in ") for text in lines)  # as it ended
    summary = [text for text in lines if text.startswith(f"{job}: build: ")]
    assert len(summary) == 1 and summary[0].startswith(
        f"{job}: build: src/fastadd.c:{line}:27: error: "), result.stderr
    assert "build failed: build failed" not in result.stderr
    assert "--env-dir" not in result.stderr
    assert lines[-1].startswith("  log: ") and lines[-1].endswith(".log")  # the last word
    assert "Traceback" not in result.stderr
