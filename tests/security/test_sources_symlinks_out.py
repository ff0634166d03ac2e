"""Git and path sources refuse symlinks that point out of the tree, as sdists do:
otherwise the target (any file the farm can read) is packaged into the wheel."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wheelfarm.build.source import SourceSpec, fetch
from wheelfarm.errors import SourceError

pytestmark = pytest.mark.integration


def _project(root: Path, secret: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'leaky'\nversion = '1.0'\n")
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    os.symlink(os.path.relpath(secret, root / "pkg"), root / "pkg" / "relative.txt")
    os.symlink(secret, root / "absolute.txt")
    # Links that stay inside the tree are fine.
    os.symlink("__init__.py", root / "pkg" / "inside.py")
    return root


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "farm-secret.txt"
    path.write_text("CANARY-SECRET\n")
    return path


def test_a_path_source_with_a_link_out_is_refused(tmp_path: Path, secret: Path) -> None:
    project = _project(tmp_path / "src" / "leaky", secret)
    with pytest.raises(SourceError, match="outside the source tree"):
        fetch(SourceSpec("path", str(project)), tmp_path / "job",
              cache_dir=tmp_path / "cache", index_url="", log=io.StringIO())
    assert not any("CANARY" in p.read_text(errors="replace")
                   for p in (tmp_path / "job").rglob("*") if p.is_file())


def test_a_git_source_with_a_link_out_is_refused(tmp_path: Path, secret: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = _project(tmp_path / "upstream" / "leaky", secret)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
           "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "--quiet", "-b", "main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "leak"], check=True)
    rev = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                         text=True).stdout.strip()
    with pytest.raises(SourceError, match="outside the source tree"):
        fetch(SourceSpec("git", str(repo), rev=rev), tmp_path / "job",
              cache_dir=tmp_path / "cache", index_url="", log=io.StringIO())
