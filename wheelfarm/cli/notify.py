"""`wheelfarm notify status` and `wheelfarm notify test`: the farm's webhooks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.table import Table

from wheelfarm import api
from wheelfarm.cli.options import farm_option
from wheelfarm.cli.ui import out
from wheelfarm.errors import Reported


@click.group()
def notify() -> None:
    """The farm's webhooks ([[notify]] in wheelfarm.toml)."""


@notify.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@farm_option()
def status(as_json: bool, farm_dir: Path) -> None:
    """Messages pending, delivered and dead, per target's cursor, and the last errors."""
    found = api.notify_status(farm_dir=farm_dir)
    if as_json:
        click.echo(json.dumps({"counts": found.counts, "cursors": found.cursors,
                               "targets": [t.name for t in found.targets],
                               "errors": found.errors}, indent=2))
        return
    out.print(", ".join(f"{n} {state}" for state, n in found.counts.items()), markup=False)
    for target in found.targets:
        seen = found.cursors.get(target.name)
        out.print(f"target {target.name} ({target.format}, on {', '.join(target.on)}): "
                  + (f"events read up to #{seen}" if seen is not None else "not started"),
                  markup=False)
    if found.errors:
        table = Table(title="last errors")
        for col in ("when", "target", "event", "delivery", "state", "tries", "error"):
            table.add_column(col)
        for e in found.errors:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
            table.add_row(when, e["target"], e["event"], e["delivery"][:12], e["state"],
                          str(e["attempts"]), e["error"] or "")
        out.print(table)


@notify.command("test")
@click.option("--target", "names", multiple=True, metavar="NAME",
              help="Only this target (repeatable) [default: all].")
@farm_option()
def test(names: tuple[str, ...], farm_dir: Path) -> None:
    """Send a test message to each target now; exit 1 if one was not taken."""
    failed = 0
    for name, error in api.notify_test(names, farm_dir=farm_dir):
        if error is None:
            out.print(f"{name}: delivered", markup=False)
        else:
            failed += 1
            out.print(f"{name}: not delivered: {error} (the controller retries it)",
                      markup=False)
    if failed:
        raise Reported(f"{failed} test message(s) not delivered")


COMMANDS = [notify]
