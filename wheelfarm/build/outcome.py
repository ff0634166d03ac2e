"""One attempt's result, the one shape it has from the pipeline to the queue.

The pipeline returns it (inside a :class:`JobResult`, with its job),
a worker's job process writes it to ``result.json`` (:meth:`Outcome.to_json`),
the worker reads it back and reports it, over HTTP too (:meth:`Outcome.to_dict`),
and the queue records it. Nothing here imports more than the error tree: a
job's process and the queue's models load it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from wheelfarm.errors import FailureCause, FailureKind

if TYPE_CHECKING:
    from wheelfarm.build.parity import ParityReport
    from wheelfarm.plan.jobs import Job

RESULT_FORMAT = 2  # of result.json; 1 (unnumbered) had no duration, a "pipeline_log"
Status = Literal["ok", "cached", "failed"]


@dataclass(frozen=True)
class Artifact:
    filename: str
    sha256: str
    location: str = ""  # where the bytes are, for the farm (a path under the farm)


@dataclass(frozen=True)
class Outcome:
    """One attempt: a success names its artifact, a failure its kind and reason.

    ``cached`` (the key was built before: nothing ran) and ``started_at`` (wall
    clock, for reports) matter to a local build's report only; the queue and
    the HTTP API carry the rest.
    """

    ok: bool
    duration: float
    kind: FailureKind | None = None
    reason: str = ""
    log: str | None = None
    artifact: Artifact | None = None
    cached: bool = False
    started_at: float = 0.0
    cause: FailureCause | None = None  # why, for people (see wheelfarm.build.causes)

    @classmethod
    def failed(cls, kind: FailureKind, reason: str, duration: float = 0.0,
               log: str | None = None, cause: FailureCause | None = None) -> Outcome:
        return cls(False, duration, kind, reason, log, cause=cause)

    def with_run(self, duration: float, log: str | None) -> Outcome:
        """The same result, timed and logged by whoever ran the attempt."""
        return replace(self, duration=duration, log=log)

    def to_dict(self) -> dict[str, Any]:
        """The report a worker sends (see ``apiinput.as_outcome``)."""
        return {"ok": self.ok, "duration": self.duration,
                "kind": self.kind.value if self.kind else "", "reason": self.reason,
                "cause": self.cause.value if self.cause else "", "log": self.log,
                "artifact": asdict(self.artifact) if self.artifact else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        art = data.get("artifact")
        return cls(ok=bool(data["ok"]), duration=float(data.get("duration", 0.0)),
                   kind=FailureKind.parse(str(data.get("kind") or "")),
                   reason=str(data.get("reason", "")), log=data.get("log"),
                   cause=FailureCause.parse(str(data.get("cause") or "")),
                   artifact=Artifact(**art) if art else None,
                   cached=bool(data.get("cached", False)),
                   started_at=float(data.get("started_at", 0.0)))

    def to_json(self) -> str:
        """``result.json``: what a job's process hands its worker."""
        return json.dumps({"format": RESULT_FORMAT, **self.to_dict(), "cached": self.cached,
                           "started_at": self.started_at})

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class JobResult:
    """A job and its :class:`Outcome` (what travels on to the queue), with what
    only a report shows: the end of a failure's log, the comparison with upstream."""

    job: Job
    outcome: Outcome
    tail: str = ""  # the end of the log, for a failure
    parity: ParityReport | None = None  # the comparison with upstream's wheel
    # build.testplaces' TESTED, NOT_RUN (nothing here runs the target's binaries) or
    # NO_TESTS, and where the tests ran or why they did not; "" for a failure.
    test_status: str = ""
    test_note: str = ""
    toolchain: str = ""  # the executor that built the wheel (or failed last)

    @property
    def status(self) -> Status:
        return "cached" if self.outcome.cached else "ok" if self.outcome.ok else "failed"

    @property
    def seconds(self) -> float:
        return self.outcome.duration

    @property
    def log(self) -> Path:
        return Path(self.outcome.log or "")

    @property
    def wheel(self) -> Path | None:
        art = self.outcome.artifact
        return Path(art.location) if art is not None else None

    @property
    def step(self) -> FailureKind | None:
        """The failing step (or why the job never ran: needs, interrupted ...)."""
        return self.outcome.kind

    @property
    def cause(self) -> FailureCause | None:
        return self.outcome.cause

    @property
    def message(self) -> str:
        return self.outcome.reason

    @property
    def started_at(self) -> float:
        return self.outcome.started_at  # wall clock (time.time()), for reports
