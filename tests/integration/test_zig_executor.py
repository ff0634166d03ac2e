"""The zig executor for real: zig builds C, C++ and Rust extensions inside an
isolated ``python -m build``, and auditwheel calls the result manylinux.

zig compiles its libc, libc++ and libunwind on a target's first use (minutes
on a small machine), so one cache directory is shared by the whole module.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import zipfile
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from wheelfarm.build.executors import JobContext
from wheelfarm.build.executors.zig import ZigExecutor, find_zig
from wheelfarm.errors import CommandError, ConfigError
from wheelfarm.plan.targets import parse_target

from .helpers import python_for

pytestmark = pytest.mark.integration

PY = "cp312"
X86_217 = parse_target("manylinux_2_17_x86_64")
X86_228 = parse_target("manylinux_2_28_x86_64")
ARM_217 = parse_target("manylinux_2_17_aarch64")

_C_SOURCE = r"""
#define _GNU_SOURCE
#include <Python.h>
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>

/* clock_gettime is GLIBC_2.17 in libc; statx is GLIBC_2.28 and only exists
   when zig's headers describe a glibc that new. */
static PyObject *probe(PyObject *self, PyObject *args) {
    struct timespec ts;
    long mode = -1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
#if __GLIBC__ == 2 && __GLIBC_MINOR__ >= 28
    struct statx sx;
    if (statx(AT_FDCWD, ".", 0, STATX_MODE, &sx) == 0) mode = sx.stx_mode;
#endif
    return Py_BuildValue("(dl)", sqrt(16.0) + (ts.tv_sec >= 0), mode);
}
static PyMethodDef methods[] = {{"probe", probe, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "zprobe", NULL, -1, methods};
PyMODINIT_FUNC PyInit_zprobe(void) { return PyModule_Create(&mod); }
"""

_CXX_SOURCE = r"""
#include <Python.h>
#include <stdexcept>
#include <string>

static std::string twice(long n) {
    if (n < 0) throw std::invalid_argument("negative: " + std::to_string(n));
    return std::to_string(n) + std::to_string(n);
}
static PyObject *py_twice(PyObject *, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return nullptr;
    try {
        std::string s = twice(n);
        return PyUnicode_FromStringAndSize(s.data(), (Py_ssize_t)s.size());
    } catch (const std::exception &exc) {
        PyErr_SetString(PyExc_ValueError, exc.what());
        return nullptr;
    }
}
static PyMethodDef methods[] = {{"twice", py_twice, METH_O, ""}, {nullptr, nullptr, 0, nullptr}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "ztwice", nullptr, -1, methods};
PyMODINIT_FUNC PyInit_ztwice(void) { return PyModule_Create(&mod); }
"""

_RUST_SOURCE = r"""
use std::panic;

#[unsafe(no_mangle)]
pub extern "C" fn zr_add(a: i64, b: i64) -> i64 {
    let v: Vec<i64> = vec![a, b];
    v.iter().sum()
}

/// Unwinding must work: a caught panic needs zig's libunwind in place of libgcc_s.
#[unsafe(no_mangle)]
pub extern "C" fn zr_checked(x: i64) -> i64 {
    panic::set_hook(Box::new(|_| {}));
    panic::catch_unwind(|| if x < 0 { panic!("negative") } else { x * 2 }).unwrap_or(-1)
}
"""


def _project(root: Path, name: str, files: dict[str, str], requires: str) -> Path:
    src = root / name
    src.mkdir()
    (src / "pyproject.toml").write_text(
        f'[build-system]\nrequires = [{requires}]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "0.1"\n'
    )
    for rel, text in files.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return src


def _setup_py(name: str, source: str, **extra: object) -> str:
    options = "".join(f", {k}={v!r}" for k, v in extra.items())
    return (f"from setuptools import Extension, setup\n"
            f"setup(ext_modules=[Extension({name!r}, [{source!r}]{options})])\n")


@pytest.fixture(scope="module")
def executor() -> ZigExecutor:
    if find_zig() is None:
        pytest.skip("zig (the ziglang package) is not installed")
    return ZigExecutor()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh farm cache (wrappers, markers) whose zig runtime cache is the one
    the whole suite shares: zig compiles libc++ for a target once per machine,
    and the tests here still see every step of a first prepare()."""
    fresh = tmp_path_factory.mktemp("cache")
    shared = Path(os.environ["WHEELFARM_CACHE_DIR"]) / "zig" / "cache"
    shared.mkdir(parents=True, exist_ok=True)
    (fresh / "zig").mkdir()
    (fresh / "zig" / "cache").symlink_to(shared, target_is_directory=True)
    return fresh


@pytest.fixture(scope="module")
def frontend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cp312 venv with ``build``; its builds are isolated, as a user's are."""
    python = python_for(PY)
    venv = tmp_path_factory.mktemp("frontend") / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", venv], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python",
                    "install", "--quiet", "build"], check=True)
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def prepared(executor: ZigExecutor, cache: Path) -> dict[str, str]:
    """prepare() from three threads at once: exactly one of them does the work."""
    logs = [io.StringIO() for _ in range(3)]
    errors: list[BaseException] = []

    def work(log: io.StringIO) -> None:
        try:
            executor.prepare(X86_217, cache, log)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    texts = [log.getvalue() for log in logs]
    return {"warming": "".join(t for t in texts if "warming" in t),
            "count": str(sum("warming zig's cache" in t for t in texts))}


def build(executor: ZigExecutor, frontend: Path, cache: Path, target_name: str,
          src: Path, tmp_path: Path) -> tuple[Path, str]:
    target = parse_target(target_name)
    log = io.StringIO()
    out = tmp_path / "dist"
    ctx = JobContext(target=target, python=PY, work_dir=tmp_path, cache_dir=cache, log=log)
    with executor.open(ctx) as place:
        env = place.toolchain_env()
        try:
            place.run([str(frontend), "-m", "build", "--wheel", "--outdir", str(out), str(src)],
                      cwd=src, env=env, timeout=1800)
        except CommandError:
            pytest.fail(f"the build failed:\n{log.getvalue()}")
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, log.getvalue()
    return wheels[0], log.getvalue()


def elf_facts(wheel: Path, dest: Path) -> tuple[Path, str, list[str], list[str], set[str]]:
    """(path, machine, DT_NEEDED, DT_RUNPATH + DT_RPATH, GLIBC versions) of its one .so."""
    with zipfile.ZipFile(wheel) as zf:
        [member] = [n for n in zf.namelist() if n.endswith(".so")]
        path = Path(zf.extract(member, dest))
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        dynamic = next(s for s in elf.iter_sections() if isinstance(s, DynamicSection))
        needed = [t.needed for t in dynamic.iter_tags("DT_NEEDED")]
        paths = [t.runpath for t in dynamic.iter_tags("DT_RUNPATH")]
        paths += [t.rpath for t in dynamic.iter_tags("DT_RPATH")]
        versions: set[str] = set()
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for _verneed, auxes in section.iter_versions():
                    versions.update(aux.name for aux in auxes)
        return path, elf["e_machine"], needed, paths, versions


def glibc_max(versions: set[str]) -> tuple[int, ...]:
    found = [tuple(int(p) for p in v[6:].split(".")) for v in versions if v.startswith("GLIBC_2")]
    return max(found)


def auditwheel_show(wheel: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "auditwheel", "show", wheel],
                            capture_output=True, text=True, check=True)
    text = " ".join(result.stdout.split())
    m = re.search(r'consistent with the following platform tag: "([^"]+)"', text)
    assert m, result.stdout
    return m.group(1)


def run_python(code: str, path: Path) -> str:
    result = subprocess.run([python_for(PY), "-c", code], cwd=path, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(path)})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# -- the executor's contract ------------------------------------------------------------------

def test_check_refuses_targets_of_the_host_executor(executor: ZigExecutor) -> None:
    executor.check(X86_217)
    executor.check(ARM_217)
    for name in ("linux_x86_64", "native", "manylinux1_x86_64"):
        with pytest.raises(ConfigError, match="executor 'zig'"):
            executor.check(parse_target(name))


def test_toolchain_id_names_zig_and_the_target(executor: ZigExecutor) -> None:
    ident = executor.toolchain_id(X86_228)
    assert re.fullmatch(r"zig:\d+\.\d+\.\d+\S*:x86_64-linux-gnu\.2\.28:zigcc\d+", ident), ident
    assert executor.toolchain_id(X86_228) == ident


def test_prepare_runs_once_and_keeps_the_cache_in_the_cache_dir(
        executor: ZigExecutor, cache: Path, prepared: dict[str, str]) -> None:
    assert prepared["count"] == "1", prepared["warming"]
    assert "C++ runtime" in prepared["warming"]
    bin_dir = cache / "zig" / X86_217.name / "bin"
    assert {p.name for p in bin_dir.iterdir() if not p.name.startswith(".")} == {
        "cc", "c++", "rust-linker", "ar", "ranlib"}
    assert any((cache / "zig" / "cache").iterdir())
    log = io.StringIO()
    executor.prepare(X86_217, cache, log)
    assert "ready" in log.getvalue() and "warming" not in log.getvalue()


def test_toolchain_env(executor: ZigExecutor, cache: Path, prepared: dict[str, str],
                       tmp_path: Path) -> None:
    ctx = JobContext(target=X86_217, python=PY, work_dir=tmp_path, cache_dir=cache,
                     log=io.StringIO())
    with executor.open(ctx) as place:
        env = place.toolchain_env()
    bin_dir = cache / "zig" / X86_217.name / "bin"
    assert env["CC"] == str(bin_dir / "cc")
    assert env["LDSHARED"] == f"{bin_dir / 'cc'} -shared"
    assert env["LDCXXSHARED"] == f"{bin_dir / 'c++'} -shared"
    assert env["CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER"] == str(bin_dir / "rust-linker")
    assert env["ZIG_GLOBAL_CACHE_DIR"] == env["ZIG_LOCAL_CACHE_DIR"] == str(cache / "zig" / "cache")
    assert "_PYTHON_HOST_PLATFORM" not in env
    # The archiver works on its own too.
    version = subprocess.run([env["AR"], "--version"], capture_output=True, text=True)
    assert "LLVM" in version.stdout + version.stderr


# -- real builds ------------------------------------------------------------------------------

@pytest.mark.parametrize(("target", "newest"), [
    ("manylinux_2_17_x86_64", (2, 17)), ("manylinux_2_28_x86_64", (2, 28))])
def test_c_extension(executor: ZigExecutor, frontend: Path, cache: Path,
                     prepared: dict[str, str], tmp_path: Path,
                     target: str, newest: tuple[int, int]) -> None:
    src = _project(tmp_path, "zprobe", {
        "zprobe.c": _C_SOURCE, "setup.py": _setup_py("zprobe", "zprobe.c", libraries=["m"])},
        '"setuptools"')
    wheel, log = build(executor, frontend, cache, target, src, tmp_path)
    path, machine, _needed, rpaths, versions = elf_facts(wheel, tmp_path / "unpacked")
    assert machine == "EM_X86_64"
    assert glibc_max(versions) == newest, sorted(versions)
    assert rpaths == [], "a RUNPATH leaked from the host's Python"
    assert auditwheel_show(wheel) == target
    assert "/zig/" in log and " -shared " in log  # LDSHARED went through the wrapper
    value, mode = run_python("import zprobe; print(*zprobe.probe())", path.parent).split()
    assert value == "5.0"
    assert (mode == "-1") == (newest < (2, 28))


def test_cplusplus_extension_carries_its_own_libcxx(
        executor: ZigExecutor, frontend: Path, cache: Path, prepared: dict[str, str],
        tmp_path: Path) -> None:
    src = _project(tmp_path, "ztwice", {
        "ztwice.cpp": _CXX_SOURCE, "setup.py": _setup_py("ztwice", "ztwice.cpp")},
        '"setuptools"')
    wheel, _log = build(executor, frontend, cache, X86_217.name, src, tmp_path)
    path, _machine, needed, rpaths, versions = elf_facts(wheel, tmp_path / "unpacked")
    assert not [lib for lib in needed if "stdc++" in lib or "c++" in lib or "gcc_s" in lib], needed
    assert glibc_max(versions) <= (2, 17)
    assert rpaths == []
    assert auditwheel_show(wheel) == X86_217.name
    out = run_python(
        "import ztwice\nprint(ztwice.twice(21))\n"
        "try:\n    ztwice.twice(-1)\nexcept ValueError as e:\n    print(e)\n", path.parent)
    assert out.splitlines() == ["2121", "negative: -1"]


def test_rust_cdylib_links_with_zig(executor: ZigExecutor, frontend: Path, cache: Path,
                                    prepared: dict[str, str], tmp_path: Path) -> None:
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    src = _project(tmp_path, "zrust", {
        "Cargo.toml": """\
            [package]
            name = "zrust"
            version = "0.1.0"
            edition = "2024"
            [lib]
            crate-type = ["cdylib"]
            path = "lib.rs"
            """,
        "lib.rs": _RUST_SOURCE,
        "setup.py": """\
            from setuptools import setup
            from setuptools_rust import Binding, RustExtension
            setup(rust_extensions=[RustExtension("zrust_native", binding=Binding.NoBinding,
                                                 args=["--offline"])])
            """,
    }, '"setuptools", "setuptools-rust"')
    wheel, _log = build(executor, frontend, cache, X86_217.name, src, tmp_path)
    path, _machine, needed, rpaths, versions = elf_facts(wheel, tmp_path / "unpacked")
    assert "libgcc_s.so.1" not in needed, needed
    assert glibc_max(versions) <= (2, 17)
    assert rpaths == []
    assert auditwheel_show(wheel) == X86_217.name
    out = run_python(
        "import ctypes, sys\n"
        f"lib = ctypes.CDLL({str(path)!r})\n"
        "lib.zr_add.restype = lib.zr_checked.restype = ctypes.c_int64\n"
        "lib.zr_add.argtypes = [ctypes.c_int64] * 2\n"
        "lib.zr_checked.argtypes = [ctypes.c_int64]\n"
        "print(lib.zr_add(2, 40), lib.zr_checked(4), lib.zr_checked(-4))\n", tmp_path)
    assert out == "42 8 -1"


def test_c_extension_cross_built_for_aarch64(executor: ZigExecutor, frontend: Path,
                                             cache: Path, tmp_path: Path) -> None:
    src = _project(tmp_path, "zprobe", {
        "zprobe.c": _C_SOURCE, "setup.py": _setup_py("zprobe", "zprobe.c", libraries=["m"])},
        '"setuptools"')
    wheel, _log = build(executor, frontend, cache, ARM_217.name, src, tmp_path)
    assert wheel.name.endswith("-cp312-cp312-linux_aarch64.whl"), wheel.name
    path, machine, _needed, rpaths, versions = elf_facts(wheel, tmp_path / "unpacked")
    assert path.name == "zprobe.cpython-312-aarch64-linux-gnu.so"
    assert machine == "EM_AARCH64"
    assert glibc_max(versions) <= (2, 17)
    assert rpaths == []
    assert auditwheel_show(wheel) == ARM_217.name
