"""The one subprocess helper: every command is echoed as ``+ cmd`` into the job log."""

from __future__ import annotations

import collections
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

from wheelfarm.errors import CommandError

TAIL_LINES = 40
# The commands run() is waiting for, with the thread waiting for each, so that
# kill_running() can find them: each runs in a session of its own, out of reach
# of a signal sent to this process.
_running: dict[subprocess.Popen[str], int] = {}
_running_guard = threading.Lock()


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    log: IO[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with stdout and stderr merged, streamed line by line into ``log``.

    ``env`` replaces the environment when given. The command runs in its own
    session so a timeout kills the whole tree (compilers spawned by a build
    backend included). Raises :class:`CommandError` with the output's tail on
    a non-zero exit when ``check``, and always on a timeout or a missing
    executable. The full output is returned in ``stdout``.
    """
    argv = [os.fspath(c) for c in cmd]
    started = time.monotonic()
    if log is not None:
        log.write("+ " + shlex.join(argv) + "\n")
        log.flush()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        if log is not None:
            log.write(f"! {exc}\n")
        raise CommandError(argv, 127, str(exc)) from exc

    chunks: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            chunks.append(line)
            tail.append(line)
            if log is not None:
                log.write(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    with _running_guard:
        _running[proc] = threading.get_ident()
    try:
        returncode: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        returncode = None
    except BaseException:
        _kill_tree(proc)
        raise
    finally:
        with _running_guard:
            _running.pop(proc, None)
    if returncode is None:
        _kill_tree(proc)
    reader.join(timeout=5)
    if log is not None:
        if returncode is None:
            log.write(f"! timed out after {timeout}s; killed\n")
        elif returncode:
            log.write(f"! exit status {returncode}\n")
        log.write(f"# {time.monotonic() - started:.2f}s\n")
        log.flush()
    out = "".join(chunks)
    if returncode is None or (check and returncode):
        raise CommandError(argv, returncode, "".join(tail))
    return subprocess.CompletedProcess(argv, returncode, out, None)


def kill_running(thread: int | None = None) -> int:
    """SIGKILL every command that :func:`run` is waiting for in this process (or,
    given a thread's ident, in that thread), with everything it started; each of
    those calls then fails as if its command had.

    For the jobs of ``wheelfarm build``, which run in threads of this process:
    one that is stopped (its lease lost, its time up) or all of them (the
    build is interrupted). Returns how many commands were killed.
    """
    with _running_guard:
        found = [p for p, t in _running.items() if thread is None or t == thread]
    for proc in found:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(found)


def _kill_tree(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
