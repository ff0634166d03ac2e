"""Debug files: build-id checks, layouts, the recipe key, manifests and the debuginfod route."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's test client warns about httpx2
    from starlette.testclient import TestClient

from wheelfarm.build import debuginfo, provenance
from wheelfarm.build.debuginfo import DebugFile
from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.plan import recipe
from wheelfarm.publish.artifacts import FileRef, IndexedWheel
from wheelfarm.publish.serve import make_app

SHA1_ID = "620e94492d872b7ed3d02879c4c939879dd2291a"
WHEEL = "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"


@pytest.mark.parametrize("text", [SHA1_ID, "00" * 8, "ab" * 64])
def test_build_ids_are_lower_case_hex_of_whole_bytes(text: str) -> None:
    assert debuginfo.is_build_id(text)


@pytest.mark.parametrize("text", [
    "", SHA1_ID.upper(), SHA1_ID[:-1], "00" * 7, "ab" * 65, "../" + SHA1_ID, SHA1_ID + "/x",
    "g" * 40, SHA1_ID + "\n",
])
def test_anything_else_is_not_a_build_id(text: str) -> None:
    assert not debuginfo.is_build_id(text)
    with pytest.raises(ConfigError):
        debuginfo.store_key(text)
    with pytest.raises(ConfigError):
        debuginfo.out_path(Path("/out"), text)


def test_layouts() -> None:
    assert debuginfo.store_key(SHA1_ID) == f"buildid/{SHA1_ID}/debuginfo"
    assert debuginfo.out_path(Path("/out"), SHA1_ID) == Path(f"/out/debug/{SHA1_ID}.debug")
    assert debuginfo.listing_path(Path("/out") / WHEEL) == Path(f"/out/debug/{WHEEL}.json")


def _recipe(tmp_path: Path, extra: str) -> recipe.Recipe:
    (tmp_path / "src").mkdir(exist_ok=True)
    path = tmp_path / "r.toml"
    path.write_text('[package]\nname = "demo"\nversion = "1.0"\n[source]\npath = "src"\n'
                    f"[build]\n{extra}\n")
    return recipe.load(path)


def test_recipe_key(tmp_path: Path) -> None:
    assert _recipe(tmp_path, "").debug_symbols == "split"
    for mode in ("split", "strip", "keep"):
        r = _recipe(tmp_path, f'debug-symbols = "{mode}"')
        assert r.debug_symbols == mode
    # The mode changes the shipped module, so it is part of the content key.
    assert (_recipe(tmp_path, 'debug-symbols = "keep"').digest()
            != _recipe(tmp_path, "").digest())
    with pytest.raises(RecipeError, match=r"build.debug-symbols: must be one of 'split', "
                                          r"'strip', 'keep', not 'none'"):
        _recipe(tmp_path, 'debug-symbols = "none"')
    with pytest.raises(RecipeError, match="debug-symbols"):
        _recipe(tmp_path, "debug-symbols = true")


def _debug(tmp_path: Path, build_id: str, data: bytes, module: str = "demo/_x.so") -> DebugFile:
    path = tmp_path / f"{build_id}.bin"
    path.write_bytes(data)
    return DebugFile(build_id, module, hashlib.sha256(data).hexdigest(), len(data), path)


def test_place_and_read_listing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    files = (_debug(tmp_path, SHA1_ID, b"dwarf one"), _debug(tmp_path, "11" * 20, b"two", "b.so"))
    debuginfo.place(files, WHEEL, out)
    assert (out / "debug" / f"{SHA1_ID}.debug").read_bytes() == b"dwarf one"
    back = debuginfo.read_listing(out / WHEEL)
    assert sorted((f.build_id, f.module, f.sha256) for f in back) == sorted(
        (f.build_id, f.module, f.sha256) for f in files)
    # A damaged debug file is refused, naming it.
    (out / "debug" / f"{SHA1_ID}.debug").write_bytes(b"other")
    with pytest.raises(ConfigError, match=f"{SHA1_ID}.debug: sha256 does not match"):
        debuginfo.read_listing(out / WHEEL)
    # A build with no debug files removes a stale listing of the same wheel name.
    debuginfo.place((), WHEEL, out)
    assert debuginfo.read_listing(out / WHEEL) == ()


def test_differing_files(tmp_path: Path) -> None:
    a = (_debug(tmp_path, SHA1_ID, b"x"),)
    assert debuginfo.differing_files(a, a) == []
    assert debuginfo.differing_files(a, (_debug(tmp_path, SHA1_ID, b"y"),)) == [SHA1_ID]
    assert debuginfo.differing_files(a, ()) == [SHA1_ID]


def test_artifact_lists_its_debug_files_in_the_manifest() -> None:
    ref = FileRef.of(b"dwarf")
    art = IndexedWheel(WHEEL, "0" * 64, 5, "2026-01-01T00:00:00Z", debuginfo=((SHA1_ID, ref),))
    assert (f"buildid/{SHA1_ID}/debuginfo", ref) in art.files()
    assert IndexedWheel.from_json(json.loads(json.dumps(art.to_json()))) == art
    # Wheels without debug files keep the manifest bytes they had.
    assert "debuginfo" not in IndexedWheel(WHEEL, "0" * 64, 5, "x").to_json()
    bad = art.to_json()
    bad["debuginfo"] = {"../../InRelease": ref.to_json()}
    with pytest.raises(ValueError, match="malformed debuginfo"):
        IndexedWheel.from_json(bad)


def test_provenance_names_debug_files_and_refuses_paths() -> None:
    good = {"annotations": {"buildId": SHA1_ID, "module": "demo/_x.so"},
            "digest": {"sha256": "a" * 64}}
    evil = {"annotations": {"buildId": "../../x", "module": "m"}, "digest": {"sha256": "a" * 64}}
    statement = json.dumps({"predicate": {"runDetails": {"byproducts": [good, evil]}}}).encode()
    assert provenance.debug_files(statement) == [(SHA1_ID, "demo/_x.so", "a" * 64)]
    assert provenance.debug_files(None) == []
    assert provenance.debug_files(b"not json") == []


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    root = tmp_path / "idx"
    (root / "buildid" / SHA1_ID).mkdir(parents=True)
    (root / "buildid" / SHA1_ID / "debuginfo").write_bytes(b"\x7fELF debug")
    (root / "buildid" / SHA1_ID / "executable").write_bytes(b"not served")
    (root / "files").mkdir()
    (root / "files" / "secret").write_bytes(b"secret")
    return TestClient(make_app(root))


def test_serve_answers_debuginfod_requests(client: TestClient) -> None:
    r = client.get(f"/buildid/{SHA1_ID}/debuginfo")
    assert r.status_code == 200
    assert r.content == b"\x7fELF debug"
    assert r.headers["content-type"] == "application/octet-stream"
    # Clients may spell hex in capitals; the store has one spelling.
    assert client.get(f"/buildid/{SHA1_ID.upper()}/debuginfo").content == b"\x7fELF debug"
    assert client.head(f"/buildid/{SHA1_ID}/debuginfo").status_code == 200


@pytest.mark.parametrize("path", [
    f"/buildid/{'22' * 20}/debuginfo",  # well-formed, not published
    f"/buildid/{SHA1_ID}/executable",  # only debuginfo is served
    f"/buildid/{SHA1_ID}/source/usr/src/x.c",
    "/buildid/zz/debuginfo",
    "/buildid/..%2Ffiles/debuginfo",
    "/buildid/%2e%2e/files/secret",
    f"/buildid/{SHA1_ID}/debuginfo/extra",
])
def test_serve_refuses_everything_else_under_buildid(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404
