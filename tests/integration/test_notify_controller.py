"""Webhooks from a real farm: `wheelfarm controller` and a worker build a real
recipe (fastadd, C, on two pythons) whose test fails, then its fixed version;
a real HTTP receiver on loopback checks every signature.

- the failing matrix: exactly ONE signed message, naming the recipe's owners
  and cause and linking to both jobs on the dashboard;
- the fix: ONE "fixed" message, which the receiver refuses (500) until the
  controller is killed (SIGKILL) with it undelivered; a publish made while
  the controller is down waits in the outbox too; after a restart both are
  delivered, each exactly once by delivery id;
- the builds ran with the webhook secret in the worker's environment and
  their test command checked that it never reached them.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wheelfarm.farm.notify import delivery_counts, outbox
from wheelfarm.farm.serving import wait_until_up
from wheelfarm.farm.state.db import open_engine

from .helpers import python_for, require
from .publish_support import Key
from .queue_support import cli, farm_dir, free_port, spawn, status, stop, wait_for
from .webhook_receiver import Answer, Receiver, receiving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
SECRET = "hook-secret-8d41f2"
SECRET_ENV = "WHEELFARM_HOOK_SECRET"
WINDOW = 25  # seconds: both jobs of the matrix fail within it (they build one by one)
FASTADD = Path(__file__).resolve().parents[1] / "fixtures" / "projects" / "fastadd"
FAILING = "python -c 'import sys; sys.exit(3)'"
# Passes only when the build cannot see the controller's webhook secret.
CHECKING = f"python -c 'import os, sys; sys.exit(7 if \"{SECRET_ENV}\" in os.environ else 0)'"


def _recipe(farm: Path, test: str) -> None:
    (farm / "recipes").mkdir(exist_ok=True)
    (farm / "recipes" / "fastadd.toml").write_text(
        f'[package]\nname = "fastadd"\nversion = "0.1.0"\n'
        f'owners = ["@alice", "bob@example.org"]\n[source]\npath = "{FASTADD}"\n'
        '[build]\ntargets = ["linux_x86_64"]\npythons = ["cp39", "cp312"]\nexecutor = "host"\n'
        f'[test]\nimports = ["fastadd"]\ncommands = {json.dumps([test])}\n')


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(SECRET.encode()) as found:
        yield found


def _drain(farm: Path, logs: Path) -> None:
    """Build the recipes with two workers at once: the matrix's two jobs end
    within moments of each other, well inside the window, however slow the
    machine."""
    assert cli("submit", "recipes/", cwd=farm).returncode == 0
    workers = [spawn("worker", "--drain", "--name", name, cwd=farm, log=logs)
               for name in ("w1", "w2")]
    try:
        for worker in workers:
            assert worker.wait(timeout=600) == 0, logs.read_text()[-3000:]
    finally:
        for worker in workers:
            stop(worker)


def test_a_failing_matrix_its_fix_and_a_killed_controller(
        tmp_path: Path, receiver: Receiver, keys: tuple[Key, Key],
        monkeypatch: pytest.MonkeyPatch) -> None:
    require("gcc")
    python_for("cp39")
    python_for("cp312")
    state = f"sqlite:///{tmp_path / 'state.db'}"
    farm = farm_dir(tmp_path / "farm", state, lease=30)
    with (farm / "wheelfarm.toml").open("a") as fh:
        fh.write(f'dashboard-url = "http://dash.example/"\n[[notify]]\nname = "hook"\n'
                 f'url = "{receiver.url}"\nformat = "json"\nsecret-env = "{SECRET_ENV}"\n'
                 f'window = {WINDOW}\ntimeout = 2\nretry-backoff = 0.5\nmax-backoff = 2\n'
                 'max-attempts = 1000\n')
    logs = tmp_path / "processes.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Refused at start without its secret: a ConfigError naming the key.
    refused = cli("controller", "--port", str(port), cwd=farm)
    assert refused.returncode == 2 and f"secret-env: the environment variable {SECRET_ENV}" \
        in refused.stderr
    monkeypatch.setenv(SECRET_ENV, SECRET)  # the controller's, and the workers' environment
    engine = open_engine(state)
    controller = spawn("controller", "--port", str(port), cwd=farm, log=logs)
    try:
        wait_until_up(url)
        # The notifier's first round: a new target's cursor starts at the newest event.
        wait_for(lambda: "hook" in outbox.cursors(engine), 30, "the notifier to start")
        _recipe(farm, FAILING)
        _drain(farm, logs)
        failed = status(farm)["jobs"]
        assert {j["state"] for j in failed} == {"failed"} and len(failed) == 2, failed
        wait_for(lambda: bool(receiver.accepted()), WINDOW + 30, "the failure message")
        time.sleep(3)  # nothing more comes for this matrix
        [hit] = receiver.hits
        assert hit.signed and hit.event == "failure"
        body = hit.body
        assert (body["recipes"], body["cause"], body["count"]) == (["fastadd"], "test-failure", 2)
        assert body["owners"] == ["@alice", "bob@example.org"]
        assert "fastadd: 2 jobs failed (test-failure); owners: @alice, bob@example.org" \
            in body["text"]
        assert body["reason"]
        assert sorted(j["url"] for j in body["jobs"]) == sorted(
            f"http://dash.example/jobs/{j['key']}" for j in failed)

        # The fix; the receiver is down (500) while its "fixed" message is sent.
        receiver.answer = lambda _d, _n: Answer(500)
        _recipe(farm, CHECKING)
        _drain(farm, logs)
        jobs = status(farm)["jobs"]
        assert sorted(j["state"] for j in jobs) == ["failed", "failed", "succeeded", "succeeded"]
        wait_for(lambda: any(h.event == "recovery" for h in receiver.hits), WINDOW + 30,
                 "a first try of the fixed message")
        controller.send_signal(signal.SIGKILL)
        controller.wait(timeout=30)
    finally:
        stop(controller)
    assert delivery_counts(engine) == {"pending": 1, "delivered": 1, "dead": 0}

    # A publish while no controller runs: its message waits in the farm's state.
    farm_key = keys[0]
    monkeypatch.setenv("GNUPGHOME", str(farm_key.home))
    published = cli("publish", farm / "wheelhouse", "--to", tmp_path / "index", "--sign-key",
                    farm_key.fingerprint, "--farm", farm, cwd=farm)
    assert published.returncode == 0, published.stderr
    assert delivery_counts(engine)["pending"] == 2

    receiver.answer = lambda _d, _n: Answer(200)
    tried = len(receiver.hits)
    controller = spawn("controller", "--port", str(port), cwd=farm, log=logs)
    try:
        wait_until_up(url)
        wait_for(lambda: delivery_counts(engine)["pending"] == 0, 60, "the outbox to drain")
        time.sleep(3)  # a second send would come now, if any
    finally:
        stop(controller)
    accepted = receiver.accepted()
    ids = [h.delivery for h in accepted]
    assert len(ids) == len(set(ids)) == 3, [(h.event, h.delivery) for h in accepted]
    assert [h.event for h in accepted] == ["failure", "recovery", "publish"]
    assert all(h.signed for h in receiver.hits)
    fixed, publish = accepted[1].body, accepted[2].body
    assert (fixed["recipes"], fixed["count"]) == (["fastadd"], 2)
    assert fixed["text"] == "fastadd fixed: 2 jobs succeeded again after failing"
    # The refused tries and the one that was taken carry one delivery id.
    assert {h.delivery for h in receiver.hits[1:tried] if h.event == "recovery"} == {ids[1]}
    assert publish["generation"] == 1 and len(publish["added"]) == 2
    assert publish["signer"] == farm_key.fingerprint and publish["who"]
    assert delivery_counts(engine) == {"pending": 0, "delivered": 3, "dead": 0}
    assert SECRET not in logs.read_text()
