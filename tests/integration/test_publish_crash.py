"""Kill a real `wheelfarm publish` after each of its store writes, on both stores, and show
what a reader sees then and after the next publish: every link resolves, every hash
matches, `verify` passes, and the publish lands exactly once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from itertools import count
from pathlib import Path

import pytest

from tests.wheels import pure_wheel
from wheelfarm.publish.generations import clearsigned_text
from wheelfarm.publish.manifest import Release
from wheelfarm.publish.publisher import Publisher
from wheelfarm.publish.signing import Signer

from .helpers import ok
from .publish_support import Index, read_like_pip
from .storehooks import CRASH_ENV, CRASHED

pytestmark = pytest.mark.integration

# The publisher in a process of its own, without the CLI's start-up cost (the CLI runs the
# same Publisher.publish; test_publish_stores drives it), on a store that crashes on cue.
ROOT = Path(__file__).resolve().parents[2]
DRIVER = ("import sys; from pathlib import Path; "
          "from tests.integration.storehooks import install; install(); "
          "from wheelfarm.publish.publisher import Publisher; "
          "from wheelfarm.publish.signing import Signer; "
          "from wheelfarm.publish.store import open_store; "
          "Publisher(open_store(sys.argv[1]), Signer(sys.argv[2])).publish([Path(sys.argv[3])])")


def live_generation(index: Index) -> int:
    return Release.parse(clearsigned_text(index.store.get("InRelease") or b"")).generation


class Template:
    """The index at generation 1, restored before each crash."""

    def __init__(self, index: Index, work: Path) -> None:
        self.index = index
        if index.root is not None:
            self.copy = work / "template"
            shutil.copytree(index.root, self.copy, symlinks=True)
        else:
            self.bucket = f"wf-template-{uuid.uuid4().hex[:8]}"
            index.client.create_bucket(Bucket=self.bucket)
            self._copy_bucket(index.bucket, self.bucket)

    def _keys(self, bucket: str) -> list[str]:
        pages = self.index.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def _copy_bucket(self, source: str, dest: str) -> None:
        for key in self._keys(source):
            # COPY keeps the metadata, including the live generation on InRelease.
            self.index.client.copy_object(Bucket=dest, Key=key,
                                          CopySource={"Bucket": source, "Key": key})

    def restore(self) -> None:
        if self.index.root is not None:
            shutil.rmtree(self.index.root)
            shutil.copytree(self.copy, self.index.root, symlinks=True)
            return
        for key in self._keys(self.index.bucket):
            self.index.client.delete_object(Bucket=self.index.bucket, Key=key)
        self._copy_bucket(self.bucket, self.index.bucket)


def test_a_publish_killed_at_every_step_leaves_a_consistent_index(
        index: Index, tmp_path: Path) -> None:
    base = pure_wheel(tmp_path / "base", "wf-probe", "1.0")
    new = [pure_wheel(tmp_path / "new", "wf-probe", "2.0"),
           pure_wheel(tmp_path / "new", "wf-other", "1.0")]  # a new project: the root changes
    ok(index.publish(base.parent))
    template = Template(index, tmp_path)
    everything = {base.name, *(w.name for w in new)}

    for step in count(1):
        template.restore()
        state = tmp_path / f"state-{step}"
        assert index.verify(state=state).ok  # the reader has seen generation 1

        result = subprocess.run(
            [sys.executable, "-c", DRIVER, index.url, index.key.fingerprint, new[0].parent],
            env={**os.environ, **index.env, CRASH_ENV: str(step), "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True, timeout=600, check=False)
        if result.returncode == 0:
            break  # every write of the publish has had its crash
        assert result.returncode == CRASHED, result.stdout + result.stderr

        # Right after the crash, an installer finds every link whole: each page is all of
        # generation 1 or all of 2 (the HTML and JSON of one project may differ on S3).
        seen = read_like_pip(index.store, same_view=False)
        assert base.name in seen and set(seen) <= everything, (step, seen)
        # ...and for a verifier, whose rollback protection still accepts it.
        report = index.verify(state=state)
        assert report.ok, (step, report.failures)

        # The next publish (of the same wheels) completes the story exactly once.
        Publisher(index.store, Signer(index.key.fingerprint)).publish([new[0].parent])
        assert set(read_like_pip(index.store)) == everything, step
        assert live_generation(index) == 2, step
        report = index.verify(state=state)
        assert report.ok and report.generation == 2, (step, report.failures)

    # The uninterrupted run: wheels, sidecars, bundles, commit, and the switch's writes.
    print(f"{index.kind}: {step - 1} crash points")
    assert step > 12, f"only {step - 1} crash points were exercised"
    assert live_generation(index) == 2
