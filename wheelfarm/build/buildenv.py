"""Build environments: one per (interpreter, exact requirement set), made once.

``build``'s own isolation creates and fills a fresh environment for every
wheel; a farm builds the same project for many targets and the same
requirements for many projects, so environments are cached under the farm's
cache and shared read-only by every job that needs the same set. A build
never installs into its environment; a recipe's ``before-build`` commands
run with the environment on PATH and must not either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

from wheelfarm.build.executors import Place
from wheelfarm.fsutil import file_lock

_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}
_COMPLETE = ".wheelfarm-complete"
_FROZEN = ".wheelfarm-freeze"


def env_key(interpreter: str, requirements: Sequence[str]) -> str:
    """A key naming the interpreter binary and the requirement set."""
    try:
        st = os.stat(interpreter)
        ident = f"{os.path.realpath(interpreter)}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        ident = interpreter
    blob = json.dumps({"python": ident, "requires": sorted(set(requirements))})
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def ensure(place: Place, tag: str, requirements: Sequence[str], cache_dir: Path,
           work: Path, *, locked_index: str | None = None) -> Path:
    """The cached environment for ``tag`` + ``requirements``; created on first use.

    With ``locked_index``, ``requirements`` are a lock's pinned lines
    (``name==version --hash=sha256:…``), installed exactly — no dependency
    resolution, every hash checked, from that index only, with none of the
    machine's pip configuration.

    Safe against concurrent jobs in this process (a lock per key) and in other
    farm processes (a file lock); a half-made environment is never used: it
    is marked complete only after its install succeeded, and retried otherwise.
    """
    python = place.python(tag)
    key = env_key(place.interpreter_id(tag), requirements)
    root = cache_dir / "envs"
    root.mkdir(parents=True, exist_ok=True)
    env = root / f"{tag}-{key}"
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock, file_lock(root / f"{tag}-{key}.lock"):
        if (env / _COMPLETE).exists():
            return env
        shutil.rmtree(env, ignore_errors=True)
        place.run([python, "-m", "venv", "--without-pip", str(env)], cwd=work)
        try:
            if locked_index is not None:
                install_locked(place, env, requirements, work, locked_index)
            else:
                install(place, env, requirements, work)
        except BaseException:
            shutil.rmtree(env, ignore_errors=True)
            raise
        frozen = place.run([*place.pip(), "--python", str(env / "bin" / "python"), "list",
                            "--format=freeze", "--disable-pip-version-check"], cwd=work).stdout
        (env / _FROZEN).write_text(frozen)
        (env / _COMPLETE).write_text(json.dumps(sorted(set(requirements))) + "\n")
    return env


def installed(env: Path) -> list[str]:
    """``name==version`` of every package in a cached environment, as pip listed it."""
    path = env / _FROZEN
    if not path.exists():
        return []
    return sorted(line.strip() for line in path.read_text().splitlines()
                  if "==" in line and not line.startswith("#"))


def install_locked(place: Place, env: Path, pinned: Sequence[str], work: Path,
                   index_url: str) -> None:
    # Through the place: one without a network fetches on the host first.
    place.install(env, pinned, work, index_url=index_url)


def install(place: Place, env: Path, requirements: Sequence[str], work: Path) -> None:
    place.install(env, requirements, work)
