"""The dashboard's pages, actions and /metrics over a real SQLite farm whose jobs
were made through the queue's API (tests/dashfarm.py), served in-process by
Starlette's test client (the real application, no server)."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from tests.dashfarm import COMPILER_ERROR, HOSTILE, DashFarm, make_farm
from wheelfarm.farm.controller import Controller, issue_token
from wheelfarm.farm.dashboard import app, first_errors, issue_operator_token
from wheelfarm.farm.state import report
from wheelfarm.farm.state.history import LocalAttempt, LocalEnd


@pytest.fixture
def farm(tmp_path: Path) -> DashFarm:
    return make_farm(tmp_path)


@pytest.fixture
def client(farm: DashFarm) -> TestClient:
    return TestClient(app(farm.queue, None, farm.root))


def test_grid_shows_the_latest_state_per_recipe_and_column(farm: DashFarm,
                                                           client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    text = page.text
    assert "manylinux_2_17_x86_64" in text and "cp311" in text and "cp312" in text
    assert f'href="/jobs/{farm.succeeded}"' in text and f'href="/jobs/{farm.failed}"' in text
    assert f'href="/jobs/{farm.running}"' in text
    assert text.count('data-state="failed"') == 1 and text.count('data-state="running"') == 1
    assert 'http-equiv="refresh"' in text  # a job runs


def test_a_log_with_a_script_renders_as_text(farm: DashFarm, client: TestClient) -> None:
    page = client.get(f"/jobs/{farm.failed}/log")
    assert page.status_code == 200
    assert HOSTILE not in page.text
    assert html.escape(HOSTILE, quote=False) in page.text or "&lt;script&gt;" in page.text
    job = client.get(f"/jobs/{farm.failed}").text
    assert HOSTILE not in job
    raw = client.get(f"/jobs/{farm.failed}/log.txt?attempt=1")
    assert raw.headers["content-type"].startswith("text/plain")
    assert raw.headers["x-content-type-options"] == "nosniff" and HOSTILE in raw.text


def test_job_page_names_step_cause_owners_and_first_errors(farm: DashFarm,
                                                           client: TestClient) -> None:
    text = client.get(f"/jobs/{farm.failed}").text
    assert 'id="failing-step">build<' in text
    assert 'id="job-cause">compiler-error<' in text
    assert "@bob, team-c" in text
    errors = text.split('id="first-errors">')[1].split("</pre>")[0]
    assert html.unescape(errors).splitlines()[0] == COMPILER_ERROR
    assert client.get("/jobs/" + "f" * 64).status_code == 404


def test_running_log_is_followed(farm: DashFarm, client: TestClient) -> None:
    page = client.get(f"/jobs/{farm.running}/log")
    assert "compiling..." in page.text and 'data-follow="1"' in page.text
    farm.running_log.write_text(farm.running_log.read_text() + "linking...\n")
    raw = client.get(f"/jobs/{farm.running}/log.txt")
    assert raw.headers["x-job-state"] == "running" and "linking..." in raw.text


def test_failures_are_grouped_by_cause(farm: DashFarm, client: TestClient) -> None:
    run = farm.queue.local_started(LocalAttempt(
        run="r", host="h:1", key="e" * 64, job="x", recipe="slowtest", target="linux_x86_64",
        python="cp312", executor="host"))
    log = farm.root / "slowtest.log"
    log.write_text("FAILED tests/test_slow.py::test_speed\n")
    farm.queue.local_ended(run, LocalEnd(ok=False, step="test", cause="test-failure",
                                         reason="2 tests failed", log=str(log)))
    text = client.get("/failures").text
    compiler = text.split('id="cause-compiler-error"')[1].split("</section>")[0]
    tests = text.split('id="cause-test-failure"')[1].split("</section>")[0]
    assert "brokenc" in compiler and "slowtest" not in compiler
    assert "slowtest" in tests and "?source=local" in tests
    assert "fastadd" not in text.split("<main>")[1]
    local = client.get("/jobs/" + "e" * 64 + "?source=local").text
    assert "2 tests failed" in local and "test-failure" in local
    link = f'/jobs/{"e" * 64}/log?attempt=1&amp;source=local'
    assert f'href="{link}"' in local
    page = client.get(html.unescape(link)).text
    assert "FAILED tests/test_slow.py::test_speed" in page
    assert 'data-src="/jobs/' + "e" * 64 + '/log.txt?attempt=1&amp;source=local"' in page


def test_grid_orders_pythons_as_numbers(farm: DashFarm, client: TestClient) -> None:
    from tests.dashfarm import new_job

    farm.queue.submit([new_job("9" * 64, "fastadd", "cp39"), new_job("8" * 64, "fastadd",
                                                                        "cp310")])
    head = client.get("/").text.split("<thead>")[1].split("</thead>")[0]
    assert head.index("cp39") < head.index("cp310") < head.index("cp311")


def test_recipe_page_without_an_index(farm: DashFarm, client: TestClient) -> None:
    text = client.get("/recipes/fastadd").text
    assert "@alice" in text and "publishes no index" in text
    assert text.count(f'href="/jobs/{farm.succeeded}"') == 1
    assert "This farm publishes no index" in client.get("/generations").text


def test_actions_need_an_operator_token(farm: DashFarm, client: TestClient) -> None:
    url = f"/jobs/{farm.failed}/retry"
    assert client.post(url, data={}).status_code == 401
    worker = issue_token(farm.queue, "worker-1")
    assert client.post(url, data={"token": worker}).status_code == 403
    assert client.post(url, headers={"Authorization": f"Bearer {worker}"}).status_code == 403
    assert farm.queue.find(farm.failed).state == "failed"
    token = issue_operator_token(farm.queue, "alice")
    done = client.post(url, data={"token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/jobs/{farm.failed}"
    assert farm.queue.find(farm.failed).state == "pending"
    cancel = client.post(f"/jobs/{farm.running}/cancel",
                         headers={"Authorization": f"Bearer {token}"}, follow_redirects=False)
    assert cancel.status_code == 303 and farm.queue.find(farm.running).state == "cancelled"
    again = client.post(f"/jobs/{farm.succeeded}/retry", data={"token": token})
    assert again.status_code == 409  # a succeeded job cannot be retried


def test_controller_mounts_the_dashboard(farm: DashFarm) -> None:
    controller = Controller(farm.queue, farm.root, farm.root / "wheelhouse")
    with TestClient(controller.app()) as client:
        assert "brokenc" in client.get("/").text
        assert client.get("/api/v1/status").status_code == 401  # the workers' API as before
        assert client.get("/metrics").status_code == 200


def test_metrics_job_counts_equal_the_queue(farm: DashFarm, client: TestClient) -> None:
    page = client.get("/metrics")
    assert page.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(page.text)}
    jobs = {s.labels["state"]: s.value for s in families["wheelfarm_jobs"].samples}
    counted: dict[str, int] = {}
    for j in report.queue_jobs(farm.queue):
        counted[j["state"]] = counted.get(j["state"], 0) + 1
    assert {k: v for k, v in jobs.items() if v} == counted
    assert counted == {"succeeded": 1, "failed": 1, "running": 1}
    assert families["wheelfarm_queue_depth"].samples[0].value == 0
    assert families["wheelfarm_live_workers"].samples[0].value == 1
    hist = {(s.name, s.labels.get("le")): s.value
            for s in families["wheelfarm_build_duration_seconds"].samples
            if s.labels.get("target") == "manylinux_2_17_x86_64"}
    assert hist[("wheelfarm_build_duration_seconds_count", None)] == 2
    assert hist[("wheelfarm_build_duration_seconds_bucket", "5.0")] == 1  # the 3 s failure
    assert hist[("wheelfarm_build_duration_seconds_sum", None)] == 15.5
    assert "python_gc_objects_collected" not in page.text  # its own registry


def test_webhook_messages_are_counted_from_the_outbox(farm: DashFarm,
                                                     client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from wheelfarm.farm.notify import outbox

    with farm.queue.engine.begin() as conn:
        for n in range(3):
            outbox.add(conn, "hooks", "failure", {"n": n}, 1000.0)
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    got = {s.labels["state"]: s.value for s in families["wheelfarm_webhook_messages"].samples}
    assert got == {**{k: float(v) for k, v in
                      outbox.delivery_counts(farm.queue.engine).items()}, "pending": 3.0}


def test_first_errors() -> None:
    log = "ok\nfoo.c:1:2: error: x\nwarning: y\nld: undefined reference to `z'\n! build: failed\n"
    assert first_errors(log + "1 error generated.\n") == [
        "foo.c:1:2: error: x", "ld: undefined reference to `z'", "! build: failed"]


def test_a_generation_names_who_published_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from wheelfarm.publish.manifest import Release
    from wheelfarm.publish.publisher import PUBLISHER_ENV, publisher_name

    when = datetime(2026, 1, 2, tzinfo=UTC)
    release = Release(3, when, when, "publish x", ("x",), {}, {}, by="release-bot@ci")
    text = release.render()
    assert "Published-By: release-bot@ci\n" in text
    assert Release.parse(text).by == "release-bot@ci"
    older = Release(3, when, when, "publish x", ("x",), {}, {})
    assert "Published-By" not in older.render() and Release.parse(older.render()).by == ""
    monkeypatch.setenv(PUBLISHER_ENV, "nightly")
    assert publisher_name() == "nightly"
    monkeypatch.delenv(PUBLISHER_ENV)
    assert "@" in publisher_name()
