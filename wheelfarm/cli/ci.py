"""`wheelfarm plan` and `wheelfarm merge`: CI engines as the worker pool."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import click

from wheelfarm.build import planning
from wheelfarm.build.archive import sha256_file
from wheelfarm.build.cache import ArtifactCache, Record, store_cache
from wheelfarm.cli.ui import err, out
from wheelfarm.errors import WheelfarmError
from wheelfarm.plan import config as farm_config
from wheelfarm.plan import jobs as plan
from wheelfarm.plan import matrix, recipe
from wheelfarm.plan.jobjson import document, job_json
from wheelfarm.plan.recipememo import RecipeMemo


class MergeConflict(WheelfarmError):
    """Two inputs hold different files under one name."""


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
@click.option("--farm", "farm_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("."), help="Farm directory (wheelfarm.toml, .wheelfarm/).")
def plan_command(paths: tuple[Path, ...], fmt: str, shards: int | None, include_all: bool,
                 native_runners: bool, targets: tuple[str, ...], pythons: tuple[str, ...],
                 executor: str | None,
                 out: str, publish_to: str | None, farm_dir: Path) -> None:
    """Print the jobs still to build: JSON, a GitHub matrix, or a GitLab child pipeline.

    A job whose content key this farm already built is cached and left out
    (unless --all). With GITHUB_OUTPUT set, the github format also writes the
    `matrix` and `has-work` step outputs (GitHub rejects an empty matrix).
    """
    config = farm_config.load(farm_dir.resolve())
    memo = RecipeMemo(config.state_dir / "recipes.memo")
    recipes = recipe.discover(list(paths), load_file=memo.load)
    memo.save()
    selection = plan.Selection.parse(targets, pythons, executor)
    planned = planning.plan_recipes(recipes, config, selection)
    local = ArtifactCache(config.state_dir)
    cached = _cached(config, local, [j.key for j in planned.jobs])
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
                                 (hit.filename, hit.sha256) if hit else None))
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
        _print(matrix.gitlab_pipeline(entries, args, out, publish_to).rstrip("\n"))
    todo = sum(1 for j in planned.jobs if j.key not in cached)
    err.print(f"{todo} of {len(planned.jobs)} jobs to build in {len(entries)} matrix entries")


def _cached(config: farm_config.FarmConfig, local: ArtifactCache,
            keys: list[str]) -> dict[str, str | Record]:
    """Keys already built: key -> sha256 (the farm's cache) or the store's record.

    The store is asked only about keys the farm has not built itself. A store
    that cannot be read is a warning: its jobs are planned, never wrongly skipped.
    """
    found: dict[str, str | Record] = dict(local.known(keys))
    missing = [k for k in keys if k not in found]
    if not missing:
        return found
    try:
        remote = store_cache(config)
        if remote is not None:
            found.update(remote.known(missing))
    except WheelfarmError as exc:
        err.print(f"warning: the store is not used as a cache: {exc}", markup=False)
    return found


@click.command()
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Directory to merge into (wheels, provenance and a simple/ index).")
@click.option("--farm", "farm_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("."), help="Farm whose artifact cache records the merged wheels.")
def merge(inputs: tuple[Path, ...], out_dir: Path, farm_dir: Path) -> None:
    """Combine the wheelhouses of several matrix jobs into one index.

    Two different files with the same name are refused (exit 1) before
    anything is copied; the same bytes twice are merged once. Each wheel with
    provenance is recorded in the farm's artifact cache under its job key, so
    a later plan in this farm finds it cached.
    """
    chosen: dict[str, Path] = {}
    debug: dict[str, Path] = {}  # debug/<build-id>.debug and debug/<wheel>.json, same rules
    for directory in inputs:
        for path in sorted(directory.iterdir()):
            if not path.is_file() or not path.name.endswith((".whl", ".intoto.json")):
                continue
            merge_candidate(chosen, path, out_dir)
        folder = directory / "debug"
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            if path.is_file() and path.name.endswith((".debug", ".whl.json")):
                merge_candidate(debug, path, out_dir / "debug")
    out_dir.mkdir(parents=True, exist_ok=True)
    if debug:
        (out_dir / "debug").mkdir(exist_ok=True)
    # Debug files first: a wheel in the output always finds its debug files there.
    for name, path in [*sorted((f"debug/{n}", p) for n, p in debug.items()),
                       *sorted(chosen.items())]:
        if path.resolve() != (out_dir / name).resolve():
            tmp = out_dir / f".incoming-{name.replace('/', '-')}"
            shutil.copyfile(path, tmp)
            tmp.replace(out_dir / name)
    from wheelfarm.publish import index  # only merge writes an index; plan need not import it

    projects = index.write_simple_index(out_dir)
    cache = ArtifactCache(farm_config.load(farm_dir.resolve()).state_dir)
    for name in chosen:
        if name.endswith(".whl"):
            _record(cache, out_dir / name)
    wheels = sum(1 for n in chosen if n.endswith(".whl"))
    out.print(f"merged {wheels} wheels from {len(inputs)} directories into {out_dir} "
              f"({len(projects)} projects)")


def merge_candidate(chosen: dict[str, Path], path: Path, out_dir: Path) -> None:
    existing = chosen.get(path.name)
    if existing is None:
        target = out_dir / path.name
        if target.exists() and sha256_file(target) != sha256_file(path):
            raise MergeConflict(f"{path.name}: {path} differs from the one already in {out_dir}")
        chosen[path.name] = path
        return
    if sha256_file(existing) != sha256_file(path):
        raise MergeConflict(f"{path.name}: {existing} and {path} differ; "
                            "a rebuild needs a new build number ([build] number)")


def _record(cache: ArtifactCache, wheel: Path) -> None:
    from wheelfarm.build import debuginfo, provenance  # merge only; plan stays quick to start

    statement = provenance.path_for(wheel)
    if not statement.exists():
        return
    named = provenance.job_key(statement.read_bytes())
    if named is None:
        err.print(f"warning: {statement.name} is not a wheelfarm provenance statement")
        return
    key, recorded = named
    if recorded != sha256_file(wheel):
        raise MergeConflict(f"{wheel.name}: its provenance names other bytes "
                            f"(sha256 {recorded})")
    cache.store(str(key), wheel, statement, debuginfo.read_listing(wheel))


def _print(text: str) -> None:
    click.echo(text)


COMMANDS: Sequence[click.Command] = [plan_command, merge]
