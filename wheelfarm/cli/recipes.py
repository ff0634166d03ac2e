"""`wheelfarm add`, `init`, `outdated` and `bump`: writing recipes and the farm config."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from wheelfarm import api
from wheelfarm.cli.options import farm_option
from wheelfarm.cli.ui import err, out
from wheelfarm.errors import WheelfarmError


@click.command()
@click.argument("requirement", metavar="NAME==VERSION")
@click.option("--git", metavar="URL", help="Build from this git repository instead of the "
              "index's sdist (with --rev).")
@click.option("--rev", metavar="REV", help="The branch, tag or commit of --git; the recipe "
              "pins the full commit id it names.")
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False),
              default=Path("recipes"), show_default=True, help="Where the recipe goes.")
@click.option("--force", is_flag=True, help="Replace a recipe that is already there.")
@click.option("--no-lock", is_flag=True, help="Write the recipe only, not its lock.")
@farm_option()
def add(requirement: str, git: str | None, rev: str | None, directory: Path, force: bool,
        no_lock: bool, farm_dir: Path) -> None:
    """Write DIR/NAME.toml for NAME==VERSION, pinned by the farm's index, and its lock.

    The sdist's sha256 comes from the index of wheelfarm.toml (default: PyPI);
    with --git/--rev the recipe pins the commit instead. The lock is written as
    'wheelfarm lock' does. Exit 2 when the recipe exists (without --force) or
    the index has no such sdist, 1 when locking fails.
    """
    added = api.add_recipe(requirement, directory, git=git, rev=rev, force=force,
                           farm_dir=farm_dir)
    out.print(f"wrote {added.path} ({added.source})", markup=False)
    if not no_lock:
        _lock(added.path, farm_dir)


def _lock(path: Path, farm_dir: Path) -> None:
    try:
        written = api.lock_recipe(path, farm_dir=farm_dir)
    except WheelfarmError:
        err.print(f"lock {path}: see {farm_dir / '.wheelfarm' / 'logs'} "
                  f"(then: wheelfarm lock {path})", markup=False)
        raise
    if written is not None:
        counts = ", ".join(f"{t}: {len(e.packages)}" for t, e in sorted(written.pythons.items()))
        out.print(f"wrote {written.path} ({counts} packages)", markup=False)


@click.command()
@click.option("--force", is_flag=True, help="Replace a wheelfarm.toml that is already there.")
@farm_option("Farm directory to write wheelfarm.toml into.")
def init(force: bool, farm_dir: Path) -> None:
    """Write a commented wheelfarm.toml (the farm's configuration) here.

    Every setting is shown with its default or an example. Exit 2 when the
    file exists and --force is not given.
    """
    path = api.init_farm(farm_dir, force=force)
    out.print(f"wrote {path}", markup=False)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON list on standard output.")
@farm_option()
def outdated(paths: tuple[Path, ...], as_json: bool, farm_dir: Path) -> None:
    """List index recipes whose upstream has a newer release on the farm's index.

    A recipe's [package] track limits what is proposed ("minor": the same
    major version, "patch": the same major.minor, or a version specifier such
    as "<3"); pre-releases and yanked files never are. Recipes of path, url
    and git sources are not listed. Exit 0 whether or not anything is
    outdated (read --json to decide), 2 on bad input, 1 when the index cannot
    be read.
    """
    found = api.outdated(paths, farm_dir=farm_dir)
    if as_json:
        click.echo(json.dumps([{
            "recipe": str(o.path), "name": o.name, "version": o.current, "latest": o.latest,
            "newest": o.newest, "track": o.track} for o in found], indent=2))
        return
    behind = [o for o in found if o.latest is not None]
    for o in behind:
        out.print(f"{o.path}: {o.name} {o.current} -> {o.latest}"
                  + (f" (track {o.track!r})" if o.track else ""), markup=False)
    for o in found:
        if o.latest is None and o.newest is not None:
            out.print(f"{o.path}: {o.name} {o.current}: {o.newest} is outside track "
                      f"{o.track!r}", markup=False)
    err.print(f"{len(behind)} of {len(found)} index recipes have a newer release")


@click.command()
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--to", "version", metavar="VERSION",
              help="This release instead of the newest the recipe's track allows.")
@click.option("--no-lock", is_flag=True, help="Rewrite the recipe only, not its lock.")
@farm_option()
def bump(path: Path, version: str | None, no_lock: bool, farm_dir: Path) -> None:
    """Move a recipe to a newer release: its version and sha256, then its lock.

    Every other line of the recipe (comments, order, spacing) is kept. When
    locking fails the recipe is put back as it was (exit 1). Exit 0 with
    nothing changed when it is already at the newest release its track allows.
    """
    try:
        bumped = api.bump(path, to=version, lock=not no_lock, farm_dir=farm_dir)
    except WheelfarmError:
        err.print(f"bump {path}: the recipe is unchanged (a lock's log is in "
                  f"{farm_dir / '.wheelfarm' / 'logs'})", markup=False)
        raise
    if bumped.new is None:
        out.print(f"{path}: {bumped.old} is the newest release it follows", markup=False)
        return
    out.print(f"{path}: {bumped.old} -> {bumped.new}", markup=False)
    if bumped.lock is not None:
        out.print(f"wrote {bumped.lock.path}", markup=False)


COMMANDS: Sequence[click.Command] = [add, init, outdated, bump]
