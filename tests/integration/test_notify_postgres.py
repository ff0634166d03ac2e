"""Grouping events into the outbox and claiming messages (the outbox tests of
tests/unit/test_notify.py) against a real PostgreSQL server."""

from __future__ import annotations

import pytest

from tests.unit.test_notify import (  # noqa: F401 - the same tests, another database
    test_a_claimed_message_takes_no_more_events,
    test_a_matrix_failing_with_one_cause_makes_one_message,
    test_only_a_success_after_a_failure_is_a_recovery,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def state_kind() -> str:  # the state_url fixture makes PostgreSQL databases alone here
    return "postgresql"
