"""An index served over HTTP(S), as a read-only store: what ``wheelfarm verify`` reads.

Only :meth:`HttpStore.get` works; a static web server can neither list nor
write, so every other member raises :class:`StoreError`.
"""

from __future__ import annotations

from typing import NoReturn
from urllib.parse import quote

import httpx

from wheelfarm.errors import StoreError
from wheelfarm.publish.store import View, check_key


class HttpStore:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(timeout=120, follow_redirects=True)

    def get(self, key: str) -> bytes | None:
        try:
            response = self._client.get(f"{self.url}/{quote(check_key(key))}")
        except httpx.HTTPError as exc:
            raise StoreError(f"{self.url}: {exc}") from exc
        if response.status_code in (403, 404):
            return None
        if response.status_code != 200:
            raise StoreError(f"{self.url}/{key}: HTTP {response.status_code}")
        return response.content

    def _read_only(self, what: str) -> NoReturn:
        raise StoreError(f"{self.url}: an index over HTTP is read-only ({what})")

    def put(self, key: str, data: bytes) -> None:
        self._read_only(f"writing {key}")

    def put_new(self, key: str, data: bytes) -> bool:
        self._read_only(f"writing {key}")

    def list(self, prefix: str) -> list[str]:
        self._read_only(f"listing {prefix}")

    def delete(self, key: str) -> None:
        self._read_only(f"deleting {key}")

    def live_generation(self) -> int:
        self._read_only("reading the live generation")

    def switch(self, view: View) -> None:
        self._read_only(f"switching to generation {view.generation}")
