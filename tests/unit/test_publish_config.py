"""The [publish] table of wheelfarm.toml and where the signing key comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.plan import config as farm_config
from wheelfarm.publish.signing import KEY_ENV, resolve_key


def test_publish_table(tmp_path: Path) -> None:
    (tmp_path / "wheelfarm.toml").write_text(
        '[publish]\nurl = "s3://bucket/pypi"\nsign-key = "ABCD"\nvalid-days = 7\n'
        's3-endpoint-url = "http://127.0.0.1:9000"\n')
    settings = farm_config.load(tmp_path).publish
    assert settings.url == "s3://bucket/pypi"
    assert settings.sign_key == "ABCD"
    assert settings.valid_days == 7.0
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
    assert farm_config.load(tmp_path / "nowhere").publish.valid_days == 30.0


@pytest.mark.parametrize(("text", "message"), [
    ('[publish]\nsign_key = "x"\n', "publish.sign_key: unknown key; did you mean 'sign-key'?"),
    ("[publish]\nvalid-days = 0\n", "publish.valid-days: must be a positive number of days"),
    ('[publish]\nvalid-days = "7"\n', "publish.valid-days: expected a number"),
])
def test_bad_publish_table(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "wheelfarm.toml").write_text(text)
    with pytest.raises(RecipeError) as err:
        farm_config.load(tmp_path)
    assert message in str(err.value)


def test_the_signing_key_comes_from_the_option_then_the_environment_then_the_config(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "FROM-ENV")
    assert resolve_key("FROM-OPTION", "FROM-CONFIG") == "FROM-OPTION"
    assert resolve_key(None, "FROM-CONFIG") == "FROM-ENV"
    monkeypatch.delenv(KEY_ENV)
    assert resolve_key(None, "FROM-CONFIG") == "FROM-CONFIG"
    with pytest.raises(ConfigError, match="no signing key"):
        resolve_key(None, None)
