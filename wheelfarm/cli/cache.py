"""`wheelfarm cache info|clean`: the cache shared by a user's farms."""

from __future__ import annotations

from pathlib import Path

import click

from wheelfarm import api
from wheelfarm.build.usercache import Part
from wheelfarm.cli.options import farm_option
from wheelfarm.cli.ui import out


@click.group("cache")
def cache_group() -> None:
    """The shared cache: downloads and zig's compiled runtimes, one per user.

    $XDG_CACHE_HOME/wheelfarm (else ~/.cache/wheelfarm); the farm's
    wheelfarm.toml `cache-dir`, or WHEELFARM_CACHE_DIR, choose another.
    """


@cache_group.command("info")
@farm_option()
def info_command(farm_dir: Path) -> None:
    """Where the cache is, and the size and entries of each part."""
    found = api.cache_info(farm_dir)
    out.print(f"cache: {found.path}", markup=False)
    for part in found.parts:
        where = ", ".join(part.dirs) or "empty"
        out.print(f"  {part.name:<11} {_size(part.size):>9}  {part.entries:>6} entries  ({where})",
                  markup=False)
    out.print(f"  {'total':<11} {_size(found.size):>9}", markup=False)


@cache_group.command("clean")
@click.option("--downloads", "parts", flag_value="downloads", multiple=True,
              help="Sources, git mirrors and upstream wheels.")
@click.option("--toolchains", "parts", flag_value="toolchains", multiple=True,
              help="zig's compiled runtimes and the build environments.")
@click.option("--all", "everything", is_flag=True, help="The whole cache (the default).")
@farm_option()
def clean_command(parts: tuple[Part, ...], everything: bool, farm_dir: Path) -> None:
    """Empty the cache, or parts of it; the next build fills what it needs again.

    Run it while no farm of this cache builds: a build then running may have
    to compile zig's runtimes again.
    """
    removed = api.cache_clean(None if everything or not parts else sorted(set(parts)),
                              farm_dir=farm_dir)
    for path in removed:
        out.print(f"removed {path}", markup=False)
    if not removed:
        out.print("nothing to remove")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


COMMANDS = (cache_group,)
