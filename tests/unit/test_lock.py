"""Locked build requirements (lock.py): satisfaction, digests, the lock file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from wheelfarm.errors import ConfigError
from wheelfarm.plan import lockfile as lock
from wheelfarm.plan.lockfile import Lock, LockedPython, Pinned
from wheelfarm.plan.recipe import Recipe
from wheelfarm.plan.sourcespec import SourceSpec

SHA = {name: f"{i:x}" * 64 for i, name in enumerate(
    ["setuptools", "wheel", "cython", "scikit-build-core", "numpy"], start=1)}


def make_recipe(path: Path) -> Recipe:
    return Recipe(path=path, name="demo", version="1.0",
                  source=SourceSpec(kind="path", location=str(path.parent)))


def pinned(*pairs: tuple[str, str]) -> tuple[Pinned, ...]:
    return tuple(Pinned(name, version, SHA[name]) for name, version in pairs)


ENTRY = LockedPython(
    static=("setuptools>=61", "cython>=3"),
    dynamic=("wheel",),
    packages=pinned(("cython", "3.0.8"), ("scikit-build-core", "0.8.0rc1"),
                    ("setuptools", "69.0.0"), ("wheel", "0.42.0")),
)


# -- LockedPython -------------------------------------------------------------------------


def test_lines_pin_version_and_hash() -> None:
    assert ENTRY.lines() == [
        f"cython==3.0.8 --hash=sha256:{SHA['cython']}",
        f"scikit-build-core==0.8.0rc1 --hash=sha256:{SHA['scikit-build-core']}",
        f"setuptools==69.0.0 --hash=sha256:{SHA['setuptools']}",
        f"wheel==0.42.0 --hash=sha256:{SHA['wheel']}",
    ]


def test_satisfied_requirements() -> None:
    assert ENTRY.unsatisfied([
        "setuptools>=61", "setuptools", "wheel==0.42.0", "Cython>=3,<4",
        "scikit_build_core>=0.7",  # other spelling; a locked pre-release counts
        "scikit-build-core==0.8.0rc1",
        'pywin32>=300; sys_platform == "win32"',  # not for this host
        "setuptools[core]>=61",
    ]) == []
    assert ENTRY.unsatisfied([]) == []


def test_unsatisfied_requirements_in_order() -> None:
    wanted = ["setuptools>=70", "wheel", "numpy>=1.26", "cython<3", "this is not valid!",
              'numpy; sys_platform != "win32"', "Cython>=3"]
    assert ENTRY.unsatisfied(wanted) == [
        "setuptools>=70", "numpy>=1.26", "cython<3", "this is not valid!",
        'numpy; sys_platform != "win32"']


def test_nothing_pinned_satisfies_nothing() -> None:
    empty = LockedPython(static=(), dynamic=(), packages=())
    assert empty.unsatisfied(["wheel", "setuptools"]) == ["wheel", "setuptools"]
    assert empty.lines() == []


def test_digest_is_stable_and_covers_every_field() -> None:
    same = LockedPython(static=tuple(ENTRY.static), dynamic=tuple(ENTRY.dynamic),
                        packages=tuple(ENTRY.packages))
    assert same.digest() == ENTRY.digest()
    assert re.fullmatch(r"[0-9a-f]{64}", ENTRY.digest())
    variants = [
        LockedPython(("setuptools>=62", "cython>=3"), ENTRY.dynamic, ENTRY.packages),
        LockedPython(ENTRY.static, (), ENTRY.packages),
        LockedPython(ENTRY.static, ENTRY.dynamic, ENTRY.packages[:-1]),
        LockedPython(ENTRY.static, ENTRY.dynamic,
                     (*ENTRY.packages[:-1], Pinned("wheel", "0.43.0", SHA["wheel"]))),
        LockedPython(ENTRY.static, ENTRY.dynamic,
                     (*ENTRY.packages[:-1], Pinned("wheel", "0.42.0", "f" * 64))),
    ]
    digests = {v.digest() for v in variants} | {ENTRY.digest()}
    assert len(digests) == len(variants) + 1


def test_lock_digest_per_python(tmp_path: Path) -> None:
    other = LockedPython(static=(), dynamic=(), packages=pinned(("setuptools", "75.0.0")))
    whole = Lock(path=tmp_path / "r.lock", index_url="https://pypi.org/simple/",
                 pythons={"cp312": ENTRY, "cp39": other})
    assert whole.digest("cp312") == ENTRY.digest()
    assert whole.digest("cp39") == other.digest() != ENTRY.digest()
    assert whole.digest("cp313") == ""


# -- the lock file ------------------------------------------------------------------------


def test_path_for_a_recipe_and_a_project(tmp_path: Path) -> None:
    assert lock.path_for(make_recipe(tmp_path / "recipes" / "demo.toml")) == \
        tmp_path / "recipes" / "demo.lock"
    assert lock.path_for(make_recipe(tmp_path / "proj" / "pyproject.toml")) == \
        tmp_path / "proj" / "wheelfarm.lock"


def test_write_load_round_trip(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path / "demo.toml")
    assert lock.load(recipe) is None
    other = LockedPython(static=("setuptools",), dynamic=(),
                         packages=pinned(("setuptools", "75.0.0")))
    written = Lock(path=lock.path_for(recipe), index_url="https://mirror.example/simple/",
                   pythons={"cp39": other, "cp312": ENTRY})
    lock.write(written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.lock"]
    loaded = lock.load(recipe)
    assert loaded == written
    assert loaded is not None
    assert loaded.digest("cp312") == ENTRY.digest()
    data = json.loads((tmp_path / "demo.lock").read_text(encoding="utf-8"))
    assert data["schema"] == 1
    assert data["index-url"] == "https://mirror.example/simple/"
    assert data["pythons"]["cp312"]["packages"][0] == {
        "name": "cython", "version": "3.0.8", "sha256": SHA["cython"]}


def test_round_trip_for_a_project(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path / "pyproject.toml")
    written = Lock(path=lock.path_for(recipe), index_url="https://pypi.org/simple/",
                   pythons={"cp312": ENTRY})
    lock.write(written)
    assert (tmp_path / "wheelfarm.lock").is_file()
    assert lock.load(recipe) == written


GOOD = {"schema": 1, "index-url": "https://pypi.org/simple/",
        "pythons": {"cp312": {"static": [], "dynamic": [],
                              "packages": [{"name": "wheel", "version": "0.42.0",
                                            "sha256": SHA["wheel"]}]}}}


def _without(key: str) -> dict[str, object]:
    return {k: v for k, v in GOOD.items() if k != key}


MALFORMED = {
    "not json": "{schema: 1",
    "empty file": "",
    "no pythons": json.dumps(_without("pythons")),
    "no index-url": json.dumps(_without("index-url")),
    "entry without packages": json.dumps(
        {**GOOD, "pythons": {"cp312": {"static": [], "dynamic": []}}}),
    "package with a strange field": json.dumps(
        {**GOOD, "pythons": {"cp312": {"static": [], "dynamic": [], "packages": [
            {"name": "wheel", "version": "1", "sha256": "x", "url": "y"}]}}}),
    "entry is a string": json.dumps({**GOOD, "pythons": {"cp312": "wheel==1"}}),
    "top level is a list": "[]",
    "pythons is a list": json.dumps({**GOOD, "pythons": []}),
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_lock_is_a_config_error(tmp_path: Path, text: str) -> None:
    recipe = make_recipe(tmp_path / "demo.toml")
    (tmp_path / "demo.lock").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"demo\.lock: malformed lock file") as info:
        lock.load(recipe)
    assert info.value.exit_code == 2
    assert "wheelfarm lock" in str(info.value)


def test_unknown_schema_is_a_config_error(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path / "demo.toml")
    (tmp_path / "demo.lock").write_text(json.dumps({**GOOD, "schema": 2}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"demo\.lock: unknown lock schema 2"):
        lock.load(recipe)


def test_good_fixture_loads(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path / "demo.toml")
    (tmp_path / "demo.lock").write_text(json.dumps(GOOD), encoding="utf-8")
    loaded = lock.load(recipe)
    assert loaded is not None
    assert loaded.pythons["cp312"].packages == (Pinned("wheel", "0.42.0", SHA["wheel"]),)
