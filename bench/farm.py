"""Benchmarks of reproducibility and planning.

1. normalize: the cost of the deterministic rewrite + provenance as a
   fraction of the whole job, on the fixture matrix, one run with and one
   without them (plus the two steps timed directly);
2. plan: `wheelfarm plan` over a synthetic farm of 1,000 recipes x 5 pythons
   x 3 targets (15,000 jobs), everything cached.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from .build import FIXTURES, recipe, wheelfarm_build
from .common import WHEELFARM, clean, median, scratch, sh


def normalize() -> dict[str, float]:
    farm = scratch("normalize")
    try:
        pythons = ["cp39", "cp312"]
        recipes = [recipe(farm, name, "native", pythons) for name in FIXTURES]
        wheelfarm_build(farm, recipes, "--jobs", "2")  # warm pip and envs
        with_them, without = [], []
        for _ in range(2):
            without.append(wheelfarm_build(farm, recipes, "--jobs", "1",
                                           "--no-normalize"))
            with_them.append(wheelfarm_build(farm, recipes, "--jobs", "1"))
        steps = _direct_cost(farm / "out")
        w, wo = median(with_them), median(without)
        return {"with_s": w, "without_s": wo, "fraction": (w - wo) / w,
                "direct_s": steps, "direct_fraction": steps / w}
    finally:
        clean(farm)


def _direct_cost(out: Path) -> float:
    """normalize_wheel + a provenance statement for every wheel, timed in-process."""
    from wheelfarm.build import provenance, reproducible

    total = 0.0
    for wheel in sorted(out.glob("*.whl")):
        copy = wheel.with_name("copy-" + wheel.name)
        copy.write_bytes(wheel.read_bytes())
        start = time.perf_counter()
        reproducible.normalize_wheel(copy, reproducible.ZIP_EPOCH)
        facts = provenance.BuildFacts(
            recipe_name="x", recipe_path="x.toml", recipe_digest="0" * 64,
            source={"uri": "file:x", "digest": "tree=0"}, target="native", python="cp312",
            test_pythons=["cp312"], executor="host", job_key="0" * 64,
            source_date_epoch=reproducible.ZIP_EPOCH, network=True,
            toolchain=provenance.host_toolchain(), build_requirements=[], locked=False,
            started=datetime.now(UTC), finished=datetime.now(UTC))
        provenance.write(copy, facts, copy.with_name(copy.name + provenance.SUFFIX))
        total += time.perf_counter() - start
    return total


def _synthetic_farm(root: Path, recipes: int) -> Path:
    folder = root / "recipes"
    folder.mkdir(parents=True)
    for i in range(recipes):
        sha = f"{i:064x}"
        (folder / f"p{i:04d}.toml").write_text(
            f'[package]\nname = "p{i:04d}"\nversion = "1.0"\n'
            f'[source]\npypi = true\nsha256 = "{sha}"\n'
            '[build]\ntargets = ["manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "native"]\n'
            'pythons = ["cp39", "cp310", "cp311", "cp312", "cp313"]\n')
    return folder


def plan(recipes: int = 1000) -> dict[str, float]:
    """Plan time with every job cached; the baseline is the same command with
    an empty cache (all 15,000 jobs to build) in the same run."""
    farm = scratch("plan")
    try:
        folder = _synthetic_farm(farm, recipes)
        memo = farm / ".wheelfarm" / "recipes.memo"
        empty = median([sh([*WHEELFARM, "plan", str(folder), "--farm", str(farm)], cwd=farm)
                        for _ in range(3)])
        records = _fill_cache(farm, folder)
        cached = [sh([*WHEELFARM, "plan", str(folder), "--farm", str(farm)], cwd=farm)
                  for _ in range(3)]
        github = [sh([*WHEELFARM, "plan", str(folder), "--farm", str(farm), "--format",
                      "github"], cwd=farm) for _ in range(3)]
        cold = []
        for _ in range(2):
            memo.unlink()  # every recipe file read and parsed again
            cold.append(sh([*WHEELFARM, "plan", str(folder), "--farm", str(farm)], cwd=farm))
        startup = median([sh([sys.executable, "-c", "import wheelfarm.cli"])
                           for _ in range(3)])
        _assert_nothing_to_build(folder, farm, os.environ)
        s3 = _plan_on_s3(farm, folder, records)
        return {"jobs": float(len(records)), "cached_plan_s": median(cached),
                "github_plan_s": median(github), "uncached_plan_s": empty,
                "cold_plan_s": median(cold), "import_s": startup, **s3}
    finally:
        clean(farm)


def _assert_nothing_to_build(folder: Path, farm: Path, env: Mapping[str, str]) -> None:
    listed = json.loads(subprocess.run(
        [*WHEELFARM, "plan", str(folder), "--farm", str(farm)], cwd=farm, env=dict(env),
        capture_output=True, text=True, check=True).stdout)["jobs"]
    assert listed == [], "every job should be cached"


def _plan_on_s3(farm: Path, folder: Path, records: list[tuple[str, str, str]]
                ) -> dict[str, float]:
    """The same plan from another farm whose own cache is empty: every key is
    found in the store (moto's S3 server on loopback), as a CI runner would.
    The records arrive as 15 publishes of 1,000 wheels each (15 packs)."""
    from moto.server import ThreadedMotoServer

    from wheelfarm.build.cache import Record
    from wheelfarm.publish.store import open_store
    from wheelfarm.publish.storecache import StoreCache

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    saved = dict(os.environ)
    try:
        host, port = server.get_host_and_port()
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_ENDPOINT_URL": f"http://{host}:{port}"})
        os.environ.pop("AWS_PROFILE", None)
        store = open_store("s3://bench/pypi")
        store.client.create_bucket(Bucket="bench")  # type: ignore[attr-defined]
        for start in range(0, len(records), 1000):
            StoreCache(store).add(Record(*r) for r in records[start:start + 1000])
        packs = len(store.list(StoreCache.PACKS))
        runner = farm / "runner"
        runner.mkdir()
        (runner / "wheelfarm.toml").write_text('[publish]\nurl = "s3://bench/pypi"\n',
                                               encoding="utf-8")
        _assert_nothing_to_build(folder, runner, os.environ)
        times = [sh([*WHEELFARM, "plan", str(folder), "--farm", str(runner)], cwd=runner)
                 for _ in range(3)]
        return {"s3_plan_s": median(times), "s3_packs": float(packs)}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def _fill_cache(farm: Path, folder: Path) -> list[tuple[str, str, str]]:
    """Record an artifact for every planned key, as earlier builds would have."""
    from wheelfarm.build import planning
    from wheelfarm.build.cache import ArtifactCache
    from wheelfarm.plan import config
    from wheelfarm.plan import recipe as recipes
    from wheelfarm.plan.jobs import Selection

    farm_config = config.load(farm)
    planned = planning.plan_recipes(recipes.discover([folder]), farm_config,
                                    Selection())
    wheel = farm / "p-1.0-py3-none-any.whl"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("p-1.0.dist-info/METADATA", "Name: p\nVersion: 1.0\n")
    wheel.write_bytes(buf.getvalue())
    cache = ArtifactCache(farm_config.state_dir)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    for job in planned.jobs:
        cache.store(job.key, wheel, None)
    return [(job.key, digest, wheel.name) for job in planned.jobs]
