"""Timing a recipe's ``test.bench`` with the farm's wheel and upstream's, side by side.

Each wheel goes into a venv of its own. The number of iterations is chosen
once (on upstream's wheel, like ``timeit``'s autorange) so a measurement
lasts at least :data:`MIN_SECONDS`; then the two venvs run in alternating
rounds (farm first, then upstream first, ...), each run reporting the best
of a few repeats, and the minimum over all rounds is kept per side. The
minimum, not the mean: on a busy machine noise only ever adds time. And CPU
time, not wall time (of the harness process for a snippet, of its children
for a command): on a two-core machine shared with other builds a process
spends much of the wall clock waiting for a core, which says nothing of the
wheel.

``test.bench`` is Python, executed once before the clock starts (imports,
data); if it defines a function ``bench``, an iteration is a call of it,
otherwise an iteration executes the whole snippet again (in the same
namespace). ``test.bench-command`` is a shell command, timed as a whole
process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wheelfarm.errors import CommandError

if TYPE_CHECKING:
    from wheelfarm.build.executors import Place
    from wheelfarm.plan.recipe import TestSpec

ROUNDS = 6
REPEAT = 3
MIN_SECONDS = 0.05
_MARK = "WHEELFARM-BENCH:"

# Run by each venv's interpreter: argv = mode, file holding the snippet or command,
# iterations (0: find them). Prints the best time of one iteration, or the count.
_HARNESS = '''\
import resource, subprocess, sys, time
mode, path, number = sys.argv[1], sys.argv[2], int(sys.argv[3])
clock = time.process_time
text = open(path, encoding="utf-8").read()
if mode == "python":
    code = compile(text, "<test.bench>", "exec")
    ns = {"__name__": "__bench__"}
    exec(code, ns)  # imports, data and first-call costs, outside the clock
    once = ns["bench"] if callable(ns.get("bench")) else lambda: exec(code, ns)
else:
    def once():
        subprocess.run(["sh", "-c", text], check=True, stdout=subprocess.DEVNULL)
    def clock():
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        return used.ru_utime + used.ru_stime
    once()
def timed(n):
    start = clock()
    for _ in range(n):
        once()
    return clock() - start
if number == 0:
    number = 1
    while timed(number) < float(sys.argv[4]) and number < 1 << 24:
        number *= 2
    print("%s%d" % (sys.argv[5], number))
else:
    print("%s%r" % (sys.argv[4], min(timed(number) for _ in range(int(sys.argv[5]))) / number))
'''


@dataclass(frozen=True)
class BenchTiming:
    farm_s: float  # seconds per iteration, best of every round
    upstream_s: float
    number: int  # iterations per measurement
    rounds: int

    @property
    def ratio(self) -> float:
        return self.farm_s / self.upstream_s if self.upstream_s > 0 else float("inf")


def time_bench(place: Place, python: str, farm_wheel: Path, upstream_wheel: Path,
               spec: TestSpec, where: Path) -> tuple[BenchTiming | None, str]:
    """Time ``spec``'s bench with each wheel; (None, why) when it cannot run here."""
    mode, text = ("python", spec.bench) if spec.bench else ("command", spec.bench_command)
    assert text is not None
    where.mkdir(parents=True, exist_ok=True)
    harness, payload = where / "harness.py", where / "bench.txt"
    harness.write_text(_HARNESS, encoding="utf-8")
    payload.write_text(text, encoding="utf-8")
    scratch = where / "cwd"
    scratch.mkdir(exist_ok=True)
    venvs = {}
    for side, wheel in (("farm", farm_wheel), ("upstream", upstream_wheel)):
        venv = where / f"venv-{side}"
        try:
            place.run([place.python(python), "-m", "venv", "--without-pip", str(venv)],
                      cwd=where)
            place.install(venv, [str(wheel)], where)
        except CommandError as exc:
            return None, f"installing {wheel.name} failed here: {exc}"
        venvs[side] = venv

    def run(side: str, *args: str) -> str:
        venv = venvs[side]
        env = {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               "VIRTUAL_ENV": str(venv)}
        out = place.run([str(venv / "bin" / "python"), str(harness), mode, str(payload),
                         *args], cwd=scratch, env=env).stdout
        marked = [line for line in out.splitlines() if line.startswith(_MARK)]
        if not marked:
            raise CommandError(["test.bench"], 1, "the bench harness reported nothing")
        return marked[-1][len(_MARK):]

    try:
        number = int(run("upstream", "0", str(MIN_SECONDS), _MARK))
        best = {"farm": float("inf"), "upstream": float("inf")}
        for i in range(ROUNDS):
            for side in ("farm", "upstream") if i % 2 == 0 else ("upstream", "farm"):
                best[side] = min(best[side], float(run(side, str(number), _MARK,
                                                       str(REPEAT))))
    except CommandError as exc:
        return None, f"test.bench failed: {exc}"
    return BenchTiming(best["farm"], best["upstream"], number, ROUNDS), ""
