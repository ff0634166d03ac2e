"""Policy lookup, the symbol-level judgement, messages and check_binary — no subprocess.

ELF reading against real compiled objects lives in tests/integration/test_repair_real.py;
here the judgement runs on hand-written ElfInfo records.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import pytest

from tests import wheels
from wheelfarm.build import policy as pol
from wheelfarm.build import repair as rp
from wheelfarm.build import wheelscan
from wheelfarm.build.policy import Violation
from wheelfarm.build.wheelscan import ElfInfo
from wheelfarm.errors import BuildError, CommandError, ConfigError, PolicyError, RepairError
from wheelfarm.plan.targets import Target, parse_target

EXT = "fastadd.cpython-312-x86_64-linux-gnu.so"
# A 64-bit ELF header and nothing else: enough for the magic test.
FAKE_ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57
# Cut off after e_ident: pyelftools cannot parse it.
BROKEN_ELF = FAKE_ELF[:20]


def make_wheel(
    directory: Path,
    name: str = "fastadd-1.0-cp312-cp312-linux_x86_64.whl",
    members: Mapping[str, bytes] | None = None,
    purelib: bool = False,
) -> Path:
    """The wheel file ``name``, holding ``members`` besides its dist-info."""
    dist, version, tag = name.removesuffix(".whl").split("-", 2)
    return wheels.make_wheel(directory, dist, version, tag, members=dict(members or {}),
                             purelib=purelib)


def elf(
    member: str = EXT,
    needed: Sequence[str] = ("libm.so.6", "libc.so.6"),
    versions: Sequence[tuple[str, str, tuple[str, ...]]] = (),
    machine: str = "EM_X86_64",
    soname: str | None = None,
    undefined: frozenset[str] = frozenset(),
) -> ElfInfo:
    return ElfInfo(member, machine, soname, tuple(needed), tuple(versions), undefined)


M2_17 = parse_target("manylinux_2_17_x86_64")
M2_35 = parse_target("manylinux_2_35_x86_64")
POW = ("libm.so.6", "GLIBC_2.29", ("exp", "pow"))


def known_glibcs(arch: str) -> list[tuple[int, int]]:
    ref = resources.files("auditwheel") / "policy" / "manylinux-policy.json"
    out = []
    for entry in json.loads(ref.read_text()):
        parts = entry["name"].split("_")
        if parts[0] == "manylinux" and arch in entry["symbol_versions"]:
            out.append((int(parts[1]), int(parts[2])))
    return sorted(out)


# -- policy lookup ------------------------------------------------------------------------

def test_known_policy_comes_from_auditwheel_data() -> None:
    policy = pol.policy_for(M2_17)
    assert policy.name == "manylinux_2_17"
    assert policy.tag == "manylinux_2_17_x86_64"
    assert policy.derived_from is None
    assert {"2.17", "2.2.5"} <= policy.symbol_versions["GLIBC"]
    assert "2.18" not in policy.symbol_versions["GLIBC"]
    assert "3.4.19" in policy.symbol_versions["GLIBCXX"]
    assert {"libm.so.6", "libc.so.6", "libstdc++.so.6"} <= policy.whitelist
    assert "libmvec.so.1" not in policy.whitelist


def test_legacy_alias_resolves_to_the_same_policy() -> None:
    assert pol.policy_for(parse_target("manylinux2014_x86_64")) == pol.policy_for(M2_17)
    assert pol.policy_for(parse_target("manylinux2014_aarch64")).arch == "aarch64"


def test_policy_between_known_ones_is_derived_from_the_lower() -> None:
    policy = pol.policy_for(parse_target("manylinux_2_30_x86_64"))
    base = pol.policy_for(parse_target("manylinux_2_28_x86_64"))
    assert policy.derived_from == "manylinux_2_28"
    assert policy.name == "manylinux_2_30"
    assert policy.symbol_versions["GLIBC"] == base.symbol_versions["GLIBC"] | {"2.29", "2.30"}
    assert policy.symbol_versions["GLIBCXX"] == base.symbol_versions["GLIBCXX"]
    assert policy.whitelist == base.whitelist


def test_newer_policy_than_auditwheel_knows_is_derived() -> None:
    newest = known_glibcs("x86_64")[-1]
    target = Target("manylinux", "x86_64", (2, newest[1] + 3))
    policy = pol.policy_for(target)
    base = pol.policy_for(Target("manylinux", "x86_64", newest))
    assert policy.derived_from == f"manylinux_2_{newest[1]}"
    glibc = policy.symbol_versions["GLIBC"]
    assert {f"2.{newest[1] + 1}", f"2.{newest[1] + 3}"} <= glibc
    assert f"2.{newest[1] + 4}" not in glibc
    assert base.symbol_versions["GLIBC"] <= glibc  # non-numeric ones like ABI_DT_RELR too
    for prefix in ("GLIBCXX", "CXXABI", "GCC"):
        assert policy.symbol_versions[prefix] == base.symbol_versions[prefix]


def test_no_policy_below_the_oldest_or_for_auto() -> None:
    lowest = known_glibcs("aarch64")[0]
    with pytest.raises(ConfigError, match=f"lowest known: manylinux_2_{lowest[1]}"):
        pol.policy_for(Target("manylinux", "aarch64", (2, lowest[1] - 1)))
    with pytest.raises(ConfigError, match="no fixed manylinux policy"):
        pol.policy_for(Target("manylinux-auto", "x86_64"))


# -- the judgement ------------------------------------------------------------------------

def test_too_new_glibc_symbols_are_named_one_by_one() -> None:
    got = pol.evaluate([elf(versions=[POW, ("libc.so.6", "GLIBC_2.2.5", ("malloc",))])],
                      pol.policy_for(M2_17), "x86_64")
    assert got == [Violation(EXT, "exp@GLIBC_2.29", "libm.so.6"),
                   Violation(EXT, "pow@GLIBC_2.29", "libm.so.6")]
    assert pol.evaluate([elf(versions=[POW])], pol.policy_for(M2_35), "x86_64") == []


def test_unknown_version_prefixes_are_not_judged_but_private_glibc_is() -> None:
    elfs = [elf(needed=["libc.so.6"], versions=[
        ("libc.so.6", "GLIBC_PRIVATE", ("_dl_secret",)),
        ("libc.so.6", "GLIBC_ABI_DT_RELR", ()),
    ])]
    got = pol.evaluate(elfs, pol.policy_for(M2_17), "x86_64")
    assert [v.symbol for v in got] == ["GLIBC_ABI_DT_RELR", "_dl_secret@GLIBC_PRIVATE"]
    foo = [elf(needed=["libfoo.so.1"], versions=[("libfoo.so.1", "FOO_9.9", ("foo",))],
               member="pkg.libs/libbar.so", soname="libbar.so")]
    assert [v.kind for v in pol.evaluate(foo, pol.policy_for(M2_17), "x86_64")] == ["library"]


def test_libraries_outside_the_whitelist_unless_vendored() -> None:
    policy = pol.policy_for(M2_17)
    ext = elf(needed=["libm.so.6", "libhelper.so", "libmvec.so.1", "ld-linux-x86-64.so.2"])
    got = pol.evaluate([ext], policy, "x86_64")
    assert got == [Violation(EXT, "", "libhelper.so", "library", "manylinux_2_17"),
                   Violation(EXT, "", "libmvec.so.1", "library", "manylinux_2_17")]
    assert "libhelper.so (not allowed by manylinux_2_17; repair vendors it)" in str(got[0])
    # libmvec is whitelisted from manylinux_2_24 on
    assert [v.library for v in pol.evaluate([ext], pol.policy_for(M2_35), "x86_64")] == [
        "libhelper.so"]
    by_name = elf(member="fastadd.libs/libhelper.so", needed=["libc.so.6"])
    assert pol.evaluate([ext, by_name], pol.policy_for(M2_35), "x86_64") == []
    renamed = elf(member="fastadd.libs/libhelper-1a2b3c4d.so", soname="libhelper.so",
                  needed=["libc.so.6"])
    assert pol.evaluate([ext, renamed], pol.policy_for(M2_35), "x86_64") == []


def test_pre_repair_check_reports_only_what_vendoring_cannot_fix() -> None:
    ext = elf(needed=["libm.so.6", "libhelper.so"], versions=[
        POW, ("libhelper.so", "GLIBC_2.99", ("weird",)),
    ])
    got = pol.evaluate([ext], pol.policy_for(M2_17), "x86_64", include_libraries=False)
    assert [v.symbol for v in got] == ["exp@GLIBC_2.29", "pow@GLIBC_2.29"]
    assert pol.evaluate([ext], pol.policy_for(M2_35), "x86_64", include_libraries=False) == []


def test_vendored_libraries_are_held_to_the_policy_too() -> None:
    lib = elf(member="fastadd.libs/libhelper-1a2b.so", soname="libhelper.so",
              needed=["libc.so.6"], versions=[("libc.so.6", "GLIBC_2.34", ("__libc_start_main",))])
    got = pol.evaluate([elf(needed=["libhelper.so"]), lib], pol.policy_for(M2_17), "x86_64")
    assert got == [Violation(lib.member, "__libc_start_main@GLIBC_2.34", "libc.so.6")]


def test_blacklisted_symbols() -> None:
    ext = elf(needed=["libz.so.1"], undefined=frozenset({"_tr_init", "deflate"}))
    got = pol.evaluate([ext], pol.policy_for(M2_17), "x86_64")
    assert got == [Violation(EXT, "_tr_init", "libz.so.1", "blacklist")]
    assert got[0].short == "_tr_init (libz.so.1, blacklisted)"


def test_architecture_mismatch_and_linux_targets() -> None:
    arm = elf(machine="EM_AARCH64", versions=[POW])
    got = pol.evaluate([arm], pol.policy_for(M2_17), "x86_64")
    assert got == [Violation(EXT, "", "", "arch", "aarch64, not x86_64")]
    assert str(got[0]) == f"{EXT} built for aarch64, not x86_64"
    assert pol.evaluate([elf(versions=[POW])], None, "x86_64") == []
    assert len(pol.evaluate([arm], None, "x86_64")) == 1


# -- messages -----------------------------------------------------------------------------

def test_violation_str_and_order() -> None:
    v = Violation(EXT, "pow@GLIBC_2.29", "libm.so.6")
    assert str(v) == f"pow@GLIBC_2.29 (libm.so.6) in {EXT}"
    assert sorted([v, Violation(EXT, "exp@GLIBC_2.29", "libm.so.6")])[0].symbol.startswith("exp")


def test_message_is_sorted_deduplicated_and_bounded() -> None:
    many = [Violation(f"m{i % 2}.so", f"sym{i:03d}@GLIBC_2.{30 + i % 5}", "libc.so.6")
            for i in range(60)]
    many += [Violation("m1.so", "sym000@GLIBC_2.30", "libc.so.6")]
    text = pol.format_violations("x-1-cp312-cp312-linux_x86_64.whl", "manylinux_2_17_x86_64", many)
    assert text.startswith("x-1-cp312-cp312-linux_x86_64.whl does not satisfy "
                           "manylinux_2_17_x86_64: sym000@GLIBC_2.30 (libc.so.6), "
                           "sym001@GLIBC_2.31 (libc.so.6)")
    assert " and 50 more; needs glibc 2.34 or newer" in text
    assert text.count("sym000") == 1
    assert len(text) < 800


def test_long_symbols_are_clipped() -> None:
    mangled = "_ZN" + "x" * 500 + "@GLIBCXX_3.4.30"
    text = pol.format_violations("w.whl", "manylinux_2_17_x86_64",
                                [Violation("a.so", mangled, "libstdc++.so.6")])
    assert len(text) < 200 and text.endswith("...")


def test_check_policy_raises_with_every_violation(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    monkeypatch.setattr(wheelscan, "scan_wheel", lambda _w: [elf(versions=[POW])])
    with pytest.raises(PolicyError) as info:
        rp.check_policy(wheel, M2_17)
    assert str(info.value) == (
        "fastadd-1.0-cp312-cp312-linux_x86_64.whl does not satisfy manylinux_2_17_x86_64: "
        "exp@GLIBC_2.29 (libm.so.6), pow@GLIBC_2.29 (libm.so.6); needs glibc 2.29 or newer"
    )
    assert info.value.violations == [f"exp@GLIBC_2.29 (libm.so.6) in {EXT}",
                                     f"pow@GLIBC_2.29 (libm.so.6) in {EXT}"]
    rp.check_policy(wheel, M2_35)


def test_auto_target_is_held_to_the_tags_the_wheel_claims(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setattr(wheelscan, "scan_wheel", lambda _w: [elf(versions=[POW])])
    auto = parse_target("manylinux_auto_x86_64")
    claimed = make_wheel(tmp_path, "fastadd-1.0-cp312-cp312-manylinux_2_17_x86_64."
                                   "manylinux2014_x86_64.manylinux_2_35_x86_64.whl")
    assert [v.symbol for v in rp.policy_violations(claimed, auto)] == [
        "exp@GLIBC_2.29", "pow@GLIBC_2.29"]
    assert rp.policy_violations(make_wheel(tmp_path), auto) == []


# -- reading wheels -----------------------------------------------------------------------

def test_wheel_platform_tags() -> None:
    assert rp.wheel_platform_tags(Path("a-1-cp312-cp312-manylinux_2_17_x86_64."
                                       "manylinux2014_x86_64.whl")) == [
        "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert rp.wheel_platform_tags(Path("a-1-7-py3-none-any.whl")) == ["any"]
    with pytest.raises(RepairError, match="not a wheel file name"):
        rp.wheel_platform_tags(Path("a-1.tar.gz"))


def test_unreadable_wheel_and_unparsable_elf(tmp_path: Path) -> None:
    junk = tmp_path / "junk-1-cp312-cp312-linux_x86_64.whl"
    junk.write_bytes(b"not a zip")
    with pytest.raises(RepairError, match="cannot read wheel junk"):
        wheelscan.scan_wheel(junk)
    bad = make_wheel(tmp_path, members={"pkg/broken.so": BROKEN_ELF, "pkg/ok.py": b"x = 1\n"})
    with pytest.raises(RepairError, match=r"cannot parse ELF member pkg/broken\.so"):
        wheelscan.scan_wheel(bad)
    assert wheelscan.scan_wheel(make_wheel(tmp_path, members={"pkg/a.py": b"\x7fEL"})) == []


# -- check_binary -------------------------------------------------------------------------

@pytest.fixture
def c_source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "fastadd").mkdir(parents=True)
    (src / "fastadd" / "_speedups.c").write_text("int f(void) { return 1; }\n")
    (src / "fastadd" / "__init__.py").write_text("")
    return src


def test_pure_wheel_from_native_sources_is_a_build_error(tmp_path: Path, c_source: Path) -> None:
    pure = make_wheel(tmp_path, "fastadd-1.0-py3-none-any.whl",
                      members={"fastadd/__init__.py": b""}, purelib=True)
    with pytest.raises(BuildError, match=r"tagged pure Python.*fastadd/_speedups\.c.*"
                                         "silent pure-Python fallback"):
        rp.check_binary(pure, c_source)


def test_platform_tagged_wheel_without_extension_is_a_build_error(tmp_path: Path,
                                                                  c_source: Path) -> None:
    empty = make_wheel(tmp_path, members={"fastadd/__init__.py": b""})
    with pytest.raises(BuildError, match="contains no compiled extension module"):
        rp.check_binary(empty, c_source)


def test_purelib_flag_alone_makes_it_pure(tmp_path: Path, c_source: Path) -> None:
    wheel = make_wheel(tmp_path, members={f"fastadd/{EXT}": FAKE_ELF}, purelib=True)
    with pytest.raises(BuildError, match="tagged pure Python"):
        rp.check_binary(wheel, c_source)


def test_wheel_with_extension_passes(tmp_path: Path, c_source: Path) -> None:
    rp.check_binary(make_wheel(tmp_path, members={f"fastadd/{EXT}": FAKE_ELF}), c_source)
    macho = make_wheel(tmp_path, "fastadd-1.0-cp312-cp312-macosx_11_0_arm64.whl",
                       members={"fastadd/_s.cpython-312-darwin.so": bytes.fromhex("cffaedfe")})
    rp.check_binary(macho, c_source)


def test_sources_only_in_tests_docs_examples_do_not_count(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for sub in ("tests", "docs/api", "examples", "benchmarks", ".git"):
        (src / sub).mkdir(parents=True)
        (src / sub / "x.c").write_text("")
    (src / "pkg").mkdir()
    (src / "pkg" / "x.h").write_text("")
    pure = make_wheel(tmp_path, "fastadd-1.0-py3-none-any.whl", purelib=True)
    rp.check_binary(pure, src)
    for name in ("lib.rs", "m.pyx", "a.cc", "a.cpp", "a.cxx"):
        assert wheelscan.native_sources(_with(src, name)), name


def _with(src: Path, name: str) -> Path:
    target = src.parent / f"only-{name}"
    (target / "pkg").mkdir(parents=True)
    (target / "pkg" / name).write_text("")
    return target


# -- repair without running anything real -------------------------------------------------

class FakePlace:
    """A Place whose auditwheel is a Python function over argv."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.calls: list[list[str]] = []

    def python(self, tag: str) -> str:
        raise AssertionError("not used")

    def toolchain_env(self) -> dict[str, str]:
        return {}

    def pip(self) -> list[str]:
        return ["pip-here"]

    def auditwheel(self) -> list[str]:
        return ["auditwheel-here"]

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if self.behaviour == "fail":
            raise CommandError(list(argv), 2, (
                "INFO:auditwheel.main_repair:Repairing x.whl\n"
                "usage: __main__.py [-h] [-V] [-v] command ...\n"
                '__main__.py: error: cannot repair "x.whl" to "manylinux_2_17_x86_64" ABI '
                "because of the presence of too-recent versioned symbols.\n\n"))
        out_dir = Path(argv[argv.index("-w") + 1])
        source = Path(argv[-1])
        name = source.name.replace("linux_x86_64", self.behaviour)
        make_wheel(out_dir, name, members={"fastadd/__init__.py": b""})
        return subprocess.CompletedProcess(list(argv), 0, "", None)


def test_repair_linux_target_copies_unchanged(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, members={f"fastadd/{EXT}": FAKE_ELF})
    place = FakePlace("unused")
    out = rp.repair(place, wheel, parse_target("linux_x86_64"), tmp_path / "dest")
    assert out == tmp_path / "dest" / wheel.name
    assert out.read_bytes() == wheel.read_bytes()
    assert place.calls == []


def test_repair_runs_auditwheel_and_returns_the_new_wheel(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    make_wheel(dest, "older-0.1-cp312-cp312-manylinux_2_17_x86_64.whl")  # already there
    place = FakePlace("manylinux_2_17_x86_64.manylinux2014_x86_64")
    out = rp.repair(place, wheel, M2_17, dest)
    assert out.name == "fastadd-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert out.parent == dest and out.is_file()
    argv = place.calls[0]
    assert argv[:4] == ["auditwheel-here", "repair", "--plat", "manylinux_2_17_x86_64"]
    assert argv[-1] == str(wheel)
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [out.name, "older-0.1-cp312-cp312-manylinux_2_17_x86_64.whl"])


def test_repair_auto_passes_plat_auto(tmp_path: Path) -> None:
    place = FakePlace("manylinux_2_31_x86_64")
    out = rp.repair(place, make_wheel(tmp_path), parse_target("native"), tmp_path / "d")
    assert place.calls[0][2:4] == ["--plat", "auto"]
    assert out.name.endswith("manylinux_2_31_x86_64.whl")


def test_repair_auto_result_needs_a_manylinux_tag(tmp_path: Path) -> None:
    with pytest.raises(RepairError, match="without a manylinux tag"):
        rp.repair(FakePlace("linux_x86_64"), make_wheel(tmp_path),
                  parse_target("native"), tmp_path / "d")
    assert list((tmp_path / "d").iterdir()) == []


def test_repair_failure_names_auditwheels_reason(tmp_path: Path) -> None:
    with pytest.raises(RepairError) as info:
        rp.repair(FakePlace("fail"), make_wheel(tmp_path), M2_17, tmp_path / "d")
    assert str(info.value) == (
        "auditwheel repair of fastadd-1.0-cp312-cp312-linux_x86_64.whl failed: "
        'cannot repair "x.whl" to "manylinux_2_17_x86_64" ABI because of the presence of '
        "too-recent versioned symbols."
    )
    assert list((tmp_path / "d").iterdir()) == []


def test_repair_refuses_too_new_symbols_before_running_auditwheel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(wheelscan, "scan_wheel", lambda _w: [elf(versions=[POW])])
    place = FakePlace("manylinux_2_17_x86_64")
    with pytest.raises(PolicyError, match=r"pow@GLIBC_2\.29 \(libm\.so\.6\)"):
        rp.repair(place, make_wheel(tmp_path), M2_17, tmp_path / "d")
    assert place.calls == []


def test_repaired_wheel_failing_the_check_is_removed(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    # e.g. a vendored library that auditwheel judged more leniently than we do
    monkeypatch.setattr(wheelscan, "scan_wheel", lambda w: [elf(versions=[POW])]
                        if "manylinux" in w.name else [])
    dest = tmp_path / "d"
    with pytest.raises(PolicyError) as info:
        rp.repair(FakePlace("manylinux_2_17_x86_64"), make_wheel(tmp_path), M2_17, dest)
    assert str(info.value).startswith(
        "fastadd-1.0-cp312-cp312-manylinux_2_17_x86_64.whl does not satisfy "
        "manylinux_2_17_x86_64: exp@GLIBC_2.29")
    assert list(dest.iterdir()) == []


def test_last_meaningful_line() -> None:
    assert rp.last_meaningful_line(
        "Traceback (most recent call last):\n  File x\n"
        "ValueError: Cannot find required utility 'patchelf' in PATH\n"
    ) == "ValueError: Cannot find required utility 'patchelf' in PATH"
    assert rp.last_meaningful_line(
        "INFO:auditwheel.main_repair:This does not look like a platform wheel\n\n"
    ) == "This does not look like a platform wheel"
    assert rp.last_meaningful_line("") == "no output"
