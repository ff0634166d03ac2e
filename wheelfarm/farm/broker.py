"""Where a worker gets jobs and reports them: the :class:`Broker` protocol the one
worker loop (:mod:`wheelfarm.farm.worker`) talks to. The queue itself
(:mod:`wheelfarm.farm.direct`) and the controller's HTTP API
(:mod:`wheelfarm.farm.remote`) are the two brokers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from wheelfarm.build.outcome import Outcome
from wheelfarm.farm.state import Capabilities, Lease

Report = tuple[Lease, Outcome]
# (worker, capabilities, limit): the next batch a report claims too.
Claim = tuple[str, Capabilities, int]


class Broker(Protocol):
    """Where a worker gets jobs and reports them: the queue itself, or the controller."""

    def register(self, name: str, caps: Capabilities) -> None: ...

    def claim(self, worker: str, caps: Capabilities, limit: int = 1, *,
              start: bool = False) -> list[Lease]:
        """Lease jobs; with ``start``, the instant ones come back started (``running``)."""
        ...

    def heartbeat(self, leases: Sequence[Lease]) -> list[Lease]:
        """Renew the leases; returns the lost ones."""
        ...

    def start(self, leases: Sequence[Lease]) -> list[Lease]:
        """Mark the jobs running; returns the lost ones."""
        ...

    def finish(self, reports: Sequence[Report],
               claim: Claim | None = None) -> tuple[list[Any], list[Lease]]:
        """Record outcomes (None for each refused one: its lease is lost); with
        ``claim``, lease (and start) the next batch at once."""
        ...

    def release(self, lease: Lease, reason: str) -> None: ...

    def outstanding(self, caps: Capabilities) -> int: ...

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` (short) for jobs to become claimable; whether
        they may have (submitted, retried, handed back)."""
        ...

    def deliver(self, lease: Lease, outcome: Outcome) -> Outcome:
        """Make the attempt's log and artifact reachable by the farm (upload them)."""
        ...

    def needs(self, lease: Lease, dest: Path) -> list[str]:
        """Find-links locations holding the wheels the job needs."""
        ...
