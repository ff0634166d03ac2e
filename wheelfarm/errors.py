"""The one error tree. Each error knows its exit code; only the CLI renders it.

Exit codes: 1 = a build or verification failed, 2 = bad input or configuration.
"""

from __future__ import annotations


class WheelfarmError(Exception):
    """Base of every expected failure. ``str(err)`` is the one line a user sees."""

    exit_code = 1


class ConfigError(WheelfarmError):
    """Bad input found before anything runs: a recipe, a flag, the farm config."""

    exit_code = 2


class RecipeError(ConfigError):
    """A malformed recipe; the message names the file and the key."""

    def __init__(self, path: object, key: str | None, message: str) -> None:
        self.path = str(path)
        self.key = key
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(where + message)


class MergeConflict(WheelfarmError):
    """Two inputs of a merge hold different files under one name."""


class WheelChanged(WheelfarmError):
    """A wheel's bytes are not the ones recorded for it; it is not added to the wheelhouse."""


class JobError(WheelfarmError):
    """A job failed while running (fetch, build, repair, check, test)."""

    step = "job"


class SourceError(JobError):
    step = "source"


class BuildError(JobError):
    step = "build"


class PolicyError(JobError):
    """The wheel does not satisfy its target; ``violations`` names each symbol."""

    step = "check"

    def __init__(self, message: str, violations: list[str] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


class RepairError(JobError):
    step = "repair"


class QualityError(JobError):
    """A module of the wheel is not what its build profile promises (a sanitizer,
    missing optimization); the message names each module and why."""

    step = "check"


class NotReproducible(JobError):
    """Two builds of the same inputs gave different wheels."""

    step = "reproduce"


class ParityError(JobError):
    """The wheel falls short of the upstream project's own wheel: an extension
    module upstream ships is missing, or the recipe's bench is too slow."""

    step = "parity"


class TestFailure(JobError):
    step = "test"
    __test__ = False  # not a pytest test class


class CommandError(JobError):
    """A subprocess exited non-zero or timed out; carries the tail of its output."""

    step = "command"

    def __init__(self, cmd: list[str], returncode: int | None, tail: str) -> None:
        self.cmd = cmd
        self.returncode = returncode
        self.tail = tail
        what = "timed out" if returncode is None else f"exited {returncode}"
        head = f"{cmd[0]} {what}"
        last = tail.strip().splitlines()[-1] if tail.strip() else ""
        super().__init__(f"{head}: {last}" if last else head)
