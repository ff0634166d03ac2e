"""How the controller reads what a worker sends: every field of the type it
must have, bodies and uploads no larger than their limits, and leases named
by job and token only, everything else about them read from the queue.

Workers are not trusted (docs/security.md): odd input is answered with one
clear 4xx line, never a 500 and a traceback.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from wheelfarm.errors import (
    ConfigError,
    FailureCause,
    FailureKind,
    LeaseLost,
    TooLarge,
    needs_extra,
)
from wheelfarm.farm.state import Artifact, Capabilities, Lease, Outcome
from wheelfarm.farm.state.sql import lease_of

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from wheelfarm.farm.state.queue import Queue

API = "/api/v1"  # the path prefix of the controller's API, which workers speak
LEASE_HEADER = "X-Wheelfarm-Lease"  # the lease token of an upload: never in a URL
MAX_BODY = 16 * 1024**2  # bytes of a JSON request (a batch of a thousand reports fits)
MAX_UPLOAD = 4 * 1024**3  # bytes of an uploaded log or wheel


def error(status: int, message: str) -> JSONResponse:
    """One clear line, whatever the exception said."""
    with needs_extra("farm", "the controller"):
        from starlette.responses import JSONResponse

    return JSONResponse({"error": " ".join(message.split())[:500]}, status)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request's body: a JSON object of at most ``limit`` bytes."""
    data = await read_body(request, limit, "request body")
    try:
        body = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"bad request: the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ConfigError("bad request: the body must be a JSON object")
    return body


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not a number JSON allows")


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"bad request: {what}: expected an object")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"bad request: {what}: expected a list")
    return value


def claim_limit(value: Any) -> int:
    if not is_whole(value):
        raise ConfigError("bad request: limit: expected a whole number")
    return max(1, min(int(value), 100))


def as_capabilities(value: Any) -> Capabilities:
    data = as_object(value, "capabilities")
    for key in ("executors", "pythons", "images", "kinds"):
        if key in data and not (isinstance(data[key], list)
                                and all(isinstance(x, str) for x in data[key])):
            raise ConfigError(f"bad request: capabilities: {key}: expected a list of strings")
    for key in ("os", "arch"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"bad request: capabilities: {key}: expected a string")
    return Capabilities.from_dict(data)


def as_outcome(value: Any) -> Outcome:
    """A worker's outcome, each field of the type it must have; paths in it are
    ignored later (see Controller._checked)."""
    data = as_object(value, "outcome")
    duration = data.get("duration")
    if not isinstance(data.get("ok"), bool):
        raise ConfigError("bad request: outcome: ok: expected true or false")
    if isinstance(duration, bool) or not isinstance(duration, int | float) \
            or not 0 <= duration < 1e9:
        raise ConfigError("bad request: outcome: duration: expected seconds")
    for key in ("kind", "reason", "cause"):
        if not isinstance(data.get(key, ""), str):
            raise ConfigError(f"bad request: outcome: {key}: expected a string")
    art = data.get("artifact")
    if art is not None:
        art = as_object(art, "outcome: artifact")
        if not all(isinstance(art.get(k, ""), str) for k in ("filename", "sha256", "location")) \
                or not isinstance(art.get("filename"), str) or set(art) - {
                    "filename", "sha256", "location"}:
            raise ConfigError("bad request: outcome: artifact: expected filename, sha256 "
                              "(and location) strings")
    kind = data.get("kind", "")
    if kind and FailureKind.parse(kind) is None:
        raise ConfigError(f"bad request: outcome: kind: {kind[:100]!r} is none of "
                          f"{', '.join(k.value for k in FailureKind)}")
    cause = data.get("cause", "")
    if cause and FailureCause.parse(cause) is None:
        raise ConfigError(f"bad request: outcome: cause: {cause[:100]!r} is none of "
                          f"{', '.join(c.value for c in FailureCause)}")
    return Outcome(ok=data["ok"], duration=float(duration), kind=FailureKind.parse(kind),
                   reason=data.get("reason", "")[:4000], cause=FailureCause.parse(cause),
                   artifact=Artifact(art["filename"], str(art.get("sha256", "")))
                   if art is not None else None)


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request's body, at most ``limit`` bytes (TooLarge: 413 beyond)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{what} over the limit of {limit} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"{what} over the limit of {limit} bytes")
    return bytes(data)


async def receive(request: Request, dest: Path, limit: int) -> None:
    """Stream the request's body into ``dest``, at most ``limit`` bytes of it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"upload over the limit of {limit} bytes")
    size = 0
    with dest.open("wb") as fh:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"upload over the limit of {limit} bytes")
            fh.write(chunk)


def resolve_leases(queue: Queue, name: str, items: Any) -> list[Lease]:
    """The leases a worker names, as the database knows them: a worker says
    which lease (job and token), never what it is (key, attempt, kind).

    A lease held by another worker is refused (LeaseLost: 409); one that is
    no longer held at all is returned, for the queue to refuse (it logs
    ``result-refused``) or report lost, as it does for its own workers.
    """
    wanted: list[tuple[int, str, Any]] = []
    for item in as_list(items, "leases"):
        data = as_object(item, "lease")
        job_id, token = data.get("job_id"), data.get("token")
        if not is_whole(job_id) or not isinstance(token, str):
            raise ConfigError("bad request: a lease names its job_id (a number) "
                              "and token (a string)")
        wanted.append((cast(int, job_id), token, data.get("n")))
    if not wanted:
        return []
    rows = queue.lease_rows([j for j, _, _ in wanted])
    found: list[Lease] = []
    for job_id, token, n in wanted:
        row = rows.get(job_id)
        if row is None:
            raise LeaseLost(f"job {job_id}: no such job")
        if row.lease == token and row.worker != name:
            raise LeaseLost(f"job {row.key[:12]}: the lease is not held by {name}")
        lease = replace(lease_of(cast(Any, row), token), worker=name)
        if row.lease != token and is_whole(n):
            lease = replace(lease, n=n)  # a stale attempt's own number, for the event log
        found.append(lease)
    return found
