"""The recipe memo: parsed recipes reused between runs while their files are unchanged."""

from __future__ import annotations

import os
from pathlib import Path

from wheelfarm.plan import recipe
from wheelfarm.plan.recipememo import RecipeMemo

PYPI = """
[package]
name = "{name}"
version = "1.0"

[source]
pypi = true
sha256 = "{sha}"

[build]
pythons = ["cp312"]
"""

PATH = """
[package]
name = "local"
version = "1.0"

[source]
path = "src"
"""


def write(folder: Path, name: str, sha: str = "a" * 64) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(PYPI.format(name=name, sha=sha), encoding="utf-8")
    return path


def reload(memo_file: Path, folder: Path) -> tuple[list[recipe.Recipe], RecipeMemo]:
    memo = RecipeMemo(memo_file)
    found = recipe.discover([folder], load_file=memo.load)
    memo.save()
    return found, memo


def test_an_unchanged_file_comes_from_the_memo(tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    file = write(folder, "one")
    memo_file = tmp_path / "state" / "recipes.memo"
    first, memo = reload(memo_file, folder)
    assert memo_file.is_file() and memo.dirty is False
    # Same size, same modification time, other bytes: only a memo would still say "a".
    stat = file.stat()
    file.write_text(PYPI.format(name="one", sha="b" * 64), encoding="utf-8")
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second, memo = reload(memo_file, folder)
    assert second == first and second[0].source.sha256 == "a" * 64
    assert memo.dirty is False
    assert second[0].digest() == first[0].digest()


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    file = write(folder, "one")
    memo_file = tmp_path / "recipes.memo"
    (first,), _ = reload(memo_file, folder)
    write(folder, "one", sha="c" * 64)
    os.utime(file, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns + 1_000_000))
    (second,), _ = reload(memo_file, folder)
    assert second.source.sha256 == "c" * 64
    assert second.digest() != first.digest()
    assert second == recipe.load(file)


def test_a_path_source_is_hashed_afresh(tmp_path: Path) -> None:
    """The recipe file may stay the same while the tree it points at changes."""
    folder = tmp_path / "recipes"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "setup.py").write_text("# one\n", encoding="utf-8")
    (folder / "local.toml").write_text(PATH, encoding="utf-8")
    memo_file = tmp_path / "recipes.memo"
    memo = RecipeMemo(memo_file)
    first = memo.load(folder / "local.toml")
    before = first.digest()  # computed on the very object the memo holds...
    memo.load(write(folder, "other"))
    memo.save()  # ...and saved after it
    (folder / "other.toml").unlink()
    (folder / "src" / "setup.py").write_text("# two\n", encoding="utf-8")
    (again,), _ = reload(memo_file, folder)
    assert again.digest() != before


def test_a_damaged_memo_is_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    write(folder, "one")
    memo_file = tmp_path / "recipes.memo"
    memo_file.write_bytes(b"not a pickle")
    (found,), _ = reload(memo_file, folder)
    assert found == recipe.load(folder / "one.toml")
    assert RecipeMemo(memo_file).entries  # rewritten, readable again


def test_recipe_errors_still_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "bad.toml").write_text("[package]\nnmae = 1\n", encoding="utf-8")
    memo = RecipeMemo(tmp_path / "recipes.memo")
    try:
        recipe.discover([folder], load_file=memo.load)
    except recipe.RecipeError as exc:
        assert "bad.toml" in str(exc)
    else:
        raise AssertionError("a malformed recipe must be refused")
    assert memo.entries == {}
