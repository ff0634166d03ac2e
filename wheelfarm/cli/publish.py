"""`wheelfarm publish`, `rollback`, `history`, `yank`, `unyank`, `refresh`, `verify`, `serve`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from wheelfarm import api
from wheelfarm.cli.options import farm_option
from wheelfarm.cli.ui import err, out
from wheelfarm.errors import ChecksFailed, ConfigError

F = TypeVar("F", bound=Callable[..., Any])
_FARM_HELP = "Farm directory (wheelfarm.toml)."


def _signing_options(fn: F) -> F:
    fn = click.option("--sign-key", metavar="KEYID",
                      help="GnuPG key to sign with [default: WHEELFARM_SIGN_KEY, then "
                           "[publish] sign-key]; GNUPGHOME selects the keyring.")(fn)
    fn = click.option("--valid-days", type=click.FloatRange(min=0, min_open=True),
                      help="Days until the manifest's Valid-Until [default: [publish] "
                           "valid-days, else 30].")(fn)
    return farm_option(_FARM_HELP)(fn)


def _report(done: api.Published) -> None:
    outcome, url = done.outcome, done.url
    if outcome.created:
        out.print(f"generation {outcome.generation} of {url}: {outcome.change}", markup=False)
    else:
        out.print(f"nothing to change; generation {outcome.generation} of {url} stays current",
                  markup=False)
    for name in outcome.unchanged:
        out.print(f"  already published, same bytes: {name}", markup=False)


@click.command()
@click.argument("dirs", nargs=-1, required=True,
                type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--to", "url", metavar="URL",
              help="The index: a directory, file://PATH or s3://BUCKET/PREFIX "
                   "[default: [publish] url].")
@_signing_options
def publish(dirs: tuple[Path, ...], url: str | None, farm_dir: Path, sign_key: str | None,
            valid_days: float | None) -> None:
    """Publish the wheels in DIRS (with their .intoto.json) as a new, signed generation.

    Published files never change: a file name that exists with other bytes is
    refused (exit 2); the same bytes again change nothing.
    """
    _report(api.publish(list(dirs), api.Index(url, farm_dir, sign_key, valid_days)))


@click.command()
@click.argument("url", required=False)
@click.option("--to", "generation", type=click.IntRange(min=1),
              help="The generation whose pages to restore [default: the one before the current].")
@_signing_options
def rollback(url: str | None, generation: int | None, farm_dir: Path, sign_key: str | None,
             valid_days: float | None) -> None:
    """Publish a new generation whose pages equal those of generation N, freshly signed."""
    _report(api.rollback(api.Index(url, farm_dir, sign_key, valid_days), generation))


@click.command()
@click.argument("url", required=False)
@_signing_options
def refresh(url: str | None, farm_dir: Path, sign_key: str | None,
            valid_days: float | None) -> None:
    """Re-sign the current pages as a new generation with a new Valid-Until (for cron)."""
    _report(api.refresh(api.Index(url, farm_dir, sign_key, valid_days)))


@click.command()
@click.argument("url")
@click.argument("spec", metavar="NAME==VERSION")
@click.option("--reason", default="", help="Shown to installers (PEP 592).")
@_signing_options
def yank(url: str, spec: str, reason: str, farm_dir: Path, sign_key: str | None,
         valid_days: float | None) -> None:
    """Yank every file of NAME==VERSION: pip skips it unless pinned exactly."""
    _report(api.yank(api.Index(url, farm_dir, sign_key, valid_days), spec, reason))


@click.command()
@click.argument("url")
@click.argument("spec", metavar="NAME==VERSION")
@_signing_options
def unyank(url: str, spec: str, farm_dir: Path, sign_key: str | None,
           valid_days: float | None) -> None:
    """Undo a yank of NAME==VERSION."""
    _report(api.unyank(api.Index(url, farm_dir, sign_key, valid_days), spec))


@click.command(name="history")
@click.argument("url", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True,
              help='Print {"url", "generations": [{"generation", "date", "valid_until", '
                   '"change", "changed", "live"}]} instead of a table.')
@farm_option(_FARM_HELP)
def history_command(url: str | None, limit: int, farm_dir: Path, as_json: bool) -> None:
    """List the generations of an index, newest first, with what each changed."""
    where, entries = api.history(url, limit=limit, farm_dir=farm_dir)
    if as_json:
        click.echo(json.dumps({"url": where, "generations": [
            {"generation": e.release.generation, "date": _iso(e.release.date),
             "valid_until": _iso(e.release.valid_until), "change": e.release.change,
             "changed": list(e.release.changed), "live": e.live} for e in entries]},
            indent=2))
        return
    if not entries:
        out.print(f"nothing published at {where}", markup=False)
        return
    table = Table(title=f"generations of {where}")
    for col in ("gen", "date (UTC)", "valid until", "change", "projects changed"):
        table.add_column(col, justify="right" if col == "gen" else "left")
    for entry in entries:
        r = entry.release
        changed = ", ".join(r.changed[:6]) + (f" (+{len(r.changed) - 6})"
                                              if len(r.changed) > 6 else "")
        table.add_row(f"{r.generation}{' *' if entry.live else ''}",
                      f"{r.date:%Y-%m-%d %H:%M}", f"{r.valid_until:%Y-%m-%d}",
                      r.change, changed or "-")
    out.print(table)
    out.print("* live", markup=False)


@click.command(name="verify")
@click.argument("source")
@click.option("--key", "key_file", required=True,
              type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The farm's public key (gpg --armor --export KEYID).")
@click.option("--state", "state_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where the newest generation seen is kept "
                   "[default: ~/.local/state/wheelfarm/verify].")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"source", "ok", "generation", "files", "signatures", "failures", '
                   '"warnings", "missing"} instead of lines; the exit code is the same.')
def verify_command(source: str, key_file: Path, state_dir: Path | None, as_json: bool) -> None:
    """Verify an index (a directory or URL) offline against the farm's public key.

    Checks the root manifest's signature, Valid-Until and generation (never
    older than one seen before), every file's hash and every signature. Exit 0
    only if everything holds; each failure is named.
    """
    report = api.verify(source, key_file, state_dir)
    if as_json:
        click.echo(json.dumps({
            "source": report.source, "ok": report.ok, "generation": report.generation,
            "files": report.files, "signatures": report.signatures,
            "failures": report.failures, "warnings": report.warnings,
            "missing": report.missing}, indent=2))
        if report.failures:
            raise ChecksFailed("")  # named in the document
        return
    for warning in report.warnings:
        err.print(f"warning: {warning}", markup=False)
    for requirement in report.missing:
        err.print(f"warning: not in this index: {requirement}", markup=False)
    for failure in report.failures:
        err.print(f"FAILED: {failure}", markup=False)
    if report.failures:
        raise ChecksFailed(f"{len(report.failures)} check(s) failed for {report.source}")
    out.print(f"verified generation {report.generation} of {report.source}: {report.files} "
              f"files, {report.signatures} signatures", markup=False)


def _iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the job JSON writes times."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.isoformat().replace("+00:00", "Z")


@click.command(name="serve")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True)
def serve_command(directory: Path, port: int, host: str) -> None:
    """Serve a published index over HTTP (pip: --index-url http://HOST:PORT/simple/)."""
    from wheelfarm.publish import serve

    try:
        sock = serve.bind(host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    out.print(f"serving {directory} at http://{shown}:{bound}/simple/", markup=False)
    out.file.flush()
    serve.serve(directory.resolve(), sock)


COMMANDS = [publish, rollback, history_command, yank, unyank, refresh, verify_command,
            serve_command]
