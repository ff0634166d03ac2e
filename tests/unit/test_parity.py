"""Parity with upstream: choosing the upstream wheel, listing modules, judging."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.wheels import make_wheel
from wheelfarm.build import parity
from wheelfarm.build.parity import ModuleSizes, ParityReport
from wheelfarm.build.paritybench import BenchTiming
from wheelfarm.errors import ParityError, RecipeError, SourceError
from wheelfarm.farm.wheelhouse import Wheelhouse
from wheelfarm.plan import recipe
from wheelfarm.publish import index

SO = "cpython-312-x86_64-linux-gnu.so"


def _wheel(directory: Path, filename: str, members: dict[str, bytes]) -> Path:
    name, version, tag = filename.removesuffix(".whl").split("-", 2)
    return make_wheel(directory, name, version, tag, members=members)


def test_extension_modules_are_named_by_import_path_without_grafted_libraries(
        tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", {
        f"pkg/_speedups.{SO}": b"x" * 10,
        "pkg/_limited.abi3.so": b"x" * 3,
        f"toplevel.{SO}": b"x" * 7,
        "pkg/__init__.py": b"",
        "pkg.libs/libfoo-1a2b3c.so.1": b"x" * 99,
        "pkg-1.0.data/data/share/x.so": b"x",
    })
    assert parity.extension_modules(wheel) == {
        "pkg._speedups": 10, "pkg._limited": 3, "toplevel": 7}


LINKS = [
    ("pkg-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", "u/a", None),
    ("pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "u/b", "ab" * 32),
    ("pkg-1.0-cp38-abi3-manylinux_2_17_x86_64.whl", "u/c", None),
    ("pkg-1.0-cp312-cp312-manylinux_2_17_aarch64.whl", "u/d", None),
    ("pkg-1.0-cp312-cp312-musllinux_1_1_x86_64.whl", "u/e", None),
    ("pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "u/f", None),
    ("pkg-1.1-cp312-cp312-manylinux_2_17_x86_64.whl", "u/g", None),
    ("pkg-1.0.tar.gz", "u/h", None),
]


def test_the_upstream_wheel_matches_version_python_and_platform_family() -> None:
    farm = {"manylinux_2_17_x86_64", "manylinux2014_x86_64"}
    assert parity.choose(LINKS, "pkg", "1.0", "cp312", farm) == LINKS[1]
    # No wheel of its own ABI: the stable ABI wheel pip would install.
    assert parity.choose(LINKS[2:], "pkg", "1.0", "cp312", farm) == LINKS[2]
    # A farm build for a newer glibc still compares with the nearest older one.
    assert parity.choose(LINKS, "pkg", "1.0", "cp312", {"manylinux_2_31_x86_64"}) == LINKS[0]
    assert parity.choose(LINKS, "pkg", "1.0", "cp312", {"manylinux_2_17_aarch64"}) == LINKS[3]
    assert parity.choose(LINKS, "pkg", "1.0", "cp310", farm) == LINKS[2]  # abi3
    assert parity.choose(LINKS, "pkg", "1.0", "cp37", farm) is None
    assert parity.choose(LINKS, "pkg", "2.0", "cp312", farm) is None
    assert parity.choose(LINKS[3:], "PKG", "1.0.0", "cp312", farm) is None


def test_a_missing_module_fails_naming_it() -> None:
    report = ParityReport(upstream="pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                          missing=["pkg._speedups"],
                          modules=[ModuleSizes("pkg._speedups", None, 100)])
    with pytest.raises(ParityError, match=r"lacks extension module\(s\).*: pkg\._speedups$"):
        parity.judge(report)


def test_a_ratio_above_the_limit_fails_with_both_timings() -> None:
    report = ParityReport(upstream="u.whl", bench=BenchTiming(0.0105, 0.001, 64, 6))
    with pytest.raises(ParityError) as caught:
        parity.judge(report)
    assert "10.50x slower" in str(caught.value)
    assert "farm 10.500 ms, upstream 1.000 ms" in str(caught.value)
    assert caught.value.exit_code == 1
    parity.judge(ParityReport(upstream="u.whl", bench=BenchTiming(0.0019, 0.001, 64, 6)))
    loose = ParityReport(upstream="u.whl", bench=BenchTiming(0.0105, 0.001, 64, 6),
                         max_ratio=12.0)
    parity.judge(loose)
    assert loose.to_json()["ratio"] == pytest.approx(10.5)


def _index_with(tmp_path: Path, wheel: Path) -> str:
    out = tmp_path / "index"
    out.mkdir()
    (out / wheel.name).write_bytes(wheel.read_bytes())
    Wheelhouse(out).reindex()
    return (out / "simple").as_uri() + "/"


def test_the_upstream_wheel_is_fetched_once_and_cached_by_name_and_sha256(
        tmp_path: Path) -> None:
    up = _wheel(tmp_path, "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                {f"pkg/_x.{SO}": b"1"})
    url = _index_with(tmp_path, up)
    farm = tmp_path / "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    log = io.StringIO()
    got = parity.find_upstream(url, "pkg", "1.0", "cp312", farm, tmp_path / "cache", log)
    assert got is not None and got.read_bytes() == up.read_bytes()
    assert got.parent.name == index._sha256(up) and got.parent.parent.name == "upstream"
    again = parity.find_upstream(url, "pkg", "1.0", "cp312", farm, tmp_path / "cache", log)
    assert again == got
    assert "(cached)" in log.getvalue().splitlines()[-1]


def test_a_download_that_does_not_match_the_index_hash_is_refused(tmp_path: Path) -> None:
    up = _wheel(tmp_path, "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", {})
    url = _index_with(tmp_path, up)
    page = tmp_path / "index" / "simple" / "pkg" / "index.json"
    data = json.loads(page.read_text())
    data["files"][0]["hashes"]["sha256"] = "0" * 64
    page.write_text(json.dumps(data))
    with pytest.raises(SourceError, match="sha256 mismatch"):
        parity.find_upstream(url, "pkg", "1.0", "cp312", up, tmp_path / "cache", io.StringIO())


def test_without_an_upstream_wheel_the_log_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    Wheelhouse(empty).reindex()
    farm = _wheel(tmp_path, "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", {})
    log = io.StringIO()
    got = parity.find_upstream((empty / "simple").as_uri(), "pkg", "1.0", "cp312", farm,
                               tmp_path / "cache", log)
    assert got is None


BENCH_RECIPE = """
[package]
name = "x"
version = "1.0"
[source]
path = "src"
[test]
bench = "import x"
{extra}
"""


def test_recipe_bench_keys(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "r.toml"
    path.write_text(BENCH_RECIPE.format(extra="bench-max-ratio = 3"))
    r = recipe.load(path)
    assert (r.test.bench, r.test.bench_command, r.test.bench_max_ratio) == ("import x", None, 3.0)
    path.write_text(BENCH_RECIPE.format(extra='bench-command = "true"'))
    with pytest.raises(RecipeError, match=r"test\.bench-command: give test\.bench"):
        recipe.load(path)
    path.write_text(BENCH_RECIPE.format(extra="bench-max-ratio = 0"))
    with pytest.raises(RecipeError, match=r"test\.bench-max-ratio: must be a positive"):
        recipe.load(path)
