"""`publish` accepts only a wheel whose RECORD is true: a wheel without WHEEL or RECORD,
or whose RECORD lies about a file's hash, is bad input (exit 2, one line), and the
store is left as it was."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.integration.helpers import wheelfarm
from tests.integration.publish_support import Key
from tests.wheels import pure_wheel

pytestmark = pytest.mark.integration


def _rewrite(wheel: Path, change: dict[str, bytes | None]) -> None:
    with zipfile.ZipFile(wheel) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    for name, data in change.items():
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


INFO = "wf_probe-1.0.dist-info"


@pytest.mark.parametrize(("change", "problem"), [
    ({"wf_probe/__init__.py": b"import os; os.system('id')\n"}, "RECORD"),
    ({f"{INFO}/RECORD": None}, "RECORD"),
    ({f"{INFO}/WHEEL": None}, "WHEEL"),
    ({"wf_probe/extra.py": b"X = 1\n"}, "RECORD"),
])
def test_a_wheel_whose_record_lies_is_refused(tmp_path: Path, keys: tuple[Key, Key],
                                              change: dict[str, bytes | None],
                                              problem: str) -> None:
    farm = keys[0]
    wheel = pure_wheel(tmp_path / "dist", "wf-probe", "1.0")
    _rewrite(wheel, change)
    root = tmp_path / "index"
    result = wheelfarm("publish", wheel.parent, "--to", root, cwd=tmp_path,
                       env={"GNUPGHOME": str(farm.home), "WHEELFARM_SIGN_KEY": farm.fingerprint})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and wheel.name in lines[0] and problem in lines[0], result.stderr
    assert not (root / "files").exists() or not list((root / "files").iterdir())
