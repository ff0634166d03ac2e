"""File-system helpers every wing shares: atomic writes and cross-process locks.

A reader of any file the farm writes (a wheelhouse, a cache record, an index
page, a result) sees either the old bytes or the new ones, never half of
them: everything is written beside its destination and renamed over it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    # flock on separate open()s excludes both other processes and other threads.
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_path(dest: Path, *, prefix: str = ".tmp-", mode: int | None = None) -> Iterator[Path]:
    """A fresh path beside ``dest``; renamed over ``dest`` when the block succeeds.

    The temporary name is unique per call, so concurrent writers of one
    destination never share a temporary file; on failure it is removed and
    ``dest`` is left as it was. The caller creates the file (not ``mkstemp``,
    whose 0600 mode would survive the rename and hide the file from a web
    server), so it gets the process's umask like any other file, unless
    ``mode`` is given.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f"{prefix}{dest.name}.{os.getpid()}.{secrets.token_hex(6)}"
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(dest: Path, mode: str = "w", *, prefix: str = ".tmp-",
                encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``dest`` for writing; it replaces ``dest``
    only if the block finishes without an exception."""
    with atomic_path(dest, prefix=prefix) as tmp, \
            open(tmp, mode, encoding=encoding) as fh:
        yield fh


def write_bytes(dest: Path, data: bytes, *, prefix: str = ".tmp-", mode: int | None = None
                ) -> None:
    with atomic_path(dest, prefix=prefix, mode=mode) as tmp:
        tmp.write_bytes(data)


def write_text(dest: Path, text: str, *, prefix: str = ".tmp-", mode: int | None = None
               ) -> None:
    with atomic_path(dest, prefix=prefix, mode=mode) as tmp:
        tmp.write_text(text, encoding="utf-8")


def copy_file(src: Path, dest: Path, *, prefix: str = ".tmp-", mode: int | None = None
              ) -> None:
    """Copy ``src`` to ``dest`` atomically (a crash leaves no half-copied file)."""
    with atomic_path(dest, prefix=prefix, mode=mode) as tmp:
        shutil.copyfile(src, tmp)
