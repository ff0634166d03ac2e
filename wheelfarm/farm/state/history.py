"""The farm's record of local builds (``wheelfarm build``) and its tokens
(workers' and operators'); mixed into :class:`~wheelfarm.farm.state.queue.Queue`.

A local build runs its jobs through a private queue of its own (see
:mod:`wheelfarm.farm.localrun`); each attempt is also written here, in the
farm's state database, as one row of ``local_builds``: ``running`` when it
begins, its outcome when it ends. ``status``, ``logs``, the dashboard and the
metrics read them through this class.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row, delete, func, select, update

from wheelfarm.farm.state.schema import local_builds, operator_tokens, workers
from wheelfarm.farm.state.sql import event as _event


@dataclass(frozen=True)
class LocalAttempt:
    """What a local build records when an attempt begins."""

    run: str
    host: str
    key: str
    job: str
    recipe: str
    target: str
    python: str
    executor: str
    owners: Sequence[str] = ()
    log: str | None = None  # where the log is written while it runs


@dataclass(frozen=True)
class LocalEnd:
    """How a local attempt ended."""

    ok: bool
    cached: bool = False
    duration: float = 0.0
    step: str | None = None
    cause: str | None = None
    reason: str | None = None
    wheel: str | None = None
    sha256: str | None = None
    log: str | None = None


class History:
    engine: Engine
    clock: Callable[[], float]

    def local_started(self, attempt: LocalAttempt, started: float | None = None) -> int:
        """Record that a local attempt began; its row's id."""
        values = {**vars(attempt), "owners": json.dumps(list(attempt.owners)),
                  "state": "running", "cached": 0,
                  "started": self.clock() if started is None else started}
        with self.engine.begin() as conn:
            return int(conn.execute(local_builds.insert().values(**values)
                                    .returning(local_builds.c.id)).scalar_one())

    def local_ended(self, row_id: int, end: LocalEnd) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(update(local_builds).where(local_builds.c.id == row_id).values(
                state="succeeded" if end.ok else "failed", cached=int(end.cached), ended=now,
                duration=end.duration, step=end.step, cause=end.cause,
                reason=end.reason or None, wheel=end.wheel, sha256=end.sha256,
                **({"log": end.log} if end.log else {})))

    def local_rows(self, key: str | None = None) -> list[Row[Any]]:
        """Every recorded local attempt (of the job ``key``), oldest first."""
        query = select(local_builds).order_by(local_builds.c.id)
        if key is not None:
            query = query.where(local_builds.c.key == key)
        with self.engine.begin() as conn:
            return list(conn.execute(query).all())

    def local_running(self, host_prefix: str) -> list[Row[Any]]:
        """The attempts still ``running`` whose host starts with ``host_prefix``."""
        with self.engine.begin() as conn:
            return list(conn.execute(select(local_builds).where(
                local_builds.c.state == "running",
                local_builds.c.host.startswith(host_prefix, autoescape=True))).all())

    def local_keys(self, prefix: str) -> list[str]:
        """The keys of local builds that start with ``prefix`` (at most three)."""
        with self.engine.begin() as conn:
            return list(conn.execute(select(local_builds.c.key).where(
                local_builds.c.key.startswith(prefix, autoescape=True)).distinct()
                .limit(3)).scalars())

    def local_counts(self) -> dict[tuple[str, int], int]:
        """Local attempts by (state, cached)."""
        with self.engine.begin() as conn:
            return {(r.state, int(r.cached)): int(r.n) for r in conn.execute(
                select(local_builds.c.state, local_builds.c.cached,
                       func.count().label("n")).group_by(local_builds.c.state,
                                                         local_builds.c.cached))}

    # -- operators' tokens ---------------------------------------------------------------------

    def set_operator_token(self, name: str, token_sha256: str) -> None:
        """Give operator ``name`` this token (replacing an earlier one)."""
        with self.engine.begin() as conn:
            conn.execute(delete(operator_tokens).where(operator_tokens.c.name == name))
            conn.execute(operator_tokens.insert().values(
                name=name, token_sha256=token_sha256, created=self.clock()))

    def operator_for_token(self, token_sha256: str) -> str | None:
        with self.engine.begin() as conn:
            return conn.execute(select(operator_tokens.c.name).where(
                operator_tokens.c.token_sha256 == token_sha256)).scalar()

    # -- who holds a token ------------------------------------------------------------------------

    def token_holders(self) -> list[TokenHolder]:
        """Every worker and operator that holds a token now, by kind and name."""
        with self.engine.begin() as conn:
            held = [TokenHolder("operator", r.name, r.created) for r in conn.execute(
                select(operator_tokens.c.name, operator_tokens.c.created))]
            held += [TokenHolder("worker", r.name, r.last_seen) for r in conn.execute(
                select(workers.c.name, workers.c.last_seen)
                .where(workers.c.token_sha256.is_not(None)))]
        return sorted(held, key=lambda h: (h.kind, h.name))

    def revoke_token(self, kind: str, name: str) -> bool:
        """Take the token of worker or operator ``name`` away; False if it held none.
        A worker keeps its record (its jobs' history names it); a controller that
        trusted the token stops within its cache's few seconds."""
        with self.engine.begin() as conn:
            if kind == "operator":
                return bool(conn.execute(delete(operator_tokens)
                                         .where(operator_tokens.c.name == name)).rowcount)
            gone = conn.execute(update(workers).where(
                workers.c.name == name, workers.c.token_sha256.is_not(None))
                .values(token_sha256=None)).rowcount
            if gone:
                _event(conn, self.clock(), "token-revoked", worker=name)
            return bool(gone)


@dataclass(frozen=True)
class TokenHolder:
    kind: str  # worker | operator
    name: str
    since: float | None  # an operator's token's issue time; a worker's last contact
