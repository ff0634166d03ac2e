"""The zig compiler wrapper's argument translation: pure, no zig needed."""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest

from wheelfarm.build import zigcc
from wheelfarm.build.zigcc import RULES, command, translate, wrapper_script, zig_target

BUILD_ID = "-Wl,--build-id=sha1"


def run(line: str, mode: zigcc.Mode = "cc") -> tuple[str, str, list[str]]:
    driver, args, notes = translate(shlex.split(line), mode)
    # Every shared link gets a build-id (tested below); the rest of the line is what matters.
    if "-shared" in args and BUILD_ID not in line:
        assert args[-1] == BUILD_ID
        args = args[:-1]
    return driver, shlex.join(args), notes


def test_zig_target_names_the_glibc() -> None:
    assert zig_target("x86_64", (2, 17)) == "x86_64-linux-gnu.2.17"
    assert zig_target("aarch64", (2, 28)) == "aarch64-linux-gnu.2.28"


def test_plain_arguments_pass_untouched() -> None:
    line = ("-fno-strict-overflow -Wsign-compare -DNDEBUG -g -O3 -Wall -fPIC "
            "-I/usr/include/python3.12 -c src/x.c -o build/x.o")
    assert run(line) == ("cc", line, [])


def test_debian_ldshared() -> None:
    driver, args, notes = run("-shared -Wl,-O1 -Wl,-Bsymbolic-functions -g -fwrapv -O2 x.o -o x.so")
    assert driver == "cc"
    assert args == "-shared -g -fwrapv -O2 x.o -o x.so"
    assert notes == [
        "wheelfarm-zigcc: dropped -Wl,-O1 (zig ignores linker optimisation levels and warns)",
        "wheelfarm-zigcc: dropped -Wl,-Bsymbolic-functions (zig's linker rejects it; "
        "it only stops interposition of the module's own functions)",
    ]


def test_ubuntu_and_fedora_flags() -> None:
    _, args, notes = run(
        "-O2 -flto=auto -ffat-lto-objects -Wp,-D_FORTIFY_SOURCE=3 -Wp,-D_GLIBCXX_ASSERTIONS "
        "-specs=/usr/lib/rpm/redhat/redhat-hardened-cc1 -m64 -march=x86-64 -mtune=generic "
        "-fstack-clash-protection -fcf-protection -c x.c -o x.o"
    )
    assert args == (
        "-O2 -ffat-lto-objects -D_FORTIFY_SOURCE=3 -D_GLIBCXX_ASSERTIONS -m64 -march=x86_64 "
        "-fstack-clash-protection -fcf-protection -c x.c -o x.o"
    )
    assert notes[0] == ("wheelfarm-zigcc: dropped -flto=auto "
                        "(zig cc rejects gcc's -flto=auto/jobserver/N; built without LTO)")
    assert len(notes) == 6


@pytest.mark.parametrize(("given", "expected"), [
    ("-march=x86-64-v2", "-march=x86_64_v2"),
    ("-march=x86-64-v3", "-march=x86_64_v3"),
    ("-march=x86-64", "-march=x86_64"),
    ("-march=skylake-avx512", "-march=skylake_avx512"),
    ("-march=native", "-march=native"),
    ("-march=haswell", "-march=haswell"),
])
def test_cpu_names_use_underscores(given: str, expected: str) -> None:
    assert run(f"-c x.c {given}")[1] == f"-c x.c {expected}"


@pytest.mark.parametrize("flag", ["-flto=auto", "-flto=jobserver", "-flto=8"])
def test_gcc_lto_modes_are_dropped_but_clang_ones_kept(flag: str) -> None:
    assert run(f"-c x.c {flag}")[1] == "-c x.c"
    assert run("-c x.c -flto=thin")[1] == "-c x.c -flto=thin"
    assert run("-c x.c -flto")[1] == "-c x.c -flto"


def test_linker_lists_are_filtered_piece_by_piece() -> None:
    _, args, notes = run(
        "-shared x.o -Wl,-z,relro,-z,separate-code,-z,now -Wl,--exclude-libs,ALL,--as-needed"
    )
    assert args == "-shared x.o -Wl,-z,relro,-z,now -Wl,--as-needed"
    assert [n.split(" (")[0] for n in notes] == [
        "wheelfarm-zigcc: dropped -Wl,-z,separate-code",
        "wheelfarm-zigcc: dropped -Wl,--exclude-libs,ALL",
    ]


def test_a_linker_option_and_its_value_in_separate_arguments() -> None:
    assert run("-shared -Wl,-z -Wl,separate-code -Wl,-z -Wl,relro")[1] == (
        "-shared -Wl,-z -Wl,relro")
    assert run("-shared -Xlinker --exclude-libs -Xlinker ALL -Xlinker -zrelro")[1] == (
        "-shared -Xlinker -zrelro")
    # -z with its value as separate compiler arguments, as gcc accepts too.
    assert run("-shared -z pack-relative-relocs -z now")[1] == "-shared -z now"


def test_equals_spellings() -> None:
    assert run("-shared -Wl,--exclude-libs=ALL -Wl,-zseparate-code")[1] == "-shared"
    assert run("-shared -Wl,-Map=out.map,--icf=all,--threads=4")[1] == "-shared"


def test_short_soname_is_translated() -> None:
    _, args, notes = run("-shared -Wl,-h,libfoo.so.1 x.o")
    assert args == "-shared -Wl,-soname,libfoo.so.1 x.o"
    assert "-Wl,-h,libfoo.so.1 -> -Wl,-soname,libfoo.so.1 (" in notes[0]


def test_rustc_link_line() -> None:
    # What rustc 1.95 passes to its linker for a cdylib (rlibs elided).
    line = (
        "-Wl,--version-script=/t/deps/rustc123/list -Wl,--no-undefined-version -m64 "
        "/t/deps/rustc123/symbols.o /t/deps/x.rcgu.o -Wl,--as-needed -Wl,-Bstatic "
        "/t/deps/libstd.rlib -Wl,-Bdynamic -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc "
        "-L /t/deps/rustc123/raw-dylibs "
        "-B/root/.rustup/toolchains/stable/lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld "
        "-fuse-ld=lld -Wl,--eh-frame-hdr -Wl,-z,noexecstack -L /root/.rustup/lib -o /t/libx.so "
        "-Wl,--gc-sections -shared -Wl,-z,relro,-z,now -Wl,-O1 -Wl,--strip-debug -nodefaultlibs"
    )
    driver, args, notes = run(line, "linker")
    assert driver == "cc"
    assert args == (
        "-Wl,--version-script=/t/deps/rustc123/list -Wl,--no-undefined-version -m64 "
        "/t/deps/rustc123/symbols.o /t/deps/x.rcgu.o -Wl,--as-needed -Wl,-Bstatic "
        "/t/deps/libstd.rlib -Wl,-Bdynamic -lunwind -lutil -lrt -lpthread -lm -ldl -lc "
        "-L /t/deps/rustc123/raw-dylibs -Wl,--eh-frame-hdr -Wl,-z,noexecstack "
        "-L /root/.rustup/lib -o /t/libx.so -Wl,--gc-sections -shared -Wl,-z,relro,-z,now "
        "-nodefaultlibs"
    )
    assert [n.split(" (")[0] for n in notes] == [
        "wheelfarm-zigcc: -lgcc_s -> -lunwind",
        "wheelfarm-zigcc: dropped "
        "-B/root/.rustup/toolchains/stable/lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld",
        "wheelfarm-zigcc: dropped -fuse-ld=lld",
        "wheelfarm-zigcc: dropped -Wl,-O1",
        "wheelfarm-zigcc: dropped -Wl,--strip-debug",
    ]


def test_a_foreign_target_is_dropped_in_both_spellings() -> None:
    # cc-rs hands a clang-like CC the Rust triple.
    assert run("--target=x86_64-unknown-linux-gnu -c x.c")[1] == "-c x.c"
    assert run("-target x86_64-unknown-linux-gnu -c x.c")[1] == "-c x.c"
    assert run("-B /opt/gcc-ld -c x.c")[1] == "-c x.c"


def test_pie_becomes_pic_only_in_shared_objects() -> None:
    assert run("-fPIE -pie -shared x.c -o x.so")[1] == "-fPIC -shared x.c -o x.so"
    assert run("-fPIE -c x.c")[1] == "-fPIE -c x.c"


def test_gcc_only_options() -> None:
    line = "-fno-var-tracking-assignments -fipa-pta -fno-gnu-unique -static-libstdc++ -c x.c"
    assert run(line)[1] == "-c x.c"


def test_cc_compiling_cplusplus_uses_zig_cplusplus() -> None:
    # setuptools before 72 compiles .cpp files with CC.
    driver, _, notes = run("-fPIC -c src/vec.cpp -o build/vec.o")
    assert driver == "c++"
    assert notes == ["wheelfarm-zigcc: compiling src/vec.cpp with zig c++ "
                     "(zig cc has no C++ standard library headers)"]
    assert run("-x c++ -c weird.inc -o w.o")[0] == "c++"
    assert run("-c x.c -o out.cpp")[0] == "cc"  # an output is no input
    assert run("-shared x.o -o x.so", "c++")[0] == "c++"
    assert run("-shared x.o -o x.so", "linker")[0] == "cc"


def test_a_repeated_decision_is_noted_once() -> None:
    notes = run("-shared -Wl,-O1 -Wl,-O1 x.o")[2]
    assert len(notes) == 1


def test_command_puts_the_target_first() -> None:
    cmd, notes = command("/z/zig", "x86_64-linux-gnu.2.17", "c++", ["-shared", "-Wl,-O1", "a.o"])
    # The release profile's flags come before the build's own; -Wl,-O1 is the
    # linker's, so the link still gets -O2 (the mode of the runtimes zig links in).
    assert cmd == ["/z/zig", "c++", "-target", "x86_64-linux-gnu.2.17", "-O2", "-DNDEBUG",
                   "-shared", "a.o", BUILD_ID]
    assert len(notes) == 1


def test_command_adds_the_profile_and_keeps_the_builds_flags() -> None:
    env = {"WHEELFARM_PREFIX_MAPS": '[["/w", "/wheelfarm/work"]]'}
    cmd, _ = command("/z/zig", "t", "cc", ["-O0", "-c", "x.c"], "release", env)
    assert cmd == ["/z/zig", "cc", "-target", "t", "-DNDEBUG",
                   "-ffile-prefix-map=/w=/wheelfarm/work", "-O0", "-c", "x.c"]
    cmd, _ = command("/z/zig", "t", "cc", ["-c", "x.c"], "debug", env)
    assert cmd == ["/z/zig", "cc", "-target", "t", "-ffile-prefix-map=/w=/wheelfarm/work",
                   "-c", "x.c"]
    # zig records no switches: clang's would carry the job's absolute paths.
    cmd, _ = command("/z/zig", "t", "cc", ["-c", "x.c"])
    assert "-grecord-gcc-switches" not in cmd and cmd[4:6] == ["-O2", "-DNDEBUG"]


def test_every_rule_pattern_compiles_and_has_a_reason() -> None:
    for rule in RULES:
        re.compile(rule.pattern)
        assert rule.reason and "(" not in rule.reason, rule


def test_wrapper_script_is_isolated_and_baked() -> None:
    text = wrapper_script(python="/farm/venv/bin/python", package_root="/farm/src", mode="c++",
                          zig="/farm/zig", target="x86_64-linux-gnu.2.28",
                          cache_dir="/cache/zig/cache")
    first, *rest = text.splitlines()
    assert first == "#!/farm/venv/bin/python -I"
    assert "sys.path.insert(0, '/farm/src')" in rest
    assert "from wheelfarm.build.zigcc import main" in rest
    blob = text.split("main([", 1)[1].split(", *sys.argv", 1)[0]
    config = json.loads(ast.literal_eval(blob))  # passed as a str literal
    assert config == {"mode": "c++", "zig": "/farm/zig", "target": "x86_64-linux-gnu.2.28",
                      "cache_dir": "/cache/zig/cache", "profile": "release"}
    compile(text, "cc", "exec")


def test_wrapper_script_refuses_an_unusable_interpreter_path() -> None:
    with pytest.raises(ValueError, match="#!"):
        wrapper_script(python="/with space/python", package_root="/", mode="cc",
                       zig="/zig", target="t", cache_dir="/c")


@pytest.mark.parametrize("argv", [[], ["not json"], ['{"mode": "fortran"}']])
def test_main_rejects_a_bad_configuration(argv: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert zigcc.main(argv) == 2
    assert capsys.readouterr().err.startswith("wheelfarm-zigcc: ")


def test_shared_links_get_a_gnu_build_id() -> None:
    # Debug files are split off and published by build-id; zig emits none by default.
    assert translate(["-shared", "x.o", "-o", "x.so"], "cc")[1][-1] == BUILD_ID
    assert BUILD_ID not in translate(["-fPIC", "-c", "x.c", "-o", "x.o"], "cc")[1]
    # A project's own build-id choice is kept, not doubled.
    args = translate(["-shared", "-Wl,--build-id=md5", "x.o"], "cc")[1]
    assert args == ["-shared", "-Wl,--build-id=md5", "x.o"]


def test_link_time_stripping_is_dropped_so_the_debug_info_can_be_split_off() -> None:
    _driver, out, notes = translate(["-shared", "-s", "a.o", "-Wl,--strip-all,-O1"], "cc")
    assert "-s" not in out and not any("strip-all" in a for a in out)
    assert any("splits the debug info off" in n for n in notes)


def test_runtimes_warmed_by_one_zig_install_are_not_warm_for_another(tmp_path: Path) -> None:
    # zig keys the runtimes it compiles by its lib directory's path: a warm-up by
    # the zig of one virtual environment leaves nothing warm for another's, whose
    # builds would compile them again in their throw-away overlay.
    import os
    import shutil

    from wheelfarm.build.executors.zig import ZigExecutor, ZigLayout, find_zig
    from wheelfarm.plan.targets import parse_target

    zig = find_zig()
    assert zig is not None
    (tmp_path / "link").mkdir()
    (tmp_path / "copy").mkdir()
    (tmp_path / "link" / "zig").symlink_to(zig)
    try:
        os.link(zig, tmp_path / "copy" / "zig")  # another install's path, as a copy but cheap
    except OSError:  # another file system
        shutil.copy2(zig, tmp_path / "copy" / "zig")
    target = parse_target("manylinux2014_x86_64")
    layout = ZigLayout(tmp_path / "cache", target)

    def warm(path: Path) -> str:
        return ZigExecutor(zig=path)._warm_fingerprint(target, layout)

    assert warm(tmp_path / "link" / "zig") == warm(zig)  # the same install, by another name
    assert warm(tmp_path / "copy" / "zig") != warm(zig)
