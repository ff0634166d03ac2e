"""Turning planned jobs (and probes) into queue entries."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from wheelfarm.errors import ConfigError
from wheelfarm.farm.state.models import NewJob, target_os
from wheelfarm.plan.graph import check_cycles
from wheelfarm.plan.targets import worker_requirements

if TYPE_CHECKING:  # not at run time: `submit --probe` should start quickly
    from wheelfarm.plan.config import FarmConfig
    from wheelfarm.plan.jobs import Job

DEFAULT_MAX_ATTEMPTS = 3


def build_jobs(jobs: Sequence[Job], config: FarmConfig, *, priority: int = 0) -> list[NewJob]:
    """Queue entries for planned jobs: the recipe's text travels with each."""
    check_cycles(list({j.recipe.path: j.recipe for j in jobs}.values()))
    texts: dict[str, str] = {}
    limits: Mapping[str, int] = dict(config.limits)
    found: list[NewJob] = []
    for job in jobs:
        r = job.recipe
        # Absolute: a worker resolves the recipe's relative source path against it.
        path = str(r.path.resolve())
        if path not in texts:
            try:
                texts[path] = r.path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{path}: {exc.strerror}") from None
        spec = {"recipe_path": path, "recipe_text": texts[path], "recipe_digest": r.digest(),
                "test_pythons": list(job.test_pythons), "profile": job.profile,
                "fallbacks": list(job.fallbacks)}  # build.toolchains after job.executor
        # Where it can run: a macOS job for zig on a Linux worker, for the host on a Mac.
        where_os, where_arch = worker_requirements(job.target, job.executor)
        found.append(NewJob(
            key=job.key, kind="build", recipe=canonicalize_name(r.name),
            target=job.target.name, python=job.python, executor=job.executor,
            arch=where_arch, os=where_os,
            pythons=tuple(sorted({job.python, *job.test_pythons})), spec=spec,
            needs=r.needs, priority=priority,
            max_attempts=r.max_attempts or DEFAULT_MAX_ATTEMPTS,
            timeout=r.timeout or config.timeout,
            target_limit=limits.get(job.target.name, 0), owners=r.owners,
        ))
    return found


def probe_jobs(count: int, *, seconds: float = 0.0, timeout: float = 60.0,
               max_attempts: int = DEFAULT_MAX_ATTEMPTS, priority: int = 0,
               python: str = "", target: str = "", arch: str = "",
               executor: str = "") -> list[NewJob]:
    """``count`` probes: jobs that wait ``seconds`` and write a small file.

    They exercise and measure the farm (dispatch rate, leases, timeouts,
    retries) without a compiler. Requirement fields given here restrict
    which workers may take them, like a build's.
    """
    batch = uuid.uuid4().hex
    return [NewJob(
        key=hashlib.sha256(f"probe:{batch}:{i}".encode()).hexdigest(), kind="probe",
        recipe="probe", target=target, python=python, executor=executor, arch=arch,
        os=target_os(target) if target else "", pythons=(python,) if python else (),
        spec={"seconds": seconds}, priority=priority, max_attempts=max_attempts,
        timeout=timeout,
    ) for i in range(count)]
