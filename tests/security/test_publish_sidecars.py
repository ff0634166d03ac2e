"""Sidecars planted in a store before a wheel's first publish are not adopted: the
`.asc` listed is a signature by the farm's key, and a planted `.intoto.json` is not
listed (this publish brought no provenance)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import wheelfarm
from tests.integration.publish_support import Key
from tests.wheels import pure_wheel
from wheelfarm.publish.generations import Generations
from wheelfarm.publish.store import open_store

pytestmark = pytest.mark.integration


def test_planted_sidecars_are_not_listed(tmp_path: Path, keys: tuple[Key, Key]) -> None:
    farm, other = keys
    wheel = pure_wheel(tmp_path / "dist", "wf-probe", "1.0")
    root = tmp_path / "index"
    files = root / "files"
    files.mkdir(parents=True)
    signature = subprocess.run(
        ["gpg", "--batch", "--homedir", str(other.home), "--armor", "--detach-sign",
         "--local-user", other.fingerprint, "--output", "-", str(wheel)],
        check=True, capture_output=True).stdout
    (files / (wheel.name + ".asc")).write_bytes(signature)
    forged = b'{"subject": [{"name": "forged"}], "predicate": {"builder": "evil"}}'
    (files / (wheel.name + ".intoto.json")).write_bytes(forged)

    env = {"GNUPGHOME": str(farm.home), "WHEELFARM_SIGN_KEY": farm.fingerprint}
    result = wheelfarm("publish", wheel.parent, "--to", root, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    store = open_store(str(root))
    gens = Generations(store, None)
    release, _ = gens.release_at(store.live_generation())
    (artifact,) = gens.project(release, "wf-probe").artifacts
    listed = dict(artifact.sidecars)
    assert listed[".asc"].sha256 != hashlib.sha256(signature).hexdigest()
    intoto = listed.get(".intoto.json")
    assert intoto is None or intoto.sha256 != hashlib.sha256(forged).hexdigest()
    checked = wheelfarm("verify", root, "--key", farm.public, "--state", tmp_path / "state",
                        cwd=tmp_path, env={"GNUPGHOME": str(tmp_path / "no-home")})
    assert checked.returncode == 0, checked.stdout + checked.stderr
