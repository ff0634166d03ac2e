"""macOS targets: names, the executor per host, zig's command line for them, whether a
job can run its wheel here, python discovery on a Mac and the delocate command."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from wheelfarm.build import macrepair, testplaces, zigcc
from wheelfarm.build.executors.zig import ZigExecutor, macos_cross_env
from wheelfarm.errors import ConfigError, RepairError
from wheelfarm.plan import config, targets
from wheelfarm.plan.targets import Target, parse_target

MAC_ARM = parse_target("macosx_11_0_arm64")
MAC_X86 = parse_target("macosx_10_13_x86_64")


def test_macos_target_names() -> None:
    assert MAC_ARM == Target("macosx", "arm64", macos=(11, 0))
    assert MAC_ARM.name == "macosx_11_0_arm64" and MAC_ARM.is_macos and MAC_ARM.repairs
    assert MAC_X86.name == "macosx_10_13_x86_64"
    assert parse_target("macosx_14_0_arm64").macos == (14, 0)
    assert targets.platform_tags(MAC_ARM) == ["macosx_11_0_arm64"]
    assert not parse_target("manylinux2014_x86_64").is_macos


@pytest.mark.parametrize(("text", "message"), [
    ("macosx_10_15_arm64", "arm64 Macs start with macOS 11"),
    ("macosx_11_0_universal2", "arm64 or x86_64"),
    ("macosx_11_0_aarch64", "arm64 or x86_64"),
    ("macosx_14_2_arm64", "use macosx_14_0_arm64"),
    ("macosx_9_0_x86_64", "no macOS 9.0"),
])
def test_bad_macos_targets_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_target(text)


def test_a_misspelt_macos_target_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'macosx_11_0_arm64'"):
        parse_target("macos_11_0_arm64")


def test_macos_version_of_a_minos() -> None:
    assert targets.macos_version("11.0") == (11, 0)
    assert targets.macos_version("10.13.4") == (10, 13)
    assert targets.macos_version("14") == (14, 0)


def test_default_executor_for_macos_is_zig_on_linux_and_the_host_on_a_mac(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    farm = config.FarmConfig(root=tmp_path)
    monkeypatch.setattr(config.sys, "platform", "linux")
    assert farm.executor_for(MAC_ARM) == "zig"
    monkeypatch.setattr(config.sys, "platform", "darwin")
    assert farm.executor_for(MAC_X86) == "host"


def test_zig_targets_and_checks_for_macos() -> None:
    assert zigcc.zig_macos_target("arm64", (11, 0)) == "aarch64-macos.11.0"
    assert zigcc.zig_macos_target("x86_64", (10, 13)) == "x86_64-macos.10.13"
    assert ZigExecutor.zig_target(MAC_ARM) == "aarch64-macos.11.0"
    with pytest.raises(ConfigError, match=r"macOS 10\.13 or newer"):
        ZigExecutor(zig="/nonexistent/zig").check(parse_target("macosx_10_9_x86_64"))


def test_macos_cross_env_tags_the_wheel_and_names_the_darwin_suffix() -> None:
    env = macos_cross_env(MAC_ARM, "cp312")
    assert env["_PYTHON_HOST_PLATFORM"] == "macosx-11.0-arm64"
    assert env["SETUPTOOLS_EXT_SUFFIX"] == ".cpython-312-darwin.so"
    assert env["MACOSX_DEPLOYMENT_TARGET"] == "11.0"
    assert env["CARGO_BUILD_TARGET"] == "aarch64-apple-darwin"
    assert macos_cross_env(MAC_X86, None)["CARGO_BUILD_TARGET"] == "x86_64-apple-darwin"


def test_a_macos_link_line_gets_dynamic_lookup_and_no_bundle_or_build_id() -> None:
    # What CPython on a Mac asks for, and what the host's LDSHARED gives here.
    driver, args, notes = zigcc.translate(
        ["-bundle", "-o", "m.so", "m.o", "-Wl,-O1"], "cc", macos=True)
    assert driver == "cc"
    assert "-bundle" not in args and "-shared" in args
    assert args[-3:] == ["-undefined", "dynamic_lookup", "-Wl,-S"]
    assert not any("build-id" in a for a in args)
    assert any("-bundle -> -shared" in n for n in notes)
    _, args, _ = zigcc.translate(["-shared", "-undefined", "dynamic_lookup", "m.o"], "cc",
                                 macos=True)
    assert args.count("dynamic_lookup") == 1
    # A compile step is left alone; a Linux link line keeps its build-id.
    assert zigcc.translate(["-c", "m.c"], "cc", macos=True)[1] == ["-c", "m.c"]
    assert "-Wl,--build-id=sha1" in zigcc.translate(["-shared", "m.o"], "cc")[1]
    cmd, _ = zigcc.command("/z/zig", "aarch64-macos.11.0", "cc", ["-shared", "m.o"])
    assert cmd[:4] == ["/z/zig", "cc", "-target", "aarch64-macos.11.0"]
    assert cmd[-3:] == ["-undefined", "dynamic_lookup", "-Wl,-S"]


@pytest.mark.parametrize(("target", "platform", "machine", "runs"), [
    (MAC_ARM, "linux", "x86_64", False),
    (MAC_ARM, "darwin", "aarch64", True),
    (MAC_X86, "darwin", "x86_64", True),
    (MAC_X86, "darwin", "aarch64", False),  # not through Rosetta
    (parse_target("manylinux2014_x86_64"), "linux", "x86_64", True),
])
def test_host_mismatch(target: Target, platform: str, machine: str, runs: bool) -> None:
    reason = testplaces.host_mismatch(target, platform, machine)
    assert (reason is None) == runs
    if not runs:
        assert reason is not None
        assert target.arch in reason or "macOS" in reason


def test_the_not_run_words() -> None:
    assert testplaces.NOT_RUN == "built and checked, not run"
    assert "tested" not in testplaces.NOT_RUN


def test_delocate_command_for_a_mac_worker(tmp_path: Path) -> None:
    wheel = tmp_path / "m-1.0-cp312-cp312-macosx_11_0_arm64.whl"
    argv = macrepair.delocate_command(wheel, MAC_ARM, tmp_path / "out")
    assert argv == ["delocate-wheel", "--require-archs", "arm64",
                    "--require-target-macos-version", "11.0",
                    "-w", str(tmp_path / "out"), "-v", str(wheel)]
    assert macrepair.delocate_env(MAC_X86) == {"MACOSX_DEPLOYMENT_TARGET": "10.13"}


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel(path: Path, tag: str) -> Path:
    members = {
        "m.cpython-312-darwin.so": b"\xcf\xfa\xed\xfe",
        "m-1.0.dist-info/WHEEL":
            f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp312-cp312-{tag}\n".encode(),
    }
    record = "".join(f"{name},sha256={_digest(data)},{len(data)}\n"
                     for name, data in members.items())
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("m-1.0.dist-info/RECORD", record + "m-1.0.dist-info/RECORD,,\n")
    return path


def test_retag_rewrites_the_name_the_wheel_file_and_its_record(tmp_path: Path) -> None:
    from wheelfarm.build.wheelcheck import check_sound

    built = _wheel(tmp_path / "m-1.0-cp312-cp312-linux_x86_64.whl", "linux_x86_64")
    dest = tmp_path / "out"
    dest.mkdir()
    out = macrepair.retag(built, MAC_X86, dest)
    assert out.name == "m-1.0-cp312-cp312-macosx_10_13_x86_64.whl"
    with zipfile.ZipFile(out) as zf:
        wheel_file = zf.read("m-1.0.dist-info/WHEEL").decode()
        assert "Tag: cp312-cp312-macosx_10_13_x86_64" in wheel_file
        assert "linux" not in wheel_file
    check_sound(out)  # RECORD names the new WHEEL's hash and size
    with pytest.raises(RepairError, match="not a wheel file name"):
        macrepair.retagged_name("nonsense.zip", "macosx_11_0_arm64")
    assert os.listdir(dest) == [out.name]


def test_the_index_says_where_a_macos_wheel_runs_and_that_it_was_not_run() -> None:
    import json

    from wheelfarm.publish import artifacts, manifest

    name = "m-1.0-cp312-cp312-macosx_11_0_arm64.whl"
    assert artifacts.distros(name) == {"macos": "11.0", "arch": "arm64"}
    statement = {"predicate": {"runDetails": {"testResult": {
        "status": testplaces.NOT_RUN, "pythons": []}}}}
    assert testplaces.recorded(json.dumps(statement).encode()) == (testplaces.NOT_RUN, "")
    assert testplaces.recorded(b"{}") is None
    assert testplaces.recorded(None) is None
    art = artifacts.IndexedWheel(name, "a" * 64, 10, "2026-01-01T00:00:00Z",
                                 test=testplaces.NOT_RUN)
    assert artifacts.IndexedWheel.from_json(art.to_json()) == art
    pages = manifest.render_pages("m", [art])
    assert json.loads(pages["distros.json"])["wheels"][name] == {
        "macos": "11.0", "arch": "arm64", "test": testplaces.NOT_RUN}
    page = pages["index.html"].decode()
    assert testplaces.NOT_RUN in page and "<th>macos</th>" in page
    # A wheel without a recorded status keeps its manifest bytes.
    plain = artifacts.IndexedWheel(name, "a" * 64, 10, "2026-01-01T00:00:00Z")
    assert "test" not in plain.to_json()
