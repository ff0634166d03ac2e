"""An ordinary zip sdist, as `zipfile.writestr` writes it (Unix mode bits without a
file type), is a zip of plain files: it extracts; real special files are still refused."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from wheelfarm.build.archive import safe_extract
from wheelfarm.errors import SourceError


def test_a_zip_written_by_writestr_extracts(tmp_path: Path) -> None:
    archive = tmp_path / "plain-1.0.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("plain-1.0/pyproject.toml", "[project]\nname = 'plain'\n")
        zf.writestr("plain-1.0/plain.py", "X = 1\n")
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "plain-1.0" / "plain.py").read_text() == "X = 1\n"


def test_a_zip_member_with_a_socket_type_is_still_refused(tmp_path: Path) -> None:
    archive = tmp_path / "odd-1.0.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("odd-1.0/sock")
        info.create_system = 3
        info.external_attr = (stat.S_IFSOCK | 0o644) << 16
        zf.writestr(info, "")
    with pytest.raises(SourceError, match="unsupported type"):
        safe_extract(archive, tmp_path / "out")
