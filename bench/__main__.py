"""`python -m bench [NAME...]`: run benchmarks, print them, rewrite BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import platform
import sys
import time

from . import build, container, cross, dispatch, farm, index, parity
from .common import ROOT

SUITES = {"overhead": build.overhead, "parallel": build.parallel, "zig": build.zig,
          "container": container.container, "normalize": farm.normalize, "plan": farm.plan,
          "dispatch": dispatch.dispatch, "index": index.index, "parity": parity.parity,
          "cross": cross.cross, "cache": build.cache}


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SUITES)}")
        return 2
    results_path = ROOT / "bench" / "results.json"
    for name in names:
        print(f"== {name}", flush=True)
        started = time.strftime("%Y-%m-%d %H:%M")
        load = os.getloadavg()[0]
        figures = SUITES[name]()
        print(json.dumps(figures, indent=2), flush=True)
        # Read just before writing: another suite may have finished meanwhile.
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        results[name] = {"when": started, "figures": figures,
                         "load": round(max(load, os.getloadavg()[0]), 2)}
        results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        (ROOT / "BENCHMARKS.md").write_text(render(results))
    return 0


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(results: dict[str, dict[str, object]]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `make bench` (`python -m bench [{'|'.join(SUITES)}]`), which",
        "rewrites this file from `bench/results.json`. Every figure is compared with a",
        "baseline measured in the same run; these machines are noisy, so read the ratios.",
        f"Machine: {platform.platform()}, {build.environment()}.",
        "",
    ]
    if "overhead" in results:
        r = results["overhead"]
        f = r["figures"]
        assert isinstance(f, dict)
        lines += [
            f"## `wheelfarm build` vs the bare steps by hand ({r['when']})",
            "",
            "C fixture (`fastadd`), cp312, host gcc, median of 3. By hand: `python -m build",
            "--wheel` + `auditwheel repair --plat auto` + `python -m venv` + `pip install` +",
            "an import. wheelfarm: the same job end to end (`--jobs 1`), test included.",
            "Goal: ratio ≤ 1.2.",
            "",
            "| by hand (s) | wheelfarm (s) | ratio |",
            "|---|---|---|",
            f"| {_f(f['by_hand_s'])} | {_f(f['wheelfarm_s'])} | {_f(f['ratio'])} |",
            "",
        ]
    if "cache" in results:
        r = results["cache"]
        f = r["figures"]
        assert isinstance(f, dict)
        lines += [
            f"## A second farm directory reuses the user's toolchain cache ({r['when']})",
            "",
            "`python -m bench cache`: the C++ fixture (`cppvec`), cp312, zig for",
            "manylinux2014, `--no-cache`, one user (`XDG_CACHE_HOME`) and the default",
            "per-user cache. Baseline: farm A's first build, with that cache empty (zig",
            "compiles its C and C++ runtimes). Farm B is a new directory whose first build",
            "finds them. Goal: farm B pays no warm-up (ratio well under 1).",
            "",
            "| farm A, empty cache (s) | farm B, new directory (s) | ratio |",
            "|---|---|---|",
            f"| {_f(f['first_farm_s'])} | {_f(f['second_farm_s'])} | {_f(f['ratio'])} |",
            "",
        ]
    if "parallel" in results:
        r = results["parallel"]
        f = r["figures"]
        assert isinstance(f, dict)
        lines += [
            f"## Parallel jobs ({r['when']})",
            "",
            "Four fixtures (C, C++, Rust, cffi) x cp39, cp311, cp312 = 12 jobs, host",
            "toolchain, warm pip cache. Goal: ≥ 1.8x on 2 cores.",
            "",
            "| --jobs 1 (s) | --jobs 2 (s) | speed-up |",
            "|---|---|---|",
            f"| {_f(f['jobs1_s'])} | {_f(f['jobs2_s'])} | {_f(f['speedup'])}x |",
            "",
        ]
    if "zig" in results:
        r = results["zig"]
        f = r["figures"]
        assert isinstance(f, dict)
        lines += [
            f"## zig vs host gcc ({r['when']})",
            "",
            "One job (cp312) per fixture through the whole pipeline, median of 2 warm runs:",
            "`manylinux_2_17_x86_64` with the zig executor vs `native` with the host",
            "executor. Goal: ratio ≤ 1.3. Cold: the first job in a farm with an empty zig",
            "cache, and how much longer it took than the warm one.",
            "",
            "| fixture | host (s) | zig warm (s) | ratio | zig cold (s) | cold extra (s) |",
            "|---|---|---|---|---|---|",
        ]
        for name, v in f.items():
            assert isinstance(v, dict)
            cold = _f(v["cold_s"]) if "cold_s" in v else "-"
            extra = _f(v["cold_extra_s"]) if "cold_extra_s" in v else "-"
            lines.append(f"| {name} | {_f(v['host_s'])} | {_f(v['zig_s'])} | "
                         f"{_f(v['ratio'])} | {cold} | {extra} |")
        lines.append("")
    lines += container.render(results)
    lines += cross.render(results)
    lines += _render_farm(results)
    lines += dispatch.render(results)
    lines += index.render(results)
    lines += parity.render(results)
    lines += [
        "## When each suite ran",
        "",
        "The machine's 1-minute load average (2 cores) when a suite started or ended,",
        "whichever was higher (recorded from 2026-11-26 06:20 on). Suites before that",
        "ran while other builds shared the machine (load 4-9): absolute times are",
        "inflated; the ratios against same-run baselines are what to read.",
        "",
        "| suite | when | load |",
        "|---|---|---|",
        *(f"| {n} | {r['when']} | {r.get('load', 'not recorded')} |"
          for n, r in sorted(results.items())),
        "",
    ]
    return "\n".join(lines)


def _render_farm(results: dict[str, dict[str, object]]) -> list[str]:
    lines: list[str] = []
    if "normalize" in results:
        r = results["normalize"]
        f = r["figures"]
        assert isinstance(f, dict)
        lines += [
            f"## Normalization and provenance ({r['when']})",
            "",
            "Four fixtures x cp39, cp312 (8 jobs, host toolchain, `--jobs 1 --no-cache`),",
            "median of 2 runs with and 2 without (`--no-normalize` skips the deterministic",
            "rewrite and the provenance statement); and the two steps timed directly on",
            "the same wheels. Goal: < 5% of the whole job.",
            "",
            "| with (s) | without (s) | fraction (runs) | steps timed directly (s) | fraction |",
            "|---|---|---|---|---|",
            f"| {_f(f['with_s'])} | {_f(f['without_s'])} | {100 * f['fraction']:.1f}% | "
            f"{f['direct_s']:.3f} | {100 * f['direct_fraction']:.2f}% |",
            "",
        ]
    if "plan" in results:
        r = results["plan"]
        f = r["figures"]
        assert isinstance(f, dict)
        lines += [
            f"## Planning a cached farm ({r['when']})",
            "",
            f"`wheelfarm plan` over 1,000 recipes x 5 pythons x 3 targets = {int(f['jobs'])} jobs,",
            "every one already built (artifact records in the farm), median of 3, whole",
            "command including interpreter start-up, recipe memo warm (parsed recipes kept",
            "in `.wheelfarm/recipes.memo`); *cold*: the memo deleted, every recipe read",
            "again. *S3* (a farm with an empty cache planning from an S3 store's records)",
            "is no longer measured: the store cache now counts only records a farm-signed",
            "generation lists, and this bench does not yet publish a signed generation of",
            "15,000 wheels (\"-\"). Baseline in the same run: the same",
            "plan with an empty cache (every job to build). Goals: < 1 s, < 2 s on S3.",
            "cibuildwheel has no cache, so its way of deciding there is nothing to do is",
            "a full rebuild of all 15,000 builds (see the per-job figures above).",
            "",
            "| cached plan, JSON (s) | GitHub (s) | cold memo (s) | S3 (s) | "
            "empty cache (s) | `import wheelfarm.cli` (s) |",
            "|---|---|---|---|---|---|",
            f"| {_f(f['cached_plan_s'])} | {_f(f['github_plan_s'])} | "
            # "-" for a result recorded before these two were measured.
            f"{_f(f.get('cold_plan_s'))} | {_f(f.get('s3_plan_s'))} | "
            f"{_f(f['uncached_plan_s'])} | {_f(f['import_s'])} |",
            "",
        ]
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
