"""Records, manifests, SHA256SUMS splicing, name checks and dependency gaps (pure code)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from tests.wheels import make_wheel
from wheelfarm.errors import ConfigError
from wheelfarm.publish.artifacts import FileRef, IndexedWheel, check_filename, distros, read_upload
from wheelfarm.publish.generations import clearsigned_text, root_pages
from wheelfarm.publish.manifest import (
    Release,
    build_project,
    full_sums,
    parse_project,
    parse_sums,
    project_sums,
    splice_sums,
)
from wheelfarm.publish.publisher import collect, parse_spec
from wheelfarm.publish.verify import missing_requirements


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def artifact(filename: str, **kw: object) -> IndexedWheel:
    base = dict(filename=filename, sha256=sha(filename), size=len(filename),
                uploaded="2025-01-02T03:04:05Z",
                sidecars=((".asc", FileRef(sha("asc" + filename), 1)),
                          (".metadata", FileRef(sha("meta" + filename), 2))))
    base.update(kw)
    return IndexedWheel(**base)  # type: ignore[arg-type]


# -- names --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../evil-1.0-py3-none-any.whl", "a/b-1.0-py3-none-any.whl",
                                  "a\\b-1.0-py3-none-any.whl", ".hidden-1.0-py3-none-any.whl"])
def test_path_separators_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="not a plain wheel file name"):
        check_filename(name)


@pytest.mark.parametrize(("name", "fixed"), [
    ("FastAdd-1.0-py3-none-any.whl", "fastadd-1.0-py3-none-any.whl"),
    ("fast.add-1.0-py3-none-any.whl", "fast_add-1.0-py3-none-any.whl"),
    ("fastadd-1.0.0_rc1-py3-none-any.whl", "fastadd-1.0.0rc1-py3-none-any.whl"),
])
def test_non_normalized_names_are_refused_with_the_fix(name: str, fixed: str) -> None:
    with pytest.raises(ConfigError, match=f"expected {fixed}"):
        check_filename(name)


def test_normalized_names_pass() -> None:
    project, version = check_filename("fast_add-1.0-2-cp312-cp312-manylinux_2_17_x86_64.whl")
    assert (project, version) == ("fast-add", Version("1.0"))
    with pytest.raises(ConfigError, match="not a valid wheel file name"):
        check_filename("fastadd-1.0.whl")


def write_wheel(path: Path, name: str, version: str, extra: str = "") -> Path:
    """A wheel with METADATA, WHEEL and a true RECORD (publish checks RECORD), at ``path``
    even where its name disagrees with the METADATA."""
    made = make_wheel(path.parent, name, version, dist=path.name.split("-")[0], members={},
                      metadata=f"{extra}\n")
    return made.rename(path)


def test_read_upload_takes_metadata_and_provenance(tmp_path: Path) -> None:
    wheel = write_wheel(tmp_path / "fast_add-1.0-py3-none-any.whl", "Fast.Add", "1.0",
                        "Requires-Python: >=3.9\nRequires-Dist: numpy>=1\nRequires-Dist: rich")
    (tmp_path / (wheel.name + ".intoto.json")).write_text("{}")
    upload = read_upload(wheel)
    assert upload.project == "fast-add"
    assert upload.requires_python == ">=3.9"
    assert upload.requires_dist == ("numpy>=1", "rich")
    assert upload.provenance == b"{}"
    assert upload.metadata.startswith(b"Metadata-Version")


def test_read_upload_refuses_metadata_that_disagrees(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="METADATA names project"):
        read_upload(write_wheel(tmp_path / "a-1.0-py3-none-any.whl", "b", "1.0"))
    with pytest.raises(ConfigError, match="METADATA says version"):
        read_upload(write_wheel(tmp_path / "c-1.0-py3-none-any.whl", "c", "2.0"))
    (tmp_path / "d-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a readable wheel"):
        read_upload(tmp_path / "d-1.0-py3-none-any.whl")


def test_collect_refuses_two_different_files_of_one_name(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_wheel(tmp_path / "a" / "x-1.0-py3-none-any.whl", "x", "1.0")
    write_wheel(tmp_path / "b" / "x-1.0-py3-none-any.whl", "x", "1.0", "Summary: other")
    with pytest.raises(ConfigError, match="differ"):
        collect([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match="no wheels"):
        collect([tmp_path])  # the wheels are in subdirectories, which are not searched


def test_parse_spec() -> None:
    assert parse_spec("Fast_Add==1.0.0") == ("fast-add", Version("1.0.0"))
    for bad in ("fastadd", "fastadd>=1", "../x==1", "fastadd==not a version"):
        with pytest.raises(ConfigError):
            parse_spec(bad)


# -- distributions ------------------------------------------------------------------------------

def test_distros_from_the_platform_tag() -> None:
    assert distros("a-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl") == {
        "glibc": "2.17", "arch": "x86_64", "RHEL": "7+", "Debian": "8+", "Ubuntu": "14.04+"}
    assert distros("a-1.0-cp312-cp312-manylinux_2_28_aarch64.whl")["RHEL"] == "8+"
    assert distros("a-1.0-cp312-cp312-manylinux1_x86_64.whl")["glibc"] == "2.5"
    assert distros("a-1.0-py3-none-any.whl")["Debian"] == "any"
    assert distros("a-1.0-cp312-cp312-linux_x86_64.whl") == {}


# -- project manifests and pages ----------------------------------------------------------------

def test_project_pages_come_from_the_records() -> None:
    a = artifact("fastadd-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", requires_python=">=3.9")
    b = artifact("fastadd-0.9-py3-none-any.whl", yanked="broken build")
    manifest, data, pages = build_project("fastadd", [a, b])
    assert [x.filename for x in manifest.artifacts] == sorted([a.filename, b.filename])
    html = pages["index.html"].decode()
    assert "../../files/fastadd-1.0-cp312-cp312-manylinux_2_17_x86_64.whl#sha256=" in html
    assert 'data-yanked="broken build"' in html
    assert f'data-core-metadata="sha256={sha("meta" + a.filename)}"' in html
    assert "<td>7+</td>" in html  # the distro table
    listing = json.loads(pages["index.json"])
    assert {f["filename"]: f["yanked"] for f in listing["files"]} == {
        a.filename: False, b.filename: "broken build"}
    assert json.loads(pages["distros.json"])["wheels"][a.filename]["Ubuntu"] == "14.04+"
    # Deterministic: the same records in any order give the same bytes.
    assert build_project("fastadd", [b, a])[1] == data
    assert parse_project(data, "fastadd") == manifest


def test_parse_project_refuses_mismatches() -> None:
    _m, data, _p = build_project("fastadd", [artifact("fastadd-1.0-py3-none-any.whl")])
    with pytest.raises(ValueError, match="names project"):
        parse_project(data, "other")
    raw = json.loads(data)
    raw["artifacts"][0]["filename"] = "../x-1.0-py3-none-any.whl"
    with pytest.raises(ConfigError):
        parse_project(json.dumps(raw).encode(), "fastadd")
    with pytest.raises(ValueError, match="malformed"):
        parse_project(b"{}", "fastadd")


# -- the root manifest --------------------------------------------------------------------------

def release(**kw: object) -> Release:
    now = datetime(2025, 7, 5, 12, 0, tzinfo=UTC)
    base = dict(generation=3, date=now, valid_until=now + timedelta(days=30),
                change="publish x\nwith a newline", changed=("alpha", "beta"),
                projects={"alpha": FileRef(sha("a"), 10), "beta": FileRef(sha("b"), 20)},
                files={"SHA256SUMS": FileRef(sha("s"), 30)})
    base.update(kw)
    return Release(**base)  # type: ignore[arg-type]


def test_release_round_trip() -> None:
    r = release()
    text = r.render()
    assert "Change: publish x with a newline\n" in text
    assert Release.parse(text) == replace(r, change="publish x with a newline")
    assert Release.parse(release(changed=()).render()).changed == ()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("Origin: wheelfarm", "Origin: evil"), "Origin"),
    (lambda t: t.replace("Generation: 3\n", ""), "missing field Generation"),
    (lambda t: t + "Generation: 4\n", "appears twice"),
    (lambda t: t.replace("Date: Sat, 05 Jul 2025", "Date: soon"), "bad date"),
    (lambda t: t.replace(" 10 alpha", " ten alpha"), "malformed hash line"),
    (lambda t: t + "garbage\n", "unexpected line"),
])
def test_release_parse_errors(edit: object, message: str) -> None:
    assert callable(edit)
    with pytest.raises(ValueError, match=message):
        Release.parse(edit(release().render()))


def test_clearsigned_text_unescapes_dashes() -> None:
    signed = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nA: 1\n- -dash\n"
              "-----BEGIN PGP SIGNATURE-----\n\nxx\n-----END PGP SIGNATURE-----\n")
    assert clearsigned_text(signed.encode()) == "A: 1\n-dash\n"
    with pytest.raises(ValueError):
        clearsigned_text(b"A: 1\n")


# -- SHA256SUMS ---------------------------------------------------------------------------------

def manifests_for(names: dict[str, int]) -> dict[str, bytes]:
    blocks = {}
    for project, n in names.items():
        arts = [artifact(f"{project.replace('-', '_')}-{v}.0-py3-none-any.whl")
                for v in range(1, n + 1)]
        blocks[project] = project_sums(build_project(project, arts)[0])
    return blocks


PROJECTS = st.dictionaries(st.sampled_from(["a", "a-b", "ab", "b", "foo", "foo-bar", "zeta"]),
                           st.integers(1, 3))


@settings(max_examples=60, deadline=None)
@given(old=PROJECTS, new=PROJECTS)
def test_splice_equals_a_full_rebuild(old: dict[str, int], new: dict[str, int]) -> None:
    old_blocks, new_blocks = manifests_for(old), manifests_for(new)
    old_sums = full_sums(root_pages(old), old_blocks)
    changed = {p: new_blocks.get(p) for p in old.keys() | new.keys()
               if old_blocks.get(p) != new_blocks.get(p)}
    spliced = splice_sums(old_sums, sorted(old), changed, root_pages(new))
    assert spliced == full_sums(root_pages(new), new_blocks)
    if old.keys() == new.keys():  # same projects: the root lines can stay as they are
        assert splice_sums(old_sums, sorted(old), changed, None) == spliced


def test_sums_lines_are_what_sha256sum_reads() -> None:
    blocks = manifests_for({"foo": 1})
    sums = full_sums(root_pages(["foo"]), blocks)
    listed = parse_sums(sums)
    assert "files/foo-1.0-py3-none-any.whl.asc" in listed
    assert list(listed)[:3] == ["simple/index.html", "simple/index.json",
                                "simple/foo/distros.json"]
    assert all(line[64:66] == b"  " for line in sums.splitlines())
    with pytest.raises(ValueError):
        parse_sums(b"nothex  path\n")


# -- missing dependencies -----------------------------------------------------------------------

def test_missing_requirements_lists_what_the_index_cannot_satisfy() -> None:
    arts = [artifact("app-1.0-py3-none-any.whl",
                     requires_dist=("lib>=2", "other", "dev-tool; extra == 'dev'",
                                    "oldpy; python_version < '3'")),
            artifact("lib-1.5-py3-none-any.whl"),
            artifact("gone-1.0-py3-none-any.whl", yanked="", requires_dist=("nothing",))]
    available = {"lib": {Version("1.5")}, "app": {Version("1.0")}}
    assert missing_requirements(arts, available) == [
        "app 1.0 requires lib>=2", "app 1.0 requires other", "app 1.0 requires oldpy; "
        "python_version < '3'"]
    assert missing_requirements(arts, {**available, "lib": {Version("2.1")},
                                       "other": {Version("0.1")},
                                       "oldpy": {Version("1")}}) == []
