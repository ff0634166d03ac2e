"""A place inside a job's two running containers: commands go in through the engine's exec API.

The job's work directory and the farm's cache are mounted at the same paths
as on the host, so the pipeline's paths need no translation. The farm's own
commands (environments, installs, repair) run in a container that may write
the cache; the build's code (``untrusted``: the backend, ``before-build``,
tests) runs in a second one of the same image where the cache is read-only,
so a hostile build cannot change what later jobs and other farms reuse. Output of every
command is streamed into the job log in the same form :mod:`wheelfarm.proc`
writes (``+ cmd``, the output, ``! exit status``, ``# seconds``).
"""

from __future__ import annotations

import collections
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from wheelfarm.build.executors.offline import DownloadCache, Interpreter, requires_dist, split_local
from wheelfarm.errors import CommandError, ConfigError, JobError, needs_extra
from wheelfarm.plan.pythons import MIN_PYTHON, parse_tag
from wheelfarm.proc import TAIL_LINES

with needs_extra("containers", "the container executor"):
    import docker.errors  # type: ignore[import-untyped]

# The container's own environment: nothing of the host's leaks in but what the
# pipeline passes per command.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENV = {
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
}
OOM_EXIT = 137  # 128 + SIGKILL


@dataclass(frozen=True)
class Image:
    """What the executor learnt about an image (once per image id, cached)."""

    name: str
    id: str
    pythons: dict[str, str] = field(default_factory=dict)  # tag -> interpreter path
    glibc: tuple[int, int] | None = None
    arch: str = "x86_64"
    rustc: bool = False
    path: str = BASE_PATH  # the image's own PATH


# Lists the image's Pythons, glibc and Rust; run once per image id.
DISCOVER = r"""
for p in /opt/python/cp3*/bin/python; do [ -x "$p" ] && echo "python $p"; done
echo "glibc $(getconf GNU_LIBC_VERSION 2>/dev/null | sed 's/^glibc //')"
echo "arch $(uname -m)"
echo "path $PATH"
command -v rustc >/dev/null 2>&1 && echo "rustc yes"
echo "end"
"""
DISCOVER_END = "\nend"
_PY_DIR = re.compile(r"^/opt/python/cp(\d)(\d+)-cp\d+/bin/python$")


def parse_discovery(output: str, configured: Mapping[str, str] | None = None
                    ) -> tuple[dict[str, str], tuple[int, int] | None, str, bool, str]:
    """Pythons (tag -> path), glibc, arch, whether rustc is there and the image's PATH,
    from ``DISCOVER``."""
    pythons: dict[str, str] = {}
    glibc = None
    arch = "x86_64"
    rustc = False
    path = BASE_PATH
    for line in output.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "python" and (m := _PY_DIR.match(value)):
            if (int(m.group(1)), int(m.group(2))) >= MIN_PYTHON:
                pythons[f"cp{m.group(1)}{m.group(2)}"] = value
        elif key == "glibc" and (g := re.match(r"(\d+)\.(\d+)", value)):
            glibc = (int(g.group(1)), int(g.group(2)))
        elif key == "arch" and value:
            arch = value
        elif key == "rustc":
            rustc = True
        elif key == "path" and value:
            path = value
    if configured:
        pythons = dict(configured)
    ordered = {t: pythons[t] for t in sorted(pythons, key=parse_tag)}
    return ordered, glibc, arch, rustc, path


@dataclass
class Limits:
    memory: int | None
    deadline: float | None  # time.monotonic() by which the whole job must end
    timeout: float | None  # the configured wall clock, for messages


class ContainerPlace:
    """Runs a job's commands in its own container; see ContainerExecutor.open."""

    def __init__(self, client: docker.DockerClient, container: Any, image: Image,
                 tag: str, log: IO[str], cache_dir: Path, *, network: bool,
                 limits: Limits, command_timeout: float | None,
                 extra_path: Sequence[str] = (),
                 toolchain: Mapping[str, str] | None = None,
                 build_container: Any = None) -> None:
        self.client = client
        self.container = container  # the farm's steps: the cache is writable
        self.build_container = build_container or container  # the build's: read-only
        self.image = image
        self.tag = tag
        self.log = log
        self.network = network
        self.limits = limits
        self.command_timeout = command_timeout
        self.extra_path = list(extra_path)
        self.downloads = DownloadCache(cache_dir)
        self.killed_for: str | None = None
        self._toolchain = dict(toolchain or {})

    # -- Place protocol ----------------------------------------------------------------

    def python(self, tag: str) -> str:
        try:
            return self.image.pythons[tag]
        except KeyError:
            found = ", ".join(self.image.pythons) or "none"
            raise ConfigError(
                f"python {tag} not found in image {self.image.name} (found: {found})"
            ) from None

    def interpreter_id(self, tag: str) -> str:
        return f"{self.image.id}:{self.python(tag)}"

    def toolchain_env(self) -> dict[str, str]:
        return dict(self._toolchain)

    def auditwheel(self) -> list[str]:
        return ["auditwheel"]

    def pip(self) -> list[str]:
        # The image's own pip (>= 22.3 for --python) drives every environment.
        return [self.python(self.tag), "-m", "pip"]

    def install(self, env: Path, requirements: Sequence[str], work: Path, *,
                index_url: str | None = None) -> None:
        if not requirements:
            return
        argv = [*self.pip(), "--python", str(env / "bin" / "python"), "install"]
        pinned: list[str] = []
        if index_url is not None:
            path = work / f"locked-{env.name}.txt"
            path.write_text("".join(f"{line}\n" for line in requirements))
            pinned = ["--require-hashes", "--no-deps", "-r", str(path)]
        if self.network:
            # The recipe opted in: the container asks the index itself.
            source = ["--index-url", index_url] if index_url else []
            self.run([*argv, *source, *(pinned or requirements)], cwd=work)
            return
        local, named = split_local(requirements)
        wanted = [*named, *(req for wheel in local for req in requires_dist(wheel))]
        self.downloads.fetch(wanted if index_url is None else list(requirements),
                              self.interpreter(), work, self.log, index_url=index_url,
                              timeout=self._remaining(self.command_timeout))
        self.run([*argv, "--no-index", "--find-links", str(self.downloads.files),
                  *(pinned or requirements)], cwd=work)

    def interpreter(self) -> Interpreter:
        version = self.python_version(self.tag)
        if self.image.glibc is None:
            raise ConfigError(f"image {self.image.name}: its glibc version is unknown")
        return Interpreter(version, self.image.arch, self.image.glibc)

    @staticmethod
    def python_version(tag: str) -> tuple[int, int]:
        return int(tag[2]), int(tag[3:])

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        untrusted: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        container = self.build_container if untrusted else self.container
        full = {**BASE_ENV, "PATH": "", **(env or {})}
        for extra in self.extra_path:
            if extra and extra not in full["PATH"].split(":"):
                full["PATH"] = f"{full['PATH']}:{extra}" if full["PATH"] else extra
        own = timeout if timeout is not None else self.command_timeout
        limit = self._remaining(own)
        # Which limit a kill would be for: the job's wall clock or the command's own.
        job_bound = self.limits.deadline is not None and (own is None or limit != own)
        cmd = [str(a) for a in argv]
        self.log.write("+ " + shlex.join(cmd) + "\n")
        self.log.flush()
        started = time.monotonic()
        api = self.client.api
        try:
            exec_id = api.exec_create(container.id, cmd, workdir=str(cwd),
                                      environment=full)["Id"]
            stream = api.exec_start(exec_id, stream=True)
        except docker.errors.APIError as exc:
            self.log.write(f"! {exc}\n")
            raise CommandError(cmd, 127, str(exc)) from exc
        chunks: list[str] = []
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

        def pump() -> None:
            pending = ""
            try:
                for chunk in stream:
                    pending += chunk.decode("utf-8", errors="replace")
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        self._line(line + "\n", chunks, tail)
            except Exception as exc:  # the stream ends with an error when the container dies
                pending += f"\n! output stream ended: {exc}"
            if pending:
                self._line(pending + "\n", chunks, tail)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        reader.join(limit)
        returncode: int | None
        if reader.is_alive():
            self._kill(container, "timeout" if job_bound else "command timeout")
            reader.join(10)
            returncode = None
        else:
            returncode = api.exec_inspect(exec_id).get("ExitCode")
        reason = self._reason(container, returncode, limit)
        if reason:
            tail.append(f"wheelfarm: {reason}\n")
            self.log.write(f"! {reason}\n")
        if returncode is None:
            self.log.write(f"! timed out after {limit:.0f}s; container killed\n")
        elif returncode:
            self.log.write(f"! exit status {returncode}\n")
        self.log.write(f"# {time.monotonic() - started:.2f}s\n")
        self.log.flush()
        if returncode is None or returncode:
            raise CommandError(cmd, returncode, "".join(tail))
        return subprocess.CompletedProcess(cmd, 0, "".join(chunks), None)

    # -- helpers -----------------------------------------------------------------------

    def _line(self, line: str, chunks: list[str], tail: collections.deque[str]) -> None:
        chunks.append(line)
        tail.append(line)
        self.log.write(line)

    def _remaining(self, timeout: float | None) -> float | None:
        """Seconds this command may take: its own timeout, capped by the job's deadline."""
        if self.limits.deadline is None:
            return timeout
        left = max(0.0, self.limits.deadline - time.monotonic())
        return left if timeout is None else min(timeout, left)

    def _kill(self, container: Any, why: str) -> None:
        self.killed_for = why
        try:
            container.kill()
        except docker.errors.APIError as exc:
            self.log.write(f"! could not kill the container: {exc}\n")

    def _reason(self, container: Any, returncode: int | None,
                limit: float | None) -> str | None:
        """Why a command died, when the container's limits killed it."""
        if returncode is None:
            if self.killed_for == "timeout" and self.limits.timeout is not None:
                return (f"the job exceeded its time limit of {self.limits.timeout:.0f}s "
                        f"([container-limits] timeout); its container was killed")
            return f"the command exceeded its timeout of {limit:.0f}s; its container was killed"
        if returncode == OOM_EXIT and self.limits.memory is not None \
                and self._oom_killed(container):
            mib = self.limits.memory / (1 << 20)
            return (f"killed by the out-of-memory killer: the job's memory limit is "
                    f"{mib:.0f} MiB ([container-limits] memory)")
        return None

    @staticmethod
    def _oom_killed(container: Any) -> bool:
        """Whether the container's memory cgroup has had to kill (cgroup v1 or v2)."""
        probe = ("cat /sys/fs/cgroup/memory.events 2>/dev/null | sed -n 's/^oom_kill //p';"
                 "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null"
                 " | sed -n 's/^oom_kill //p'")
        try:
            result = container.exec_run(["sh", "-c", probe])
        except docker.errors.APIError:
            return False
        counts = result.output.decode(errors="replace").split()
        return any(c.isdigit() and int(c) > 0 for c in counts)


def check_writes(changes: Sequence[Mapping[str, Any]] | None, allowed: Sequence[str]) -> list[str]:
    """Paths a job changed in the container's own file system outside ``allowed``.

    ``changes`` is the engine's diff of the container (``Kind`` 0 changed, 1
    added, 2 deleted). A build may write in its work directory (a mount, not
    in the diff), temporary directories and its home; anything else means it
    wrote where it must not, even though the container's layer is discarded.
    """
    bad = []
    for change in changes or []:
        path = str(change.get("Path", ""))
        if any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed):
            continue
        if any(a.startswith(path.rstrip("/") + "/") for a in allowed):
            continue  # a parent of an allowed path: the engine makes mount points
        bad.append(path)
    # A directory is "changed" when something in it is: name what was written.
    return sorted(p for p in bad if not any(o.startswith(p.rstrip("/") + "/") for o in bad))


ALLOWED_WRITES = ("/tmp", "/var/tmp", "/root", "/run", "/dev", "/proc", "/sys", "/etc/hostname",
                  "/etc/hosts", "/etc/resolv.conf", "/etc/mtab")


def outside_writes_error(paths: Sequence[str]) -> JobError:
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return JobError(f"the job wrote outside its work directory: {shown} "
                    f"(discarded with its container; a build may write only in its work "
                    f"directory, /tmp and $HOME)")
