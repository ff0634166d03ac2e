"""The Mach-O check on modules really built by zig for macOS (nothing here can run them).

One session-scoped set of modules: a good C module per macOS target, and the
ways a module can contradict its wheel's tag: another architecture, a minos
above the tag, a non-system library, a symbol no library provides.
zig's cache is the checkout's (the one ``make run`` fills), so its macOS libc
is compiled once per machine.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sysconfig
import zipfile
from pathlib import Path

import pytest

from wheelfarm.build import macho, macrepair
from wheelfarm.build.executors.zig import find_zig
from wheelfarm.errors import PolicyError
from wheelfarm.plan.targets import parse_target

pytestmark = pytest.mark.integration

MAC_ARM = parse_target("macosx_11_0_arm64")
MAC_X86 = parse_target("macosx_10_13_x86_64")

_MODULE = r"""
#include <Python.h>
#include <string.h>
#ifdef NEEDS_FOO
extern int foo_value(void);
#endif
#ifdef NEEDS_MISSING
extern int not_provided_by_anyone(void);
#endif
static PyObject *size(PyObject *self, PyObject *arg) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (!s) return NULL;
    long extra = 0;
#ifdef NEEDS_FOO
    extra += foo_value();
#endif
#ifdef NEEDS_MISSING
    extra += not_provided_by_anyone();
#endif
    return PyLong_FromLong((long)strlen(s) + extra);
}
static PyMethodDef methods[] = {{"size", size, METH_O, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "mprobe", NULL, -1, methods};
PyMODINIT_FUNC PyInit_mprobe(void) { return PyModule_Create(&mod); }
"""
_FOO = "int foo_value(void) { return 42; }\n"


def _zig_cache() -> Path:
    return Path(os.environ["WHEELFARM_CACHE_DIR"]) / "zig" / "cache"


def _zig_cc(zig: Path, target: str, args: list[str], cwd: Path) -> None:
    cache = str(_zig_cache())
    env = {**os.environ, "ZIG_GLOBAL_CACHE_DIR": cache, "ZIG_LOCAL_CACHE_DIR": cache}
    subprocess.run([str(zig), "cc", "-target", target, "-O2", *args], cwd=cwd, env=env,
                   check=True, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="session")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Mach-O modules built by zig, by name."""
    zig = find_zig()
    if zig is None:
        pytest.skip("zig (pip install ziglang) is needed to build Mach-O files")
    _zig_cache().mkdir(parents=True, exist_ok=True)
    work = tmp_path_factory.mktemp("macho")
    (work / "mprobe.c").write_text(_MODULE)
    (work / "foo.c").write_text(_FOO)
    include = sysconfig.get_paths()["include"]
    module = ["-shared", "-undefined", "dynamic_lookup", f"-I{include}", "mprobe.c"]
    builds = {
        "arm64": ("aarch64-macos.11.0", [*module, "-o", "arm64.so"]),
        "x86_64": ("x86_64-macos.10.13", [*module, "-o", "x86_64.so"]),
        "arm64-macos13": ("aarch64-macos.13.0", [*module, "-o", "arm64-macos13.so"]),
        "libfoo": ("aarch64-macos.11.0", ["-shared", "foo.c", "-o", "libfoo.dylib",
                                          "-Wl,-install_name,/opt/homebrew/lib/libfoo.dylib"]),
        "arm64-foo": ("aarch64-macos.11.0", [*module, "-DNEEDS_FOO", "-L.", "-lfoo",
                                             "-o", "arm64-foo.so"]),
        "arm64-missing": ("aarch64-macos.11.0", [*module, "-DNEEDS_MISSING",
                                                 "-o", "arm64-missing.so"]),
    }
    for target, args in builds.values():
        _zig_cc(zig, target, args, work)
    return {name: (work / args[args.index("-o") + 1]).read_bytes()
            for name, (_, args) in builds.items()}


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(dest: Path, tag: str, payload: dict[str, bytes]) -> Path:
    """A sound wheel of ``payload`` with platform tag ``tag``."""
    members = {**payload, "mprobe-1.0.dist-info/METADATA":
               b"Metadata-Version: 2.1\nName: mprobe\nVersion: 1.0\n",
               "mprobe-1.0.dist-info/WHEEL":
               f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp312-cp312-{tag}\n".encode()}
    record = "".join(f"{n},sha256={_digest(d)},{len(d)}\n" for n, d in members.items())
    path = dest / f"mprobe-1.0-cp312-cp312-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("mprobe-1.0.dist-info/RECORD", record + "mprobe-1.0.dist-info/RECORD,,\n")
    return path


SO = "mprobe.cpython-312-darwin.so"


def test_reads_what_zig_wrote(modules: dict[str, bytes]) -> None:
    (arm,) = macho.read_macho(modules["arm64"], SO)
    assert (arm.arch, arm.minos[:2] if arm.minos else None) == ("arm64", (11, 0))
    assert arm.libraries == ("/usr/lib/libSystem.B.dylib",)
    python_api = {s for s, lib in arm.imports if not lib}
    assert "_PyModule_Create2" in python_api and "_PyLong_FromLong" in python_api
    assert all(s.startswith("_Py") for s in python_api)
    (x86,) = macho.read_macho(modules["x86_64"], SO)
    # For 10.13 zig writes LC_VERSION_MIN_MACOSX, not LC_BUILD_VERSION: both are read.
    assert x86.arch == "x86_64" and x86.minos is not None and x86.minos[:2] == (10, 13)


@pytest.mark.parametrize(("module", "target"), [("arm64", MAC_ARM), ("x86_64", MAC_X86),
                                                ("arm64", parse_target("macosx_14_0_arm64"))])
def test_good_modules_pass(modules: dict[str, bytes], tmp_path: Path, module: str,
                           target: object) -> None:
    assert isinstance(target, type(MAC_ARM))
    wheel = make_wheel(tmp_path, target.name, {f"mprobe/{SO}": modules[module]})
    (image,) = macho.check_wheel(wheel, target)
    assert image.member == f"mprobe/{SO}"


@pytest.mark.parametrize(("module", "target", "reason"), [
    ("arm64", MAC_X86, "built for arm64, the tag says x86_64"),
    ("x86_64", MAC_ARM, "built for x86_64, the tag says arm64"),
    ("arm64-macos13", MAC_ARM, "needs macOS 13.0.0 (minos), the tag promises 11.0"),
    ("arm64-foo", MAC_ARM, "links /opt/homebrew/lib/libfoo.dylib, which is neither"),
    ("arm64-missing", MAC_ARM, "imports _not_provided_by_anyone from no library"),
])
def test_a_module_contradicting_its_tag_is_named(modules: dict[str, bytes], tmp_path: Path,
                                                 module: str, target: object,
                                                 reason: str) -> None:
    assert isinstance(target, type(MAC_ARM))
    wheel = make_wheel(tmp_path, target.name, {f"mprobe/{SO}": modules[module]})
    with pytest.raises(PolicyError) as caught:
        macho.check_wheel(wheel, target)
    assert f"does not satisfy {target.name}" in str(caught.value)
    assert reason in str(caught.value)
    assert any(reason in v and v.startswith(f"mprobe/{SO}: ") for v in caught.value.violations)


def test_a_vendored_library_with_a_relative_install_name_passes(modules: dict[str, bytes],
                                                               tmp_path: Path) -> None:
    # delocate's layout: the library in the wheel, loaded through @loader_path.
    image = macho.MachOInfo(f"mprobe/{SO}", "arm64", (11, 0, 0),
                            ("/usr/lib/libSystem.B.dylib", "@loader_path/.dylibs/libfoo.dylib"),
                            (("_foo_value", "@loader_path/.dylibs/libfoo.dylib"),))
    assert macho.violations([image], MAC_ARM, ["mprobe/.dylibs/libfoo.dylib"]) == []
    (v,) = macho.violations([image], MAC_ARM, [])
    assert v.kind == "library"


def test_an_elf_module_in_a_macos_wheel_fails(tmp_path: Path) -> None:
    import sys

    elf = Path(sys.executable).resolve().read_bytes()[:4096]
    wheel = make_wheel(tmp_path, "macosx_11_0_arm64", {"mprobe/mprobe.so": elf})
    with pytest.raises(PolicyError, match="is an ELF \\(Linux\\) binary, not Mach-O"):
        macho.check_wheel(wheel, MAC_ARM)


def test_repair_on_linux_retags_and_removes_a_contradicting_wheel(
        modules: dict[str, bytes], tmp_path: Path) -> None:
    # What a backend that asks the host's sysconfig names a cross-built wheel.
    built = make_wheel(tmp_path, "linux_x86_64", {f"mprobe/{SO}": modules["x86_64"]})
    log = io.StringIO()
    out = macrepair.repair_macos(_NoPlace(), built, MAC_X86, tmp_path / "ok", log)
    assert out.name == "mprobe-1.0-cp312-cp312-macosx_10_13_x86_64.whl"
    assert "not delocated" in log.getvalue() and "x86_64, minos 10.13" in log.getvalue()
    wrong = make_wheel(tmp_path, "linux_x86_64", {f"mprobe/{SO}": modules["arm64"]})
    with pytest.raises(PolicyError, match="built for arm64, the tag says x86_64"):
        macrepair.repair_macos(_NoPlace(), wrong, MAC_X86, tmp_path / "bad")
    assert list((tmp_path / "bad").glob("*.whl")) == []


class _NoPlace:
    """Off a Mac, repair runs no command: any call is a failure of the test."""

    network = False

    def run(self, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"repair ran a command off a Mac: {args}")
