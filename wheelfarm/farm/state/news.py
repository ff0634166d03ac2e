"""Waiting for news: an idle worker learns within moments that jobs were
submitted (or retried, or handed back) instead of at its next poll.

PostgreSQL: the moves that make jobs claimable ``NOTIFY`` a channel, which
a connection of the waiter's own ``LISTEN``\\ s to. SQLite: another
connection's commit changes ``PRAGMA data_version``, which the waiter reads
every few milliseconds (a read, no lock, unlike a claim). Either way the
waiter's connection is its own, out of the engine's pool. News is a hint:
a waiter that misses some (or cannot wait: its connection broke) claims at
its next poll all the same.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine, text

CHANNEL = "wheelfarm_jobs"
_SQLITE_EVERY = 0.01  # seconds between two reads of data_version


def notify(conn: Connection) -> None:
    """Tell waiters that jobs may have become claimable (PostgreSQL: at commit)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))


class News:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._raw: Any = None  # the driver's connection, once opened
        self._seen: int | None = None

    def wait(self, timeout: float) -> bool:
        """Whether there was news since the last call (since the first call began
        to listen), waiting for it up to ``timeout`` seconds."""
        try:
            if self._raw is None:
                self._open()
            if self.engine.dialect.name == "postgresql":
                return any(True for _ in self._raw.notifies(timeout=timeout, stop_after=1))
            return self._sqlite(timeout)
        except self.engine.dialect.loaded_dbapi.Error:
            self.close()  # listen anew next time; meanwhile the worker polls
            time.sleep(timeout)
            return False

    def _open(self) -> None:
        proxied = self.engine.raw_connection()
        raw: Any = proxied.driver_connection
        proxied.detach()  # its own for good: out of the pool's count and care
        if self.engine.dialect.name == "postgresql":
            raw.autocommit = True
            raw.execute(f"LISTEN {CHANNEL}")
        self._raw = raw
        self._seen = self._version() if self.engine.dialect.name == "sqlite" else None

    def _version(self) -> int:
        return int(self._raw.execute("PRAGMA data_version").fetchone()[0])

    def _sqlite(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            version = self._version()
            if version != self._seen:
                self._seen = version
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_SQLITE_EVERY, left))

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.close()
            except self.engine.dialect.loaded_dbapi.Error:
                pass
