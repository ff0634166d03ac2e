"""`wheelfarm build`: recipes -> repaired, tested wheels and an index."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import config as farm_config
from .. import executors, plan, recipe
from ..errors import ConfigError
from ..pipeline import STEPS, JobResult, Pipeline
from ..pythons import parse_tag
from ..targets import parse_target
from .ui import err, out


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("wheelhouse"),
              show_default=True, help="Output directory: wheels plus a simple/ index.")
@click.option("--target", "targets", multiple=True, metavar="TARGET",
              help="Build for this target instead of the recipes' (repeatable), e.g. native.")
@click.option("--python", "pythons", multiple=True, metavar="cpXY",
              help="Build for this Python instead of the recipes' (repeatable), e.g. cp312.")
@click.option("--executor", type=click.Choice(executors.names()),
              help="Override the executor chosen per target.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Parallel jobs [default: cores].")
@click.option("--farm", "farm_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("."), help="Farm directory (wheelfarm.toml, .wheelfarm/).")
@click.option("--keep-work", is_flag=True, help="Keep the work directory of failed jobs.")
def build(paths: tuple[Path, ...], out_dir: Path, targets: tuple[str, ...],
          pythons: tuple[str, ...], executor: str | None, jobs: int | None,
          farm_dir: Path, keep_work: bool) -> None:
    """Build, repair and test wheels for recipes or project directories.

    PATHS are recipe files (*.toml), directories of recipes, or project
    directories with a pyproject.toml. Exit 0 when every job succeeded, 1 when
    a job failed, 2 on bad input.
    """
    config = farm_config.load(farm_dir.resolve())
    for tag in pythons:
        _option("--python", parse_tag, tag)
    selection = plan.Selection(
        targets=tuple(_option("--target", parse_target, t) for t in targets),
        pythons=pythons,
        executor=executor,
    )
    recipes = recipe.discover(list(paths))
    paths_config = dict(config.python_paths)
    instances = {
        name: executors.get(name, pythons_config=paths_config)
        for name in sorted(plan.executor_names(recipes, config, selection))
    }
    available = sorted({p for e in instances.values() for p in e.available_pythons()},
                       key=parse_tag)
    job_list = plan.make_plan(recipes, config, selection, instances, available)
    if not job_list:
        raise ConfigError("nothing to build")
    parallel = jobs or config.jobs
    with _progress(job_list) as on_step:
        pipeline = Pipeline(config, instances, out_dir.resolve(), on_step=on_step,
                            keep_work=keep_work)
        results = pipeline.run(job_list, parallel)
    _report(results, out_dir)
    if any(r.status != "ok" for r in results):
        raise SystemExit(1)


def _option(flag: str, parse, value: str):  # type: ignore[no-untyped-def]
    try:
        return parse(value)
    except ConfigError as exc:
        raise ConfigError(f"{flag} {value}: {exc}") from None


class _progress:
    """Live progress on a terminal, one line per finished job elsewhere."""

    def __init__(self, jobs: Sequence[plan.Job]) -> None:
        self.jobs = jobs
        self.lock = threading.Lock()
        self.live = err.is_terminal
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.fields[step]}"), TimeElapsedColumn(), console=err,
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}
        self.announced: set[tuple[str, str]] = set()

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.live:
            self.progress.start()
            for job in self.jobs:
                self.tasks[job.key] = self.progress.add_task(
                    job.id, total=len(STEPS), step="queued", start=False)
        return self.on_step

    def on_step(self, job: plan.Job, step: str) -> None:
        with self.lock:
            if self.live:
                task = self.tasks[job.key]
                self.progress.start_task(task)
                self.progress.update(task, advance=1, step=step)
                return
            if step == "toolchain" and job.executor != "host":
                # The first use of a toolchain can take a minute (zig compiles
                # its libc for the target): say so rather than pause silently.
                pair = (job.executor, job.target.name)
                if pair not in self.announced:
                    self.announced.add(pair)
                    err.print(f"preparing the {job.executor} toolchain for {job.target}")

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()


def _report(results: Sequence[JobResult], out_dir: Path) -> None:
    table = Table(title="wheelfarm build")
    for col in ("recipe", "python", "target", "result", "seconds", "wheel"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for r in results:
        mark = "[green]ok[/]" if r.status == "ok" else f"[red]failed ({r.step})[/]"
        table.add_row(r.job.recipe.name, r.job.python, r.job.target.name, mark,
                      f"{r.seconds:.1f}", r.wheel.name if r.wheel else "")
    out.print(table)
    for r in results:
        if r.status != "ok":
            err.print(f"[red]{r.job.id}[/]: {r.step}: {r.message}", markup=True)
            err.print(f"  log: {r.log}")
            err.print("  " + "\n  ".join(r.tail.splitlines()[-12:]), markup=False)
    ok = sum(r.status == "ok" for r in results)
    out.print(f"{ok} of {len(results)} jobs succeeded; index: {out_dir / 'simple'}")



COMMANDS = [build]
