"""Shared fixtures. In CI (CI=true) a skipped test fails the run: a component
that a test needs must be installed by .ci/run, never silently missing.

The fixtures here serve more than one of tests/unit, tests/integration and
tests/security; those of the integration tests alone are in
tests/integration/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import Clock, state_database
from tests.integration.publish_support import Key, built_fastadd, throwaway_keys
from wheelfarm.farm.state.db import open_engine
from wheelfarm.farm.state.queue import Queue

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = ROOT / "tests" / "fixtures" / "projects"
RECIPES = ROOT / "recipes"

# Every farm a test makes shares one cache: zig's runtimes and build
# environments are built once per machine, not once per test. It is the
# checkout's, never the user's own (~/.cache/wheelfarm, every farm's default)
# unless WHEELFARM_CACHE_DIR says so, as CI's .ci/setup.d/10-toolchains.sh does.
os.environ.setdefault("WHEELFARM_CACHE_DIR", str(ROOT / ".wheelfarm" / "cache"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must have every component: {reason}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need the emulated test places run last: CI prepares those
    places in the background (.ci/setup.d/70-emulation.sh) while the rest runs."""
    items.sort(key=lambda item: item.get_closest_marker("emulation") is not None)
@pytest.fixture
def state_kind() -> str:
    """The database ``state_url`` makes: SQLite, unless a module or conftest overrides
    this fixture (with "postgresql", or parameters of both)."""
    return "sqlite"


@pytest.fixture
def state_url(state_kind: str, tmp_path: Path) -> Iterator[str]:
    """An empty state database for one test."""
    with state_database(state_kind, tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def keys() -> Iterator[tuple[Key, Key]]:
    """(the farm's key, an unrelated key) in throwaway keyrings."""
    with throwaway_keys() as made:
        yield made


@pytest.fixture(scope="module")
def fastadd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``wheelfarm build`` of the C fixture for cp312, once per test session."""
    return built_fastadd(tmp_path_factory.getbasetemp() / "fastadd-built")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(state_url: str, clock: Clock) -> Iterator[Queue]:
    """A queue on the test's state database, with short leases and backoff on ``clock``."""
    engine = open_engine(state_url)
    yield Queue(engine, lease_seconds=10.0, backoff=5.0, clock=clock)
    engine.dispose()
