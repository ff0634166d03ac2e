"""`wheelfarm token`: issue, list and revoke workers' and operators' tokens, and a
revoked token stops opening the controller's API and the dashboard's actions.

Real parts: the CLI, the farm's SQLite state, the controller's and the
dashboard's Starlette applications served in-process by the test client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from wheelfarm.cli import main
from wheelfarm.farm import controller as controller_mod
from wheelfarm.farm.controller import Controller
from wheelfarm.farm.state import open_queue
from wheelfarm.farm.state.schema import workers
from wheelfarm.plan import config as farm_config


@pytest.fixture
def farm(tmp_path: Path) -> Path:
    (tmp_path / "wheelfarm.toml").write_text("lease = 5\n")
    return tmp_path


def _token(farm: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["token", *args, "--farm", str(farm)])
    got = capsys.readouterr()
    return code, got.out.strip(), got.err.strip()


def test_list_shows_who_holds_a_token_and_never_the_token(
        farm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, worker, _ = _token(farm, capsys, "builder-1")
    assert code == 0 and len(worker) > 30
    code, operator, _ = _token(farm, capsys, "alice", "--operator")
    assert code == 0 and operator != worker
    code, listed, _ = _token(farm, capsys, "--list", "--json")
    assert code == 0
    assert [(h["kind"], h["name"]) for h in json.loads(listed)] == [
        ("operator", "alice"), ("worker", "builder-1")]
    assert worker not in listed and operator not in listed
    code, table, _ = _token(farm, capsys, "--list")
    assert code == 0 and "builder-1" in table and "alice" in table and worker not in table


def test_a_revoked_workers_token_no_longer_opens_the_api(
        farm: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller_mod, "TOKEN_TTL", 0.0)  # ask the database every time
    _, worker, _ = _token(farm, capsys, "builder-1")
    queue = open_queue(farm_config.load(farm))
    controller = Controller(queue, farm, farm / "wheelhouse")
    with TestClient(controller.app()) as client:
        auth = {"Authorization": f"Bearer {worker}"}
        assert client.get("/api/v1/status", headers=auth).status_code == 200
        code, _, err = _token(farm, capsys, "builder-1", "--revoke")
        assert code == 0 and err == "worker builder-1: token revoked"
        assert client.get("/api/v1/status", headers=auth).status_code == 401
    code, listed, _ = _token(farm, capsys, "--list", "--json")
    assert json.loads(listed) == []
    with queue.engine.begin() as conn:  # its record stays: its jobs' history names it
        assert conn.execute(select(workers.c.name)).scalars().all() == ["builder-1"]


def test_a_revoked_operators_token_no_longer_retries(
        farm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wheelfarm.farm.dashboard import app

    _, operator, _ = _token(farm, capsys, "alice", "--operator")
    queue = open_queue(farm_config.load(farm))
    client = TestClient(app(queue, None, farm))
    assert client.post("/jobs/nope/retry", data={"token": operator}).status_code == 409
    assert _token(farm, capsys, "alice", "--operator", "--revoke")[0] == 0
    assert client.post("/jobs/nope/retry", data={"token": operator}).status_code == 403


@pytest.mark.parametrize("args", [
    ("nobody", "--revoke"),  # holds no token
    ("alice", "--revoke"),  # an operator's name, revoked as a worker's
    (),  # no name
    ("--list", "alice"),
    ("alice", "--json"),
])
def test_bad_token_commands_exit_2_with_one_line(
        farm: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    _token(farm, capsys, "alice", "--operator")
    code, out, err = _token(farm, capsys, *args)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
