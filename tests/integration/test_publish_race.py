"""Concurrent publishers: one wins each generation (a conditional write of its manifest),
the other retries on top of it, and nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.wheels import pure_wheel
from wheelfarm.publish.generations import clearsigned_text
from wheelfarm.publish.manifest import Release
from wheelfarm.publish.publisher import history

from .helpers import ok
from .publish_support import Index, read_like_pip
from .storehooks import HOLD_ENV

pytestmark = pytest.mark.integration


ROOT = Path(__file__).resolve().parents[2]
# `wheelfarm publish` on a store that holds at the commit point when told to.
CLI = ("import sys; from tests.integration.storehooks import install; install(); "
       "from wheelfarm.cli import main; sys.exit(main(sys.argv[1:]))")


def start(index: Index, wheels: Path, env: dict[str, str] | None = None
          ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLI, "publish", str(wheels), "--to", index.url],
        cwd=index.work, env={**os.environ, **index.env, **(env or {}), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(path: Path, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 600
    while not path.exists():
        for proc in procs:
            assert proc.poll() is None, finish(proc)
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_publishers_at_the_same_generation_lose_nothing(index: Index,
                                                            tmp_path: Path) -> None:
    ok(index.publish(pure_wheel(tmp_path / "base", "wf-probe", "1.0").parent))
    holds = {name: tmp_path / f"hold-{name}" for name in ("a", "b")}
    procs = {name: start(index, pure_wheel(tmp_path / name, f"wf-{name}", "1.0").parent,
                         {HOLD_ENV: f"commit:{holds[name]}"})
             for name in holds}
    # Both have read generation 1 and built their generation 2; now A commits first.
    for name in holds:
        wait_for(Path(f"{holds[name]}.ready"), list(procs.values()))
    holds["a"].touch()
    assert "generation 2 of" in ok(finish(procs["a"]))
    holds["b"].touch()
    assert "generation 3 of" in ok(finish(procs["b"]))  # lost 2, retried on top of it

    assert set(read_like_pip(index.store)) == {
        "wf_probe-1.0-py3-none-any.whl", "wf_a-1.0-py3-none-any.whl", "wf_b-1.0-py3-none-any.whl"}
    changes = [e.release.change for e in history(index.store)]
    assert changes == ["publish wf_b-1.0-py3-none-any.whl", "publish wf_a-1.0-py3-none-any.whl",
                       "publish wf_probe-1.0-py3-none-any.whl"]
    report = index.verify()
    assert report.ok and report.generation == 3, report.failures


@pytest.mark.parametrize("index", ["fs"], indirect=True)
def test_many_publishers_at_once(index: Index, tmp_path: Path) -> None:
    """No lining up: four processes race freely (the filesystem's link(2) is atomic; moto's
    conditional PutObject checks then writes without a lock, so S3 races are lined up above)."""
    ok(index.publish(pure_wheel(tmp_path / "base", "wf-probe", "1.0").parent))
    names = [f"wf-racer{i}" for i in range(4)]
    procs = [start(index, pure_wheel(tmp_path / n, n, "1.0").parent) for n in names]
    for proc in procs:
        ok(finish(proc))
    seen = read_like_pip(index.store)
    assert set(seen) == {"wf_probe-1.0-py3-none-any.whl",
                         *(f"{n.replace('-', '_')}-1.0-py3-none-any.whl" for n in names)}
    release = Release.parse(clearsigned_text(index.store.get("InRelease") or b""))
    assert release.generation == 5  # one generation each, none lost, none doubled
    assert sorted(len(e.release.changed) for e in history(index.store)) == [1] * 5
    assert index.verify().ok


@pytest.mark.parametrize("index", ["fs"], indirect=True)
def test_one_file_name_with_two_contents_at_once(index: Index, tmp_path: Path) -> None:
    """Two publishers bring different bytes under one name: one lands, the other is refused."""
    procs = [start(index, pure_wheel(tmp_path / f"p{i}", "wf-probe", "1.0", note=str(i)).parent)
             for i in range(2)]
    results = [finish(p) for p in procs]
    assert sorted(r.returncode for r in results) == [0, 2], results
    refused = next(r for r in results if r.returncode == 2)
    assert "already published with other bytes" in refused.stderr
    winner = next(i for i, r in enumerate(results) if r.returncode == 0)
    published = index.store.get("files/wf_probe-1.0-py3-none-any.whl")
    assert published == (tmp_path / f"p{winner}" / "wf_probe-1.0-py3-none-any.whl").read_bytes()
    assert index.verify().ok
