"""[package] track: which upstream releases `outdated` and `bump` propose."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from wheelfarm.errors import RecipeError
from wheelfarm.plan import recipe, tracking

RELEASES = [Version(v) for v in ("1.4.2", "1.4.7", "1.9.0", "2.0.0", "2.1.0rc1", "3.0.0.dev1")]


@pytest.mark.parametrize(("track", "expected"), [
    (None, "2.0.0"),  # every final release
    ("minor", "1.9.0"),  # this major version
    ("patch", "1.4.7"),  # this major.minor
    ("<1.5", "1.4.7"),
    (">=1.5,<2", "1.9.0"),
    ("<1.4.2", None),  # nothing above the current one is allowed
])
def test_newest_within_the_track(track: str | None, expected: str | None) -> None:
    found = tracking.newest(Version("1.4.2"), RELEASES, track)
    assert (str(found) if found else None) == expected


def test_pre_and_dev_releases_are_never_proposed() -> None:
    assert tracking.newest(Version("2.0.0"), RELEASES, None) is None
    assert tracking.newest(Version("2.0.0"), RELEASES, ">=2") is None


def test_patch_compares_major_and_minor_whatever_the_spelling() -> None:
    assert tracking.newest(Version("2"), [Version("2.0.1"), Version("2.1")], "patch") \
        == Version("2.0.1")


@pytest.mark.parametrize("bad", ["major", "", "  ", "~~1"])
def test_bad_track_is_refused_naming_the_key(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "demo.toml"
    path.write_text(f'[package]\nname = "demo"\nversion = "1.0"\ntrack = "{bad}"\n'
                    f'[source]\npypi = true\nsha256 = "{"0" * 64}"\n')
    with pytest.raises(RecipeError, match=r"demo.toml: package.track: "):
        recipe.load(path)


def test_track_is_kept_and_not_part_of_the_job_key(tmp_path: Path) -> None:
    base = f'[package]\nname = "demo"\nversion = "1.0"\n{{}}[source]\npypi = true\n' \
           f'sha256 = "{"0" * 64}"\n'
    plain, tracked = tmp_path / "a.toml", tmp_path / "b.toml"
    plain.write_text(base.format(""))
    tracked.write_text(base.format('track = "minor"\n'))
    assert recipe.load(tracked).track == "minor"
    assert recipe.load(plain).track is None
    assert recipe.load(plain).digest() == recipe.load(tracked).digest()


def test_pypi_recipe_without_hash_names_the_command_that_pins_it(tmp_path: Path) -> None:
    path = tmp_path / "recipes" / "markupsafe.toml"
    path.parent.mkdir()
    path.write_text('[package]\nname = "markupsafe"\nversion = "3.0.3"\n[source]\npypi = true\n')
    with pytest.raises(RecipeError) as info:
        recipe.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: source.sha256: required with source.pypi")
    assert f"'wheelfarm add markupsafe==3.0.3 --dir {path.parent} --force'" in message
    assert f"'wheelfarm bump {path} --to 3.0.3'" in message
