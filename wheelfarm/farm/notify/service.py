"""The notifications of one farm, as its commands use them: the controller's
notifier, a publish's message, `wheelfarm notify status` and `notify test`."""

from __future__ import annotations

import getpass
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from wheelfarm.errors import ConfigError, WheelfarmError
from wheelfarm.farm.notify import outbox
from wheelfarm.farm.notify.deliver import Notifier, secrets_of
from wheelfarm.plan.config import CONFIG_NAME, FarmConfig
from wheelfarm.plan.notifyconfig import NotifyTarget

log = logging.getLogger(__name__)


def _engine(config: FarmConfig) -> Engine:
    from wheelfarm.farm.state.db import open_engine

    return open_engine(config.state_url)


def notifier(config: FarmConfig, engine: Engine | None = None) -> Notifier | None:
    """The farm's notifier (None without [[notify]] targets); a ConfigError when a
    signing secret's environment variable is missing."""
    if not config.notify:
        return None
    secrets = secrets_of(config.notify, config.root)
    return Notifier(engine or _engine(config), config.notify, secrets,
                    dashboard_url=config.dashboard_url)


def publish_news(config: FarmConfig, doc: dict[str, Any]) -> None:
    """Queue a "publish" message in the farm's state for its controller to send.

    Best effort: a publish has happened whatever becomes of its message, so a
    state database that cannot be reached is logged, not raised.
    """
    wanted = [t for t in config.notify if t.wants("publish")]
    if not wanted:
        return
    doc = {"event": "publish", "who": _who(), **doc}
    try:
        outbox.enqueue(_engine(config), wanted, "publish", doc, time.time())
    except (WheelfarmError, SQLAlchemyError, OSError) as exc:
        log.warning("the publish notification was not queued: %s", exc)


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Status:
    targets: tuple[NotifyTarget, ...]
    counts: dict[str, int]
    cursors: dict[str, int]
    errors: list[dict[str, Any]]


def status(config: FarmConfig) -> Status:
    engine = _engine(config)
    errors = [{"delivery": r.delivery, "target": r.target, "event": r.event,
               "state": r.state, "attempts": r.attempts, "error": r.last_error,
               "at": r.updated} for r in outbox.last_errors(engine)]
    return Status(config.notify, outbox.delivery_counts(engine), outbox.cursors(engine), errors)


def send_test(config: FarmConfig, names: Sequence[str] = ()) -> list[tuple[str, str | None]]:
    """Send a test message to each target (or those named) now, one attempt;
    (target name, error or None) each. A failed one stays in the outbox, for
    the controller to retry."""
    if not config.notify:
        raise ConfigError(f"{config.root / CONFIG_NAME}: no [[notify]] targets")
    known = {t.name for t in config.notify}
    for name in names:
        if name not in known:
            raise ConfigError(f"no notify target named {name!r}; known: "
                              f"{', '.join(sorted(known))}")
    chosen = [t for t in config.notify if not names or t.name in names]
    found = notifier(config)
    assert found is not None
    now = found.clock()
    doc = {"event": "test", "text": "a test message from wheelfarm notify test",
           "recipes": [], "count": 0}
    deliveries = outbox.enqueue(found.engine, chosen, "test", doc, now)
    by_delivery = dict(zip(deliveries, (t.name for t in chosen), strict=True))
    return [(by_delivery[d], error) for d, error in found.deliver_due(deliveries)]
