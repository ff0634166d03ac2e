"""The standing farm: `controller`, `worker`, `submit`, `status`, `retry`, `cancel`,
`logs` and `token`, all on the queue in the farm's state database."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from wheelfarm import api
from wheelfarm.build import executors
from wheelfarm.cli.options import farm_option
from wheelfarm.cli.ui import err, out
from wheelfarm.errors import ConfigError, needs_extra
from wheelfarm.farm.apiinput import MAX_BODY, MAX_UPLOAD
from wheelfarm.farm.submit import DEFAULT_MAX_ATTEMPTS

TOKEN_ENV = "WHEELFARM_TOKEN"


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # httpx logs every request's URL at INFO: noise per job, and a URL is the
    # wrong place for anything secret, should one ever get there.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--target", "targets", multiple=True, metavar="TARGET",
              help="Instead of the recipes' targets (repeatable).")
@click.option("--python", "pythons", multiple=True, metavar="cpXY",
              help="Instead of the recipes' pythons (repeatable).")
@click.option("--executor", type=click.Choice(executors.names()),
              help="Override the executor chosen per target.")
@click.option("--priority", type=int, default=0, show_default=True,
              help="Higher runs first.")
@click.option("--probe", type=click.IntRange(min=1), metavar="N",
              help="Submit N probe jobs instead of recipes (no compiler; for checks and "
                   "benchmarks of the farm itself).")
@click.option("--seconds", type=click.FloatRange(min=0), default=0.0,
              help="How long each probe runs.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0,
              help="Probe timeout, seconds.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=DEFAULT_MAX_ATTEMPTS,
              help="Probe attempts before it fails.")
@farm_option()
def submit(paths: tuple[Path, ...], targets: tuple[str, ...], pythons: tuple[str, ...],
           executor: str | None, priority: int, probe: int | None, seconds: float,
           timeout: float, max_attempts: int, farm_dir: Path) -> None:
    """Queue the jobs of recipes (or probes) for the farm's workers.

    PATHS are recipe files, folders of recipes or project directories, as for
    `wheelfarm build`. A job whose key is already queued is not added again.
    """
    probes = api.Probes(probe, seconds=seconds, timeout=timeout,
                        max_attempts=max_attempts) if probe else None
    done = api.submit(paths, targets=targets, pythons=pythons, executor=executor,
                      priority=priority, probes=probes, farm_dir=farm_dir)
    out.print(f"submitted {done.added} job(s)"
              + (f"; {done.known} already queued" if done.known else ""))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON (schema 1).")
@click.option("--events", "with_events", is_flag=True, help="Also show the event log.")
@farm_option()
def status(as_json: bool, with_events: bool, farm_dir: Path) -> None:
    """Every job, its state and attempts, oldest first; then the local builds
    (`wheelfarm build` in this farm directory), worker "local HOST:PID"."""
    from wheelfarm.farm.state import report

    found = api.status(events=with_events, farm_dir=farm_dir)
    jobs = found.jobs
    if as_json:
        doc: dict[str, Any] = report.document(jobs)
        if with_events:
            doc["events"] = found.events
        click.echo(json.dumps(doc, indent=2))
        return
    table = Table(title="wheelfarm status")
    for col in ("job", "recipe", "target", "python", "state", "tries", "worker", "note"):
        table.add_column(col)
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j["state"]] = counts.get(j["state"], 0) + 1
        last = j["attempts"][-1] if j["attempts"] else {}
        note = j["artifact"]["filename"] if j["artifact"] else (last.get("reason") or "")
        if last.get("cause"):
            note = f"{last['cause']}: {note}"
        table.add_row(j["key"][:12], j["recipe"], j["target"] or "-", j["python"] or "-",
                      j["state"], str(len(j["attempts"])), last.get("worker") or "", note)
    out.print(table)
    out.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs")
    if with_events:
        for e in found.events:
            out.print(f"{e['at']} {e['kind']} job={e['job']} n={e['n']} worker={e['worker']} "
                      f"{json.dumps(e['detail']) if e['detail'] else ''}", markup=False)


@click.command()
@click.argument("job")
@farm_option()
def retry(job: str, farm_dir: Path) -> None:
    """Queue a failed or cancelled JOB (a key or a unique prefix) again, with the
    jobs that failed without running because it had failed."""
    row, revived = api.retry_with_dependents(job, farm_dir=farm_dir)
    for r in (row, *revived):
        out.print(f"job {r.key[:12]} ({r.recipe} {r.python} {r.target}) is pending again",
                  markup=False)


@click.command()
@click.argument("job")
@farm_option()
def cancel(job: str, farm_dir: Path) -> None:
    """Cancel JOB; a worker running it stops at its next heartbeat."""
    row = api.cancel(job, farm_dir=farm_dir)
    out.print(f"job {row.key[:12]} ({row.recipe} {row.python} {row.target}) cancelled")


@click.command()
@click.argument("job")
@click.option("--attempt", type=int, help="Which attempt (default: the last).")
@farm_option()
def logs(job: str, attempt: int | None, farm_dir: Path) -> None:
    """Print the log of JOB's last attempt (or of --attempt N)."""
    click.echo(api.job_log(job, attempt=attempt, farm_dir=farm_dir), nl=False)


@click.command()
@click.option("--controller", "controller_url", metavar="URL",
              help="Work for this controller over HTTP instead of the farm's database.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the worker's token (or set WHEELFARM_TOKEN).")
@click.option("--token", envvar="WHEELFARM_TOKEN", hidden=True,
              help="Refused on the command line (visible to every process); read from "
                   "WHEELFARM_TOKEN.")
@click.option("--drain", is_flag=True,
              help="Exit once nothing this worker can run is pending or running.")
@click.option("--name", default="", help="Worker name [default: host-pid].")
@click.option("--executor", "executor_names", multiple=True, type=click.Choice(executors.names()),
              help="Executors this worker offers (repeatable) [default: all].")
@click.option("--python", "python_tags", multiple=True, metavar="cpXY",
              help="Pythons this worker offers (repeatable) [default: those found].")
@click.option("--image", "images", multiple=True, help="Container images it has (repeatable).")
@click.option("--batch", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Jobs claimed at once.")
@click.option("--poll", type=click.FloatRange(min=0.01), default=0.5, show_default=True,
              help="Longest pause between claims while idle, seconds.")
@click.option("--grace", type=click.FloatRange(min=0),
              help="After SIGTERM, hand the running job back after this many seconds.")
@click.option("--out", "wheelhouse", type=click.Path(path_type=Path),
              help="Where accepted wheels go [default: FARM/wheelhouse].")
@farm_option()
def worker(controller_url: str | None, token_file: Path | None, token: str | None, drain: bool,
           name: str,
           executor_names: tuple[str, ...], python_tags: tuple[str, ...], images: tuple[str, ...],
           batch: int, poll: float, grace: float | None, wheelhouse: Path | None,
           farm_dir: Path) -> None:
    """Claim jobs and run them, from the farm's database or a controller."""
    from wheelfarm.farm.worker import WorkerOptions

    _logging()
    token = _worker_token(token_file, token)
    w = api.worker(WorkerOptions(name=name, drain=drain, batch=batch, poll=poll, grace=grace),
                   controller_url=controller_url, token=token, executors=executor_names,
                   pythons=python_tags, images=images, wheelhouse=wheelhouse,
                   farm_dir=farm_dir)
    w.install_signal_handlers()
    done = w.run()
    err.print(f"worker {w.name}: {done} job(s) reported")


def _worker_token(token_file: Path | None, token: str | None) -> str | None:
    """The token from a file or the environment, never from argv (every process on the
    machine can read a command line). It is then dropped from this process's
    environment, so that neither the job processes nor the builds they start inherit it."""
    source = click.get_current_context().get_parameter_source("token")
    os.environ.pop(TOKEN_ENV, None)
    if token and source is click.core.ParameterSource.COMMANDLINE:
        raise ConfigError("--token: a token on the command line is visible to every process "
                          f"on this machine; use --token-file FILE or set {TOKEN_ENV}")
    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"--token-file {token_file}: {exc.strerror}") from None
    return token


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8470, show_default=True)
@click.option("--out", "wheelhouse", type=click.Path(path_type=Path),
              help="Where accepted wheels go [default: FARM/wheelhouse].")
@click.option("--max-body", type=click.IntRange(min=1024), default=MAX_BODY, show_default=True,
              metavar="BYTES", help="Largest JSON request a worker may send.")
@click.option("--max-upload", type=click.IntRange(min=1024), default=MAX_UPLOAD,
              show_default=True, metavar="BYTES", help="Largest log or wheel a worker may upload.")
@farm_option()
def controller(host: str, port: int, wheelhouse: Path | None, max_body: int, max_upload: int,
               farm_dir: Path) -> None:
    """Serve the HTTP API for remote workers (claim, heartbeat, upload, report)."""
    from wheelfarm.farm.serving import serve

    _logging()
    serve(api.controller(wheelhouse=wheelhouse, farm_dir=farm_dir, max_body=max_body,
                         max_upload=max_upload), host, port)


@click.command()
@click.argument("name", required=False)
@click.option("--operator", is_flag=True,
              help="An operator's token (the dashboard's retry and cancel), not a worker's.")
@click.option("--revoke", is_flag=True, help="Take NAME's token away instead of issuing one.")
@click.option("--list", "listing", is_flag=True,
              help="List the workers and operators that hold a token (never the tokens).")
@click.option("--json", "as_json", is_flag=True, help="With --list: JSON on stdout.")
@farm_option()
def token(name: str | None, operator: bool, revoke: bool, listing: bool, as_json: bool,
          farm_dir: Path) -> None:
    """Issue a new token for worker NAME (the old one stops working) and print it;
    or take it away (--revoke), or list who holds one (--list)."""
    if listing:
        if name or revoke or operator:
            raise ConfigError("--list takes no NAME, --revoke or --operator")
        _holders(api.token_holders(farm_dir=farm_dir), as_json)
        return
    if not name:
        raise ConfigError("token: give a NAME, or --list")
    if as_json:
        raise ConfigError("--json goes with --list")
    if revoke:
        api.revoke_token(name, operator=operator, farm_dir=farm_dir)
        err.print(f"{'operator' if operator else 'worker'} {name}: token revoked", markup=False)
        return
    click.echo(api.operator_token(name, farm_dir=farm_dir) if operator
               else api.token(name, farm_dir=farm_dir))


def _holders(holders: list[Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([{"kind": h.kind, "name": h.name, "since": h.since}
                               for h in holders], indent=2))
        return
    table = Table("kind", "name", "since", box=None)
    for h in holders:
        since = "-" if h.since is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(h.since))
        table.add_row(h.kind, h.name, since)
    out.print(table)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8471, show_default=True)
@farm_option()
def dashboard(host: str, port: int, farm_dir: Path) -> None:
    """Serve the farm's dashboard and /metrics: its queue, the local builds of
    its history and its published index (`wheelfarm controller` serves them too)."""
    with needs_extra("farm", "the dashboard"):
        import uvicorn

    _logging()
    app = api.dashboard(farm_dir=farm_dir)
    err.print(f"dashboard: http://{host}:{port}/", markup=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


COMMANDS = [controller, dashboard, worker, submit, status, retry, cancel, logs, token]
