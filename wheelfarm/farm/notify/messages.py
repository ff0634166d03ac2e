"""What a notification says, and how it goes on the wire.

A message is stored in the outbox as a plain JSON document (event, recipes,
owners, cause, count, first error, jobs with links); it is rendered for its
target only when it is sent: a Slack-compatible incoming-webhook payload, or
the generic JSON payload signed with HMAC-SHA256.

Everything a message carries from a log or a recipe (reasons, names, owners)
is untrusted: it is cut to a length cap and, for Slack's mrkdwn, its control
characters ``& < >`` are escaped, so that a log line cannot forge a link or a
mention.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "X-Wheelfarm-Signature"
EVENT_HEADER = "X-Wheelfarm-Event"
DELIVERY_HEADER = "X-Wheelfarm-Delivery"
SCHEMA = 1
MAX_JOBS = 50  # jobs listed in one message; the count goes on
MAX_REASON = 300  # characters of a first error line
MAX_NAME = 100  # characters of a recipe or owner name
MAX_LINKS = 10  # job links shown in a Slack message
MAX_TEXT = 2900  # Slack refuses a section text over 3000 characters
TOLERANCE = 300.0  # seconds a receiver should accept a signature's timestamp


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def first_line(text: str | None) -> str:
    lines = [x for x in (text or "").splitlines() if x.strip()]
    return clip(lines[0], MAX_REASON) if lines else ""


def mrkdwn(text: str) -> str:
    """Text that Slack shows as written: no links, mentions or markup from it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def summary(doc: Mapping[str, Any]) -> str:
    """One line saying what happened (plain text, not yet escaped)."""
    event = doc.get("event")
    recipes = ", ".join(doc.get("recipes", [])) or "?"
    count = int(doc.get("count", 0))
    jobs = f"{count} job{'s' if count != 1 else ''}"
    if event == "failure":
        owners = ", ".join(doc.get("owners", [])) or "no owners"
        return (f"{recipes}: {jobs} failed ({doc.get('cause')}); owners: {owners}; "
                f"first error: {doc.get('reason') or 'none recorded'}")
    if event == "recovery":
        return f"{recipes} fixed: {jobs} succeeded again after failing"
    if event == "publish":
        added = len(doc.get("added", []))
        return (f"generation {doc.get('generation')} of {doc.get('index')} published by "
                f"{doc.get('who')}: {doc.get('change')} ({added} file(s) added)")
    return str(doc.get("text") or "a test message from wheelfarm")


def slack_payload(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body: ``text`` (the fallback) and blocks."""
    text = mrkdwn(clip(summary(doc), MAX_TEXT))
    icon = {"failure": ":x:", "recovery": ":white_check_mark:",
            "publish": ":package:"}.get(str(doc.get("event")), ":bell:")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {text}"}}]
    links = []
    for job in list(doc.get("jobs", []))[:MAX_LINKS]:
        label = mrkdwn(f"{job.get('target')} {job.get('python')} {str(job.get('key'))[:12]}")
        url = job.get("url")
        # The URL is the farm's own (dashboard-url + a hex key), never from a log.
        links.append(f"<{url}|{label}>" if url else label)
    if links:
        more = int(doc.get("count", 0)) - len(links)
        tail = f" and {more} more" if more > 0 else ""
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": clip(" \u00b7 ".join(links) + tail, MAX_TEXT)}]})
    return {"text": text, "blocks": blocks}


def json_payload(doc: Mapping[str, Any], delivery: str, event: str, sent: int) -> dict[str, Any]:
    return {**doc, "schema": SCHEMA, "id": delivery, "event": event, "sent_at": sent,
            "text": summary(doc)}


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header's value: ``t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, now: float,
           tolerance: float = TOLERANCE) -> bool:
    """A receiver's check: the signature matches and its timestamp is recent
    (a replayed request fails once ``tolerance`` seconds have passed)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def render(fmt: str, doc: Mapping[str, Any], *, delivery: str, event: str, now: float,
           secret: bytes | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery attempt (signed anew each time: the
    timestamp is the attempt's)."""
    sent = int(now)
    payload = slack_payload(doc) if fmt == "slack" else json_payload(doc, delivery, event, sent)
    body = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", EVENT_HEADER: event,
               DELIVERY_HEADER: delivery, "User-Agent": "wheelfarm-notify"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, body, sent)
    return body, headers
