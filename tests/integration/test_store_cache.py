"""The configured store as the artifact cache (issue: CI as the worker pool), on the
filesystem store and on S3 (moto's real server): `wheelfarm publish` records each
wheel's job key; `wheelfarm plan` and `wheelfarm build` in another farm, whose own
cache is empty, find it there and reuse the published bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from wheelfarm.build.cache import ArtifactCache, Record
from wheelfarm.publish.signing import FarmKey
from wheelfarm.publish.storecache import StoreCache

from .helpers import PROJECTS, wheelfarm
from .publish_support import (
    FASTADD_ARGS,
    Index,
    build_fastadd_in,
    farm_using,
    publish_fastadd,
)

pytestmark = pytest.mark.integration


def test_publish_records_job_keys_in_a_pack(index: Index, fastadd_dir: Path) -> None:
    wheel, key, sha = publish_fastadd(index, fastadd_dir)
    record = Record(key, sha, wheel.name)
    (pack,) = index.store.list(StoreCache.PACKS)
    assert json.loads(index.store.get(pack) or b"")["records"] == [[key, sha, wheel.name]]
    strangers = [hashlib.sha256(f"x{i}".encode()).hexdigest() for i in range(200)]
    # Packs are unsigned: a lookup trusts them only through the farm-signed generation.
    farm_key = FarmKey(index.key.fingerprint, gnupghome=str(index.key.home))
    assert StoreCache(index.store, farm_key.open).known([*strangers, key]) == {key: record}
    assert StoreCache(index.store, farm_key.open).known(strangers) == {}
    assert StoreCache(index.store).known([key]) == {}  # no key to check with: nothing
    # Publishing the same bytes again writes nothing new: the same pack, by content.
    before = index.snapshot()
    assert index.publish(fastadd_dir).returncode == 0
    assert index.snapshot() == before


def test_plan_and_build_reuse_the_published_wheel(index: Index, fastadd_dir: Path,
                                                  tmp_path: Path) -> None:
    wheel, key, sha = publish_fastadd(index, fastadd_dir)
    farm = farm_using(index, tmp_path / "other-farm")
    plan = index.cli("plan", PROJECTS / "fastadd", *FASTADD_ARGS, "--farm", farm)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["jobs"] == []
    assert "0 of 1 jobs to build" in plan.stderr
    listed = json.loads(index.cli("plan", PROJECTS / "fastadd", *FASTADD_ARGS, "--all",
                                  "--farm", farm).stdout)["jobs"]
    assert [(j["key"], j["state"], j["artifact"]) for j in listed] == [
        (key, "cached", {"filename": wheel.name, "sha256": sha})]

    out = tmp_path / "out"
    job = build_fastadd_in(index, farm, out)
    assert job["state"] == "cached"
    assert (out / wheel.name).read_bytes() == wheel.read_bytes()
    assert (out / (wheel.name + ".intoto.json")).is_file()
    (log,) = (farm / ".wheelfarm" / "logs").rglob("*.log")
    assert f"cache hit in the store {index.store.url}" in log.read_text()
    # Now in the farm's own cache: the next build does not ask the store.
    again = index.cli("build", PROJECTS / "fastadd", *FASTADD_ARGS, "--farm", farm, "--out",
                      tmp_path / "out2")
    assert again.returncode == 0, again.stderr
    logs = sorted((farm / ".wheelfarm" / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)
    assert "cache hit in the farm's artifact cache" in logs[-1].read_text()


def test_a_record_whose_bytes_differ_is_not_a_hit(index: Index, fastadd_dir: Path,
                                                  tmp_path: Path) -> None:
    """Records are not signed: a hit must match the sha256 of the published file."""
    wheel, key, _sha = publish_fastadd(index, fastadd_dir)
    forged = Record(key, "0" * 64, wheel.name)
    farm = farm_using(index, tmp_path / "other-farm")
    local = ArtifactCache(farm / ".wheelfarm")
    assert StoreCache(index.store).fetch(forged, local) is None
    assert local.lookup(key) is None


def test_an_unreadable_store_plans_everything_with_a_warning(tmp_path: Path) -> None:
    farm = tmp_path / "farm"
    farm.mkdir()
    (farm / "wheelfarm.toml").write_text('[publish]\nurl = "s3://"\n', encoding="utf-8")
    plan = wheelfarm("plan", PROJECTS / "fastadd", *FASTADD_ARGS, "--farm", farm, cwd=farm)
    assert plan.returncode == 0, plan.stderr
    assert len(json.loads(plan.stdout)["jobs"]) == 1
    assert "warning: the store is not used as a cache" in plan.stderr
