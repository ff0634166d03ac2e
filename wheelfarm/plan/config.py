"""The farm configuration: ``wheelfarm.toml`` in the farm directory (optional).

```toml
targets = ["manylinux_2_17_x86_64"]   # default targets for recipes that name none
pythons = ["cp39", "cp312"]           # default pythons (else: every CPython >= 3.9 found)
jobs = 2                              # parallel jobs (default: number of cores)
index-url = "https://pypi.internal.example/simple/"   # default: pip's default index
timeout = 3600                        # per-job build timeout, seconds
state = "postgresql://farm@db/farm"   # the queue (default: SQLite in .wheelfarm/state.db);
                                      # WHEELFARM_STATE overrides it
lease = 30                            # seconds a claimed job stays a worker's without a heartbeat
retry-backoff = 10                    # seconds before the first retry; doubles per failure
dashboard-url = "https://farm.example"  # job links in notifications: {url}/jobs/{key}
cache-dir = "/srv/wheelfarm-cache"     # downloads and zig's runtimes, shared by farms
                                      # (default: $XDG_CACHE_HOME/wheelfarm, ~/.cache/wheelfarm);
                                      # WHEELFARM_CACHE_DIR overrides it
[executors]                           # target -> executor (host, zig)
"manylinux_2_28_x86_64" = "host"
[toolchains]                          # target -> executors tried in turn (build.toolchains)
"manylinux_2_17_x86_64" = ["zig", "host"]
[python-paths]                        # interpreters to use instead of discovery
cp312 = "/usr/bin/python3.12"
engine = "unix:///run/podman/podman.sock"  # container engine (else DOCKER_HOST, the sockets)
[images]                              # target -> build image; its executor is "container"
"manylinux_2_31_x86_64" = "localhost/wheelfarm-bullseye:latest"
[container-limits]                    # per container job
memory = "4g"
cpus = 2
timeout = 3600                        # wall clock for the whole job, seconds
[image-pythons]                       # interpreters inside every image (else /opt/python/cp3*)
cp39 = "/opt/python/cp39-cp39/bin/python"
[limits]                              # target -> most jobs leased or running at once
"manylinux_2_17_aarch64" = 2
[[notify]]                            # webhooks: see plan/notifyconfig.py
url = "https://hooks.example/T0/B0"
```
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.plan import notifyconfig
from wheelfarm.plan import tomlshape as schema
from wheelfarm.plan.defaults import DEFAULT_INDEX_URL
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.targets import Target, host_arch, host_glibc, parse_target

CONFIG_NAME = "wheelfarm.toml"
STATE_DIR = ".wheelfarm"
DEFAULT_TARGETS = ("manylinux_2_17_x86_64",)
DEFAULT_INDEX = DEFAULT_INDEX_URL

FARM_SCHEMA: schema.Schema = {
    "targets": "list[str]",
    "pythons": "list[str]",
    "jobs": int,
    "index-url": str,
    "timeout": float,
    "executors": "dict[str,str]",
    "python-paths": "dict[str,str]",
    "publish": {"url": str, "sign-key": str, "valid-days": float, "s3-endpoint-url": str},
    "state": str,
    "lease": float,
    "retry-backoff": float,
    "limits": dict,  # target -> int, checked in load()
    "engine": str,
    "images": "dict[str,str]",
    "container-limits": {"memory": (str, int), "cpus": float, "timeout": float},
    "image-pythons": "dict[str,str]",
    "notify": list,  # [[notify]] tables, checked in notifyconfig
    "dashboard-url": str,
    "cache-dir": str,
    "toolchains": "dict[str,list[str]]",
}
STATE_ENV = "WHEELFARM_STATE"
CACHE_ENV = "WHEELFARM_CACHE_DIR"
LOCAL_IMAGE = "localhost/wheelfarm-bullseye:latest"
DEFAULT_IMAGES = (("manylinux_2_31_x86_64", LOCAL_IMAGE),)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass(frozen=True)
class ContainerSettings:
    """The container executor's part of the farm config."""

    engine: str | None = None  # a Docker API URL; None: DOCKER_HOST, then the usual sockets
    images: tuple[tuple[str, str], ...] = DEFAULT_IMAGES  # target -> image
    memory: int | None = None  # bytes
    cpus: float | None = None
    timeout: float | None = None  # wall clock per job, seconds
    pythons: tuple[tuple[str, str], ...] = ()  # tag -> interpreter inside every image

    def image_for(self, target: Target) -> str | None:
        return dict(self.images).get(target.name)


def parse_size(text: str | int) -> int:
    """``"512m"`` / ``"4g"`` / ``1048576`` -> bytes; ValueError for anything else."""
    if isinstance(text, int):
        number, unit = text, ""
    else:
        value = text.strip().lower().removesuffix("ib").removesuffix("b")
        unit = value[-1:] if value[-1:] in _SIZE_UNITS else ""
        digits = value[: len(value) - len(unit)]
        if not digits.isdigit():
            raise ValueError(text)
        number = int(digits)
    if number <= 0:
        raise ValueError(text)
    return number * _SIZE_UNITS[unit]


@dataclass(frozen=True)
class PublishSettings:
    """``[publish]``: where ``wheelfarm publish`` goes and how it signs."""

    url: str | None = None  # default for --to / URL
    sign_key: str | None = None  # after --sign-key and WHEELFARM_SIGN_KEY
    valid_days: float = 30.0  # Valid-Until = date + this; `wheelfarm refresh` renews it
    s3_endpoint_url: str | None = None  # else AWS_ENDPOINT_URL, else AWS itself


@dataclass(frozen=True)
class FarmConfig:
    root: Path
    targets: tuple[Target, ...] = tuple(parse_target(t) for t in DEFAULT_TARGETS)
    pythons: tuple[str, ...] | None = None
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    index_url: str = DEFAULT_INDEX
    timeout: float = 3600.0
    executors: tuple[tuple[str, str], ...] = ()
    python_paths: tuple[tuple[str, str], ...] = ()
    publish: PublishSettings = PublishSettings()
    state: str | None = None  # a database URL; None: the SQLite file under state_dir
    lease: float = 30.0
    retry_backoff: float = 10.0
    limits: tuple[tuple[str, int], ...] = ()
    container: ContainerSettings = ContainerSettings()
    notify: tuple[notifyconfig.NotifyTarget, ...] = ()  # [[notify]]: webhooks
    dashboard_url: str | None = None  # job links in notifications: {this}/jobs/{key}
    cache: str | None = None  # ``cache-dir``, relative to root; None: the user's cache
    toolchains: tuple[tuple[str, tuple[str, ...]], ...] = ()  # target -> executors in turn

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def cache_dir(self) -> Path:
        """Downloads, build environments and zig's compiled runtimes: one cache per
        user, shared by every farm directory (see :func:`user_cache_dir`).

        ``WHEELFARM_CACHE_DIR``, then ``cache-dir`` choose another. Entries are
        keyed by content and written by atomic renames under file locks, so
        farms may share one at the same time.
        """
        shared = os.environ.get(CACHE_ENV)
        if shared:
            return Path(shared)
        if self.cache:
            return self.root / self.cache
        return user_cache_dir()

    @property
    def tools_dir(self) -> Path:
        """The farm's own generated tools (compiler wrappers): they name this farm's
        Python and wheelfarm package, so they are never shared with another farm."""
        return self.state_dir / "tools"

    def toolchains_for(self, target: Target) -> tuple[str, ...]:
        """The executors tried in turn for ``target``: ``[toolchains]``, else the one
        :meth:`executor_for` picks."""
        return dict(self.toolchains).get(target.name) or (self.executor_for(target),)

    @property
    def state_url(self) -> str:
        """The queue's database: ``WHEELFARM_STATE``, else ``state``, else SQLite here."""
        url = os.environ.get(STATE_ENV) or self.state
        return url or f"sqlite:///{self.state_dir / 'state.db'}"

    def executor_for(self, target: Target) -> str:
        """The farm's choice of executor for a target.

        An explicit ``[executors]`` entry first; then ``container`` for a target
        with a build image (``[images]``, by default manylinux_2_31_x86_64);
        zig for manylinux policies older than the host's glibc; the host for
        ``linux_*``, ``native`` and policies the host glibc itself satisfies.
        macOS targets: the host on a Mac (a worker there is the macOS runner),
        zig everywhere else (cross-built and checked, never run).
        """
        mapped = dict(self.executors).get(target.name)
        if mapped:
            return mapped
        if target.is_macos:
            return "host" if sys.platform == "darwin" else "zig"
        if self.container.image_for(target):
            return "container"
        if target.kind == "musllinux" or (
                target.kind == "manylinux" and target.arch != host_arch()):
            return "zig"  # a cross build: the host's compilers make the host's binaries
        if target.kind != "manylinux":
            return "host"
        glibc = host_glibc()
        if glibc is not None and target.glibc is not None and target.glibc >= glibc:
            return "host"
        return "zig"


def user_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/wheelfarm``, else ``~/.cache/wheelfarm`` (as pip, uv and zig do)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "")
    # The XDG spec: a relative value is invalid and is ignored.
    if base and os.path.isabs(base):
        return Path(base) / "wheelfarm"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".cache" / "wheelfarm"


def load(root: Path) -> FarmConfig:
    path = root / CONFIG_NAME
    if not path.exists():
        return FarmConfig(root=root)
    data = schema.load_toml(path)
    schema.check(data, FARM_SCHEMA, path)
    kwargs: dict[str, object] = {}
    try:
        if "targets" in data:
            kwargs["targets"] = tuple(parse_target(t) for t in data["targets"])
        if "pythons" in data:
            kwargs["pythons"] = tuple(data["pythons"])
            for tag in data["pythons"]:
                parse_tag(tag)
        for tag in data.get("python-paths", {}):
            parse_tag(tag)
        for target in data.get("executors", {}):
            parse_target(target)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if "jobs" in data:
        if data["jobs"] < 1:
            raise RecipeError(path, "jobs", "must be at least 1")
        kwargs["jobs"] = data["jobs"]
    if "index-url" in data:
        kwargs["index_url"] = data["index-url"]
    if "timeout" in data:
        kwargs["timeout"] = float(data["timeout"])
    kwargs["executors"] = tuple(
        (parse_target(k).name, v) for k, v in sorted(data.get("executors", {}).items())
    )
    kwargs["python_paths"] = tuple(sorted(data.get("python-paths", {}).items()))
    if "state" in data:
        kwargs["state"] = data["state"]
    for key, attr in (("lease", "lease"), ("retry-backoff", "retry_backoff")):
        if key in data:
            if data[key] <= 0:
                raise RecipeError(path, key, "must be a positive number of seconds")
            kwargs[attr] = float(data[key])
    limits = data.get("limits", {})
    try:
        kwargs["limits"] = tuple(sorted((parse_target(k).name, v) for k, v in limits.items()))
    except ConfigError as exc:
        raise ConfigError(f"{path}: limits: {exc}") from None
    for target, value in limits.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RecipeError(path, f"limits.{target}", "must be at least 1")
    if "cache-dir" in data:
        if not data["cache-dir"].strip():
            raise RecipeError(path, "cache-dir", "must name a directory")
        kwargs["cache"] = data["cache-dir"]
    kwargs["toolchains"] = _toolchains(data.get("toolchains", {}), path)
    kwargs["container"] = _container(data, path)
    kwargs["publish"] = _publish(data.get("publish", {}), path)
    if "notify" in data:
        kwargs["notify"] = notifyconfig.parse(data["notify"], path)
    if "dashboard-url" in data:
        kwargs["dashboard_url"] = notifyconfig.dashboard_url(data["dashboard-url"], path)
    return FarmConfig(root=root, **kwargs)  # type: ignore[arg-type]


def _toolchains(table: dict[str, list[str]], path: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    chains = []
    for target, names in sorted(table.items()):
        try:
            name = parse_target(target).name
        except ConfigError as exc:
            raise RecipeError(path, f"toolchains.{target}", str(exc)) from None
        if not names or len(set(names)) != len(names):
            raise RecipeError(path, f"toolchains.{target}",
                              "expected executors to try in turn, each once")
        chains.append((name, tuple(names)))
    return tuple(chains)


def _publish(table: dict[str, Any], path: Path) -> PublishSettings:
    if table.get("valid-days", 1) <= 0:
        raise RecipeError(path, "publish.valid-days", "must be a positive number of days")
    return PublishSettings(
        url=table.get("url") or None, sign_key=table.get("sign-key") or None,
        valid_days=float(table.get("valid-days", 30.0)),
        s3_endpoint_url=table.get("s3-endpoint-url") or None)


def _container(data: dict[str, Any], path: Path) -> ContainerSettings:
    images = dict(DEFAULT_IMAGES)
    for target, image in data.get("images", {}).items():
        try:
            images[parse_target(target).name] = image
        except ConfigError as exc:
            raise RecipeError(path, f"images.{target}", str(exc)) from None
        if not image.strip():
            raise RecipeError(path, f"images.{target}", "must name an image")
    limits: dict[str, Any] = data.get("container-limits", {})
    memory = None
    if "memory" in limits:
        try:
            memory = parse_size(limits["memory"])
        except ValueError:
            raise RecipeError(path, "container-limits.memory",
                              "expected a size like '512m' or '4g'") from None
    for key in ("cpus", "timeout"):
        if key in limits and limits[key] <= 0:
            raise RecipeError(path, f"container-limits.{key}", "must be a positive number")
    pythons: dict[str, str] = data.get("image-pythons", {})
    for tag in pythons:
        try:
            parse_tag(tag)
        except ConfigError as exc:
            raise RecipeError(path, f"image-pythons.{tag}", str(exc)) from None
    return ContainerSettings(
        engine=data.get("engine") or None,
        images=tuple(sorted(images.items())),
        memory=memory,
        cpus=float(limits["cpus"]) if "cpus" in limits else None,
        timeout=float(limits["timeout"]) if "timeout" in limits else None,
        pythons=tuple(sorted(pythons.items())),
    )
