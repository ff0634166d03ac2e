"""Bad targets and Pythons are refused before anything builds (exit 2, one line, with
the right suggestion); Pythons a user may write as 3.12; defaults outside a project's
Requires-Python are left out with a note."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from wheelfarm import api
from wheelfarm.cli import main
from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.plan import pythons
from wheelfarm.plan.targets import buildable_target, parse_target, policies

ROOT = Path(__file__).resolve().parents[2]
FASTADD = ROOT / "tests" / "fixtures" / "projects" / "fastadd"


def run(argv: list[str]) -> tuple[int, list[str]]:
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, errors.getvalue().splitlines()


def project(root: Path, requires_python: str, pythons_line: str = "") -> Path:
    root.mkdir(parents=True)
    tool = f"[tool.wheelfarm.build]\n{pythons_line}\n" if pythons_line else ""
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "demo"\nversion = "1.0"\nrequires-python = "{requires_python}"\n'
        + tool, encoding="utf-8")
    return root


# -- targets ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "why", "suggestion"), [
    ("manylinux_2_99_x86_64", "auditwheel has no manylinux_2_99 policy",
     f"manylinux_{max(policies('manylinux'), key=lambda n: int(n.split('_')[2]))[10:]}"
     "_x86_64"),
    ("manylinux_2_29_x86_64", "no manylinux_2_29 policy", "manylinux_2_28_x86_64"),
    ("manylinux_2_5_aarch64", "manylinux_2_5 policy has no aarch64", "manylinux_2_17_aarch64"),
    ("musllinux_2_28_x86_64", "no musllinux policy for musl 2.28", "musllinux_1_2_x86_64"),
    ("muslinux_1_2_aarch64", "", "musllinux_1_2_aarch64"),
    ("musllinux_1_2_x86", "", "musllinux_1_2_x86_64"),
    ("macosx_11_0_aarch64", "macOS wheels are arm64 or x86_64", "macosx_11_0_arm64"),
])
def test_a_target_auditwheel_has_no_policy_for_is_refused_with_one_of_its_family(
        text: str, why: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as caught:
        buildable_target(text)
    message = str(caught.value)
    assert message.startswith(f"unknown target {text!r}")
    assert why in message
    assert message.endswith(f"; did you mean {suggestion!r}?")


def test_a_wheels_tag_newer_than_this_auditwheel_still_parses() -> None:
    # Read back from a wheel a newer auditwheel tagged: not a target to build for.
    assert parse_target("manylinux_2_99_x86_64").glibc == (2, 99)


def test_every_known_policy_of_an_architecture_is_a_target() -> None:
    for policy, arches in policies("manylinux").items():
        for arch in {"x86_64", "aarch64"} & arches:
            assert buildable_target(f"{policy}_{arch}").name == f"{policy}_{arch}"
    assert buildable_target("manylinux2014_aarch64").name == "manylinux_2_17_aarch64"


def test_build_refuses_a_bad_target_before_building(tmp_path: Path) -> None:
    out = tmp_path / "wheelhouse"
    code, lines = run(["build", str(FASTADD), "--target", "manylinux_2_99_x86_64",
                       "--out", str(out), "--farm", str(tmp_path)])
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(
        "error: --target manylinux_2_99_x86_64: unknown target"), lines
    assert not out.exists() and not (tmp_path / ".wheelfarm" / "logs").exists()


def test_a_recipes_bad_target_names_the_file_and_key(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[package]\nname = "x"\nversion = "1"\n[source]\npath = "."\n'
                      '[build]\ntargets = ["musllinux_1_3_x86_64"]\n')
    code, lines = run(["build", str(recipe), "--farm", str(tmp_path)])
    assert code == 2
    assert lines == [f"error: {recipe}: build.targets: unknown target 'musllinux_1_3_x86_64': "
                     "no musllinux policy for musl 1.3 (known: musllinux_1_1, musllinux_1_2); "
                     "did you mean 'musllinux_1_2_x86_64'?"]


# -- pythons -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "tag"), [("cp312", "cp312"), ("3.12", "cp312"),
                                           (" 3.9", "cp39"), ("3.13", "cp313")])
def test_a_python_is_a_tag_or_a_version(text: str, tag: str) -> None:
    assert pythons.as_tag(text) == tag


@pytest.mark.parametrize("text", ["312", "python3.12", "3", "cp3x", "3.12.1"])
def test_other_spellings_of_a_python_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="expected a CPython tag like 'cp312' or a version"):
        pythons.as_tag(text)


def test_build_accepts_python_3_12(tmp_path: Path) -> None:
    planned = api.plan_build(api.BuildRequest([FASTADD], farm_dir=tmp_path,
                                              targets=["linux_x86_64"], pythons=["3.12"]))
    assert [j.python for j in planned.jobs] == ["cp312"]


def test_a_recipe_may_name_its_pythons_as_versions(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[package]\nname = "x"\nversion = "1"\n[source]\npath = "."\n'
                      '[build]\npythons = ["3.12", "cp39"]\nabi3 = "3.9"\n')
    from wheelfarm.plan.recipe import load

    loaded = load(recipe)
    assert loaded.pythons == ("cp312", "cp39") and loaded.abi3 == "cp39"


def test_an_explicit_python_outside_requires_python_is_refused_before_building(
        tmp_path: Path) -> None:
    demo = project(tmp_path / "demo", ">=3.13")
    code, lines = run(["build", str(demo), "--python", "3.12", "--target", "linux_x86_64",
                       "--out", str(tmp_path / "out"), "--farm", str(tmp_path)])
    assert code == 2
    assert lines == [f"error: --python cp312: demo requires Python >=3.13 "
                     f"({demo / 'pyproject.toml'})"]
    assert not (tmp_path / "out").exists()


def test_a_recipes_python_outside_requires_python_names_the_key(tmp_path: Path) -> None:
    demo = project(tmp_path / "demo", ">=3.13", 'pythons = ["cp312", "cp313"]')
    with pytest.raises(RecipeError, match=r"pyproject.toml: tool\.wheelfarm\.build\.pythons: "
                                          r"cp312 is outside the project's Requires-Python "
                                          r">=3\.13"):
        api.plan_build(api.BuildRequest([demo], farm_dir=tmp_path, targets=["linux_x86_64"]))


def test_a_default_python_outside_requires_python_is_skipped_with_a_note(
        tmp_path: Path) -> None:
    available = pythons.supported(pythons.discover())
    if not {"cp312", "cp313"} <= set(available):
        pytest.skip("needs CPython 3.12 and 3.13")
    (tmp_path / "wheelfarm.toml").write_text('pythons = ["cp312", "3.13"]\n')
    demo = project(tmp_path / "demo", ">=3.13")
    planned = api.plan_build(api.BuildRequest([demo], farm_dir=tmp_path,
                                              targets=["linux_x86_64"]))
    assert [j.python for j in planned.jobs] == ["cp313"]
    assert planned.skipped == ["demo: cp312 skipped (Requires-Python >=3.13)"]
    code, lines = run(["plan", str(demo), "--target", "linux_x86_64", "--farm", str(tmp_path)])
    assert code == 0 and lines[0] == "note: demo: cp312 skipped (Requires-Python >=3.13)"
