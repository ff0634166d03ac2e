"""A job's life: its states, the legal moves between them, and the retry rule.

```
pending ─claim─▶ leased ─start─▶ running ─▶ succeeded | failed | cancelled
   ▲               │                │
   └── release / lease lost / failure with attempts left (after a backoff)
failed | cancelled ─retry (by an operator)─▶ pending
```

The storage layer applies every move as a conditional update whose
``WHERE state IN (...)`` comes from :data:`ALLOWED`, so an illegal move
changes nothing, whoever attempts it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wheelfarm.errors import FailureKind


class JobState(enum.StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.LEASED, JobState.CANCELLED, JobState.FAILED}),
    JobState.LEASED: frozenset({JobState.RUNNING, JobState.PENDING, JobState.FAILED,
                                JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.PENDING,
                                 JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset({JobState.PENDING}),
    JobState.CANCELLED: frozenset({JobState.PENDING}),
}
ACTIVE = frozenset({JobState.LEASED, JobState.RUNNING})
FINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


def sources(to: JobState, among: frozenset[JobState] | None = None) -> list[str]:
    """The states a job may be in for a move to ``to`` (optionally narrowed)."""
    found = [s for s, targets in ALLOWED.items() if to in targets]
    return sorted(s.value for s in found if among is None or s in among)


MAX_BACKOFF = 600.0


@dataclass(frozen=True)
class Decision:
    retry: bool
    delay: float  # seconds before the job may be claimed again
    reason: str


def decide(failures: int, max_attempts: int, kind: FailureKind | None, reason: str, *,
           backoff: float) -> Decision:
    """What to do after a failed attempt; ``failures`` counts this one.

    A transient failure (:attr:`FailureKind.transient`) is retried while
    attempts remain, each time waiting twice as long as the last; a failure of
    the build itself (build, repair, test ...) is final at once, because the
    content key pins every input and a second try would fail the same way. So
    is a kind this version does not know (None).
    """
    if kind is None or not kind.transient:
        return Decision(False, 0.0, reason)
    if failures >= max_attempts:
        return Decision(False, 0.0, f"{reason} (attempt {failures} of {max_attempts})")
    delay = min(MAX_BACKOFF, backoff * 2 ** (failures - 1))
    return Decision(True, delay, reason)
