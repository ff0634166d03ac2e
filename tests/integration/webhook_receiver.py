"""A webhook receiver on loopback for the tests: a real HTTP server (stdlib,
in a thread) that checks each request's HMAC signature and timestamp as a
receiver would (written from the documented scheme, not with wheelfarm's own
code), and answers as the test says: 200, an error status, or slowly."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Hit:
    delivery: str
    event: str
    body: dict[str, Any]
    signed: bool  # the signature matched and its timestamp was recent
    status: int  # what the receiver answered
    at: float


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0


@dataclass
class Receiver:
    secret: bytes | None
    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    # Decides each answer from the request's delivery id and how many came before.
    answer: Callable[[str, int], Answer] = lambda _delivery, _n: Answer()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if 200 <= h.status < 300]

    def check(self, header: str, body: bytes) -> bool:
        if self.secret is None:
            return False
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        if not parts.get("t", "").isdigit() or abs(time.time() - int(parts["t"])) > 300:
            return False
        mac = hmac.new(self.secret, parts["t"].encode() + b"." + body, hashlib.sha256)
        return hmac.compare_digest(mac.hexdigest(), parts.get("v1", ""))


@contextmanager
def receiving(secret: bytes | None) -> Iterator[Receiver]:
    receiver = Receiver(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            delivery = self.headers.get("X-Wheelfarm-Delivery", "")
            with receiver.lock:
                n = len(receiver.hits)
            answer = receiver.answer(delivery, n)
            signed = receiver.check(self.headers.get("X-Wheelfarm-Signature", ""), body)
            with receiver.lock:
                receiver.hits.append(Hit(delivery, self.headers.get("X-Wheelfarm-Event", ""),
                                         json.loads(body), signed, answer.status, time.time()))
            if answer.delay:
                time.sleep(answer.delay)
            try:
                self.send_response(answer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the client gave up (its timeout) before the slow answer

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
