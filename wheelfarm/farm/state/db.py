"""Opening the state database: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from wheelfarm.errors import ConfigError, needs_extra
from wheelfarm.farm.state import schema

# Seconds a writer waits for SQLite's lock before giving up; claims are short.
SQLITE_BUSY_TIMEOUT = 60.0


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` select psycopg 3; anything else must be SQLite."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith(("postgresql+psycopg://", "sqlite://")):
        return url
    raise ConfigError(f"state {_redact(url)!r}: expected a sqlite:///PATH or "
                      "postgresql://USER@HOST/DB URL")


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def open_engine(url: str) -> Engine:
    """An engine on ``url`` with the schema migrated to the current version."""
    url = normalize_url(url)
    try:
        if url.startswith("sqlite"):
            engine = _sqlite(url)
        else:
            with needs_extra("farm", "a PostgreSQL state database"):
                import psycopg  # noqa: F401  # the driver SQLAlchemy's dialect loads
            # Commits return before the WAL reaches the disk (as SQLite's WAL
            # with synchronous=NORMAL): a server crash may forget the last
            # moments, which the queue survives (a forgotten claim or result
            # only means a lease that expires and a job that runs again;
            # nothing is recorded twice), and a claim costs no fsync.
            engine = create_engine(url, pool_size=4, max_overflow=8, pool_recycle=600,
                                   connect_args={"options": "-c synchronous_commit=off"})
        with engine.begin() as conn:
            schema.migrate(conn)
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot open the state database {_redact(url)}: "
                          f"{schema.first_line(getattr(exc, 'orig', None) or exc)}") from None
    return engine


def _sqlite(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # The driver's own transaction handling would BEGIN lazily (deferred);
        # every transaction here begins IMMEDIATE instead, so two claimers
        # serialize on the write lock rather than both reading the same job.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
