"""Consoles shared by the commands."""

from __future__ import annotations

import sys

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)
# Off a terminal (CI logs, pipes) nothing should be cut to 80 columns.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
