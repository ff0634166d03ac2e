"""The farm's state: a job queue with leases in SQLite or PostgreSQL.

``open_queue(config)`` is the one way in; :mod:`.queue` holds the operations
(workers, claims, reclaims) with its parts :mod:`.intake` (submitting),
:mod:`.leases` (a lease holder's reports), :mod:`.lookups` (what the
controller and a local build read), :mod:`.operators` (retry, cancel) and
:mod:`.history` (local builds' attempts, operators' tokens);
:mod:`.sql` and :mod:`.batches` their statements, :mod:`.news` how an idle
worker hears of new jobs, :mod:`.lifecycle` the states and the retry rule,
:mod:`.schema` the tables and their migrations, :mod:`.report` the JSON
shape of a job. Importing this package loads no database library (a job's
child process needs only the values in :mod:`.models`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wheelfarm.farm.state.lifecycle import JobState
from wheelfarm.farm.state.models import Artifact, Capabilities, Lease, NewJob, Outcome

if TYPE_CHECKING:
    from wheelfarm.farm.state.queue import Queue
    from wheelfarm.plan.config import FarmConfig

__all__ = ["Artifact", "Capabilities", "JobState", "Lease", "NewJob", "Outcome",
           "open_queue"]


def open_queue(config: FarmConfig, url: str | None = None) -> Queue:
    """The queue of the farm ``config`` describes (or of ``url``), schema up to date."""
    from wheelfarm.farm.state.db import open_engine
    from wheelfarm.farm.state.queue import Queue

    engine = open_engine(url or config.state_url)
    return Queue(engine, lease_seconds=config.lease, backoff=config.retry_backoff)
