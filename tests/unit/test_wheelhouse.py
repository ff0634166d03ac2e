"""The wheelhouse: atomic adds under its lock, and the simple/ index it keeps."""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from pathlib import Path

import pytest

from wheelfarm.build import debuginfo
from wheelfarm.errors import WheelChanged
from wheelfarm.farm.wheelhouse import INCOMING, Debug, Wheelhouse

from .test_index import make_sdist, make_wheel, parse

BUILD_ID = "5da81666f36c9e00225ff4b5ec54d66f3df73091"


def listed(house: Path) -> set[str]:
    """The wheel names the index's project pages link to."""
    names = set()
    for page in (house / "simple").glob("*/index.json"):
        names |= {f["filename"] for f in json.loads(page.read_text())["files"]}
    return names


def debug_file(tmp_path: Path, data: bytes) -> debuginfo.DebugFile:
    path = tmp_path / "blob"
    path.write_bytes(data)
    return debuginfo.DebugFile(BUILD_ID, "demo/_x.so", hashlib.sha256(data).hexdigest(),
                               len(data), path)


def test_add_places_debug_files_provenance_and_the_wheel_then_indexes(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0")
    statement = tmp_path / f"{wheel.name}.intoto.json"
    statement.write_text("{}")
    house = Wheelhouse(tmp_path / "house")
    assert house.add(wheel, statement, [debug_file(tmp_path, b"debug")]) == "new"
    assert (house.root / statement.name).read_text() == "{}"
    assert [f.build_id for f in debuginfo.read_listing(house.root / wheel.name)] == [BUILD_ID]
    assert listed(house.root) == {wheel.name}
    assert (house.root / wheel.name).stat().st_mode & 0o777 == 0o644
    assert house.add(wheel, statement) == "same"
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr("demo/extra.py", "")
    assert house.add(wheel) == "replaced"
    assert (house.root / wheel.name).read_bytes() == wheel.read_bytes()
    assert not [p for p in house.root.rglob(f"{INCOMING}*")]


def test_a_failed_add_leaves_the_wheelhouse_as_it_was(tmp_path: Path) -> None:
    house = Wheelhouse(tmp_path / "house")
    first = make_wheel(tmp_path, "demo", "1.0")
    house.add(first)
    before = {p: p.read_bytes() for p in house.root.rglob("*") if p.is_file()}
    (tmp_path / "other").mkdir()
    other = make_wheel(tmp_path / "other", "demo", "2.0")
    with pytest.raises(WheelChanged):
        house.add(other, debug=[debug_file(tmp_path, b"debug")], sha256="0" * 64)
    with pytest.raises(FileNotFoundError):
        house.add(tmp_path / "missing-1.0-py3-none-any.whl")
    after = {p: p.read_bytes() for p in house.root.rglob("*") if p.is_file()}
    assert after == before


def test_a_debug_file_written_once_keeps_its_bytes(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0")
    house = Wheelhouse(tmp_path / "house", index=False)
    house.add(wheel, debug=Debug([debug_file(tmp_path, b"first")], once=True))
    house.add(wheel, debug=Debug([debug_file(tmp_path, b"second")], once=True))
    assert debuginfo.out_path(house.root, BUILD_ID).read_bytes() == b"first"
    assert debuginfo.read_listing(house.root / wheel.name) == ()  # the other bytes: left out
    house.add(wheel, debug=[debug_file(tmp_path, b"second")])  # a build's own: replaced
    assert debuginfo.out_path(house.root, BUILD_ID).read_bytes() == b"second"


def test_concurrent_adds_never_list_a_half_written_wheel(tmp_path: Path) -> None:
    """Threads add wheels while a reader watches: whatever the index lists is whole."""
    wheels = []
    for i in range(12):
        folder = tmp_path / f"job{i}"
        folder.mkdir()
        wheels.append(make_wheel(folder, f"proj{i % 3}", f"1.{i}"))
    house = Wheelhouse(tmp_path / "house")
    done = threading.Event()
    seen_bad: list[str] = []

    def read() -> None:
        while not done.is_set():
            for page in (house.root / "simple").glob("*/index.json"):
                for f in json.loads(page.read_text())["files"]:
                    path = house.root / f["filename"]
                    if hashlib.sha256(path.read_bytes()).hexdigest() != f["hashes"]["sha256"]:
                        seen_bad.append(f["filename"])

    reader = threading.Thread(target=read)
    reader.start()
    adders = [threading.Thread(target=house.add, args=(w,)) for w in wheels]
    for t in adders:
        t.start()
    for t in adders:
        t.join()
    done.set()
    reader.join()
    assert seen_bad == []
    assert listed(house.root) == {w.name for w in wheels}
    assert not [p for p in house.root.iterdir() if p.name.startswith(INCOMING)]


def test_add_files_copies_debug_files_first_and_indexes_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    wheel = make_wheel(out, "demo", "1.0")
    debuginfo.place([debug_file(tmp_path, b"debug")], wheel.name, out)
    house = Wheelhouse(tmp_path / "house")
    house.add_files([(wheel.name, wheel),
                     *((f"debug/{p.name}", p) for p in (out / "debug").iterdir())])
    assert [f.build_id for f in debuginfo.read_listing(house.root / wheel.name)] == [BUILD_ID]
    assert listed(house.root) == {wheel.name}


# -- writing a tree -----------------------------------------------------------------------------

def test_write_simple_index(tmp_path: Path) -> None:
    make_wheel(tmp_path, "Foo_Bar", "1.0", dist="Foo_Bar", requires_python=">=3.9")
    make_wheel(tmp_path, "baz", "0.1")
    make_sdist(tmp_path, "Foo_Bar", "1.0", ">=3.9")
    (tmp_path / "build-logs.tar.gz").write_bytes(b"")  # not an sdist name: skipped
    assert Wheelhouse(tmp_path).reindex() == ["baz", "foo-bar"]
    simple = tmp_path / "simple"
    root = (simple / "index.html").read_text()
    assert [a["href"] for a in parse(root).anchors] == ["baz/", "foo-bar/"]
    project = parse((simple / "foo-bar/index.html").read_text())
    assert [a["href"].split("#")[0] for a in project.anchors if a["href"]] == [
        "../../Foo_Bar-1.0-py3-none-any.whl", "../../Foo_Bar-1.0.tar.gz"]
    # The relative URLs must point at the real files.
    for a in project.anchors:
        assert a["href"]
        assert (simple / "foo-bar" / a["href"].split("#")[0]).resolve().is_file()
    data = json.loads((simple / "foo-bar/index.json").read_text())
    assert data["versions"] == ["1.0"]
    assert json.loads((simple / "index.json").read_text())["projects"] == [
        {"name": "baz"}, {"name": "foo-bar"}]
    assert not [p for p in simple.rglob(".*")], "no temp files left behind"
    assert (simple / "index.html").stat().st_mode & 0o777 == 0o644


def test_write_is_byte_identical_and_removes_stale(tmp_path: Path) -> None:
    make_wheel(tmp_path, "keep", "1.0")
    gone = make_wheel(tmp_path, "gone", "1.0")
    Wheelhouse(tmp_path).reindex()
    first = {p: p.read_bytes() for p in (tmp_path / "simple").rglob("*") if p.is_file()}
    Wheelhouse(tmp_path).reindex()
    second = {p: p.read_bytes() for p in (tmp_path / "simple").rglob("*") if p.is_file()}
    assert first == second

    (tmp_path / "simple/gone/notes.txt").write_text("not ours")
    gone.unlink()
    assert Wheelhouse(tmp_path).reindex() == ["keep"]
    assert not (tmp_path / "simple/gone/index.html").exists()
    assert not (tmp_path / "simple/gone/index.json").exists()
    assert (tmp_path / "simple/gone/notes.txt").exists(), "foreign files are left alone"
    assert "gone" not in (tmp_path / "simple/index.html").read_text()

    (tmp_path / "simple/gone/notes.txt").unlink()
    Wheelhouse(tmp_path).reindex()
    assert not (tmp_path / "simple/gone").exists()


def test_empty_wheelhouse(tmp_path: Path) -> None:
    assert Wheelhouse(tmp_path).reindex() == []
    assert parse((tmp_path / "simple/index.html").read_text()).anchors == []


def test_add_files_never_replaces_the_lock(tmp_path: Path) -> None:
    """An attempt's output is a wheelhouse too: its lock file must not be copied over
    the farm's (a new inode would let two writers in at once)."""
    stray = tmp_path / ".wheelfarm-lock"
    stray.write_text("")
    with pytest.raises(ValueError, match="dot files"):
        Wheelhouse(tmp_path / "house").add_files([(".wheelfarm-lock", stray)])
