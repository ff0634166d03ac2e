"""Cross builds for aarch64 (issue: every platform from one Linux box).

1. cross: the C (fastadd) and C++ (cppvec) fixtures built into aarch64 wheels
   for cp39, the same command (`pip wheel --no-deps --no-build-isolation`)
   both ways, in the same run: by zig on this x86_64 machine (the farm's
   compiler wrappers, warm zig cache) and natively inside the emulated arm64
   bullseye rootfs with its own gcc (chroot + qemu-user through binfmt: what
   an emulated build farm does). Median of 3 each. Goal: zig >= 5x faster.
2. the emulated test step: one `wheelfarm build` job of fastadd for
   manylinux_2_17_aarch64 (cp39, run in the bullseye rootfs under qemu) with
   the recipe's tests and without them; the difference is the test step's
   cost. The same for the x86_64 job tested on the host, for comparison.

Needs root (chroot) and `make emulation`.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .common import PROJECTS, ROOT, WHEELFARM, clean, median, python_for, scratch, sh

FIXTURES = ("fastadd", "cppvec")
RUNS = int(os.environ.get("WHEELFARM_BENCH_RUNS", "3"))  # median of RUNS


def _rootfs() -> Path:
    from wheelfarm.build import testplaces

    root = testplaces.find_prepared("aarch64-bullseye")
    if root is None:
        raise SystemExit(f"bench cross needs aarch64-bullseye: {testplaces.PREPARE_HINT}")
    return root


def _zig_env(cache: Path) -> dict[str, str]:
    from wheelfarm.build.executors.zig import ZigExecutor, ZigLayout
    from wheelfarm.plan.targets import parse_target

    target = parse_target("manylinux_2_17_aarch64")
    executor = ZigExecutor()
    executor.prepare(target, cache, io.StringIO())
    return executor.toolchain_env(target, ZigLayout(cache, target), "cp39")


def _zig_builds(work: Path) -> dict[str, float]:
    venv = work / "hostenv"
    sh([python_for("cp39"), "-m", "venv", venv])
    sh([venv / "bin" / "python", "-m", "pip", "install", "-q", "setuptools", "wheel"])
    cache = Path(os.environ.get("WHEELFARM_CACHE_DIR", ROOT / ".wheelfarm" / "cache"))
    env = {**os.environ, **_zig_env(cache)}
    out: dict[str, float] = {}
    for name in FIXTURES:
        times = []
        for n in range(RUNS + 1):  # the first run warms the zig cache for this project
            src = work / f"zig-{name}-{n}"
            shutil.copytree(PROJECTS / name, src)
            dest = work / f"zig-out-{name}-{n}"
            took = sh([venv / "bin" / "python", "-m", "pip", "wheel", "-q", "--no-deps",
                       "--no-build-isolation", "-w", dest, src], env=env)
            # The setuptools a cp39 gets may predate [project] tables: the wheel is
            # then named UNKNOWN, its extension built all the same.
            wheel = next(dest.glob("*.whl"))
            assert "aarch64" in wheel.name, wheel.name
            if n:
                times.append(took)
        out[name] = median(times)
    return out


def _chroot(root: Path, script: str) -> float:
    chroot = shutil.which("chroot", path="/usr/sbin:/sbin:/usr/bin:/bin") or "chroot"
    return sh([chroot, root, "/bin/sh", "-c", script],
              env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"})


def _native_builds(root: Path) -> dict[str, float]:
    inside = Path("/tmp/wheelfarm-bench-cross")
    host_side = root / inside.relative_to("/")
    shutil.rmtree(host_side, ignore_errors=True)
    host_side.mkdir(parents=True)
    try:
        # The venv (pip and setuptools from Debian's bundled wheels) is made once;
        # `wheel` (for bdist_wheel) is fetched on the host: no index inside.
        sh([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--dest", host_side,
            "wheel<0.46"])
        _chroot(root, f"python3 -m venv {inside}/venv && {inside}/venv/bin/python -m pip "
                      f"install -q --no-index {inside}/wheel-*.whl")
        out: dict[str, float] = {}
        for name in FIXTURES:
            times = []
            for n in range(RUNS):
                shutil.copytree(PROJECTS / name, host_side / f"{name}-{n}")
                times.append(_chroot(root, (
                    f"cd {inside} && venv/bin/python -m pip wheel -q --no-deps --no-index "
                    f"--no-build-isolation -w out-{name}-{n} ./{name}-{n}")))
                wheel = next((host_side / f"out-{name}-{n}").glob("*.whl"))
                assert "aarch64" in wheel.name, wheel.name
            out[name] = median(times)
        return out
    finally:
        shutil.rmtree(host_side, ignore_errors=True)


def _recipe(work: Path, name: str, tests: bool) -> Path:
    import tomllib

    text = (ROOT / "recipes" / f"{name}.toml").read_text()
    data = tomllib.loads(text)
    path = work / f"{name}-{'tests' if tests else 'none'}.toml"
    source = (ROOT / "recipes" / data["source"]["path"]).resolve()
    text = text.replace(data["source"]["path"], str(source))
    if not tests:
        text = text[:text.index("[test]")]
    path.write_text(text)
    return path


def _job_seconds(work: Path, recipe: Path, target: str) -> float:
    farm = work / f"farm-{recipe.stem}-{target}"
    farm.mkdir()
    argv = [*WHEELFARM, "build", str(recipe), "--target", target, "--python", "cp39",
            "--jobs", "1", "--no-cache", "--out", str(farm / "out")]
    sh(argv, cwd=farm)  # warm: build environment and zig runtime
    return median([sh(argv, cwd=farm) for _ in range(RUNS)])


def cross() -> dict[str, Any]:
    if os.geteuid() != 0:
        raise SystemExit("bench cross needs root (chroot into the emulated rootfs)")
    root = _rootfs()
    work = scratch("cross")
    try:
        zig = _zig_builds(work)
        native = _native_builds(root)
        with_tests = _recipe(work, "fastadd", True)
        without = _recipe(work, "fastadd", False)
        jobs = {}
        for target in ("manylinux_2_17_aarch64", "manylinux_2_17_x86_64"):
            tested = _job_seconds(work, with_tests, target)
            untested = _job_seconds(work, without, target)
            jobs[target] = {"job_with_tests_s": round(tested, 2),
                            "job_without_tests_s": round(untested, 2),
                            "test_step_s": round(tested - untested, 2)}
        return {
            "builds": {name: {"zig_s": round(zig[name], 2), "emulated_native_s":
                              round(native[name], 2),
                              "speedup": round(native[name] / zig[name], 1)}
                       for name in FIXTURES},
            "test_step": jobs,
            "runs": RUNS,
            "python": sys.version.split()[0],
            "when_epoch": int(time.time()),
        }
    finally:
        clean(work)


def render(results: dict[str, dict[str, object]]) -> list[str]:
    if "cross" not in results:
        return []
    r = results["cross"]
    f = r["figures"]
    assert isinstance(f, dict)
    lines = [
        f"## aarch64: zig on x86_64 vs a native build under emulation ({r['when']})",
        "",
        "`python -m bench cross` (root, after `make emulation`). The C (`fastadd`) and",
        "C++ (`cppvec`) fixtures built into cp39 aarch64 wheels with `pip wheel --no-deps",
        f"--no-build-isolation`, median of {f.get('runs', 3)}, same run: by zig on this",
        "x86_64 machine (warm zig cache) and by gcc inside the emulated arm64 bullseye",
        "rootfs (chroot,",
        "qemu-user via binfmt; the venv's pip and setuptools are Debian's bundled ones,",
        "the host venv's are PyPI's). Load at the time: see the table at the end.",
        "Goal: zig ≥ 5x faster.",
        "",
        "| fixture | zig on x86_64 (s) | native under qemu (s) | zig is faster by |",
        "|---|---|---|---|",
    ]
    for name, b in f["builds"].items():
        lines.append(f"| {name} | {b['zig_s']:.2f} | {b['emulated_native_s']:.2f} | "
                     f"{b['speedup']:.1f}x |")
    lines += [
        "",
        "The test step's cost per job: one `wheelfarm build` job of `fastadd` (cp39,",
        f"`--no-cache`, median of {f.get('runs', 3)}) with the recipe's tests and without;",
        "aarch64 runs",
        "them in the bullseye rootfs under qemu, x86_64 on the host.",
        "",
        "| target | job with tests (s) | job without (s) | test step (s) |",
        "|---|---|---|---|",
    ]
    for target, j in f["test_step"].items():
        lines.append(f"| {target} | {j['job_with_tests_s']:.2f} | "
                     f"{j['job_without_tests_s']:.2f} | {j['test_step_s']:.2f} |")
    lines.append("")
    return lines
