"""CI matrices: grouping jobs into matrix entries, shards, and the entry formats
of GitHub Actions and GitLab CI.

An entry's id names its jobs without reference to any cache: either one
job's id (with the jobs joined to it by ``build.needs``: its unit), or
``<runner class>-<i>of<n>``, the units of that class whose first job's key
hashes to bucket i of n. A matrix job rebuilds the plan from the same recipes
and picks its jobs by that id, so plan and build agree however the cache
looked on either machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from wheelfarm.errors import ConfigError
from wheelfarm.plan.jobs import Job

GITHUB_LIMIT = 256  # GitHub refuses a matrix with more entries
# Runner labels per class of machine that can build a target. GitHub retired
# macos-13 (its last Intel image) in December 2025; macos-15-intel is the Intel
# label until Intel images end (announced for fall 2027), macos-15 is arm64.
# "cross-aarch64": aarch64 jobs zig cross-builds (and tests under emulation) on an
# x86_64 runner; "linux-aarch64" only when the plan asks for native runners.
RUNNERS = {
    "linux-x86_64": "ubuntu-latest",
    "cross-aarch64": "ubuntu-latest",
    "linux-aarch64": "ubuntu-24.04-arm",
    "macos-arm64": "macos-15",
    "macos-x86_64": "macos-15-intel",
}
_BUCKET = re.compile(r"^(?P<cls>[a-z]+-[a-z0-9_]+)-(?P<i>\d+)of(?P<n>\d+)$")


@dataclass(frozen=True)
class Group:
    id: str
    runner_class: str
    jobs: tuple[Job, ...]

    @property
    def runs_on(self) -> str:
        return RUNNERS[self.runner_class]


def runner_class(job: Job, native: bool = False) -> str:
    """The class of machine a job's matrix entry runs on.

    macOS jobs run on a Mac of their architecture (the host executor builds
    and the wheel is tested there). A zig job for aarch64 is cross-built on
    x86_64 unless ``native`` asks for ARM runners.
    """
    if job.target.is_macos:
        return f"macos-{job.target.arch}"
    if job.target.arch == "aarch64" and job.executor == "zig" and not native:
        return "cross-aarch64"
    return f"linux-{job.target.arch}"


def bucket(job: Job, n: int) -> int:
    """0-based bucket of a job among ``n``; from its key, so stable across runs.

    A macOS job's key names the executor of the machine that planned it (zig on
    Linux, the host on the Mac that builds it), so its bucket comes from its id.
    """
    if job.target.is_macos:
        return int(hashlib.sha256(job.id.encode()).hexdigest()[:16], 16) % n
    return int(job.key[:16], 16) % n


def units(jobs: Sequence[Job]) -> list[tuple[Job, ...]]:
    """``jobs`` joined by ``build.needs`` (the same target and python) into units
    that one matrix entry builds together, so a wheel that several recipes need
    is built once, not once per entry (``merge`` refuses two different builds of
    one wheel). In plan order; a unit's first job is its representative, the
    one with the smallest id (machine-independent, unlike a macOS job's key)."""
    provides: dict[tuple[str, str, str], str] = {
        (canonicalize_name(j.recipe.name), j.target.name, j.python): j.key for j in jobs}
    parent = {j.key: j.key for j in jobs}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for job in jobs:
        for need in job.recipe.needs:
            dep = provides.get((need, job.target.name, job.python))
            if dep is not None:  # a missing one is with_needs' error, with its reason
                parent[root(dep)] = root(job.key)
    found: dict[str, list[Job]] = {}
    for job in jobs:
        found.setdefault(root(job.key), []).append(job)
    return [tuple(sorted(u, key=lambda j: j.id)) for u in found.values()]


def groups(jobs: Sequence[Job], *, shards: int | None = None,
           limit: int = GITHUB_LIMIT, native: bool = False) -> list[Group]:
    """Matrix entries for ``jobs``: one per unit (see :func:`units`; a job alone is
    a unit) while that fits under ``limit``, else (or with ``shards``) hash
    buckets of units per runner class."""
    found_units = units(jobs)
    by_class: dict[str, list[tuple[Job, ...]]] = {}
    for unit in found_units:
        by_class.setdefault(runner_class(unit[0], native), []).append(unit)
    if shards is None and len(found_units) <= limit:
        return [Group(u[0].id, runner_class(u[0], native), u) for u in found_units]
    counts = _bucket_counts({c: len(us) for c, us in by_class.items()}, shards, limit)
    found: list[Group] = []
    for cls in sorted(by_class):
        n = counts[cls]
        buckets: list[list[Job]] = [[] for _ in range(n)]
        for unit in by_class[cls]:
            buckets[bucket(unit[0], n)].extend(unit)
        found += [Group(f"{cls}-{i + 1}of{n}", cls, tuple(b)) for i, b in enumerate(buckets) if b]
    return found


def _bucket_counts(sizes: dict[str, int], shards: int | None, limit: int) -> dict[str, int]:
    if shards is not None:
        per_class = max(1, min(shards, limit // max(1, len(sizes))))
        return {c: min(per_class, size) for c, size in sizes.items()}
    total = sum(sizes.values())
    counts = {c: max(1, limit * size // total) for c, size in sizes.items()}
    while sum(counts.values()) > limit:
        biggest = max(counts, key=lambda c: counts[c])
        counts[biggest] -= 1
    return counts


def select(jobs: Sequence[Job], entry_id: str) -> list[Job]:
    """The jobs of the matrix entry ``entry_id`` (see :func:`groups`): a job's id
    stands for its whole unit."""
    found_units = units(jobs)
    exact = [j for u in found_units if any(j.id == entry_id for j in u) for j in u]
    if exact:
        return exact
    m = _BUCKET.match(entry_id)
    if not m or m.group("cls") not in RUNNERS or int(m.group("n")) < 1 \
            or not 1 <= int(m.group("i")) <= int(m.group("n")):
        raise ConfigError(f"--job {entry_id}: no such job or matrix entry in this plan")
    cls, i, n = m.group("cls"), int(m.group("i")), int(m.group("n"))
    # Class names tell native from cross runners apart, so either reading is safe.
    return [j for u in found_units
            if cls in (runner_class(u[0]), runner_class(u[0], native=True))
            and bucket(u[0], n) == i - 1 for j in u]


def shard(jobs: Sequence[Job], spec: str) -> list[Job]:
    """``--shard i/N`` (1-based): the units (see :func:`units`) whose first job's key
    hashes to shard i, over all jobs, cached or not, so shards do not shift as the
    cache fills."""
    m = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ConfigError(f"--shard {spec}: expected i/N with 1 <= i <= N, e.g. 2/4")
    i, n = int(m.group(1)), int(m.group(2))
    return [j for u in units(jobs) if bucket(u[0], n) == i - 1 for j in u]


def github_matrix(entries: Iterable[Group]) -> dict[str, list[dict[str, str]]]:
    return {"include": [
        {"id": g.id, "runs-on": g.runs_on, "keys": " ".join(j.key for j in g.jobs),
         "jobs": " ".join(j.id for j in g.jobs)}
        for g in entries
    ]}


# GitLab: the image of a generated Linux job (a pypa manylinux image has every
# CPython as python3.X on PATH, which is where a plan finds them) and how the job
# installs wheelfarm: from $WHEELFARM_URL (a PEP 508 URL such as
# git+https://HOST/wheelfarm.git@TAG), else from the checkout itself when the
# pipeline runs in wheelfarm's own repository. A macOS job runs on a Mac's shell.
GITLAB_IMAGES = {
    "linux-x86_64": "quay.io/pypa/manylinux_2_28_x86_64",
    "cross-aarch64": "quay.io/pypa/manylinux_2_28_x86_64",
    "linux-aarch64": "quay.io/pypa/manylinux_2_28_aarch64",
}
GITLAB_PYTHON = "python3.12"
WHEELFARM_URL = "${WHEELFARM_URL:-file://$CI_PROJECT_DIR}"
# GitLab caches only paths inside the project: the per-user cache goes there.
GITLAB_CACHE = ".cache/wheelfarm"
LOGS = ".wheelfarm/logs/"


def install_wheelfarm(extras: Iterable[str] = ()) -> list[str]:
    """Shell lines that install wheelfarm (with ``extras``) into its own venv and
    put its commands on PATH after the Pythons the build uses."""
    wanted = sorted(set(extras))
    name = f"wheelfarm[{','.join(wanted)}]" if wanted else "wheelfarm"
    return [f"{GITLAB_PYTHON} -m venv /tmp/wheelfarm",
            f'/tmp/wheelfarm/bin/python -m pip install "{name} @ {WHEELFARM_URL}"',
            'export PATH="$PATH:/tmp/wheelfarm/bin"']


def gitlab_pipeline(entries: Sequence[Group], build_args: Sequence[str], out: str,
                    publish_to: str | None = None, *, image: str | None = None,
                    cache_key: str = "wheelfarm") -> str:
    """A child-pipeline definition (JSON is YAML): one build job per entry,
    then, with ``publish_to``, one job that merges their output and publishes.

    GitLab's ``parallel:matrix`` is static, so the plan generates the jobs.
    Each job names its image (``image``, else a manylinux image of its runner's
    architecture), installs wheelfarm, keeps the per-user cache (the toolchain's
    compiled runtimes) across pipelines under ``cache_key`` and its runner
    class, and keeps its logs whether it succeeded or not.
    A pipeline must have a job: with nothing to build it holds one that says so.
    """
    args = " ".join(json.dumps(a) if " " in a else a for a in build_args)

    def image_of(runner: str) -> dict[str, str]:
        chosen = GITLAB_IMAGES.get(runner) and (image or GITLAB_IMAGES[runner])
        return {"image": chosen} if chosen else {}

    jobs: dict[str, object] = {}
    for g in entries:
        extras = ["containers"] if any(j.executor == "container" for j in g.jobs) else []
        jobs[f"build:{g.id}"] = {
            "stage": "build",
            "tags": [g.runner_class],
            **image_of(g.runner_class),
            "cache": {"key": f"{cache_key}-{g.runner_class}", "paths": [GITLAB_CACHE + "/"]},
            "before_script": install_wheelfarm(extras),
            "script": [f"wheelfarm build {args} --job {g.id} --out {out}/{g.id}"],
            "artifacts": {"paths": [f"{out}/{g.id}/", LOGS], "when": "always"},
        }
    if jobs and publish_to:
        extras = ["sign", "s3"] if publish_to.startswith("s3://") else ["sign"]
        jobs["publish"] = {
            "stage": "publish",
            **image_of("linux-x86_64"),
            "needs": list(jobs),
            # merge records each wheel under its job key: the plan job's next run
            # (whose cache this is) finds them cached
            "cache": {"key": "wheelfarm-artifacts", "paths": [".wheelfarm/artifacts/"]},
            "before_script": install_wheelfarm(extras),
            "script": ['echo "$WHEELFARM_SIGNING_KEY" | gpg --batch --import',
                       f"wheelfarm merge {out}/*/ --out wheelhouse",
                       f"wheelfarm publish wheelhouse --to {publish_to}"],
        }
    if not jobs:
        jobs["nothing-to-build"] = {"stage": "build", **image_of("linux-x86_64"),
                                    "script": ["echo every job is cached; nothing to build"]}
    return json.dumps({"stages": ["build", "publish"],
                       "variables": {"WHEELFARM_CACHE_DIR": "$CI_PROJECT_DIR/" + GITLAB_CACHE},
                       **jobs},
                      indent=2) + "\n"
