"""wheelcheck: a wheel's name against its job, its zip and its RECORD."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from wheelfarm.build.wheelcheck import Expected, check_name, check_sound
from wheelfarm.errors import WheelRefused

from ..security.farm import make_wheel

JOB = Expected("My.Project", "1.0", "cp312", "manylinux2014_x86_64")


@pytest.mark.parametrize("name", [
    "my_project-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "my_project-1.0.0-cp312-cp312-manylinux_2_5_x86_64.manylinux1_x86_64.whl",
    "my_project-1.0-cp39-abi3-manylinux_2_17_x86_64.whl",
    "my_project-1.0-1-cp312-cp312-manylinux_2_17_x86_64.whl",  # a build tag
    "my_project-1.0-py3-none-any.whl",
])
def test_the_jobs_own_names_pass(name: str) -> None:
    check_name(name, JOB)


@pytest.mark.parametrize("name", [
    "victim-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
    "my_project-1.1-cp312-cp312-manylinux_2_17_x86_64.whl",
    "my_project-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    "my_project-1.0-cp313-abi3-manylinux_2_17_x86_64.whl",
    "my_project-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
    "my_project-1.0-cp312-cp312-manylinux_2_17_aarch64.whl",
    "my_project-1.0-cp312-cp312-linux_x86_64.whl",
    "my_project-1.0-py2-none-any.whl",
    "../my_project-1.0-py3-none-any.whl",
    "my_project.whl",
])
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(WheelRefused):
        check_name(name, JOB)


def test_a_sound_wheel_written_by_zipfile_passes(tmp_path: Path) -> None:
    check_sound(make_wheel(tmp_path, "my-project"))


@pytest.mark.parametrize("how", ["lie", "no record", "escape", "unlisted", "symlink"])
def test_unsound_wheels_are_refused(tmp_path: Path, how: str) -> None:
    if how == "lie":
        wheel = make_wheel(tmp_path, "p", lie=True)
    elif how == "no record":
        wheel = make_wheel(tmp_path, "p", record=False)
    elif how == "escape":
        wheel = make_wheel(tmp_path, "p", extra={"../x.pth": b"import os\n"})
    else:
        wheel = make_wheel(tmp_path, "p")
        with zipfile.ZipFile(wheel, "a") as zf:
            info = zipfile.ZipInfo("p/link")
            if how == "symlink":
                info.create_system, info.external_attr = 3, (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    with pytest.raises(WheelRefused):
        check_sound(wheel)


MAC_JOB = Expected("My.Project", "1.0", "cp312", "macosx_11_0_arm64")


@pytest.mark.parametrize(("name", "ok"), [
    ("my_project-1.0-cp312-cp312-macosx_11_0_arm64.whl", True),
    ("my_project-1.0-cp312-cp312-macosx_12_0_arm64.whl", False),  # needs a newer macOS
    ("my_project-1.0-cp312-cp312-macosx_11_0_x86_64.whl", False),
    ("my_project-1.0-cp312-cp312-manylinux_2_17_aarch64.whl", False),
])
def test_a_macos_jobs_wheel_must_carry_its_tag(name: str, ok: bool) -> None:
    if ok:
        check_name(name, MAC_JOB)
    else:
        with pytest.raises(WheelRefused):
            check_name(name, MAC_JOB)
