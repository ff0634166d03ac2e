"""wheelfarm.api with real gpg and a real build: publish, history, verify and rebuild
called as a program calls them, and the CLI's rendering of a failed verification."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.wheels import pure_wheel
from wheelfarm import api

from .helpers import wheelfarm
from .publish_support import Key

pytestmark = pytest.mark.integration


def test_publish_history_and_verify(tmp_path: Path, keys: tuple[Key, Key],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    farm_key, _other = keys
    monkeypatch.setenv("GNUPGHOME", str(farm_key.home))
    index = api.Index(url=str(tmp_path / "index"), farm_dir=tmp_path,
                      sign_key=farm_key.fingerprint)
    first = api.publish([pure_wheel(tmp_path / "in", "wf-api", "1.0").parent], index)
    assert (first.outcome.generation, first.outcome.created) == (1, True)
    again = api.publish([tmp_path / "in"], index)
    assert not again.outcome.created
    assert list(again.outcome.unchanged) == ["wf_api-1.0-py3-none-any.whl"]
    url, entries = api.history(index.url, farm_dir=tmp_path)
    assert url == first.url and [e.release.generation for e in entries] == [1]
    report = api.verify(str(tmp_path / "index"), farm_key.public, tmp_path / "state")
    assert report.ok and report.generation == 1 and not report.failures


def test_a_failed_verification_is_named_once_and_exits_1(
        tmp_path: Path, keys: tuple[Key, Key]) -> None:
    farm_key, other = keys
    root = tmp_path / "index"
    env = {"GNUPGHOME": str(farm_key.home), "WHEELFARM_SIGN_KEY": farm_key.fingerprint}
    wheelfarm("publish", pure_wheel(tmp_path / "in", "wf-api", "1.0").parent, "--to", root,
              cwd=tmp_path, env=env).check_returncode()
    report = api.verify(str(root), other.public, tmp_path / "state")
    assert not report.ok
    result = wheelfarm("verify", root, "--key", other.public, "--state", tmp_path / "s2",
                       cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: " in result.stderr and "error:" not in result.stderr
    assert result.stderr.rstrip().endswith(f"1 check(s) failed for {report.source}")


def test_rebuild_of_a_built_wheel_is_bit_for_bit(fastadd_dir: Path) -> None:
    wheel = next(fastadd_dir.glob("*.whl"))
    rebuilt = api.rebuild(wheel, farm_dir=fastadd_dir.parent)
    assert rebuilt.comparison is not None, rebuilt.result.message
    assert rebuilt.comparison.identical, rebuilt.comparison.members
    assert rebuilt.recorded.wheel == wheel.name
