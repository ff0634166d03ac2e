"""Parity benchmark (issue: release-quality wheels): the farm's wheels of the
three PyPI recipes against upstream's own wheels of the same version, in the
same run.

Each recipe is built for cp312 twice: manylinux2014 with the zig executor and
`native` with the host toolchain (`--no-cache`, so both really build). The
farm itself does the comparison (see wheelfarm.build.parity): it downloads
upstream's wheel from the index and times the recipe's `test.bench` with
both installed side by side, alternating, min of several rounds; this suite
reads the figures from `build --json` and adds each module's size after
`strip` (upstream's modules are mostly stripped already; the farm ships its
modules stripped, their debug info split off by build-id). A job that fails
on its ratio still reports it: the figures are wanted either way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from .common import ROOT, WHEELFARM, clean, scratch

RECIPES = ("markupsafe", "msgpack", "ujson")
BUILDS = (("zig", "manylinux2014_x86_64"), ("host", "native"))


def parity() -> dict[str, Any]:
    """Figures per "recipe executor"; see the module's docstring."""
    cache = Path(os.environ.get("WHEELFARM_CACHE_DIR", ROOT / ".wheelfarm" / "cache"))
    figures: dict[str, Any] = {}
    for executor, target in BUILDS:
        farm = scratch(f"parity-{executor}")
        try:
            report = farm / "report.json"
            subprocess.run(
                [*WHEELFARM, "build", *(str(ROOT / "recipes" / f"{n}.toml") for n in RECIPES),
                 "--target", target, "--executor", executor, "--python", "cp312",
                 "--no-cache", "--jobs", "2", "--out", str(farm / "out"), "--keep-work",
                 "--json", str(report)],
                cwd=farm, env={**os.environ, "WHEELFARM_CACHE_DIR": str(cache)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            for job in json.loads(report.read_text())["jobs"]:
                figures[f"{job['recipe']} {executor}"] = _figures(job, farm, cache)
        finally:
            clean(farm)
    return figures


def _figures(job: dict[str, Any], farm: Path, cache: Path) -> dict[str, Any]:
    p = job.get("parity") or {}
    bench = p.get("bench") or {}
    out: dict[str, Any] = {"state": job["state"], "upstream": p.get("upstream"),
                           "ratio": p.get("ratio"), "max_ratio": p.get("max_ratio"),
                           "farm_ms": bench.get("farm_s", 0) * 1e3 or None,
                           "upstream_ms": bench.get("upstream_s", 0) * 1e3 or None,
                           "farm_wheel_bytes": p.get("farm_wheel_bytes"),
                           "upstream_wheel_bytes": p.get("upstream_wheel_bytes"),
                           "missing": p.get("missing"), "clock": "cpu"}
    # A failed job delivers no wheel: --keep-work kept the one it judged.
    kept = sorted(farm.glob(f".wheelfarm/work/{job['recipe']}-{job['python']}-*/repaired/*.whl"))
    artifact = job.get("artifact") or {}
    farm_wheel = farm / "out" / artifact["filename"] if artifact else kept[0] if kept else None
    out["farm_module_bytes"] = sum(m["farm_bytes"] or 0 for m in p.get("modules", []))
    out["upstream_module_bytes"] = sum(m["upstream_bytes"] or 0 for m in p.get("modules", []))
    if farm_wheel is not None and farm_wheel.is_file():
        out["farm_module_stripped_bytes"] = _stripped(farm_wheel)
    if p.get("upstream_sha256"):
        up = cache / "upstream" / p["upstream_sha256"] / p["upstream"]
        if up.is_file():
            out["upstream_module_stripped_bytes"] = _stripped(up)
    return out


def _stripped(wheel: Path) -> int:
    """Total size of a wheel's extension modules after ``strip``."""
    from wheelfarm.build.parity import extension_modules

    names = extension_modules(wheel)
    total = 0
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            stem = member.rsplit("/", 1)[-1]
            dotted = ".".join([*member.split("/")[:-1], stem.split(".", 1)[0]])
            if dotted not in names or not stem.endswith(".so"):
                continue
            src, dst = Path(tmp) / "in.so", Path(tmp) / "out.so"
            src.write_bytes(zf.read(member))
            tool = shutil.which("eu-strip") or "strip"
            subprocess.run([tool, "-o", str(dst), str(src)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            total += dst.stat().st_size
    return total


def _n(value: Any, fmt: str = "{:,}") -> str:
    return "-" if value is None else fmt.format(value)


def render(results: dict[str, dict[str, object]]) -> list[str]:
    if "parity" not in results:
        return []
    r = results["parity"]
    figures = r["figures"]
    assert isinstance(figures, dict)
    # Figures from before the harness measured CPU time carry no "clock".
    clock = "CPU" if all(f.get("clock") == "cpu" for f in figures.values()) else "wall"
    lines = [
        f"## Parity with upstream wheels ({r['when']})",
        "",
        "`python -m bench parity`: markupsafe 3.0.3, msgpack 1.1.2 and ujson 5.11.0 built",
        "by the farm for cp312 (manylinux2014 with zig; `native` with the host gcc) vs",
        "the same versions' wheels on PyPI, in the same run: each recipe's `test.bench`",
        "timed by the farm's parity step (both wheels side by side in their own venvs,",
        f"alternating, min of 6 rounds, {clock} time), ratio farm / upstream; extension",
        "module bytes as shipped and after `strip`. Goals: every ratio ≤ 1.1; modules",
        "within 1.5x of upstream's stripped size.",
        "",
        "| recipe | executor | job | farm (ms) | upstream (ms) | ratio | "
        "farm modules (B) | stripped (B) | upstream modules (B) | stripped (B) | "
        "stripped farm / upstream |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, f in sorted(figures.items()):
        recipe, executor = key.split(" ")
        farm_s, up_s = f.get("farm_module_stripped_bytes"), f.get("upstream_module_stripped_bytes")
        size_ratio = farm_s / up_s if farm_s and up_s else None
        lines.append(
            f"| {recipe} | {executor} | {f['state']} | {_n(f['farm_ms'], '{:.4f}')} | "
            f"{_n(f['upstream_ms'], '{:.4f}')} | {_n(f['ratio'], '{:.2f}')} | "
            f"{_n(f['farm_module_bytes'])} | {_n(farm_s)} | {_n(f['upstream_module_bytes'])} | "
            f"{_n(up_s)} | {_n(size_ratio, '{:.2f}')} |")
    lines.append("")
    return lines
