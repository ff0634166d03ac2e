"""The one recipe writer: new recipes for `add`, new pins for `bump`, comments kept."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from wheelfarm.errors import RecipeError
from wheelfarm.plan import recipe, recipeedit

OLD, NEW = "1" * 64, "2" * 64
COMMENTED = f"""\
# The C fixture, from an index.   Odd   spacing and comments stay.

[package]
name = "fastadd"      # the project
version = "0.1.0"     # pinned: see the changelog
track = "minor"

[source]
pypi = true
sha256 = "{OLD}"  # from the index

[build]
# targets = ["manylinux2014_x86_64"]
pythons = [ "cp39",   "cp312" ]
env = {{ A = "1" }}
"""


def test_pin_changes_the_version_and_hash_lines_alone(tmp_path: Path) -> None:
    path = tmp_path / "fastadd.toml"
    new = recipeedit.pin(COMMENTED, path, "0.2.0", NEW)
    changed = [line for line in difflib.unified_diff(
        COMMENTED.splitlines(), new.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [
        '-version = "0.1.0"     # pinned: see the changelog',
        '+version = "0.2.0"     # pinned: see the changelog',
        f'-sha256 = "{OLD}"  # from the index',
        f'+sha256 = "{NEW}"  # from the index',
    ]


def test_pin_adds_a_missing_hash(tmp_path: Path) -> None:
    path = tmp_path / "demo.toml"
    path.write_text('[package]\nname = "demo"\nversion = "1.0"\n\n[source]\npypi = true\n')
    text = path.read_text()
    pinned = recipeedit.read_pin(text, path)
    assert (pinned.name, pinned.version, pinned.kind, pinned.sha256) == ("demo", "1.0", "pypi",
                                                                         None)
    path.write_text(recipeedit.pin(text, path, "1.0", NEW))
    assert recipe.load(path).source.sha256 == NEW


def test_read_pin_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"x.toml: package.version: required"):
        recipeedit.read_pin('[package]\nname = "x"\n[source]\npypi = true\n', tmp_path / "x.toml")
    with pytest.raises(RecipeError, match=r"x.toml: invalid TOML"):
        recipeedit.read_pin("[package\n", tmp_path / "x.toml")


@pytest.mark.parametrize("kind", ["pypi", "git"])
def test_new_recipe_loads(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "my-proj.toml"
    if kind == "pypi":
        text = recipeedit.new_recipe("My-Proj", "2.0", sha256=NEW, origin="https://i/simple/")
    else:
        text = recipeedit.new_recipe("My-Proj", "2.0", git="https://example.invalid/p.git",
                                     rev="a" * 40)
    path.write_text(text)
    loaded = recipe.load(path)
    assert (loaded.name, loaded.version, loaded.source.kind) == ("My-Proj", "2.0", kind)
    assert "# imports = [\"my_proj\"]" in text  # a hint, never a guess that could fail a build


def test_new_recipe_quotes_what_it_is_given(tmp_path: Path) -> None:
    text = recipeedit.new_recipe("demo", "1.0", git='https://h/"quoted"\\.git', rev="b" * 40)
    assert recipe.loads(text, tmp_path / "demo.toml").source.location == \
        'https://h/"quoted"\\.git'
