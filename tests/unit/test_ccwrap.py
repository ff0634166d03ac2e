"""Build profiles: the flags the farm's compiler wrappers add, and the evidence the
binary check reads back (pure functions; the real compilers are in
tests/integration/test_profile.py)."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from wheelfarm.build import ccwrap, quality
from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.plan import jobs as plan
from wheelfarm.plan import recipe
from wheelfarm.plan.targets import parse_target


@pytest.mark.parametrize(("args", "expected"), [
    (["-c", "x.c"], None),
    (["-O3", "-c", "x.c"], "-O3"),
    (["-O2", "-O0", "-c", "x.c"], "-O0"),  # the last one wins, as in gcc and clang
    (["-Os", "x.c"], "-Os"),
    (["-Ofast"], "-Ofast"),
    (["-O"], "-O"),
    (["-Wl,-O1", "-shared", "a.o"], None),  # the linker's, not the compiler's
    (["-Xlinker", "-O1", "a.o"], None),
    (["-Og", "-g"], "-Og"),
])
def test_optimization_is_the_last_compiler_o(args: list[str], expected: str | None) -> None:
    assert ccwrap.optimization(args) == expected


def test_release_adds_o2_only_when_the_build_gives_none() -> None:
    assert ccwrap.profile_flags(["-c", "x.c"], "release") == [
        "-O2", "-DNDEBUG", "-g", "-grecord-gcc-switches"]
    # A build's own -O is never overridden, and -O0 stays -O0 (the check judges it).
    assert ccwrap.profile_flags(["-O3", "-c", "x.c"], "release") == [
        "-DNDEBUG", "-g", "-grecord-gcc-switches"]
    assert ccwrap.profile_flags(["-O0", "-c", "x.c"], "release")[0] == "-DNDEBUG"
    assert ccwrap.profile_flags(["-c", "x.c"], "release", record_switches=False) == [
        "-O2", "-DNDEBUG"]


def test_debug_adds_no_optimization_and_no_ndebug() -> None:
    assert ccwrap.profile_flags(["-c", "x.c"], "debug") == ["-g"]
    assert ccwrap.profile_flags(["-c", "x.c"], "debug", record_switches=False) == []


def test_queries_get_nothing_added() -> None:
    for args in ([], ["--version"], ["-dumpversion"], ["-print-file-name=libgcc.a"]):
        assert ccwrap.profile_flags(args, "release") == []
        assert ccwrap.command("/usr/bin/gcc", "release", args, {}) == ["/usr/bin/gcc", *args]


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="profile"):
        ccwrap.profile_flags(["-c", "x.c"], "fast")


def test_command_puts_the_farm_first_and_keeps_every_flag_of_the_build() -> None:
    env = {ccwrap.PREFIX_MAPS_VAR: json.dumps([["/w x", "/wheelfarm/work"]])}
    args = ["-fPIC", "-UNDEBUG", "-c", "x.c", "-o", "x.o"]
    assert ccwrap.command("/usr/bin/gcc", "release", args, env) == [
        "/usr/bin/gcc", "-O2", "-DNDEBUG", "-g", "-grecord-gcc-switches",
        "-ffile-prefix-map=/w x=/wheelfarm/work", *args]


def test_prefix_maps_ignore_garbage() -> None:
    assert ccwrap.prefix_map_flags({}) == []
    assert ccwrap.prefix_map_flags({ccwrap.PREFIX_MAPS_VAR: "not json"}) == []


def test_profile_env_asks_cargo_for_dev_only_in_debug() -> None:
    assert ccwrap.profile_env("release") == {}
    assert ccwrap.profile_env("debug")["SETUPTOOLS_RUST_CARGO_PROFILE"] == "dev"


def test_find_compiler_skips_the_wrappers_own_directory(tmp_path: Path) -> None:
    own, real = tmp_path / "own", tmp_path / "real"
    for d in (own, real):
        d.mkdir()
        (d / "gcc").write_text("#!/bin/sh\n")
        (d / "gcc").chmod(0o755)
    found = ccwrap.find_compiler("gcc", str(own), os.pathsep.join([str(own), str(real)]))
    assert found == str(real / "gcc")
    assert ccwrap.find_compiler("gcc", str(own), str(own)) is None
    assert ccwrap.find_compiler("/opt/cc", str(own), "") == "/opt/cc"


def test_standalone_wrapper_carries_the_module_and_its_config(tmp_path: Path) -> None:
    paths = ccwrap.write_wrappers(str(tmp_path), python="/opt/python/cp39-cp39/bin/python",
                                  profile="release", compilers={"cc": "gcc"}, package_root=None)
    text = Path(paths["cc"]).read_text()
    assert text.startswith("#!/opt/python/cp39-cp39/bin/python -I\n")
    assert "def profile_flags(" in text  # no import of the farm's package
    blob = text.rsplit("main([", 1)[1].split(", *sys.argv", 1)[0]
    assert json.loads(ast.literal_eval(blob)) == {
        "compiler": "gcc", "profile": "release", "own_dir": str(tmp_path)}
    compile(text, "cc", "exec")
    assert os.access(paths["cc"], os.X_OK)


def test_main_refuses_a_bad_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert ccwrap.main(['{"compiler": "gcc", "profile": "fast", "own_dir": "/x"}']) == 2
    assert "bad configuration" in capsys.readouterr().err


# -- the profile in recipes, selections and job keys -----------------------------------


def test_recipe_profile_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    head = '[package]\nname = "p"\nversion = "1"\n[source]\npath = "."\n[build]\n'
    path.write_text(head + 'profile = "debug"\n')
    assert recipe.load(path).profile == "debug"
    path.write_text(head + 'profile = "fast"\n')
    with pytest.raises(RecipeError, match=r"build\.profile"):
        recipe.load(path)


def test_profile_is_part_of_the_job_key_not_of_the_recipe_digest(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    head = '[package]\nname = "p"\nversion = "1"\n[source]\npath = "."\n[build]\n'
    path.write_text(head)
    plain = recipe.load(path)
    path.write_text(head + 'profile = "debug"\n')
    debug = recipe.load(path)
    assert plain.digest() == debug.digest()
    target = parse_target("manylinux_2_17_x86_64")
    keys = {p: plan.content_key("d", target, "cp312", "zig", "t", ["cp312"], "", p)
            for p in ccwrap.PROFILES}
    assert keys["release"] != keys["debug"]
    assert keys["release"] == plan.content_key("d", target, "cp312", "zig", "t", ["cp312"])


def test_selection_profile_flag() -> None:
    assert plan.Selection.parse([], [], None, profile="debug").profile == "debug"
    with pytest.raises(ConfigError, match="--profile"):
        plan.Selection.parse([], [], None, profile="fast")


# -- the binary check's evidence --------------------------------------------------------


@pytest.mark.parametrize(("producer", "level"), [
    ("GNU C17 12.2.0 -mtune=generic -march=x86-64 -g -O2 -fPIC", "-O2"),
    ("GNU C17 12.2.0 -mtune=generic -march=x86-64 -g -fPIC", "-O0"),
    ("GNU C17 12.2.0 -mtune=generic -march=x86-64 -g -O2 -O0", "-O0"),
    ("GNU C++14 10.2.1 -mtune=generic -march=x86-64 -g -Og", "-Og"),
    ("GNU C17 12.2.0", None),  # -gno-record-gcc-switches: tells nothing
    ("GNU AS 2.40", None),
    ("clang version 22.1.8", None),
    ("clang version 22.1.8 /zig t.c -fsanitize=undefined -O0 -c -o t.o", "-O0"),
    ("clang LLVM (rustc version 1.83.0)", None),
    ("zig 0.17.1", None),
])
def test_level_from_producer(producer: str, level: str | None) -> None:
    assert quality.level_from_producer(producer) == level


def test_module_report_names_units_and_sanitizers() -> None:
    report = quality.ModuleReport("pkg/_x.so", sanitizers=["NEEDED libasan.so.8",
                                                           "__asan_init"],
                                  unoptimized=[("src/a.c", "-O0", "DW_AT_producer 'GNU C17'")])
    problems = report.problems()
    assert len(problems) == 2
    assert "src/a.c (-O0" in problems[0]
    assert "NEEDED libasan.so.8, __asan_init" in problems[1]
    assert quality.ModuleReport("ok.so", optimized=3).problems() == []


def test_ubsan_runtime_messages_betray_a_stripped_module() -> None:
    body = b"\0".join([b"PyInit_x", b"left shift of negative value",
                       b"execution reached an unreachable program point"])
    assert len(quality.ubsan_messages(body)) == 2
    # One phrase alone could be a project's own string.
    assert quality.ubsan_messages(b"cannot be represented in type") == []


def test_link_time_stripping_is_dropped_so_the_debug_info_can_be_split_off() -> None:
    from wheelfarm.build.ccwrap import command, without_stripping

    args = ["-shared", "-s", "a.o", "-Wl,-O1,--strip-all", "-Xlinker", "-S", "-Xlinker",
            "-soname", "-Xlinker", "x.so", "-o", "x.so"]
    assert without_stripping(args) == ["-shared", "a.o", "-Wl,-O1", "-Xlinker", "-soname",
                                       "-Xlinker", "x.so", "-o", "x.so"]
    assert without_stripping(["-Wl,-s", "b.o"]) == ["b.o"]
    cmd = command("/usr/bin/gcc", "release", ["-shared", "-s", "a.o"], {})
    assert "-s" not in cmd and cmd[-2:] == ["-shared", "a.o"]


def test_threads_of_one_process_write_the_wrappers_at_once(tmp_path: Path) -> None:
    # A local build runs its jobs as threads: each writes the farm's wrappers
    # when it opens its executor, and none may trip over another's file.
    import threading

    errors: list[BaseException] = []
    for round_ in range(10):
        directory = tmp_path / f"r{round_}"
        start = threading.Barrier(8)

        def write(target: Path = directory, barrier: threading.Barrier = start) -> None:
            barrier.wait()
            try:
                ccwrap.write_wrappers(str(target), python="/usr/bin/python3", profile="release",
                                      compilers={"gcc": "/usr/bin/gcc", "g++": "/usr/bin/g++"},
                                      package_root=None)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(p.name for p in directory.iterdir()) == ["g++", "gcc"]
        assert all(os.access(p, os.X_OK) for p in directory.iterdir())
    assert errors == []
