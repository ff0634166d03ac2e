"""The container executor: each job in fresh containers of its target's build image.

Images come from the farm config's ``[images]`` (target -> image; by default
``manylinux_2_31_x86_64`` -> the local bullseye image that ``make image``
builds) and run on a Docker Engine or Podman's Docker API service (see
:mod:`wheelfarm.build.executors.engine`). A job has two containers of its
image sharing its work directory: the farm's steps run in one that may write
the per-user cache, the build's code in one that sees it read-only. They run
without a network unless the recipe says ``build.network = true``; its
requirements are fetched on the host (see :mod:`.offline`). Memory, CPU and
wall-clock limits come from ``[container-limits]``. The containers are removed
when the job ends, whatever the outcome; those left by a killed farm process
are reaped by the next run.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from wheelfarm import proc
from wheelfarm.build import ccwrap
from wheelfarm.build.executors import JobContext
from wheelfarm.build.executors.container_place import (
    ALLOWED_WRITES,
    BASE_ENV,
    BASE_PATH,
    DISCOVER,
    DISCOVER_END,
    ContainerPlace,
    Image,
    Limits,
    check_writes,
    outside_writes_error,
    parse_discovery,
)
from wheelfarm.build.executors.engine import (
    JOB,
    LABEL,
    OWNER,
    Engine,
    connect,
    owner_id,
    reap,
)
from wheelfarm.errors import ConfigError, EngineUnavailable, JobError, needs_extra
from wheelfarm.fsutil import file_lock
from wheelfarm.plan.config import LOCAL_IMAGE, ContainerSettings, FarmConfig
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.targets import Target

with needs_extra("containers", "the container executor"):
    import docker.errors  # type: ignore[import-untyped]

_DISCOVER_TRIES = 3
_SYSTEM_DIRS = {Path(p) for p in ("/", "/usr", "/usr/local", "/opt")}
_IDLE = 24 * 3600  # the container's own lifetime cap without a job timeout, seconds


class ContainerExecutor:
    """Builds in a fresh container per job; see the module docstring."""

    name = "container"

    def __init__(self, pythons_config: Mapping[str, str] | None = None, *,
                 config: FarmConfig | None = None) -> None:
        # pythons_config names host interpreters; inside images, [image-pythons] applies.
        self.config = config if config is not None else FarmConfig(root=Path.cwd())
        self.settings: ContainerSettings = self.config.container
        self.cache = self.config.cache_dir / "container"
        self._engine: Engine | None = None
        self._engine_error: str | None = None
        self._images: dict[str, Image] = {}
        self._lock = threading.Lock()
        self._reaped = False
        self._rust_sysroot: str | bool | None = False  # False: not looked for yet

    # -- Executor protocol ---------------------------------------------------------------

    def check(self, target: Target) -> None:
        if self.settings.image_for(target) is None:
            known = ", ".join(t for t, _ in self.settings.images)
            raise ConfigError(f"executor 'container' has no image for {target}; map one in "
                              f"wheelfarm.toml [images] (mapped: {known})")

    def available_pythons(self) -> list[str]:
        """Pythons of every configured image that exists (or was seen before)."""
        found: set[str] = set()
        errors = []
        for _target, name in self.settings.images:
            try:
                found.update(self._image(name, pull=False).pythons)
            except JobError as exc:
                cached = self._cached_by_name(name)
                if cached is not None:
                    found.update(cached.pythons)
                else:
                    errors.append(str(exc))
        if not found and errors:
            raise ConfigError(errors[0])
        return sorted(found, key=parse_tag)

    def toolchain_id(self, target: Target) -> str:
        name = self.settings.image_for(target) or "none"
        try:
            return f"container:{name}@{self._image(name, pull=False).id}:ccwrap{ccwrap.VERSION}"
        except JobError:
            cached = self._cached_by_name(name)
            return (f"container:{name}@{cached.id if cached else 'unavailable'}"
                    f":ccwrap{ccwrap.VERSION}")

    def prepare(self, target: Target, cache_dir: Path, log: IO[str]) -> None:
        self.check(target)
        engine = self.engine()
        log.write(f"container engine: {engine.kind} at {engine.url} (API {engine.api_version})\n")
        with self._lock:
            if not self._reaped:
                self._reaped = True
                reap(engine.client, log)
        name = self.settings.image_for(target)
        assert name is not None
        image = self._image(name, pull=True, log=log)
        log.write(f"image {image.name} {image.id[:19]}: glibc "
                  f"{'.'.join(map(str, image.glibc or ()))}, pythons {', '.join(image.pythons)}\n")

    @contextmanager
    def open(self, ctx: JobContext) -> Iterator[ContainerPlace]:
        name = self.settings.image_for(ctx.target)
        if name is None or name not in self._images or not self._reaped:
            self.prepare(ctx.target, ctx.cache_dir, ctx.log)
        assert name is not None
        engine = self.engine()
        image = self._image(name, pull=False)
        network = ctx.network
        # The image's PATH (its Rust, its tools) comes after whatever a step puts first.
        extra_path = image.path.split(":")
        shared = {str(ctx.work_dir): {"bind": str(ctx.work_dir), "mode": "rw"}}
        sysroot = None if image.rustc else self.rust_sysroot()
        if sysroot:
            shared[sysroot] = {"bind": sysroot, "mode": "ro"}
            extra_path.append(f"{sysroot}/bin")
        cache = str(ctx.cache_dir)
        # The farm's steps write the per-user cache; the build's code sees it read-only.
        mounts = {role: {**shared, cache: {"bind": cache, "mode": mode}}
                  for role, mode in (("farm", "rw"), ("build", "ro"))}
        timeout = self.settings.timeout
        started = time.monotonic()
        options: dict[str, Any] = {
            "labels": {LABEL: "1", OWNER: owner_id(), JOB: ctx.work_dir.name},
            "network_mode": "host" if network else "none",
            "environment": BASE_ENV,
            "working_dir": str(ctx.work_dir),
            # sleep is the container's init: it ends (and the container with it)
            # by itself should the farm die without removing it.
            "command": ["sleep", str(int((timeout or _IDLE) + 60))],
            # PID 1 ignores SIGTERM; SIGKILL makes a forced removal immediate.
            "stop_signal": "SIGKILL",
            "detach": True,
        }
        if self.settings.memory:
            options["mem_limit"] = self.settings.memory
            options["memswap_limit"] = self.settings.memory  # no swapping past the limit
        if self.settings.cpus:
            options["nano_cpus"] = int(self.settings.cpus * 1e9)
        ctx.log.write(f"network: {'enabled (build.network = true)' if network else 'disabled'}\n")
        made: dict[str, Any] = {}
        try:
            for role, volumes in mounts.items():
                try:
                    made[role] = engine.client.containers.create(
                        image.id, **options, volumes=volumes,
                        name=f"wheelfarm-{uuid.uuid4().hex[:12]}_{role}")
                except docker.errors.APIError as exc:
                    raise JobError(f"could not create a container of {image.name}: "
                                   f"{_api_reason(exc)}") from exc
                made[role].start()
            ctx.log.write(f"containers {made['farm'].name} (the farm's steps) and "
                          f"{made['build'].name} (the build, cache read-only) started in "
                          f"{time.monotonic() - started:.2f}s\n")
            limits = Limits(self.settings.memory,
                            started + timeout if timeout is not None else None, timeout)
            place = ContainerPlace(engine.client, made["farm"], image, ctx.python, ctx.log,
                                   ctx.cache_dir, network=network, limits=limits,
                                   command_timeout=ctx.timeout, extra_path=extra_path,
                                   toolchain=container_wrappers(image, ctx),
                                   build_container=made["build"])
            yield place
            bad = sorted({path for role, container in made.items() for path in
                          check_writes(container.diff(), [*ALLOWED_WRITES, *mounts[role]])})
            if bad:
                raise outside_writes_error(bad)
        except docker.errors.APIError as exc:
            raise JobError(f"container of {image.name}: {_api_reason(exc)}") from exc
        finally:
            for container in made.values():
                remove(container, ctx.log)

    # -- engine, images ------------------------------------------------------------------

    def engine(self) -> Engine:
        """The engine, connected once; JobError naming what was tried when none answers."""
        with self._lock:
            if self._engine is None and self._engine_error is None:
                try:
                    self._engine = connect(self.settings.engine)
                except EngineUnavailable as exc:
                    self._engine_error = str(exc)
            if self._engine is None:
                raise JobError(self._engine_error or "no container engine")
            return self._engine

    def _image(self, name: str, *, pull: bool, log: IO[str] | None = None) -> Image:
        with self._lock:
            if name in self._images:
                return self._images[name]
        client = self.engine().client
        try:
            found = client.images.get(name)
        except docker.errors.ImageNotFound:
            if not pull:
                raise JobError(f"image {name} not found") from None
            found = self._pull(client, name, log)
        except docker.errors.APIError as exc:
            raise JobError(f"image {name}: {_api_reason(exc)}") from exc
        image = self._discover(client, name, found.id)
        with self._lock:
            self._images[name] = image
        return image

    def _pull(self, client: docker.DockerClient, name: str, log: IO[str] | None) -> Any:
        if log is not None:
            log.write(f"pulling {name}\n")
        try:
            return client.images.pull(name)
        except docker.errors.APIError as exc:
            hint = " (build it with `make image`)" if name == LOCAL_IMAGE else ""
            raise JobError(f"image {name} not found and could not be pulled: "
                           f"{_api_reason(exc)}{hint}") from exc

    def _discover(self, client: docker.DockerClient, name: str, image_id: str) -> Image:
        """Pythons, glibc and Rust of an image: one container run per image id, then cached."""
        self.cache.mkdir(parents=True, exist_ok=True)
        record = self.cache / f"image-{image_id.replace(':', '-')}.json"
        configured = dict(self.settings.pythons)
        with file_lock(self.cache / "discover.lock"):
            data = _read_record(record)
            if data is None:
                data = self._look_inside(client, name, image_id)
                record.write_text(json.dumps(data, indent=1) + "\n")
        pythons = configured or data["pythons"]
        image = Image(name=name, id=image_id, pythons=pythons,
                      glibc=(data["glibc"][0], data["glibc"][1]) if data["glibc"] else None,
                      arch=data["arch"], rustc=data["rustc"], path=data.get("path", BASE_PATH))
        by_name = self.cache / f"name-{_slug(name)}.json"
        by_name.write_text(json.dumps(asdict(image)) + "\n")
        return image

    def _look_inside(self, client: docker.DockerClient, name: str,
                     image_id: str) -> dict[str, Any]:
        """Run ``DISCOVER`` in the image. An answer without its marker line (the
        engine's log of a short-lived container can come back short under load) is
        asked again, and never cached: a record without glibc would break every
        later job of this image."""
        output = ""
        for _attempt in range(_DISCOVER_TRIES):
            try:
                output = client.containers.run(
                    image_id, ["sh", "-c", DISCOVER], network_mode="none", remove=True,
                    labels={LABEL: "1", OWNER: owner_id()}, stdout=True, stderr=False,
                ).decode(errors="replace")
            except docker.errors.APIError as exc:
                raise JobError(f"image {name}: could not look inside: "
                               f"{_api_reason(exc)}") from exc
            pythons, glibc, arch, rustc, path = parse_discovery(output)
            if glibc is not None and DISCOVER_END in output:
                return {"id": image_id, "pythons": pythons, "glibc": glibc, "arch": arch,
                        "rustc": rustc, "path": path}
        shown = " | ".join(output.strip().splitlines()) or "nothing"
        raise JobError(f"image {name}: could not read its glibc version (it answered: {shown})")

    def _cached_by_name(self, name: str) -> Image | None:
        """The last image seen under ``name``, for planning while the engine is down."""
        path = self.cache / f"name-{_slug(name)}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        glibc = data.get("glibc")
        return Image(name=name, id=data["id"], pythons=data["pythons"],
                     glibc=(glibc[0], glibc[1]) if glibc else None, arch=data["arch"],
                     rustc=data["rustc"], path=data.get("path", BASE_PATH))

    def rust_sysroot(self) -> str | None:
        """The host's Rust toolchain, mounted read-only into images that have none.

        rustup's toolchains are built for glibc 2.17, so they run in any
        manylinux image; only the toolchain directory goes in, not ~/.cargo.
        """
        with self._lock:
            if self._rust_sysroot is False:
                rustc = shutil.which("rustc")
                sysroot = None
                if rustc:
                    try:
                        sysroot = proc.run([rustc, "--print", "sysroot"], timeout=60).stdout.strip()
                    except JobError:
                        sysroot = None
                # Only a toolchain of its own (rustup's): a distribution's rustc
                # lives in /usr, needs the host's glibc and must never be mounted.
                own = sysroot and Path(sysroot, "lib", "rustlib").is_dir() \
                    and Path(sysroot).resolve() not in _SYSTEM_DIRS
                self._rust_sysroot = sysroot if own else None
            return self._rust_sysroot if isinstance(self._rust_sysroot, str) else None


def container_wrappers(image: Image, ctx: JobContext) -> dict[str, str]:
    """The farm's wrappers in front of the image's gcc and g++ (see wheelfarm.build.ccwrap).

    They live in the farm's cache, which the container mounts at the same
    path, and run with the image's own Python: the farm is not installed there.
    """
    python = image.pythons.get(ctx.python) or next(iter(image.pythons.values()), None)
    if python is None:
        return {}
    ident = hashlib.sha256(f"{image.id}:{python}".encode()).hexdigest()[:16]
    directory = ctx.cache_dir / "ccwrap" / f"container-{ident}-{ctx.profile}"
    paths = ccwrap.write_wrappers(
        str(directory), python=python, profile=ctx.profile,
        compilers={"cc": "cc", "gcc": "gcc", "c++": "c++", "g++": "g++"}, package_root=None)
    return {"CC": paths["cc"], "CXX": paths["c++"], "PATH": str(directory)}


def _read_record(path: Path) -> dict[str, Any] | None:
    """A cached discovery, or None when there is none or it lacks the glibc version
    (written by an older farm, or damaged): then the image is looked at again."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("glibc") else None


def remove(container: Any, log: IO[str]) -> None:
    """Remove a container (created with stop_signal SIGKILL) and its anonymous volumes;
    never raises."""
    started = time.monotonic()
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        log.write(f"! could not remove container {container.name}: {exc}; "
                  f"the next run removes it\n")
        return
    log.write(f"container {container.name} removed in {time.monotonic() - started:.2f}s\n")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _api_reason(exc: docker.errors.APIError) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
