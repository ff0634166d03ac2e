"""The queue's tables (SQLAlchemy Core) and their versioned migrations.

Times are seconds since the epoch as floats, taken from the clock of the
process that writes them (the controller, or each worker with direct
database access); JSON columns hold small documents as text so that SQLite
and PostgreSQL store them alike.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from wheelfarm.errors import ConfigError

metadata = MetaData()

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # build | probe
    Column("recipe", String(200), nullable=False),  # normalized project name
    Column("target", String(64), nullable=False),
    Column("python", String(16), nullable=False),
    Column("executor", String(32), nullable=False),
    Column("os", String(16), nullable=False),  # "" in a requirement column: any
    Column("arch", String(16), nullable=False),
    Column("pythons", String(200), nullable=False),  # space-separated: build + test pythons
    Column("image", String(200), nullable=True),
    Column("spec", Text, nullable=False),  # JSON: what a worker needs to rebuild the job
    Column("priority", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),  # claims so far
    Column("failures", Integer, nullable=False, default=0),  # count toward max_attempts
    Column("max_attempts", Integer, nullable=False),
    Column("timeout", Float, nullable=False),
    Column("target_limit", Integer, nullable=False, default=0),  # 0: no limit
    Column("not_before", Float, nullable=False, default=0.0),
    Column("lease", String(32), nullable=True),  # fencing token of the current attempt
    Column("worker", String(200), nullable=True),
    Column("lease_expires", Float, nullable=True),
    Column("artifact_filename", String(300), nullable=True),
    Column("artifact_sha256", String(64), nullable=True),
    Column("artifact_location", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    # Added by version 3: why the job last failed (errors.FailureCause), and the
    # recipe's owners (a JSON list), whom failures are attributed to.
    Column("cause", String(32), nullable=True),
    Column("owners", Text, nullable=True),
)
# In the claim's order (best priority first, then oldest), so that a claim reads
# the first few pending rows instead of sorting every pending one (version 2).
Index("jobs_claim", jobs.c.state, jobs.c.priority.desc(), jobs.c.id)
Index("jobs_lease", jobs.c.state, jobs.c.lease_expires)
Index("jobs_recipe", jobs.c.recipe, jobs.c.target, jobs.c.python, jobs.c.state)

job_needs = Table(
    "job_needs", metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("recipe", String(200), nullable=False),
    UniqueConstraint("job_id", "recipe"),
)

attempts = Table(
    "attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("n", Integer, nullable=False),
    Column("worker", String(200), nullable=False),
    Column("lease", String(32), nullable=False),
    Column("started", Float, nullable=False),
    Column("ended", Float, nullable=True),
    Column("outcome", String(16), nullable=True),  # succeeded | failed | lost | released ...
    Column("reason", Text, nullable=True),
    Column("log", Text, nullable=True),
    Column("duration", Float, nullable=True),
    Column("cause", String(32), nullable=True),  # version 3
    UniqueConstraint("job_id", "n"),
)

workers = Table(
    "workers", metadata,
    Column("name", String(200), primary_key=True),
    Column("capabilities", Text, nullable=False, default="{}"),
    Column("token_sha256", String(64), nullable=True, unique=True),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=True),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("job_id", Integer, nullable=True),
    Column("n", Integer, nullable=True),
    Column("worker", String(200), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=True),
)
Index("events_job", events.c.job_id, events.c.id)

# The attempts of ``wheelfarm build`` (which runs its jobs through a private queue
# of its own, see farm/localrun.py), one row each, so that ``status``, ``logs``,
# the dashboard and the metrics see local builds too. Not rows of ``jobs``: a
# pending row there is the farm's workers' to claim, and a job's key is unique
# while a developer builds the same key again and again.
local_builds = Table(
    "local_builds", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run", String(100), nullable=False),  # the run's log directory name
    Column("host", String(200), nullable=False),  # host:pid of the build
    Column("key", String(64), nullable=False),
    Column("job", String(300), nullable=False),  # the job's id (recipe-python-target)
    Column("recipe", String(200), nullable=False),
    Column("target", String(64), nullable=False),
    Column("python", String(16), nullable=False),
    Column("executor", String(32), nullable=False),
    Column("owners", Text, nullable=True),  # JSON list
    Column("state", String(16), nullable=False),  # running | succeeded | failed
    Column("cached", Integer, nullable=False, default=0),  # 1: nothing ran, already built
    Column("started", Float, nullable=False),
    Column("ended", Float, nullable=True),
    Column("duration", Float, nullable=True),
    Column("step", String(32), nullable=True),  # the failing step (a FailureKind)
    Column("cause", String(32), nullable=True),  # a FailureCause
    Column("reason", Text, nullable=True),
    Column("wheel", String(300), nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("log", Text, nullable=True),  # the log's path on the building machine
)
Index("local_builds_key", local_builds.c.key, local_builds.c.id)
Index("local_builds_recipe", local_builds.c.recipe, local_builds.c.target,
      local_builds.c.python, local_builds.c.id)

# Operators' tokens: the dashboard's actions (retry, cancel) need one. Separate
# from workers' tokens, which are held by machines that run hostile builds.
operator_tokens = Table(
    "operator_tokens", metadata,
    Column("name", String(200), primary_key=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created", Float, nullable=False),
)

# Version 5: webhooks (wheelfarm.farm.notify). A target's cursor is the last
# event its producer turned into messages; an outbox row is one message to one
# target, written in the cursor's transaction and delivered after it.
notify_cursors = Table(
    "notify_cursors", metadata,
    Column("target", String(64), primary_key=True),
    Column("event_id", Integer, nullable=False),
    Column("updated", Float, nullable=False),
)

notify_outbox = Table(
    "notify_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery", String(32), nullable=False, unique=True),  # the receivers' dedup key
    Column("target", String(64), nullable=False),
    Column("event", String(16), nullable=False),  # failure | recovery | publish | test
    Column("group_key", String(300), nullable=True),  # what later events may join
    Column("payload", Text, nullable=False),  # JSON: the message, rendered at delivery
    Column("state", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", Float, nullable=False),
    Column("window_end", Float, nullable=True),  # events at or after it start a new group
    Column("lease", String(32), nullable=True),  # a deliverer's claim
    Column("lease_expires", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("delivered", Float, nullable=True),
)
Index("notify_outbox_due", notify_outbox.c.state, notify_outbox.c.not_before)
Index("notify_outbox_group", notify_outbox.c.target, notify_outbox.c.group_key,
      notify_outbox.c.state)

migrations_table = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied", Float, nullable=False),
)


def _v1(conn: Connection) -> None:
    for table in (jobs, job_needs, attempts, workers, events):
        table.create(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    # Version 1 indexed (state, priority, id), which cannot give the claim's
    # ORDER BY priority DESC, id: each claim sorted the whole pending set.
    conn.execute(text("DROP INDEX IF EXISTS jobs_claim"))
    conn.execute(text("CREATE INDEX jobs_claim ON jobs (state, priority DESC, id)"))


def _v3(conn: Connection) -> None:
    # Version 1's tables were created from the definitions above, which now hold
    # these columns: a database made at version 1 or 2 lacks them.
    for table, column in (("jobs", "cause VARCHAR(32)"), ("jobs", "owners TEXT"),
                          ("attempts", "cause VARCHAR(32)")):
        name = column.split()[0]
        if name not in _columns(conn, table):
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column}"))


def _columns(conn: Connection, table: str) -> set[str]:
    from sqlalchemy import inspect  # only a migration needs the inspector

    return {c["name"] for c in inspect(conn).get_columns(table)}


def _v4(conn: Connection) -> None:
    for table in (local_builds, operator_tokens):
        table.create(conn, checkfirst=True)


def _v5(conn: Connection) -> None:
    for table in (notify_cursors, notify_outbox):
        table.create(conn, checkfirst=True)


# Append-only: a released schema is changed by a new function (ALTER TABLE ...),
# never by editing an old one, so every database reaches the same shape.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5]
VERSION = len(MIGRATIONS)
_LOCK_ID = zlib.crc32(b"wheelfarm-migrate")


def migrate(conn: Connection) -> int:
    """Bring the schema to :data:`VERSION` inside the caller's transaction.

    Concurrent processes migrate one at a time (an advisory lock on
    PostgreSQL, the immediate transaction on SQLite). Returns the version
    found before; a database newer than this code is a ConfigError.
    """
    try:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
        migrations_table.create(conn, checkfirst=True)
        found = conn.execute(select(func.max(migrations_table.c.version))).scalar() or 0
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot read the state database: {first_line(exc)}") from None
    if found > VERSION:
        raise ConfigError(f"the state database has schema version {found}, newer than this "
                          f"wheelfarm understands ({VERSION}); upgrade wheelfarm")
    for version in range(found + 1, VERSION + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute(migrations_table.insert().values(version=version, applied=time.time()))
    return int(found)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
