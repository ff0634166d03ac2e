"""A real controller on loopback with a SQLite queue, and what a hostile worker
needs to speak to it: tokens, claims, hand-made wheels."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from wheelfarm.farm.controller import API
from wheelfarm.farm.serving import wait_until_up

from .. import wheels
from ..integration.queue_support import cli, farm_dir, free_port, spawn, stop

CAPS = {"os": "linux", "arch": "x86_64", "executors": ["host", "zig", "container"],
        "pythons": ["cp312"], "images": [], "kinds": ["build", "probe"]}


@dataclass
class Farm:
    root: Path
    url: str
    log: Path

    @property
    def wheelhouse(self) -> Path:
        return self.root / "wheelhouse"

    def headers(self, worker: str) -> dict[str, str]:
        token = cli("token", worker, cwd=self.root).stdout.strip()
        return {"Authorization": f"Bearer {token}"}

    def post(self, path: str, headers: Mapping[str, str], **kw: Any) -> httpx.Response:
        return httpx.post(self.url + API + path, headers=dict(headers), timeout=30, **kw)

    def claim(self, headers: Mapping[str, str], limit: int = 10) -> list[dict[str, Any]]:
        resp = self.post("/claim", headers, json={"capabilities": CAPS, "limit": limit})
        assert resp.status_code == 200, resp.text
        return list(resp.json()["leases"])

    def upload(self, headers: Mapping[str, str], lease: Mapping[str, Any], name: str,
               data: bytes) -> httpx.Response:
        return httpx.put(f"{self.url}{API}/upload/{lease['job_id']}/{lease['n']}/{name}",
                         headers={**headers, "X-Wheelfarm-Lease": lease["token"]},
                         content=data, timeout=30)

    def submit(self, *recipes: Path) -> None:
        done = cli("submit", *recipes, "--python", "cp312", "--target",
                   "manylinux2014_x86_64", cwd=self.root)
        assert done.returncode == 0, done.stderr


def start_farm(tmp_path: Path, *flags: str) -> Iterator[Farm]:
    root = farm_dir(tmp_path / "farm", f"sqlite:///{tmp_path / 'farm' / 'queue.db'}",
                    lease=30)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "controller.log"
    process = spawn("controller", "--port", str(port), *flags, cwd=root, log=log)
    try:
        wait_until_up(url, timeout=60)
        yield Farm(root, url, log)
    finally:
        stop(process)


def recipe(directory: Path, name: str, version: str = "1.0") -> Path:
    """A recipe with a path source (nothing is built: the hostile worker never builds)."""
    project = directory / f"{name}-src"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{version}"\n')
    path = directory / f"{name}.toml"
    path.write_text(f'[package]\nname = "{name}"\nversion = "{version}"\n\n'
                    f'[source]\npath = "{project}"\n\n'
                    '[build]\ntargets = ["manylinux2014_x86_64"]\npythons = ["cp312"]\n')
    return path


def make_wheel(out: Path, name: str, version: str = "1.0",
               tag: str = "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64", *,
               extra: Mapping[str, bytes] | None = None, lie: bool = False,
               record: bool = True) -> Path:
    """A wheel written by hand; ``lie`` makes its RECORD state a wrong hash,
    ``extra`` adds members (names as given, even hostile ones)."""
    module = f"{name.replace('-', '_')}/__init__.py"
    return wheels.make_wheel(out, name, version, tag, members={module: b"X = 1\n", **(extra or {})},
                             purelib=False, record=record,
                             claims={module: b"something else"} if lie else None)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
