"""``[[notify]]`` in ``wheelfarm.toml``: where the farm reports failures,
recoveries and publishes (webhooks), checked like every other key.

```toml
dashboard-url = "https://farm.example/"      # job links: {dashboard-url}/jobs/{key}
[[notify]]
url = "https://hooks.slack.com/services/..."  # Slack-compatible incoming webhook
format = "slack"
[[notify]]
name = "ci-bot"                               # names the target's outbox rows and cursor
url = "https://ci.example/hooks/wheelfarm"
format = "json"                               # signed with HMAC-SHA256
secret-env = "WHEELFARM_HOOK_SECRET"          # the environment variable holding the secret
on = ["failure", "recovery"]                  # default: failure, recovery, publish
window = 60                                   # seconds a group of failures gathers
recipes = ["fastadd"]                         # default: every recipe
timeout = 10                                  # seconds per request
max-attempts = 8                              # then the message is kept as "dead"
retry-backoff = 5                             # seconds before the first retry; doubles
max-backoff = 600
```

The secret itself never appears here: only the name of the variable that
holds it, read by the process that delivers (the controller).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wheelfarm.errors import RecipeError
from wheelfarm.plan import tomlshape

Event = Literal["failure", "recovery", "publish"]
EVENTS: tuple[Event, ...] = ("failure", "recovery", "publish")
FORMATS = ("slack", "json")
NOTIFY_SCHEMA: tomlshape.Schema = {
    "name": str,
    "url": str,
    "format": str,
    "secret-env": str,
    "on": "list[str]",
    "window": float,
    "recipes": "list[str]",
    "timeout": float,
    "max-attempts": int,
    "retry-backoff": float,
    "max-backoff": float,
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class NotifyTarget:
    name: str  # stable id of the target: its cursor and outbox rows carry it
    url: str
    format: Literal["slack", "json"] = "slack"
    secret_env: str | None = None
    on: tuple[Event, ...] = EVENTS
    window: float = 60.0
    recipes: tuple[str, ...] | None = None  # normalized names; None: every recipe
    timeout: float = 10.0
    max_attempts: int = 8
    retry_backoff: float = 5.0
    max_backoff: float = 600.0

    def wants(self, event: str, recipe: str | None = None) -> bool:
        if event not in self.on:
            return False
        return recipe is None or self.recipes is None or _norm(recipe) in self.recipes


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(data: Any, path: Path) -> tuple[NotifyTarget, ...]:
    """The ``[[notify]]`` tables; a RecipeError naming the file and key for a bad one."""
    if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
        raise RecipeError(path, "notify", "expected [[notify]] tables")
    found: list[NotifyTarget] = []
    for i, table in enumerate(data):
        found.append(_target(table, path, f"notify[{i}]"))
    names = [t.name for t in found]
    for name in names:
        if names.count(name) > 1:
            raise RecipeError(path, "notify", f"two targets named {name!r}; give each a name")
    return tuple(found)


def _target(table: dict[str, Any], path: Path, where: str) -> NotifyTarget:
    tomlshape.check(table, NOTIFY_SCHEMA, path, where + ".")
    url = table.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise RecipeError(path, f"{where}.url", "expected an http:// or https:// URL")
    fmt = table.get("format", "slack")
    if fmt not in FORMATS:
        raise RecipeError(path, f"{where}.format", f"expected one of: {', '.join(FORMATS)}")
    secret_env = table.get("secret-env")
    if secret_env is not None and not _ENV_NAME.match(secret_env):
        raise RecipeError(path, f"{where}.secret-env",
                          "expected the name of an environment variable (the secret itself "
                          "never goes in this file)")
    if fmt == "json" and not secret_env:
        raise RecipeError(path, f"{where}.secret-env",
                          'required for format = "json": the environment variable holding '
                          "the HMAC secret")
    on = table.get("on", list(EVENTS))
    for event in on:
        if event not in EVENTS:
            raise RecipeError(path, f"{where}.on", f"unknown event {event!r}; expected "
                              f"some of: {', '.join(EVENTS)}")
    for key in ("window", "timeout", "retry-backoff", "max-backoff"):
        if key in table and table[key] <= 0:
            raise RecipeError(path, f"{where}.{key}", "must be a positive number of seconds")
    if table.get("max-attempts", 1) < 1:
        raise RecipeError(path, f"{where}.max-attempts", "must be at least 1")
    name = table.get("name") or f"{fmt}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"
    if not _NAME.match(name):
        raise RecipeError(path, f"{where}.name", "use up to 64 letters, digits, '.', '_', '-'")
    recipes = table.get("recipes")
    return NotifyTarget(
        name=name, url=url, format=fmt, secret_env=secret_env,
        on=tuple(e for e in EVENTS if e in on),
        window=float(table.get("window", 60.0)),
        recipes=tuple(_norm(r) for r in recipes) if recipes is not None else None,
        timeout=float(table.get("timeout", 10.0)),
        max_attempts=int(table.get("max-attempts", 8)),
        retry_backoff=float(table.get("retry-backoff", 5.0)),
        max_backoff=float(table.get("max-backoff", 600.0)))


def dashboard_url(value: Any, path: Path) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise RecipeError(path, "dashboard-url", "expected an http:// or https:// URL")
    return value.rstrip("/")
