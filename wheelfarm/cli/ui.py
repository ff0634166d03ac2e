"""Consoles shared by the commands."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

err = Console(stderr=True, highlight=False, soft_wrap=True)
# Off a terminal (CI logs, pipes) nothing should be cut to 80 columns.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def print_table(console: Console, table: Table) -> None:
    """On a terminal, the table at the terminal's width (its columns should fold,
    not cut); elsewhere (a CI log, a pipe, a file) at the width it needs, so that
    no wheel name is cut or broken across lines."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update(max_width=100_000), table)
    saved = console.width
    console.width = max(saved, natural.maximum)
    try:
        console.print(table)
    finally:
        console.width = saved
