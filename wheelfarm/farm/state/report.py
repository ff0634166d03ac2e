"""Jobs of the queue in the one JSON shape (see :mod:`wheelfarm.plan.jobjson`), for
``status --json`` and every other command that prints jobs as JSON.

```
{"schema": 1, "jobs": [{"key", "recipe", "target", "python", "state",
  "attempts": [{"n", "worker", "started", "ended", "reason", "log", "cause"}],
  "artifact": {"filename", "sha256"} | null, "cause", "owners": [...]}]}
```
Times are ISO 8601 in UTC; ``ended`` is null while an attempt runs.

:func:`local_jobs` gives the local builds recorded in the farm's state in the
same shape, one job per key (its attempts those of every recorded run, oldest
first), with ``"source": "local"`` and each attempt's ``"run"``, ``"step"``
and ``"cause"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from wheelfarm.farm.state.queue import Queue
from wheelfarm.farm.state.schema import attempts, events, jobs
from wheelfarm.plan.jobjson import SCHEMA, document, job_json, when

__all__ = ["SCHEMA", "document", "job_events", "job_json", "local_jobs", "queue_jobs", "when"]


def queue_jobs(queue: Queue, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every job of the queue (or those with ``keys``) with its attempts, oldest first."""
    with queue.engine.begin() as conn:
        query = select(jobs).order_by(jobs.c.id)
        if keys is not None:
            query = query.where(jobs.c.key.in_(list(keys)))
        rows = conn.execute(query).all()
        tries: dict[int, list[dict[str, Any]]] = {}
        for a in conn.execute(select(attempts).order_by(attempts.c.job_id, attempts.c.n)):
            tries.setdefault(a.job_id, []).append({
                "n": a.n, "worker": a.worker, "started": when(a.started),
                "ended": when(a.ended), "reason": a.reason, "log": a.log, "cause": a.cause,
            })
    found = []
    for r in rows:
        art = (r.artifact_filename, r.artifact_sha256) if r.artifact_sha256 else None
        doc = job_json(r.key, r.recipe, r.target, r.python, r.state, tries.get(r.id, ()), art,
                       cause=r.cause, owners=json.loads(r.owners) if r.owners else ())
        found.append(doc)
    return found


def job_events(queue: Queue, job_id: int | None = None) -> list[dict[str, Any]]:
    """The append-only event log (of one job), oldest first."""
    with queue.engine.begin() as conn:
        query = select(events).order_by(events.c.id)
        if job_id is not None:
            query = query.where(events.c.job_id == job_id)
        return [{"at": when(e.at), "job": e.job_id, "n": e.n, "worker": e.worker,
                 "kind": e.kind, "detail": json.loads(e.detail) if e.detail else None}
                for e in conn.execute(query)]


def local_jobs(queue: Queue, key: str | None = None) -> list[dict[str, Any]]:
    """The local builds of the farm's history (of one key), by first attempt."""
    by_key: dict[str, list[Any]] = {}
    for row in queue.local_rows(key):
        by_key.setdefault(row.key, []).append(row)
    found = []
    for rows in by_key.values():
        tries = [{"n": n, "worker": f"local {r.host}", "started": when(r.started),
                  "ended": when(r.ended), "reason": r.reason, "log": r.log, "run": r.run,
                  "step": r.step, "cause": r.cause, "cached": bool(r.cached)}
                 for n, r in enumerate(rows, 1)]
        last = rows[-1]
        art = (last.wheel, last.sha256) if last.sha256 else None
        doc = job_json(last.key, last.recipe, last.target, last.python, last.state, tries, art,
                       cause=last.cause, owners=json.loads(last.owners) if last.owners else ())
        doc["source"] = "local"
        found.append(doc)
    return found
