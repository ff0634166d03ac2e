"""Empty state databases for one test: a SQLite file, or a throw-away database on the
PostgreSQL server that CI starts (.ci/setup.d/30-postgres.sh exports
WHEELFARM_TEST_POSTGRES)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

ENV = "WHEELFARM_TEST_POSTGRES"


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    base = os.environ.get(ENV)
    if not base:
        pytest.skip(f"{ENV} is not set (a PostgreSQL URL; .ci/setup.d/30-postgres.sh starts one)")
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    name = "wf_" + uuid.uuid4().hex[:16]
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield plain.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def state_database(kind: str, directory: os.PathLike[str]) -> Iterator[str]:
    """A state URL of ``kind`` (sqlite or postgresql), empty, for one test."""
    if kind == "sqlite":
        yield f"sqlite:///{os.fspath(directory)}/state.db"
    else:
        with fresh_database() as url:
            yield url


class Clock:
    """A queue's clock that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now
