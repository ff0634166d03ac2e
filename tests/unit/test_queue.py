"""The queue's rules, on SQLite here; tests/integration/test_queue_postgres.py
runs these same tests against a real PostgreSQL server."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from tests.databases import Clock
from wheelfarm.errors import ConfigError, FailureKind, LeaseLost
from wheelfarm.farm.state import (
    Artifact,
    Capabilities,
    JobState,
    Lease,
    NewJob,
    Outcome,
    intake,
)
from wheelfarm.farm.state import report as state_report
from wheelfarm.farm.state.db import open_engine
from wheelfarm.farm.state.queue import Queue
from wheelfarm.farm.state.schema import events

LINUX = Capabilities(os="linux", arch="x86_64", executors=("host", "zig"),
                     pythons=("cp39", "cp312"))


def job(key: str, *, recipe: str = "demo", python: str = "cp312", target: str = "t1",
        executor: str = "host", arch: str = "x86_64", needs: tuple[str, ...] = (),
        priority: int = 0, max_attempts: int = 3, limit: int = 0,
        pythons: tuple[str, ...] | None = None) -> NewJob:
    return NewJob(key=key, kind=FailureKind.BUILD, recipe=recipe, target=target, python=python,
                  executor=executor, arch=arch, pythons=pythons or (python,),
                  spec={"recipe_text": "x"}, needs=needs, priority=priority,
                  max_attempts=max_attempts, target_limit=limit)


def ok(sha: str = "a" * 64) -> Outcome:
    return Outcome(ok=True, duration=1.0, artifact=Artifact("demo.whl", sha, "/farm/demo.whl"))


def state_of(queue: Queue, key: str) -> str:
    return str(queue.find(key).state)


def kinds(queue: Queue) -> list[str]:
    with queue.engine.begin() as conn:
        return [e.kind for e in conn.execute(select(events).order_by(events.c.id))]


def test_submit_is_idempotent_per_key(queue: Queue) -> None:
    assert queue.submit([job("k1"), job("k2")]) == (2, 0)
    assert queue.submit([job("k1"), job("k3")]) == (1, 1)
    assert [j["key"] for j in state_report.queue_jobs(queue)] == ["k1", "k2", "k3"]


def test_lifecycle_to_success_records_the_artifact_once(queue: Queue) -> None:
    queue.submit([job("k1")])
    [lease] = queue.claim("w1", LINUX)
    assert state_of(queue, "k1") == JobState.LEASED
    queue.start(lease)
    assert state_of(queue, "k1") == JobState.RUNNING
    assert queue.finish(lease, ok()) == JobState.SUCCEEDED
    with pytest.raises(LeaseLost):
        queue.finish(lease, ok("b" * 64))
    [doc] = state_report.queue_jobs(queue)
    assert doc["artifact"] == {"filename": "demo.whl", "sha256": "a" * 64}
    assert [a["n"] for a in doc["attempts"]] == [1]
    assert kinds(queue).count("succeeded") == 1
    assert kinds(queue)[-1] == "result-refused"


def test_a_job_is_never_leased_twice(queue: Queue) -> None:
    queue.submit([job("k1")])
    assert len(queue.claim("w1", LINUX)) == 1
    assert queue.claim("w2", LINUX) == []


def test_success_needs_a_started_job(queue: Queue) -> None:
    queue.submit([job("k1")])
    [lease] = queue.claim("w1", LINUX)
    with pytest.raises(LeaseLost):
        queue.finish(lease, ok())  # leased -> succeeded is not a legal move
    assert state_of(queue, "k1") == JobState.LEASED


def test_expired_lease_is_reclaimed_and_its_late_result_refused(
        queue: Queue, clock: Clock) -> None:
    queue.submit([job("k1")])
    [first] = queue.claim("w1", LINUX)
    queue.start(first)
    clock.now += 11  # w1 stopped heartbeating
    assert queue.heartbeat([first]) == [first]
    assert queue.reclaim() == 1
    row = queue.find("k1")
    assert row.state == JobState.PENDING and row.failures == 1
    assert row.not_before == clock.now + 5.0  # the first backoff
    assert queue.claim("w2", LINUX) == []
    clock.now += 5
    [second] = queue.claim("w2", LINUX)
    assert second.n == 2
    queue.start(second)
    with pytest.raises(LeaseLost):
        queue.finish(first, ok("b" * 64))
    assert queue.finish(second, ok()) == JobState.SUCCEEDED
    doc = state_report.queue_jobs(queue)[0]
    assert [(a["worker"], a["reason"] is not None) for a in doc["attempts"]] == [
        ("w1", True), ("w2", False)]
    assert "lease expired" in doc["attempts"][0]["reason"]
    assert doc["artifact"]["sha256"] == "a" * 64


def test_expired_lease_refuses_even_before_reclaim(queue: Queue, clock: Clock) -> None:
    queue.submit([job("k1")])
    [lease] = queue.claim("w1", LINUX)
    queue.start(lease)
    clock.now += 10.5
    with pytest.raises(LeaseLost):
        queue.finish(lease, ok())


def test_heartbeat_extends_the_lease(queue: Queue, clock: Clock) -> None:
    queue.submit([job("k1")])
    [lease] = queue.claim("w1", LINUX)
    for _ in range(5):
        clock.now += 8
        assert queue.heartbeat([lease]) == []
    assert queue.reclaim() == 0
    queue.start(lease)
    assert queue.finish(lease, ok()) == JobState.SUCCEEDED


def test_transient_failures_retry_with_backoff_until_max_attempts(
        queue: Queue, clock: Clock) -> None:
    queue.submit([job("k1", max_attempts=2)])
    [lease] = queue.claim("w1", LINUX)
    queue.start(lease)
    timeout = Outcome(ok=False, duration=3.0, kind=FailureKind.TIMEOUT, reason="timed out after 3s")
    assert queue.finish(lease, timeout) == JobState.PENDING
    clock.now += 5
    [lease] = queue.claim("w1", LINUX)
    queue.start(lease)
    assert queue.finish(lease, timeout) == JobState.FAILED
    row = queue.find("k1")
    assert row.reason == "timed out after 3s (attempt 2 of 2)"
    doc = state_report.queue_jobs(queue)[0]
    assert [a["reason"] for a in doc["attempts"]] == ["timed out after 3s"] * 2


def test_a_build_failure_is_final_at_once(queue: Queue) -> None:
    queue.submit([job("k1")])
    [lease] = queue.claim("w1", LINUX)
    queue.start(lease)
    broken = Outcome(ok=False, duration=1.0, kind=FailureKind.BUILD,
                     reason="build failed: error: x")
    assert queue.finish(lease, broken) == JobState.FAILED


def test_release_hands_back_without_counting(queue: Queue) -> None:
    queue.submit([job("k1", max_attempts=1)])
    [lease] = queue.claim("w1", LINUX)
    queue.start(lease)
    queue.release(lease, "the worker is stopping")
    row = queue.find("k1")
    assert row.state == JobState.PENDING and row.failures == 0
    [again] = queue.claim("w2", LINUX)
    assert again.n == 2


def test_capabilities_decide_who_gets_a_job(queue: Queue) -> None:
    queue.submit([
        job("old", python="cp39"),
        job("zig", executor="zig"),
        job("arm", arch="aarch64"),
        job("abi3", python="cp39", pythons=("cp39", "cp313")),
    ])
    only312 = Capabilities(os="linux", arch="x86_64", executors=("host",), pythons=("cp312",))
    assert queue.claim("small", only312, limit=10) == []
    got = {lease.key for lease in queue.claim("big", LINUX, limit=10)}
    assert got == {"old", "zig"}  # no aarch64, no cp313 here
    assert queue.outstanding(only312) == 0
    assert queue.outstanding(LINUX) == 2  # the two it holds


def test_priority_then_age(queue: Queue) -> None:
    queue.submit([job("a"), job("b", priority=5), job("c"), job("d", priority=5)])
    order = [queue.claim("w", LINUX)[0].key for _ in range(4)]
    assert order == ["b", "d", "a", "c"]


def test_per_target_limit(queue: Queue) -> None:
    queue.submit([job(f"k{i}", target="slow", limit=2) for i in range(4)] + [job("other")])
    leases = queue.claim("w", LINUX, limit=10)
    assert [lease.key for lease in leases] == ["k0", "k1", "other"]
    assert queue.claim("w2", LINUX) == []
    queue.start(leases[0])
    queue.finish(leases[0], ok())
    assert [lease.key for lease in queue.claim("w2", LINUX, limit=10)] == ["k2"]


def test_needs_wait_for_the_dependency(queue: Queue) -> None:
    queue.submit([job("user", recipe="user", needs=("base",)), job("base", recipe="base")])
    [lease] = queue.claim("w", LINUX, limit=5)
    assert lease.key == "base"
    assert queue.claim("w", LINUX) == []
    queue.start(lease)
    queue.finish(lease, ok())
    [user] = queue.claim("w", LINUX)
    assert user.key == "user"
    assert user.spec["needs"] == [{"key": "base", "filename": "demo.whl", "sha256": "a" * 64,
                                   "location": "/farm/demo.whl"}]


def test_needs_must_be_submittable(queue: Queue) -> None:
    with pytest.raises(ConfigError, match="user needs base, but no job builds base"):
        queue.submit([job("user", recipe="user", needs=("base",))])


def test_a_failed_dependency_fails_its_dependents(queue: Queue) -> None:
    queue.submit([job("base", recipe="base"), job("mid", recipe="mid", needs=("base",)),
                  job("top", recipe="top", needs=("mid",))])
    [lease] = queue.claim("w", LINUX)
    queue.start(lease)
    queue.finish(lease, Outcome(ok=False, duration=1, kind=FailureKind.TEST, reason="test failed"))
    assert state_of(queue, "mid") == JobState.FAILED
    assert state_of(queue, "top") == JobState.FAILED
    assert "needs base" in queue.find("mid").reason


def test_a_dependent_submitted_after_its_dependency_failed_fails_at_once(
        queue: Queue) -> None:
    """It would otherwise wait forever: no job of the needed recipe can succeed."""
    queue.submit([job("base", recipe="base")])
    [lease] = queue.claim("w", LINUX)
    queue.start(lease)
    queue.finish(lease, Outcome(ok=False, duration=1, kind=FailureKind.TEST, reason="test failed"))
    queue.submit([job("mid", recipe="mid", needs=("base",)),
                  job("top", recipe="top", needs=("mid",))])
    assert state_of(queue, "mid") == JobState.FAILED
    assert state_of(queue, "top") == JobState.FAILED
    assert "needs base" in queue.find("mid").reason and "failed" in queue.find("mid").reason
    # A needed recipe with another job still able to succeed: the dependent waits.
    queue.submit([job("base2", recipe="base", python="cp312", target="t1", priority=1)])
    queue.submit([job("late", recipe="late", needs=("base",))])
    assert state_of(queue, "late") == JobState.PENDING


def test_retrying_a_failed_dependency_revives_the_dependents_it_failed(queue: Queue) -> None:
    queue.submit([job("base", recipe="base"), job("mid", recipe="mid", needs=("base",)),
                  job("top", recipe="top", needs=("mid",)), job("ran", recipe="ran")])
    bad = Outcome(ok=False, duration=1, kind=FailureKind.TEST, reason="test failed")
    for lease in queue.claim("w", LINUX, limit=5):  # base and ran: the others wait
        queue.start(lease)
        queue.finish(lease, bad)
    assert state_of(queue, "top") == JobState.FAILED
    row, revived = queue.retry_job("base")
    assert row.key == "base" and [r.key for r in revived] == ["mid", "top"]
    assert [state_of(queue, k) for k in ("base", "mid", "top")] == [JobState.PENDING] * 3
    assert state_of(queue, "ran") == JobState.FAILED  # failed on its own: not revived
    assert queue.find("mid").reason is None
    # They wait for base again, and build once it succeeds.
    [lease] = queue.claim("w", LINUX, limit=5)
    assert lease.key == "base"
    queue.start(lease)
    queue.finish(lease, ok())
    [lease] = queue.claim("w", LINUX, limit=5)
    assert lease.key == "mid"


def test_cancel_stops_the_holder_and_retry_requeues(queue: Queue) -> None:
    queue.submit([job("k1")])
    [lease] = queue.claim("w", LINUX)
    queue.start(lease)
    queue.cancel("k1")
    assert queue.heartbeat([lease]) == [lease]
    with pytest.raises(LeaseLost):
        queue.finish(lease, ok())
    assert state_of(queue, "k1") == JobState.CANCELLED
    with pytest.raises(ConfigError, match="cannot be cancelled"):
        queue.cancel("k1")
    queue.retry("k1")
    assert state_of(queue, "k1") == JobState.PENDING
    with pytest.raises(ConfigError, match="only failed or cancelled"):
        queue.retry("k1")
    doc = state_report.queue_jobs(queue)[0]
    assert doc["attempts"][0]["reason"] == "cancelled by an operator"


def test_find_by_unique_prefix(queue: Queue) -> None:
    queue.submit([job("abc1"), job("abd2")])
    assert queue.find("abc").key == "abc1"
    with pytest.raises(ConfigError, match="matches several jobs"):
        queue.find("ab")
    with pytest.raises(ConfigError, match="no job matches"):
        queue.find("zz")
    with pytest.raises(ConfigError, match="no job matches"):
        queue.find("a%")  # LIKE wildcards are plain characters here


def claimed_by_four_workers(state_url: str, **claim: Any) -> list[Lease]:
    """Every lease four threads, each with its own connection, claim until none is left."""
    got: list[Lease] = []
    guard = threading.Lock()

    def claimer(name: str) -> None:
        own = Queue(open_engine(state_url), lease_seconds=10.0)
        while leases := own.claim(name, LINUX, **claim):
            with guard:
                got.extend(leases)
        own.engine.dispose()

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def test_concurrent_claims_never_share_a_job(queue: Queue, state_url: str) -> None:
    queue.submit([job(f"k{i:03d}") for i in range(60)])
    got = claimed_by_four_workers(state_url, limit=2)
    assert sorted(x.key for x in got) == [f"k{i:03d}" for i in range(60)]


def test_event_log_tells_the_story(queue: Queue, clock: Clock) -> None:
    queue.submit([job("k1")])
    [lease] = queue.claim("w1", LINUX)
    queue.start(lease)
    clock.now += 20
    queue.reclaim()
    clock.now += 5
    [lease] = queue.claim("w2", LINUX)
    queue.start(lease)
    queue.finish(lease, ok())
    story = [(e["kind"], e["worker"]) for e in state_report.job_events(queue, 1)]
    assert story == [("submitted", None), ("leased", "w1"), ("started", "w1"),
                     ("retrying", "w1"), ("leased", "w2"), ("started", "w2"),
                     ("succeeded", "w2")]
    json.dumps(state_report.job_events(queue))  # serializable as it is


def test_batched_reports_accept_each_held_lease_and_refuse_the_rest(
        queue: Queue, clock: Clock) -> None:
    queue.submit([job(f"k{i}") for i in range(4)])
    leases = queue.claim("w", LINUX, limit=4)
    queue.cancel("k3")
    assert queue.start_many(leases) == [leases[3]]
    broken = Outcome(ok=False, duration=1, kind=FailureKind.TIMEOUT, reason="timed out")
    states = queue.finish_many([(leases[0], ok("1" * 64)), (leases[1], broken),
                                (leases[2], ok("2" * 64)), (leases[3], ok("3" * 64))])
    assert states == [JobState.SUCCEEDED, JobState.PENDING, JobState.SUCCEEDED, None]
    assert queue.finish_many([(leases[0], ok("4" * 64))]) == [None]
    docs = {d["key"]: d for d in state_report.queue_jobs(queue)}
    assert docs["k0"]["artifact"]["sha256"] == "1" * 64
    assert docs["k2"]["artifact"]["sha256"] == "2" * 64
    assert docs["k3"]["state"] == "cancelled" and docs["k3"]["artifact"] is None
    assert kinds(queue).count("succeeded") == 2
    assert kinds(queue).count("result-refused") == 2


def test_a_large_submission_keeps_every_job_and_its_event(queue: Queue) -> None:
    # Large enough for PostgreSQL's COPY path (see tests/integration/test_queue_postgres.py).
    queue.submit([job(f"k{i:04d}", priority=i % 3) for i in range(450)]
                 + [job("user", recipe="user", needs=("demo",))])
    docs = state_report.queue_jobs(queue)
    assert len(docs) == 451 and {d["state"] for d in docs} == {"pending"}
    assert kinds(queue).count("submitted") == 451
    first = queue.claim("w", LINUX, limit=3)
    assert [x.key for x in first] == ["k0002", "k0005", "k0008"]


def test_a_dependency_built_for_another_target_does_not_count(queue: Queue) -> None:
    queue.submit([job("base1", recipe="base", target="t1"),
                  job("base2", recipe="base", target="t2", priority=1),
                  job("user1", recipe="user", target="t1", needs=("base",), priority=2)])
    [lease] = queue.claim("w", LINUX)
    assert lease.key == "base2"
    queue.start(lease)
    queue.finish(lease, ok())
    # base succeeded for t2 only: user1 (t1) must still wait for base1.
    assert [x.key for x in queue.claim("w", LINUX, limit=5)] == ["base1"]


def test_jobs_no_worker_can_run_do_not_hide_the_ones_it_can(queue: Queue) -> None:
    # More unrunnable jobs ahead of it than a claim reads at once.
    queue.submit([job(f"new{i:02d}", python="cp313", priority=1) for i in range(40)]
                 + [job("mine")])
    assert [x.key for x in queue.claim("w", LINUX, limit=2)] == ["mine"]
    assert queue.outstanding(LINUX) == 1


def probe(key: str, seconds: float = 0.0) -> NewJob:
    return NewJob(key=key, kind="probe", recipe="probe", target="", python="", executor="",
                  arch="", os="", spec={"seconds": seconds})


def test_a_claim_may_start_the_jobs_that_run_at_once(queue: Queue) -> None:
    queue.submit([probe("p1"), probe("p2", seconds=1.0), job("b1")])
    leases = queue.claim("w", LINUX, limit=3, start=True)
    assert [(x.key, x.running) for x in leases] == [
        ("p1", True), ("p2", False), ("b1", False)]
    assert [state_of(queue, k) for k in ("p1", "p2", "b1")] == ["running", "leased", "leased"]
    with pytest.raises(LeaseLost):
        queue.start(leases[0])  # running already: no second start
    assert queue.start_many(leases[1:]) == []
    assert queue.finish_many([(x, ok(str(i) * 64)) for i, x in enumerate(leases)]) == [
        JobState.SUCCEEDED] * 3
    story = [(e["kind"], e["n"]) for e in state_report.job_events(queue, leases[0].job_id)]
    assert story == [("submitted", None), ("leased", 1), ("started", 1), ("succeeded", 1)]


def test_a_job_started_by_its_claim_still_refuses_a_lost_lease(
        queue: Queue, clock: Clock) -> None:
    queue.submit([probe("p1"), probe("p2")])
    first = queue.claim("w1", LINUX, limit=2, start=True)
    queue.cancel("p2")
    clock.now += 11  # w1 stopped heartbeating
    assert queue.reclaim() == 1
    clock.now += 5
    [second] = queue.claim("w2", LINUX, limit=2, start=True)
    assert (second.key, second.n, second.running) == ("p1", 2, True)
    assert queue.heartbeat(first) == first
    assert queue.finish_many([(x, ok()) for x in first]) == [None, None]
    assert queue.finish(second, ok("b" * 64)) == JobState.SUCCEEDED
    story = [(e["kind"], e["worker"]) for e in state_report.job_events(queue, second.job_id)]
    assert story == [("submitted", None), ("leased", "w1"), ("started", "w1"),
                     ("retrying", "w1"), ("leased", "w2"), ("started", "w2"),
                     ("result-refused", "w1"), ("succeeded", "w2")]
    assert state_of(queue, "p2") == JobState.CANCELLED
    [doc] = [d for d in state_report.queue_jobs(queue) if d["key"] == "p1"]
    assert doc["artifact"]["sha256"] == "b" * 64


def test_concurrent_claims_that_start_never_share_a_job(queue: Queue, state_url: str) -> None:
    queue.submit([probe(f"p{i:03d}") for i in range(60)])
    got = claimed_by_four_workers(state_url, limit=3, start=True)
    assert all(x.running for x in got)
    assert sorted(x.key for x in got) == [f"p{i:03d}" for i in range(60)]
    assert kinds(queue).count("started") == 60


def test_outcomes_and_the_next_claim_in_one_transaction(queue: Queue) -> None:
    queue.submit([probe(f"p{i}") for i in range(5)])
    first = queue.claim("w", LINUX, limit=2, start=True)
    queue.cancel("p1")  # its result will be refused; the claim goes on all the same
    states, second = queue.finish_and_claim([(x, ok()) for x in first], "w", LINUX, 2,
                                            start=True)
    assert states == [JobState.SUCCEEDED, None]
    assert [(x.key, x.running) for x in second] == [("p2", True), ("p3", True)]
    states, third = queue.finish_and_claim([(x, ok()) for x in second], "w", LINUX, 2)
    assert states == [JobState.SUCCEEDED] * 2
    assert [(x.key, x.running) for x in third] == [("p4", False)]  # no start asked for
    assert state_of(queue, "p4") == JobState.LEASED
    assert kinds(queue).count("result-refused") == 1


def test_a_batch_names_a_job_twice(queue: Queue, clock: Clock) -> None:
    queue.submit([job("k1"), job("k2")])
    [stale] = queue.claim("w1", LINUX)
    clock.now += 11
    queue.reclaim()
    clock.now += 5
    current = queue.claim("w2", LINUX, limit=2)
    assert queue.start_many(current) == []
    [k1, k2] = current
    assert stale.job_id == k1.job_id
    broken = Outcome(ok=False, duration=1, kind=FailureKind.TIMEOUT, reason="timed out")
    states = queue.finish_many([(stale, ok("a" * 64)), (k1, ok("b" * 64)), (k1, ok("c" * 64)),
                                (k2, ok("d" * 64)), (k2, broken)])
    assert states == [None, JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.SUCCEEDED,
                      JobState.SUCCEEDED]
    docs = {d["key"]: d for d in state_report.queue_jobs(queue)}
    assert docs["k1"]["artifact"]["sha256"] == "b" * 64  # the current lease's, once
    assert docs["k2"]["artifact"]["sha256"] == "d" * 64  # the failure came after success
    assert kinds(queue).count("succeeded") == 2
    assert kinds(queue).count("result-refused") == 1


def test_an_idle_worker_hears_of_claimable_jobs_at_once(queue: Queue, state_url: str) -> None:
    assert queue.wait(0.05) is False  # listening from here on
    other = Queue(open_engine(state_url), lease_seconds=10.0)
    for move in ("submit", "release"):
        if move == "submit":
            other.submit([job("k1")])
        else:
            [lease] = other.claim("w", LINUX)
            assert queue.wait(0.05) in (True, False)  # SQLite hears of any commit
            other.release(lease, "the worker is stopping")
        began = time.monotonic()
        assert queue.wait(10.0) is True, move
        assert time.monotonic() - began < 2.0
        assert queue.wait(0.05) is False
    other.engine.dispose()


def test_a_large_submission_goes_in_parts_dependents_first(
        queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake, "_FIRST", 2)
    monkeypatch.setattr(intake, "_PART", 3)
    queue.submit([job("k0")])
    new = [job(f"k{i}") for i in range(8)] + [job("user", recipe="user", needs=("demo",))]
    assert queue.submit(new) == (8, 1)
    assert queue.find("user").id < min(queue.find(f"k{i}").id for i in range(1, 8))
    assert kinds(queue).count("submitted") == 9
    assert [x.key for x in queue.claim("w", LINUX, limit=9)] == [f"k{i}" for i in range(8)]


def test_a_lease_is_bound_to_the_worker_that_claimed_it(queue: Queue) -> None:
    """Issue 13: a token alone is not enough; the storage checks the worker too."""
    from dataclasses import replace

    queue.submit([job("k1"), job("k2")])
    mine, other = queue.claim("w1", LINUX, 2)
    stolen = replace(mine, worker="w2")
    assert queue.heartbeat([stolen]) == [stolen]
    with pytest.raises(LeaseLost):
        queue.start(stolen)
    assert queue.start_many([replace(other, worker="w2")]) == [replace(other, worker="w2")]
    queue.start(mine)
    with pytest.raises(LeaseLost):
        queue.finish(stolen, ok())
    with pytest.raises(LeaseLost):
        queue.finish(stolen, Outcome(ok=False, duration=1.0, kind=FailureKind.BUILD, reason="x"))
    with pytest.raises(LeaseLost):
        queue.release(stolen, "no")
    assert queue.finish(mine, ok()) == JobState.SUCCEEDED


def test_a_failure_records_its_cause_and_a_success_clears_it(queue: Queue,
                                                             clock: Clock) -> None:
    from wheelfarm.errors import FailureCause

    queue.submit([NewJob(key="k1", kind="build", recipe="demo", target="t1", python="cp312",
                         executor="host", arch="x86_64", pythons=("cp312",),
                         max_attempts=2, owners=("@alice", "bob@example.org"))])
    [lease] = queue.claim("w1", LINUX)
    queue.start(lease)
    failed = Outcome.failed(FailureKind.SOURCE, "download failed: https://x/y: HTTP 503",
                            cause=FailureCause.NETWORK)
    assert queue.finish(lease, failed) == JobState.PENDING  # a download may work next time
    [doc] = state_report.queue_jobs(queue)
    assert doc["cause"] == "network" and doc["attempts"][0]["cause"] == "network"
    assert doc["owners"] == ["@alice", "bob@example.org"]
    clock.now += 60
    [lease] = queue.claim("w1", LINUX)
    queue.start(lease)
    clock.now += 11  # the worker went silent: the queue decides the cause itself
    assert queue.reclaim() == 1
    [doc] = state_report.queue_jobs(queue)
    assert doc["state"] == "failed" and doc["cause"] == "infrastructure"
    assert [a["cause"] for a in doc["attempts"]] == ["network", "infrastructure"]
    queue.retry("k1")
    [lease] = queue.claim("w1", LINUX)
    queue.start(lease)
    assert queue.finish(lease, ok()) == JobState.SUCCEEDED
    [doc] = state_report.queue_jobs(queue)
    assert doc["cause"] is None
    assert doc["attempts"][-1]["cause"] is None
