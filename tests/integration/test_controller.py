"""The controller's HTTP API with real processes: two machines' worth of
workers on loopback, tokens, and a real build whose recipe needs another's wheel."""

from __future__ import annotations

import json
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wheelfarm.build import debuginfo
from wheelfarm.farm.controller import API, TOKEN_TTL
from wheelfarm.farm.serving import wait_until_up

from .helpers import python_for, require
from .queue_support import (
    cli,
    farm_dir,
    free_port,
    spawn,
    status,
    stop,
    token_file,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture
def controller(tmp_path: Path, state_url: str) -> Iterator[tuple[Path, str, Path]]:
    farm = farm_dir(tmp_path / "farm", state_url, lease=5, retry_backoff=0.5)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = tmp_path / "processes.log"
    process = spawn("controller", "--port", str(port), cwd=farm, log=logs)
    try:
        wait_until_up(url)
        yield farm, url, logs
    finally:
        stop(process)


def test_each_job_goes_to_a_capable_worker(controller: tuple[Path, str, Path],
                                          tmp_path: Path) -> None:
    farm, url, logs = controller
    assert cli("submit", "--probe", "12", "--python", "cp39", cwd=farm).returncode == 0
    assert cli("submit", "--probe", "24", "--python", "cp312", "--seconds", "0.1",
               cwd=farm).returncode == 0
    workers: list[subprocess.Popen[bytes]] = []
    offers = {"both": ["cp39", "cp312"], "newonly": ["cp312"]}
    try:
        for name, pythons in offers.items():
            token = cli("token", name, cwd=farm).stdout.strip()
            home = tmp_path / name
            home.mkdir()
            flags = [f for p in pythons for f in ("--python", p)]
            workers.append(spawn("worker", "--controller", url, "--token-file",
                                 token_file(tmp_path, name, token), "--drain",
                                 "--batch", "4", *flags, "--farm", home, cwd=home, log=logs))
        for w in workers:
            assert w.wait(timeout=300) == 0, logs.read_text()[-3000:]
    finally:
        for w in workers:
            stop(w)
    doc = status(farm)
    assert {j["state"] for j in doc["jobs"]} == {"succeeded"}
    ran = {(j["python"], j["attempts"][-1]["worker"]) for j in doc["jobs"]}
    assert ("cp39", "newonly") not in ran
    assert ("cp39", "both") in ran
    registered = [e for e in doc["events"] if e["kind"] == "worker-registered"]
    assert {e["worker"]: e["detail"]["pythons"] for e in registered} == offers


def test_tokens_guard_the_api(controller: tuple[Path, str, Path], tmp_path: Path) -> None:
    farm, url, _logs = controller
    assert httpx.post(url + API + "/claim", json={}).status_code == 401
    wrong = {"Authorization": "Bearer not-a-token"}
    assert httpx.post(url + API + "/claim", json={}, headers=wrong).status_code == 401
    old = cli("token", "w1", cwd=farm).stdout.strip()
    stale = {"Authorization": f"Bearer {old}"}
    assert httpx.get(url + API + "/status", headers=stale).status_code == 200  # now cached
    new = cli("token", "w1", cwd=farm).stdout.strip()
    # The controller trusts a known token for TOKEN_TTL; a replaced one stops working then.
    deadline = time.monotonic() + TOKEN_TTL + 10
    while httpx.get(url + API + "/status", headers=stale).status_code != 401:
        assert time.monotonic() < deadline, "a replaced token still works"
        time.sleep(0.5)
    good = {"Authorization": f"Bearer {new}"}
    assert httpx.get(url + API + "/status", headers=good).json()["schema"] == 1
    bad = httpx.post(url + API + "/claim", json={"capabilities": {"os": "linux"}}, headers=good)
    assert bad.status_code == 400 and "capabilities" in bad.json()["error"]
    home = tmp_path / "w1"
    home.mkdir()
    refused = cli("worker", "--controller", url, "--token-file", token_file(tmp_path, "old", old),
                  "--farm", home, cwd=home)
    assert refused.returncode == 2
    assert "error: the controller refused the worker token" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert cli("token", "bad name!", cwd=farm).returncode == 2


def test_a_stale_lease_cannot_upload_or_report(controller: tuple[Path, str, Path]) -> None:
    farm, url, _logs = controller
    assert cli("submit", "--probe", "1", cwd=farm).returncode == 0
    headers = {"Authorization": f"Bearer {cli('token', 'w9', cwd=farm).stdout.strip()}"}
    caps = {"os": "linux", "arch": "x86_64", "executors": [], "pythons": []}
    [lease] = httpx.post(url + API + "/claim", json={"capabilities": caps},
                         headers=headers).json()["leases"]
    forged = {**lease, "token": "0" * 32}
    upload = httpx.put(f"{url}{API}/upload/{lease['job_id']}/{lease['n']}/x.whl",
                       content=b"x", headers={**headers, "X-Wheelfarm-Lease": forged["token"]})
    assert upload.status_code == 409
    started = httpx.post(url + API + "/start", json={"lease": forged}, headers=headers)
    assert started.status_code == 409
    assert httpx.post(url + API + "/start", json={"lease": lease},
                      headers=headers).status_code == 200
    outcome = {"ok": True, "duration": 0.1, "artifact": None}
    assert httpx.post(url + API + "/finish", json={"lease": forged, "outcome": outcome},
                      headers=headers).status_code == 409
    assert httpx.post(url + API + "/finish", json={"lease": lease, "outcome": outcome},
                      headers=headers).json() == {"state": "succeeded"}


def test_a_claim_over_http_may_start_the_jobs_that_run_at_once(
        controller: tuple[Path, str, Path]) -> None:
    farm, url, _logs = controller
    assert cli("submit", "--probe", "3", cwd=farm).returncode == 0
    headers = {"Authorization": f"Bearer {cli('token', 'w8', cwd=farm).stdout.strip()}"}
    caps = {"os": "linux", "arch": "x86_64", "executors": [], "pythons": []}
    claim = {"capabilities": caps, "limit": 2, "start": True}
    leases = httpx.post(url + API + "/claim", json=claim, headers=headers).json()["leases"]
    assert [x["running"] for x in leases] == [True, True]
    assert httpx.post(url + API + "/start", json={"lease": leases[0]},
                      headers=headers).status_code == 409  # started once already
    done = {"ok": True, "duration": 0.0, "artifact": None}
    # The outcomes and the next claim in one request (and one transaction).
    body = httpx.post(url + API + "/finish_many", headers=headers, json={
        "reports": [{"lease": x, "outcome": done} for x in leases], "claim": claim}).json()
    assert body["states"] == ["succeeded", "succeeded"]
    [last] = body["leases"]
    assert last["running"]
    assert httpx.post(url + API + "/finish_many", headers=headers, json={
        "reports": [{"lease": last, "outcome": done}]}).json() == {"states": ["succeeded"]}
    kinds = [e["kind"] for e in status(farm)["events"] if e["job"] == last["job_id"]]
    assert kinds == ["submitted", "leased", "started", "succeeded"]


# -- a recipe that needs another recipe's wheel ---------------------------------------------

BASE_SETUP = """from setuptools import setup
setup(name="wfneedsbase", version="1.0", packages=["wfneedsbase"])
"""
USER_SETUP = """import wfneedsbase  # importable only from the farm's own wheel
from setuptools import setup
from pathlib import Path
Path("wfneedsuser").mkdir(exist_ok=True)
Path("wfneedsuser/__init__.py").write_text(f"FROM_BASE = {wfneedsbase.VALUE!r}\\n")
setup(name="wfneedsuser", version="1.0", packages=["wfneedsuser"])
"""


def _project(root: Path, name: str, setup_py: str, requires: list[str]) -> None:
    root.mkdir(parents=True)
    (root / "setup.py").write_text(setup_py)
    (root / "pyproject.toml").write_text(
        f'[build-system]\nrequires = {requires!r}\nbuild-backend = "setuptools.build_meta"\n')
    if name == "wfneedsbase":
        (root / name).mkdir()
        (root / name / "__init__.py").write_text("VALUE = 'built by the farm'\n")


@pytest.mark.parametrize("how", ["direct", "remote"])
def test_a_recipe_with_needs_builds_after_its_dependency_and_uses_its_wheel(
        tmp_path: Path, how: str) -> None:
    # A real build, once: the needs rule itself is tested on both databases
    # in test_queue_postgres.py / tests/unit/test_queue.py.
    require("gcc")
    python_for("cp312")
    farm = farm_dir(tmp_path / "farm", f"sqlite:///{tmp_path / 'state.db'}", lease=30)
    _project(farm / "src" / "base", "wfneedsbase", BASE_SETUP, ["setuptools>=61"])
    _project(farm / "src" / "user", "wfneedsuser", USER_SETUP,
             ["setuptools>=61", "wfneedsbase"])
    common = '[build]\ntargets = ["linux_x86_64"]\npythons = ["cp312"]\nexecutor = "host"\n'
    (farm / "recipes").mkdir()
    (farm / "recipes" / "base.toml").write_text(
        '[package]\nname = "wfneedsbase"\nversion = "1.0"\n[source]\npath = "../src/base"\n'
        + common + '[test]\nimports = ["wfneedsbase"]\n')
    (farm / "recipes" / "user.toml").write_text(
        '[package]\nname = "wfneedsuser"\nversion = "1.0"\n[source]\npath = "../src/user"\n'
        + common + 'needs = ["wfneedsbase"]\n[test]\ncommands = ["python -c \'import '
        'wfneedsuser; assert wfneedsuser.FROM_BASE == \\"built by the farm\\"\'"]\n')
    submitted = cli("submit", "recipes/", cwd=farm)
    assert submitted.returncode == 0, submitted.stderr
    logs = tmp_path / "workers.log"
    # A remote worker uploads its wheels and downloads the wheel it needs
    # from the controller; a direct one finds it in the farm.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    controller = spawn("controller", "--port", str(port), cwd=farm, log=logs)
    wait_until_up(url)
    if how == "remote":
        home = tmp_path / "remote"
        home.mkdir()
        token = cli("token", "remote", cwd=farm).stdout.strip()
        workers = [spawn("worker", "--drain", "--controller", url,
                         "--token-file", token_file(tmp_path, "remote", token),
                         "--farm", home, cwd=home, log=logs)]
    else:
        workers = [spawn("worker", "--drain", "--name", "local", cwd=farm, log=logs)]
    try:
        for w in workers:
            assert w.wait(timeout=800) == 0, logs.read_text()[-3000:]
    finally:
        for w in [*workers, controller]:
            stop(w)
    doc = status(farm)
    by_recipe = {j["recipe"]: j for j in doc["jobs"]}
    assert {j["state"] for j in doc["jobs"]} == {"succeeded"}, json.dumps(doc["jobs"])[:3000]
    base, user = by_recipe["wfneedsbase"], by_recipe["wfneedsuser"]
    assert user["attempts"][0]["started"] >= base["attempts"][-1]["ended"]
    wheel = farm / "wheelhouse" / user["artifact"]["filename"]
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("wfneedsuser/__init__.py").decode() == "FROM_BASE = 'built by the farm'\n"
    assert (farm / "wheelhouse" / "simple" / "wfneedsuser" / "index.html").is_file()
    log_text = cli("logs", user["key"][:10], cwd=farm).stdout
    assert f"# job {user['key']} attempt 1" in log_text and "wfneedsuser" in log_text
    assert {a["worker"] for j in doc["jobs"] for a in j["attempts"]} == {
        "remote" if how == "remote" else "local"}


def test_a_needs_cycle_is_refused_before_anything_is_queued(tmp_path: Path) -> None:
    farm = farm_dir(tmp_path / "farm", f"sqlite:///{tmp_path / 'state.db'}")
    (farm / "recipes").mkdir()
    for name, other in (("cyca", "cycb"), ("cycb", "cyca")):
        (farm / "recipes" / f"{name}.toml").write_text(
            f'[package]\nname = "{name}"\nversion = "1.0"\n[source]\n'
            f'url = "https://example.org/{name}.tar.gz"\nsha256 = "{"0" * 64}"\n'
            f'[build]\ntargets = ["linux_x86_64"]\nneeds = ["{other}"]\n')
    result = cli("submit", "recipes/", cwd=farm)
    assert result.returncode == 2
    assert "error: build.needs makes a cycle: cyca -> cycb -> cyca" in result.stderr
    assert status(farm)["jobs"] == []


def test_a_remote_workers_debug_files_reach_the_controllers_wheelhouse(tmp_path: Path) -> None:
    """A C extension built by a remote worker: its split-off debug file and a
    listing (written by the controller) land in ``wheelhouse/debug/``."""
    require("gcc")
    require("eu-strip")
    python_for("cp312")
    farm = farm_dir(tmp_path / "farm", f"sqlite:///{tmp_path / 'state.db'}", lease=30)
    project = Path(__file__).resolve().parents[1] / "fixtures" / "projects" / "fastadd"
    (farm / "recipes").mkdir()
    (farm / "recipes" / "fastadd.toml").write_text(
        f'[package]\nname = "fastadd"\nversion = "0.1.0"\n[source]\npath = "{project}"\n'
        '[build]\ntargets = ["linux_x86_64"]\npythons = ["cp312"]\nexecutor = "host"\n'
        '[test]\nimports = ["fastadd"]\n')
    assert cli("submit", "recipes/", cwd=farm).returncode == 0
    logs = tmp_path / "processes.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    controller = spawn("controller", "--port", str(port), cwd=farm, log=logs)
    wait_until_up(url)
    home = tmp_path / "remote"
    home.mkdir()
    token = cli("token", "remote", cwd=farm).stdout.strip()
    worker = spawn("worker", "--drain", "--controller", url,
                   "--token-file", token_file(tmp_path, "remote", token),
                   "--farm", home, cwd=home, log=logs)
    try:
        assert worker.wait(timeout=800) == 0, logs.read_text()[-3000:]
    finally:
        for p in (worker, controller):
            stop(p)
    [job] = status(farm)["jobs"]
    assert job["state"] == "succeeded", json.dumps(job)[:3000]
    wheel = farm / "wheelhouse" / job["artifact"]["filename"]
    modules = debuginfo.module_build_ids(wheel)
    [(build_id, module)] = modules.items()
    assert module.startswith("fastadd") and module.endswith(".so")
    # Read back as publish reads it: every listed file present, with its sha256.
    [listed] = debuginfo.read_listing(wheel)
    assert (listed.build_id, listed.module) == (build_id, module)
    assert listed.path == farm / "wheelhouse" / "debug" / f"{build_id}.debug"
    with listed.path.open("rb") as fh:
        assert debuginfo.build_id_of(fh) == build_id
        assert debuginfo.dwarf_sections(fh)  # the debug info itself, not a stripped copy
