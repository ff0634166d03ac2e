"""The dashboard's pages, actions and /metrics (every test of
tests/unit/test_dashboard.py) over a farm whose state is a real PostgreSQL
database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dashfarm import DashFarm, make_farm
from tests.unit.test_dashboard import *  # noqa: F403 - the same tests, another database

pytestmark = pytest.mark.integration


@pytest.fixture
def state_kind() -> str:
    return "postgresql"


@pytest.fixture
def farm(tmp_path: Path, state_url: str) -> DashFarm:
    made = make_farm(tmp_path, f'state = "{state_url}"\n')
    assert made.queue.engine.dialect.name == "postgresql"
    return made
