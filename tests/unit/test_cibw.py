"""[tool.cibuildwheel] and CIBW_* read as a migration source (plan/cibw.py)."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest

from wheelfarm.errors import RecipeError
from wheelfarm.plan import cibw, recipe

PATH = Path("proj/pyproject.toml")
NATIVE = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                    platform.machine().lower())


def migrate(table: dict[str, object], env: dict[str, str] | None = None) -> cibw.Migration:
    return cibw.migrate({"tool": {"cibuildwheel": table}}, env or {}, PATH)


def test_understood_keys_are_mapped() -> None:
    m = migrate({
        "test-command": ["pytest {project}/tests", "python {package}/check.py"],
        "test-requires": "pytest  hypothesis",
        "before-build": "make gen",
        "environment": 'CFLAGS="-O2 -g" NOFALLBACK=1',
    })
    assert m.tool == {
        "build": {"before-build": ["make gen"], "env": {"CFLAGS": "-O2 -g", "NOFALLBACK": "1"}},
        "test": {"commands": ["pytest {source}/tests", "python {source}/check.py"],
                 "requires": ["pytest", "hypothesis"]},
    }
    assert m.warnings == ()


def test_every_other_key_is_named_in_a_warning() -> None:
    m = migrate({"build-verbosity": 1, "repair-wheel-command": "x", "macos": {"archs": "all"},
                 "linux": {"container-engine": "x"}, "test-command": "true"},
                {"CIBW_BUILD_FRONTEND": "build[uv]", "CIBW_TEST_COMMAND_MACOS": "x",
                 "PATH": "/bin"})
    unused = "cibuildwheel setting not used by wheelfarm (ignored)"
    assert sorted(m.warnings) == sorted(f"{key}: {unused}" for key in (
        "tool.cibuildwheel.build-verbosity", "tool.cibuildwheel.repair-wheel-command",
        "tool.cibuildwheel.linux.container-engine", "tool.cibuildwheel.macos",
        "CIBW_BUILD_FRONTEND", "CIBW_TEST_COMMAND_MACOS"))
    assert m.tool == {"test": {"commands": ["true"]}}


def test_an_image_that_is_not_a_policy_is_named() -> None:
    m = migrate({"linux": {"manylinux-x86_64-image": "quay.io/x:1"}}, {"CIBW_ARCHS": "x86_64"})
    assert m.tool["build"]["targets"] == ["manylinux_2_28_x86_64", "musllinux_1_2_x86_64"]
    assert m.warnings == ("tool.cibuildwheel.linux.manylinux-x86_64-image: 'quay.io/x:1' is "
                          "not a policy wheelfarm knows (manylinux2014, manylinux_2_28, "
                          "manylinux_2_34, musllinux_1_2, musllinux_1_1); building "
                          "manylinux_2_28",)


def test_selectors_become_pythons_and_targets() -> None:
    m = migrate({"build": "cp3{10,12}-*", "skip": "*-musllinux_*",
                 "manylinux-x86_64-image": "manylinux2014",
                 "manylinux-aarch64-image": "manylinux2014"})
    assert m.tool["build"]["pythons"] == ["cp310", "cp312"]
    assert m.tool["build"]["targets"] == [f"manylinux_2_17_{NATIVE}"]
    every = migrate({"archs": "all", "skip": "pp* cp38-*"})
    assert "pythons" not in every.tool["build"]  # all selected: the farm's default
    assert every.tool["build"]["targets"] == [
        "manylinux_2_28_x86_64", "manylinux_2_28_aarch64",
        "musllinux_1_2_x86_64", "musllinux_1_2_aarch64"]


def test_selectors_that_select_nothing_are_refused() -> None:
    with pytest.raises(RecipeError, match=r"tool.cibuildwheel.build: selects no CPython"):
        migrate({"build": "pp310-*"})


def test_precedence_env_over_file_linux_over_all() -> None:
    m = migrate({"test-command": "file", "linux": {"test-command": "file-linux"}},
                {"CIBW_TEST_COMMAND": "env", "CIBW_TEST_COMMAND_LINUX": "env-linux"})
    assert m.tool["test"]["commands"] == ["env-linux"]
    assert m.warnings == (
        "tool.cibuildwheel.test-command is overridden by tool.cibuildwheel.linux.test-command",
        "tool.cibuildwheel.linux.test-command is overridden by CIBW_TEST_COMMAND",
        "CIBW_TEST_COMMAND is overridden by CIBW_TEST_COMMAND_LINUX",
    )


def test_tool_wheelfarm_wins_and_says_so() -> None:
    merged, warnings = cibw.merge({"test": {"commands": ["mine"]}},
                                  migrate({"test-command": "theirs", "test-requires": "pytest"}),
                                  PATH)
    assert merged == {"test": {"commands": ["mine"], "requires": ["pytest"]}}
    assert warnings == ("tool.wheelfarm.test.commands is set: the cibuildwheel value "
                        "(['theirs']) is ignored",)


def test_variables_are_taken_literally_with_a_warning() -> None:
    m = migrate({"environment": {"PATH": "$PATH:/opt/bin"}})
    assert m.tool["build"]["env"] == {"PATH": "$PATH:/opt/bin"}
    assert m.warnings == ("tool.cibuildwheel.environment: PATH='$PATH:/opt/bin' is taken "
                          "literally (wheelfarm expands no variables)",)


def test_bad_values_name_the_key() -> None:
    with pytest.raises(RecipeError, match=r"tool.cibuildwheel.test-requires: expected a string"):
        migrate({"test-requires": 3})
    with pytest.raises(RecipeError, match=r"CIBW_ENVIRONMENT: 'oops': expected NAME=VALUE"):
        migrate({}, {"CIBW_ENVIRONMENT": "oops"})


def test_a_project_directory_reads_cibuildwheel(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "proj"
    shutil.copytree(Path(__file__).parents[1] / "fixtures" / "projects" / "fastadd", project)
    with (project / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.cibuildwheel]\ntest-command = "python -c 1"\nbuild-verbosity = 1\n')
    monkeypatch.setenv("CIBW_TEST_REQUIRES", "pytest")
    loaded = recipe.load(project)
    assert loaded.test.commands == ("python -c 1",)
    assert loaded.test.requires == ("pytest",)
    assert loaded.warnings == ("tool.cibuildwheel.build-verbosity: cibuildwheel setting not "
                               "used by wheelfarm (ignored)",)
    monkeypatch.delenv("CIBW_TEST_REQUIRES")
    assert recipe.load(project).digest() != loaded.digest()  # the mapped values are inputs
