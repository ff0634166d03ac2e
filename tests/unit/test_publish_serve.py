"""`wheelfarm serve`'s app in process: PEP 691 negotiation, static files, no way out."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # Starlette 1.x warns that its test client will move to httpx2; httpx is what is pinned.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from wheelfarm.publish.serve import HTML, JSON, TEXT_HTML, make_app, negotiate

PIP_ACCEPT = f"{JSON}, {HTML}; q=0.1, text/html; q=0.01"


@pytest.mark.parametrize(("accept", "chosen"), [
    (None, TEXT_HTML),
    ("", TEXT_HTML),
    (PIP_ACCEPT, JSON),
    ("application/vnd.pypi.simple.latest+json", JSON),
    (f"{JSON}; q=0.2, {HTML}; q=0.9", HTML),
    ("text/html", TEXT_HTML),
    ("*/*", TEXT_HTML),
    ("application/*", HTML),
    ("text/*", TEXT_HTML),
    (f"application/*; q=0.5, {HTML}; q=0", JSON),
    ("image/png", None),
    (f"{JSON}; q=0", None),
    (f"{JSON}; q=bogus, text/html", TEXT_HTML),
])
def test_negotiate(accept: str | None, chosen: str | None) -> None:
    assert negotiate(accept) == chosen


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    root = tmp_path / "idx"
    (root / "files").mkdir(parents=True)
    (root / "files" / "a-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (root / "views" / "1" / "simple" / "a").mkdir(parents=True)
    page = root / "views" / "1" / "simple" / "a"
    (page / "index.html").write_text("<html>a</html>")
    (page / "index.json").write_text('{"name": "a"}')
    os.symlink("views/1", root / "current")
    os.symlink("current/simple", root / "simple")
    (root / ".lock").write_text("")
    (tmp_path / "secret").write_text("secret")
    return TestClient(make_app(root))


def test_directory_pages_are_negotiated(client: TestClient) -> None:
    r = client.get("/simple/a/", headers={"Accept": PIP_ACCEPT})
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON
    assert r.headers["vary"] == "Accept"
    assert r.json() == {"name": "a"}
    r = client.get("/simple/a/", headers={"Accept": "text/html"})
    assert r.text == "<html>a</html>" and r.headers["content-type"].startswith("text/html")
    r = client.get("/simple/a/", params={"format": JSON}, headers={"Accept": "text/html"})
    assert r.headers["content-type"] == JSON
    assert client.get("/simple/a/", headers={"Accept": "image/png"}).status_code == 406


def test_redirects_and_files(client: TestClient) -> None:
    r = client.get("/simple/a", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "/simple/a/"
    assert client.get("/", follow_redirects=False).headers["location"] == "/simple/"
    r = client.get("/files/a-1.0-py3-none-any.whl")
    assert r.content == b"wheel" and r.headers["content-type"] == "application/octet-stream"
    assert client.head("/files/a-1.0-py3-none-any.whl").status_code == 200
    assert client.get("/files/missing.whl").status_code == 404
    assert client.get("/simple/nothing/").status_code == 404


@pytest.mark.parametrize("path", ["/.lock", "/../secret", "/files/../../secret", "/%2e%2e/secret"])
def test_nothing_outside_or_hidden_is_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404
