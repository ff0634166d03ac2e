"""``wheelfarm init``: a commented ``wheelfarm.toml`` to start a farm from.

Prose comments start with ``# ``; a setting shown at its default or as an
example is commented out as ``#key = value``, so deleting the ``#`` gives a
valid setting (a test uncomments every one and loads the result).
"""

from __future__ import annotations

from pathlib import Path

import tomlkit

from wheelfarm.errors import ConfigError
from wheelfarm.fsutil import write_text
from wheelfarm.plan.config import CONFIG_NAME, DEFAULT_INDEX, DEFAULT_TARGETS


def template(index_url: str = DEFAULT_INDEX) -> str:
    q = tomlkit.string  # quoting by the TOML library, not by hand
    targets = ", ".join(q(t).as_string() for t in DEFAULT_TARGETS)
    return f"""\
# The farm's configuration, read by every wheelfarm command run in this
# directory (or given it with --farm). Recipes live beside it, e.g. in recipes/
# (`wheelfarm add NAME==VERSION` writes one); builds keep their state and caches
# in .wheelfarm/.

# Targets of recipes that name none (manylinux2014 = manylinux_2_17).
targets = [{targets}]

# The index sources, build requirements and locks come from; `add`,
# `outdated` and `bump` ask it for releases and hashes.
index-url = {q(index_url).as_string()}

# Pythons of recipes that name none (default: every CPython >= 3.9 found).
#pythons = ["cp39", "cp312"]

# Parallel jobs (default: the number of cores).
#jobs = 2

# Per-job build timeout, seconds.
#timeout = 3600

# The queue of `wheelfarm submit`/`worker`/`controller` (default: SQLite in
# .wheelfarm/state.db); the WHEELFARM_STATE variable overrides it.
#state = "postgresql://farm@db/farm"

# Seconds a claimed job stays a worker's without a heartbeat, and before the
# first retry (doubling per failure).
#lease = 30
#retry-backoff = 10

# The container engine (default: DOCKER_HOST, then the usual sockets).
#engine = "unix:///run/podman/podman.sock"

# Where `wheelfarm publish` goes and how it signs.
#[publish]
#url = "s3://bucket/prefix"
#sign-key = "0123456789ABCDEF"
#valid-days = 30

# Target -> executor (host, zig, container), instead of the farm's choice.
#[executors]
#"manylinux_2_28_x86_64" = "host"

# Interpreters to use instead of discovery.
#[python-paths]
#cp312 = "/usr/bin/python3.12"

# Target -> build image; such a target builds in a container.
#[images]
#"manylinux_2_31_x86_64" = "localhost/wheelfarm-bullseye:latest"

# Limits of each container job.
#[container-limits]
#memory = "4g"
#cpus = 2
#timeout = 3600

# Interpreters inside every image (default: /opt/python/cp3*).
#[image-pythons]
#cp39 = "/opt/python/cp39-cp39/bin/python"

# Target -> most jobs leased or running at once.
#[limits]
#"manylinux_2_17_aarch64" = 2
"""


def write(root: Path, *, force: bool = False) -> Path:
    """Write the template to ``root/wheelfarm.toml``; ConfigError when one is
    there already and ``force`` is not given."""
    path = root / CONFIG_NAME
    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists (--force replaces it)")
    root.mkdir(parents=True, exist_ok=True)
    write_text(path, template())
    return path
