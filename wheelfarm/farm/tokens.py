"""The farm's bearer tokens: a worker's (it may lease jobs and upload their
results) and an operator's (the dashboard's retry and cancel). Only a token's
sha256 is stored; the token itself is shown once, when it is issued."""

from __future__ import annotations

import hashlib
import re
import secrets
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
