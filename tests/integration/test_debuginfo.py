"""Debug info for real: zig links a build-id, eu-strip splits the module, the debug file
travels with the wheel (output, artifact cache, store), ``wheelfarm serve`` answers
debuginfod requests, and ``debuginfod-find`` and gdb fetch it by build-id alone."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wheelfarm.build.debuginfo import build_id_of, dwarf_sections
from wheelfarm.build.executors.zig import find_zig

from .helpers import PROJECTS, ok, python_for, require, serving, wheelfarm
from .publish_support import Key

pytestmark = pytest.mark.integration

ZIG_TARGET = "manylinux_2_17_x86_64"


def module_of(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".so")]
        return zf.read(name)


def elf(data: bytes) -> tuple[str | None, list[str]]:
    import io

    return build_id_of(io.BytesIO(data)), dwarf_sections(io.BytesIO(data))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(farm directory, output directory): fastadd built by zig for cp312, twice
    (--check-reproducible also demands identical debug files)."""
    require("eu-strip")
    if find_zig() is None:
        pytest.skip("ziglang is not installed")
    python_for("cp312")
    base = tmp_path_factory.mktemp("debuginfo")
    out = base / "out"
    ok(wheelfarm("build", PROJECTS / "fastadd", "--executor", "zig", "--target", ZIG_TARGET,
                 "--python", "cp312", "--out", out, "--farm", base / "farm",
                 "--check-reproducible", cwd=base))
    return base / "farm", out


def test_the_shipped_module_is_stripped_and_its_debug_file_is_beside_it(
        built: tuple[Path, Path]) -> None:
    _farm, out = built
    (wheel,) = out.glob("*.whl")
    build_id, left = elf(module_of(wheel))
    assert build_id is not None and len(build_id) == 40  # zig linked with --build-id=sha1
    assert left == []
    debug = out / "debug" / f"{build_id}.debug"
    debug_id, sections = elf(debug.read_bytes())
    assert debug_id == build_id
    assert {".debug_info", ".debug_line"} <= set(sections)
    listing = json.loads((out / "debug" / f"{wheel.name}.json").read_text())
    digest = hashlib.sha256(debug.read_bytes()).hexdigest()
    assert [(r["buildId"], r["sha256"]) for r in listing["debug"]] == [(build_id, digest)]
    statement = json.loads((out / f"{wheel.name}.intoto.json").read_text())
    (product,) = statement["predicate"]["runDetails"]["byproducts"]
    assert product["name"] == f"buildid/{build_id}/debuginfo"
    assert product["digest"]["sha256"] == digest


def test_a_cache_hit_brings_the_debug_files_too(built: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    farm, out = built
    again = tmp_path / "again"
    result = ok(wheelfarm("build", PROJECTS / "fastadd", "--executor", "zig", "--target",
                          ZIG_TARGET, "--python", "cp312", "--out", again, "--farm", farm,
                          cwd=tmp_path))
    assert "1 from the cache" in result
    (debug,) = (out / "debug").glob("*.debug")
    assert (again / "debug" / debug.name).read_bytes() == debug.read_bytes()


@pytest.fixture(scope="module")
def published(built: tuple[Path, Path], keys: tuple[Key, Key],
              tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(store root, build-id): the zig build published to a filesystem store."""
    _farm, out = built
    work = tmp_path_factory.mktemp("published")
    root = work / "index"
    env = {"GNUPGHOME": str(keys[0].home), "WHEELFARM_SIGN_KEY": keys[0].fingerprint}
    ok(wheelfarm("publish", out, "--to", root, cwd=work, env=env))
    (debug,) = (out / "debug").glob("*.debug")
    return root, debug.stem


@pytest.fixture(scope="module")
def server(published: tuple[Path, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root, _ = published
    with serving(root, tmp_path_factory.mktemp("serve")) as base:
        yield base


def test_publish_lists_the_debug_file_and_verify_checks_it(
        built: tuple[Path, Path], published: tuple[Path, str], keys: tuple[Key, Key],
        tmp_path: Path) -> None:
    _farm, out = built
    root, build_id = published
    key = f"buildid/{build_id}/debuginfo"
    assert (root / key).read_bytes() == (out / "debug" / f"{build_id}.debug").read_bytes()
    assert f"  {key}\n" in (root / "SHA256SUMS").read_text()
    ok(wheelfarm("verify", root, "--key", keys[0].public, "--state", tmp_path / "s1",
                 cwd=tmp_path))
    altered = tmp_path / "altered"
    shutil.copytree(root, altered, symlinks=True)
    target = altered / key
    data = target.read_bytes()
    target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    result = wheelfarm("verify", altered, "--key", keys[0].public, "--state", tmp_path / "s2",
                       cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{key}: sha256 does not match the manifest" in result.stdout + result.stderr


def test_republishing_is_idempotent_and_write_once(built: tuple[Path, Path],
                                                   published: tuple[Path, str],
                                                   keys: tuple[Key, Key], tmp_path: Path) -> None:
    _farm, out = built
    root, build_id = published
    env = {"GNUPGHOME": str(keys[0].home), "WHEELFARM_SIGN_KEY": keys[0].fingerprint}
    ok(wheelfarm("publish", out, "--to", root, cwd=tmp_path, env=env))
    # Another debug file under a published build-id is refused before anything is written.
    other = tmp_path / "other"
    shutil.copytree(out, other)
    (wheel,) = other.glob("*.whl")
    debug = other / "debug" / f"{build_id}.debug"
    debug.write_bytes(debug.read_bytes() + b"\0")
    listing = other / "debug" / f"{wheel.name}.json"
    data = json.loads(listing.read_text())
    data["debug"][0]["sha256"] = hashlib.sha256(debug.read_bytes()).hexdigest()
    renamed = wheel.with_name(wheel.name.replace("-cp312-cp312-", "-1-cp312-cp312-"))
    wheel.rename(renamed)
    (other / "debug" / f"{renamed.name}.json").write_text(json.dumps(data))
    result = wheelfarm("publish", other, "--to", root, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"buildid/{build_id}/debuginfo is already published with other bytes" \
        in result.stdout + result.stderr


def test_debuginfod_find_fetches_the_published_file(published: tuple[Path, str], server: str,
                                                    tmp_path: Path) -> None:
    find = require("debuginfod-find")
    root, build_id = published
    env = {**os.environ, "DEBUGINFOD_URLS": server,
           "DEBUGINFOD_CACHE_PATH": str(tmp_path / "cache")}
    result = subprocess.run([find, "debuginfo", build_id], env=env, capture_output=True,
                            text=True, timeout=120)
    path = Path(ok(result).strip().splitlines()[-1])
    assert path.read_bytes() == (root / f"buildid/{build_id}/debuginfo").read_bytes()
    # A build-id the farm never published is not found; one that is not hex never reaches it.
    assert httpx.get(f"{server}/buildid/{'ab' * 20}/debuginfo").status_code == 404
    assert httpx.get(f"{server}/buildid/not-hex/debuginfo").status_code == 404


def test_gdb_symbolicates_the_stripped_module_from_the_server(
        built: tuple[Path, Path], server: str, tmp_path: Path) -> None:
    gdb = require("gdb")
    _farm, out = built
    (wheel,) = out.glob("*.whl")
    module = tmp_path / "fastadd.so"
    module.write_bytes(module_of(wheel))
    argv = [gdb, "-nx", "-batch", "-iex", "set debuginfod enabled on",  # before the file loads
            "-ex", "info line fastadd_add", str(module)]

    def run(urls: str) -> str:
        env = {**os.environ, "DEBUGINFOD_URLS": urls,
               "DEBUGINFOD_CACHE_PATH": str(tmp_path / f"cache-{len(urls)}")}
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        return result.stdout + result.stderr

    # The stripped module alone knows nothing of the function ...
    alone = run("")
    assert "fastadd.c" not in alone, alone
    # ... the debug info served by build-id gives its source line.
    served = run(server)
    assert 'of "' in served and "fastadd.c" in served, served


def _recipe(tmp_path: Path, build: str) -> Path:
    path = tmp_path / "fastadd.toml"
    path.write_text(f'[package]\nname = "fastadd"\nversion = "0.1.0"\n'
                    f'[source]\npath = "{PROJECTS / "fastadd"}"\n[build]\n{build}\n')
    return path


def _host_build(tmp_path: Path, build: str) -> subprocess.CompletedProcess[str]:
    require("gcc")
    require("eu-strip")
    python_for("cp312")
    return wheelfarm("build", _recipe(tmp_path, build), "--executor", "host", "--target",
                     "native", "--python", "cp312", "--out", tmp_path / "out", "--farm",
                     tmp_path / "farm", cwd=tmp_path)


def test_a_module_without_a_build_id_fails_the_job_naming_it(tmp_path: Path) -> None:
    result = _host_build(tmp_path, 'env = {LDFLAGS = "-Wl,--build-id=none"}')
    assert result.returncode == 1, result.stdout + result.stderr
    assert "fastadd.cpython-312-x86_64-linux-gnu.so: has no GNU build-id" \
        in result.stdout + result.stderr
    assert not list((tmp_path / "out").glob("*.whl"))


@pytest.mark.parametrize("mode", ["keep", "strip"])
def test_keep_ships_dwarf_and_strip_drops_it(tmp_path: Path, mode: str) -> None:
    ok(_host_build(tmp_path, f'debug-symbols = "{mode}"\nenv = {{CFLAGS = "-g"}}'))
    (wheel,) = (tmp_path / "out").glob("*.whl")
    build_id, left = elf(module_of(wheel))
    assert build_id is not None
    assert (".debug_info" in left) == (mode == "keep")
    assert not (tmp_path / "out" / "debug").exists()
