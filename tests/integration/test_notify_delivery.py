"""Delivering the outbox to a real HTTP receiver on loopback: signatures,
retries after errors and timeouts, dead messages, two deliverers on one
state, and the `wheelfarm notify` commands."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from wheelfarm.farm.notify import outbox
from wheelfarm.farm.notify.deliver import Backoff, Notifier
from wheelfarm.farm.state.db import open_engine
from wheelfarm.farm.state.schema import notify_outbox
from wheelfarm.plan.notifyconfig import NotifyTarget

from .queue_support import cli
from .webhook_receiver import Answer, Receiver, receiving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SECRET = b"receiver-secret-51c0"
FAST = Backoff(0.2, 1.0, jitter=lambda: 0.0)  # retries after 0.1 s, 0.2 s, 0.4 s ...


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(SECRET) as found:
        yield found


def _notifier(tmp_path: Path, receiver: Receiver, *, fmt: str = "json", max_attempts: int = 5,
              timeout: float = 0.5) -> Notifier:
    target = NotifyTarget(name="hook", url=receiver.url, format=fmt,  # type: ignore[arg-type]
                          secret_env="X", timeout=timeout, max_attempts=max_attempts)
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    return Notifier(engine, [target], {"hook": SECRET} if fmt == "json" else {},
                    backoff={"hook": FAST})


def _rows(notifier: Notifier) -> list[dict[str, object]]:
    with notifier.engine.connect() as conn:
        return [r._asdict() for r in conn.execute(select(notify_outbox)
                                                   .order_by(notify_outbox.c.id))]


def _until_settled(notifier: Notifier, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while outbox.delivery_counts(notifier.engine)["pending"]:
        assert time.monotonic() < deadline, _rows(notifier)
        notifier.step()
        time.sleep(0.05)


DOC = {"event": "failure", "recipes": ["fastadd"], "cause": "test-failure",
       "owners": ["@alice"], "count": 2, "reason": "test command failed", "jobs": []}


def test_errors_and_timeouts_are_retried_with_the_same_delivery_id(
        tmp_path: Path, receiver: Receiver) -> None:
    answers = [Answer(500), Answer(200, delay=1.5), Answer(200)]
    receiver.answer = lambda _d, n: answers[min(n, 2)]
    notifier = _notifier(tmp_path, receiver)
    [delivery] = outbox.enqueue(notifier.engine, notifier.targets, "failure", DOC, time.time())
    _until_settled(notifier)
    hits = receiver.hits
    assert [h.status for h in hits] == [500, 200, 200]
    assert {h.delivery for h in hits} == {delivery}  # the receivers' key to drop repeats
    assert all(h.signed for h in hits)  # each attempt signed anew, with its own timestamp
    assert hits[0].body["owners"] == ["@alice"] and hits[0].body["id"] == delivery
    assert hits[0].body["event"] == "failure" and hits[0].body["schema"] == 1
    # The retries waited for their backoff (0.1 s, then 0.2 s after the timeout).
    assert hits[1].at - hits[0].at >= 0.1 and hits[2].at - hits[1].at >= 0.5 + 0.2
    [row] = _rows(notifier)
    assert (row["state"], row["attempts"]) == ("delivered", 3)
    assert "timed out after 0.5s" in str(row["last_error"])


def test_a_message_nobody_takes_is_kept_dead_and_shown(
        tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver.answer = lambda _d, _n: Answer(500)
    notifier = _notifier(tmp_path, receiver, max_attempts=3)
    outbox.enqueue(notifier.engine, notifier.targets, "failure", DOC, time.time())
    _until_settled(notifier)
    assert len(receiver.hits) == 3
    assert outbox.delivery_counts(notifier.engine) == {"pending": 0, "delivered": 0, "dead": 1}
    farm = tmp_path / "farm"
    farm.mkdir()
    (farm / "wheelfarm.toml").write_text(
        f'state = "sqlite:///{tmp_path / "state.db"}"\n[[notify]]\nname = "hook"\n'
        f'url = "{receiver.url}"\nformat = "json"\nsecret-env = "WF_NOTIFY_TEST_SECRET"\n')
    shown = cli("notify", "status", "--json", "--farm", farm, cwd=farm)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["counts"] == {"pending": 0, "delivered": 0, "dead": 1}
    assert doc["errors"][0]["state"] == "dead" and doc["errors"][0]["error"].startswith("HTTP 500")
    assert receiver.url not in shown.stdout
    # `notify test` sends now, signed with the secret from the environment.
    receiver.answer = lambda _d, _n: Answer(200)
    missing = cli("notify", "test", "--farm", farm, cwd=farm)
    assert missing.returncode == 2
    assert "notify[0].secret-env: the environment variable WF_NOTIFY_TEST_SECRET is not set" \
        in missing.stderr
    monkeypatch.setenv("WF_NOTIFY_TEST_SECRET", SECRET.decode())
    sent = cli("notify", "test", "--farm", farm, cwd=farm)
    assert sent.returncode == 0, sent.stderr
    assert "hook: delivered" in sent.stdout
    assert receiver.hits[-1].event == "test" and receiver.hits[-1].signed
    receiver.answer = lambda _d, _n: Answer(503)
    refused = cli("notify", "test", "--farm", farm, cwd=farm)
    assert refused.returncode == 1 and "HTTP 503" in refused.stdout


def test_a_slack_target_gets_an_incoming_webhook_payload(
        tmp_path: Path, receiver: Receiver) -> None:
    notifier = _notifier(tmp_path, receiver, fmt="slack")
    doc = {**DOC, "reason": "<!here> & <b>", "jobs": [
        {"key": "f" * 64, "target": "linux_x86_64", "python": "cp312",
         "url": "https://farm.example/jobs/" + "f" * 64}]}
    outbox.enqueue(notifier.engine, notifier.targets, "failure", doc, time.time())
    _until_settled(notifier)
    [hit] = receiver.hits
    assert set(hit.body) == {"text", "blocks"} and not hit.signed
    assert "&lt;!here&gt; &amp; &lt;b&gt;" in hit.body["text"]
    assert "<https://farm.example/jobs/" + "f" * 64 + "|" in json.dumps(hit.body["blocks"])


def test_two_deliverers_on_one_state_send_each_message_once(
        tmp_path: Path, receiver: Receiver) -> None:
    receiver.answer = lambda _d, _n: Answer(200, delay=0.05)
    one = _notifier(tmp_path, receiver)
    two = _notifier(tmp_path, receiver)
    two.batch = one.batch = 3
    made = {outbox.enqueue(one.engine, one.targets, "failure", {**DOC, "count": i},
                           time.time())[0] for i in range(12)}
    threads = [threading.Thread(target=n.step) for n in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    sent = [h.delivery for h in receiver.hits]
    assert sorted(sent) == sorted(made)  # every message, none twice
    assert outbox.delivery_counts(one.engine)["delivered"] == 12


def test_the_retry_schedule_follows_the_backoff_on_an_injected_clock(
        tmp_path: Path, receiver: Receiver) -> None:
    """Nothing is sent before its time; each failure moves the next try by the
    target's backoff; the last allowed failure makes the message dead."""
    receiver.answer = lambda _d, _n: Answer(502)
    now = [5_000_000.0]
    target = NotifyTarget(name="hook", url=receiver.url, format="json", secret_env="X",
                          timeout=2.0, max_attempts=4, retry_backoff=10.0, max_backoff=25.0)
    notifier = Notifier(open_engine(f"sqlite:///{tmp_path / 'state.db'}"), [target],
                        {"hook": SECRET}, clock=lambda: now[0],
                        backoff={"hook": Backoff(10.0, 25.0, jitter=lambda: 1.0)})
    outbox.enqueue(notifier.engine, [target], "failure", DOC, now[0])
    due = []
    for _ in range(4):
        assert len(notifier.deliver_due()) == 1
        [row] = _rows(notifier)
        due.append(float(row["not_before"]) - now[0])  # type: ignore[arg-type]
        if row["state"] == "dead":
            break
        now[0] += due[-1] - 0.01
        assert notifier.deliver_due() == []  # not yet
        now[0] += 0.01
    assert due[:3] == [10.0, 20.0, 25.0]
    [row] = _rows(notifier)
    assert (row["state"], row["attempts"], len(receiver.hits)) == ("dead", 4, 4)
    assert str(row["last_error"]).startswith("HTTP 502")
    # The signature's timestamp is the injected clock's: a receiver on the
    # real clock refuses it as a replay.
    assert not any(h.signed for h in receiver.hits)


def test_a_slow_receiver_does_not_hold_back_another_targets_messages(
        tmp_path: Path, receiver: Receiver) -> None:
    receiver.answer = lambda _d, _n: Answer(200, delay=0.8)
    with receiving(SECRET) as quick:
        targets = [NotifyTarget(name=name, url=r.url, format="json",  # type: ignore[arg-type]
                                secret_env="X", timeout=5.0)
                   for name, r in (("slow", receiver), ("quick", quick))]
        engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
        notifier = Notifier(engine, targets, {"slow": SECRET, "quick": SECRET})
        # One message per target each time: the outbox interleaves slow, quick, slow, ...
        for i in range(3):
            outbox.enqueue(engine, targets, "failure", {**DOC, "count": i}, time.time())
        started = time.time()
        results = notifier.deliver_due()
        took = time.time() - started
        assert len(results) == 6 and all(error is None for _d, error in results)
        assert took >= 3 * 0.8  # the slow target's three, one after the other
        # The quick target's three all arrived while the slow one's first was pending.
        assert [h.body["count"] for h in quick.hits] == [0, 1, 2]
        assert max(h.at for h in quick.hits) - started < 0.8, \
            [round(h.at - started, 2) for h in quick.hits]
        assert [h.body["count"] for h in receiver.hits] == [0, 1, 2]  # in order
