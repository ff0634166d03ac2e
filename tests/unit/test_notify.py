"""Webhooks without the network: the [[notify]] config, grouping events into
outbox messages on a real SQLite state, signatures, the backoff schedule on
an injected clock, Slack escaping, and the secret's checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest

from tests.databases import Clock
from wheelfarm.cli import main
from wheelfarm.errors import ConfigError, FailureCause, FailureKind
from wheelfarm.farm.notify import delivery_counts, messages, outbox
from wheelfarm.farm.notify.deliver import Backoff, Notifier, secrets_of
from wheelfarm.farm.state import Artifact, Capabilities, NewJob, Outcome
from wheelfarm.farm.state.db import open_engine
from wheelfarm.farm.state.queue import Queue
from wheelfarm.plan import config as farm_config
from wheelfarm.plan.notifyconfig import NotifyTarget

LINUX = Capabilities(os="linux", arch="x86_64", executors=("host",), pythons=("cp39", "cp312"))
TARGET = NotifyTarget(name="hook", url="http://127.0.0.1:9/hook", format="json",
                      secret_env="WF_TEST_SECRET", window=30.0)


def _notifier(queue: Queue, clock: Clock, *targets: NotifyTarget) -> Notifier:
    return Notifier(queue.engine, targets or (TARGET,), {"hook": b"s3cret"},
                    dashboard_url="https://farm.example", clock=clock)


def _produce(notifier: Notifier, clock: Clock) -> None:
    clock.now += outbox.PG_SETTLE + 1  # PostgreSQL: the producer leaves the last moments
    notifier.produce()


def _jobs(queue: Queue, recipe: str, pythons: list[str], tag: str = "",
          targets: tuple[str, ...] = ("t1",)) -> None:
    queue.submit([NewJob(key=f"{recipe}-{t}-{p}{tag}", kind="build", recipe=recipe, target=t,
                         python=p, executor="host", arch="x86_64", pythons=(p,),
                         owners=("@alice", "<!channel>"))
                  for p in pythons for t in targets])


def _run_all(queue: Queue, outcome: Outcome) -> None:
    for lease in queue.claim("w1", LINUX, limit=50):
        queue.start(lease)
        queue.finish(lease, outcome)


TEST_FAILED = Outcome.failed(FailureKind.TEST, "test command failed: exit 3\nmore lines",
                             cause=FailureCause.TEST)
BUILT = Outcome(ok=True, duration=1.0, artifact=Artifact("x.whl", "a" * 64, "/farm/x.whl"))


def _pending(queue: Queue) -> list[dict[str, object]]:
    from sqlalchemy import select

    from wheelfarm.farm.state.schema import notify_outbox

    with queue.engine.connect() as conn:
        rows = conn.execute(select(notify_outbox).order_by(notify_outbox.c.id)).all()
    return [{**r._asdict(), "doc": json.loads(r.payload)} for r in rows]


# -- config -------------------------------------------------------------------------------------


def test_notify_tables_are_read_with_their_defaults(tmp_path: Path) -> None:
    (tmp_path / "wheelfarm.toml").write_text(
        'dashboard-url = "https://farm.example/"\n'
        '[[notify]]\nurl = "https://hooks.example/T/B"\n'
        '[[notify]]\nname = "bot"\nurl = "http://127.0.0.1:8000/x"\nformat = "json"\n'
        'secret-env = "WF_HOOK"\non = ["failure"]\nwindow = 0.5\nrecipes = ["Fast_Add"]\n')
    config = farm_config.load(tmp_path)
    slack, bot = config.notify
    assert config.dashboard_url == "https://farm.example"
    assert slack.format == "slack" and slack.on == ("failure", "recovery", "publish")
    assert slack.window == 60.0 and slack.recipes is None
    assert slack.name.startswith("slack-") and "hooks" not in slack.name  # the URL stays out
    assert (bot.name, bot.secret_env, bot.on, bot.window) == ("bot", "WF_HOOK", ("failure",), 0.5)
    assert bot.wants("failure", "fast-add") and not bot.wants("failure", "other")
    assert not bot.wants("publish")


@pytest.mark.parametrize(("table", "message"), [
    ('url = "ftp://x"', "notify[0].url: expected an http:// or https:// URL"),
    ('url = "http://x"\nformat = "xml"', "notify[0].format: expected one of: slack, json"),
    ('url = "http://x"\nformat = "json"', "notify[0].secret-env: required for format"),
    ('url = "http://x"\nsecret-env = "not a name"', "notify[0].secret-env: expected the name"),
    ('url = "http://x"\non = ["fail"]', "notify[0].on: unknown event 'fail'"),
    ('url = "http://x"\nwindow = 0', "notify[0].window: must be a positive number"),
    ('url = "http://x"\nwindow_s = 3', "notify[0].window_s: unknown key; did you mean 'window'"),
    ('url = "http://x"\nsecret = "abc"', "notify[0].secret: unknown key"),
])
def test_a_bad_notify_key_is_named_with_its_file_and_exits_2(
        tmp_path: Path, table: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "wheelfarm.toml").write_text(f"[[notify]]\n{table}\n")
    with pytest.raises(ConfigError, match=re.escape("wheelfarm.toml: " + message)):
        farm_config.load(tmp_path)
    assert main(["notify", "status", "--farm", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "wheelfarm.toml") in err.replace("\n", "")


def test_a_secret_comes_from_its_variable_which_builds_never_inherit(tmp_path: Path) -> None:
    assert secrets_of([TARGET], tmp_path, {"WF_TEST_SECRET": "abc"}) == {"hook": b"abc"}
    with pytest.raises(ConfigError, match=r"notify\[0\].secret-env: the environment variable "
                                          "WF_TEST_SECRET is not set"):
        secrets_of([TARGET], tmp_path, {})
    # A name the executors' allowlist passes on to builds is refused.
    for leaky in ("PIP_HOOK_SECRET", "LC_HOOK", "HOME"):
        target = NotifyTarget(name="x", url="http://x", format="json", secret_env=leaky)
        with pytest.raises(ConfigError, match="is passed on to builds"):
            secrets_of([target], tmp_path, {leaky: "abc"})


# -- signature, backoff, rendering ---------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a": 1}'
    header = messages.sign(b"k", body, 1700000000)
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert messages.verify(b"k", body, header, now=1700000100)
    assert not messages.verify(b"k", body + b" ", header, now=1700000100)  # body changed
    assert not messages.verify(b"other", body, header, now=1700000100)
    assert not messages.verify(b"k", body, header, now=1700000000 + 301)  # a replay, later
    assert not messages.verify(b"k", body, "v1=" + expected, now=1700000000)


def test_the_backoff_doubles_to_its_cap_with_equal_jitter() -> None:
    low = Backoff(2.0, 20.0, jitter=lambda: 0.0)
    high = Backoff(2.0, 20.0, jitter=lambda: 1.0)
    assert [low.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [high.delay(n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]


def test_slack_text_from_logs_and_recipes_is_escaped_and_capped() -> None:
    doc = {"event": "failure", "recipes": ["evil"], "cause": "test-failure",
           "owners": ["<!channel>", "@bob"], "count": 41,
           "reason": "<script>alert(1)</script> & <https://phish.example|click>" + "x" * 5000,
           "jobs": [{"key": "ab" * 32, "target": "t1", "python": "cp312",
                     "url": "https://farm.example/jobs/" + "ab" * 32}]}
    payload = messages.slack_payload(doc)
    text = payload["blocks"][0]["text"]["text"]
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://phish" not in payload["text"] and "&amp;" in payload["text"]
    assert len(payload["text"]) < 3000
    links = payload["blocks"][1]["elements"][0]["text"]
    assert links.startswith("<https://farm.example/jobs/" + "ab" * 32 + "|t1 cp312 ")
    assert links.endswith("and 40 more")


# -- grouping ------------------------------------------------------------------------------------


def test_a_matrix_failing_with_one_cause_makes_one_message(queue: Queue, clock: Clock) -> None:
    notifier = _notifier(queue, clock)
    assert notifier.produce() == 0  # a new target starts at the newest event
    _jobs(queue, "fastadd", ["cp39", "cp312"], targets=tuple(f"t{i}" for i in range(20)))
    _jobs(queue, "other", ["cp312"])
    _run_all(queue, TEST_FAILED)
    _produce(notifier, clock)
    rows = _pending(queue)
    by_recipe = {r["doc"]["recipes"][0]: r for r in rows}  # type: ignore[index]
    assert len(rows) == 2 and set(by_recipe) == {"fastadd", "other"}
    doc = by_recipe["fastadd"]["doc"]
    assert doc["count"] == 40 and doc["cause"] == "test-failure"  # type: ignore[index]
    assert doc["owners"] == ["@alice", "<!channel>"]  # type: ignore[index]
    assert doc["reason"] == "test command failed: exit 3"  # type: ignore[index]
    assert len(doc["jobs"]) == 40  # type: ignore[index,arg-type]
    assert doc["jobs"][0]["url"] == "https://farm.example/jobs/fastadd-t0-cp39"  # type: ignore[index]
    # Due when the window closes, not before: nothing is sent yet.
    assert by_recipe["fastadd"]["not_before"] == pytest.approx(1_000_000.0 + 30.0)
    assert notifier.deliver_due() == []
    # A later failure of the same recipe and cause, after the window: a new message.
    clock.now += 31
    _jobs(queue, "fastadd", ["cp312"], tag="-b")
    _run_all(queue, TEST_FAILED)
    _produce(notifier, clock)
    assert [r["doc"]["count"] for r in _pending(queue)] == [40, 1, 1]  # type: ignore[index]
    assert delivery_counts(queue.engine) == {"pending": 3, "delivered": 0, "dead": 0}


def test_only_a_success_after_a_failure_is_a_recovery(queue: Queue, clock: Clock) -> None:
    notifier = _notifier(queue, clock)
    notifier.produce()
    _jobs(queue, "fastadd", ["cp39", "cp312"])
    _run_all(queue, TEST_FAILED)
    _jobs(queue, "steady", ["cp312"])
    _run_all(queue, BUILT)
    clock.now += 100
    _produce(notifier, clock)
    # The recipe changed: new keys, same recipe, target and pythons.
    _jobs(queue, "fastadd", ["cp39", "cp312"], tag="-fixed")
    _jobs(queue, "steady", ["cp312"], tag="-again")
    _run_all(queue, BUILT)
    _produce(notifier, clock)
    rows = _pending(queue)
    assert [(r["event"], r["doc"]["count"]) for r in rows] == [  # type: ignore[index]
        ("failure", 2), ("recovery", 2)]
    assert rows[1]["doc"]["recipes"] == ["fastadd"]  # type: ignore[index]


def test_a_claimed_message_takes_no_more_events(queue: Queue, clock: Clock) -> None:
    target = NotifyTarget(name="hook", url="http://127.0.0.1:9/", format="json",
                          secret_env="X", window=30.0)
    notifier = _notifier(queue, clock, target)
    notifier.produce()
    _jobs(queue, "fastadd", ["cp39"])
    _run_all(queue, TEST_FAILED)
    _produce(notifier, clock)
    clock.now += 31
    token, rows = outbox.claim(queue.engine, ["hook"], clock.now, 60, 10)
    assert len(rows) == 1
    clock.now -= 30  # an event inside the window, seen after the claim
    _jobs(queue, "fastadd", ["cp312"])
    _run_all(queue, TEST_FAILED)
    _produce(notifier, clock)
    assert [r["doc"]["count"] for r in _pending(queue)] == [1, 1]  # type: ignore[index]
    assert outbox.record(queue.engine, rows[0].id, token, clock.now, error=None, retry_at=None)
    assert not outbox.record(queue.engine, rows[0].id, "stale", clock.now, error=None,
                             retry_at=None)


def test_a_publish_is_queued_for_publish_targets_and_never_fails_on_the_state(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from wheelfarm.farm.notify import service

    hooks = (TARGET, NotifyTarget(name="quiet", url="http://x", on=("failure",)))
    config = farm_config.FarmConfig(root=tmp_path, notify=hooks,
                                    state=f"sqlite:///{tmp_path / 'state.db'}")
    service.publish_news(config, {"generation": 4, "change": "published x", "added": ["x.whl"]})
    engine = open_engine(config.state_url)
    [row] = outbox.claim(engine, ["hook", "quiet"], 2e9, 60, 10)[1]
    assert (row.target, row.event) == ("hook", "publish")
    assert json.loads(row.payload)["generation"] == 4 and json.loads(row.payload)["who"]
    # A state that cannot be opened: the publish stands, with a warning.
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    broken = farm_config.FarmConfig(root=tmp_path, notify=hooks,
                                    state=f"sqlite:///{blocked}/sub/state.db")
    service.publish_news(broken, {"generation": 5, "change": "c", "added": []})
    assert "the publish notification was not queued" in caplog.text
