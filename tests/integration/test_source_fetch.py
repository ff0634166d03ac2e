"""Real fetches: an HTTP server on loopback, a static simple index, a real git repository."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from wheelfarm.build.source import SourceSpec, fetch, sha256_file
from wheelfarm.errors import SourceError
from wheelfarm.farm.wheelhouse import Wheelhouse

pytestmark = pytest.mark.integration

PEP691 = "application/vnd.pypi.simple.v1+json"


@dataclass
class Server:
    root: Path
    url: str
    requests: list[str] = field(default_factory=list)


class Handler(SimpleHTTPRequestHandler):
    """Static files, plus PEP 691 content negotiation for directories with an index.json."""

    requests: list[str]

    def __init__(self, *args: Any, requests: list[str], **kwargs: Any) -> None:
        self.requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.requests.append(self.path)
        local = Path(self.translate_path(self.path))
        if self.path.endswith("/") and PEP691 in self.headers.get("Accept", "") \
                and (local / "index.json").is_file():
            body = (local / "index.json").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", PEP691)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []
    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(root), requests=requests))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(root, f"http://127.0.0.1:{httpd.server_address[1]}", requests)
    finally:
        httpd.shutdown()
        httpd.server_close()


def write_sdist(folder: Path, dist: str = "fastadd", version: str = "0.1.0") -> Path:
    path = folder / f"{dist}-{version}.tar.gz"
    files = {
        f"{dist}-{version}/pyproject.toml": f"[project]\nname='{dist}'\nversion='{version}'\n",
        f"{dist}-{version}/PKG-INFO": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
        f"{dist}-{version}/fastadd.c": "int add(int a, int b) { return a + b; }\n",
    }
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


# -- url ----------------------------------------------------------------------------------------

def test_url_fetch_then_cached(server: Server, tmp_path: Path) -> None:
    sd = write_sdist(server.root)
    sha = sha256_file(sd)
    spec = SourceSpec("url", f"{server.url}/{sd.name}", sha256=sha)
    cache = tmp_path / "cache"
    log = io.StringIO()
    root = fetch(spec, tmp_path / "job1", cache_dir=cache, index_url="", log=log)
    assert (root / "fastadd.c").is_file()
    assert f"sha256 ok {sha}" in log.getvalue()
    assert server.requests == [f"/{sd.name}"]

    log = io.StringIO()
    root2 = fetch(spec, tmp_path / "job2", cache_dir=cache, index_url="", log=log)
    assert (root2 / "pyproject.toml").is_file()
    assert "(cached)" in log.getvalue()
    assert len(server.requests) == 1


def test_url_wrong_sha_keeps_nothing(server: Server, tmp_path: Path) -> None:
    sd = write_sdist(server.root)
    wrong = hashlib.sha256(b"something else").hexdigest()
    url = f"{server.url}/{sd.name}"
    with pytest.raises(SourceError) as err:
        fetch(SourceSpec("url", url, sha256=wrong), tmp_path / "job",
              cache_dir=tmp_path / "cache", index_url="", log=io.StringIO())
    assert str(err.value) == (
        f"sha256 mismatch for {url}: expected {wrong}, got {sha256_file(sd)}")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    assert list((tmp_path / "job").iterdir()) == []


def test_url_missing_is_one_line(server: Server, tmp_path: Path) -> None:
    url = f"{server.url}/nope-1.0.tar.gz"
    with pytest.raises(SourceError, match=r"^download failed: .*nope-1\.0\.tar\.gz: HTTP 404"):
        fetch(SourceSpec("url", url, sha256="0" * 64), tmp_path / "job",
              cache_dir=tmp_path / "cache", index_url="", log=io.StringIO())


def test_concurrent_fetches_share_the_cache(server: Server, tmp_path: Path) -> None:
    sd = write_sdist(server.root)
    spec = SourceSpec("url", f"{server.url}/{sd.name}", sha256=sha256_file(sd))

    def one(i: int) -> Path:
        return fetch(spec, tmp_path / f"job{i}", cache_dir=tmp_path / "cache", index_url="",
                     log=io.StringIO())

    with ThreadPoolExecutor(4) as pool:
        roots = list(pool.map(one, range(8)))
    assert all((r / "fastadd.c").is_file() for r in roots)
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert [p.name for p in cached] == [sd.name]


# -- pypi against a static index on loopback ----------------------------------------------------

@pytest.mark.parametrize("api", ["json", "html"])
def test_pypi_from_local_index(server: Server, tmp_path: Path, api: str) -> None:
    # Underscore and case in the file name: sdist names are normalized loosely (PEP 625).
    sd = write_sdist(server.root, dist="Fast_Add", version="0.1.0")
    Wheelhouse(server.root).reindex()
    if api == "html":
        (server.root / "simple/fast-add/index.json").unlink()
    spec = SourceSpec("pypi", "", sha256=sha256_file(sd), name="fast.add", version="0.1")
    log = io.StringIO()
    root = fetch(spec, tmp_path / "job", cache_dir=tmp_path / "cache",
                 index_url=f"{server.url}/simple/", log=log)
    assert (root / "fastadd.c").is_file()
    assert server.requests[:2] == ["/simple/fast-add/", f"/{sd.name}"]
    assert f"-> {server.url}/{sd.name}" in log.getvalue()


def test_pypi_version_missing(server: Server, tmp_path: Path) -> None:
    write_sdist(server.root)
    Wheelhouse(server.root).reindex()
    index = f"{server.url}/simple/"
    with pytest.raises(SourceError, match=rf"no sdist for fastadd==9\.9 on {index}"):
        fetch(SourceSpec("pypi", "", sha256="0" * 64, name="fastadd", version="9.9"),
              tmp_path / "job", cache_dir=tmp_path / "cache", index_url=index,
              log=io.StringIO())
    with pytest.raises(SourceError, match=r"no sdist for other==1\.0"):
        fetch(SourceSpec("pypi", "", sha256="0" * 64, name="other", version="1.0"),
              tmp_path / "job", cache_dir=tmp_path / "cache", index_url=index,
              log=io.StringIO())


# -- git ----------------------------------------------------------------------------------------

def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
         "-c", "commit.gpgsign=false", *args],
        check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "upstream" / "fastadd"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "-b", "main")
    (repo / "pyproject.toml").write_text("[project]\nname='fastadd'\nversion='0.1.0'\n")
    (repo / "version.txt").write_text("one\n")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "one")
    return repo


def test_git_checkout_pinned_commit(upstream: Path, tmp_path: Path) -> None:
    first = git(upstream, "rev-parse", "HEAD")
    (upstream / "version.txt").write_text("two\n")
    git(upstream, "commit", "--quiet", "-am", "two")
    spec = SourceSpec("git", str(upstream), rev=first)
    log = io.StringIO()
    root = fetch(spec, tmp_path / "job1", cache_dir=tmp_path / "cache", index_url="", log=log)
    assert (root / "version.txt").read_text() == "one\n"
    assert git(root, "rev-parse", "HEAD") == first
    assert f"git HEAD ok {first}" in log.getvalue()
    assert "+ git " in log.getvalue()

    log = io.StringIO()
    root2 = fetch(spec, tmp_path / "job2", cache_dir=tmp_path / "cache", index_url="", log=log)
    assert (root2 / "version.txt").read_text() == "one\n"
    assert "commit in cache" in log.getvalue()


def test_git_new_commit_on_branch_is_fetched(upstream: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fetch(SourceSpec("git", str(upstream), rev=git(upstream, "rev-parse", "HEAD")),
          tmp_path / "job1", cache_dir=cache, index_url="", log=io.StringIO())
    git(upstream, "checkout", "--quiet", "-b", "feature")
    (upstream / "version.txt").write_text("feature\n")
    git(upstream, "commit", "--quiet", "-am", "feature")
    rev = git(upstream, "rev-parse", "HEAD")
    root = fetch(SourceSpec("git", str(upstream), rev=rev), tmp_path / "job2", cache_dir=cache,
                 index_url="", log=io.StringIO())
    assert (root / "version.txt").read_text() == "feature\n"


def test_git_unknown_commit(upstream: Path, tmp_path: Path) -> None:
    rev = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(SourceError, match=f"git commit {rev} not found in .*fastadd"):
        fetch(SourceSpec("git", str(upstream), rev=rev), tmp_path / "job",
              cache_dir=tmp_path / "cache", index_url="", log=io.StringIO())


def test_git_unreachable_repo(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    with pytest.raises(SourceError, match=r"git fetch of .*missing failed"):
        fetch(SourceSpec("git", str(tmp_path / "missing"), rev="a" * 40), tmp_path / "job",
              cache_dir=tmp_path / "cache", index_url="", log=io.StringIO())
