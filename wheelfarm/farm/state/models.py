"""The values that cross the queue's boundary: what is submitted, leased and reported.

Each converts to and from a JSON-able dict, so that the HTTP API carries the
same values a worker with direct database access gets.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from wheelfarm.build.outcome import Artifact, Outcome
from wheelfarm.errors import ConfigError

__all__ = ["KINDS", "Artifact", "Capabilities", "Lease", "NewJob", "Outcome",
           "host_os", "instant", "target_os"]

KINDS = ("build", "probe")


def host_os() -> str:
    return {"darwin": "macos"}.get(platform.system().lower(), platform.system().lower())


def target_os(target: str) -> str:
    return "macos" if target.startswith("macosx") else "linux"


@dataclass(frozen=True)
class Capabilities:
    """What a worker can run; a job goes only to a worker that has all it needs."""

    os: str
    arch: str
    executors: tuple[str, ...] = ()
    pythons: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    kinds: tuple[str, ...] = KINDS

    def runs(self, pythons: Sequence[str], image: str | None) -> bool:
        """Whether a job with these requirements suits this worker (what the claim
        query checks in SQL, for a job at hand)."""
        return set(pythons) <= set(self.pythons) and (not image or image in self.images)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Capabilities:
        try:
            return cls(
                os=str(data["os"]), arch=str(data["arch"]),
                executors=tuple(map(str, data.get("executors", ()))),
                pythons=tuple(map(str, data.get("pythons", ()))),
                images=tuple(map(str, data.get("images", ()))),
                kinds=tuple(map(str, data.get("kinds", KINDS))),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"bad worker capabilities: {exc}") from None


@dataclass(frozen=True)
class NewJob:
    """A job as submitted. Requirement fields left empty ("") match any worker."""

    key: str
    kind: str
    recipe: str
    target: str
    python: str
    executor: str
    arch: str
    os: str = "linux"
    pythons: tuple[str, ...] = ()  # every interpreter the job runs (build and tests)
    spec: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    priority: int = 0
    max_attempts: int = 3
    timeout: float = 3600.0
    target_limit: int = 0
    image: str | None = None
    owners: tuple[str, ...] = ()  # the recipe's, whom its failures are attributed to


def instant(kind: str, spec: Mapping[str, Any]) -> bool:
    """A job with nothing to wait for or kill (a zero-second probe): a worker runs it
    in its own process the moment it has it, so claiming may start it too."""
    return kind == "probe" and not float(spec.get("seconds", 0))


@dataclass(frozen=True)
class Lease:
    """A claimed job: the ``token`` fences every later report to this attempt."""

    job_id: int
    key: str
    n: int
    token: str
    worker: str
    expires: float
    kind: str
    recipe: str
    target: str
    python: str
    executor: str
    pythons: tuple[str, ...]
    timeout: float
    spec: Mapping[str, Any]
    seconds: float = 30.0  # the lease's length: heartbeats come a third of it apart
    running: bool = False  # started by the claim itself (see Queue.claim's ``start``)

    @property
    def instant(self) -> bool:
        return instant(self.kind, self.spec)

    def to_dict(self) -> dict[str, Any]:
        # Not asdict(): it copies the spec deeply, field by field, and a
        # controller sends and reads thousands of leases a second.
        data = dict(vars(self))
        data["pythons"], data["spec"] = list(self.pythons), dict(self.spec)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lease:
        return cls(**{**data, "pythons": tuple(data["pythons"]), "spec": dict(data["spec"])})


