"""Running the controller: uvicorn serving its app, beside the loops that keep
the farm moving (reclaiming expired leases, the controller's background work
such as delivering notifications); and waiting, in tests and scripts, until it
answers."""

from __future__ import annotations

import logging
import threading
import time

from wheelfarm.errors import WheelfarmError, needs_extra
from wheelfarm.farm.apiinput import API
from wheelfarm.farm.controller import Controller

log = logging.getLogger("wheelfarm.farm.controller")


def reclaim_forever(controller: Controller, every: float = 1.0) -> None:
    """Give back the jobs of workers that went silent, until the controller stops."""
    while not controller.stopping.wait(every):
        try:
            if taken := controller.queue.reclaim():
                log.info("reclaimed %d job(s) whose lease expired", taken)
        except Exception as exc:  # the database may be restarting; try again later
            log.warning("reclaim failed: %s", exc)


def serve(controller: Controller, host: str, port: int) -> None:
    with needs_extra("farm", "the controller"):
        import uvicorn

    reclaimer = threading.Thread(target=reclaim_forever, args=(controller,), daemon=True,
                                 name="reclaim")
    reclaimer.start()
    for loop in controller.background:
        threading.Thread(target=loop, args=(controller.stopping,), daemon=True,
                         name=getattr(loop, "__name__", "background")).start()
    try:
        uvicorn.run(controller.app(), host=host, port=port, log_level="warning",
                    access_log=False)
    finally:
        controller.stopping.set()


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    """For tests and scripts: block until the controller answers."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url.rstrip("/") + API + "/status", timeout=2.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise WheelfarmError(f"controller at {url} did not come up") from None
            time.sleep(0.1)
