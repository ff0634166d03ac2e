"""The ELF cross targets: musllinux names, the zig musl link fix-up, the libc and
architecture checks, auditwheel run as the target, and where wheels are tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wheelfarm.build import emulation, testplaces, zigcc, zigmusl
from wheelfarm.build import policy as pol
from wheelfarm.build.executors.zig import cross_env, rust_triple
from wheelfarm.build.repair import as_target
from wheelfarm.build.wheelscan import ElfInfo
from wheelfarm.errors import ConfigError
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.targets import parse_target, platform_tags

MUSL = "fastadd.cpython-311-x86_64-linux-musl.so"
GNU = "fastadd.cpython-311-x86_64-linux-gnu.so"


def elf(member: str, needed: tuple[str, ...], machine: str = "EM_X86_64",
        versions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()) -> ElfInfo:
    return ElfInfo(member, machine, None, needed, versions, frozenset())


@pytest.mark.parametrize("name", ["musllinux_1_2_x86_64", "musllinux_1_1_aarch64",
                                  "manylinux_2_17_aarch64", "manylinux_2_28_aarch64"])
def test_cross_target_names_round_trip(name: str) -> None:
    assert parse_target(name).name == name


def test_musllinux_target() -> None:
    t = parse_target("musllinux_1_2_aarch64")
    assert (t.kind, t.arch, t.musl, t.libc) == ("musllinux", "aarch64", (1, 2), "musl")
    assert platform_tags(t) == ["musllinux_1_2_aarch64"]
    assert t.auditwheel_plat == "musllinux_1_2_aarch64"
    with pytest.raises(ConfigError, match=r"no musllinux policy for musl 1\.3"):
        parse_target("musllinux_1_3_x86_64")
    with pytest.raises(ConfigError):
        parse_target("musllinux_1_2_sparc")


def test_cross_targets_default_to_zig() -> None:
    config = FarmConfig(root=Path("/nonexistent"))
    for name in ("manylinux_2_17_aarch64", "manylinux_2_39_aarch64", "musllinux_1_2_x86_64",
                 "musllinux_1_2_aarch64"):
        assert config.executor_for(parse_target(name)) == "zig", name


def test_zig_triples_and_the_musl_extension_suffix() -> None:
    assert zigcc.zig_target("x86_64", None) == "x86_64-linux-musl"
    assert zigmusl.libc_name("aarch64-linux-musl") == "libc.musl-aarch64.so.1"
    assert zigmusl.libc_name("aarch64-linux-gnu.2.17") is None
    env = cross_env(parse_target("musllinux_1_2_x86_64"), "cp311")
    assert env["SETUPTOOLS_EXT_SUFFIX"] == ".cpython-311-x86_64-linux-musl.so"
    assert env["CARGO_BUILD_TARGET"] == rust_triple("x86_64", "musl") == \
        "x86_64-unknown-linux-musl"
    assert cross_env(parse_target("manylinux_2_17_aarch64"), "cp39")["SETUPTOOLS_EXT_SUFFIX"] \
        == ".cpython-39-aarch64-linux-gnu.so"


def test_only_shared_links_are_patched() -> None:
    assert zigmusl.shared_output(["-shared", "a.o", "-o", "m.so"]) == "m.so"
    assert zigmusl.shared_output(["-shared", "-om.so"]) == "m.so"
    assert zigmusl.shared_output(["-c", "a.c", "-o", "a.o"]) is None


def test_a_glibc_module_breaks_a_musllinux_policy_by_name() -> None:
    policy = pol.policy_for(parse_target("musllinux_1_2_x86_64"))
    assert policy.libc == "musl"
    good = elf(MUSL, ("libc.musl-x86_64.so.1",))
    assert pol.evaluate([good], policy, "x86_64") == []
    bad = elf(GNU, ("libm.so.6", "libc.so.6"), versions=(("libc.so.6", "GLIBC_2.2.5", ()),))
    found = pol.evaluate([bad], policy, "x86_64")
    assert [str(v) for v in found] == [f"{GNU} linked against glibc, not musl (libc.so.6)"]


def test_a_musl_module_breaks_a_manylinux_policy_by_name() -> None:
    policy = pol.policy_for(parse_target("manylinux_2_17_x86_64"))
    found = pol.evaluate([elf(MUSL, ("libc.musl-x86_64.so.1",))], policy, "x86_64")
    assert [v.kind for v in found] == ["libc"]
    assert "linked against musl, not glibc" in str(found[0])


def test_an_aarch64_module_breaks_an_x86_64_policy_by_name() -> None:
    policy = pol.policy_for(parse_target("manylinux_2_17_x86_64"))
    member = "fastadd.cpython-311-aarch64-linux-gnu.so"
    found = pol.evaluate([elf(member, ("libc.so.6",), "EM_AARCH64")], policy, "x86_64")
    assert [str(v) for v in found] == [f"{member} built for aarch64, not x86_64"]


def test_auditwheel_is_told_the_targets_machine() -> None:
    cmd = ["/py", "-m", "auditwheel"]
    assert as_target(cmd, parse_target("manylinux_2_17_x86_64")) == cmd
    crossed = as_target(cmd, parse_target("manylinux_2_17_aarch64"))
    assert crossed[:2] == ["/py", "-c"] and crossed[-2:] == ["aarch64", "GLIBC"]
    assert as_target(cmd, parse_target("musllinux_1_2_x86_64"))[-2:] == ["x86_64", "MUSL"]
    assert as_target(["auditwheel"], parse_target("musllinux_1_2_x86_64")) == ["auditwheel"]


def test_unprepared_places_say_built_and_checked_not_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(testplaces.EMULATION_CACHE_ENV, str(tmp_path))
    host = testplaces.where_to_run(parse_target("manylinux_2_17_x86_64"), "cp311")
    assert host == testplaces.RunPlace("host", "cp311")
    where = testplaces.where_to_run(parse_target("manylinux_2_17_aarch64"), "cp39")
    assert isinstance(where, testplaces.NoPlace)
    assert where.message == ("built and checked, not run: aarch64-bullseye is not prepared; "
                             f"to run it: {testplaces.PREPARE_HINT}")
    other = testplaces.where_to_run(parse_target("manylinux_2_17_aarch64"), "cp313")
    assert isinstance(other, testplaces.NoPlace) and "offered: cp39, cp311" in other.reason
    musl = testplaces.where_to_run(parse_target("musllinux_1_2_aarch64"), "cp311")
    assert isinstance(musl, testplaces.NoPlace)


def test_a_prepared_place_is_found_by_its_ready_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(testplaces.EMULATION_CACHE_ENV, str(tmp_path))
    half = tmp_path / "musl-cp311-0000"
    half.mkdir()
    assert testplaces.find_prepared("musl-cp311") is None
    (half / testplaces.READY).write_text("x")
    where = testplaces.where_to_run(parse_target("musllinux_1_2_x86_64"), "cp311")
    assert where == testplaces.RunPlace("musl", "cp311", "musl-cp311", half)
    assert testplaces.wait_prepared("aarch64-bookworm", 0.1) is None


def test_the_place_platforms_pip_may_install() -> None:
    t = parse_target("manylinux_2_17_aarch64")
    tags = emulation.platforms(t, testplaces.RunPlace("qemu", "cp39", "aarch64-bullseye",
                                                      Path("/x")))
    assert tags[0] == "manylinux_2_31_aarch64" and "manylinux2014_aarch64" in tags
    assert "manylinux_2_32_aarch64" not in tags


def test_the_recorded_status_is_read_from_provenance(tmp_path: Path) -> None:
    wheel = tmp_path / "a-1.0-cp311-cp311-musllinux_1_2_aarch64.whl"
    statement = {"predicate": {"runDetails": {"testResult": {
        "status": testplaces.NOT_RUN, "pythons": [], "note": "why"}}}}
    (tmp_path / (wheel.name + ".intoto.json")).write_text(json.dumps(statement))
    assert testplaces.recorded_for(wheel) == (testplaces.NOT_RUN, "why")
    assert testplaces.recorded(b"not json") is None
    assert testplaces.recorded_for(tmp_path / "none.whl") is None


def test_a_remote_workers_musllinux_wheel_name_is_checked_against_the_job() -> None:
    from wheelfarm.build.wheelcheck import Expected, WheelRefused, check_name

    job = Expected("fastadd", "0.1.0", "cp311", "musllinux_1_2_x86_64")
    check_name("fastadd-0.1.0-cp311-cp311-musllinux_1_2_x86_64.whl", job)
    check_name("fastadd-0.1.0-cp311-cp311-musllinux_1_1_x86_64.whl", job)
    for wrong in ("fastadd-0.1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                  "fastadd-0.1.0-cp311-cp311-musllinux_1_2_aarch64.whl"):
        with pytest.raises(WheelRefused):
            check_name(wrong, job)
    arm = Expected("fastadd", "0.1.0", "cp39", "manylinux_2_28_aarch64")
    check_name("fastadd-0.1.0-cp39-cp39-manylinux_2_17_aarch64.whl", arm)
    with pytest.raises(WheelRefused):
        check_name("fastadd-0.1.0-cp39-cp39-musllinux_1_2_aarch64.whl", arm)
