"""`wheelfarm serve`: a published filesystem index over HTTP, with PEP 691 negotiation.

A directory URL (``/simple/``, ``/simple/<project>/``) answers with
``index.json`` to clients that prefer ``application/vnd.pypi.simple.v1+json``
(pip, uv) and with ``index.html`` otherwise; every other path is a static
file, and ``/buildid/<build-id>/debuginfo`` answers debuginfod clients (gdb,
``debuginfod-find``). Paths are resolved on every request, so a publish that swaps the live
generation is served at once, and never a path outside the directory.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from wheelfarm.build.debuginfo import is_build_id
from wheelfarm.errors import needs_extra
from wheelfarm.publish.store import content_type

with needs_extra("farm", "wheelfarm serve"):
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
# What each acceptable media type is answered with; "latest" is PEP 691's alias of v1.
_ALIASES = {
    JSON: JSON, "application/vnd.pypi.simple.latest+json": JSON,
    HTML: HTML, "application/vnd.pypi.simple.latest+html": HTML,
    TEXT_HTML: TEXT_HTML,
}
# The server's order when the client's q ties: the JSON API for a client that names it,
# plain HTML for one that sends only wildcards (curl, browsers, old tools).
_PREFERENCE = (JSON, HTML, TEXT_HTML)
_WILDCARD_PREFERENCE = (TEXT_HTML, HTML, JSON)


def negotiate(accept: str | None) -> str | None:
    """The media type to answer a directory request with; None means 406.

    No Accept header, or only wildcards, means text/html, which every client reads.
    """
    if not accept or not accept.strip():
        return TEXT_HTML
    quality: dict[str, tuple[int, float]] = {}  # offer -> (specificity, q)
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        media = media.lower()
        for offer in _PREFERENCE:
            names = [name for name, target in _ALIASES.items() if target == offer]
            if media in names:
                specificity = 2
            elif media == offer.split("/")[0] + "/*" or media == "*/*":
                specificity = 1 if media != "*/*" else 0
            else:
                continue
            if specificity >= quality.get(offer, (-1, 0.0))[0]:
                quality[offer] = (specificity, q)
    ranked = [(q, specificity, -(_PREFERENCE if specificity == 2 else _WILDCARD_PREFERENCE)
                .index(offer), offer) for offer, (specificity, q) in quality.items() if q > 0]
    return max(ranked)[3] if ranked else None


def make_app(root: Path) -> Starlette:
    base = os.path.realpath(root)

    async def handle(request: Request) -> Response:
        path = request.path_params.get("path", "")
        parts = [p for p in path.split("/") if p]
        # A NUL is no file name (and makes os.path raise): not found, never a 500.
        if any(p.startswith(".") or "\0" in p for p in parts):
            return PlainTextResponse("not found\n", status_code=404)
        real = os.path.realpath(os.path.join(base, *parts))
        if os.path.commonpath([real, base]) != base:
            return PlainTextResponse("not found\n", status_code=404)
        if os.path.isdir(real):
            if not request.url.path.endswith("/"):
                return RedirectResponse(request.url.path + "/", status_code=301)
            if not parts:
                return RedirectResponse("/simple/", status_code=302)
            media = negotiate(request.query_params.get("format") or
                              request.headers.get("accept"))
            if media is None:
                return PlainTextResponse(f"not acceptable; this index serves {JSON}, "
                                         f"{HTML} and {TEXT_HTML}\n", status_code=406)
            page = os.path.join(real, "index.json" if media == JSON else "index.html")
            if not os.path.isfile(page):
                return PlainTextResponse("not found\n", status_code=404)
            return FileResponse(page, media_type=media, headers={"Vary": "Accept"})
        if os.path.isfile(real):
            return FileResponse(real, media_type=content_type(parts[-1]))
        return PlainTextResponse("not found\n", status_code=404)

    async def debug(request: Request) -> Response:
        # debuginfod's API: only debuginfo is published, and only by a valid build-id.
        build_id = str(request.path_params.get("build_id", "")).lower()
        if request.path_params.get("what") != "debuginfo" or not is_build_id(build_id):
            return PlainTextResponse("not found\n", status_code=404)
        path = os.path.join(base, "buildid", build_id, "debuginfo")
        if not os.path.isfile(path):
            return PlainTextResponse("not found\n", status_code=404)
        return FileResponse(path, media_type="application/octet-stream")

    return Starlette(routes=[
        Route("/buildid/{build_id}/{what:path}", debug, methods=["GET", "HEAD"]),
        Route("/{path:path}", handle, methods=["GET", "HEAD"])])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with getsockname)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def serve(root: Path, sock: socket.socket) -> None:
    """Serve ``root`` on ``sock`` until interrupted."""
    config = uvicorn.Config(make_app(root), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
