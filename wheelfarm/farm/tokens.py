"""The farm's bearer tokens: a worker's (it may lease jobs and upload their
results) and an operator's (the dashboard's retry and cancel). Only a token's
sha256 is stored; the token itself is shown once, when it is issued."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable

from wheelfarm.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9._+-]{1,200}$")


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(kind: str, name: str, store: Callable[[str, str], None]) -> str:
    """A new token for the ``kind`` (worker, operator) ``name``, whose digest
    ``store(name, digest)`` records in place of any earlier one; returns it."""
    if not _NAME.match(name):
        raise ConfigError(f"{kind} name {name!r}: use letters, digits, '.', '_', '+', '-'")
    token = secrets.token_urlsafe(32)
    store(name, sha256(token))
    return token


class Bearer:
    """Whose token an ``Authorization: Bearer`` header carries, asked of
    ``lookup`` (token sha256 -> name, or None) at most once per ``ttl`` seconds
    per token: `wheelfarm token` in another process may replace or revoke a
    token, and it must stop working within ``ttl``."""

    def __init__(self, lookup: Callable[[str], str | None], ttl: float) -> None:
        self.lookup = lookup
        self.ttl = ttl
        self._known: dict[str, tuple[str, float]] = {}  # token sha256 -> (name, until)
        self._guard = threading.Lock()

    def name(self, header: str) -> str | None:
        if not header.startswith("Bearer "):
            return None
        digest = sha256(header[len("Bearer "):].strip())
        now = time.monotonic()
        with self._guard:
            cached = self._known.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        name = self.lookup(digest)
        with self._guard:
            if name is None:
                self._known.pop(digest, None)
            else:
                self._known[digest] = (name, now + self.ttl)
        return name
