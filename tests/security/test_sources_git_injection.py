"""A recipe's `source.git` is data, never a git option: a location that starts with
`-` (here `--upload-pack=CMD`) must be refused as bad input before git runs, by both
`wheelfarm lock` and `wheelfarm build`; the command it carries must never run."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from tests.integration.helpers import wheelfarm
from wheelfarm.build.source import SourceSpec, fetch
from wheelfarm.errors import ConfigError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REV = "0123456789abcdef0123456789abcdef01234567"


def _hostile_recipe(tmp_path: Path, location: str) -> Path:
    recipe = tmp_path / "recipes" / "evil.toml"
    recipe.parent.mkdir()
    recipe.write_text(
        f'[package]\nname = "evil"\nversion = "1.0"\n\n'
        f"[source]\ngit = '{location}'\nrev = \"{REV}\"\n\n"
        f'[build]\ntargets = ["native"]\npythons = ["cp312"]\n', encoding="utf-8")
    return recipe


@pytest.mark.parametrize("command", ["lock", "build"])
def test_an_upload_pack_option_in_source_git_never_runs(tmp_path: Path, command: str) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    marker = tmp_path / "pwned"
    recipe = _hostile_recipe(tmp_path, f"--upload-pack=touch {marker};false")
    args = ["--executor", "host"] if command == "build" else []
    result = wheelfarm(command, recipe, *args, "--farm", tmp_path, cwd=tmp_path, timeout=300)
    assert not marker.exists(), "the option injected through source.git ran on the host"
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "source.git" in lines[0], result.stderr


@pytest.mark.parametrize("location", [
    "-oProxyCommand=touch pwned", "ext::sh -c touch% pwned",
    "ssh://-oProxyCommand=touch%20pwned/x", "relative/path"])
def test_git_locations_outside_the_allowed_schemes_are_refused(tmp_path: Path,
                                                                location: str) -> None:
    # The library refuses them too, whoever builds the spec (a queue, a lock, a test).
    with pytest.raises(ConfigError):
        fetch(SourceSpec("git", location, rev=REV), tmp_path / "job",
              cache_dir=tmp_path / "cache", index_url="", log=io.StringIO())
    assert not (tmp_path / "job" / "pwned").exists()


@pytest.mark.parametrize("key", ["build", "test"])
def test_a_requirement_that_is_a_pip_option_is_refused(tmp_path: Path, key: str) -> None:
    from wheelfarm.errors import RecipeError
    from wheelfarm.plan.recipe import loads

    text = (f'[package]\nname = "evil"\nversion = "1.0"\n[source]\ngit = "https://x.invalid/r"\n'
            f'rev = "{REV}"\n[{key}]\nrequires = ["--index-url=http://evil.invalid/"]\n')
    with pytest.raises(RecipeError, match=f"{key}.requires"):
        loads(text, tmp_path / "evil.toml")
