"""Deterministic wheels, the build clock and the prefix maps (reproducible.py).

The wheels here are zip files written by the tests themselves, so each
property is checked against what went in, not against the module's output.
"""

from __future__ import annotations

import csv
import io
import json
import os
import string
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import wheels
from wheelfarm.build import ccwrap, reproducible
from wheelfarm.build.ccwrap import PREFIX_MAPS_VAR
from wheelfarm.build.reproducible import ZIP_EPOCH, differing_members, normalize_wheel

YEAR_2100 = 4102444800  # 2100-01-01T00:00:00Z
# Characters a file name in a wheel may hold; the comma matters because
# RECORD is a CSV file.
NAME_CHARS = string.ascii_letters + string.digits + "_-.+ ,é"
SEGMENT = st.text(NAME_CHARS, min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..") and not s.endswith(".dist-info") and not s.endswith(".data"))
PROJECT = st.builds(lambda a, b: a + b, st.sampled_from(string.ascii_lowercase),
                    st.text(string.ascii_lowercase + string.digits + "_", max_size=8))
DIST_INFO_EXTRAS = ("entry_points.txt", "top_level.txt", "licenses/LICENSE", "INSTALLER")
PROPS = settings(max_examples=50, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass(frozen=True)
class Member:
    data: bytes
    executable: bool


@dataclass(frozen=True)
class Contents:
    """What a wheel holds, independent of how its zip was written."""

    dist_info: str
    members: dict[str, Member]  # every file except RECORD

    @property
    def record(self) -> str:
        return f"{self.dist_info}/RECORD"

    def payload(self) -> list[str]:
        return [n for n in self.members if not n.startswith(self.dist_info + "/")]

    def metadata(self) -> list[str]:
        return [n for n in self.members if n.startswith(self.dist_info + "/")]


def _no_file_dir_clash(names: list[str]) -> bool:
    return not any(other.startswith(name + "/") for name in names for other in names)


@st.composite
def contents(draw: st.DrawFn) -> Contents:
    project = draw(PROJECT)
    dist_info = f"{project}-1.0.dist-info"
    paths = draw(st.lists(st.lists(SEGMENT, min_size=1, max_size=3).map("/".join),
                          max_size=8, unique=True).filter(_no_file_dir_clash))
    extras = draw(st.lists(st.sampled_from(DIST_INFO_EXTRAS), unique=True, max_size=3))
    members: dict[str, Member] = {
        f"{dist_info}/METADATA": Member(
            f"Metadata-Version: 2.1\nName: {project}\nVersion: 1.0\n".encode(), False),
        f"{dist_info}/WHEEL": Member(
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
            b"Tag: cp312-cp312-linux_x86_64\n", False),
    }
    for name in extras:
        members[f"{dist_info}/{name}"] = Member(draw(st.binary(max_size=64)), False)
    for path in paths:
        members[path] = Member(draw(st.binary(max_size=300)), draw(st.booleans()))
    return Contents(dist_info, members)


# 1980-01-01 .. 2099-12-31, as a zip can hold them.
DATE_TIME = st.tuples(st.integers(1980, 2099), st.integers(1, 12), st.integers(1, 28),
                      st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
# Mode bits with at least one x bit, or with none.
EXECUTABLE_MODE = st.builds(lambda m, x: m | x, st.integers(0, 0o7777),
                            st.sampled_from([0o100, 0o010, 0o001, 0o111]))
PLAIN_MODE = st.integers(0, 0o7777).map(lambda m: m & ~0o111)
# How one member is written: time, host system, file type bits, compression.
WRITING = st.tuples(DATE_TIME, st.sampled_from([0, 3]), st.sampled_from([0, 0o100000]),
                    st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
STALE_RECORD = st.sampled_from([b"", b"garbage,,\n", b"x/y,sha256=AAAA,3\n"])


@st.composite
def layouts(draw: st.DrawFn, wheel: Contents) -> bytes:
    """One zip of ``wheel``: random order, timestamps, modes (keeping whether
    each file is executable), compression, directory entries, stale RECORD."""
    entries: list[tuple[str, bytes | None, int]] = []  # name, data (None: directory), mode
    for name, member in wheel.members.items():
        mode = draw(EXECUTABLE_MODE if member.executable else PLAIN_MODE)
        entries.append((name, member.data, mode))
    entries.append((wheel.record, draw(STALE_RECORD), draw(PLAIN_MODE)))
    directories = sorted({name.rsplit("/", 1)[0] + "/" for name in wheel.members if "/" in name})
    keep = draw(st.lists(st.booleans(), min_size=len(directories), max_size=len(directories)))
    entries += [(d, None, 0o755) for d, k in zip(directories, keep, strict=True) if k]
    order = draw(st.permutations(entries))
    how = draw(st.lists(WRITING, min_size=len(order), max_size=len(order)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for (name, data, mode), (date_time, system, file_type, compression) in zip(
                order, how, strict=True):
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.create_system = system
            if data is None:
                info.external_attr = ((0o040000 | mode) << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = (file_type | mode) << 16
                info.compress_type = compression
                zf.writestr(info, data)
    return buf.getvalue()


def _write(directory: Path, blob: bytes, name: str = "demo-1.0-cp312-cp312-linux_x86_64.whl"
           ) -> Path:
    path = directory / name
    path.write_bytes(blob)
    return path


def _zip_seconds(epoch: int) -> tuple[int, ...]:
    """The date_time a zip holds for ``epoch`` (clamped to 1980; DOS times
    have two-second resolution)."""
    stamp = time.gmtime(max(epoch, ZIP_EPOCH))
    return (*stamp[:5], stamp.tm_sec - stamp.tm_sec % 2)


# -- normalize_wheel: properties ----------------------------------------------------------


@PROPS
@given(data=st.data(), epoch=st.integers(ZIP_EPOCH, YEAR_2100))
def test_layout_does_not_matter(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject,
                                epoch: int) -> None:
    wheel = data.draw(contents())
    first, second = data.draw(layouts(wheel)), data.draw(layouts(wheel))
    here = tmp_path_factory.mktemp("layout")
    a = _write(here, first, "a-1.0-py3-none-any.whl")
    b = _write(here, second, "b-1.0-py3-none-any.whl")
    normalize_wheel(a, epoch)
    normalize_wheel(b, epoch)
    assert a.read_bytes() == b.read_bytes()
    assert differing_members(a, b) == []


@PROPS
@given(data=st.data(), epoch=st.integers(0, YEAR_2100))
def test_members_order_times_modes(tmp_path_factory: pytest.TempPathFactory,
                                   data: st.DataObject, epoch: int) -> None:
    wheel = data.draw(contents())
    path = _write(tmp_path_factory.mktemp("order"), data.draw(layouts(wheel)))
    normalize_wheel(path, epoch)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        written = {i.filename: zf.read(i) for i in infos}
    names = [i.filename for i in infos]
    # Payload sorted, then the other .dist-info files sorted, RECORD last; no directories.
    assert names == [*sorted(wheel.payload()), *sorted(wheel.metadata()), wheel.record]
    assert not any(i.is_dir() for i in infos)
    expected_time = _zip_seconds(epoch)
    for info in infos:
        assert info.date_time == expected_time, info.filename
        assert info.compress_type == zipfile.ZIP_DEFLATED, info.filename
        mode = info.external_attr >> 16
        if info.filename == wheel.record:
            assert mode == 0o100644
            continue
        member = wheel.members[info.filename]
        assert mode == (0o100755 if member.executable else 0o100644), info.filename
        assert written[info.filename] == member.data, info.filename


@PROPS
@given(data=st.data(), epoch=st.integers(0, YEAR_2100))
def test_record_matches_the_bytes(tmp_path_factory: pytest.TempPathFactory,
                                  data: st.DataObject, epoch: int) -> None:
    wheel = data.draw(contents())
    path = _write(tmp_path_factory.mktemp("record"), data.draw(layouts(wheel)))
    normalize_wheel(path, epoch)
    with zipfile.ZipFile(path) as zf:
        written = {i.filename: zf.read(i) for i in zf.infolist()}
    rows = list(csv.reader(io.StringIO(written[wheel.record].decode("utf-8"))))
    by_name = {row[0]: row[1:] for row in rows}
    assert len(rows) == len(written)  # one row per member, none twice
    assert set(by_name) == set(written)
    for name, data_ in written.items():
        if name == wheel.record:
            assert by_name[name] == ["", ""]
        else:
            assert by_name[name] == [wheels.record_hash(data_), str(len(data_))], name


@PROPS
@given(data=st.data(), epoch=st.integers(0, YEAR_2100))
def test_normalizing_twice_changes_nothing(tmp_path_factory: pytest.TempPathFactory,
                                           data: st.DataObject, epoch: int) -> None:
    wheel = data.draw(contents())
    path = _write(tmp_path_factory.mktemp("twice"), data.draw(layouts(wheel)))
    normalize_wheel(path, epoch)
    once = path.read_bytes()
    normalize_wheel(path, epoch)
    assert path.read_bytes() == once
    assert not list(path.parent.glob("*.normalizing"))


# -- normalize_wheel: examples ------------------------------------------------------------


def _plain_wheel(path: Path, members: dict[str, bytes], *, mode: int = 0o644,
                 date_time: tuple[int, int, int, int, int, int] = (2020, 5, 17, 12, 0, 0)
                 ) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, data)
    return path


BASE = {
    "demo/__init__.py": b"x = 1\n",
    "demo/_ext.so": b"\x7fELF....",
    "demo-1.0.dist-info/METADATA": b"Name: demo\n",
    "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\n",
    "demo-1.0.dist-info/RECORD": b"",
}


def test_record_quotes_a_name_with_a_comma(tmp_path: Path) -> None:
    """RECORD is CSV: a member named ``a,b.py`` must be one field, as pip reads it."""
    path = _plain_wheel(tmp_path / "demo-1.0-py3-none-any.whl",
                        {**BASE, "demo/a,b.py": b"print(1)\n"})
    normalize_wheel(path, ZIP_EPOCH)
    with zipfile.ZipFile(path) as zf:
        rows = list(csv.reader(io.StringIO(zf.read("demo-1.0.dist-info/RECORD").decode())))
    assert ["demo/a,b.py", wheels.record_hash(b"print(1)\n"), "9"] in rows


def test_epoch_before_1980_is_clamped_and_odd_seconds_round_down(tmp_path: Path) -> None:
    path = _plain_wheel(tmp_path / "demo-1.0-py3-none-any.whl", BASE)
    normalize_wheel(path, 0)
    with zipfile.ZipFile(path) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    normalize_wheel(path, 1_700_000_001)  # 2023-11-14T22:13:21Z
    with zipfile.ZipFile(path) as zf:
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def test_two_dist_info_directories_are_refused(tmp_path: Path) -> None:
    path = _plain_wheel(tmp_path / "demo-1.0-py3-none-any.whl",
                        {**BASE, "other-2.0.dist-info/METADATA": b"Name: other\n"})
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"expected one \.dist-info directory, found 2"):
        normalize_wheel(path, ZIP_EPOCH)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_data_directory_is_payload(tmp_path: Path) -> None:
    path = _plain_wheel(tmp_path / "demo-1.0-py3-none-any.whl",
                        {**BASE, "demo-1.0.data/scripts/tool": b"#!python\n"})
    normalize_wheel(path, ZIP_EPOCH)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert names == ["demo-1.0.data/scripts/tool", "demo/__init__.py", "demo/_ext.so",
                     "demo-1.0.dist-info/METADATA", "demo-1.0.dist-info/WHEEL",
                     "demo-1.0.dist-info/RECORD"]


# -- differing_members --------------------------------------------------------------------


def test_differing_members_names_changed_and_added(tmp_path: Path) -> None:
    a = _plain_wheel(tmp_path / "a.whl", BASE)
    b = _plain_wheel(tmp_path / "b.whl", {**BASE, "demo/_ext.so": b"\x7fELF!!!!",
                                          "demo/new.py": b""})
    assert differing_members(a, b) == ["demo/_ext.so", "demo/new.py"]
    assert differing_members(b, a) == ["demo/_ext.so", "demo/new.py"]


def test_differing_members_sees_mode_and_time(tmp_path: Path) -> None:
    a = _plain_wheel(tmp_path / "a.whl", BASE)
    assert differing_members(a, _plain_wheel(tmp_path / "same.whl", BASE)) == []
    b = _plain_wheel(tmp_path / "b.whl", BASE, mode=0o755)
    assert differing_members(a, b) == sorted(BASE)
    c = _plain_wheel(tmp_path / "c.whl", BASE, date_time=(2021, 1, 1, 0, 0, 0))
    assert differing_members(a, c) == sorted(BASE)


def test_differing_members_reports_order(tmp_path: Path) -> None:
    a = _plain_wheel(tmp_path / "a.whl", BASE)
    b = _plain_wheel(tmp_path / "b.whl", dict(reversed(BASE.items())))
    assert differing_members(a, b) == ["(member order)"]


# -- build environment and path maps ------------------------------------------------------


@pytest.fixture
def no_host_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CFLAGS", "CXXFLAGS", "RUSTFLAGS"):
        monkeypatch.delenv(var, raising=False)


def test_path_maps_longest_prefix_first(tmp_path: Path) -> None:
    work = tmp_path / "w"
    cache = tmp_path / "cache" / "deeper" / "still"
    extra = [tmp_path / "w" / "sub", tmp_path]
    maps = reproducible.path_maps(work, cache, extra)
    assert maps.maps == (
        (str(cache), "/wheelfarm/cache"),
        (str(work / "sub"), "/wheelfarm/extra0"),
        (str(work), "/wheelfarm/work"),
        (str(tmp_path), "/wheelfarm/extra1"),
    )
    lengths = [len(old) for old, _ in maps.maps]
    assert lengths == sorted(lengths, reverse=True)
    assert maps.cflags() == " ".join(f"-ffile-prefix-map={o}={n}" for o, n in maps.maps)
    assert maps.rustflags() == " ".join(f"--remap-path-prefix={o}={n}" for o, n in maps.maps)


def test_path_maps_extra_never_overrides_work(tmp_path: Path) -> None:
    maps = reproducible.path_maps(tmp_path / "work", tmp_path / "c", [tmp_path / "work"])
    assert dict(maps.maps)[str(tmp_path / "work")] == "/wheelfarm/work"


def test_build_environment_never_sets_cflags(no_host_flags: None) -> None:
    """setuptools uses $CFLAGS instead of the interpreter's -O3: the farm's prefix maps
    go to its compiler wrappers, and a recipe's CFLAGS are left to the recipe."""
    maps = reproducible.PathMaps((("/build/w", "/wheelfarm/work"),
                                  ("/c", "/wheelfarm/cache")))
    env = reproducible.build_environment(
        1_600_000_000, maps,
        {"CFLAGS": "-O3 -DNDEBUG", "RUSTFLAGS": "-C target-cpu=x86-64-v2"}, {})
    assert "CFLAGS" not in env and "CXXFLAGS" not in env
    assert json.loads(env[PREFIX_MAPS_VAR]) == [["/build/w", "/wheelfarm/work"],
                                                 ["/c", "/wheelfarm/cache"]]
    assert ccwrap.prefix_map_flags(env) == ["-ffile-prefix-map=/build/w=/wheelfarm/work",
                                            "-ffile-prefix-map=/c=/wheelfarm/cache"]
    assert env["RUSTFLAGS"] == ("-C target-cpu=x86-64-v2 "
                                "--remap-path-prefix=/build/w=/wheelfarm/work "
                                "--remap-path-prefix=/c=/wheelfarm/cache")
    assert env["SOURCE_DATE_EPOCH"] == "1600000000"
    assert env["PYTHONHASHSEED"] == "0"
    assert env["TZ"] == "UTC"


def test_build_environment_rustflags_fall_back_to_toolchain_then_host(
        monkeypatch: pytest.MonkeyPatch, no_host_flags: None) -> None:
    maps = reproducible.PathMaps((("/w", "/m"),))
    monkeypatch.setenv("RUSTFLAGS", "-C debuginfo=0")
    env = reproducible.build_environment(ZIP_EPOCH, maps, {}, {})
    assert env["RUSTFLAGS"] == "-C debuginfo=0 --remap-path-prefix=/w=/m"
    env = reproducible.build_environment(ZIP_EPOCH, maps, {}, {"RUSTFLAGS": "-C opt-level=3"})
    assert env["RUSTFLAGS"] == "-C opt-level=3 --remap-path-prefix=/w=/m"
    assert env["SOURCE_DATE_EPOCH"] == str(ZIP_EPOCH)


# -- source_date_epoch --------------------------------------------------------------------


def _tree(root: Path, mtimes: dict[str, int]) -> Path:
    for name, mtime in mtimes.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        os.utime(path, (mtime, mtime))
    return root


@pytest.mark.parametrize("kind", ["pypi", "url"])
def test_archive_source_takes_newest_file(tmp_path: Path, kind: str) -> None:
    src = _tree(tmp_path / "src", {"setup.py": 1_500_000_000, "pkg/mod.c": 1_600_000_123,
                                   "pkg/sub/x.h": 1_550_000_000})
    # Directories were modified just now; only files count.
    assert reproducible.source_date_epoch(kind, src) == 1_600_000_123


def test_archive_source_with_ancient_files_is_clamped(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"a.c": 1000})
    assert reproducible.source_date_epoch("pypi", src) == ZIP_EPOCH
    (tmp_path / "empty").mkdir()
    assert reproducible.source_date_epoch("url", tmp_path / "empty") == ZIP_EPOCH


def test_path_source_gets_the_zip_epoch(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"a.c": 1_700_000_000})
    assert reproducible.source_date_epoch("path", src) == ZIP_EPOCH == 315532800


def test_git_source_uses_commit_time(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"a.c": 1_700_000_000})
    assert reproducible.source_date_epoch("git", src, 1_650_000_000) == 1_650_000_000
    assert reproducible.source_date_epoch("git", src, 5) == ZIP_EPOCH
    assert reproducible.source_date_epoch("git", src, None) == ZIP_EPOCH
