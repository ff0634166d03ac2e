"""The command line: the only place that prints or exits.

Each module of this package defines the commands of one area and lists them
in ``COMMANDS``; the group below collects them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from wheelfarm import __version__
from wheelfarm.cli.ui import err
from wheelfarm.errors import Reported, WheelfarmError

# module -> the commands it defines. Modules load only when one of their
# commands runs: a CI step that plans should not pay for importing the
# controller's database layer or the publisher's S3 client.
MODULES: dict[str, tuple[str, ...]] = {
    "build": ("build",),
    "reproduce": ("lock", "rebuild"),
    "recipes": ("add", "init", "outdated", "bump"),
    "ci": ("plan", "merge"),
    "farm": ("controller", "dashboard", "worker", "submit", "status", "retry", "cancel", "logs",
             "token"),
    "publish": ("publish", "rollback", "history", "yank", "unyank", "refresh", "verify",
                "serve"),
    "notify": ("notify",),
    "cache": ("cache",),
}

# Commands that are wholly a feature of an optional extra: resolving one loads its
# module, so that `wheelfarm controller --help` already names the extra to install.
NEEDS_EXTRA: dict[str, str] = {
    "controller": "wheelfarm.farm.controller",
    "dashboard": "wheelfarm.farm.dashboard",
    "serve": "wheelfarm.publish.serve",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for names in MODULES.values() for name in names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module, names in MODULES.items():
            if cmd_name in names:
                loaded = importlib.import_module(f"{__name__}.{module}")
                for command in loaded.COMMANDS:
                    if command.name == cmd_name:
                        found: click.Command = command
                        return found
        return None

    def resolve_command(self, ctx: click.Context, args: list[str],
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and command.name in NEEDS_EXTRA and not ctx.resilient_parsing:
            importlib.import_module(NEEDS_EXTRA[command.name])  # ExtraMissing if not there
        return name, command, rest


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wheelfarm")
def cli() -> None:
    """wheelfarm: build, repair, test and index binary Python wheels."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 a job failed, 2 bad input, 128 + N
    signal N stopped the run). The one handler of the error tree: the error's
    class decides the code, and the one line shown."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="wheelfarm",
                 standalone_mode=False)
    except Reported as exc:
        if str(exc):  # the command showed the details; what is left is the last line
            err.print(str(exc), markup=False)
        return exc.exit_code
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
