"""Finding a container engine and reaping the containers a dead farm process left.

The engine is a Docker Engine or Podman's Docker-compatible API service,
spoken to through the ``docker`` SDK. Where it is: the farm config's
``engine``, else ``DOCKER_HOST`` (either one, when set, is the only one tried:
a typo must not silently fall back to another engine), else the first of
Docker's socket and Podman's sockets that answers.

Every container the farm starts carries :data:`LABEL` and an :data:`OWNER`
label naming the host, pid and process start time of the farm process; a
container whose owner process is gone (killed, crashed) is stale and removed
by the next farm run on that host.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from wheelfarm.errors import EngineUnavailable, needs_extra

with needs_extra("containers", "the container executor"):
    import docker  # type: ignore[import-untyped]  # no stubs are published
    import docker.errors  # type: ignore[import-untyped]
    import requests.exceptions

DOCKER_SOCKET = "unix:///var/run/docker.sock"
PODMAN_SOCKET = "unix:///run/podman/podman.sock"
LABEL = "org.wheelfarm"
OWNER = "org.wheelfarm.owner"
JOB = "org.wheelfarm.job"
# The SDK's newest API version; an older engine (Podman 4 speaks 1.41) is
# asked in its own version, a newer one in this.
_SDK_API: str = docker.constants.DEFAULT_DOCKER_API_VERSION
_MIN_API: str = docker.constants.MINIMUM_DOCKER_API_VERSION
_CONNECT_TIMEOUT = 10.0
_API_TIMEOUT = 300.0  # pulling or removing a big container can take minutes


@dataclass(frozen=True)
class Candidate:
    source: str  # where the URL came from, for the error message
    url: str


@dataclass(frozen=True)
class Engine:
    client: docker.DockerClient
    url: str
    kind: str  # "podman" or "docker"
    api_version: str


def candidates(configured: str | None, environ: Mapping[str, str]) -> list[Candidate]:
    """Where to look for an engine, in order."""
    if configured:
        return [Candidate("engine in wheelfarm.toml", configured)]
    if environ.get("DOCKER_HOST"):
        return [Candidate("DOCKER_HOST", environ["DOCKER_HOST"])]
    found = [Candidate("Docker's socket", DOCKER_SOCKET),
             Candidate("Podman's socket", PODMAN_SOCKET)]
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime:
        found.append(Candidate("Podman's user socket",
                               f"unix://{runtime.rstrip('/')}/podman/podman.sock"))
    return found


def _api_version(server: str | None) -> str:
    if not server:
        return _SDK_API

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())

    return server if key(server) < key(_SDK_API) else _SDK_API


def connect(configured: str | None, environ: Mapping[str, str] | None = None) -> Engine:
    """The first engine that answers a ping; EngineUnavailable naming what was tried."""
    env = os.environ if environ is None else environ
    tried: list[str] = []
    for cand in candidates(configured, env):
        if cand.url.startswith("unix://") and not Path(cand.url[len("unix://"):]).exists():
            tried.append(f"{cand.source} {cand.url} (no such socket)")
            continue
        try:
            probe = docker.DockerClient(base_url=cand.url, version=_MIN_API,
                                        timeout=_CONNECT_TIMEOUT)
            # /_ping answers at once and names the API version; /version can
            # take seconds on Podman.
            reply = probe.api.get(probe.api.base_url + "/_ping")
            reply.raise_for_status()
            probe.close()
        except (docker.errors.DockerException, requests.exceptions.RequestException,
                OSError) as exc:
            tried.append(f"{cand.source} {cand.url} ({_reason(exc)})")
            continue
        version = _api_version(reply.headers.get("Api-Version"))
        kind = "podman" if reply.headers.get("Libpod-Api-Version") else "docker"
        client = docker.DockerClient(base_url=cand.url, version=version, timeout=_API_TIMEOUT)
        return Engine(client, cand.url, kind, version)
    hint = ("start one, e.g. `podman system service --time=0 unix:///run/podman/podman.sock`, "
            "or set engine in wheelfarm.toml or DOCKER_HOST")
    raise EngineUnavailable(f"no container engine answered: tried {'; '.join(tried)}; {hint}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    last = text[-1] if text else type(exc).__name__
    if "Connection refused" in last or "ConnectionRefused" in last:
        return "connection refused: is the service running?"
    return last[:200]


# -- ownership and reaping ------------------------------------------------------------------

def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after it may not.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def owner_id(pid: int | None = None) -> str:
    """``host:pid:start`` of a farm process: stays unique when the pid is reused."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def is_stale(owner: str, host: str | None = None,
             start_time: Callable[[int], str | None] = _start_time) -> bool:
    """Whether a container labelled with ``owner`` outlived the farm process that made it.

    Containers of other hosts sharing the engine are never judged; nor is a
    label this farm did not write.
    """
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    owner_host, pid, started = parts
    if owner_host != (host if host is not None else socket.gethostname()):
        return False
    return start_time(int(pid)) != started


def reap(client: docker.DockerClient, log: IO[str] | None = None) -> list[str]:
    """Remove every farm container whose owner process is gone; returns their names."""
    removed = []
    stale: list[Any] = [
        c for c in client.containers.list(all=True, filters={"label": LABEL})
        if is_stale(c.labels.get(OWNER, ""))
    ]
    for container in stale:
        try:
            # Its stop signal may be SIGTERM, which a sleeping PID 1 ignores.
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            if log is not None:
                log.write(f"could not remove stale container {container.name}: {exc}\n")
            continue
        removed.append(container.name)
        if log is not None:
            log.write(f"removed stale container {container.name} "
                      f"(owner {container.labels.get(OWNER)} is gone)\n")
    return removed
