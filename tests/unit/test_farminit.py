"""`wheelfarm init`: a commented wheelfarm.toml that the config loader reads."""

from __future__ import annotations

import re
from pathlib import Path

from wheelfarm.cli import main
from wheelfarm.plan import config, farminit


def test_init_writes_a_config_that_loads(tmp_path: Path, capsys: object) -> None:
    assert main(["init", "--farm", str(tmp_path)]) == 0
    text = (tmp_path / "wheelfarm.toml").read_text()
    loaded = config.load(tmp_path)
    assert loaded == config.FarmConfig(root=tmp_path, jobs=loaded.jobs)  # the defaults
    assert "#jobs = 2" in text and "#[publish]" in text


def test_every_commented_setting_is_valid_once_uncommented(tmp_path: Path) -> None:
    text = farminit.template()
    settings = re.findall(r"^#(\S.*)$", text, flags=re.MULTILINE)
    assert len(settings) > 20
    (tmp_path / "wheelfarm.toml").write_text(re.sub(r"^#(?=\S)", "", text, flags=re.MULTILINE))
    loaded = config.load(tmp_path)
    assert loaded.jobs == 2 and loaded.pythons == ("cp39", "cp312")
    assert loaded.publish.url == "s3://bucket/prefix"
    assert dict(loaded.limits) == {"manylinux_2_17_aarch64": 2}
    assert loaded.container.memory == 4 << 30


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: object) -> None:
    (tmp_path / "wheelfarm.toml").write_text("jobs = 1\n")
    assert main(["init", "--farm", str(tmp_path)]) == 2
    assert (tmp_path / "wheelfarm.toml").read_text() == "jobs = 1\n"
    assert main(["init", "--farm", str(tmp_path), "--force"]) == 0
    assert config.load(tmp_path).targets == config.FarmConfig(root=tmp_path).targets
