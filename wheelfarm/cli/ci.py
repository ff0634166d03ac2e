"""`wheelfarm plan` and `wheelfarm merge`: CI engines as the worker pool."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import click

from wheelfarm import __version__, api
from wheelfarm.build.cache import ArtifactCache
from wheelfarm.cli.options import farm_option
from wheelfarm.cli.ui import err, out
from wheelfarm.plan import matrix
from wheelfarm.plan.jobjson import document, job_json


@click.command("plan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["json", "github", "gitlab"]),
              default="json", show_default=True)
@click.option("--shards", type=click.IntRange(min=1),
              help="Group the jobs into N shards per runner class.")
@click.option("--all", "include_all", is_flag=True, help="Include jobs that are cached.")
@click.option("--native-runners", is_flag=True,
              help="Put aarch64 jobs on ARM runners instead of cross-building on x86_64.")
@click.option("--target", "targets", multiple=True, metavar="TARGET")
@click.option("--python", "pythons", multiple=True, metavar="cpXY")
@click.option("--executor", help="Override the executor chosen per target.")
@click.option("--out", "out", default="dist", show_default=True,
              help="Output directory the generated GitLab jobs build into.")
@click.option("--publish-to", metavar="URL",
              help="gitlab: end the child pipeline with a merge and a publish to URL.")
@click.option("--image", metavar="IMAGE",
              help="gitlab: the image of the generated Linux jobs "
                   "[default: quay.io/pypa/manylinux_2_28 of the runner's architecture].")
@farm_option()
def plan_command(paths: tuple[Path, ...], fmt: str, shards: int | None, include_all: bool,
                 native_runners: bool, targets: tuple[str, ...], pythons: tuple[str, ...],
                 executor: str | None, out: str, publish_to: str | None, image: str | None,
                 farm_dir: Path) -> None:
    """Print the jobs still to build: JSON, a GitHub matrix, or a GitLab child pipeline.

    A job whose content key this farm already built is cached and left out
    (unless --all). With GITHUB_OUTPUT set, the github format also writes the
    `matrix` and `has-work` step outputs (GitHub rejects an empty matrix).
    """
    planned = api.plan(paths, targets=targets, pythons=pythons, executor=executor,
                       farm_dir=farm_dir)
    for note in planned.skipped:
        err.print(f"note: {note}", markup=False)
    config = planned.config
    local = ArtifactCache(config.state_dir)
    cached, problem = api.known(planned)
    if problem:
        err.print(f"warning: {problem}", markup=False)
    if fmt == "json":
        docs = []
        for job in planned.jobs:
            if job.key in cached and not include_all:
                continue
            hit = cached.get(job.key)
            if isinstance(hit, str):  # the farm's own record: its file names the wheel
                hit = local.record(job.key, hit)
            docs.append(job_json(job.key, job.recipe.name, job.target.name, job.python,
                                 "cached" if job.key in cached else "planned", (),
                                 (hit.filename, hit.sha256) if hit else None,
                                 owners=job.recipe.owners))
        _print(json.dumps(document(docs), indent=2))
        err.print(f"{len(planned.jobs) - len(cached)} of {len(planned.jobs)} jobs to build")
        return
    entries = [g for g in matrix.groups(planned.jobs, shards=shards, native=native_runners)
               if include_all or any(j.key not in cached for j in g.jobs)]
    if fmt == "github":
        text = json.dumps(matrix.github_matrix(entries))
        _print(text)
        output = os.environ.get("GITHUB_OUTPUT")
        if output:
            with open(output, "a", encoding="utf-8") as fh:
                fh.write(f"matrix={text}\nhas-work={'true' if entries else 'false'}\n")
    else:
        args = [str(p) for p in paths]
        args += [f"--target={t}" for t in targets] + [f"--python={p}" for p in pythons]
        # The toolchain cache's key: this wheelfarm and every planned job (recipes,
        # locks, targets, Pythons), so a change starts from a fresh cache.
        keys = hashlib.sha256(" ".join(sorted(j.key for j in planned.jobs)).encode())
        cache_key = f"wheelfarm-{__version__}-{keys.hexdigest()[:16]}"
        _print(matrix.gitlab_pipeline(entries, args, out, publish_to, image=image,
                                      cache_key=cache_key).rstrip("\n"))
    todo = sum(1 for j in planned.jobs if j.key not in cached)
    err.print(f"{todo} of {len(planned.jobs)} jobs to build in {len(entries)} matrix entries")


@click.command()
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Directory to merge into (wheels, provenance and a simple/ index).")
@farm_option("Farm whose artifact cache records the merged wheels.")
def merge(inputs: tuple[Path, ...], out_dir: Path, farm_dir: Path) -> None:
    """Combine the wheelhouses of several matrix jobs into one index.

    Two different files with the same name are refused (exit 1) before
    anything is copied; the same bytes twice are merged once. Each wheel with
    provenance is recorded in the farm's artifact cache under its job key, so
    a later plan in this farm finds it cached.
    """
    merged = api.merge(inputs, out_dir, farm_dir=farm_dir)
    for warning in merged.warnings:
        err.print(f"warning: {warning}", markup=False)
    out.print(f"merged {merged.wheels} wheels from {merged.inputs} directories into {out_dir} "
              f"({len(merged.projects)} projects)")


def _print(text: str) -> None:
    click.echo(text)


COMMANDS: Sequence[click.Command] = [plan_command, merge]
