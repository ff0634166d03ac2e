"""Simple-index page generation: escaping, normalization, PEP 592/658/691/700 fields."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests import wheels
from wheelfarm.errors import ConfigError
from wheelfarm.publish.index import (
    IndexFile,
    render_project_html,
    render_project_json,
    render_root_html,
    render_root_json,
    sdist_file_entry,
    wheel_file_entry,
)

SHA = "ab" * 32
META_SHA = "cd" * 32


def make_wheel(out: Path, name: str, version: str, *, dist: str | None = None,
               requires_python: str | None = None, meta_name: str | None = None) -> Path:
    headers = f"Requires-Python: {requires_python}\n" if requires_python else ""
    return wheels.make_wheel(out, meta_name or name, version, dist=dist or name.replace("-", "_"),
                             metadata=headers + "\nlong description\n")


def make_sdist(out: Path, dist: str, version: str, requires_python: str) -> Path:
    path = out / f"{dist}-{version}.tar.gz"
    pkg_info = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n" \
               f"Requires-Python: {requires_python}\n".encode()
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(f"{dist}-{version}/PKG-INFO")
        info.size = len(pkg_info)
        tf.addfile(info, io.BytesIO(pkg_info))
    return path


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []
        self.meta: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        if tag == "meta":
            self.meta.append(dict(attrs))


def parse(page: str) -> Links:
    parser = Links()
    parser.feed(page)
    return parser


# -- HTML ---------------------------------------------------------------------------------------

def test_root_html_sorted_normalized_deduplicated() -> None:
    page = render_root_html(["Zeta", "Foo_Bar", "foo.bar", "alpha"])
    assert page.startswith("<!DOCTYPE html>\n")
    assert [a["href"] for a in parse(page).anchors] == ["alpha/", "foo-bar/", "zeta/"]
    assert '<meta name="pypi:repository-version" content="1.1">' in page


def test_project_html_escaping_and_attributes() -> None:
    files = [
        IndexFile("foo_bar-1.0-py3-none-any.whl", "../../foo_bar-1.0-py3-none-any.whl", SHA,
                  requires_python=">=3.9,<4", metadata_sha256=META_SHA),
        IndexFile("foo_bar-0.9.tar.gz", "../../foo_bar-0.9.tar.gz", SHA,
                  yanked='broken "build" <x>'),
        IndexFile("foo_bar-0.8.tar.gz", "../../foo_bar-0.8.tar.gz", SHA, yanked=""),
    ]
    page = render_project_html("Foo_Bar", files)
    assert "<title>Links for foo-bar</title>" in page
    assert 'data-requires-python="&gt;=3.9,&lt;4"' in page
    assert 'data-yanked="broken &quot;build&quot; &lt;x&gt;"' in page
    anchors = {a["href"]: a for a in parse(page).anchors}
    whl = anchors[f"../../foo_bar-1.0-py3-none-any.whl#sha256={SHA}"]
    assert whl["data-requires-python"] == ">=3.9,<4"
    assert whl["data-core-metadata"] == f"sha256={META_SHA}"
    assert whl["data-dist-info-metadata"] == f"sha256={META_SHA}"
    assert "data-yanked" not in whl
    assert anchors[f"../../foo_bar-0.8.tar.gz#sha256={SHA}"]["data-yanked"] == ""
    assert anchors[f"../../foo_bar-0.9.tar.gz#sha256={SHA}"]["data-yanked"] == 'broken "build" <x>'
    assert "data-requires-python" not in anchors[f"../../foo_bar-0.8.tar.gz#sha256={SHA}"]


def test_filename_text_is_escaped() -> None:
    page = render_project_html("x", [IndexFile("x<y>.whl", "../../x%3Cy%3E.whl", SHA)])
    assert ">x&lt;y&gt;.whl</a>" in page


# -- JSON ---------------------------------------------------------------------------------------

def test_root_json_shape() -> None:
    data = json.loads(render_root_json(["B_b", "a"]))
    assert data == {"meta": {"api-version": "1.1"}, "projects": [{"name": "a"}, {"name": "b-b"}]}


def test_project_json_shape() -> None:
    files = [
        IndexFile("foo_bar-1.0-py3-none-any.whl", "../../foo_bar-1.0-py3-none-any.whl", SHA,
                  requires_python=">=3.9", metadata_sha256=META_SHA, size=123,
                  upload_time="2024-01-02T03:04:05.000000Z"),
        IndexFile("foo_bar-1.0.0rc1.tar.gz", "../../foo_bar-1.0.0rc1.tar.gz", SHA, yanked="",
                  size=7),
        IndexFile("foo_bar-0.9.tar.gz", "../../foo_bar-0.9.tar.gz", SHA, yanked="bad", size=8),
    ]
    data = json.loads(render_project_json("Foo.Bar", files))
    assert data["meta"] == {"api-version": "1.1"}
    assert data["name"] == "foo-bar"
    assert data["versions"] == ["0.9", "1.0.0rc1", "1.0"]
    by_name = {f["filename"]: f for f in data["files"]}
    whl = by_name["foo_bar-1.0-py3-none-any.whl"]
    assert whl == {
        "filename": "foo_bar-1.0-py3-none-any.whl",
        "url": "../../foo_bar-1.0-py3-none-any.whl",
        "hashes": {"sha256": SHA},
        "requires-python": ">=3.9",
        "core-metadata": {"sha256": META_SHA},
        "dist-info-metadata": {"sha256": META_SHA},
        "yanked": False,
        "size": 123,
        "upload-time": "2024-01-02T03:04:05.000000Z",
    }
    assert by_name["foo_bar-1.0.0rc1.tar.gz"]["yanked"] is True
    assert by_name["foo_bar-0.9.tar.gz"]["yanked"] == "bad"
    assert by_name["foo_bar-0.9.tar.gz"]["core-metadata"] is False
    assert by_name["foo_bar-0.9.tar.gz"]["requires-python"] is None


def test_rendering_is_deterministic() -> None:
    a = IndexFile("p-1.0.tar.gz", "../../p-1.0.tar.gz", SHA, size=1)
    b = IndexFile("p-2.0.tar.gz", "../../p-2.0.tar.gz", SHA, size=2)
    assert render_project_html("p", [a, b]) == render_project_html("p", [b, a])
    assert render_project_json("p", [a, b]) == render_project_json("p", [b, a])
    assert render_root_html(["b", "a"]) == render_root_html(["a", "b"])
    assert render_root_json(["b", "a"]) == render_root_json(("a", "b"))


# -- reading distributions ----------------------------------------------------------------------

def test_wheel_file_entry(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path, "Foo_Bar", "1.0", dist="Foo_Bar", requires_python=">=3.9")
    (tmp_path / (whl.name + ".metadata")).write_bytes(b"Name: Foo_Bar\n")
    name, entry = wheel_file_entry(whl)
    assert name == "foo-bar"
    assert entry.filename == whl.name
    assert entry.url == f"../../{whl.name}"
    assert entry.sha256 == hashlib.sha256(whl.read_bytes()).hexdigest()
    assert entry.requires_python == ">=3.9"
    assert entry.metadata_sha256 == hashlib.sha256(b"Name: Foo_Bar\n").hexdigest()
    assert entry.size == whl.stat().st_size
    assert entry.yanked is None and entry.upload_time is None
    assert wheel_file_entry(whl, "https://cdn.example/w/")[1].url.startswith("https://cdn.")


def test_wheel_local_version_is_quoted(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path, "torchish", "1.0+cpu")
    assert wheel_file_entry(whl)[1].url == "../../torchish-1.0%2Bcpu-py3-none-any.whl"


def test_wheel_name_mismatch_and_garbage(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path, "foo", "1.0", meta_name="other")
    with pytest.raises(ConfigError, match="METADATA names project 'other'"):
        wheel_file_entry(whl)
    bad = tmp_path / "notawheel-1.0-py3-none-any.whl"
    bad.write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not a readable wheel"):
        wheel_file_entry(bad)


def test_sdist_file_entry(tmp_path: Path) -> None:
    sd = make_sdist(tmp_path, "Foo_Bar", "2.0", ">=3.10")
    name, entry = sdist_file_entry(sd)
    assert (name, entry.requires_python, entry.filename) == ("foo-bar", ">=3.10", sd.name)
