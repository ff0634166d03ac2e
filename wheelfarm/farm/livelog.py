"""A running attempt's log, followed while it runs.

A worker on the controller's machine with the database (direct) writes its
attempts' logs where the dashboard reads them. A remote worker ships what its
running attempts' logs gained to the controller about once a second
(:class:`Shipper`); the controller appends it to a file of its own per attempt
(:func:`append`), which the dashboard follows until the attempt ends and its
uploaded log takes over. What a worker sends is only ever text for a page that
escapes it, and only for an attempt whose lease it holds.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from wheelfarm.errors import ConfigError, LeaseLost, WheelfarmError
from wheelfarm.farm.state import Lease

log = logging.getLogger(__name__)
CHUNK = 256 * 1024  # the most one request appends
EVERY = 1.0  # seconds between a worker's shipments


@runtime_checkable
class LogShipping(Protocol):
    """A broker that takes running attempts' logs (the controller's HTTP API)."""

    def ship_log(self, lease: Lease, offset: int, data: bytes) -> int: ...


def direct_path(farm: Path, key: str, n: int) -> Path:
    """Where a direct worker on this machine writes attempt ``n`` of job ``key``."""
    return farm / ".wheelfarm" / "logs" / "jobs" / f"{key[:16]}-{n}.log"


def shipped_path(farm: Path, key: str, n: int) -> Path:
    """Where the controller keeps what a remote worker shipped of that attempt (a
    directory of its own: a worker sharing the farm directory never writes it)."""
    return farm / ".wheelfarm" / "logs" / "live" / f"{key[:16]}-{n}.log"


def append(path: Path, offset: int, data: bytes, limit: int) -> int:
    """Append ``data`` if ``offset`` is the file's size (a repeat or a gap is
    ignored); the file's size after, which the sender continues from. A file
    over ``limit`` bytes takes nothing more."""
    if len(data) > CHUNK:
        raise ConfigError(f"a log chunk is at most {CHUNK} bytes")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    try:
        size = os.fstat(fd).st_size
        if offset != size or not data or size + len(data) > limit:
            return size
        os.write(fd, data)
        return size + len(data)
    finally:
        os.close(fd)


class Shipper:
    """The worker's side: every :data:`EVERY` seconds, what each held attempt's
    log gained since the last shipment, through ``send(lease, offset, data)``,
    which answers the controller's size of it."""

    def __init__(self, send: Callable[[Lease, int, bytes], int],
                 path_of: Callable[[Lease], Path], held: Callable[[], Sequence[Lease]]) -> None:
        self.send = send
        self.path_of = path_of
        self.held = held
        self._offsets: dict[str, int] = {}  # by lease token

    def ship(self) -> None:
        leases = [x for x in self.held() if not x.instant]
        for lease in leases:
            offset = self._offsets.get(lease.token, 0)
            try:
                with self.path_of(lease).open("rb") as fh:
                    fh.seek(offset)
                    data = fh.read(CHUNK)
            except FileNotFoundError:
                continue  # not begun yet
            if not data:
                continue
            try:
                self._offsets[lease.token] = self.send(lease, offset, data)
            except LeaseLost:
                continue  # the attempt ended meanwhile: its uploaded log takes over
        live = {x.token for x in leases}
        for token in [t for t in self._offsets if t not in live]:
            del self._offsets[token]

    def run(self, stopped: threading.Event) -> None:
        while not stopped.wait(EVERY):
            try:
                self.ship()
            except (WheelfarmError, OSError) as exc:  # the next round may get through
                log.warning("live log: %s", exc)
