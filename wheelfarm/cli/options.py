"""Options more than one command declares, declared once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

FARM_HELP = "Farm directory (wheelfarm.toml, .wheelfarm/)."


def farm_option(help: str = FARM_HELP) -> Callable[[F], F]:
    """``--farm DIR`` into the parameter ``farm_dir`` (default: the current directory)."""
    return click.option("--farm", "farm_dir", type=click.Path(path_type=Path, file_okay=False),
                        default=Path("."), help=help)
