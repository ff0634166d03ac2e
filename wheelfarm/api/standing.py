"""The API's standing-farm part: its queue, controller, workers, dashboard and
notifications (re-exported by :mod:`wheelfarm.api`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wheelfarm.api.common import HERE, FarmConfig, load_config
from wheelfarm.errors import ConfigError
from wheelfarm.farm.operate import Probes, Submitted

if TYPE_CHECKING:
    from sqlalchemy import Row

    from wheelfarm.farm.controller import Controller
    from wheelfarm.farm.notify.service import Status as NotifyStatus
    from wheelfarm.farm.state.history import TokenHolder
    from wheelfarm.farm.state.queue import Queue
    from wheelfarm.farm.worker import Worker, WorkerOptions


# -- the standing farm --------------------------------------------------------------------


def open_queue(farm_dir: Path = HERE) -> Queue:
    """The queue in the farm's state database, its schema up to date."""
    return _queue(load_config(farm_dir))


def _queue(config: FarmConfig) -> Queue:
    from wheelfarm.farm.state import open_queue as opened

    return opened(config)


def submit(paths: Sequence[Path] = (), *, targets: Sequence[str] = (),
           pythons: Sequence[str] = (), executor: str | None = None, priority: int = 0,
           probes: Probes | None = None, farm_dir: Path = HERE) -> Submitted:
    """Queue the jobs of recipes, or ``probes``, for the farm's workers; a job whose
    key is already queued is not added again."""
    from wheelfarm.farm import operate

    config = load_config(farm_dir)
    return operate.submit(config, _queue(config), paths, targets=targets, pythons=pythons,
                          executor=executor, priority=priority, probes=probes)


@dataclass(frozen=True)
class Status:
    # report.queue_jobs's JSON shape (schema 1): the farm's jobs, then local builds
    # (report.local_jobs, "source": "local")
    jobs: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)


def status(*, events: bool = False, farm_dir: Path = HERE) -> Status:
    """Every job of the farm, oldest first, then the local builds recorded in its
    history, and the event log if asked."""
    from wheelfarm.farm.state import report

    queue = open_queue(farm_dir)
    return Status(report.queue_jobs(queue) + report.local_jobs(queue),
                  report.job_events(queue) if events else [])


def job_log(job: str, *, attempt: int | None = None, farm_dir: Path = HERE) -> str:
    """The log of JOB's last attempt (or of ``attempt``); a ConfigError naming why not."""
    from wheelfarm.farm import operate

    return operate.job_log(open_queue(farm_dir), job, attempt)


def retry(job: str, *, farm_dir: Path = HERE) -> Row[Any]:
    """Queue a failed or cancelled job (a key or a unique prefix) again; its row."""
    return open_queue(farm_dir).retry(job)


def retry_with_dependents(job: str, *, farm_dir: Path = HERE) -> tuple[Row[Any], list[Row[Any]]]:
    """:func:`retry`, and the rows of the jobs that failed without running because
    this one had failed, which are pending again with it."""
    return open_queue(farm_dir).retry_job(job)


def cancel(job: str, *, farm_dir: Path = HERE) -> Row[Any]:
    """Cancel a job; a worker running it stops at its next heartbeat. Its row."""
    return open_queue(farm_dir).cancel(job)


def token(name: str, *, farm_dir: Path = HERE) -> str:
    """A new token for worker ``name`` (its old one stops working); shown once."""
    from wheelfarm.farm.controller import issue_token

    return issue_token(open_queue(farm_dir), name)


def controller(*, wheelhouse: Path | None = None, farm_dir: Path = HERE,
               **limits: int) -> Controller:
    """The controller's HTTP application over the farm's queue (serve it with
    :func:`wheelfarm.farm.serving.serve`); ``limits``: max_body, max_upload."""
    from wheelfarm.farm.controller import Controller
    from wheelfarm.farm.notify import service

    farm = farm_dir.resolve()
    config = load_config(farm_dir)
    queue = _queue(config)
    found = Controller(queue, farm, (wheelhouse or farm / "wheelhouse").resolve(),
                       index=_index_view(config, farm), **limits)
    notifier = service.notifier(config, queue.engine)  # a missing secret: refused at start
    if notifier is not None:
        found.background.append(notifier.run)
    return found


def notify_status(*, farm_dir: Path = HERE) -> NotifyStatus:
    """The farm's webhook outbox: messages by state, cursors, the last errors."""
    from wheelfarm.farm.notify import service

    return service.status(load_config(farm_dir))


def notify_test(names: Sequence[str] = (), *, farm_dir: Path = HERE,
                ) -> list[tuple[str, str | None]]:
    """Send a test message to the farm's [[notify]] targets (or those named)."""
    from wheelfarm.farm.notify import service

    return service.send_test(load_config(farm_dir), names)


def _index_view(config: FarmConfig, farm: Path) -> Any:
    from wheelfarm.farm.dashboard import open_index

    return open_index(config.publish.url, config.publish.s3_endpoint_url, farm)


def dashboard(*, farm_dir: Path = HERE) -> Any:
    """The dashboard of a farm (its queue, the local builds of its history, its
    published index) as an ASGI application; serve it with uvicorn."""
    from wheelfarm.farm import dashboard as dash

    config = load_config(farm_dir)
    return dash.app(_queue(config), _index_view(config, farm_dir.resolve()), farm_dir.resolve())


def token_holders(*, farm_dir: Path = HERE) -> list[TokenHolder]:
    """Every worker and operator that holds a token now (never the tokens)."""
    return open_queue(farm_dir).token_holders()


def revoke_token(name: str, *, operator: bool = False, farm_dir: Path = HERE) -> None:
    """Take worker (or operator) ``name``'s token away; a ConfigError if it holds none."""
    kind = "operator" if operator else "worker"
    if not open_queue(farm_dir).revoke_token(kind, name):
        raise ConfigError(f"{kind} {name!r} holds no token (see `wheelfarm token --list`)")


def operator_token(name: str, *, farm_dir: Path = HERE) -> str:
    """A new operator token for ``name`` (the dashboard's retry and cancel need
    one); its old one stops working. Shown once."""
    from wheelfarm.farm.dashboard import issue_operator_token

    return issue_operator_token(open_queue(farm_dir), name)


def worker(options: WorkerOptions, *, controller_url: str | None = None,
           token: str | None = None, executors: Sequence[str] = (),
           pythons: Sequence[str] = (), images: Sequence[str] = (),
           wheelhouse: Path | None = None, farm_dir: Path = HERE) -> Worker:
    """A worker ready to run, on the farm's database or for the controller at
    ``controller_url`` (see :func:`wheelfarm.farm.operate.worker`)."""
    from wheelfarm.farm import operate

    return operate.worker(load_config(farm_dir), farm_dir.resolve(), options,
                          controller_url=controller_url, token=token, executors=executors,
                          pythons=pythons, images=images, wheelhouse=wheelhouse)
