"""A wheel built by the farm, published, served by `wheelfarm serve`, and installed and
downloaded by real pip (and installed by uv) over HTTP (PEP 691 JSON), then verified
over HTTP."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.wheels import pure_wheel

from .helpers import isolated_pip_env, ok, python_for, serving, wheelfarm
from .publish_support import Key, packager_gpg

pytestmark = pytest.mark.integration

PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; "
              "q=0.1, text/html; q=0.01")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Key, Key],
           fastadd_dir: Path) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """(index directory, base URL, publisher env): fastadd and wf-probe 1.0/1.5 published."""
    work = tmp_path_factory.mktemp("served")
    root = work / "index"
    env = {"GNUPGHOME": str(keys[0].home), "WHEELFARM_SIGN_KEY": keys[0].fingerprint}
    pure_wheel(work / "probe", "wf-probe", "1.0")
    pure_wheel(work / "probe", "wf-probe", "1.5")
    ok(wheelfarm("publish", fastadd_dir, work / "probe", "--to", root, cwd=work, env=env))
    with serving(root, work) as base:
        yield root, base, env


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args, "--no-cache-dir"],
                          env=isolated_pip_env(), capture_output=True, text=True, timeout=600)


def test_pip_installs_the_farm_wheel_over_http(served: tuple[Path, str, dict[str, str]],
                                               tmp_path: Path) -> None:
    _root, base, _env = served
    venv = tmp_path / "venv"
    subprocess.run([python_for("cp312"), "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    result = pip("--python", str(python), "install", "--index-url", f"{base}/simple/",
                 "fastadd")
    ok(result)
    check = subprocess.run([python, "-c", "import fastadd; print(fastadd.add(2, 3))"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert check.stdout.strip() == "5", check.stderr


def find_uv() -> str:
    """uv from this venv (the dev extras install it), else from PATH; skipped where
    missing, which fails the run in CI."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (`make test` installs it with the dev extras)")
    return found


def test_uv_installs_the_farm_wheel_over_http(served: tuple[Path, str, dict[str, str]],
                                              tmp_path: Path) -> None:
    _root, base, _env = served
    uv = find_uv()
    venv = tmp_path / "venv"
    subprocess.run([python_for("cp312"), "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    ok(subprocess.run([uv, "pip", "install", "--no-cache", "--python", str(python),
                       "--index-url", f"{base}/simple/", "fastadd"],
                      env={**isolated_pip_env(), "UV_NO_CONFIG": "1"},
                      capture_output=True, text=True, timeout=600))
    check = subprocess.run([python, "-c", "import fastadd; print(fastadd.add(2, 3))"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert check.stdout.strip() == "5", check.stderr


def test_pip_download_gets_exactly_the_published_bytes(
        served: tuple[Path, str, dict[str, str]], tmp_path: Path, keys: tuple[Key, Key]
) -> None:
    root, base, _env = served
    ok(pip("download", "--no-deps", "--only-binary", ":all:", "--python-version", "3.12",
           "--index-url", f"{base}/simple/", "-d", str(tmp_path / "dl"), "fastadd"))
    (downloaded,) = (tmp_path / "dl").glob("*.whl")
    assert downloaded.read_bytes() == (root / "files" / downloaded.name).read_bytes()
    # The packager checks it with the farm's public key and nothing else.
    signature = httpx.get(f"{base}/files/{downloaded.name}.asc").content
    (tmp_path / "sig.asc").write_bytes(signature)
    with packager_gpg(tmp_path, keys[0].public) as gpg:
        ok(subprocess.run([*gpg, "--verify", str(tmp_path / "sig.asc"), str(downloaded)],
                          capture_output=True, text=True))


def test_pages_are_negotiated_like_pypi(served: tuple[Path, str, dict[str, str]]) -> None:
    root, base, _env = served
    r = httpx.get(f"{base}/simple/fastadd/", headers={"Accept": PIP_ACCEPT})
    assert r.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
    assert r.content == (root / "simple" / "fastadd" / "index.json").read_bytes()
    r = httpx.get(f"{base}/simple/fastadd/")
    assert r.headers["content-type"].startswith("text/html")
    assert b"<h2>Runs on</h2>" in r.content
    data = httpx.get(f"{base}/simple/fastadd/distros.json").json()
    (wheel,) = data["wheels"]
    assert wheel.startswith("fastadd-0.1.0-cp312") and data["wheels"][wheel]["Debian"]
    listing = httpx.get(f"{base}/simple/", headers={"Accept": PIP_ACCEPT}).json()
    assert {p["name"] for p in listing["projects"]} == {"fastadd", "wf-probe"}


def test_a_yank_is_live_at_once_and_pip_honours_it(served: tuple[Path, str, dict[str, str]],
                                                   tmp_path: Path) -> None:
    root, base, env = served
    ok(wheelfarm("yank", root, "wf-probe==1.5", "--reason", "broken", cwd=tmp_path, env=env))
    target = tmp_path / "target"
    ok(pip("install", "--index-url", f"{base}/simple/", "--target", str(target), "wf-probe"))
    assert (target / "wf_probe-1.0.dist-info").is_dir()
    # Pinned exactly, a yanked version still installs (PEP 592).
    ok(pip("install", "--index-url", f"{base}/simple/", "--target", str(tmp_path / "pinned"),
           "wf-probe==1.5"))
    ok(wheelfarm("unyank", root, "wf-probe==1.5", cwd=tmp_path, env=env))


def test_verify_over_http(served: tuple[Path, str, dict[str, str]], tmp_path: Path,
                          keys: tuple[Key, Key]) -> None:
    _root, base, _env = served
    result = wheelfarm("verify", base, "--key", keys[0].public, "--state", tmp_path / "state",
                       cwd=tmp_path)
    assert "verified generation" in ok(result)
    digest = hashlib.sha256(httpx.get(f"{base}/SHA256SUMS").content).hexdigest()
    assert digest in httpx.get(f"{base}/InRelease").text
