"""The recipes in recipes/ ship with their locks: `make run` builds them locked and
never warns "no lock file"."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelfarm.plan import lockfile, recipe

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.toml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_has_a_lock_for_each_of_its_pythons(path: Path) -> None:
    loaded = recipe.load(path)
    lock = lockfile.load(loaded)
    assert lock is not None, f"{path}: run 'wheelfarm lock {path}' and commit the lock"
    assert loaded.pythons is not None
    assert set(lock.pythons) >= set(loaded.pythons)  # fastadd: cp311 too, for `make run`
    for entry in lock.pythons.values():
        assert not entry.unsatisfied(entry.static)
