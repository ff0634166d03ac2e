from __future__ import annotations

from pathlib import Path

import pytest

from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.plan import config, targets
from wheelfarm.plan.targets import Target, parse_target


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("manylinux2014_x86_64", "manylinux_2_17_x86_64"),
        ("manylinux_2_28_aarch64", "manylinux_2_28_aarch64"),
        ("manylinux2010_x86_64", "manylinux_2_12_x86_64"),
        ("linux_x86_64", "linux_x86_64"),
        ("manylinux_auto_x86_64", "manylinux_auto_x86_64"),
    ],
)
def test_parse_target_normalizes_aliases(text: str, name: str) -> None:
    assert parse_target(text).name == name


def test_unknown_target_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'manylinux2014_x86_64'"):
        parse_target("manylinux2014_x86_46")
    with pytest.raises(ConfigError, match="unknown target"):
        parse_target("windows")


def test_platform_tags_and_repair_flags() -> None:
    t = parse_target("manylinux2014_x86_64")
    assert targets.platform_tags(t) == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert t.repairs and t.auditwheel_plat == "manylinux_2_17_x86_64"
    assert not parse_target("linux_x86_64").repairs
    assert parse_target("manylinux_auto_x86_64").auditwheel_plat == "auto"


def test_distros_for_glibc() -> None:
    assert targets.distros_for_glibc((2, 17)) == {"RHEL": "7+", "Debian": "8+", "Ubuntu": "14.04+"}
    assert targets.distros_for_glibc((2, 28)) == {"RHEL": "8+", "Debian": "10+", "Ubuntu": "20.04+"}
    assert targets.distros_for_glibc((2, 99))["Debian"] == ""


def test_default_executor_per_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(config, "host_glibc", lambda: (2, 36))
    farm = config.FarmConfig(root=tmp_path)
    assert farm.executor_for(parse_target("manylinux_2_17_x86_64")) == "zig"
    assert farm.executor_for(parse_target("manylinux_2_28_x86_64")) == "zig"
    assert farm.executor_for(parse_target("manylinux_2_36_x86_64")) == "host"
    assert farm.executor_for(parse_target("linux_x86_64")) == "host"
    assert farm.executor_for(Target("manylinux-auto", "x86_64")) == "host"
    mapped = config.FarmConfig(root=tmp_path, executors=(("manylinux_2_17_x86_64", "host"),))
    assert mapped.executor_for(parse_target("manylinux2014_x86_64")) == "host"


def test_farm_config_file(tmp_path: Path) -> None:
    assert config.load(tmp_path).jobs >= 1
    (tmp_path / "wheelfarm.toml").write_text(
        'targets = ["manylinux2014_x86_64"]\njobs = 3\n[executors]\nmanylinux2014_x86_64 = "host"\n'
    )
    farm = config.load(tmp_path)
    assert farm.jobs == 3
    assert farm.executors == (("manylinux_2_17_x86_64", "host"),)
    (tmp_path / "wheelfarm.toml").write_text("job = 3\n")
    with pytest.raises(RecipeError, match=r"wheelfarm.toml: job: unknown key; did you mean 'jobs'"):
        config.load(tmp_path)
    (tmp_path / "wheelfarm.toml").write_text('targets = ["bogus"]\n')
    with pytest.raises(ConfigError, match="unknown target 'bogus'"):
        config.load(tmp_path)
