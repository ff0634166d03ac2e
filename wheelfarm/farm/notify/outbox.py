"""The outbox: messages written into the farm's state in the same transaction
that reads the events behind them, and delivered afterwards.

The producer reads the queue's append-only ``events`` from a cursor kept per
target, and in ONE transaction turns final failures into grouped messages
and successes after a failure into "fixed" messages, writes them and moves
the cursor: a crash before the commit leaves both as they were, after it
the messages are there to deliver (a restart loses none and makes none
twice).

Grouping: a failure joins the open message of its (target, recipe, cause)
whose window (from its first event's time) has not closed and which no
deliverer has claimed yet; otherwise it opens a new one, due when its
window closes. Recoveries group by recipe the same way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, func, insert, or_, select, update

from wheelfarm.farm.notify.messages import MAX_JOBS, MAX_NAME, clip, first_line
from wheelfarm.farm.state.schema import events, jobs, notify_cursors, notify_outbox
from wheelfarm.plan.notifyconfig import NotifyTarget

STATES = ("pending", "delivered", "dead")
BATCH = 500  # events read per transaction
# PostgreSQL hands out event ids before the inserting transactions commit, so
# a later id can become visible first: the producer leaves the newest moments
# alone so that it never passes an event still being committed.
PG_SETTLE = 2.0
OUT = notify_outbox.c


def produce(conn: Connection, target: NotifyTarget, now: float,
            dashboard_url: str | None = None) -> int:
    """Turn the events after ``target``'s cursor into outbox rows, and move the
    cursor, inside the caller's transaction; returns the events consumed.

    A target seen for the first time starts at the newest event: it is told
    about what happens from now on, not about the farm's history.
    """
    cursor = conn.execute(select(notify_cursors.c.event_id)
                          .where(notify_cursors.c.target == target.name)).scalar()
    if cursor is None:
        newest = conn.execute(select(func.max(events.c.id))).scalar() or 0
        conn.execute(insert(notify_cursors).values(target=target.name, event_id=newest,
                                                   updated=now))
        return 0
    rows = conn.execute(
        select(events.c.id, events.c.at, events.c.kind, events.c.detail, jobs.c.key,
               jobs.c.recipe, jobs.c.target, jobs.c.python, jobs.c.owners)
        .select_from(events.outerjoin(jobs, events.c.job_id == jobs.c.id))
        .where(events.c.id > cursor).order_by(events.c.id).limit(BATCH)).all()
    settle = now - PG_SETTLE if conn.dialect.name == "postgresql" else None
    last = cursor
    for row in rows:
        if settle is not None and row.at > settle:
            break
        last = row.id
        if row.key is None:
            continue
        if row.kind == "failed":
            _failure(conn, target, row, now, dashboard_url)
        elif row.kind == "succeeded":
            _success(conn, target, row, now, dashboard_url)
    if last != cursor:
        conn.execute(update(notify_cursors).where(notify_cursors.c.target == target.name)
                     .values(event_id=last, updated=now))
    return sum(1 for r in rows if r.id <= last)


def _job(row: Any, dashboard_url: str | None, reason: str = "") -> dict[str, Any]:
    job = {"key": row.key, "recipe": row.recipe, "target": row.target, "python": row.python}
    if reason:
        job["reason"] = reason
    if dashboard_url:
        job["url"] = f"{dashboard_url}/jobs/{row.key}"
    return job


def _owners(row: Any) -> list[str]:
    try:
        found = json.loads(row.owners or "[]")
    except ValueError:
        return []
    return [clip(x, MAX_NAME) for x in found if isinstance(x, str)][:20]


def _failure(conn: Connection, target: NotifyTarget, row: Any, now: float,
             dashboard_url: str | None) -> None:
    detail = _detail(row.detail)
    cause = detail.get("cause")
    # A job that never ran (a needed job failed, the farm stopped) has no cause of
    # its own: the failure it follows from is the one reported.
    if not isinstance(cause, str) or not target.wants("failure", row.recipe):
        return
    reason = first_line(str(detail.get("reason") or ""))
    doc = {"event": "failure", "recipes": [clip(row.recipe, MAX_NAME)], "cause": cause,
           "owners": _owners(row), "count": 1, "reason": reason,
           "jobs": [_job(row, dashboard_url, reason)], "first_at": row.at, "last_at": row.at}
    _group(conn, target, f"failure:{row.recipe}:{cause}", "failure", doc, row.at, now)


def _success(conn: Connection, target: NotifyTarget, row: Any, now: float,
             dashboard_url: str | None) -> None:
    if not target.wants("recovery", row.recipe):
        return
    # The same recipe, target and python's final result before this one: a
    # rebuild of a changed recipe is another job (another key) of the same slot.
    before = conn.execute(
        select(events.c.kind).select_from(events.join(jobs, events.c.job_id == jobs.c.id))
        .where(jobs.c.recipe == row.recipe, jobs.c.target == row.target,
               jobs.c.python == row.python, events.c.id < row.id,
               events.c.kind.in_(("failed", "succeeded")))
        .order_by(events.c.id.desc()).limit(1)).scalar()
    if before != "failed":
        return
    doc = {"event": "recovery", "recipes": [clip(row.recipe, MAX_NAME)],
           "owners": _owners(row), "count": 1, "jobs": [_job(row, dashboard_url)],
           "first_at": row.at, "last_at": row.at}
    _group(conn, target, f"recovery:{row.recipe}", "recovery", doc, row.at, now)


def _detail(text: str | None) -> dict[str, Any]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _group(conn: Connection, target: NotifyTarget, key: str, event: str,
           doc: dict[str, Any], at: float, now: float) -> None:
    """Join the open message of ``key`` (unclaimed, never tried, window open at
    ``at``) or open a new one, due when its window closes."""
    open_row = conn.execute(
        select(OUT.id, OUT.payload).where(OUT.target == target.name, OUT.group_key == key,
                                      OUT.state == "pending", OUT.attempts == 0,
                                      OUT.lease.is_(None), OUT.window_end > at)
        .order_by(OUT.id.desc()).limit(1)).first()
    if open_row is not None:
        merged = merge(json.loads(open_row.payload), doc)
        # Conditional: a deliverer that claimed it meanwhile keeps it as it was sent.
        if conn.execute(update(notify_outbox).where(OUT.id == open_row.id, OUT.lease.is_(None),
                                                    OUT.attempts == 0)
                        .values(payload=json.dumps(merged), updated=now)).rowcount:
            return
    add(conn, target.name, event, doc, now, not_before=at + target.window, group_key=key,
        window_end=at + target.window)


def merge(into: dict[str, Any], doc: Mapping[str, Any]) -> dict[str, Any]:
    """``into`` with one more event of its group (``doc``, a one-job message)."""
    out = dict(into)
    out["count"] = int(into.get("count", 0)) + int(doc.get("count", 1))
    for key in ("recipes", "owners"):
        out[key] = list(dict.fromkeys([*into.get(key, []), *doc.get(key, [])]))
    out["jobs"] = [*into.get("jobs", []), *doc.get("jobs", [])][:MAX_JOBS]
    out["last_at"] = max(float(into.get("last_at", 0)), float(doc.get("last_at", 0)))
    if not out.get("reason") and doc.get("reason"):
        out["reason"] = doc["reason"]
    return out


def add(conn: Connection, target: str, event: str, doc: Mapping[str, Any], now: float, *,
        not_before: float | None = None, group_key: str | None = None,
        window_end: float | None = None) -> str:
    """A new pending message; returns its delivery id."""
    delivery = uuid.uuid4().hex
    conn.execute(insert(notify_outbox).values(
        delivery=delivery, target=target, event=event, group_key=group_key,
        payload=json.dumps(doc), state="pending", attempts=0,
        not_before=now if not_before is None else not_before, window_end=window_end,
        created=now, updated=now))
    return delivery


def enqueue(engine: Engine, targets: Iterable[NotifyTarget], event: str,
            doc: Mapping[str, Any], now: float) -> list[str]:
    """One message of ``event`` to each target that wants it, due now."""
    with engine.begin() as conn:
        return [add(conn, t.name, event, doc, now) for t in targets
                if event == "test" or t.wants(event)]


# -- the deliverer's side ----------------------------------------------------------------------


def claim(engine: Engine, targets: Sequence[str], now: float, lease: float, limit: int,
          deliveries: Sequence[str] | None = None) -> tuple[str, list[Row[Any]]]:
    """Lease up to ``limit`` due messages of ``targets`` (or the named
    ``deliveries``) for ``lease`` seconds; returns the lease token and the rows.
    Another deliverer (a second controller) skips them until the lease expires."""
    token = uuid.uuid4().hex
    free = or_(OUT.lease.is_(None), OUT.lease_expires < now)
    where = and_(OUT.state == "pending", OUT.target.in_(list(targets)), free,
                 OUT.delivery.in_(list(deliveries)) if deliveries is not None
                 else OUT.not_before <= now)
    with engine.begin() as conn:
        query = select(OUT.id).where(where).order_by(OUT.id).limit(limit)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(conn.execute(query).scalars())
        if not ids:
            return token, []
        conn.execute(update(notify_outbox).where(OUT.id.in_(ids), where)
                     .values(lease=token, lease_expires=now + lease))
        rows = conn.execute(select(notify_outbox).where(OUT.lease == token)
                            .order_by(OUT.id)).all()
    return token, list(rows)


def record(engine: Engine, row_id: int, token: str, now: float, *, error: str | None,
           retry_at: float | None) -> bool:
    """An attempt's result: delivered (no ``error``), or failed and due again at
    ``retry_at`` (None: no attempts left, the message is dead). False when the
    lease was lost meanwhile (then the other holder records it)."""
    values: dict[str, Any] = {"attempts": OUT.attempts + 1, "lease": None,
                              "lease_expires": None, "updated": now}
    if error is None:
        values.update(state="delivered", delivered=now)
    else:
        values.update(state="dead" if retry_at is None else "pending", last_error=error,
                      not_before=retry_at if retry_at is not None else now)
    with engine.begin() as conn:
        return bool(conn.execute(update(notify_outbox).where(
            OUT.id == row_id, OUT.lease == token).values(**values)).rowcount)


def delivery_counts(bind: Engine | Connection) -> dict[str, int]:
    """Messages by state (pending, delivered, dead), for status and /metrics."""
    query = select(OUT.state, func.count()).group_by(OUT.state)
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            rows = conn.execute(query).all()
    else:
        rows = bind.execute(query).all()
    counts = dict.fromkeys(STATES, 0)
    counts.update({str(state): int(n) for state, n in rows})
    return counts


def last_errors(engine: Engine, limit: int = 5) -> list[Row[Any]]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(OUT.delivery, OUT.target, OUT.event, OUT.state, OUT.attempts,
                   OUT.last_error, OUT.updated)
            .where(OUT.last_error.is_not(None)).order_by(OUT.updated.desc()).limit(limit)))


def cursors(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(r.target): int(r.event_id) for r in conn.execute(select(notify_cursors))}
