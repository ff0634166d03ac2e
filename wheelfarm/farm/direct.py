"""The broker of a worker on a machine that reaches the farm's database (and its files)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wheelfarm.errors import WheelfarmError
from wheelfarm.farm.state import Capabilities, Lease, Outcome

if TYPE_CHECKING:
    from wheelfarm.farm.state.queue import Queue

T = TypeVar("T")


class DirectBroker:
    """A worker on a machine that reaches the farm's database (and its files).

    A database that goes away (a restart, the network) is a WheelfarmError
    for the worker loop, which waits and tries again; the leases meanwhile
    run out as they would for any worker that vanished.
    """

    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        from sqlalchemy.exc import DBAPIError

        try:
            return fn(*args)
        except DBAPIError as exc:
            raise WheelfarmError(f"state database: {str(exc.orig).strip()}") from exc

    def register(self, name: str, caps: Capabilities) -> None:
        self._call(self.queue.register, name, caps)

    def claim(self, worker: str, caps: Capabilities, limit: int = 1, *,
              start: bool = False) -> list[Lease]:
        return self._call(lambda: self.queue.claim(worker, caps, limit, start=start))

    def heartbeat(self, leases: Sequence[Lease]) -> list[Lease]:
        return self._call(self.queue.heartbeat, leases)

    def start(self, leases: Sequence[Lease]) -> list[Lease]:
        return self._call(self.queue.start_many, leases)

    def finish(self, reports: Sequence[tuple[Lease, Outcome]],
               claim: tuple[str, Capabilities, int] | None = None,
               ) -> tuple[list[Any], list[Lease]]:
        if claim is None:
            return self._call(self.queue.finish_many, reports), []
        worker, caps, limit = claim
        return self._call(lambda: self.queue.finish_and_claim(reports, worker, caps, limit,
                                                              start=True))

    def release(self, lease: Lease, reason: str) -> None:
        self._call(self.queue.release, lease, reason)

    def outstanding(self, caps: Capabilities) -> int:
        return self._call(self.queue.outstanding, caps)

    def wait(self, seconds: float) -> bool:
        return self.queue.wait(seconds)

    def deliver(self, lease: Lease, outcome: Outcome) -> Outcome:
        return outcome  # the log and the artifact are already files of the farm

    def needs(self, lease: Lease, dest: Path) -> list[str]:
        return sorted({str(Path(n["location"]).parent) for n in lease.spec.get("needs", ())
                       if n.get("location")})
