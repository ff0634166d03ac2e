"""Parity with upstream, end to end: a reference wheel of the fixture
``paritydemo`` (both extension modules, one pass over the data) is built and
put in a local PEP 503 index, which the farm under test names as its
``index-url``; then builds of the same project, version and Python must
match it (modules, and ``test.bench`` within the allowed ratio) or fail."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .helpers import PROJECTS, python_for, wheelfarm

pytestmark = pytest.mark.integration

RECIPE = """
[package]
name = "paritydemo"
version = "0.1.0"
[source]
path = "{path}"
[build]
targets = ["native"]
pythons = ["cp312"]
env = {{ PARITYDEMO_FLAVOUR = "{flavour}" }}
[test]
imports = ["paritydemo._core"]
bench = '''
import paritydemo
DATA = bytes(range(256)) * 1600
def bench():
    paritydemo.checksum(DATA)
'''
"""


def _farm(where: Path, flavour: str, index_url: str | None) -> Path:
    where.mkdir(parents=True)
    if index_url is not None:
        (where / "wheelfarm.toml").write_text(f'index-url = "{index_url}"\n')
    recipe = where / "paritydemo.toml"
    recipe.write_text(RECIPE.format(path=PROJECTS / "paritydemo", flavour=flavour))
    return recipe


def _build(where: Path, flavour: str, index_url: str | None, *extra: str
           ) -> tuple[int, str, dict[str, Any], str]:
    """exit code, stderr, the job's --json entry, the job's log."""
    recipe = _farm(where, flavour, index_url)
    result = wheelfarm("build", recipe, "--out", where / "out", "--json", where / "report.json",
                       *extra, cwd=where, timeout=900)
    job = json.loads((where / "report.json").read_text())["jobs"][0]
    log = Path(job["attempts"][0]["log"]).read_text()
    return result.returncode, result.stderr, job, log


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local index holding the reference build; its URL."""
    python_for("cp312")
    where = tmp_path_factory.mktemp("reference") / "farm"
    code, err, job, _log = _build(where, "reference", None, "--no-compare-upstream")
    assert code == 0, err[-3000:]
    assert "parity" not in job
    return (where / "out" / "simple").as_uri() + "/"


def test_a_wheel_like_upstreams_passes_with_modules_sizes_and_ratio_reported(
        reference: str, tmp_path: Path) -> None:
    code, err, job, log = _build(tmp_path / "farm", "reference", reference)
    assert code == 0, err[-3000:]
    report = job["parity"]
    assert report["upstream"].startswith("paritydemo-0.1.0-cp312-cp312-")
    assert [m["module"] for m in report["modules"]] == ["paritydemo._core",
                                                        "paritydemo._speedups"]
    assert all(m["farm_bytes"] > 0 and m["upstream_bytes"] > 0 for m in report["modules"])
    assert report["missing"] == []
    assert 0 < report["ratio"] <= 2.0
    assert "module paritydemo._speedups: farm " in log
    assert re.search(r"bench: farm [\d.]+ ms, upstream [\d.]+ ms, ratio [\d.]+", log)


def test_a_wheel_lacking_an_extension_module_upstream_ships_fails_naming_it(
        reference: str, tmp_path: Path) -> None:
    code, err, job, _log = _build(tmp_path / "farm", "fallback", reference)
    assert code == 1
    assert job["state"] == "failed"
    assert job["parity"]["missing"] == ["paritydemo._speedups"]
    assert "failed (parity)" in " ".join(err.split()) or "parity" in err
    assert re.search(r"parity: the farm's wheel lacks extension module\(s\) that upstream's "
                     r"paritydemo-0\.1\.0-\S+ ships: paritydemo\._speedups", err), err[-3000:]


def test_a_wheel_ten_times_slower_than_upstream_fails_with_both_timings(
        reference: str, tmp_path: Path) -> None:
    code, err, job, _log = _build(tmp_path / "farm", "slow", reference)
    assert code == 1, err[-3000:]
    found = re.search(r"the farm's wheel is ([\d.]+)x slower than upstream's \S+ "
                      r"\(farm ([\d.]+) ms, upstream ([\d.]+) ms per run; allowed ratio 2\)", err)
    assert found, err[-3000:]
    ratio, farm_ms, upstream_ms = map(float, found.groups())
    assert ratio > 4 and farm_ms > 4 * upstream_ms
    assert job["parity"]["bench"]["farm_s"] > job["parity"]["bench"]["upstream_s"]

    # The same build without the comparison passes: the ratio alone failed it.
    code, err, job, log = _build(tmp_path / "again", "slow", reference, "--no-compare-upstream")
    assert code == 0, err[-3000:]
    assert "parity" not in job and "## parity" not in log


def test_without_an_upstream_wheel_the_log_says_so(tmp_path: Path) -> None:
    python_for("cp312")
    empty = tmp_path / "empty-index"
    (empty / "simple").mkdir(parents=True)
    (empty / "simple" / "index.html").write_text("<html><body></body></html>")
    code, err, job, log = _build(tmp_path / "farm", "reference",
                                 (empty / "simple").as_uri() + "/")
    assert code == 0, err[-3000:]
    assert "no upstream wheel of paritydemo 0.1.0 for cp312" in log
    assert job["parity"]["upstream"] is None and job["parity"]["ratio"] is None
