"""The command line: the only place that prints or exits.

Each module of this package defines the commands of one area and lists them
in ``COMMANDS``; the group below collects them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from .. import __version__
from ..errors import WheelfarmError
from .ui import err

MODULES = ("build", "reproduce", "ci", "farm", "publish")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wheelfarm")
def cli() -> None:
    """wheelfarm: build, repair, test and index binary Python wheels."""


for _name in MODULES:
    for _command in importlib.import_module(f"{__name__}.{_name}").COMMANDS:
        cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 a job failed, 2 bad input)."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="wheelfarm",
                 standalone_mode=False)
    except WheelfarmError as exc:
        err.print(f"error: {exc}", markup=False)
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def entry() -> None:
    sys.exit(main())
