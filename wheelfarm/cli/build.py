"""`wheelfarm build`: recipes -> repaired, tested wheels and an index."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from wheelfarm import api
from wheelfarm.build import executors, testplaces
from wheelfarm.build.parity import WARN_RATIO
from wheelfarm.build.pipeline import STEPS, JobResult
from wheelfarm.cli import ci_output
from wheelfarm.cli.options import farm_option
from wheelfarm.cli.ui import err, out, print_table
from wheelfarm.errors import Interrupted, JobsFailed
from wheelfarm.plan import jobs as plan
from wheelfarm.plan.profiles import PROFILES

if TYPE_CHECKING:
    from wheelfarm.farm.localrun import LocalRun


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("wheelhouse"),
              show_default=True, help="Output directory: wheels plus a simple/ index.")
@click.option("--target", "targets", multiple=True, metavar="TARGET",
              help="Build for this target instead of the recipes' (repeatable), e.g. native.")
@click.option("--python", "pythons", multiple=True, metavar="cpXY",
              help="Build for this Python instead of the recipes' (repeatable): cp312 or 3.12.")
@click.option("--executor", type=click.Choice(executors.names()),
              help="Override the executor chosen per target.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Parallel jobs [default: cores].")
@farm_option()
@click.option("--keep-work", is_flag=True,
              help="Keep the work directory of failed jobs and the run's queue database.")
@click.option("--locked", is_flag=True,
              help="Every build must install from a fresh lock (see 'wheelfarm lock').")
@click.option("--check-reproducible", is_flag=True,
              help="Build each job twice in different directories and compare the wheels.")
@click.option("--no-cache", is_flag=True,
              help="Build every job even when its content key is already built.")
@click.option("--job", "entry", metavar="ID",
              help="Build only the jobs of this matrix entry (see 'wheelfarm plan').")
@click.option("--shard", metavar="i/N", help="Build only shard i of N (by job key, 1-based).")
@click.option("--json", "json_report", metavar="PATH",
              help="Write a JSON report of every job to PATH ('-': standard output).")
@click.option("--profile", type=click.Choice(PROFILES), default=None,
              help="Build profile instead of the recipes' build.profile [default: release: "
                   "optimized, -DNDEBUG, no sanitizer; debug: unoptimized, for debugging].")
@click.option("--no-compare-upstream", is_flag=True,
              help="Do not compare with the upstream wheel on the index (modules, test.bench).")
@click.option("-v", "--verbose", is_flag=True,
              help="Also say when each job enters a step, and print every job's log path "
                   "(failures always show theirs).")
@click.option("-q", "--quiet", is_flag=True,
              help="Print only the results table and the failures.")
@click.option("--no-normalize", is_flag=True, hidden=True,
              help="Skip the deterministic rewrite and provenance (to measure their cost).")
def build(paths: tuple[Path, ...], out_dir: Path, targets: tuple[str, ...],
          pythons: tuple[str, ...], executor: str | None, jobs: int | None,
          farm_dir: Path, keep_work: bool, locked: bool, check_reproducible: bool,
          no_cache: bool, entry: str | None, shard: str | None, json_report: str | None,
          no_compare_upstream: bool, no_normalize: bool, profile: str | None,
          verbose: bool = False, quiet: bool = False) -> None:
    """Build, repair and test wheels for recipes or project directories.

    PATHS are recipe files (*.toml), directories of recipes, or project
    directories with a pyproject.toml (default: the current directory). Off a
    terminal a line is printed as each job ends (-v: as each step starts). Exit
    0 when every job succeeded, 1 when a job failed, 2 on bad input (a
    build.needs cycle included). The jobs run
    through a queue of the run's own, as a farm's do (see docs/controller.md):
    a job waits for the wheels its recipe needs, which are built in the same
    run (a needed job that --job or --shard left out is added). SIGTERM lets
    the running jobs end; Ctrl-C (or a second SIGTERM) stops them.
    """
    if verbose and quiet:
        raise click.UsageError("give -v/--verbose or -q/--quiet, not both")
    planned = api.plan_build(api.BuildRequest(
        paths or (Path("."),), out_dir=out_dir, farm_dir=farm_dir, targets=targets, pythons=pythons,
        executor=executor, jobs=jobs, keep_work=keep_work, locked=locked,
        check_reproducible=check_reproducible, use_cache=not no_cache, entry=entry,
        shard=shard, profile=profile, compare_upstream=not no_compare_upstream,
        normalize=not no_normalize))
    if not quiet:
        shown: set[str] = set()
        for job in planned.jobs:  # settings read but not used (cibuildwheel's), once per recipe
            for warning in job.recipe.warnings:
                if warning not in shown:
                    shown.add(warning)
                    err.print(f"warning: {job.recipe.path}: {warning}", markup=False)
        for note in planned.skipped:
            err.print(f"note: {note}", markup=False)
        for job in planned.added:
            err.print(f"building {job.id} too: build.needs joins it to the selected jobs",
                      markup=False)
        if planned.unlocked:
            err.print(f"warning: no lock file for {', '.join(planned.unlocked)}; build "
                      "requirements are resolved afresh (run 'wheelfarm lock' to pin them)")
    progress = _progress(planned.jobs, verbose=verbose, quiet=quiet)
    with progress:
        report = api.build(planned, on_step=progress.on_step, on_result=progress.on_result,
                           supervise=_signals)
    results = report.results
    if os.environ.get("GITHUB_ACTIONS") == "true":
        ci_output.github(results)
    _report(results, out_dir, err if json_report == "-" else out)
    if verbose:
        for r in results:
            err.print(f"{r.job.id}: {r.status}, log {r.log}", markup=False, soft_wrap=True)
    if json_report:
        ci_output.write_json(results, json_report)
    if report.database is not None:
        err.print(f"the run's queue: {report.database}", markup=False)
    if report.signal is not None:
        raise Interrupted(report.signal)
    if report.failed:
        raise JobsFailed()


@contextmanager
def _signals(run: LocalRun) -> Iterator[None]:
    """SIGTERM: claim no more jobs and let the running ones end; Ctrl-C, or
    SIGTERM again: stop the running ones too (they go back to the queue)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (a test's runner thread)
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT or run.stopping.is_set():
            if not run.handing_back.is_set():
                err.print(f"stopping {run.running()} running job(s)")
            run.hand_back(signum)
        else:
            err.print(f"no new jobs; waiting for {run.running()} running job(s) to end "
                      "(Ctrl-C to stop them now)")
            run.stop(signum)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _progress:
    """Live progress on a terminal, one line per finished job elsewhere (a CI log,
    a pipe); ``verbose``: a line for each step a job enters too; ``quiet``: nothing."""

    def __init__(self, jobs: Sequence[plan.Job], *, verbose: bool = False,
                 quiet: bool = False) -> None:
        self.jobs = jobs
        self.lock = threading.Lock()
        self.live = err.is_terminal and not quiet
        self.verbose = verbose
        self.quiet = quiet
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.fields[step]}"), TimeElapsedColumn(), console=err,
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}
        self.announced: set[tuple[str, str]] = set()

    def __enter__(self) -> _progress:
        if self.live:
            self.progress.start()
            for job in self.jobs:
                self.tasks[job.key] = self.progress.add_task(
                    job.id, total=len(STEPS), step="queued", start=False)
        return self

    def on_step(self, job: plan.Job, step: str) -> None:
        with self.lock:
            if self.verbose and step != "done":
                err.print(f"{job.id}: {step}", markup=False)
            if self.live:
                task = self.tasks[job.key]
                self.progress.start_task(task)
                self.progress.update(task, advance=1, step=step)
                return
            if self.quiet:
                return
            if step == "toolchain" and job.executor != "host":
                # The first use of a toolchain can take a minute (zig compiles
                # its libc for the target): say so rather than pause silently.
                pair = (job.executor, job.target.name)
                if pair not in self.announced:
                    self.announced.add(pair)
                    err.print(f"preparing the {job.executor} toolchain for {job.target}")

    def on_result(self, result: JobResult) -> None:
        """A job's attempt ended: its line, where no live display shows it."""
        if self.live or self.quiet:
            return
        status = f"failed ({result.step})" if result.status == "failed" else result.status
        with self.lock:
            err.print(f"{result.job.id}: {status} in {result.seconds:.1f}s", markup=False)

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()


def _report(results: Sequence[JobResult], out_dir: Path, console: Console) -> None:
    table = Table(title="wheelfarm build")
    for col in ("recipe", "python", "target", "toolchain", "result", "test", "seconds",
                "wheel"):
        table.add_column(col, justify="right" if col == "seconds" else "left",
                         overflow="fold")
    for r in results:
        mark = {"ok": "[green]ok[/]", "cached": "[cyan]cached[/]"}.get(
            r.status, f"[red]failed ({r.step})[/]")
        test = r.test_status
        if test == testplaces.NOT_RUN:
            test = f"[yellow]{test}[/]"  # never "tested": nothing here runs it
        table.add_row(r.job.recipe.name, r.job.python, r.job.target.name, r.toolchain, mark,
                      test, f"{r.seconds:.1f}",
                      r.wheel.name if r.wheel else "")
    print_table(console, table)
    for r in results:
        ratio = r.parity.ratio if r.parity else None
        if r.status != "failed" and ratio is not None and ratio > WARN_RATIO:
            err.print(f"warning: {r.job.id}: {ratio:.2f}x slower than upstream's "
                      f"{r.parity.upstream if r.parity else ''} (test.bench)", markup=False)
        if r.status == "failed" and r.step != "interrupted":
            _failure(r)
    for r in results:  # why a wheel was not run, and how to run it
        if r.status != "failed" and r.test_status == testplaces.NOT_RUN:
            err.print(f"{r.job.id}: {r.test_note}", markup=False)
    ok = sum(r.status != "failed" for r in results)
    cached = sum(r.status == "cached" for r in results)
    console.print(f"{ok} of {len(results)} jobs succeeded ({cached} from the cache); "
              f"index: {out_dir / 'simple'}")


def _failure(r: JobResult) -> None:
    """Why a job failed: the step and reason, the first compiler and linker errors
    (the cause, often far above the end of the log), the log's end, the log."""
    err.print(f"[red]{escape(r.job.id)}[/]: {r.step}: {escape(r.message)}")
    errors = [e for e in r.errors if e != r.message]
    if errors:
        err.print("  first errors:\n" + "\n".join(f"    {e}" for e in r.errors),
                  markup=False)
    tail = [line for line in r.tail.splitlines()[-12:] if line != f"! {r.message}"]
    if any(line.strip() for line in tail):
        err.print("  " + "\n  ".join(tail), markup=False)
    err.print(f"  log: {r.log}", markup=False)


COMMANDS = [build]
