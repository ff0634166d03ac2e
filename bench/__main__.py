"""`python -m bench [NAME...]`: run benchmarks, print them, rewrite BENCHMARKS.md."""

from __future__ import annotations

import json
import platform
import sys
import time

from . import build
from .common import ROOT

SUITES = {"overhead": build.overhead, "parallel": build.parallel, "zig": build.zig}


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SUITES)}")
        return 2
    results_path = ROOT / "bench" / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in names:
        print(f"== {name}", flush=True)
        started = time.strftime("%Y-%m-%d %H:%M")
        figures = SUITES[name]()
        results[name] = {"when": started, "figures": figures}
        print(json.dumps(figures, indent=2), flush=True)
    results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (ROOT / "BENCHMARKS.md").write_text(render(results))
    return 0


def _f(value: float) -> str:
    return f"{value:.2f}"


def render(results: dict[str, dict[str, object]]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`python -m bench [overhead|parallel|zig]`), which",
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
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
