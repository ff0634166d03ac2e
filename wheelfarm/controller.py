"""The controller: the HTTP API through which remote workers use the queue.

Workers present a per-worker bearer token (``wheelfarm token NAME`` issues
one; only its sha256 is stored). They never see the database URL or any
signing key: they claim, heartbeat, upload a log and an artifact, and
report, and every report is checked against the lease it names. The
controller also reclaims expired leases once a second.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, overload

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from . import index
from .archive import sha256_file
from .errors import ConfigError, WheelfarmError
from .locks import file_lock
from .state import Capabilities, Lease, LeaseLost, Outcome, report
from .state.queue import Queue
from .state.schema import jobs

log = logging.getLogger(__name__)
API = "/api/v1"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+-]{1,200}$")
Handler = Callable[[Request, str], Awaitable[Response]]


TOKEN_TTL = 5.0  # seconds a known token is trusted without asking the database again


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(queue: Queue, name: str) -> str:
    """A new token for worker ``name`` (replacing any earlier one); shown once."""
    if not _SAFE_NAME.match(name):
        raise ConfigError(f"worker name {name!r}: use letters, digits, '.', '_', '+', '-'")
    token = secrets.token_urlsafe(32)
    queue.set_token(name, token_sha256(token))
    return token


class Controller:
    def __init__(self, queue: Queue, farm: Path, wheelhouse: Path) -> None:
        self.queue = queue
        self.farm = farm
        self.wheelhouse = wheelhouse
        self.uploads = farm / ".wheelfarm" / "uploads"
        self._tokens: dict[str, tuple[str, float]] = {}  # token sha256 -> (worker, until)
        self.stopping = threading.Event()

    # -- plumbing -------------------------------------------------------------------------------

    def _worker(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        digest = token_sha256(header[len("Bearer "):].strip())
        now = time.monotonic()
        cached = self._tokens.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        # Asked again after TOKEN_TTL: `wheelfarm token` (another process) may have
        # replaced the token, and a replaced token must stop working.
        name = self.queue.worker_for_token(digest)
        if name is None:
            self._tokens.pop(digest, None)
        else:
            self._tokens[digest] = (name, now + TOKEN_TTL)
        return name

    def _route(self, path: str, handler: Callable[[Request, str], Awaitable[Response]],
               methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            name = await run_in_threadpool(self._worker, request)
            if name is None:
                return JSONResponse({"error": "unknown or missing worker token"}, 401)
            try:
                return await handler(request, name)
            except LeaseLost as exc:
                return JSONResponse({"error": str(exc)}, 409)
            except (WheelfarmError, KeyError, ValueError, TypeError) as exc:
                return JSONResponse({"error": f"bad request: {exc}"}, 400)
        return Route(API + path, endpoint, methods=methods)

    def app(self) -> Starlette:
        return Starlette(routes=[
            self._route("/register", self._register, ["POST"]),
            self._route("/claim", self._claim, ["POST"]),
            self._route("/heartbeat", self._heartbeat, ["POST"]),
            self._route("/start", self._start, ["POST"]),
            self._route("/finish", self._finish, ["POST"]),
            self._route("/start_many", self._start_many, ["POST"]),
            self._route("/finish_many", self._finish_many, ["POST"]),
            self._route("/release", self._release, ["POST"]),
            self._route("/outstanding", self._outstanding, ["POST"]),
            self._route("/upload/{job_id:int}/{n:int}/{filename}", self._upload, ["PUT"]),
            self._route("/artifact/{key}", self._artifact, ["GET"]),
            self._route("/status", self._status, ["GET"]),
        ])

    # -- endpoints ------------------------------------------------------------------------------

    async def _register(self, request: Request, name: str) -> Response:
        caps = Capabilities.from_dict((await request.json())["capabilities"])
        await run_in_threadpool(self.queue.register, name, caps)
        return JSONResponse({"name": name})

    async def _claim(self, request: Request, name: str) -> Response:
        body = await request.json()
        caps = Capabilities.from_dict(body["capabilities"])
        limit = max(1, min(int(body.get("limit", 1)), 100))
        start = bool(body.get("start", False))
        leases = await run_in_threadpool(
            lambda: self.queue.claim(name, caps, limit, start=start))
        return JSONResponse({"leases": [lease.to_dict() for lease in leases]})

    async def _heartbeat(self, request: Request, name: str) -> Response:
        leases = [_own(d, name) for d in (await request.json())["leases"]]
        lost = await run_in_threadpool(self.queue.heartbeat, leases)
        return JSONResponse({"lost": [lease.job_id for lease in lost]})

    async def _start(self, request: Request, name: str) -> Response:
        lease = _own((await request.json())["lease"], name)
        await run_in_threadpool(self.queue.start, lease)
        return JSONResponse({"state": "running"})

    async def _finish(self, request: Request, name: str) -> Response:
        body = await request.json()
        lease = _own(body["lease"], name)
        outcome = Outcome.from_dict(body["outcome"])
        state = await run_in_threadpool(self._record, lease, outcome)
        return JSONResponse({"state": str(state)})

    async def _start_many(self, request: Request, name: str) -> Response:
        leases = [_own(d, name) for d in (await request.json())["leases"]]
        lost = await run_in_threadpool(self.queue.start_many, leases)
        return JSONResponse({"lost": [lease.job_id for lease in lost]})

    async def _finish_many(self, request: Request, name: str) -> Response:
        """Outcomes; with ``claim`` (as the body of /claim), the next batch too, in the
        same transaction."""
        body = await request.json()
        reports = [(_own(r["lease"], name), Outcome.from_dict(r["outcome"]))
                   for r in body["reports"]]
        if "claim" not in body:
            return JSONResponse({"states": await run_in_threadpool(self._record_many, reports)})
        claim = body["claim"]
        caps = Capabilities.from_dict(claim["capabilities"])
        limit = max(1, min(int(claim.get("limit", 1)), 100))
        states, leases = await run_in_threadpool(
            self._record_many, reports, (name, caps, limit, bool(claim.get("start", False))))
        return JSONResponse({"states": states, "leases": [x.to_dict() for x in leases]})

    def _record(self, lease: Lease, outcome: Outcome) -> str:
        [state] = self._record_many([(lease, outcome)])
        if state is None:
            raise LeaseLost(f"job {lease.key[:12]}: the lease is no longer held")
        return state

    @overload
    def _record_many(self, reports: list[tuple[Lease, Outcome]]) -> list[str | None]: ...

    @overload
    def _record_many(self, reports: list[tuple[Lease, Outcome]],
                     claim: tuple[str, Capabilities, int, bool],
                     ) -> tuple[list[str | None], list[Lease]]: ...

    def _record_many(self, reports: list[tuple[Lease, Outcome]],
                     claim: tuple[str, Capabilities, int, bool] | None = None) -> Any:
        """Record outcomes (and, with ``claim``, lease the next batch in the same
        transaction: worker, capabilities, limit, start)."""
        checked = []
        for lease, outcome in reports:
            art = outcome.artifact
            if outcome.ok and art is not None and lease.kind == "build":
                # Only bytes the controller holds and has hashed itself are recorded.
                path = self._upload_dir(lease) / art.filename
                if not path.is_file() or sha256_file(path) != art.sha256:
                    raise WheelfarmError(f"{art.filename}: upload it before reporting success")
                outcome = replace(outcome, artifact=replace(art, location=str(path)))
            checked.append((lease, outcome))
        leases: list[Lease] = []
        if claim is None:
            states = self.queue.finish_many(checked)
        else:
            worker, caps, limit, start = claim
            states, leases = self.queue.finish_and_claim(checked, worker, caps, limit,
                                                         start=start)
        for (lease, outcome), state in zip(checked, states, strict=True):
            if state is not None and outcome.ok and outcome.artifact is not None \
                    and lease.kind == "build":
                self._publish(Path(outcome.artifact.location))
        found = [str(state) if state is not None else None for state in states]
        return found if claim is None else (found, leases)

    def _publish(self, wheel: Path) -> None:
        self.wheelhouse.mkdir(parents=True, exist_ok=True)
        with file_lock(self.wheelhouse / ".wheelfarm-lock"):
            tmp = self.wheelhouse / f".incoming-{wheel.name}"
            shutil.copyfile(wheel, tmp)
            os.replace(tmp, self.wheelhouse / wheel.name)
            index.write_simple_index(self.wheelhouse)

    async def _release(self, request: Request, name: str) -> Response:
        body = await request.json()
        await run_in_threadpool(self.queue.release, _own(body["lease"], name),
                                str(body.get("reason", "handed back")))
        return JSONResponse({"state": "pending"})

    async def _outstanding(self, request: Request, name: str) -> Response:
        caps = Capabilities.from_dict((await request.json())["capabilities"])
        return JSONResponse({"count": await run_in_threadpool(self.queue.outstanding, caps)})

    def _upload_dir(self, lease: Lease) -> Path:
        return self.uploads / f"{lease.key[:16]}-{lease.n}"

    async def _upload(self, request: Request, name: str) -> Response:
        filename = request.path_params["filename"]
        if not _SAFE_NAME.match(filename) or filename.startswith("."):
            raise ConfigError(f"bad file name {filename!r}")
        job_id, n = request.path_params["job_id"], request.path_params["n"]
        token = request.query_params.get("lease", "")
        row = await run_in_threadpool(self._held_job, job_id, n, token, name)
        lease_dir = self.uploads / f"{row.key[:16]}-{n}"
        lease_dir.mkdir(parents=True, exist_ok=True)
        tmp = lease_dir / f".part-{filename}"
        with tmp.open("wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
        os.replace(tmp, lease_dir / filename)
        return JSONResponse({"location": str(lease_dir / filename),
                             "sha256": sha256_file(lease_dir / filename)})

    def _held_job(self, job_id: int, n: int, token: str, name: str) -> Any:
        with self.queue.engine.begin() as conn:
            row = conn.execute(select(jobs).where(
                jobs.c.id == job_id, jobs.c.attempts == n, jobs.c.lease == token,
                jobs.c.worker == name)).first()
        if row is None:
            raise LeaseLost(f"job {job_id} attempt {n}: the lease is not held by {name}")
        return row

    async def _artifact(self, request: Request, name: str) -> Response:
        key = request.path_params["key"]
        location = await run_in_threadpool(self._artifact_location, key)
        if location is None:
            return JSONResponse({"error": f"no artifact for job {key}"}, 404)
        path = Path(location).resolve()
        if not path.is_relative_to(self.farm.resolve()) or not path.is_file():
            return JSONResponse({"error": f"the artifact of job {key} is not here"}, 404)
        return FileResponse(path, filename=path.name)

    def _artifact_location(self, key: str) -> str | None:
        with self.queue.engine.begin() as conn:
            found = conn.execute(select(jobs.c.artifact_location).where(
                jobs.c.key == key, jobs.c.state == "succeeded")).scalar()
        return str(found) if found else None

    async def _status(self, request: Request, name: str) -> Response:
        found = await run_in_threadpool(report.queue_jobs, self.queue)
        return JSONResponse(report.document(found))

    # -- running --------------------------------------------------------------------------------

    def reclaim_forever(self, every: float = 1.0) -> None:
        while not self.stopping.wait(every):
            try:
                if taken := self.queue.reclaim():
                    log.info("reclaimed %d job(s) whose lease expired", taken)
            except Exception as exc:  # the database may be restarting; try again later
                log.warning("reclaim failed: %s", exc)


def _own(data: dict[str, Any], name: str) -> Lease:
    """A lease as a worker sent it, attributed to the worker its token names."""
    return Lease.from_dict({**data, "worker": name})


def serve(controller: Controller, host: str, port: int) -> None:
    import uvicorn

    reclaimer = threading.Thread(target=controller.reclaim_forever, daemon=True,
                                 name="reclaim")
    reclaimer.start()
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
