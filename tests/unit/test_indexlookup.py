"""The index lookup of add/outdated/bump, on file:// indexes (no network)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from packaging.version import Version

from wheelfarm.build import indexlookup
from wheelfarm.errors import ConfigError

SHA = "ab" * 32


def json_index(root: Path, files: list[dict[str, object]]) -> str:
    page = root / "demo-pkg"
    page.mkdir(parents=True)
    (page / "index.json").write_text(json.dumps({"meta": {"api-version": "1.1"},
                                                 "name": "demo-pkg", "files": files}))
    return root.as_uri() + "/"


def test_json_page_sdists_releases_and_yanked(tmp_path: Path) -> None:
    index = json_index(tmp_path, [
        {"filename": "demo_pkg-1.0.tar.gz", "url": "f/demo_pkg-1.0.tar.gz",
         "hashes": {"sha256": SHA.upper()}},
        {"filename": "demo_pkg-1.0-py3-none-any.whl", "url": "w", "hashes": {}},
        {"filename": "demo_pkg-1.1.tar.gz", "url": "f/demo_pkg-1.1.tar.gz", "hashes": {},
         "yanked": "broken"},
        {"filename": "demo_pkg-2.0rc1.tar.gz", "url": "f/x", "hashes": {}},
        {"filename": "other-3.0.tar.gz", "url": "f/o", "hashes": {}},
    ])
    files = indexlookup.sdists("Demo_Pkg", index)
    assert [(f.filename, f.yanked) for f in files] == [
        ("demo_pkg-1.0.tar.gz", False), ("demo_pkg-1.1.tar.gz", True),
        ("demo_pkg-2.0rc1.tar.gz", False)]
    assert files[0].sha256 == SHA and files[0].url == index + "demo-pkg/f/demo_pkg-1.0.tar.gz"
    assert indexlookup.releases(files) == [Version("1.0")]
    assert indexlookup.find("demo-pkg", "1.0", index).sha256 == SHA


def test_html_page_with_yanked_anchor(tmp_path: Path) -> None:
    page = tmp_path / "demo-pkg"
    page.mkdir()
    (page / "index.html").write_text(
        f'<a href="../f/demo_pkg-1.0.tar.gz#sha256={SHA}">demo_pkg-1.0.tar.gz</a>\n'
        '<a href="../f/demo_pkg-1.2.tar.gz" data-yanked="">demo_pkg-1.2.tar.gz</a>\n')
    files = indexlookup.sdists("demo-pkg", tmp_path.as_uri() + "/")
    assert [(str(f.version), f.yanked, f.sha256) for f in files] == [
        ("1.0", False, SHA), ("1.2", True, None)]


def test_a_file_without_a_hash_is_hashed_here(tmp_path: Path) -> None:
    blob = b"not really a tarball"
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "demo_pkg-1.0.tar.gz").write_bytes(blob)
    index = json_index(tmp_path / "simple", [
        {"filename": "demo_pkg-1.0.tar.gz", "url": (tmp_path / "dl" / "demo_pkg-1.0.tar.gz"
                                                   ).as_uri(), "hashes": {}}])
    assert indexlookup.find("demo-pkg", "1.0", index).sha256 == hashlib.sha256(blob).hexdigest()


def test_a_missing_release_is_bad_input_naming_the_newest(tmp_path: Path) -> None:
    index = json_index(tmp_path, [
        {"filename": "demo_pkg-1.0.tar.gz", "url": "a", "hashes": {"sha256": SHA}}])
    with pytest.raises(ConfigError, match=r"no sdist of demo-pkg==9.9 \(newest releases: 1.0\)"):
        indexlookup.find("demo-pkg", "9.9", index)
    with pytest.raises(ConfigError, match=r"no sdist of nothing==1.0 \(no sdists of it at all\)"):
        indexlookup.find("nothing", "1.0", index)
