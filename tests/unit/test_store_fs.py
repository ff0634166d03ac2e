"""The filesystem store: write-once objects, atomic view switches, refusal of unsafe keys."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from wheelfarm.errors import ConfigError, StoreError
from wheelfarm.publish.store import View, check_key, open_store
from wheelfarm.publish.store.fs import FsStore
from wheelfarm.publish.store.s3 import S3Store


def view(store: FsStore, generation: int, projects: dict[str, str],
         changed: set[str] | None = None, root: bool = True) -> View:
    store.put_new(f"generations/{generation}/InRelease", f"gen {generation}\n".encode())
    return View(
        generation=generation, projects=projects,
        changed=frozenset(changed if changed is not None else projects),
        root={"simple/index.html": f"root {generation}\n".encode(),
              "simple/index.json": b"{}\n"} if root else {},
        signed={"SHA256SUMS": f"sums {generation}\n".encode(), "SHA256SUMS.asc": b"sig\n",
                "InRelease": f"gen {generation}\n".encode()})


def bundle(store: FsStore, project: str, tag: str) -> str:
    prefix = f"projects/{project}.{tag}"
    for name in ("distros.json", "index.html", "index.json"):
        store.put(f"{prefix}/{name}", f"{project} {tag} {name}\n".encode())
    return prefix


def test_put_get_and_put_new(tmp_path: Path) -> None:
    store = FsStore(tmp_path / "idx")
    assert store.get("files/a.whl") is None
    assert store.put_new("files/a.whl", b"one") is True
    assert store.put_new("files/a.whl", b"two") is False
    assert store.get("files/a.whl") == b"one"
    store.put("simple-notes/x", b"1")
    store.put("simple-notes/x", b"2")
    assert store.get("simple-notes/x") == b"2"
    assert oct((tmp_path / "idx" / "files" / "a.whl").stat().st_mode & 0o777) == "0o644"
    assert not [p for p in (tmp_path / "idx" / "files").iterdir() if p.name.startswith(".")]


def test_put_new_has_exactly_one_winner_among_threads(tmp_path: Path) -> None:
    store = FsStore(tmp_path)
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        barrier.wait()
        if store.put_new("generations/2/InRelease", f"writer {i}".encode()):
            wins.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.get("generations/2/InRelease") == f"writer {wins[0]}".encode()


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "files/../../x", "a//b", "a/./b",
                                 "files/.", "files/a b", "files\\x", "files/\x00"])
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(StoreError, match="unsafe store key"):
        check_key(key)
    with pytest.raises(StoreError):
        FsStore(tmp_path).get(key)


def test_get_refuses_a_link_out_of_the_index(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    root = tmp_path / "idx"
    (root / "files").mkdir(parents=True)
    os.symlink(secret, root / "files" / "a.whl")
    with pytest.raises(StoreError, match="outside the index"):
        FsStore(root).get("files/a.whl")


def test_switch_replaces_each_live_name(tmp_path: Path) -> None:
    store = FsStore(tmp_path)
    a1 = bundle(store, "alpha", "1")
    store.switch(view(store, 1, {"alpha": a1}))
    assert store.live_generation() == 1
    assert store.get("simple/alpha/index.html") == b"alpha 1 index.html\n"
    assert store.get("InRelease") == b"gen 1\n"
    assert store.get("simple/index.html") == b"root 1\n"

    a2, b2 = bundle(store, "alpha", "2"), bundle(store, "beta", "2")
    store.switch(view(store, 2, {"alpha": a2, "beta": b2}))
    assert store.get("simple/alpha/index.html") == b"alpha 2 index.html\n"
    assert store.get("simple/beta/index.json") == b"beta 2 index.json\n"
    # One link per project: its three pages switch together; InRelease is the commit record.
    assert os.readlink(tmp_path / "simple" / "alpha") == "../projects/alpha.2"
    assert os.readlink(tmp_path / "InRelease") == "generations/2/InRelease"
    assert store.get("SHA256SUMS") == b"sums 2\n"
    assert not [p.name for p in (tmp_path / "simple").iterdir() if p.name.startswith(".")]


def test_switch_writes_only_what_changed(tmp_path: Path) -> None:
    store = FsStore(tmp_path)
    a, b = bundle(store, "alpha", "1"), bundle(store, "beta", "1")
    store.switch(view(store, 1, {"alpha": a, "beta": b}))
    before = os.lstat(tmp_path / "simple" / "beta").st_ino
    a2 = bundle(store, "alpha", "2")
    store.switch(view(store, 2, {"alpha": a2, "beta": b}, {"alpha"}, root=False))
    assert os.lstat(tmp_path / "simple" / "beta").st_ino == before
    assert store.get("simple/index.html") == b"root 1\n"  # same projects, same root pages
    assert store.get("simple/alpha/index.json") == b"alpha 2 index.json\n"


def test_switch_never_goes_back_to_an_older_generation(tmp_path: Path) -> None:
    store = FsStore(tmp_path)
    b = bundle(store, "alpha", "1")
    store.switch(view(store, 3, {"alpha": b}))
    store.switch(view(store, 2, {"alpha": bundle(store, "alpha", "2")}))  # a late publisher
    assert store.live_generation() == 3
    assert store.get("InRelease") == b"gen 3\n"
    assert store.get("simple/alpha/index.html") == b"alpha 1 index.html\n"


def test_switch_drops_removed_projects_and_keeps_their_bundles(tmp_path: Path) -> None:
    store = FsStore(tmp_path)
    a, b = bundle(store, "alpha", "1"), bundle(store, "beta", "1")
    store.switch(view(store, 1, {"alpha": a, "beta": b}))
    store.switch(view(store, 2, {"alpha": a}, {"beta"}))
    assert store.get("simple/beta/index.html") is None
    # A rollback may need it again.
    assert store.get(f"{b}/index.html") == b"beta 1 index.html\n"


def test_switch_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "simple" / "alpha").mkdir(parents=True)
    store = FsStore(tmp_path)
    with pytest.raises(StoreError, match="not wheelfarm's link"):
        store.switch(view(store, 1, {"alpha": bundle(store, "alpha", "1")}))


def test_open_store_urls(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "a"))
    assert isinstance(store, FsStore) and store.root == tmp_path / "a"
    store = open_store((tmp_path / "b").as_uri())
    assert isinstance(store, FsStore) and store.root == tmp_path / "b"
    s3 = open_store("s3://bucket/some/prefix/", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.url) == ("bucket", "some/prefix/", "s3://bucket/some/prefix")
    with pytest.raises(ConfigError, match="unsupported store"):
        open_store("ftp://host/x")
    with pytest.raises(ConfigError, match="local path"):
        open_store("file://otherhost/x")
    with pytest.raises(ConfigError, match="s3://BUCKET"):
        open_store("s3:///prefix")


def test_list_by_prefix(tmp_path: Path) -> None:
    store = FsStore(tmp_path / "index")
    for key in ("cache/ab1.x", "cache/ab2.y", "cache/cd3.z", "files/a.whl", "deep/ab/c/d.txt"):
        store.put(key, b"1")
    (tmp_path / "index" / "cache" / ".ab9.tmp").write_bytes(b"half written")
    assert sorted(store.list("cache/ab")) == ["cache/ab1.x", "cache/ab2.y"]
    assert sorted(store.list("cache/")) == ["cache/ab1.x", "cache/ab2.y", "cache/cd3.z"]
    assert store.list("deep/a") == ["deep/ab/c/d.txt"]
    assert store.list("nothing/") == [] and store.list("cache/zz") == []
    with pytest.raises(StoreError):
        store.list("../etc/")
