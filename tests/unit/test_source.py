"""Source fetching without network or subprocesses: archives, hashes, index lookup, path copy."""

from __future__ import annotations

import hashlib
import io
import ssl
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from wheelfarm.build import source
from wheelfarm.build.archive import safe_extract, sha256_file
from wheelfarm.build.source import SourceSpec, fetch
from wheelfarm.errors import ConfigError, SourceError

PYPROJECT = b"[project]\nname = 'fastadd'\nversion = '0.1.0'\n"


# -- helpers ------------------------------------------------------------------------------------

def tar_entry(name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE,
              link: str = "", mode: int = 0o644, size: int | None = None
              ) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    info.size = len(data) if size is None else size
    return info, (data if kind == tarfile.REGTYPE else None)


def make_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    tf = tarfile.open(path, "w:gz") if path.name.endswith(".gz") else tarfile.open(path, "w")
    with tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def make_zip(path: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    """entries: (name, data, unix mode incl. file type bits, 0 for a plain file)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (mode or (stat.S_IFREG | 0o644)) << 16
            zf.writestr(info, data)
    return path


def sdist(tmp_path: Path, name: str = "fastadd-0.1.0.tar.gz") -> Path:
    return make_tar(tmp_path / name, [
        tar_entry("fastadd-0.1.0/", kind=tarfile.DIRTYPE, mode=0o755),
        tar_entry("fastadd-0.1.0/pyproject.toml", PYPROJECT),
        tar_entry("fastadd-0.1.0/src/fastadd/__init__.py", b"X = 1\n"),
    ])


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


def refused(archive: Path, dest: Path, *needles: str, **limits: int) -> str:
    with pytest.raises(SourceError) as err:
        safe_extract(archive, dest, **limits)
    msg = str(err.value)
    assert f"unsafe archive {archive.name}" in msg
    for needle in needles:
        assert needle in msg, msg
    assert "\n" not in msg
    assert list(dest.iterdir()) == [], "a refused archive must leave dest empty"
    return msg


# -- malicious tar archives ---------------------------------------------------------------------

def test_tar_traversal(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "fastadd-0.1.0.tar.gz",
                   [tar_entry("ok.txt", b"x"), tar_entry("../evil", b"x")])
    msg = refused(arc, dest, "member '../evil' escapes the destination")
    assert msg == ("unsafe archive fastadd-0.1.0.tar.gz: member '../evil' escapes the destination")
    assert not (tmp_path / "evil").exists()


def test_tar_nested_traversal(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar", [tar_entry("pkg/../../evil", b"x")])
    refused(arc, dest, "'pkg/../../evil'", "escapes")


def test_tar_absolute(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar", [tar_entry("/etc/x", b"x")])
    refused(arc, dest, "'/etc/x'", "absolute path")


def test_tar_symlink_absolute(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar.gz",
                   [tar_entry("pkg/passwd", kind=tarfile.SYMTYPE, link="/etc/passwd")])
    refused(arc, dest, "'pkg/passwd'", "symlink to '/etc/passwd' outside the destination")


def test_tar_symlink_relative_escape(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar", [
        tar_entry("pkg/", kind=tarfile.DIRTYPE, mode=0o755),
        tar_entry("pkg/a", kind=tarfile.SYMTYPE, link="../../x"),
    ])
    refused(arc, dest, "'pkg/a'", "symlink to '../../x' outside")


def test_tar_symlink_escape_through_other_symlink(tmp_path: Path, dest: Path) -> None:
    # Lexically 'sub/up/..' is 'sub'; on disk it is the parent of dest.
    arc = make_tar(tmp_path / "a.tar", [
        tar_entry("sub/up", kind=tarfile.SYMTYPE, link=".."),
        tar_entry("sneaky", kind=tarfile.SYMTYPE, link="sub/up/.."),
    ])
    refused(arc, dest, "'sneaky'", "outside the destination")


def test_tar_symlink_loop(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar", [
        tar_entry("a", kind=tarfile.SYMTYPE, link="b"),
        tar_entry("b", kind=tarfile.SYMTYPE, link="a"),
    ])
    refused(arc, dest, "symlink")


def test_tar_write_through_symlink(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar", [
        tar_entry("sub", kind=tarfile.DIRTYPE, mode=0o755),
        tar_entry("lnk", kind=tarfile.SYMTYPE, link="sub"),
        tar_entry("lnk/f", b"x"),
    ])
    refused(arc, dest, "'lnk/f'", "beneath a symlink")


def test_tar_symlink_redefined(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar", [
        tar_entry("l", kind=tarfile.SYMTYPE, link="f"),
        tar_entry("l", kind=tarfile.SYMTYPE, link="g"),
    ])
    refused(arc, dest, "'l'", "redefines")


def test_tar_hardlink_out(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar", [tar_entry("hl", kind=tarfile.LNKTYPE, link="../x")])
    refused(arc, dest, "'hl'", "hard link to '../x' outside")


def test_tar_hardlink_absolute(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar", [tar_entry("hl", kind=tarfile.LNKTYPE, link="/etc/passwd")])
    refused(arc, dest, "'hl'", "hard link to '/etc/passwd' outside")


def test_tar_hardlink_to_symlink_refused(tmp_path: Path, dest: Path) -> None:
    # os.link follows symlinks: a hard link to a symlink member would link its target.
    arc = make_tar(tmp_path / "a.tar", [
        tar_entry("s", kind=tarfile.SYMTYPE, link="f"),
        tar_entry("f", b"x"),
        tar_entry("hl", kind=tarfile.LNKTYPE, link="s"),
    ])
    refused(arc, dest, "'hl'", "not an earlier file")


@pytest.mark.parametrize(("kind", "what"), [
    (tarfile.CHRTYPE, "device file"), (tarfile.BLKTYPE, "device file"), (tarfile.FIFOTYPE, "fifo"),
])
def test_tar_special_files(tmp_path: Path, dest: Path, kind: bytes, what: str) -> None:
    arc = make_tar(tmp_path / "a.tar", [tar_entry("ok", b"x"), tar_entry("dev/thing", kind=kind)])
    refused(arc, dest, "'dev/thing'", f"is a {what}")


def test_tar_size_bomb(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar.gz", [
        tar_entry("small", b"x" * 100),
        tar_entry("big", b"\0" * 5000),
    ])
    refused(arc, dest, "'big'", "over the limit of 1024 bytes", max_bytes=1024)


def test_tar_too_many_members(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "a.tar", [tar_entry(f"f{i}", b"x") for i in range(12)])
    refused(arc, dest, "'f10'", "limit of 10 members", max_members=10)


# -- malicious zip archives ---------------------------------------------------------------------

def test_zip_traversal(tmp_path: Path, dest: Path) -> None:
    arc = make_zip(tmp_path / "a.zip", [("ok", b"x", 0), ("../evil", b"x", 0)])
    refused(arc, dest, "member '../evil' escapes the destination")


def test_zip_absolute(tmp_path: Path, dest: Path) -> None:
    arc = make_zip(tmp_path / "a.zip", [("/etc/x", b"x", 0)])
    refused(arc, dest, "'/etc/x'", "absolute")


def test_zip_symlink_out(tmp_path: Path, dest: Path) -> None:
    arc = make_zip(tmp_path / "a.zip", [("pkg/l", b"../../etc/passwd", stat.S_IFLNK | 0o777)])
    refused(arc, dest, "'pkg/l'", "symlink to '../../etc/passwd' outside")


def test_zip_fifo(tmp_path: Path, dest: Path) -> None:
    arc = make_zip(tmp_path / "a.zip", [("p", b"", stat.S_IFIFO | 0o644)])
    refused(arc, dest, "'p'", "fifo")


def test_zip_size_and_count(tmp_path: Path, dest: Path) -> None:
    bomb = make_zip(tmp_path / "bomb.zip", [("z", b"\0" * 10_000, 0)])
    refused(bomb, dest, "'z'", "over the limit", max_bytes=1000)
    many = make_zip(tmp_path / "many.zip", [(f"f{i}", b"", 0) for i in range(5)])
    refused(many, dest, "limit of 3 members", max_members=3)


def test_corrupt_archive(tmp_path: Path, dest: Path) -> None:
    arc = tmp_path / "broken.tar.gz"
    arc.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(SourceError, match=r"broken\.tar\.gz"):
        safe_extract(arc, dest)
    assert list(dest.iterdir()) == []


# -- good archives ------------------------------------------------------------------------------

def test_good_tar_extracts(tmp_path: Path, dest: Path) -> None:
    arc = make_tar(tmp_path / "good.tar.gz", [
        tar_entry("pkg/", kind=tarfile.DIRTYPE, mode=0o755),
        tar_entry("pkg/setup.py", b"print()\n"),
        tar_entry("pkg/run.sh", b"#!/bin/sh\n", mode=0o755),
        tar_entry("pkg/docs/readme", b"hi"),
        tar_entry("pkg/docs/link", kind=tarfile.SYMTYPE, link="../setup.py"),
        tar_entry("pkg/copy", kind=tarfile.LNKTYPE, link="pkg/docs/readme"),
    ])
    safe_extract(arc, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["pkg"]
    assert (dest / "pkg/docs/link").is_symlink()
    assert (dest / "pkg/docs/link").read_text() == "print()\n"
    assert (dest / "pkg/copy").read_text() == "hi"
    assert (dest / "pkg/run.sh").stat().st_mode & 0o100


def test_good_zip_extracts(tmp_path: Path, dest: Path) -> None:
    arc = make_zip(tmp_path / "good.zip", [
        ("pkg/", b"", stat.S_IFDIR | 0o755),
        ("pkg/pyproject.toml", PYPROJECT, 0),
        ("pkg/bin/tool", b"#!/bin/sh\n", stat.S_IFREG | 0o755),
        ("pkg/alias", b"pyproject.toml", stat.S_IFLNK | 0o777),
    ])
    safe_extract(arc, dest)
    assert (dest / "pkg/pyproject.toml").read_bytes() == PYPROJECT
    assert (dest / "pkg/bin/tool").stat().st_mode & 0o100
    assert (dest / "pkg/alias").is_symlink()
    assert not [p for p in dest.iterdir() if p.name.startswith(".extract-")]


# -- hashes and downloads -----------------------------------------------------------------------

def test_sha256_file_and_verify(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    good = hashlib.sha256(b"abc").hexdigest()
    assert sha256_file(f) == good
    source._verify(f, good.upper())
    with pytest.raises(SourceError) as err:
        source._verify(f, "0" * 64)
    assert str(err.value) == f"sha256 mismatch for f: expected {'0' * 64}, got {good}"


Handler = Callable[[httpx.Request], httpx.Response]


def mock_http(monkeypatch: pytest.MonkeyPatch, handler: Handler) -> list[str]:
    seen: list[str] = []

    def wrapped(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return handler(request)

    monkeypatch.setattr(source, "_http_client",
                        lambda: httpx.Client(transport=httpx.MockTransport(wrapped)))
    return seen


def test_url_fetch_cached_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = sdist(tmp_path).read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    seen = mock_http(monkeypatch, lambda r: httpx.Response(200, content=body))
    url = "https://example.invalid/dl/fastadd-0.1.0.tar.gz"
    spec = SourceSpec("url", url, sha256=sha)
    cache = tmp_path / "cache"
    log = io.StringIO()
    root = fetch(spec, tmp_path / "job1", cache_dir=cache, index_url="", log=log)
    assert root == tmp_path / "job1" / "fastadd-0.1.0"
    assert (root / "pyproject.toml").read_bytes() == PYPROJECT
    assert (cache / "downloads" / sha / "fastadd-0.1.0.tar.gz").is_file()
    assert f"sha256 ok {sha}" in log.getvalue()

    log2 = io.StringIO()
    fetch(spec, tmp_path / "job2", cache_dir=cache, index_url="", log=log2)
    assert len(seen) == 1, "second fetch must come from the cache"
    assert f"fetch {url} (cached)" in log2.getvalue()


def test_url_sha_mismatch_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mock_http(monkeypatch, lambda r: httpx.Response(200, content=b"tampered"))
    url = "https://example.invalid/fastadd-0.1.0.tar.gz"
    want = "a" * 64
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as err:
        fetch(SourceSpec("url", url, sha256=want), tmp_path / "job", cache_dir=cache,
              index_url="", log=io.StringIO())
    got = hashlib.sha256(b"tampered").hexdigest()
    assert str(err.value) == f"sha256 mismatch for {url}: expected {want}, got {got}"
    assert list((cache / "downloads").rglob("*")) == [cache / "downloads" / want]  # empty slot
    assert list((tmp_path / "job").iterdir()) == []


def test_damaged_cache_entry_is_refetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = sdist(tmp_path).read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    cached = tmp_path / "cache" / "downloads" / sha / "fastadd-0.1.0.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated")
    seen = mock_http(monkeypatch, lambda r: httpx.Response(200, content=body))
    fetch(SourceSpec("url", "https://x.invalid/fastadd-0.1.0.tar.gz", sha256=sha),
          tmp_path / "job", cache_dir=tmp_path / "cache", index_url="", log=io.StringIO())
    assert len(seen) == 1
    assert sha256_file(cached) == sha


def test_http_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mock_http(monkeypatch, lambda r: httpx.Response(404))
    with pytest.raises(SourceError, match=r"^download failed: https://x\.invalid/a\.tar\.gz: "
                                          r"HTTP 404 Not Found$"):
        fetch(SourceSpec("url", "https://x.invalid/a.tar.gz", sha256="b" * 64), tmp_path / "j",
              cache_dir=tmp_path / "c", index_url="", log=io.StringIO())


def test_timeout_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    mock_http(monkeypatch, slow)
    with pytest.raises(SourceError, match=r"^download timed out: https://x\.invalid/a\.tar\.gz$"):
        fetch(SourceSpec("url", "https://x.invalid/a.tar.gz", sha256="b" * 64), tmp_path / "j",
              cache_dir=tmp_path / "c", index_url="", log=io.StringIO())


# -- pypi ---------------------------------------------------------------------------------------

def pypi_json(files: list[str]) -> httpx.Response:
    data = {"meta": {"api-version": "1.1"}, "name": "foo-bar",
            "files": [{"filename": f, "url": f"../../files/{f}#sha256=00", "hashes": {}}
                      for f in files]}
    return httpx.Response(200, json=data,
                          headers={"content-type": "application/vnd.pypi.simple.v1+json"})


def test_pypi_picks_sdist_with_normalized_name(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    body = make_tar(tmp_path / "s.tar.gz", [tar_entry("Foo_Bar-1.0/setup.py", b"")]).read_bytes()
    sha = hashlib.sha256(body).hexdigest()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/simple/foo-bar/":
            assert "application/vnd.pypi.simple.v1+json" in request.headers["accept"]
            return pypi_json(["Foo_Bar-1.0-py3-none-any.whl", "Foo_Bar-0.9.tar.gz",
                              "Foo_Bar-1.0.zip", "Foo_Bar-1.0.tar.gz"])
        assert request.url.path == "/files/Foo_Bar-1.0.tar.gz"
        return httpx.Response(200, content=body)

    seen = mock_http(monkeypatch, handler)
    log = io.StringIO()
    root = fetch(SourceSpec("pypi", "", sha256=sha, name="Foo.Bar", version="1.0.0"),
                 tmp_path / "job", cache_dir=tmp_path / "c", index_url="https://idx.invalid/simple",
                 log=log)
    assert root.name == "Foo_Bar-1.0"
    assert seen[0] == "https://idx.invalid/simple/foo-bar/"
    assert "-> https://idx.invalid/files/Foo_Bar-1.0.tar.gz" in log.getvalue()

    # Pinned by hash and already cached: the index is not asked again (offline rebuilds).
    log = io.StringIO()
    fetch(SourceSpec("pypi", "", sha256=sha, name="foo_bar", version="1.0"), tmp_path / "job2",
          cache_dir=tmp_path / "c", index_url="https://idx.invalid/simple", log=log)
    assert len(seen) == 2
    assert "(cached Foo_Bar-1.0.tar.gz)" in log.getvalue()


def test_pypi_html_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = ('<!DOCTYPE html><html><body>'
            '<a href="https://files.invalid/ab/foo_bar-2.0.tar.gz#sha256=00">foo_bar-2.0.tar.gz</a>'
            '</body></html>')

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=page, headers={"content-type": "text/html"})

    mock_http(monkeypatch, handler)
    client = source._http_client()
    url = source._find_sdist(client, "foo-bar", "2.0", "https://i.invalid/simple/", io.StringIO())
    assert url == "https://files.invalid/ab/foo_bar-2.0.tar.gz"


def test_pypi_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mock_http(monkeypatch, lambda r: pypi_json(["foo_bar-1.1.tar.gz"]))
    with pytest.raises(SourceError, match=r"no sdist for foo-bar==1\.0 on https://i\.invalid/s/"):
        fetch(SourceSpec("pypi", "", sha256="c" * 64, name="foo-bar", version="1.0"),
              tmp_path / "j", cache_dir=tmp_path / "c", index_url="https://i.invalid/s/",
              log=io.StringIO())


def test_pypi_file_index(tmp_path: Path) -> None:
    archive = sdist(tmp_path)
    (tmp_path / "idx/simple/fastadd").mkdir(parents=True)
    (tmp_path / "idx/simple/fastadd/index.html").write_text(
        f'<a href="{archive.as_uri()}#sha256=x">{archive.name}</a>')
    spec = SourceSpec("pypi", "", sha256=sha256_file(archive), name="fastadd", version="0.1.0")
    root = fetch(spec, tmp_path / "job", cache_dir=tmp_path / "c",
                 index_url=(tmp_path / "idx/simple").as_uri(), log=io.StringIO())
    assert (root / "pyproject.toml").is_file()


# -- path ---------------------------------------------------------------------------------------

def test_path_copy_ignores_build_dirs(tmp_path: Path) -> None:
    src = tmp_path / "proj"
    for rel in ["pyproject.toml", "src/proj/__init__.py", "src/proj/build/__init__.py",
                "build/lib/x.so", "dist/x.whl", ".git/HEAD", "src/proj.egg-info/PKG-INFO",
                "src/proj/__pycache__/x.pyc", ".venv/bin/python", "rust/Cargo.toml",
                "rust/target/debug/x", "rust/src/lib.rs"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    root = fetch(SourceSpec("path", str(src)), tmp_path / "job", cache_dir=tmp_path / "c",
                 index_url="", log=io.StringIO())
    got = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert got == ["pyproject.toml", "rust/Cargo.toml", "rust/src/lib.rs",
                   "src/proj/__init__.py", "src/proj/build/__init__.py"]


def test_path_missing(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"source path not found: .*nowhere"):
        fetch(SourceSpec("path", str(tmp_path / "nowhere")), tmp_path / "job",
              cache_dir=tmp_path / "c", index_url="", log=io.StringIO())


def test_path_without_project_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"no pyproject\.toml or setup\.py"):
        fetch(SourceSpec("path", str(tmp_path / "empty")), tmp_path / "job",
              cache_dir=tmp_path / "c", index_url="", log=io.StringIO())


# -- spec ---------------------------------------------------------------------------------------

def test_identity_is_stable_and_distinct() -> None:
    rev = "a" * 40
    specs = [
        SourceSpec("pypi", "", sha256="A" * 64, name="Foo_Bar", version="1.0"),
        SourceSpec("url", "https://x/a.tar.gz", sha256="a" * 64),
        SourceSpec("git", "https://x/r.git", rev=rev),
        SourceSpec("path", "/src/proj"),
    ]
    ids = [s.identity() for s in specs]
    assert len(set(ids)) == 4
    assert ids[0] == f"pypi:foo-bar==1:sha256={'a' * 64}"
    assert SourceSpec("pypi", "", sha256="a" * 64, name="foo.bar", version="1.0.0").identity() \
        == ids[0]
    assert ids[2] == f"git:https://x/r.git@{rev}"


@pytest.mark.parametrize("kwargs", [
    {"kind": "svn", "location": "x"},
    {"kind": "git", "location": "x", "rev": "main"},
    {"kind": "url", "location": "x", "sha256": "nothex"},
    {"kind": "pypi", "location": "", "name": "x"},
    {"kind": "pypi", "location": "", "name": "x", "version": "not a version"},
])
def test_spec_validation(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        SourceSpec(**kwargs)  # type: ignore[arg-type]


def test_ssl_context_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CERT", str(tmp_path / "missing.pem"))  # ignored: does not exist
    assert source._ssl_context().verify_mode.name == "CERT_REQUIRED"
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bad))
    with pytest.raises(ssl.SSLError):  # proves the variable was read
        source._ssl_context()
