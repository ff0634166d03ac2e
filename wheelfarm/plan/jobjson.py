"""The one JSON shape of a job, for ``status --json``, ``plan`` and ``build --json``:

```
{"schema": 1, "jobs": [{"key", "recipe", "target", "python", "state",
  "attempts": [{"n", "worker", "started", "ended", "reason", "log", "cause"}],
  "artifact": {"filename", "sha256"} | null, "cause", "owners": [...]}]}
```
``cause`` is why the job last failed (:class:`wheelfarm.errors.FailureCause`), null
otherwise; ``owners`` the recipe's ``package.owners``.
``build --json`` adds ``"toolchain"`` (the executor that built the wheel, or
failed last, of the job's ``build.toolchains``), ``"parity"`` to a job that was
compared with upstream's wheel (see :class:`wheelfarm.build.parity.ParityReport`), and ``"test"``:
``{"status", "note"}``, the status ``"tested"``, ``"built and checked, not run"``
(nothing on the machine runs the target's binaries, e.g. macOS wheels built on
Linux) or ``"no tests"`` (see :mod:`wheelfarm.build.testplaces`), the note where
the tests ran or why not; null for a failed job.
Times are ISO 8601 in UTC; ``ended`` is null while an attempt runs. Kept free
of the database layer so that commands which only plan load quickly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wheelfarm.plan.jobs import Job

SCHEMA = 1


def when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def job_json(key: str, recipe: str, target: str, python: str, state: str,
             tries: Iterable[dict[str, Any]] = (),
             artifact: tuple[str, str] | None = None, *, cause: str | None = None,
             owners: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "key": key, "recipe": recipe, "target": target, "python": python, "state": state,
        "attempts": list(tries),
        "artifact": {"filename": artifact[0], "sha256": artifact[1]} if artifact else None,
        "cause": cause, "owners": list(owners),
    }


def document(job_list: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": SCHEMA, "jobs": list(job_list)}


def planned_job_json(job: Job) -> dict[str, Any]:
    """A job of a plan, not (yet) in a queue: state ``planned``."""
    return job_json(job.key, job.recipe.name, job.target.name, job.python, "planned",
                    owners=job.recipe.owners)
