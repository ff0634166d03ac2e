"""Issue 13, item 8 (the controller's part): odd input gets one clear 4xx, and
request bodies and uploads have (configurable) size limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wheelfarm.farm.controller import API

from ..integration.queue_support import cli, status
from .farm import CAPS, Farm, start_farm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LIMITS = ("--max-body", "65536", "--max-upload", "1048576")


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    yield from start_farm(tmp_path, *LIMITS)


def _bodies(lease: dict[str, object]) -> list[tuple[str, bytes | dict[str, object] | list[int]]]:
    good = {"ok": True, "duration": 0.1, "artifact": None}
    return [
        ("/claim", b'{"capabilities": %s, "limit": Infinity}' % str(CAPS).replace(
            "'", '"').encode()),
        ("/claim", b'{"capabilities": %s, "limit": NaN}' % str(CAPS).replace(
            "'", '"').encode()),
        ("/claim", {"capabilities": CAPS, "limit": [1]}),
        ("/claim", {"capabilities": "linux"}),
        ("/claim", [1, 2]),
        ("/claim", b"{not json"),
        ("/finish", {"lease": lease, "outcome": [1, 2]}),
        ("/finish", {"lease": lease, "outcome": {**good, "log": ["x"]}}),
        ("/finish", {"lease": lease, "outcome": {**good, "duration": "Infinity"}}),
        ("/finish", {"lease": lease, "outcome": {**good, "artifact": [1]}}),
        ("/finish", {"lease": lease, "outcome": {**good, "artifact": {"filename": 1}}}),
        ("/finish", {"lease": [lease], "outcome": good}),
        ("/finish", {"lease": {**lease, "job_id": "1; drop"}, "outcome": good}),
        ("/finish_many", {"reports": {"a": 1}}),
        ("/finish_many", b'{"reports": [], "claim": {"capabilities": %s, "limit": 1e400}}'
         % str(CAPS).replace("'", '"').encode()),
        ("/claim", b"[" * 50_000 + b"]" * 50_000),
        ("/heartbeat", {"leases": "abc"}),
        ("/heartbeat", {"leases": [None]}),
        ("/start", {"lease": {"job_id": lease["job_id"]}}),
        ("/release", {"lease": lease, "reason": {"x": 1}}),
        ("/register", {"capabilities": {"os": "linux", "arch": "x86_64", "pythons": 3}}),
        ("/outstanding", {}),
    ]


def test_odd_requests_get_one_clear_4xx(farm: Farm) -> None:
    assert cli("submit", "--probe", "1", "--seconds", "5", cwd=farm.root).returncode == 0
    me = farm.headers("w1")
    [lease] = farm.claim(me)
    for path, body in _bodies(lease):
        kw = {"content": body} if isinstance(body, bytes) else {"json": body}
        resp = farm.post(path, me, **kw)  # type: ignore[arg-type]
        assert 400 <= resp.status_code < 500, (path, body, resp.status_code, resp.text)
        error = resp.json()["error"]
        assert isinstance(error, str) and "\n" not in error and "Traceback" not in error
    # None of it moved the job, which its holder still finishes.
    done = {"ok": True, "duration": 0.1, "artifact": None}
    assert farm.post("/start", me, json={"lease": lease}).status_code == 200
    assert farm.post("/finish", me, json={"lease": lease, "outcome": done}).json() == {
        "state": "succeeded"}
    assert "Traceback" not in farm.log.read_text()
    assert [j["state"] for j in status(farm.root)["jobs"]] == ["succeeded"]


def test_request_bodies_and_uploads_have_size_limits(farm: Farm) -> None:
    assert cli("submit", "--probe", "1", "--seconds", "5", cwd=farm.root).returncode == 0
    me = farm.headers("w1")
    [lease] = farm.claim(me)
    big = {"capabilities": CAPS, "padding": "x" * 70_000}
    resp = farm.post("/claim", me, json=big)
    assert resp.status_code == 413 and "65536" in resp.json()["error"]

    # Told or not told the length up front, the body is cut off at the limit.
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"y" * 65536

    url = f"{farm.url}{API}/upload/{lease['job_id']}/{lease['n']}/job.log"
    headers = {**me, "X-Wheelfarm-Lease": str(lease["token"])}
    too_big = httpx.put(url, headers=headers, content=b"z" * 2_000_000, timeout=30)
    assert too_big.status_code == 413 and "1048576" in too_big.json()["error"]
    streamed = httpx.put(url, headers=headers, content=chunks(), timeout=30)
    assert streamed.status_code == 413
    uploads = farm.root / ".wheelfarm" / "uploads"
    assert not [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else True
    assert httpx.put(url, headers=headers, content=b"a small log\n",
                     timeout=30).status_code == 200
