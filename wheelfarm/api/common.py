"""What every part of the API shares: the farm's directory and configuration."""

from __future__ import annotations

from pathlib import Path

from wheelfarm.plan import config as farm_config

FarmConfig = farm_config.FarmConfig
HERE = Path(".")


def load_config(farm_dir: Path = HERE) -> FarmConfig:
    """The farm's configuration (its wheelfarm.toml, defaults where there is none)."""
    return farm_config.load(farm_dir.resolve())
