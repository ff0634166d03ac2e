"""The content-addressed artifact cache (cache.py)."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from wheelfarm.build import provenance
from wheelfarm.build.cache import ArtifactCache, Record
from wheelfarm.publish.artifacts import FileRef, IndexedWheel
from wheelfarm.publish.manifest import Release, build_project, bundle
from wheelfarm.publish.store.fs import FsStore
from wheelfarm.publish.storecache import COMPACT_AT, StoreCache

WHEEL = "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"


def key(i: int) -> str:
    return hashlib.sha256(f"job {i}".encode()).hexdigest()


def make_wheel(directory: Path, content: bytes, name: str = WHEEL,
               with_provenance: bool = True) -> tuple[Path, Path | None]:
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / name
    wheel.write_bytes(content)
    if not with_provenance:
        return wheel, None
    sidecar = provenance.path_for(wheel)
    sidecar.write_text('{"statement": "' + content.hex() + '"}\n', encoding="utf-8")
    return wheel, sidecar


def blobs(cache: ArtifactCache) -> list[Path]:
    root = cache.root / "blobs"
    return sorted(root.iterdir()) if root.is_dir() else []


def test_store_then_lookup(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "state")
    wheel, sidecar = make_wheel(tmp_path / "out", b"wheel bytes")
    assert sidecar is not None
    assert cache.lookup(key(1)) is None
    cache.store(key(1), wheel, sidecar)
    hit = cache.lookup(key(1))
    assert hit is not None
    digest = hashlib.sha256(b"wheel bytes").hexdigest()
    assert (hit.key, hit.filename, hit.sha256) == (key(1), WHEEL, digest)
    assert hit.wheel == tmp_path / "state" / "artifacts" / "blobs" / digest / WHEEL
    assert hit.wheel.read_bytes() == b"wheel bytes"
    assert hit.provenance is not None
    assert hit.provenance.name == WHEEL + ".intoto.json"
    assert hit.provenance.read_bytes() == sidecar.read_bytes()
    # The cache holds copies: the build's output may go away.
    shutil.rmtree(tmp_path / "out")
    again = cache.lookup(key(1))
    assert again is not None and again.wheel.read_bytes() == b"wheel bytes"
    assert cache.lookup(key(2)) is None


def test_store_without_provenance(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "state")
    wheel, _ = make_wheel(tmp_path / "out", b"bare", with_provenance=False)
    cache.store(key(7), wheel, None)
    hit = cache.lookup(key(7))
    assert hit is not None and hit.provenance is None
    assert hit.wheel.read_bytes() == b"bare"


def test_known_is_exactly_the_stored_keys(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "state")
    keys = [key(i) for i in range(2000)]
    stored = set(random.Random(4).sample(keys, 50))
    wheel, sidecar = make_wheel(tmp_path / "out", b"one wheel")
    for k in stored:
        cache.store(k, wheel, sidecar)
    digest = hashlib.sha256(b"one wheel").hexdigest()
    assert cache.known(keys) == dict.fromkeys(stored, digest)
    assert set(cache.known(iter(keys))) == stored  # any iterable, read once
    assert cache.known([]) == {}
    assert cache.known(k for k in keys if k not in stored) == {}
    # Keys this farm never planned, sharing a prefix with stored ones, are not known.
    strangers = [s[:2] + "0" * 62 for s in stored]
    assert cache.known(strangers) == {}
    some = sorted(stored)[0]
    assert cache.record(some, digest) == Record(some, digest, WHEEL)
    assert cache.record(some, "0" * 64) is None


def test_known_on_an_empty_cache(tmp_path: Path) -> None:
    assert ArtifactCache(tmp_path / "nothing").known([key(1), key(2)]) == {}


def test_record_without_blob_is_a_miss(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "state")
    wheel, sidecar = make_wheel(tmp_path / "out", b"gone soon")
    cache.store(key(3), wheel, sidecar)
    hit = cache.lookup(key(3))
    assert hit is not None
    shutil.rmtree(hit.wheel.parent)
    assert cache.lookup(key(3)) is None


def test_known_agrees_with_lookup_when_the_blob_is_gone(tmp_path: Path) -> None:
    """``wheelfarm plan`` leaves out the jobs ``known()`` reports, and ``build``
    rebuilds what ``lookup()`` misses: a key whose blob was removed must be
    unknown to both, or the plan never schedules its rebuild."""
    cache = ArtifactCache(tmp_path / "state")
    wheel, sidecar = make_wheel(tmp_path / "out", b"gone soon")
    cache.store(key(3), wheel, sidecar)
    cache.store(key(4), *make_wheel(tmp_path / "out2", b"stays"))
    hit = cache.lookup(key(3))
    assert hit is not None
    shutil.rmtree(hit.wheel.parent)
    assert set(cache.known([key(3), key(4)])) == {key(4)}


def test_corrupt_record_is_a_miss(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "state")
    cache.store(key(5), *make_wheel(tmp_path / "out", b"x"))
    (record,) = (cache.root / "keys" / key(5)[:2]).glob(f"{key(5)}.*.json")
    record.write_text("{not json", encoding="utf-8")
    assert cache.lookup(key(5)) is None


def test_same_wheel_under_two_keys_keeps_one_blob(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "state")
    wheel, sidecar = make_wheel(tmp_path / "a", b"identical")
    cache.store(key(1), wheel, sidecar)
    copy, copy_sidecar = make_wheel(tmp_path / "b", b"identical")
    cache.store(key(2), copy, copy_sidecar)
    digest = hashlib.sha256(b"identical").hexdigest()
    assert [p.name for p in blobs(cache)] == [digest]
    assert sorted(p.name for p in (cache.root / "blobs" / digest).iterdir()) == [
        WHEEL, WHEEL + ".intoto.json"]
    one, two = cache.lookup(key(1)), cache.lookup(key(2))
    assert one is not None and two is not None
    assert one.wheel == two.wheel
    assert set(cache.known([key(1), key(2), key(3)])) == {key(1), key(2)}


def test_different_wheels_get_their_own_blobs(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "state")
    cache.store(key(1), *make_wheel(tmp_path / "a", b"first"))
    cache.store(key(2), *make_wheel(tmp_path / "b", b"second"))
    assert {p.name for p in blobs(cache)} == {hashlib.sha256(b"first").hexdigest(),
                                              hashlib.sha256(b"second").hexdigest()}
    one, two = cache.lookup(key(1)), cache.lookup(key(2))
    assert one is not None and one.wheel.read_bytes() == b"first"
    assert two is not None and two.wheel.read_bytes() == b"second"


def test_restoring_a_key_points_it_at_the_new_wheel(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "state")
    cache.store(key(1), *make_wheel(tmp_path / "a", b"first"))
    cache.store(key(1), *make_wheel(tmp_path / "b", b"second"))
    hit = cache.lookup(key(1))
    assert hit is not None and hit.wheel.read_bytes() == b"second"
    leftovers = [p.name for p in (cache.root / "keys").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


# -- the configured store as a cache ------------------------------------------------------------

def published_store(root: Path, names: dict[str, bytes]) -> FsStore:
    store = FsStore(root)
    for name, data in names.items():
        store.put(f"files/{name}", data)
    return store


def test_store_cache_finds_exactly_the_recorded_keys(tmp_path: Path) -> None:
    store = published_store(tmp_path / "index", {WHEEL: b"published wheel"})
    digest = hashlib.sha256(b"published wheel").hexdigest()
    recorded = [Record(key(i), digest, WHEEL) for i in range(0, 120, 7)]
    writer = StoreCache(store)
    first = writer.add(recorded[:5])
    assert first is not None and first.startswith("cache/packs/")
    assert writer.add(recorded[:5]) == first  # the same records: the same pack, once
    writer.add(recorded[5:])
    assert writer.add([]) is None
    # Not ours: another kind of object, a pack with damaged rows, a writer's temp file.
    store.put("cache/packs/notes.txt", b"x")
    bad_rows = [["../x", "y", "z"], 5, [key(1), digest, "a/b.whl"]]
    store.put("cache/packs/bad.json", json.dumps({"records": bad_rows}).encode())
    (tmp_path / "index" / "cache" / "packs" / f".{key(2)}.json.tmp").write_bytes(b"{}")
    asked = [key(i) for i in range(120)]
    want = {r.key: r for r in recorded}
    assert StoreCache(store).listed(asked) == want
    assert StoreCache(store).listed([key(0), key(1)]) == {key(0): want[key(0)]}
    assert StoreCache(store).listed([]) == {}
    assert StoreCache(FsStore(tmp_path / "empty")).listed(asked) == {}
    # Packs are unsigned: without a signed generation listing them, nothing is known.
    assert StoreCache(store).known(asked) == {}


def test_packs_are_compacted_without_losing_a_record(tmp_path: Path) -> None:
    store = published_store(tmp_path / "index", {})
    recorded = [Record(key(i), key(i + 1000), f"p{i}-1.0-py3-none-any.whl") for i in range(40)]
    for r in recorded:  # one publish each
        StoreCache(store).add([r])
    packs = store.list(StoreCache.PACKS)
    assert len(packs) <= COMPACT_AT + 1
    assert StoreCache(store).listed(r.key for r in recorded) == {r.key: r for r in recorded}


def statement_for(job_key: str, sha256: str) -> bytes:
    """The parts of a wheelfarm provenance statement a store hit is checked against."""
    return json.dumps({
        "subject": [{"name": WHEEL, "digest": {"sha256": sha256}}],
        "predicate": {"buildDefinition": {"internalParameters": {"jobKey": job_key}}},
    }).encode()


def signed_view(store: FsStore, data: bytes, statement: bytes) -> Callable[[bytes, str], str]:
    """A live generation listing WHEEL; the returned opener stands in for gpg (which a
    unit test does not run) and accepts exactly the InRelease written here."""
    artifact = IndexedWheel(WHEEL, hashlib.sha256(data).hexdigest(), len(data),
                            "2026-01-01T00:00:00Z",
                            sidecars=((".intoto.json", FileRef.of(statement)),))
    _manifest, body, _pages = build_project("demo", [artifact])
    store.put(f"{bundle('demo', FileRef.of(body).sha256)}/manifest.json", body)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    text = Release(1, now, now, "test", ("demo",), {"demo": FileRef.of(body)}, {}).render()
    store.put("InRelease", b"SIGNED\n" + text.encode())

    def opener(signed: bytes, what: str) -> str:
        assert signed.startswith(b"SIGNED\n"), what
        return signed.removeprefix(b"SIGNED\n").decode()
    return opener


def test_store_cache_fetch_checks_digest_and_provenance(tmp_path: Path) -> None:
    data = b"published wheel"
    digest = hashlib.sha256(data).hexdigest()
    store = published_store(tmp_path / "index", {WHEEL: data})
    statement = statement_for(key(1), digest)
    store.put(f"files/{WHEEL}.intoto.json", statement)
    local = ArtifactCache(tmp_path / "farm")
    good = Record(key(1), digest, WHEEL)
    assert StoreCache(store).fetch(good, local) is None  # no signed generation to trust
    opener = signed_view(store, data, statement)
    hit = StoreCache(store, opener).fetch(good, local)
    assert hit is not None and hit.wheel.read_bytes() == data
    assert hit.provenance is not None and hit.provenance.read_bytes() == statement
    assert local.lookup(key(1)) == hit
    # A record naming other bytes, a file the store does not hold, or a key the
    # published provenance does not name (a forged pack) is no hit.
    assert StoreCache(store).fetch(Record(key(2), "0" * 64, WHEEL), local) is None
    assert StoreCache(store).fetch(Record(key(3), digest, "gone-1.0-py3-none-any.whl"),
                                   local) is None
    assert StoreCache(store).fetch(Record(key(4), digest, WHEEL), local) is None
    assert all(local.lookup(key(i)) is None for i in (2, 3, 4))


def test_store_cache_fetch_needs_provenance(tmp_path: Path) -> None:
    data = b"published wheel"
    store = published_store(tmp_path / "index", {WHEEL: data})
    local = ArtifactCache(tmp_path / "farm")
    record = Record(key(1), hashlib.sha256(data).hexdigest(), WHEEL)
    assert StoreCache(store).fetch(record, local) is None
    store.put(f"files/{WHEEL}.intoto.json", b"{not json")
    assert StoreCache(store).fetch(record, local) is None
