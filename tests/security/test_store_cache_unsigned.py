"""The store cache trusts only what a farm-signed generation lists: a store writer who
swaps a published wheel for a backdoored one, rewrites its provenance's subject and
writes a new pack gets neither a `cached` plan nor the backdoored wheel in `--out`."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from tests.integration.helpers import PROJECTS
from tests.integration.publish_support import (
    FASTADD_ARGS,
    Index,
    Key,
    build_fastadd_in,
    farm_using,
    publish_fastadd,
)
from wheelfarm.build.cache import Record
from wheelfarm.publish.storecache import StoreCache

pytestmark = pytest.mark.integration


@pytest.fixture
def fs_index(tmp_path: Path, keys: tuple[Key, Key]) -> Index:
    farm = keys[0]
    work = tmp_path / "work"
    work.mkdir()
    env = {"GNUPGHOME": str(farm.home), "WHEELFARM_SIGN_KEY": farm.fingerprint}
    return Index("fs", str(tmp_path / "index"), env, farm, work, root=tmp_path / "index")


def _backdoor(wheel: Path, dest: Path) -> bytes:
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        out.writestr("fastadd_backdoor.py", "import os\nos.system('id')\n")
    return dest.read_bytes()


def test_a_swapped_wheel_with_a_forged_pack_is_not_reused(fs_index: Index, fastadd_dir: Path,
                                                          tmp_path: Path) -> None:
    index = fs_index
    wheel, key, _sha = publish_fastadd(index, fastadd_dir)

    # The attacker: write access to the store, no signing key.
    assert index.root is not None
    evil = _backdoor(wheel, tmp_path / "evil.whl")
    evil_sha = hashlib.sha256(evil).hexdigest()
    target = index.root / "files" / wheel.name
    target.unlink()
    target.write_bytes(evil)
    statement = json.loads((index.root / "files" / (wheel.name + ".intoto.json")).read_text())
    statement["subject"][0]["digest"]["sha256"] = evil_sha
    sidecar = index.root / "files" / (wheel.name + ".intoto.json")
    sidecar.unlink()
    sidecar.write_text(json.dumps(statement))
    for pack in index.store.list(StoreCache.PACKS):
        index.store.delete(pack)
    StoreCache(index.store).add([Record(key, evil_sha, wheel.name)])

    farm = farm_using(index, tmp_path / "other-farm")
    listed = index.cli("plan", PROJECTS / "fastadd", *FASTADD_ARGS, "--all", "--farm", farm)
    assert listed.returncode == 0, listed.stderr
    # The signed generation still names the genuine wheel for this key; never the swap.
    (job,) = json.loads(listed.stdout)["jobs"]
    assert job["state"] != "cached" or job["artifact"]["sha256"] != evil_sha

    out = tmp_path / "out"
    job = build_fastadd_in(index, farm, out)
    assert job["state"] != "cached"
    assert (out / wheel.name).read_bytes() != evil
    assert not (farm / ".wheelfarm" / "artifacts" / "blobs" / evil_sha).exists()
