"""Odd store contents end in one clear line, never a traceback: a live `InRelease`
link whose target is not `generations/<N>/InRelease`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.helpers import wheelfarm
from tests.integration.publish_support import Key
from tests.wheels import pure_wheel

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("target", ["InRelease-odd", "generations/x/InRelease", "/etc/hostname"])
def test_an_odd_inrelease_link_is_one_line(tmp_path: Path, keys: tuple[Key, Key],
                                           target: str) -> None:
    farm = keys[0]
    env = {"GNUPGHOME": str(farm.home), "WHEELFARM_SIGN_KEY": farm.fingerprint}
    root = tmp_path / "index"
    first = wheelfarm("publish", pure_wheel(tmp_path / "a", "wf-a", "1.0").parent, "--to", root,
                      cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    (root / "InRelease").unlink()
    os.symlink(target, root / "InRelease")
    for args in (["publish", pure_wheel(tmp_path / "b", "wf-b", "1.0").parent, "--to", root],
                 ["history", root]):
        result = wheelfarm(*args, cwd=tmp_path, env=env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "InRelease" in lines[0], result.stderr
