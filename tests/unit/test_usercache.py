"""The shared cache: where it is by default, `wheelfarm cache info|clean`."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelfarm.build import usercache
from wheelfarm.build.executors import sandbox
from wheelfarm.cli import main
from wheelfarm.plan import config as farm_config
from wheelfarm.plan.config import CACHE_ENV, FarmConfig, user_cache_dir


def test_the_default_is_the_users_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    farm = FarmConfig(root=tmp_path / "farm")
    assert farm.cache_dir == tmp_path / "xdg" / "wheelfarm"
    # The wrappers name the farm's own Python and package: never shared.
    assert farm.tools_dir == tmp_path / "farm" / ".wheelfarm" / "tools"
    assert user_cache_dir({"HOME": "/home/u"}) == Path("/home/u/.cache/wheelfarm")
    assert user_cache_dir({"HOME": "/home/u", "XDG_CACHE_HOME": "rel"}) == Path(
        "/home/u/.cache/wheelfarm")  # the XDG spec ignores a relative value
    (tmp_path / "farm").mkdir()
    (tmp_path / "farm" / "wheelfarm.toml").write_text('cache-dir = "shared"\n')
    assert farm_config.load(tmp_path / "farm").cache_dir == tmp_path / "farm" / "shared"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert farm_config.load(tmp_path / "farm").cache_dir == tmp_path / "env"


def fill(root: Path) -> None:
    for d, n in (("downloads", 3), ("git", 1), ("zig/cache/o", 2), ("envs", 1), ("odd", 1)):
        (root / d).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / d / f"f{i}").write_bytes(b"x" * 5000)


def test_info_and_clean_by_part(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    assert [p.entries for p in usercache.info(root).parts] == [0, 0]
    fill(root)
    found = {p.name: p for p in usercache.info(root).parts}
    assert (found["downloads"].dirs, found["downloads"].entries) == (("downloads", "git"), 4)
    assert (found["toolchains"].dirs, found["toolchains"].entries) == (("zig", "envs"), 2)
    assert found["other"].dirs == ("odd",)
    assert found["downloads"].size >= 4 * 5000
    assert usercache.clean(root, ["downloads"]) == [root / "downloads", root / "git"]
    assert sorted(p.name for p in root.iterdir()) == ["envs", "odd", "zig"]
    usercache.clean(root)
    assert list(root.iterdir()) == []


def test_cache_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "xdg" / "wheelfarm"
    fill(root)
    assert main(["cache", "info", "--farm", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert f"cache: {root}" in shown
    assert "downloads" in shown and "4 entries" in shown and "toolchains" in shown
    assert main(["cache", "clean", "--toolchains", "--farm", str(tmp_path)]) == 0
    assert f"removed {root / 'zig'}" in capsys.readouterr().out
    assert (root / "downloads").is_dir() and not (root / "zig").exists()
    assert main(["cache", "clean", "--all", "--farm", str(tmp_path)]) == 0
    assert list(root.iterdir()) == []


def test_a_build_never_gets_the_shared_dir_where_no_overlay_can_be_mounted(
        tmp_path: Path) -> None:
    shared, own = tmp_path / "shared", tmp_path / "own"
    box = sandbox.Sandbox(hidden=(), readable=(), writable=(tmp_path / "work",), network=False,
                          stand_ins=((shared, own),))
    argv = box.wrap(["true"], tmp_path)
    at = argv.index(str(shared))
    assert argv[at - 2:at] == ["--bind", str(own)]
    triples = set(zip(argv, argv[1:], argv[2:], strict=False))
    assert ("--bind", str(shared), str(shared)) not in triples
