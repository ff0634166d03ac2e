"""Stores that a test can stop or crash at each write, for the publish tests that kill a
publisher after every store write or line two publishers up at the commit point.

Subclasses of the real stores, so that a switch's own writes (each one a ``put``,
``_link``, ``_put``, ``_copy`` or ``delete`` of the same object) are counted too. A
publisher in a process of its own calls :func:`install` first; then every
``open_store`` in that process (the CLI's too) makes these, configured by:

- ``WHEELFARM_TEST_CRASH_AFTER=N``: exit abruptly right after the Nth write
  (``os._exit``: no cleanup, no flush, like SIGKILL);
- ``WHEELFARM_TEST_HOLD=commit:PATH``: before creating a generation's root
  manifest (the commit), touch ``PATH.ready`` and wait until ``PATH`` exists.
"""

from __future__ import annotations

import os
import time
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from wheelfarm.publish import store
from wheelfarm.publish.store.fs import FsStore
from wheelfarm.publish.store.s3 import S3Store

CRASH_ENV = "WHEELFARM_TEST_CRASH_AFTER"
HOLD_ENV = "WHEELFARM_TEST_HOLD"
CRASHED = 75  # the exit status of a crash
COMMIT = "generations/*/InRelease"
_writes = 0


def _before(key: str) -> None:
    want, _, path = os.environ.get(HOLD_ENV, "").partition(":")
    if want == "commit" and fnmatch(key, COMMIT):
        Path(path + ".ready").touch()
        while not os.path.exists(path):
            time.sleep(0.02)


def _after(written: object = True) -> None:
    global _writes
    crash = os.environ.get(CRASH_ENV)
    if crash and written is not False:
        _writes += 1
        if _writes >= int(crash):
            os._exit(CRASHED)


class HookedFsStore(FsStore):
    def put(self, key: str, data: bytes) -> None:
        _before(key)
        super().put(key, data)
        _after()

    def put_new(self, key: str, data: bytes) -> bool:
        _before(key)
        created = super().put_new(key, data)
        _after(created)
        return created

    def delete(self, key: str) -> None:
        super().delete(key)
        _after()

    def _link(self, key: str, target: str) -> None:
        super()._link(key, target)
        _after()


class HookedS3Store(S3Store):
    # put and put_new both write through _put.
    def _put(self, key: str, data: bytes, **extra: Any) -> None:
        _before(key)
        super()._put(key, data, **extra)
        _after()

    def _copy(self, key: str, source: str) -> None:
        super()._copy(key, source)
        _after()

    def delete(self, key: str) -> None:
        super().delete(key)
        _after()


def install() -> None:
    """Make every ``open_store`` in this process open a hooked store."""
    store.REGISTRY.update(file=f"{__name__}:HookedFsStore", s3=f"{__name__}:HookedS3Store")
