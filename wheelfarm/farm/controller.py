"""The controller: the HTTP API through which remote workers use the queue.

Workers present a per-worker bearer token (``wheelfarm token NAME`` issues
one; only its sha256 is stored). They never see the database URL or any
signing key: they claim, heartbeat, upload a log and an artifact, and
report, and every report is checked against the lease it names. The
controller also reclaims expired leases once a second.

Workers are not trusted (docs/security.md): a worker speaks only about its
own lease (the controller reads the lease's job, attempt and kind from the
database, never from the request), every file path is the controller's own
(derived from the job's key), an uploaded wheel is checked to be the job's
own sound wheel before it is accepted, and request bodies and uploads have
size limits.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from wheelfarm.build.archive import sha256_file
from wheelfarm.build.wheelcheck import Expected, check_name, check_sound, expected_of
from wheelfarm.errors import (
    ConfigError,
    LeaseLost,
    TooLarge,
    WheelChanged,
    WheelfarmError,
    needs_extra,
)
from wheelfarm.farm import debugupload, livelog, tokens
from wheelfarm.farm.apiinput import (
    API,
    LEASE_HEADER,
    MAX_BODY,
    MAX_UPLOAD,
    as_capabilities,
    as_list,
    as_object,
    as_outcome,
    claim_limit,
    error,
    read_body,
    read_json,
    receive,
    resolve_leases,
)
from wheelfarm.farm.dashboard import Dashboard
from wheelfarm.farm.state import Artifact, Capabilities, Lease, Outcome, report
from wheelfarm.farm.state.queue import Queue
from wheelfarm.farm.wheelhouse import Debug, Wheelhouse

with needs_extra("farm", "the controller"):
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

if TYPE_CHECKING:
    from wheelfarm.farm.indexview import IndexView

log = logging.getLogger(__name__)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+-]{1,200}$")
Handler = Callable[[Request, str], Awaitable[Response]]
JOB_LOG = "job.log"  # an attempt's uploaded log, whatever the worker called it


TOKEN_TTL = 5.0  # seconds a known token is trusted without asking the database again


def issue_token(queue: Queue, name: str) -> str:
    """A new token for worker ``name`` (replacing any earlier one); shown once."""
    return tokens.issue("worker", name, queue.set_token)


class Controller:
    def __init__(self, queue: Queue, farm: Path, wheelhouse: Path, *,
                 max_body: int = MAX_BODY, max_upload: int = MAX_UPLOAD,
                 index: IndexView | None = None) -> None:
        self.queue = queue
        self.index = index  # the published index, for the dashboard
        self.farm = farm
        self.wheelhouse = wheelhouse
        self.max_body = max_body
        self.max_upload = max_upload
        self.uploads = farm / ".wheelfarm" / "uploads"
        self._bearer = tokens.Bearer(queue.worker_for_token, TOKEN_TTL)
        self.stopping = threading.Event()
        # Loops run beside the API until it stops (the webhook notifier).
        self.background: list[Callable[[threading.Event], None]] = []

    # -- plumbing -------------------------------------------------------------------------------

    def _worker(self, request: Request) -> str | None:
        return self._bearer.name(request.headers.get("authorization", ""))

    def _route(self, path: str, handler: Callable[[Request, str], Awaitable[Response]],
               methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            name = await run_in_threadpool(self._worker, request)
            if name is None:
                return JSONResponse({"error": "unknown or missing worker token"}, 401)
            try:
                return await handler(request, name)
            except LeaseLost as exc:
                return error(409, str(exc))
            except TooLarge as exc:
                return error(413, str(exc))
            except WheelfarmError as exc:
                return error(400, str(exc))
            except KeyError as exc:
                return error(400, f"bad request: missing field {exc}")
            except (ValueError, TypeError, AttributeError, OverflowError) as exc:
                return error(400, f"bad request: {exc}")
        return Route(API + path, endpoint, methods=methods)

    async def _json(self, request: Request) -> dict[str, Any]:
        return await read_json(request, self.max_body)

    def _leases(self, name: str, items: Any) -> list[Lease]:
        return resolve_leases(self.queue, name, items)

    def _lease(self, name: str, item: Any) -> Lease:
        [lease] = self._leases(name, [item])
        return lease

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
            self._route("/log/{job_id:int}/{n:int}", self._live_log, ["POST"]),
            self._route("/artifact/{key}", self._artifact, ["GET"]),
            self._route("/status", self._status, ["GET"]),
            # The dashboard and /metrics (farm/dashboard.py): read without a token.
            *Dashboard(self.queue, self.index, farm=self.farm).routes(),
        ])

    # -- endpoints ------------------------------------------------------------------------------

    async def _register(self, request: Request, name: str) -> Response:
        caps = as_capabilities((await self._json(request)).get("capabilities"))
        await run_in_threadpool(self.queue.register, name, caps)
        return JSONResponse({"name": name})

    async def _claim(self, request: Request, name: str) -> Response:
        body = await self._json(request)
        caps = as_capabilities(body.get("capabilities"))
        limit = claim_limit(body.get("limit", 1))
        start = body.get("start", False) is True
        leases = await run_in_threadpool(
            lambda: self.queue.claim(name, caps, limit, start=start))
        return JSONResponse({"leases": [lease.to_dict() for lease in leases]})

    async def _heartbeat(self, request: Request, name: str) -> Response:
        items = (await self._json(request)).get("leases")
        leases = await run_in_threadpool(self._leases, name, items)
        lost = await run_in_threadpool(self.queue.heartbeat, leases)
        return JSONResponse({"lost": [lease.job_id for lease in lost]})

    async def _start(self, request: Request, name: str) -> Response:
        lease = await run_in_threadpool(self._lease, name, (await self._json(request))["lease"])
        await run_in_threadpool(self.queue.start, lease)
        return JSONResponse({"state": "running"})

    async def _finish(self, request: Request, name: str) -> Response:
        body = await self._json(request)
        outcome = as_outcome(body.get("outcome"))
        lease = await run_in_threadpool(self._lease, name, body.get("lease"))
        state = await run_in_threadpool(self._record, lease, outcome)
        return JSONResponse({"state": str(state)})

    async def _start_many(self, request: Request, name: str) -> Response:
        items = (await self._json(request)).get("leases")
        leases = await run_in_threadpool(self._leases, name, items)
        lost = await run_in_threadpool(self.queue.start_many, leases)
        return JSONResponse({"lost": [lease.job_id for lease in lost]})

    async def _finish_many(self, request: Request, name: str) -> Response:
        """Outcomes; with ``claim`` (as the body of /claim), the next batch too, in the
        same transaction."""
        body = await self._json(request)
        items = [as_object(r, "report") for r in as_list(body.get("reports"), "reports")]
        outcomes = [as_outcome(r.get("outcome")) for r in items]
        leases = await run_in_threadpool(self._leases, name, [r.get("lease") for r in items])
        reports = list(zip(leases, outcomes, strict=True))
        if "claim" not in body:
            return JSONResponse({"states": await run_in_threadpool(self._record_many, reports)})
        claim = as_object(body["claim"], "claim")
        caps = as_capabilities(claim.get("capabilities"))
        limit = claim_limit(claim.get("limit", 1))
        states, leases = await run_in_threadpool(
            self._record_many, reports, (name, caps, limit, claim.get("start", False) is True))
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
        checked = [(lease, self._checked(lease, outcome)) for lease, outcome in reports]
        leases: list[Lease] = []
        if claim is None:
            states = self.queue.finish_many(checked)
        else:
            worker, caps, limit, start = claim
            states, leases = self.queue.finish_and_claim(checked, worker, caps, limit,
                                                         start=start)
        for (lease, outcome), state in zip(checked, states, strict=True):
            if outcome.log is not None:  # the uploaded log takes over from the shipped
                livelog.shipped_path(self.farm, lease.key, lease.n).unlink(missing_ok=True)
            if state is not None and outcome.ok and outcome.artifact is not None \
                    and lease.kind == "build":
                self._publish(Path(outcome.artifact.location), outcome.artifact.sha256)
        found = [str(state) if state is not None else None for state in states]
        return found if claim is None else (found, leases)

    def _checked(self, lease: Lease, outcome: Outcome) -> Outcome:
        """The outcome as the controller records it: every path in it the
        controller's own, derived from the lease's job (the worker's are dropped);
        a build's success only with the job's own wheel, uploaded and checked."""
        where = self._upload_dir(lease)
        log_at = str(where / JOB_LOG) if (where / JOB_LOG).is_file() else None
        art = outcome.artifact
        if lease.kind != "build":
            # A probe's file stays with its worker: recorded by name and hash, no path.
            art = replace(art, location="") if art is not None else None
        elif not outcome.ok:
            art = None
        else:
            if art is None:
                raise ConfigError(f"job {lease.key[:12]}: a build's success names its wheel")
            if not _SAFE_NAME.match(art.filename) or art.filename.startswith("."):
                raise ConfigError(f"bad wheel file name {art.filename!r}")
            check_name(art.filename, self._expected(lease.job_id))
            # Only bytes the controller holds, has checked and has hashed itself count.
            path = where / art.filename
            if not path.is_file() or sha256_file(path) != art.sha256:
                raise ConfigError(f"{art.filename}: upload it before reporting success")
            art = Artifact(art.filename, art.sha256, str(path))
        return replace(outcome, log=log_at, artifact=art)

    def _expected(self, job_id: int) -> Expected:
        """What the job's wheel must be, from the recipe text it was submitted with."""
        row = self.queue.submitted(job_id)
        if row is None:
            raise LeaseLost(f"job {job_id}: no such job")
        return expected_of(job_id, row.spec, row.python, row.target)

    def _publish(self, wheel: Path, sha256: str) -> None:
        """Copy an accepted wheel into the wheelhouse: the recorded bytes only."""
        try:
            debug = debugupload.checked(wheel, wheel.name, wheel.parent)
        except WheelfarmError as exc:
            log.error("%s: debug files not published: %s", wheel.name, exc)
            debug = []
        try:
            # The sha256 is checked again on the copy that is renamed into place.
            Wheelhouse(self.wheelhouse).add(wheel, debug=Debug(debug, once=True), sha256=sha256)
        except WheelChanged:
            log.error("%s changed after it was recorded; not published", wheel.name)

    async def _release(self, request: Request, name: str) -> Response:
        body = await self._json(request)
        reason = body.get("reason", "handed back")
        if not isinstance(reason, str):
            raise ConfigError("bad request: reason: expected a string")
        lease = await run_in_threadpool(self._lease, name, body.get("lease"))
        await run_in_threadpool(self.queue.release, lease, reason[:2000])
        return JSONResponse({"state": "pending"})

    async def _outstanding(self, request: Request, name: str) -> Response:
        caps = as_capabilities((await self._json(request)).get("capabilities"))
        return JSONResponse({"count": await run_in_threadpool(self.queue.outstanding, caps)})

    def _upload_dir(self, lease: Lease) -> Path:
        return self.uploads / f"{lease.key[:16]}-{lease.n}"

    async def _upload(self, request: Request, name: str) -> Response:
        """An attempt's log (kept as ``job.log``) or, for a build, its wheel, which
        must be the job's own sound wheel (name, zip, RECORD) to be kept at all, or
        after it a debug file of one of that wheel's modules (``<build-id>.debug``)."""
        if "lease" in request.query_params:
            raise ConfigError(f"send the lease token in the {LEASE_HEADER} header, "
                              "never in the URL")
        filename = request.path_params["filename"]
        if not _SAFE_NAME.match(filename) or filename.startswith("."):
            raise ConfigError(f"bad file name {filename!r}")
        job_id, n = request.path_params["job_id"], request.path_params["n"]
        token = request.headers.get(LEASE_HEADER, "")
        row = await run_in_threadpool(self._held_job, job_id, n, token, name)
        build_id = None
        if filename.endswith(".log"):
            dest_name = JOB_LOG
        elif filename.endswith(".whl") and row.kind == "build":
            check_name(filename, await run_in_threadpool(self._expected, row.id))
            dest_name = filename
        elif filename.endswith(debugupload.SUFFIX) and row.kind == "build":
            build_id = debugupload.build_id_of_name(filename)
            dest_name = f"{debugupload.UPLOAD_DIR}/{build_id}{debugupload.SUFFIX}"
        else:
            raise ConfigError(f"{filename}: upload the attempt's log (*.log) or, for a "
                              "build, its wheel (*.whl) and debug files (*.debug)")
        lease_dir = self.uploads / f"{row.key[:16]}-{n}"
        (lease_dir / debugupload.UPLOAD_DIR if build_id else lease_dir).mkdir(
            parents=True, exist_ok=True)
        # Received under its own name in a directory of its own, so that the checks
        # read the wheel's name, and a refused or cut-off upload never lands.
        part = lease_dir / f".part-{secrets.token_hex(8)}"
        part.mkdir()
        tmp = part / Path(dest_name).name
        try:
            await receive(request, tmp, self.max_upload)
            if build_id is not None:
                await run_in_threadpool(debugupload.check_upload, tmp, build_id, lease_dir,
                                        self.wheelhouse)
            elif dest_name != JOB_LOG:
                await run_in_threadpool(check_sound, tmp)
            os.replace(tmp, lease_dir / dest_name)
        finally:
            shutil.rmtree(part, ignore_errors=True)
        return JSONResponse({"location": dest_name,
                             "sha256": sha256_file(lease_dir / dest_name)})

    async def _live_log(self, request: Request, name: str) -> Response:
        """What a running attempt's log gained, at ``offset`` (farm/livelog.py)."""
        offset = request.query_params.get("offset", "")
        if not offset.isdigit():
            raise ConfigError("offset: the byte count the chunk starts at")
        job_id, n = request.path_params["job_id"], request.path_params["n"]
        row = await run_in_threadpool(self._held_job, job_id, n,
                                      request.headers.get(LEASE_HEADER, ""), name)
        data = await read_body(request, livelog.CHUNK, "a log chunk")
        size = await run_in_threadpool(livelog.append, livelog.shipped_path(self.farm, row.key, n),
                                       int(offset), data, self.max_upload)
        return JSONResponse({"size": size})

    def _held_job(self, job_id: int, n: int, token: str, name: str) -> Any:
        row = self.queue.held_job(job_id, n, token, name)
        if row is None:
            raise LeaseLost(f"job {job_id} attempt {n}: the lease is not held by {name}")
        return row

    async def _artifact(self, request: Request, name: str) -> Response:
        key = request.path_params["key"]
        path = await run_in_threadpool(self._artifact_path, key)
        if path is None:
            return error(404, f"no artifact for job {key}")
        return FileResponse(path, filename=path.name)

    def _artifact_path(self, key: str) -> Path | None:
        """A succeeded build's wheel, where the controller keeps it: the path is
        made from the job's key, attempt and checked file name, never read back
        from what a worker reported."""
        row = self.queue.built(key)
        if row is None or not row.artifact_filename:
            return None
        name = str(row.artifact_filename)
        if not _SAFE_NAME.match(name) or name.startswith("."):
            return None
        # Uploaded to this controller, or (built by a worker with direct database
        # access) copied into the wheelhouse; either way the recorded bytes only.
        for path in (self.uploads / f"{row.key[:16]}-{row.attempts}" / name,
                     self.wheelhouse / name):
            if path.is_file() and sha256_file(path) == row.artifact_sha256:
                return path
        return None

    async def _status(self, request: Request, name: str) -> Response:
        found = await run_in_threadpool(report.queue_jobs, self.queue)
        return JSONResponse(report.document(found))
