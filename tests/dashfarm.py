"""A farm with succeeded, failed and running jobs, made through the queue's own
API (submit, claim, start, finish) with real log files, for the dashboard's and
the metrics' tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wheelfarm.errors import FailureCause, FailureKind
from wheelfarm.farm.state import Artifact, Capabilities, NewJob, Outcome, open_queue
from wheelfarm.farm.state.queue import Queue
from wheelfarm.plan import config as farm_config

CAPS = Capabilities(os="linux", arch="x86_64", executors=("zig",), pythons=("cp311", "cp312"))
HOSTILE = "<script>document.title='owned'</script>"
COMPILER_ERROR = "src/fast.c:3:5: error: use of undeclared identifier 'nope'"


@dataclass(frozen=True)
class DashFarm:
    root: Path
    queue: Queue
    succeeded: str  # job keys
    failed: str
    running: str
    running_log: Path


def new_job(key: str, recipe: str, python: str, owners: tuple[str, ...] = ()) -> NewJob:
    return NewJob(key=key, kind="build", recipe=recipe, target="manylinux_2_17_x86_64",
                  python=python, executor="zig", arch="x86_64", pythons=(python,),
                  spec={"recipe_text": "x"}, max_attempts=1, owners=owners)


def make_farm(root: Path, config: str = "") -> DashFarm:
    """The farm in ``root``, whose wheelfarm.toml ends with ``config``."""
    (root / "wheelfarm.toml").write_text("lease = 300\n" + config)
    queue = open_queue(farm_config.load(root))
    logs = root / ".wheelfarm" / "logs" / "jobs"
    logs.mkdir(parents=True)
    good, bad, busy = ("a" * 64, "b" * 64, "c" * 64)
    queue.submit([new_job(good, "fastadd", "cp312", ("@alice",)),
                  new_job(bad, "brokenc", "cp312", ("@bob", "team-c")),
                  new_job(busy, "fastadd", "cp311", ("@alice",))])
    queue.register("worker-1", CAPS)
    leases = {x.key: x for x in queue.claim("worker-1", CAPS, limit=3)}
    for lease in leases.values():
        queue.start(lease)
    good_log = logs / "good.log"
    good_log.write_text("# job good\n## build\nok\n")
    queue.finish(leases[good], Outcome(True, 12.5, log=str(good_log), artifact=Artifact(
        "fastadd-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "d" * 64, "/x")))
    bad_log = logs / "bad.log"
    bad_log.write_text(f"# job bad\n## build\n+ zig cc -c src/fast.c\n{COMPILER_ERROR}\n"
                       f"{HOSTILE}\n1 error generated.\n! build: the build failed\n")
    queue.finish(leases[bad], Outcome.failed(FailureKind.BUILD, "build failed: exit 1", 3.0,
                                             str(bad_log), cause=FailureCause.COMPILER))
    busy_log = logs / f"{busy[:16]}-1.log"  # where a worker of this farm writes it
    busy_log.write_text("# job busy\n## build\ncompiling...\n")
    return DashFarm(root, queue, good, bad, busy, busy_log)
