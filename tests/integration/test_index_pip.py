"""Real pip installs from the pages index.py writes: file:// index, --find-links, HTTP + JSON."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests import wheels
from wheelfarm.farm.wheelhouse import Wheelhouse
from wheelfarm.publish.index import (
    render_project_html,
    render_project_json,
    wheel_file_entry,
)

pytestmark = pytest.mark.integration

# A name no other index has, so an install can only have come from ours.
PROJECT = "wheelfarm-probe-pkg"
DIST = "wheelfarm_probe_pkg"
PEP691 = "application/vnd.pypi.simple.v1+json"


def make_wheel(out: Path, version: str, requires_python: str | None = None) -> Path:
    """A minimal pure wheel, written by hand so the test needs no build backend."""
    module = {f"{DIST}/__init__.py": f"VERSION = {version!r}\n".encode()}
    return wheels.make_wheel(
        out, PROJECT, version, dist=DIST, members=module,
        metadata=f"Requires-Python: {requires_python}\n" if requires_python else "")


def write_metadata_sidecar(wheel: Path) -> None:
    """PEP 658: serve the wheel's METADATA next to it so pip can resolve without downloading."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        wheel.with_name(wheel.name + ".metadata").write_bytes(zf.read(name))


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A fresh, empty venv; pip is driven from outside with ``--python``."""
    target = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    return target / "bin" / "python"


def pip_install(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    # The machine's pip config adds mirrors and find-links; make the farm's index the only source.
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-cache-dir",
         "--no-deps", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False)


def installed_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", f"import {DIST}; print({DIST}.VERSION)"],
        capture_output=True, text=True, check=True)
    return out.stdout.strip()


def check(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_pip_installs_from_file_index(tmp_path: Path, venv: Path) -> None:
    out = tmp_path / "wheelhouse"
    out.mkdir()
    write_metadata_sidecar(make_wheel(out, "1.0", requires_python=">=3.7"))
    make_wheel(out, "2.0", requires_python=">=4")  # must be skipped via data-requires-python
    assert Wheelhouse(out).reindex() == [PROJECT]
    page = (out / "simple" / PROJECT / "index.html").read_text()
    assert 'data-requires-python="&gt;=4"' in page
    assert "data-core-metadata" in page

    result = pip_install(venv, "--index-url", (out / "simple").as_uri(), PROJECT)
    check(result)
    assert installed_version(venv) == "1.0"


def test_pip_installs_with_find_links(tmp_path: Path, venv: Path) -> None:
    out = tmp_path / "wheelhouse"
    out.mkdir()
    make_wheel(out, "1.0")
    Wheelhouse(out).reindex()
    check(pip_install(venv, "--no-index", "--find-links", str(out), f"{PROJECT}==1.0"))
    assert installed_version(venv) == "1.0"


class NegotiatingHandler(SimpleHTTPRequestHandler):
    """Static hosting that answers PEP 691 clients with index.json, like a configured CDN."""

    def __init__(self, *args: Any, served: list[str], **kwargs: Any) -> None:
        self.served = served
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        local = Path(self.translate_path(self.path))
        if self.path.endswith("/") and PEP691 in self.headers.get("Accept", "") \
                and (local / "index.json").is_file():
            body = (local / "index.json").read_bytes()
            self.served.append(f"json {self.path}")
            self.send_response(200)
            self.send_header("Content-Type", PEP691)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.served.append(f"file {self.path}")
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str, list[str]]]:
    root = tmp_path / "www"
    root.mkdir()
    served: list[str] = []
    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(NegotiatingHandler, directory=str(root), served=served))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("api", ["json", "html"])
def test_pip_over_http_honours_yanked(http_root: tuple[Path, str, list[str]], venv: Path,
                                      api: str) -> None:
    root, url, served = http_root
    good = make_wheel(root, "1.0")
    bad = make_wheel(root, "1.5")
    Wheelhouse(root).reindex()
    # Yank 1.5 the way the publisher will: same entries, re-rendered with a reason.
    entries = [wheel_file_entry(good)[1], wheel_file_entry(bad)[1]]
    yanked = [entries[0], replace(entries[1], yanked="broken")]
    page_dir = root / "simple" / PROJECT
    (page_dir / "index.html").write_text(render_project_html(PROJECT, yanked))
    (page_dir / "index.json").write_text(render_project_json(PROJECT, yanked))
    if api == "html":
        (page_dir / "index.json").unlink()

    check(pip_install(venv, "--index-url", f"{url}/simple/", PROJECT))
    assert installed_version(venv) == "1.0"
    assert f"{api if api == 'json' else 'file'} /simple/{PROJECT}/" in served
    assert f"file /{good.name}" in served
