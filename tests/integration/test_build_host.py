"""`wheelfarm build` end to end with the host executor: real gcc, real pip."""

from __future__ import annotations

import io
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .helpers import PROJECTS, RECIPES, pip_install_from_index, require, tree_digest, wheelfarm

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def host_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Every recipe (the four fixtures and the three PyPI projects) with the host
    toolchain, on two Pythons, each job built twice and compared, then tested."""
    require("gcc")
    farm = tmp_path_factory.mktemp("farm")
    out = farm / "wheelhouse"
    result = wheelfarm("build", RECIPES, "--target", "native", "--executor", "host",
                       "--python", "cp39", "--python", "cp312", "--out", out, "--jobs", "2",
                       "--check-reproducible", cwd=farm, timeout=3600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    yield farm, out


def test_host_wheels_are_repaired_and_indexed(host_build: tuple[Path, Path]) -> None:
    _farm, out = host_build
    wheels = sorted(p.name for p in out.glob("*.whl"))
    assert len(wheels) == 14, wheels
    # Host gcc on a new glibc: repaired to the lowest policy the wheel satisfies.
    assert all("manylinux_2_" in w for w in wheels), wheels
    page = (out / "simple" / "fastadd" / "index.html").read_text()
    assert "#sha256=" in page and 'data-requires-python="&gt;=3.9"' in page
    assert not list(out.glob(".incoming-*"))


@pytest.mark.parametrize("tag", ["cp39", "cp312"])
def test_each_wheel_installs_from_the_index_with_plain_pip(
        host_build: tuple[Path, Path], tmp_path: Path, tag: str) -> None:
    _farm, out = host_build
    venv = tmp_path / "venv"
    pip_install_from_index(tag, venv, out / "simple", "fastadd")
    check = subprocess.run([venv / "bin" / "python", "-c",
                            "import fastadd; print(fastadd.add(40, 2))"],
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "42"


def test_host_builds_are_reproducible(host_build: tuple[Path, Path]) -> None:
    farm, _out = host_build
    logs = list((farm / ".wheelfarm" / "logs").rglob("*.log"))
    assert len(logs) == 14
    for log in logs:
        assert "reproducible: both builds gave" in log.read_text(), log.name


def test_logs_are_kept_outside_the_output(host_build: tuple[Path, Path]) -> None:
    farm, out = host_build
    logs = list((farm / ".wheelfarm" / "logs").rglob("*.log"))
    assert {p.stem for p in logs} >= {"fastadd-cp39-manylinux_auto_x86_64"}
    assert "+ " in logs[0].read_text()
    assert not (out / ".wheelfarm").exists()


def test_too_new_symbols_are_named_and_nothing_changes(host_build: tuple[Path, Path]) -> None:
    farm, out = host_build
    before = tree_digest(out)
    result = wheelfarm("build", RECIPES / "fastadd.toml",
                       "--executor", "host", "--python", "cp312", "--out", out, cwd=farm)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pow@GLIBC_2.29 (libm.so.6)" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_digest(out) == before


def test_malformed_recipe_and_unknown_python_exit_2(host_build: tuple[Path, Path]) -> None:
    farm, out = host_build
    before = tree_digest(out)
    bad = farm / "bad" / "bad.toml"
    bad.parent.mkdir()
    bad.write_text('[package]\nname = "x"\nversion = "1"\n[source]\npath = "."\n'
                   '[build]\ntagets = ["manylinux2014_x86_64"]\n')
    result = wheelfarm("build", bad, "--out", out, cwd=farm)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {bad}: build.tagets: unknown key; did you mean 'targets'?")
    result = wheelfarm("build", RECIPES / "fastadd.toml", "--python", "cp399", "--out", out,
                       cwd=farm)
    assert result.returncode == 2
    assert "cp399 not found on this machine" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree_digest(out) == before


def _sdist(path: Path, name: str, evil: bool) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for member in sorted((PROJECTS / name).rglob("*")):
            if member.is_file():
                tar.add(member, arcname=f"{name}-0.1.0/{member.relative_to(PROJECTS / name)}")
        if evil:
            info = tarfile.TarInfo("../../escaped.txt")
            data = b"owned"
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture()
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_bad_sha256_and_unsafe_sdist_fail_their_job_only(
        host_build: tuple[Path, Path], http_dir: tuple[Path, str], tmp_path: Path) -> None:
    farm, out = host_build
    served, base = http_dir
    _sdist(served / "good.tar.gz", "fastadd", evil=False)
    _sdist(served / "evil.tar.gz", "fastadd", evil=True)
    import hashlib

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name, archive, sha in [
        ("wrongsha", "good.tar.gz", "0" * 64),
        ("evil", "evil.tar.gz", hashlib.sha256((served / "evil.tar.gz").read_bytes()).hexdigest()),
    ]:
        (recipes / f"{name}.toml").write_text(
            f'[package]\nname = "{name}"\nversion = "0.1.0"\n'
            f'[source]\nurl = "{base}/{archive}"\nsha256 = "{sha}"\n'
            '[build]\ntargets = ["native"]\npythons = ["cp312"]\n')
    before = tree_digest(out)
    result = wheelfarm("build", recipes, "--out", out, cwd=farm)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "sha256 mismatch" in result.stderr
    assert "../../escaped.txt" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_digest(out) == before
    assert not list(farm.rglob("escaped.txt"))
