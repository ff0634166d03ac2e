"""Local builds recorded in the farm's state (every test of
tests/unit/test_local_history.py) when that state is a real PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_local_history import *  # noqa: F403 - the same tests, another database

pytestmark = pytest.mark.integration


@pytest.fixture
def state_kind() -> str:
    return "postgresql"


@pytest.fixture
def farm(tmp_path: Path, state_url: str) -> Path:
    (tmp_path / "wheelfarm.toml").write_text(
        f'state = "{state_url}"\nretry-backoff = 0.05\nlease = 5\n')
    return tmp_path
