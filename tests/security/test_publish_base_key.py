"""The publisher builds only on generations signed by the farm's own key: another key
in its keyring (kept for any reason) cannot vouch for a planted next generation, so a
yanked release cannot come back signed by the farm."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import wheelfarm
from tests.integration.publish_support import Key
from tests.wheels import pure_wheel
from wheelfarm.publish.generations import clearsigned_text

pytestmark = pytest.mark.integration


def test_a_generation_signed_by_another_keyring_key_is_not_a_base(
        tmp_path: Path, keys: tuple[Key, Key]) -> None:
    farm, other = keys
    # The farm's keyring also holds the other key's public half.
    subprocess.run(["gpg", "--batch", "--homedir", str(farm.home), "--import",
                    str(other.public)], check=True, capture_output=True)
    root = tmp_path / "index"
    env = {"GNUPGHOME": str(farm.home), "WHEELFARM_SIGN_KEY": farm.fingerprint}

    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return wheelfarm(*args, cwd=tmp_path, env=env, timeout=300)

    first = cli("publish", pure_wheel(tmp_path / "g1", "wf-probe", "1.0").parent, "--to", root)
    assert first.returncode == 0, first.stderr
    yanked = cli("yank", root, "wf-probe==1.0", "--reason", "broken")
    assert yanked.returncode == 0, yanked.stderr

    # A store writer plants generation 3: generation 1's text, signed by the other key.
    text = clearsigned_text((root / "generations" / "1" / "InRelease").read_bytes())
    planted = subprocess.run(
        ["gpg", "--batch", "--homedir", str(other.home), "--clearsign", "--local-user",
         other.fingerprint], input=text.replace("Generation: 1", "Generation: 3").encode(),
        capture_output=True, check=True).stdout
    (root / "generations" / "3").mkdir()
    (root / "generations" / "3" / "InRelease").write_bytes(planted)

    result = cli("publish", pure_wheel(tmp_path / "g2", "wf-other", "1.0").parent, "--to", root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "generations/3/InRelease" in result.stderr
    page = json.loads((root / "simple" / "wf-probe" / "index.json").read_text())
    assert [f["yanked"] for f in page["files"]] == ["broken"]
    assert not (root / "generations" / "4").exists()
