"""`history --json` and `verify --json` on an index published with real gpg."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.wheels import pure_wheel

from .helpers import ok, wheelfarm
from .publish_support import Key

pytestmark = pytest.mark.integration


def test_history_and_verify_as_json(tmp_path: Path, keys: tuple[Key, Key]) -> None:
    farm_key, other = keys
    root = tmp_path / "index"
    env = {"GNUPGHOME": str(farm_key.home), "WHEELFARM_SIGN_KEY": farm_key.fingerprint}
    for version in ("1.0", "1.1"):
        ok(wheelfarm("publish", pure_wheel(tmp_path / version, "wf-json", version).parent,
                     "--to", root, cwd=tmp_path, env=env))

    history = json.loads(ok(wheelfarm("history", root, "--json", cwd=tmp_path)))
    assert history["url"].endswith("index")
    gens = history["generations"]
    assert [g["generation"] for g in gens] == [2, 1]
    assert [g["live"] for g in gens] == [True, False]
    assert gens[0]["changed"] == ["wf-json"]
    assert gens[0]["date"].endswith("Z") and gens[0]["valid_until"] > gens[0]["date"]

    good = wheelfarm("verify", root, "--key", farm_key.public, "--state", tmp_path / "s1",
                     "--json", cwd=tmp_path)
    report = json.loads(ok(good))
    assert report["ok"] is True and report["generation"] == 2 and report["failures"] == []
    assert report["files"] > 0 and report["signatures"] > 0

    bad = wheelfarm("verify", root, "--key", other.public, "--state", tmp_path / "s2",
                    "--json", cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    report = json.loads(bad.stdout)
    assert report["ok"] is False and report["failures"]
    assert bad.stderr == ""
