"""The command line: the only place that prints or exits.

Each module of this package defines the commands of one area and lists them
in ``COMMANDS``; the group below collects them.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

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
            err.print(_one_line(exc), markup=False)
        return exc.exit_code
    except WheelfarmError as exc:
        err.print(f"error: {_one_line(exc)}", markup=False)
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # a bug: one line for the user, the trace in a file
        where = _save_trace(list(argv) if argv is not None else sys.argv[1:])
        err.print(f"error: internal error: {type(exc).__name__}: {_one_line(exc, 300)} "
                  f"(full trace in {where})", markup=False)
        return 1
    return 0


def _one_line(exc: BaseException, limit: int = 0) -> str:
    """The error's message as one line: a value quoted from a file may hold a line
    break or a control character, which is shown escaped."""
    text = "".join(ch if ch.isprintable() or ch == " " else
                   ascii(ch)[1:-1] for ch in str(exc).strip())
    return text[:limit] + "..." if limit and len(text) > limit else text


def _farm_of(argv: Sequence[str]) -> Path:
    """The farm directory the command was given (``--farm DIR``), else the current one."""
    for i, arg in enumerate(argv):
        if arg == "--farm" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--farm="):
            return Path(arg.split("=", 1)[1])
    return Path(".")


def _save_trace(argv: Sequence[str]) -> Path:
    """Write the current exception's trace under the farm's logs when the farm
    exists, else under the user's state directory (``XDG_STATE_HOME``), else a
    temporary directory; the file's path."""
    from wheelfarm.plan.config import STATE_DIR  # only a crash pays for the import

    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    farm = _farm_of(argv) / STATE_DIR
    # A farm's own directory only when it is already one: a crash must not make a farm.
    places = ([farm / "logs"] if farm.is_dir() else []) + [
        state / "wheelfarm" / "crashes", Path(tempfile.gettempdir())]
    text = f"wheelfarm {__version__}: {' '.join(argv)}\n{traceback.format_exc()}"
    for place in places:
        try:
            place.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=time.strftime("crash-%Y%m%d-%H%M%S-"),
                                        suffix=".log", dir=place)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return Path(name).resolve()
        except OSError:
            continue
    return Path("(nowhere: no writable directory)")


def entry() -> None:
    sys.exit(main())
