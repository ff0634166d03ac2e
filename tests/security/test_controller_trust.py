"""Issue 13, item 1: a worker can only speak about its own lease.

Each test is a hostile worker speaking HTTP to a real controller (SQLite
queue, loopback), with a token of its own, as any build machine could.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wheelfarm.farm.controller import API

from ..integration.queue_support import cli, spawn, status, stop, token_file
from .farm import Farm, make_wheel, recipe, sha256, start_farm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    yield from start_farm(tmp_path)


def _lease_for(farm: Farm, headers: dict[str, str], recipe_name: str) -> dict[str, object]:
    leases = farm.claim(headers)
    [lease] = [x for x in leases if x["recipe"] == recipe_name]
    assert farm.post("/start", headers, json={"lease": lease}).status_code == 200
    return lease


def _state(farm: Farm, key: object) -> str:
    [job] = [j for j in status(farm.root)["jobs"] if j["key"] == key]
    return str(job["state"])


def test_a_probe_kind_cannot_make_the_controller_serve_a_farm_file(
        farm: Farm, tmp_path: Path) -> None:
    farm.submit(recipe(tmp_path, "atk"))
    me = farm.headers("w1")
    lease = _lease_for(farm, me, "atk")
    secret = farm.root / "wheelfarm.toml"
    outcome = {"ok": True, "duration": 1.0, "artifact": {
        "filename": "atk-1.0-cp312-cp312-manylinux2014_x86_64.whl",
        "sha256": sha256(secret), "location": str(secret)}}
    farm.post("/finish", me, json={"lease": {**lease, "kind": "probe"}, "outcome": outcome})
    served = httpx.get(f"{farm.url}{API}/artifact/{lease['key']}", headers=me)
    assert served.content != secret.read_bytes()
    assert served.status_code == 404
    assert _state(farm, lease["key"]) != "succeeded"


def test_an_artifact_filename_cannot_reach_outside_the_uploads(
        farm: Farm, tmp_path: Path) -> None:
    farm.submit(recipe(tmp_path, "atk"))
    me = farm.headers("w1")
    lease = _lease_for(farm, me, "atk")
    target = Path("/etc/os-release").resolve()
    # An upload first, so that the lease's upload directory exists to climb out of.
    assert farm.upload(me, lease, "job.log", b"log\n").status_code == 200
    outcome = {"ok": True, "duration": 1.0, "artifact": {
        "filename": "../" * 40 + str(target).lstrip("/"), "sha256": sha256(target),
        "location": ""}}
    resp = farm.post("/finish", me, json={"lease": lease, "outcome": outcome})
    assert 400 <= resp.status_code < 500, resp.text
    assert not (farm.wheelhouse / target.name).exists()
    assert _state(farm, lease["key"]) != "succeeded"


def test_a_lease_for_one_recipe_cannot_replace_another_projects_wheel(
        farm: Farm, tmp_path: Path) -> None:
    farm.submit(recipe(tmp_path, "atk"))
    victim = make_wheel(farm.wheelhouse, "victim", tag="py3-none-any")
    accepted = victim.read_bytes()
    me = farm.headers("w1")
    lease = _lease_for(farm, me, "atk")
    evil = make_wheel(tmp_path / "evil", "victim", tag="py3-none-any",
                      extra={"victim/evil.py": b"import os\n"})
    uploaded = farm.upload(me, lease, evil.name, evil.read_bytes())
    finished = farm.post("/finish", me, json={"lease": lease, "outcome": {
        "ok": True, "duration": 1.0,
        "artifact": {"filename": evil.name, "sha256": sha256(evil), "location": ""}}})
    assert victim.read_bytes() == accepted
    assert 400 <= uploaded.status_code < 500 or 400 <= finished.status_code < 500
    assert _state(farm, lease["key"]) != "succeeded"


@pytest.mark.parametrize("defect", ["lying RECORD", "no RECORD", "member outside the tree",
                                    "other python", "other target", "other version"])
def test_an_upload_must_be_the_jobs_own_sound_wheel(
        farm: Farm, tmp_path: Path, defect: str) -> None:
    farm.submit(recipe(tmp_path, "atk"))
    me = farm.headers("w1")
    lease = _lease_for(farm, me, "atk")
    out = tmp_path / "evil"
    wheel = {
        "lying RECORD": lambda: make_wheel(out, "atk", lie=True),
        "no RECORD": lambda: make_wheel(out, "atk", record=False),
        "member outside the tree": lambda: make_wheel(out, "atk",
                                                      extra={"../../evil.pth": b"import os\n"}),
        "other python": lambda: make_wheel(out, "atk", tag="cp39-cp39-manylinux2014_x86_64"),
        "other target": lambda: make_wheel(out, "atk", tag="cp312-cp312-linux_aarch64"),
        "other version": lambda: make_wheel(out, "atk", version="6.6"),
    }[defect]()
    uploaded = farm.upload(me, lease, wheel.name, wheel.read_bytes())
    finished = farm.post("/finish", me, json={"lease": lease, "outcome": {
        "ok": True, "duration": 1.0,
        "artifact": {"filename": wheel.name, "sha256": sha256(wheel), "location": ""}}})
    assert 400 <= uploaded.status_code < 500 or 400 <= finished.status_code < 500
    assert not (farm.wheelhouse / wheel.name).exists()
    assert _state(farm, lease["key"]) != "succeeded"


def test_the_jobs_own_sound_wheel_is_accepted(farm: Farm, tmp_path: Path) -> None:
    """The other side of the checks above: they must not refuse the real thing."""
    farm.submit(recipe(tmp_path, "atk"))
    me = farm.headers("w1")
    lease = _lease_for(farm, me, "atk")
    wheel = make_wheel(tmp_path / "good", "atk")
    assert farm.upload(me, lease, wheel.name, wheel.read_bytes()).status_code == 200
    finished = farm.post("/finish", me, json={"lease": lease, "outcome": {
        "ok": True, "duration": 1.0,
        "artifact": {"filename": wheel.name, "sha256": sha256(wheel), "location": ""}}})
    assert finished.json() == {"state": "succeeded"}
    assert (farm.wheelhouse / wheel.name).read_bytes() == wheel.read_bytes()
    served = httpx.get(f"{farm.url}{API}/artifact/{lease['key']}", headers=me)
    assert served.content == wheel.read_bytes()


def test_a_worker_cannot_use_another_workers_lease(farm: Farm) -> None:
    assert cli("submit", "--probe", "2", "--seconds", "5", cwd=farm.root).returncode == 0
    w1, w2 = farm.headers("w1"), farm.headers("w2")
    first, second = farm.claim(w1, limit=2)
    # Nothing another worker may read names a lease's token.
    seen = httpx.get(f"{farm.url}{API}/status", headers=w2).text
    assert first["token"] not in seen and second["token"] not in seen
    assert farm.post("/heartbeat", w2, json={"leases": [first]}).status_code == 409
    assert farm.post("/start", w2, json={"lease": second}).status_code == 409
    assert farm.post("/start", w1, json={"lease": first}).status_code == 200
    done = {"ok": True, "duration": 0.1, "artifact": None}
    assert farm.post("/finish", w2, json={"lease": first, "outcome": done}).status_code == 409
    assert farm.post("/finish_many", w2, json={
        "reports": [{"lease": first, "outcome": done}]}).status_code == 409
    assert farm.post("/release", w2, json={"lease": first}).status_code == 409
    # The rightful holder still holds both.
    assert farm.post("/finish", w1, json={"lease": first, "outcome": done}).json() == {
        "state": "succeeded"}
    assert farm.post("/heartbeat", w1, json={"leases": [second]}).json() == {"lost": []}


def test_lease_tokens_stay_out_of_urls_and_worker_logs(farm: Farm, tmp_path: Path) -> None:
    # Probes that take a moment run as jobs of their own, whose logs are uploaded.
    assert cli("submit", "--probe", "2", "--seconds", "0.2", cwd=farm.root).returncode == 0
    token = farm.headers("w1")["Authorization"].removeprefix("Bearer ")
    home = tmp_path / "w1"
    home.mkdir()
    log = tmp_path / "worker.log"
    worker = spawn("worker", "--controller", farm.url, "--token-file",
                   token_file(tmp_path, "w1", token), "--drain",
                   "--farm", home, cwd=home, log=log)
    try:
        assert worker.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        stop(worker)
    doc = status(farm.root)
    assert {j["state"] for j in doc["jobs"]} == {"succeeded"}
    tokens = _lease_tokens(farm)
    assert len(tokens) == 2
    text = log.read_text()
    for lease_token in tokens:
        assert lease_token not in text
    # Nor may the controller accept one in a URL, where proxies and logs keep it.
    me = farm.headers("w3")
    assert cli("submit", "--probe", "1", "--seconds", "5", cwd=farm.root).returncode == 0
    [lease] = farm.claim(me)
    resp = httpx.put(f"{farm.url}{API}/upload/{lease['job_id']}/{lease['n']}/x.log",
                     params={"lease": lease["token"]}, content=b"x", headers=me)
    assert resp.status_code in (400, 409)


def _lease_tokens(farm: Farm) -> list[str]:
    from sqlalchemy import create_engine, select

    from wheelfarm.farm.state.schema import attempts

    engine = create_engine(f"sqlite:///{farm.root / 'queue.db'}")
    with engine.begin() as conn:
        return [str(t) for t in conn.execute(select(attempts.c.lease)).scalars() if t]


def test_a_reported_log_path_is_not_believed(farm: Farm, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:CANARY-5e1f:19000:0:99999:7:::\n")
    assert cli("submit", "--probe", "1", "--seconds", "5", cwd=farm.root).returncode == 0
    me = farm.headers("w1")
    [lease] = farm.claim(me)
    assert farm.post("/start", me, json={"lease": lease}).status_code == 200
    farm.post("/finish", me, json={"lease": lease, "outcome": {
        "ok": False, "duration": 0.1, "kind": "build", "reason": "boom", "log": str(secret)}})
    shown = cli("logs", str(lease["key"])[:12], cwd=farm.root)
    assert "CANARY-5e1f" not in shown.stdout + shown.stderr


def test_a_worker_ships_running_logs_only_for_its_own_lease(farm: Farm) -> None:
    """The live-log endpoint (farm/livelog.py): the lease's holder only, in its
    own attempt's file, in order, and in chunks of a bounded size."""
    assert cli("submit", "--probe", "1", "--seconds", "5", cwd=farm.root).returncode == 0
    w1, w2 = farm.headers("w1"), farm.headers("w2")
    [lease] = farm.claim(w1)
    path = f"{farm.url}{API}/log/{lease['job_id']}/{lease['n']}"

    def ship(headers: dict[str, str], offset: object, data: bytes,
             token: object = lease["token"]) -> httpx.Response:
        return httpx.post(path, params={"offset": offset}, content=data,
                          headers={**headers, "X-Wheelfarm-Lease": str(token)})

    assert ship(w2, 0, b"not yours\n").status_code == 409  # another worker
    assert ship(w1, 0, b"forged\n", token="0" * 32).status_code == 409  # a made-up lease
    assert ship(w1, "-1", b"x").status_code == 400
    assert ship(w1, 0, b"x" * (256 * 1024 + 1)).status_code == 413
    assert ship(w1, 0, b"line 1\n").json() == {"size": 7}
    assert ship(w1, 0, b"line 1\n").json() == {"size": 7}  # a repeat is not appended twice
    assert ship(w1, 99, b"gap\n").json() == {"size": 7}  # nor a chunk after a gap
    assert ship(w1, 7, b"line 2\n").json() == {"size": 14}
    [kept] = (farm.root / ".wheelfarm" / "logs" / "live").glob("*.log")
    assert kept.read_bytes() == b"line 1\nline 2\n"
    assert kept.name == f"{str(lease['key'])[:16]}-{lease['n']}.log"
