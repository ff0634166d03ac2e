"""Sending the outbox: a loop in the controller's process, beside (never in)
the queue's work, that produces messages from new events and delivers the
due ones with httpx.

Delivery is at least once: a message is leased before it is sent and marked
delivered after the receiver answered 2xx; a controller that dies in
between leaves the lease to expire and the message is sent again with the
same delivery id, which receivers use to drop the repeat. A failed attempt
(an error status, a timeout, a refused connection) is tried again after an
exponential backoff with jitter, up to the target's ``max-attempts``; then
the message is kept as ``dead`` for ``wheelfarm notify status``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, Row

from wheelfarm.build.executors import sandbox
from wheelfarm.errors import ConfigError
from wheelfarm.farm.notify import messages, outbox
from wheelfarm.plan.config import CONFIG_NAME
from wheelfarm.plan.notifyconfig import NotifyTarget

log = logging.getLogger(__name__)
MAX_ERROR = 300  # characters of a receiver's answer kept as last_error


@dataclass(frozen=True)
class Backoff:
    """Seconds before retry ``n`` (1: after the first failure): ``base * 2**(n-1)``
    capped at ``cap``, of which a random half is taken off ("equal jitter"),
    so that messages that failed together do not retry together."""

    base: float
    cap: float
    jitter: Callable[[], float] = random.random

    def delay(self, failures: int) -> float:
        raw = min(self.cap, self.base * 2.0 ** max(0, failures - 1))
        return raw / 2 + raw / 2 * self.jitter()


def secrets_of(targets: Sequence[NotifyTarget], farm: Path,
               environ: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """Each signing target's secret, read from its environment variable; a
    ConfigError when one is unset or empty, or named so that builds would
    inherit it (the executors pass their allowlist of variables on)."""
    env = os.environ if environ is None else environ
    found: dict[str, bytes] = {}
    for i, target in enumerate(targets):
        name = target.secret_env
        if name is None:
            continue
        where = f"{farm / CONFIG_NAME}: notify[{i}].secret-env"
        if sandbox.allowed_env({name: "x"}, farm_tool=True, network=True):
            raise ConfigError(f"{where}: {name} is passed on to builds; choose another "
                              "variable name (e.g. WHEELFARM_HOOK_SECRET)")
        value = env.get(name, "")
        if not value:
            raise ConfigError(f"{where}: the environment variable {name} is not set")
        found[target.name] = value.encode()
    return found


@dataclass
class Notifier:
    """Produces and delivers the messages of ``targets`` over ``engine``.

    ``clock``, ``backoff`` (per target name) and ``client`` are injectable for tests.
    """

    engine: Engine
    targets: Sequence[NotifyTarget]
    secrets: Mapping[str, bytes]
    dashboard_url: str | None = None
    clock: Callable[[], float] = time.time
    client: httpx.Client = field(default_factory=lambda: httpx.Client(follow_redirects=False))
    backoff: Mapping[str, Backoff] = field(default_factory=dict)
    batch: int = 20

    def __post_init__(self) -> None:
        self._by_name = {t.name: t for t in self.targets}
        # Longer than any request may take, so a live sender keeps its claim.
        self.lease = max(10.0, 3 * max((t.timeout for t in self.targets), default=10.0))

    def produce(self) -> int:
        done = 0
        for target in self.targets:
            with self.engine.begin() as conn:
                done += outbox.produce(conn, target, self.clock(), self.dashboard_url)
        return done

    def deliver_due(self, deliveries: Sequence[str] | None = None) -> list[tuple[str, str | None]]:
        """Send the due messages (or the named ones, due or not), one attempt
        each; returns (delivery id, error or None) per message tried."""
        token, rows = outbox.claim(self.engine, list(self._by_name), self.clock(), self.lease,
                                   self.batch, deliveries)
        by_target: dict[str, list[Row[Any]]] = {}
        for row in rows:
            by_target.setdefault(row.target, []).append(row)

        def send_all(mine: list[Row[Any]]) -> list[tuple[str, str | None]]:
            return [self._attempt(row, token) for row in mine]

        if len(by_target) <= 1:
            return send_all(rows)
        # A target at a time, in order; targets side by side, so that a slow or
        # unreachable receiver does not hold the others' messages back.
        with ThreadPoolExecutor(len(by_target), thread_name_prefix="notify") as pool:
            return [r for part in pool.map(send_all, by_target.values()) for r in part]

    def _attempt(self, row: Row[Any], token: str) -> tuple[str, str | None]:
        error = self.send(row)
        target = self._by_name[row.target]
        now = self.clock()
        retry_at = None
        if error is not None and row.attempts + 1 < target.max_attempts:
            retry_at = now + self._backoff(target).delay(row.attempts + 1)
        outbox.record(self.engine, row.id, token, now, error=error, retry_at=retry_at)
        if error is not None:
            log.warning("notify %s: delivery %s failed (attempt %d): %s", target.name,
                        row.delivery, row.attempts + 1, error)
        return str(row.delivery), error

    def _backoff(self, target: NotifyTarget) -> Backoff:
        return self.backoff.get(target.name) or Backoff(target.retry_backoff, target.max_backoff)

    def send(self, row: Row[Any]) -> str | None:
        """One attempt; the error in a line (never the URL: a Slack webhook's URL
        is itself a credential), or None when the receiver took it."""
        target = self._by_name[row.target]
        body, headers = messages.render(
            target.format, json.loads(row.payload), delivery=row.delivery, event=row.event,
            now=self.clock(), secret=self.secrets.get(target.name))
        try:
            answer = self.client.post(target.url, content=body, headers=headers,
                                      timeout=target.timeout)
        except httpx.TimeoutException as exc:
            return f"timed out after {target.timeout:g}s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {messages.clip(str(exc), MAX_ERROR)}"
        if 200 <= answer.status_code < 300:
            return None
        return f"HTTP {answer.status_code}: {messages.clip(answer.text, MAX_ERROR)}"

    def step(self) -> None:
        self.produce()
        while self.deliver_due():
            pass

    def run(self, stopping: threading.Event, every: float = 1.0) -> None:
        """Until ``stopping`` is set: produce and deliver every ``every`` seconds."""
        while not stopping.is_set():
            try:
                self.step()
            except Exception as exc:  # the database may be restarting; try again later
                log.warning("notify: %s", exc)
            stopping.wait(every)
