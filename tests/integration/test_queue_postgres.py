"""The queue's rules (every test of tests/unit/test_queue.py) against a real
PostgreSQL server, where claims use FOR UPDATE SKIP LOCKED."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.databases import Clock
from tests.unit.test_queue import *  # noqa: F403 - the same tests, another database
from tests.unit.test_queue import Queue, open_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def state_kind() -> str:  # the state_url fixture makes PostgreSQL databases alone here
    return "postgresql"


@pytest.fixture
def queue(state_url: str, clock: Clock) -> Iterator[Queue]:
    engine = open_engine(state_url)
    assert engine.dialect.name == "postgresql"
    yield Queue(engine, lease_seconds=10.0, backoff=5.0, clock=clock)
    engine.dispose()
