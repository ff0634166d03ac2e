"""Merging the wheelhouses of matrix jobs (farm/merge.py, and `wheelfarm merge`)."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from wheelfarm.build import debuginfo
from wheelfarm.cli.ci import merge
from wheelfarm.errors import MergeConflict
from wheelfarm.farm.merge import merge_candidate

WHEEL = "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"


def put(directory: Path, name: str, content: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(content)
    return path


def test_same_bytes_twice_merged_once(tmp_path: Path) -> None:
    chosen: dict[str, Path] = {}
    first = put(tmp_path / "job1", WHEEL, b"same bytes")
    second = put(tmp_path / "job2", WHEEL, b"same bytes")
    merge_candidate(chosen, first, tmp_path / "out")
    merge_candidate(chosen, second, tmp_path / "out")
    assert chosen == {WHEEL: first}


def test_different_bytes_are_a_conflict(tmp_path: Path) -> None:
    chosen: dict[str, Path] = {}
    first = put(tmp_path / "job1", WHEEL, b"one build")
    second = put(tmp_path / "job2", WHEEL, b"another build")
    merge_candidate(chosen, first, tmp_path / "out")
    with pytest.raises(MergeConflict) as info:
        merge_candidate(chosen, second, tmp_path / "out")
    assert info.value.exit_code == 1
    message = str(info.value)
    assert message.startswith(f"{WHEEL}: ")
    assert str(first) in message and str(second) in message
    assert chosen == {WHEEL: first}


def test_different_names_are_both_kept(tmp_path: Path) -> None:
    chosen: dict[str, Path] = {}
    wheel = put(tmp_path / "job1", WHEEL, b"w")
    sidecar = put(tmp_path / "job1", WHEEL + ".intoto.json", b"{}")
    other = put(tmp_path / "job2", "other-2.0-py3-none-any.whl", b"o")
    for path in (wheel, sidecar, other):
        merge_candidate(chosen, path, tmp_path / "out")
    assert chosen == {WHEEL: wheel, WHEEL + ".intoto.json": sidecar,
                      "other-2.0-py3-none-any.whl": other}


def test_a_file_already_in_the_output_must_match(tmp_path: Path) -> None:
    out = tmp_path / "out"
    put(out, WHEEL, b"published earlier")
    same = put(tmp_path / "job1", WHEEL, b"published earlier")
    chosen: dict[str, Path] = {}
    merge_candidate(chosen, same, out)
    assert chosen == {WHEEL: same}
    different = put(tmp_path / "job2", WHEEL, b"rebuilt differently")
    with pytest.raises(MergeConflict, match=re.escape(str(out))):
        merge_candidate({}, different, out)


def test_merge_refuses_a_conflict_before_copying(tmp_path: Path) -> None:
    put(tmp_path / "job1", "aaa-1.0-py3-none-any.whl", b"fine")
    put(tmp_path / "job1", WHEEL, b"one build")
    put(tmp_path / "job2", WHEEL, b"another build")
    out = tmp_path / "out"
    result = CliRunner().invoke(merge, [str(tmp_path / "job1"), str(tmp_path / "job2"),
                                        "--out", str(out), "--farm", str(tmp_path)])
    assert isinstance(result.exception, MergeConflict), result.output
    assert not out.exists()


BUILD_ID = "5da81666f36c9e00225ff4b5ec54d66f3df73091"


def test_debug_files_are_merged_under_the_same_rules(tmp_path: Path) -> None:
    pure = "demo-1.0-py3-none-any.whl"
    job = tmp_path / "job1"
    job.mkdir()
    with zipfile.ZipFile(job / pure, "w") as zf:
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\n"
                                                   "Version: 1.0\n")
    blob = put(tmp_path, "blob", b"debug bytes")
    files = (debuginfo.DebugFile(BUILD_ID, "demo/_x.so", hashlib.sha256(b"debug bytes")
                                 .hexdigest(), 11, blob),)
    debuginfo.place(files, pure, job)
    out = tmp_path / "out"
    result = CliRunner().invoke(merge, [str(job), "--out", str(out), "--farm", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [f.build_id for f in debuginfo.read_listing(out / pure)] == [BUILD_ID]
    # Another job with other bytes under the same build-id is a conflict, refused up front.
    put(tmp_path / "job2" / "debug", f"{BUILD_ID}.debug", b"other bytes")
    put(tmp_path / "job2", "zzz-1.0-py3-none-any.whl", b"w")
    result = CliRunner().invoke(merge, [str(tmp_path / "job2"), "--out", str(out),
                                        "--farm", str(tmp_path)])
    assert isinstance(result.exception, MergeConflict), result.output
    assert f"{BUILD_ID}.debug" in str(result.exception)
    assert not (out / "zzz-1.0-py3-none-any.whl").exists()
