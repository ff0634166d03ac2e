"""A worker's side of the controller's HTTP API (the :class:`~wheelfarm.farm.broker.Broker`
of a machine without database access).

Requests that fail to reach the controller are retried for ``patience``
seconds, so a controller restart does not stop its workers; a lease that
expired meanwhile is then refused, as it must be.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from wheelfarm import __version__
from wheelfarm.build import debuginfo
from wheelfarm.build.archive import sha256_file
from wheelfarm.errors import ConfigError, LeaseLost, WheelfarmError
from wheelfarm.farm.apiinput import API, LEASE_HEADER
from wheelfarm.farm.state import Capabilities, Lease, Outcome

log = logging.getLogger(__name__)


class HttpBroker:
    def __init__(self, url: str, token: str, *, patience: float = 120.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--controller {url}: expected an http:// or https:// URL")
        if not token:
            raise ConfigError("a remote worker needs --token (or WHEELFARM_TOKEN)")
        self.url = url.rstrip("/") + API
        self.patience = patience
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"wheelfarm/{__version__}"},
            timeout=httpx.Timeout(60.0, connect=10.0))

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        deadline = time.monotonic() + self.patience
        pause = 0.1
        while True:
            try:
                resp = self.client.request(method, self.url + path, **kw)
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise WheelfarmError(f"controller {self.url} unreachable: {exc}") from None
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            if resp.status_code == 409:
                raise LeaseLost(resp.json().get("error", "lease lost"))
            if resp.status_code == 401:
                raise ConfigError("the controller refused the worker token")
            if resp.status_code >= 500 and time.monotonic() < deadline:
                time.sleep(pause)
                continue
            if resp.status_code >= 400:
                raise WheelfarmError(f"controller: {resp.status_code} {_error(resp)}")
            return resp.json() if resp.headers.get("content-type", "").startswith(
                "application/json") else resp

    def register(self, name: str, caps: Capabilities) -> None:
        self._call("POST", "/register", json={"capabilities": caps.to_dict()})

    def claim(self, worker: str, caps: Capabilities, limit: int = 1, *,
              start: bool = False) -> list[Lease]:
        body = self._call("POST", "/claim", json={"capabilities": caps.to_dict(),
                                                  "limit": limit, "start": start})
        return [Lease.from_dict(d) for d in body["leases"]]

    def heartbeat(self, leases: Sequence[Lease]) -> list[Lease]:
        body = self._call("POST", "/heartbeat", json={"leases": [x.to_dict() for x in leases]})
        lost = set(body["lost"])
        return [x for x in leases if x.job_id in lost]

    def start(self, leases: Sequence[Lease]) -> list[Lease]:
        body = self._call("POST", "/start_many", json={"leases": [x.to_dict() for x in leases]})
        lost = set(body["lost"])
        return [x for x in leases if x.job_id in lost]

    def finish(self, reports: Sequence[tuple[Lease, Outcome]],
               claim: tuple[str, Capabilities, int] | None = None,
               ) -> tuple[list[Any], list[Lease]]:
        doc: dict[str, Any] = {"reports": [{"lease": x.to_dict(), "outcome": o.to_dict()}
                                           for x, o in reports]}
        if claim is not None:
            worker, caps, limit = claim
            doc["claim"] = {"capabilities": caps.to_dict(), "limit": limit, "start": True}
        body = self._call("POST", "/finish_many", json=doc)
        if claim is None:
            return list(body["states"]), []
        if "leases" not in body:  # a controller that reports only: claim on its own
            return list(body["states"]), self.claim(worker, caps, limit, start=True)
        return list(body["states"]), [Lease.from_dict(d) for d in body["leases"]]

    def release(self, lease: Lease, reason: str) -> None:
        self._call("POST", "/release", json={"lease": lease.to_dict(), "reason": reason})

    def outstanding(self, caps: Capabilities) -> int:
        return int(self._call("POST", "/outstanding",
                              json={"capabilities": caps.to_dict()})["count"])

    def wait(self, seconds: float) -> bool:
        time.sleep(seconds)  # no news over HTTP: the worker polls
        return False

    def ship_log(self, lease: Lease, offset: int, data: bytes) -> int:
        """Append what a running attempt's log gained (farm/livelog.py); the
        controller's size of it, which the next shipment starts at."""
        body = self._call("POST", f"/log/{lease.job_id}/{lease.n}", params={"offset": offset},
                          headers={LEASE_HEADER: lease.token}, content=data)
        return int(body["size"])

    def _upload(self, lease: Lease, path: Path) -> str:
        with path.open("rb") as fh:
            # The lease token in a header: a URL ends up in logs and proxies.
            body = self._call("PUT", f"/upload/{lease.job_id}/{lease.n}/{path.name}",
                              headers={LEASE_HEADER: lease.token}, content=fh.read())
        return str(body["location"])

    def deliver(self, lease: Lease, outcome: Outcome) -> Outcome:
        """Upload the log and (for a build) the wheel, then its debug files; the report
        names the new homes of the log and wheel. The controller writes the debug
        files' listing itself, from the wheel it accepted."""
        log_at = outcome.log
        if log_at and Path(log_at).is_file():
            log_at = self._upload(lease, Path(log_at))
        art = outcome.artifact
        if outcome.ok and art is not None and lease.kind == "build":
            wheel = Path(art.location)
            art = replace(art, location=self._upload(lease, wheel))
            self._upload_debug(lease, wheel)
        return replace(outcome, log=log_at, artifact=art)

    def _upload_debug(self, lease: Lease, wheel: Path) -> None:
        """A refused debug file costs its wheel nothing: the wheel ships, only
        without that file (and the worker's log says why)."""
        try:
            files = debuginfo.read_listing(wheel)
        except ConfigError as exc:
            log.warning("%s: debug files not uploaded: %s", wheel.name, exc)
            return
        for f in files:
            try:
                self._upload(lease, f.path)
            except LeaseLost:
                raise
            except WheelfarmError as exc:
                log.warning("%s: debug file %s not uploaded: %s", wheel.name, f.path.name, exc)

    def needs(self, lease: Lease, dest: Path) -> list[str]:
        """Download the wheels the job needs (checking their sha256) into ``dest``."""
        dest.mkdir(parents=True, exist_ok=True)
        for need in lease.spec.get("needs", ()):
            resp = self._call("GET", f"/artifact/{need['key']}")
            path = dest / Path(str(need["filename"])).name
            path.write_bytes(resp.content)
            if sha256_file(path) != need["sha256"]:
                path.unlink()
                raise WheelfarmError(f"{path.name}: downloaded bytes differ from the record")
        return [str(dest)]


def _error(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))
    except ValueError:
        return resp.text[:200]
