"""The farm's dashboard: server-rendered pages over the queue, the local builds
of the farm's history and the published index.

Mounted by the controller (:meth:`wheelfarm.farm.controller.Controller.app`)
and served alone by ``wheelfarm dashboard`` over a farm directory. Pages are
jinja2 templates (``farm/templates/``) with autoescaping on, so nothing from a
log, a reason or a recipe reaches a page unescaped; they read the same without
JavaScript (``<noscript>`` refreshes while jobs run; a small script follows a
running job's log). Reading needs no login; the actions (retry, cancel) are
POST forms that need an operator token (``wheelfarm token --operator NAME``):
missing is 401, a token that is not an operator's (a worker's included) is 403.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from wheelfarm.build import errorlines
from wheelfarm.errors import ConfigError, WheelfarmError, needs_extra
from wheelfarm.farm import indexview, livelog, metrics, tokens
from wheelfarm.farm.state import views
from wheelfarm.farm.state.queue import Queue
from wheelfarm.farm.state.views import LOCAL, AttemptView, JobView

with needs_extra("farm", "the dashboard"):
    import jinja2
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

REFRESH = 5  # seconds between refreshes of a page while jobs run
LOG_PAGE_LIMIT = 2 * 1024 * 1024  # bytes of a log shown on its page (the rest: plain text)
ERROR_LINES = 12
MAX_FORM = 4096  # bytes of an action's form


def issue_operator_token(queue: Queue, name: str) -> str:
    """A new operator token for ``name`` (replacing any earlier one); shown once."""
    return tokens.issue("operator", name, queue.set_operator_token)


def first_errors(text: str, limit: int = ERROR_LINES) -> list[str]:
    """The compiler's and linker's first errors with their file:line (the same
    lines as ``wheelfarm build``'s summary); else the pipeline's own ``!`` lines,
    which say which step failed and why."""
    return errorlines.first_errors(text, limit) or [
        line for line in text.splitlines() if line.startswith("! ")][:limit]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def job_url(job: JobView) -> str:
    return f"/jobs/{job.key}" + ("?source=local" if job.source == LOCAL else "")


def log_url(job: JobView, n: int, suffix: str = "") -> str:
    return (f"/jobs/{job.key}/log{suffix}?attempt={n}"
            + ("&source=local" if job.source == LOCAL else ""))


def _python_order(tag: str) -> tuple[int, str]:
    """cp39 before cp310 (as numbers, not text)."""
    digits = "".join(c for c in tag if c.isdigit())
    return (int(digits) if digits else 0, tag)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("wheelfarm.farm", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["when"] = _when
    env.globals["job_url"] = job_url
    env.globals["log_url"] = log_url
    return env


@dataclass(frozen=True)
class Log:
    text: str
    cut: int  # bytes left out at the start


def read_log(path: str | None, limit: int | None = None) -> Log | None:
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            cut = max(0, size - limit) if limit else 0
            fh.seek(cut)
            data = fh.read()
    except OSError:
        return None
    return Log(data.decode("utf-8", "replace"), cut)


class Dashboard:
    """The pages over one farm: its queue, and its published index if it has one
    (``index``: a read-only view of the store, or None)."""

    def __init__(self, queue: Queue, index: indexview.IndexView | None = None, *,
                 farm: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.queue = queue
        self.index = index
        self.farm = farm  # where a worker on this machine writes a running job's log
        self.clock = clock
        self.env = _environment()
        self.metrics = metrics.FarmCollector(queue, index)

    def routes(self) -> list[Route]:
        return [
            Route("/", self._page(self.grid), methods=["GET"]),
            Route("/jobs/{key}", self._page(self.job), methods=["GET"]),
            Route("/jobs/{key}/log", self._page(self.log), methods=["GET"]),
            Route("/jobs/{key}/log.txt", self.log_text, methods=["GET"]),
            Route("/jobs/{key}/retry", self._action("retry"), methods=["POST"]),
            Route("/jobs/{key}/cancel", self._action("cancel"), methods=["POST"]),
            Route("/recipes/{name}", self._page(self.recipe), methods=["GET"]),
            Route("/failures", self._page(self.failures), methods=["GET"]),
            Route("/generations", self._page(self.generations), methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
        ]

    def render(self, template: str, **context: Any) -> str:
        context.setdefault("refresh", 0)
        return self.env.get_template(template).render(now=_when(self.clock()), **context)

    def _page(self, build: Callable[[Request], tuple[str, dict[str, Any]] | None]
              ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            found = await run_in_threadpool(build, request)
            if found is None:
                return HTMLResponse(self.render("base.html"), 404)
            template, context = found
            return HTMLResponse(await run_in_threadpool(self.render, template, **context))
        return endpoint

    # -- pages ------------------------------------------------------------------------------

    def grid(self, request: Request) -> tuple[str, dict[str, Any]]:
        jobs = views.all_jobs(self.queue)
        cells: dict[tuple[str, str, str], JobView] = {}
        for j in jobs:  # newest first: the first seen is the latest
            cells.setdefault((j.recipe, j.target, j.python), j)
        columns = sorted({(t, p) for _, t, p in cells},
                         key=lambda c: (c[0], _python_order(c[1])))
        counts: dict[str, int] = {}
        for j in cells.values():
            counts[j.state] = counts.get(j.state, 0) + 1
        return "grid.html", {
            "recipes": sorted({r for r, _, _ in cells}), "columns": columns, "cells": cells,
            "counts": sorted(counts.items()),
            "refresh": REFRESH if any(j.active for j in cells.values()) else 0}

    def _job(self, request: Request) -> tuple[JobView, list[AttemptView]] | None:
        source = request.query_params.get("source", views.FARM)
        return views.job(self.queue, request.path_params["key"],
                         LOCAL if source == LOCAL else views.FARM)

    def job(self, request: Request) -> tuple[str, dict[str, Any]] | None:
        found = self._job(request)
        if found is None:
            return None
        job, attempts = found
        failed = [a for a in attempts if a.outcome not in ("succeeded", "running")]
        last = failed[-1] if failed and job.state != "succeeded" else None
        log = read_log(last.log, LOG_PAGE_LIMIT) if last else None
        return "job.html", {
            "job": job, "attempts": attempts, "failing_step": last.step if last else None,
            "errors": first_errors(log.text) if log else [],
            "refresh": REFRESH if job.active else 0}

    def _attempt(self, request: Request, job: JobView,
                 attempts: Sequence[AttemptView]) -> AttemptView | None:
        wanted = request.query_params.get("attempt")
        chosen = [a for a in attempts if wanted is None or str(a.n) == wanted]
        if not chosen:
            return None
        found = chosen[-1]
        if found.log is None and self.farm is not None:
            # A farm attempt records its log when it ends; until then a worker with
            # direct database access writes it here, and a remote worker's shipments
            # land there (farm/livelog.py). An attempt whose worker died records
            # none: what these hold is all there is of it.
            for running in (livelog.direct_path(self.farm, job.key, found.n),
                            livelog.shipped_path(self.farm, job.key, found.n)):
                if running.is_file():
                    return replace(found, log=str(running))
        return found

    def log(self, request: Request) -> tuple[str, dict[str, Any]] | None:
        found = self._job(request)
        if found is None:
            return None
        job, attempts = found
        attempt = self._attempt(request, job, attempts)
        if attempt is None:
            return None
        log = read_log(attempt.log, LOG_PAGE_LIMIT) or Log("(no log recorded)", 0)
        text_url = log_url(job, attempt.n, ".txt")
        return "log.html", {"job": job, "attempt": attempt, "text": log.text, "cut": log.cut,
                            "text_url": text_url, "refresh": REFRESH if job.active else 0}

    async def log_text(self, request: Request) -> Response:
        found = await run_in_threadpool(self._job, request)
        attempt = self._attempt(request, *found) if found else None
        if found is None or attempt is None:
            return PlainTextResponse("no such job or attempt\n", 404)
        log = await run_in_threadpool(read_log, attempt.log)
        # text/plain and nosniff: a browser shows a log, never runs it.
        return PlainTextResponse(log.text if log else "", headers={
            "X-Job-State": found[0].state, "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store"})

    def recipe(self, request: Request) -> tuple[str, dict[str, Any]] | None:
        name = request.path_params["name"]
        history = views.all_jobs(self.queue, name)
        owners = next((j.owners for j in history if j.owners), ())
        context: dict[str, Any] = {"name": name, "history": history, "owners": owners,
                                   "wheels": [], "index_error": None, "index_url": None,
                                   "generation": None, **indexview.distro_context()}
        if self.index is None:
            context["index_error"] = "This farm publishes no index ([publish] url)."
        else:
            context["index_url"] = self.index.url
            try:
                context["generation"], context["wheels"] = self.index.wheels(name)
            except WheelfarmError as exc:
                context["index_error"] = f"The index cannot be read: {exc}"
        return "recipe.html", context

    def failures(self, request: Request) -> tuple[str, dict[str, Any]]:
        failed = [j for j in views.all_jobs(self.queue) if j.state == "failed"]
        return "failures.html", {"groups": group_by_cause(failed)}

    def generations(self, request: Request) -> tuple[str, dict[str, Any]]:
        if self.index is None:
            return "generations.html", {
                "index_error": "This farm publishes no index ([publish] url).",
                "generations": [], "index_url": None}
        try:
            found = self.index.generations()
            error = None
        except WheelfarmError as exc:
            found, error = [], f"The index cannot be read: {exc}"
        return "generations.html", {"generations": found, "index_error": error,
                                    "index_url": self.index.url}

    async def metrics_endpoint(self, request: Request) -> Response:
        body = await run_in_threadpool(self.metrics.exposition)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    # -- actions ----------------------------------------------------------------------------

    def _action(self, name: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            token = header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""
            token = token or await _form_token(request)
            if not token:
                return PlainTextResponse("an operator token is needed\n", 401,
                                         headers={"WWW-Authenticate": "Bearer"})
            who = await run_in_threadpool(self.queue.operator_for_token,
                                          tokens.sha256(token))
            if who is None:
                return PlainTextResponse("not an operator's token\n", 403)
            key = request.path_params["key"]
            act = self.queue.retry if name == "retry" else self.queue.cancel
            try:
                await run_in_threadpool(act, key)
            except ConfigError as exc:
                return PlainTextResponse(f"{exc}\n", 409)
            return RedirectResponse(f"/jobs/{quote(key)}", 303)
        return endpoint


async def _form_token(request: Request) -> str:
    """The ``token`` field of a small urlencoded form (the dashboard's own forms;
    no multipart parser needed for one field)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return ""
    values = parse_qs(body.decode("utf-8", "replace")).get("token") or [""]
    return values[0].strip()


def group_by_cause(failed: Iterable[JobView]) -> list[tuple[str, list[JobView]]]:
    """Failed jobs by cause (most first; "unknown" for a failure without one),
    each group newest first."""
    groups: dict[str, list[JobView]] = {}
    for j in sorted(failed, key=lambda j: j.updated, reverse=True):
        groups.setdefault(j.cause or "unknown", []).append(j)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))


def app(queue: Queue, index: indexview.IndexView | None = None,
        farm: Path | None = None) -> Any:
    """The dashboard alone (``wheelfarm dashboard``)."""
    with needs_extra("farm", "the dashboard"):
        from starlette.applications import Starlette

    return Starlette(routes=Dashboard(queue, index, farm=farm).routes())


def open_index(url: str | None, endpoint_url: str | None = None,
               farm: Path | None = None) -> indexview.IndexView | None:
    """The farm's published index (its [publish] url), if it has one."""
    return indexview.IndexView(url, endpoint_url, farm) if url else None
