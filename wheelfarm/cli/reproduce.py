"""`wheelfarm lock` and `wheelfarm rebuild`: pinned inputs and repeatable builds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from wheelfarm import api
from wheelfarm.cli.options import farm_option
from wheelfarm.cli.ui import err, out
from wheelfarm.errors import JobsFailed, WheelfarmError


@click.command("lock")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--python", "pythons", multiple=True, metavar="cpXY",
              help="Lock for this Python (repeatable) instead of the recipe's pythons.")
@farm_option()
def lock_command(paths: tuple[Path, ...], pythons: tuple[str, ...], farm_dir: Path) -> None:
    """Pin each recipe's build requirements, per Python, in <recipe>.lock.

    Resolves the source's build-system.requires, the recipe's build.requires
    and the backend's dynamic requirements with the farm's index (no pip
    configuration of this machine), and records exact versions and sha256
    hashes. Exit 1 if resolving fails, 2 on bad input.
    """
    for job in api.lock_jobs(paths, pythons=pythons, farm_dir=farm_dir):
        try:
            result = api.lock(job)
        except WheelfarmError:
            err.print(f"lock {job.recipe.name}: see {job.log}")
            raise
        counts = ", ".join(f"{t}: {len(e.packages)}" for t, e in sorted(result.pythons.items()))
        out.print(f"wrote {result.path} ({counts} packages)")


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--recipe", "recipe_path", type=click.Path(path_type=Path),
              help="The recipe to use instead of the path recorded in the provenance.")
@farm_option()
def rebuild(artifact: Path, recipe_path: Path | None, farm_dir: Path) -> None:
    """Re-run an artifact's build from its provenance and compare the bytes.

    ARTIFACT is a wheel with its .intoto.json beside it, or the .intoto.json
    itself. Exit 0 when the rebuild is identical, 1 when it differs or fails.
    """
    rebuilt = api.rebuild(artifact, recipe_path=recipe_path, farm_dir=farm_dir)
    result, comparison = rebuilt.result, rebuilt.comparison
    if comparison is None:
        err.print(f"rebuild failed at {result.step}: {result.message}\n  log: {result.log}")
        raise JobsFailed()
    if comparison.identical:
        out.print(f"{comparison.wheel}: rebuilt bit for bit (sha256 {comparison.digest})")
        return
    err.print(f"{comparison.wheel}: the rebuild differs (sha256 {comparison.digest}, "
              f"recorded {comparison.recorded})")
    if comparison.members is not None:
        err.print("  differing members: " + ", ".join(comparison.members))
    raise JobsFailed()


COMMANDS: Sequence[click.Command] = [lock_command, rebuild]
