from __future__ import annotations

from pathlib import Path

import pytest

from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.plan import recipe

GOOD = """
[package]
name = "fastadd"
version = "0.1.0"

[source]
path = "src"

[build]
targets = ["manylinux2014_x86_64"]
pythons = ["cp39", "cp312"]
env = {CFLAGS = "-O2"}

[test]
imports = ["fastadd"]
"""


def write(tmp_path: Path, text: str, name: str = "r.toml") -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_recipe_loads_and_normalizes_targets(tmp_path: Path) -> None:
    r = recipe.load(write(tmp_path, GOOD))
    assert r.name == "fastadd"
    assert [t.name for t in r.targets or ()] == ["manylinux_2_17_x86_64"]
    assert r.pythons == ("cp39", "cp312")
    assert r.source.kind == "path"
    assert r.source.location == str((tmp_path / "src").resolve())
    assert dict(r.env) == {"CFLAGS": "-O2"}
    assert r.test.imports == ("fastadd",)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("targets =", "tagets =", "r.toml: build.tagets: unknown key; did you mean 'targets'?"),
        ('pythons = ["cp39", "cp312"]', 'pythons = "cp39"',
         "r.toml: build.pythons: expected a list of strings, got a string"),
        ('pythons = ["cp39", "cp312"]', 'pythons = ["py3"]',
         "r.toml: build.pythons: unknown python"),
        ('targets = ["manylinux2014_x86_64"]', 'targets = ["manylinux2014_x86"]',
         "r.toml: build.targets: unknown target 'manylinux2014_x86'"),
        ('path = "src"', 'path = "nowhere"', "r.toml: source.path: no such directory"),
        ('path = "src"', 'path = "src"\nurl = "https://x/y.tar.gz"',
         "r.toml: source: two sources (path and url)"),
        ('path = "src"', 'url = "https://x/y.tar.gz"',
         "r.toml: source.sha256: required with source.url"),
        ('path = "src"', 'git = "https://x/y.git"', "r.toml: source.rev: required with source.git"),
        ('path = "src"', 'git = "https://x/y.git"\nrev = "main"',
         "r.toml: source.rev: expected a full 40-digit commit id"),
        ('path = "src"', 'pypi = true\nsha256 = "abc"', "r.toml: source.sha256: expected 64"),
        ('version = "0.1.0"', 'version = "not a version"', "r.toml: package.version:"),
        ('[test]', '[tests]', "r.toml: tests: unknown key; did you mean 'test'?"),
    ],
)
def test_malformed_recipe_names_file_and_key(tmp_path: Path, old: str, new: str,
                                              expected: str) -> None:
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(RecipeError) as info:
        recipe.load(path)
    assert str(info.value).startswith(str(path.parent / expected.split(":", 1)[0]) + ":")
    assert expected.split(": ", 1)[1] in str(info.value)
    assert info.value.exit_code == 2


def test_missing_source_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="source: missing"):
        recipe.load(write(tmp_path, '[package]\nname = "x"\nversion = "1"\n'))
    with pytest.raises(RecipeError, match="invalid TOML"):
        recipe.load(write(tmp_path, "[package\n"))
    with pytest.raises(RecipeError, match=r"package\.name: required"):
        recipe.load(write(tmp_path, '[package]\nversion = "1"\n[source]\npath="src"\n'))


def test_project_directory_is_an_implicit_recipe(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "2.0"\nrequires-python = ">=3.10"\n'
        '[tool.wheelfarm.test]\nimports = ["demo"]\n'
    )
    r = recipe.load(tmp_path)
    assert (r.name, r.version, r.requires_python) == ("demo", "2.0", ">=3.10")
    assert r.test.imports == ("demo",)
    (tmp_path / "pyproject.toml").write_text('[project]\nname="demo"\n[tool.wheelfarm.bild]\n')
    with pytest.raises(RecipeError,
                       match=r"tool\.wheelfarm\.bild: unknown key; did you mean 'build'"):
        recipe.load(tmp_path)


def test_digest_changes_with_settings_not_location(tmp_path: Path) -> None:
    a = recipe.load(write(tmp_path, GOOD))
    b = recipe.load(write(tmp_path, GOOD, name="copy.toml"))
    c = recipe.load(write(tmp_path, GOOD.replace("-O2", "-O3"), name="c.toml"))
    assert a.digest() == b.digest()
    assert a.digest() != c.digest()


def test_discover_directory_and_duplicates(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.toml")
    assert [r.name for r in recipe.discover([tmp_path])] == ["fastadd"]
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(RecipeError, match="also defined by"):
        recipe.discover([tmp_path])
    with pytest.raises(ConfigError, match="no such file"):
        recipe.discover([tmp_path / "missing.toml"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no recipes"):
        recipe.discover([empty])


def test_owners_are_read_checked_and_not_part_of_the_key(tmp_path: Path) -> None:
    base = '[package]\nname = "demo"\nversion = "1.0"\n{owners}\n[source]\npath = "."\n'
    path = tmp_path / "demo.toml"
    path.write_text(base.format(owners='owners = ["@alice", "bob@example.org", "@alice"]'))
    owned = recipe.load(path)
    assert owned.owners == ("@alice", "bob@example.org")
    path.write_text(base.format(owners=""))
    assert recipe.load(path).digest() == owned.digest()
    path.write_text(base.format(owners='owners = ["two words"]'))
    with pytest.raises(RecipeError, match=r"demo.toml: package.owners: 'two words'"):
        recipe.load(path)


def test_a_project_names_its_owners_under_tool_wheelfarm(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "1.0"\n'
        '[tool.wheelfarm]\nowners = ["@team-wheels"]\n')
    assert recipe.load(tmp_path).owners == ("@team-wheels",)
